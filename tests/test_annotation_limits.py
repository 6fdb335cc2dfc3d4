"""Length limits and null values in annotation files: the error names file, row and field."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from evads_tasks.core.annotations import AnnotationError, load_annotations
from evads_tasks.core.annotations.record import LENGTH_LIMITS


def _rows(sample_dir: Path) -> list[dict]:
    return pq.read_table(sample_dir / "annotations" / "test.parquet").to_pylist()


def _error(path: Path, rows: list[dict]) -> AnnotationError:
    pq.write_table(pa.Table.from_pylist(rows), path)
    with pytest.raises(AnnotationError) as caught:
        load_annotations(path)
    return caught.value


@pytest.mark.parametrize(("column", "field", "setting"), [
    ("question", "question", "EVADS_MAX_QUESTION_CHARS"),
    ("answer", "answer", "EVADS_MAX_ANSWER_CHARS"),
    ("evidence", "clues", "EVADS_MAX_EVIDENCE_CHARS"),
])
def test_an_over_long_text_is_refused_naming_file_row_and_field(
        sample_dir: Path, tmp_path: Path, column: str, field: str, setting: str,
        monkeypatch: pytest.MonkeyPatch) -> None:
    for name, _, _ in LENGTH_LIMITS.values():
        monkeypatch.delenv(name, raising=False)
    rows = _rows(sample_dir)
    rows[5][column] = "长" * 1_000_000  # a 1 MB text
    error = _error(tmp_path / "t.parquet", rows)
    assert (error.file, error.row, error.field) == (str(tmp_path / "t.parquet"), 5, field)
    assert "1,000,000 characters, over the limit of" in str(error) and setting in str(error)
    monkeypatch.setenv(setting, "0")  # no limit
    assert len(load_annotations(tmp_path / "t.parquet")) == len(rows)


def test_the_metadata_limit_is_a_setting(sample_dir: Path, tmp_path: Path,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    rows = _rows(sample_dir)
    path = tmp_path / "t.parquet"
    pq.write_table(pa.Table.from_pylist(rows), path)
    longest = max(len(r.metadata) for r in load_annotations(path))
    monkeypatch.setenv("EVADS_MAX_METADATA_CHARS", str(longest - 1))
    error = _error(path, rows)
    assert error.field == "metadata" and "EVADS_MAX_METADATA_CHARS" in str(error)
    monkeypatch.setenv("EVADS_MAX_METADATA_CHARS", "lots")
    with pytest.raises(AnnotationError, match="EVADS_MAX_METADATA_CHARS must be a whole number"):
        load_annotations(path)


def test_a_null_value_is_reported_as_null_not_as_a_missing_column(
        sample_dir: Path, tmp_path: Path) -> None:
    rows = _rows(sample_dir)
    rows[2]["question"] = None
    rows[3]["ques_categories"] = None
    error = _error(tmp_path / "t.parquet", rows)
    assert (error.row, error.field) == (2, "question")
    assert "null value" in str(error) and "missing column" not in str(error)
    rows[2]["question"] = "价格是多少？"
    error = _error(tmp_path / "t.parquet", rows)
    assert (error.row, error.field) == (3, "ques_categories")
    assert "null value (the task label)" in str(error)
