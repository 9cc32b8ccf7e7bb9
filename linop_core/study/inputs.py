"""Are a study's inputs still where and what they were? Checking them, and pointing a study at moved ones.

A study names its synthetic sets and its VinDr root by absolute path. :func:`check_inputs` names *every*
missing file in one line with the fix (``linop-study relocate``), and refuses a set whose size or SHA-256
differs from what the study recorded: its samples may no longer be the ones the study drew.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path

from linop_core.errors import DataError
from linop_core.hashing import sha256_file
from linop_core.study.model import SetRef, SourceKind, Study


def _where(study: Study) -> Path | str:
    return study.path if study.path is not None else f"study {study.study_uid}"


def real_case_path(study: Study, relative: str) -> Path:
    return study.root / Path(relative)


def _real_paths(study: Study) -> list[str]:
    return sorted({c.source.path for c in study.cases if c.source.kind is SourceKind.ROOT and c.source.path})


def missing_inputs(study: Study) -> list[str]:
    """One description per missing input: each set, the root, or each real case's DICOM under the root."""
    missing = [f"set {i} {ref.path}" for i, ref in enumerate(study.sets) if not ref.path.is_file()]
    real_paths = _real_paths(study)
    if real_paths and not study.root.is_dir():
        missing.append(f"the VinDr root {study.root} (all {len(real_paths)} real case DICOM file(s))")
    else:
        missing += [f"{real_case_path(study, p)}" for p in real_paths if not real_case_path(study, p).is_file()]
    return missing


def check_inputs(study: Study, *, verify_hashes: bool = True) -> None:
    """Raise :class:`DataError` naming every moved or missing input, or the first set that changed.

    ``verify_hashes``: recompute each set's SHA-256 (reads every set once); the size is always compared.
    """
    where = _where(study)
    missing = missing_inputs(study)
    if missing:
        raise DataError(
            where,
            f"{len(missing)} input(s) moved or missing: {'; '.join(missing)}. Move them back, or point the study at "
            f"their new place with `linop-study relocate {where} --root NEW_ROOT --set INDEX=NEW.h5`",
        )
    for i, ref in enumerate(study.sets):
        _check_set(where, i, ref, verify_hashes=verify_hashes)
    for case in study.cases:
        if case.source.kind is SourceKind.ROOT and case.source.path and case.source.size_bytes is not None:
            path = real_case_path(study, case.source.path)
            size = path.stat().st_size
            if size != case.source.size_bytes:
                raise DataError(
                    path,
                    f"is {size} bytes but was {case.source.size_bytes} when study {study.study_uid} was made; the "
                    "DICOM was replaced, so restore the original root or create a new study",
                )


def _check_set(where: Path | str, index: int, ref: SetRef, *, verify_hashes: bool) -> None:
    size = ref.path.stat().st_size
    if size == ref.size_bytes and (not verify_hashes or sha256_file(ref.path) == ref.sha256):
        return
    actual = f"{size} bytes" if size != ref.size_bytes else f"SHA-256 {sha256_file(ref.path)[:12]}…"
    recorded = f"{ref.size_bytes} bytes" if size != ref.size_bytes else f"{ref.sha256[:12]}…"
    raise DataError(
        ref.path,
        f"set {index} of {where} changed since the study was made ({actual}, the study recorded {recorded}): its "
        "samples may not be the ones the study drew; restore the original file or create a new study",
    )


def relocate(
    study: Study,
    *,
    root: str | os.PathLike[str] | None = None,
    sets: Mapping[int, str | os.PathLike[str]] | None = None,
) -> Study:
    """The study with a new root and/or new set paths; each new set must have the recorded SHA-256."""
    where = _where(study)
    new_sets = list(study.sets)
    for index, new_path in (sets or {}).items():
        if not 0 <= index < len(study.sets):
            raise DataError(where, f"--set {index}=...: the study has sets 0..{len(study.sets) - 1}")
        ref = replace(study.sets[index], path=Path(new_path).resolve())
        if not ref.path.is_file():
            raise DataError(ref.path, f"set {index}: no such file")
        _check_set(where, index, ref, verify_hashes=True)
        new_sets[index] = ref
    moved = replace(study, sets=tuple(new_sets))
    if root is not None:
        moved = replace(moved, root=Path(root).resolve())
        if not moved.root.is_dir():
            raise DataError(moved.root, "--root: not a folder")
        absent = [str(real_case_path(moved, p)) for p in _real_paths(moved) if not real_case_path(moved, p).is_file()]
        if absent:
            listed = "; ".join(absent)
            raise DataError(moved.root, f"--root lacks {len(absent)} real case DICOM(s): {listed}; the right root?")
    return moved
