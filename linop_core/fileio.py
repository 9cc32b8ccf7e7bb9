"""Atomic file writes: a file users keep is either the old version or the new one, never half of each."""

from __future__ import annotations

import io
import os
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO, TextIO

from linop_core.diskspace import DiskFullError, is_disk_full
from linop_core.errors import LinopError


@contextmanager
def atomic_open(path: str | os.PathLike[str]) -> Iterator[BinaryIO]:
    """Yields a binary file in ``path``'s folder; on success it is fsynced and renamed over ``path``.

    On any exception (including KeyboardInterrupt) the temporary file is removed and ``path`` is untouched;
    a write that fails for want of space becomes a :class:`~linop_core.diskspace.DiskFullError`.
    The temporary file is opened exclusively with mode 0666 so the result gets the user's umask (mkstemp
    would leave it 0600).
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{uuid.uuid4().hex}.tmp")
    try:
        with open(tmp, "xb") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except BaseException as exc:
        tmp.unlink(missing_ok=True)
        # every writer gets the one-line full-disk message, not an OSError traceback (a writer's own one-line
        # error already says it)
        if not isinstance(exc, LinopError) and is_disk_full(exc):
            raise DiskFullError(target, None) from exc
        raise


@contextmanager
def atomic_open_text(path: str | os.PathLike[str], *, newline: str | None = None) -> Iterator[TextIO]:
    """:func:`atomic_open` for UTF-8 text (``newline`` as for :func:`open`, e.g. ``""`` for the csv module)."""
    with atomic_open(path) as raw:
        text = io.TextIOWrapper(raw, encoding="utf-8", newline=newline)
        yield text
        text.flush()
        text.detach()  # leave closing (and the fsync before it) to atomic_open


def atomic_write_with(path: str | os.PathLike[str], write: Callable[[BinaryIO], object]) -> None:
    """:func:`atomic_open` for writers that take a file object (``torch.save``, ``np.savez``, PIL's ``save``)."""
    with atomic_open(path) as f:
        write(f)


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    with atomic_open(path) as f:
        f.write(data)


def atomic_write_text(path: str | os.PathLike[str], text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))
