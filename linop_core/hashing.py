"""SHA-256 digests: of files (checkpoints, sets, CSVs) and of id lists, the one place LINOP computes them."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable

_BLOCK = 1 << 20


def sha256_file(path: str | os.PathLike[str], block: int = _BLOCK) -> str:
    """Hex SHA-256 of a file's bytes, read in blocks (constant memory for multi-GB sets)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(block):
            digest.update(chunk)
    return digest.hexdigest()


def sha256_lines(items: Iterable[str]) -> str:
    """Hex SHA-256 of ``items`` joined by newlines: a fingerprint of an ordered id list (a source pool)."""
    return hashlib.sha256("\n".join(items).encode("utf-8")).hexdigest()
