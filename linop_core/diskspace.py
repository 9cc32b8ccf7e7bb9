"""Full disks: how much room a write needs, and one line that says so when there is not enough.

Every writer that users wait for (a unit of an export, the assembly of a set, a merge, COCO PNGs, manifests,
checkpoints) checks the free space it needs before it starts where that is known, and turns a write that
fails for want of space (``ENOSPC``/``EDQUOT``, h5py's and torch's wrapped reports of them) into a
:class:`DiskFullError`: the path, the space needed, the space free, and what to do. The writers leave no
temporary or partial file behind, so running the same command again, with room, resumes.
"""

from __future__ import annotations

import errno
import os
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from linop_core.errors import DataError

# Room kept beyond an exact size: file system blocks and directory entries.
SLACK_BYTES = 64 << 10
_FULL_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG}
_FULL_WORDS = ("No space left on device", "Disk quota exceeded", "errno = 28", "file write failed", "File too large")


def format_size(n: int | float) -> str:
    value = float(n)
    for unit in ("bytes", "kB", "MB", "GB", "TB"):
        if abs(value) < 1000 or unit == "TB":
            return f"{value:.0f} {unit}" if unit == "bytes" else f"{value:.1f} {unit}"
        value /= 1000
    raise AssertionError  # pragma: no cover


def free_bytes(path: str | os.PathLike[str]) -> int:
    """Free bytes (for this user) on the file system that holds ``path`` or its nearest existing parent."""
    target = Path(path).absolute()
    while not target.exists() and target != target.parent:
        target = target.parent
    return shutil.disk_usage(target).free


def is_disk_full(exc: BaseException) -> bool:
    """True for a failed write that ran out of space, however the library reported it: torch.save into a
    Python file raises RuntimeError("unexpected pos ...") with the OSError as its context."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, OSError) and current.errno in _FULL_ERRNOS:
            return True
        if isinstance(current, OSError | RuntimeError) and any(word in str(current) for word in _FULL_WORDS):
            return True
        current = current.__cause__ or current.__context__
    return False


class DiskFullError(DataError):
    """Not enough free space for a write; nothing partial was left behind."""

    def __init__(self, path: str | os.PathLike[str], needed: int | None, *, resume: str = "") -> None:
        self.needed = needed
        self.free = free_bytes(path)
        need = f"needs about {format_size(needed)}" if needed else "needs more room"
        advice = resume or "free space (or choose another folder) and run the same command again"
        free = format_size(self.free)
        super().__init__(path, f"not enough disk space: writing it {need}, {free} free there; {advice}")


def require_space(path: str | os.PathLike[str], needed: int, *, resume: str = "") -> None:
    """Raise DiskFullError before a write of about ``needed`` bytes at ``path`` that cannot fit."""
    if free_bytes(path) < needed + SLACK_BYTES:
        raise DiskFullError(path, needed + SLACK_BYTES, resume=resume)


@contextmanager
def full_disk_as_error(
    path: str | os.PathLike[str],
    needed: int | None = None,
    *,
    resume: str = "",
    cleanup: Callable[[BaseException], None] | None = None,
) -> Iterator[None]:
    """Turn a write that fails for want of space inside the block into a DiskFullError about ``path``.

    ``cleanup(exc)`` runs first on any failure (remove a temporary file), so the free space the message
    reports is what the user has once the command has ended.
    """
    try:
        yield
    except BaseException as exc:
        if cleanup is not None:
            cleanup(exc)
        if is_disk_full(exc):
            raise DiskFullError(path, needed, resume=resume) from exc
        raise
