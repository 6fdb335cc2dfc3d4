"""Annotation files -> the parquet verl's ``RLHFDataset`` reads (``python -m evads_rl verl-data``).

verl 0.9 (``verl/utils/dataset/rl_dataset.py``) iterates a row's ``data.video_key`` column
as a list and hands each item to ``vision_utils.process_video``, which accepts only a dict
with a ``video`` key (qwen-vl-utils' format) and raises otherwise; it places the video where
the prompt text says ``<video>``. The released RL split has ``videos`` as one plain string
relative to the authors' tree (``../videos/698.mp4``), which verl cannot use. This writes
each row with:

- ``videos``: ``[{"video": "<absolute path>"}]``, the file found by name under the video
  folder (it must exist; qwen-vl-utils then samples at its defaults, 2 fps and at most 768
  frames, the paper's settings);
- ``prompt``: one user message whose text holds exactly one ``<video>``;
- ``extra_info``: ``id``, ``video_path`` (as annotated), ``index``, and inline
  ``question``, ``clues``, ``meta_info``, ``accuracy_ratio``, ``format_ratio``, so that
  :mod:`evads_rl.verl_reward` needs no ``$EVADS_ANNOTATIONS`` lookup.

verl-style rows (RL/SFT splits) keep their other columns as released; rows of the published
SFT split, which have no ``reward_model``, get the one verl's reward reads (ground truth = the
``<answer>`` part of their ``answer``, no clues); test-schema and normalized rows get the RL
row of :func:`evads_tasks.core.annotations.schemas.to_train_row`.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Mapping
from pathlib import Path

from tqdm import tqdm

from evads_tasks.core.annotations import AnnotationError, EvadsRecord
from evads_tasks.core.annotations import resolve_video as resolve_video_path
from evads_tasks.core.annotations.schemas import detect_schema, rl_reward_model, to_train_row

from .data import VIDEO_MARKER, prompt_text, read_records
from .heldout import OverlapError, guard_overlap


def verl_row(row: Mapping, record: EvadsRecord, video: Path, index: int) -> dict:
    """One annotation row as verl reads it (see the module docstring)."""
    schema = detect_schema(set(row))
    if schema == "train":
        base = dict(row)
    elif schema == "sft":
        base = {**row, "reward_model": rl_reward_model(record)}
    else:
        base = to_train_row(record, "rl")
    text = prompt_text(row, record, "grpo")
    markers = text.count(VIDEO_MARKER)
    if markers > 1:
        raise AnnotationError(f"prompt has {markers} {VIDEO_MARKER} markers for one video",
                              field="prompt")
    return {
        **base,
        "prompt": [{"role": "user", "content": text if markers else VIDEO_MARKER + text}],
        "videos": [{"video": str(video.resolve())}],
        "extra_info": {
            "id": record.question_id,
            "video_path": record.video_file,
            "index": index,
            "question": record.question,
            "clues": record.clues,
            "meta_info": record.metadata_text(),
            "accuracy_ratio": float(record.extra.get("accuracy_ratio", 1)),
            "format_ratio": float(record.extra.get("format_ratio", 1)),
        },
    }


def verl_rows(source: str | os.PathLike, video_dir: str | os.PathLike | None,
              exclude: str | os.PathLike | None = None) -> list[dict]:
    """Every row of an annotation file as verl reads it, less the questions of the filter
    file ``exclude``; errors name the file and row."""
    out = []
    for number, (row, record) in enumerate(tqdm(read_records(source, exclude),
                                                desc="verl rows", unit="row")):
        try:
            out.append(verl_row(row, record, resolve_video_path(record, video_dir), number))
        except AnnotationError as exc:
            raise AnnotationError(exc.message, file=str(source), row=number,
                                  field=exc.field) from None
    if not out:
        raise AnnotationError("no rows", file=str(source))
    return out


def write_verl_parquet(source: str | os.PathLike, video_dir: str | os.PathLike | None,
                       out: str | os.PathLike, exclude: str | os.PathLike | None = None) -> Path:
    import pyarrow as pa
    import pyarrow.parquet as pq

    out = Path(out)
    table = pa.Table.from_pylist(verl_rows(source, video_dir, exclude))
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(out.name + ".partial")
    pq.write_table(table, partial)
    partial.replace(out)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m evads_rl verl-data",
        description="Write an E-VAds annotation file (RL, SFT or test schema) as the parquet "
                    "verl's RLHFDataset reads: videos as [{'video': absolute path}], the "
                    "question, clues and metadata inline in extra_info. Convert the training "
                    "file and a separate validation file with one call each.")
    parser.add_argument("source", help="annotation file (parquet/JSONL/JSON)")
    parser.add_argument("--video-dir", help="folder holding the videos, found by file name "
                                            "(default: $EVADS_VIDEO_DIR)")
    parser.add_argument("--out", required=True, help="output parquet path")
    parser.add_argument("--exclude", metavar="FILE",
                        help="leave out the questions this filter file names (python -m "
                             "evads_tasks audit --export-filter: answerable without the video)")
    parser.add_argument("--disjoint-from", action="append", default=[], metavar="FILE",
                        help="a training file this one must share no video and no question id "
                             "with (repeatable; for a validation file: the RL and SFT files); "
                             "an overlap exits 2 naming the count and the first ids")
    parser.add_argument("--allow-overlap", action="store_true",
                        help="convert even when it overlaps a --disjoint-from file (the "
                             "warning is then printed first)")
    args = parser.parse_args(argv)
    try:
        heldout = guard_overlap(args.source, str(args.source),
                                {str(other): other for other in args.disjoint_from},
                                args.allow_overlap, "--allow-overlap")
        if heldout.warning:
            print(f"WARNING: {heldout.warning}", flush=True)
        path = write_verl_parquet(args.source, args.video_dir, args.out, args.exclude)
    except (AnnotationError, OverlapError, FileNotFoundError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"wrote {path}")
    return 0
