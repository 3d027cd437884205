"""Exceptions that cross the engine's public API, and the one place I/O errors become sentences.

Every problem a user can cause or fix (a bad path, a damaged file, a full disk, a folder they
cannot write to, a bad setting) is a `DampInputError` whose message is one line that names the
file, says what is wrong and what to do. The CLI prints it and exits with code 2; the QGIS
plugin raises it as a ``QgsProcessingException``.
"""
from __future__ import annotations

import os


class DampInputError(ValueError):
    """Bad input (file, raster, parameter, model) that the user can fix; the message says how."""

    def __init__(self, message: object = "") -> None:
        super().__init__(one_line(message))


class DampCancelled(RuntimeError):
    """The caller cancelled a long run; nothing was written."""


def one_line(text: object) -> str:
    """`text` (a message or an exception) on one line: whitespace runs, newlines included, become one space."""
    return " ".join(str(text).split())


def problem_of(exc: BaseException) -> str:
    """What went wrong, from a GDAL RuntimeError, an OSError or a MemoryError, without a trailing stop."""
    if isinstance(exc, MemoryError):
        return "not enough memory"
    if isinstance(exc, OSError) and exc.strerror:
        text = exc.strerror.lower()
    else:
        text = one_line(exc) or type(exc).__name__
    return text.rstrip(". ")


def read_error(path: str | os.PathLike, exc: BaseException) -> DampInputError:
    """The error for a raster that opened but cannot be read (a damaged or truncated file)."""
    if isinstance(exc, MemoryError):
        return DampInputError(f"Cannot read {path}: not enough memory for its size; use a smaller tile "
                              "or crop the raster first.")
    return DampInputError(f"Cannot read {path}: {problem_of(exc)}. The file is damaged or incomplete "
                          "(e.g. an interrupted copy or download); copy or export it again.")


def write_error(path: str | os.PathLike, exc: BaseException, temp: str | os.PathLike | None = None) -> DampInputError:
    """The error for an output that cannot be written; names `path`, never the hidden temporary file."""
    problem = problem_of(exc)
    if temp is not None:
        problem = problem.replace(str(temp), str(path)).replace(os.path.basename(str(temp)),
                                                                 os.path.basename(str(path)))
    return DampInputError(f"Cannot write {path}: {problem}. Check that its folder is writable and the disk "
                          "has free space.")
