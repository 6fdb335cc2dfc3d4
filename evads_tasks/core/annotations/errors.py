"""One error type for bad annotation input, always naming where the problem is."""

from __future__ import annotations

from collections.abc import Iterable


class AnnotationError(ValueError):
    """Bad annotation input: the message names the file (or hub dataset), row and field."""

    def __init__(self, message: str, *, file: str | None = None, row: int | None = None,
                 field: str | None = None, dataset: str | None = None) -> None:
        self.message, self.file, self.row, self.field = message, file, row, field
        self.dataset = dataset
        where = ", ".join(
            part for part in (
                f"hub dataset {dataset}" if dataset else "",
                f"file {file}" if file else "",
                f"row {row}" if row is not None else "",
                f"field '{field}'" if field else "",
            ) if part
        )
        super().__init__(f"{where}: {message}" if where else message)


def first_duplicate(ids: Iterable[tuple[str, str]]) -> tuple[str, str, str] | None:
    """(id, where it was first, where it is again) for the first of ``(id, where)`` pairs
    whose id was seen before, else None. Question ids key the video check, the sample logs
    and rescore, so a repeated one would silently stand for another question."""
    seen: dict[str, str] = {}
    for key, where in ids:
        if key in seen:
            return key, seen[key], where
        seen[key] = where
    return None
