"""The grid runner: cells (portion x synthetic share [x synthetic source] x seed), one result file per cell.

A grid may compare several synthetic sets (sources, e.g. ``mat``, ``biharmonic``, ``copy-paste``): every cell
with a synthetic share runs once per source, and the baseline (share 0) once, shared by all of them.

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
import os
import time
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
    source: str = ""  # which synthetic set ("" when the grid has one, and for the baseline)

    @property
    def key(self) -> str:
        syn = self.synthetic if isinstance(self.synthetic, str) else f"{100 * self.synthetic:g}"
        return f"real{100 * self.portion:g}_syn{syn}{'-' + self.source if self.source else ''}_seed{self.seed}"


def grid_cells(portions: Sequence[float], synthetic: Sequence[float | str], seeds: Sequence[int],
               sources: Sequence[str] = ("",)) -> list[Cell]:  # fmt: skip
    """Every cell, seed-major, so that a partial run already covers the whole table once; a synthetic share
    runs once per source, the baseline (share 0) once."""
    return [Cell(p, s, seed, source) for seed in seeds for p in portions for s in synthetic
            for source in (("",) if s == 0 else sources)]  # fmt: skip


def select_cells(cells: Sequence[Cell], keys: Sequence[str]) -> list[Cell]:
    """The cells named in ``keys`` (all when empty); an unknown key is an error listing the known ones."""
    if not keys:
        return list(cells)
    known = {cell.key: cell for cell in cells}
    unknown = [k for k in keys if k not in known]
    if unknown:
        raise LinopError(f"no cell {unknown[0]!r} in this grid; its cells are: {', '.join(known)}")
    return [known[k] for k in dict.fromkeys(keys)]


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
            wall, cpu = time.monotonic(), time.process_time()
            result = run_cell(cell, cell_progress(cell) if cell_progress is not None else None)
            record = {
                # "source" only where the grid compares several sets: one-set records keep their old shape
                "cell": {k: v for k, v in asdict(cell).items() if k != "source" or v},
                "key": cell.key,
                "config_sha256": digest,
                "finished_utc": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
                # what the cell cost (training, validation and test) and how busy the machine was
                "cell_seconds": round(time.monotonic() - wall, 1),
                "cpu_seconds": round(time.process_time() - cpu, 1),
                "load_average": [round(x, 2) for x in os.getloadavg()],
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
