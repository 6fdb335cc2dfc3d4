"""Reading annotation files (parquet, JSONL, JSON, hub ids) and writing them back."""

from __future__ import annotations

import json
import os
import re
from collections import defaultdict
from collections.abc import Iterable, Mapping
from pathlib import Path

from .errors import AnnotationError, first_duplicate
from .hub import download_hub_dataset
from .record import EvadsRecord
from .schemas import (
    detect_schema,
    parse_normalized_row,
    parse_sft_row,
    parse_test_row,
    parse_train_row,
    to_normalized_row,
    to_test_row,
    to_train_row,
    train_question,
)
from .task_classifier import assign_tasks

ANNOTATIONS_ENV = "EVADS_ANNOTATIONS"
HUB_DATASET = "TaobaoTmall-AlgorithmProducts/E-VAds_Benchmark"
_HUB_ID = re.compile(r"^[\w.-]+/[\w.-]+$")
_FILE_SUFFIXES = (".parquet", ".jsonl", ".ndjson", ".json")


def read_rows(path: str | os.PathLike) -> list[dict]:
    """Raw rows of a parquet, JSONL or JSON (list of objects) file as plain Python objects."""
    path = Path(path)
    if path.is_dir():
        raise AnnotationError(f"{path} is a folder: pass an annotation file (.parquet, .jsonl "
                              "or .json)")
    if not path.is_file():
        raise AnnotationError("file not found", file=str(path))
    if path.stat().st_size == 0:
        raise AnnotationError("file is empty", file=str(path))
    suffix = path.suffix.lower()
    if suffix == ".parquet":
        import pyarrow.parquet as pq

        try:
            rows = pq.read_table(path).to_pylist()
        except Exception as exc:  # pyarrow raises several types for corrupt files
            raise AnnotationError(f"not a readable parquet file ({exc})", file=str(path)) from None
    elif suffix in (".jsonl", ".ndjson"):
        rows = []
        with path.open(encoding="utf-8") as handle:
            for number, line in enumerate(handle):
                if not line.strip():
                    continue
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError as exc:
                    raise AnnotationError(f"invalid JSON on line {number + 1} ({exc.msg})",
                                          file=str(path), row=len(rows)) from None
    elif suffix == ".json":
        try:
            rows = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise AnnotationError(f"invalid JSON ({exc.msg})", file=str(path)) from None
        if not isinstance(rows, list):
            raise AnnotationError("expected a JSON list of rows", file=str(path))
    else:
        raise AnnotationError("unsupported file type (use .parquet, .jsonl or .json)",
                              file=str(path))
    if not rows:
        raise AnnotationError("file has no rows", file=str(path))
    for number, row in enumerate(rows):
        if not isinstance(row, Mapping):
            raise AnnotationError(f"expected an object, got {type(row).__name__}",
                                  file=str(path), row=number)
    return rows


def parse_rows(rows: list[Mapping], source: str = "<rows>") -> list[EvadsRecord]:
    """Records from raw rows of any schema; unlabeled rows get inferred tasks per video."""
    columns = set().union(*(row.keys() for row in rows))
    try:
        schema = detect_schema(columns)
    except AnnotationError as exc:
        raise AnnotationError(exc.message, file=source) from None

    def located(exc: AnnotationError, number: int) -> AnnotationError:
        return AnnotationError(exc.message, file=source, row=number, field=exc.field)

    inferred = schema in ("train", "sft")  # training rows carry no task label
    if inferred:
        questions, by_video = [], defaultdict(list)
        for number, row in enumerate(rows):
            try:
                video, question = train_question(row)
            except AnnotationError as exc:
                raise located(exc, number) from None
            questions.append(question)
            by_video[video].append(number)
        tasks: dict[int, str] = {}
        for numbers in by_video.values():
            tasks.update(zip(numbers, assign_tasks([questions[n] for n in numbers]), strict=True))
    records = []
    for number, row in enumerate(rows):
        try:
            if schema == "train":
                records.append(parse_train_row(row, tasks[number]))
            elif schema == "sft":
                records.append(parse_sft_row(row, tasks[number]))
            elif schema == "test":
                records.append(parse_test_row(row))
            else:
                records.append(parse_normalized_row(row))
        except AnnotationError as exc:
            raise located(exc, number) from None
    if repeated := first_duplicate((r.question_id, n) for n, r in enumerate(records)):
        question_id, first, again = repeated
        raise AnnotationError(f"question id {question_id!r} appears twice, in rows {first} and "
                              f"{again}: every question needs its own id", file=source)
    return records


def _hub_files(dataset_id: str, split: str | None) -> list[Path]:
    """The annotation parquet files of a hub dataset (of ``split`` when given)."""
    folder = download_hub_dataset(
        dataset_id, ["annotations/*", "*.parquet"],
        f"pass a local annotation file instead (or set {ANNOTATIONS_ENV})")
    found = sorted(folder.rglob("*.parquet"))
    if not found:
        raise AnnotationError("no parquet annotations", dataset=dataset_id)
    files = [f for f in found if split.lower() in f.name.lower()] if split else found
    if not files:
        names = ", ".join(str(f.relative_to(folder)) for f in found)
        raise AnnotationError(f"no annotation file for split {split!r} (files: {names})",
                              dataset=dataset_id)
    return files


def looks_like_path(source: str) -> bool:
    """Whether ``source`` names a file rather than a hub id (``owner/name``).

    A file suffix, a leading ``.``, ``/`` or ``~``, or more than one path separator make it a
    path, so a mistyped ``annotations/test.parquet`` fails as a missing file, not a download.
    """
    return (Path(source).suffix.lower() in _FILE_SUFFIXES or source.startswith((".", "~"))
            or not _HUB_ID.match(source))


def load_annotations(source: str | os.PathLike | None = None,
                     split: str | None = None) -> list[EvadsRecord]:
    """Records from a file, a hub dataset id, or ``$EVADS_ANNOTATIONS``.

    ``split`` picks among a hub dataset's files (e.g. ``test``).
    """
    source = source or os.environ.get(ANNOTATIONS_ENV)
    if not source:
        raise AnnotationError(f"no annotations given: pass a path or set {ANNOTATIONS_ENV}")
    path = Path(source).expanduser()
    if path.exists() or looks_like_path(str(source)):
        return parse_rows(read_rows(path), str(path))
    return [record for file in _hub_files(str(source), split)
            for record in parse_rows(read_rows(file), f"{source}:{file.name}")]


def write_jsonl(records: Iterable[EvadsRecord], path: str | os.PathLike) -> Path:
    """Write normalized records, one JSON object per line (loadable by :func:`load_annotations`)."""
    return _write([to_normalized_row(r) for r in records], Path(path))


def write_schema(records: Iterable[EvadsRecord], path: str | os.PathLike, schema: str) -> Path:
    """Write records in a schema: ``test``, ``rl``, ``sft`` or ``normalized``.

    The suffix picks the format: ``.parquet``, else JSONL.
    """
    writers = {"test": to_test_row, "rl": lambda r: to_train_row(r, "rl"),
               "sft": lambda r: to_train_row(r, "sft"), "normalized": to_normalized_row}
    if schema not in writers:
        raise ValueError(f"schema must be one of {sorted(writers)}, got {schema!r}")
    return _write([writers[schema](r) for r in records], Path(path))


def _write(rows: list[dict], path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        # ``extra`` is free-form and differs from row to row (or is empty), which one parquet
        # struct type cannot hold, so parquet stores it as JSON text.
        rows = [{**row, "extra": json.dumps(row["extra"], ensure_ascii=False)}
                if isinstance(row.get("extra"), dict) else row for row in rows]
        pq.write_table(pa.Table.from_pylist(rows), path)
    else:
        with path.open("w", encoding="utf-8") as handle:
            for row in rows:
                handle.write(json.dumps(row, ensure_ascii=False) + "\n")
    return path
