"""The grid runner: cells (portion x synthetic share x seed), one result file per finished cell.

A cell's result is written atomically to ``OUT/cells/<key>.json`` the moment it finishes, with the digest of
the config it was made with; a rerun skips every cell whose file exists with the same digest, so an
interrupted grid resumes where it stopped, and adding seeds or portions to the grid only runs the new cells.
A finished cell made with a different config is an error (mixing them would make the table meaningless).

Under ``torchrun`` each process takes every ``world``-th cell (cells are independent trainings, so this
scales without gradient traffic); rank 0 writes the report once all ranks are done.
"""

from __future__ import annotations

import datetime
import json
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from linop_core.errors import LinopError
from linop_core.fileio import atomic_write_text

Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class Cell:
    portion: float  # share of the real training split
    synthetic: float | str  # share of the real training size in synthetic images, or "all"
    seed: int

    @property
    def key(self) -> str:
        syn = self.synthetic if isinstance(self.synthetic, str) else f"{100 * self.synthetic:g}"
        return f"real{100 * self.portion:g}_syn{syn}_seed{self.seed}"


def grid_cells(portions: Sequence[float], synthetic: Sequence[float | str], seeds: Sequence[int]) -> list[Cell]:
    """Every cell, seed-major, so that a partial run already covers the whole table once."""
    return [Cell(p, s, seed) for seed in seeds for p in portions for s in synthetic]


def cell_path(out_dir: Path, cell: Cell) -> Path:
    return out_dir / "cells" / f"{cell.key}.json"


def read_cell(out_dir: Path, cell: Cell, digest: str) -> dict[str, Any] | None:
    """The finished cell's record, None when it has not run; a record from another config is an error."""
    path = cell_path(out_dir, cell)
    if not path.is_file():
        return None
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None  # unreadable (cannot happen with atomic writes unless edited by hand): run it again
    if record.get("config_sha256") != digest:
        raise LinopError(
            f"{path}: this cell was computed with a different benchmark config; use a new --out folder, "
            "or delete the folder's cells/ to recompute"
        )
    return record


def run_grid(
    cells: Sequence[Cell],
    run_cell: Callable[[Cell, Progress | None], dict[str, Any]],
    out_dir: Path,
    digest: str,
    *,
    rank: int = 0,
    world: int = 1,
    progress: Progress | None = None,
    cell_progress: Callable[[Cell], Progress | None] | None = None,
) -> list[Cell]:
    """Run this rank's unfinished cells; returns the cells it computed (finished ones are skipped).

    ``progress(done, total)`` counts this rank's cells (skipped ones count as done); ``cell_progress(cell)``
    gives the callback for the iterations inside one cell.
    """
    mine = list(cells)[rank::world]
    computed: list[Cell] = []
    for done, cell in enumerate(mine, start=1):
        if read_cell(out_dir, cell, digest) is None:
            result = run_cell(cell, cell_progress(cell) if cell_progress is not None else None)
            record = {
                "cell": asdict(cell),
                "key": cell.key,
                "config_sha256": digest,
                "finished_utc": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
                "result": result,
            }
            atomic_write_text(cell_path(out_dir, cell), json.dumps(record, allow_nan=True))
            computed.append(cell)
        if progress is not None:
            progress(done, len(mine))
    return computed


def collect(out_dir: Path, cells: Sequence[Cell], digest: str) -> list[dict[str, Any]]:
    """Records of the finished cells, in grid order (missing cells are left out)."""
    records = [read_cell(out_dir, cell, digest) for cell in cells]
    return [r for r in records if r is not None]
