"""One error type for bad annotation input, always naming where the problem is."""

from __future__ import annotations


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
