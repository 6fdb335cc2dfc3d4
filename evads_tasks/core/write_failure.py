"""When an output cannot be written (a full or read-only disk): one message, one exit code.

Why: a full disk ended the judge CLI and the generator with a traceback and let other
commands exit 0 with cut files. Each command that writes catches the ``OSError`` of its
writes, keeps what it wrote before (every long command writes as it goes and resumes), and
prints :func:`write_failure` as its last line: the file (or the folder it was writing into),
the cause and how to resume; it exits ``EXIT_WRITE_FAILED``.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import TextIO

EXIT_WRITE_FAILED = 1


def write_failure(error: OSError, where: str | Path, resume: str) -> str:
    """``cannot write FILE (cause); resume``. ``where`` names the file or folder being
    written when the error does not (a failed ``write()`` on an open file names none)."""
    target = error.filename or where
    return f"cannot write {target} ({error.strerror or error}); {resume}"


class WriteFailed(RuntimeError):
    """An output could not be written; ``str()`` is :func:`write_failure`'s line."""


@contextmanager
def writing(where: str | Path, resume: str) -> Iterator[None]:
    """Turn an ``OSError`` of the writes inside into :class:`WriteFailed` naming ``where``
    (the file or folder being written) and how to resume."""
    try:
        yield
    except OSError as error:
        raise WriteFailed(write_failure(error, where, resume)) from error


@contextmanager
def appending(path: Path, resume: str) -> Iterator[TextIO]:
    """``path`` opened to append rows (each written and flushed by the caller; a failure to
    open it is :class:`WriteFailed`). When a write fails, closing the file (which would try
    the buffered bytes again and fail again) does not hide that first failure."""
    with writing(path, resume):
        handle = path.open("a", encoding="utf-8")
    try:
        yield handle
    except BaseException:
        with suppress(OSError):
            handle.close()
        raise
    handle.close()
