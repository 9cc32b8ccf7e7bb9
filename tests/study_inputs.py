"""Phantom inputs for the reader-study tests: a VinDr root and a small synthetic set, made once per test session.

Several test modules need the same inputs; they are written under the session's base temp folder the first
time and reused after that (the set file appears only once its export finished).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from linop_core.cli.export import main as export_main
from linop_core.phantom import make_cxr_dataset, make_mammo_dataset

FAST = ["--engine", "biharmonic", "--resolution", "64", "--no-progress"]
# (phantom maker, studies or images, export units): enough real lesions left after the set's sources are excluded
_SIZES = {"mammo": (make_mammo_dataset, 4, 5), "cxr": (make_cxr_dataset, 14, 3)}


def phantom_inputs(factory: pytest.TempPathFactory, kind: str) -> tuple[Path, Path]:
    """``(root, set)`` of a phantom VinDr-Mammo or VinDr-CXR root and a set synthesised from it."""
    base = factory.getbasetemp() / f"study-inputs-{kind}"
    root, set_path = base / "root", base / "set.h5"
    if not set_path.exists():
        make, n, units = _SIZES[kind]
        make(root, n, 0, "small")
        args = ["generate", str(root), str(set_path), "--n", str(units), "--seed", "1", *FAST]
        assert export_main(args) == 0
    return root, set_path
