"""One exception hierarchy for everything the user can get wrong.

Every message is one line that names the file (or thing) at fault, the reason, and where possible the fix,
so the CLI and the GUI can show it as it is, without a traceback.
"""

from __future__ import annotations

from os import PathLike


class LinopError(Exception):
    """Base class: a problem with the user's input, files or environment (not a bug)."""


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


class DicomError(LinopError):
    """A DICOM file cannot be turned into a correct image."""

    def __init__(self, path: str | PathLike[str], reason: str) -> None:
        self.path = str(path)
        self.reason = _one_line(reason)
        super().__init__(f"{self.path}: {self.reason}")


class DataError(LinopError):
    """A dataset file (CSV, folder layout, HDF5 set) is missing or malformed."""

    def __init__(self, path: str | PathLike[str], reason: str, line: int | None = None) -> None:
        self.path = str(path)
        self.line = line
        self.reason = _one_line(reason)
        where = f"{self.path}:{line}" if line is not None else self.path
        super().__init__(f"{where}: {self.reason}")


class ModelError(LinopError):
    """A checkpoint, weight file or model configuration cannot be used."""

    def __init__(self, path: str | PathLike[str] | None, reason: str) -> None:
        self.path = None if path is None else str(path)
        self.reason = _one_line(reason)
        super().__init__(f"{self.path}: {self.reason}" if self.path else self.reason)
