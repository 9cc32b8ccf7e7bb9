"""The files of a ``linop-train`` run folder: where they are, and writing and reading them.

``config.yaml``, ``last.pt`` (full training state, ``torch.load(weights_only=True)``), ``best.pt`` (lowest FID)
and ``snapshots/snapshot-<kimg>kimg.pt`` (generator checkpoints in the project's format, loadable by the
synthesis engine), ``metrics.jsonl`` (see :mod:`trainer.metrics_log`), ``tensorboard/`` (steps counted in
images seen) and ``images/``. Every file is written through :mod:`linop_core.fileio` (temporary file, fsync,
rename), and a failed write is a :class:`CheckpointWriteError` that names the file and the way to continue.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import torch
from torch import Tensor, nn

from linop_core.diskspace import DiskFullError, format_size, free_bytes, is_disk_full
from linop_core.errors import LinopError, ModelError
from linop_core.fileio import atomic_write_with
from linop_core.model.checkpoint import payload_bytes
from linop_core.model.pickle_guard import guarded_torch_load

STATE_FORMAT = "linop-train-state"
STATE_VERSION = 1
SNAPSHOTS_DIR = "snapshots"
IMAGES_DIR = "images"


class CheckpointWriteError(LinopError):
    """A run file could not be written (disk full, permissions); the previous version is left intact.

    ``needed``: the bytes the file needs, when known; a full disk then says how much and how much is free.
    """

    def __init__(self, path: str | os.PathLike[str], reason: str, needed: int | None = None) -> None:
        self.path = Path(path)
        room = ""
        if needed is not None:
            room = f"; it needs about {format_size(needed)}, {format_size(free_bytes(self.path))} free there"
        super().__init__(
            f"{self.path}: cannot write ({' '.join(reason.split())}{room}); the previous file, if any, is intact: "
            f"free space or fix permissions, then continue with `linop-train --resume {run_dir_of(self.path)}`"
        )


def run_dir_of(path: Path) -> Path:
    """The run folder a run file belongs to (the folder above for files in ``snapshots/`` and ``images/``)."""
    return path.parent.parent if path.parent.name in (SNAPSHOTS_DIR, IMAGES_DIR) else path.parent


def kimg_label(nimg: int) -> str:
    """``000840.000`` for 840 kimg: sortable, and unique for runs measured in fractions of a kimg."""
    return f"{nimg / 1000:010.3f}"


@dataclass(frozen=True)
class RunFiles:
    root: Path

    @property
    def last(self) -> Path:
        return self.root / "last.pt"

    @property
    def best(self) -> Path:
        return self.root / "best.pt"

    @property
    def snapshots(self) -> Path:
        return self.root / SNAPSHOTS_DIR

    @property
    def metrics(self) -> Path:
        return self.root / "metrics.jsonl"

    @property
    def config(self) -> Path:
        return self.root / "config.yaml"

    @property
    def tensorboard(self) -> Path:
        return self.root / "tensorboard"

    @property
    def images(self) -> Path:
        return self.root / IMAGES_DIR

    def snapshot(self, nimg: int) -> Path:
        return self.snapshots / f"snapshot-{kimg_label(nimg)}kimg.pt"

    def image_grid(self, nimg: int) -> Path:
        return self.images / f"kimg-{kimg_label(nimg)}.png"


# ---------------------------------------------------------------------------------------------------------------
# Writing


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


def write_run_file(path: Path, write: Callable[[BinaryIO], object], needed: int | None = None) -> None:
    """``write(f)`` into ``path`` atomically; ``needed`` (bytes, when known) is checked against the free space
    first and named if the disk fills meanwhile.

    Raises:
        CheckpointWriteError: the write failed (e.g. disk full); ``path`` is untouched, no temporary file is left.
    """
    if needed is not None and free_bytes(path) < needed:
        raise CheckpointWriteError(path, "not enough disk space", needed)
    try:
        atomic_write_with(path, write)
    except (DiskFullError, OSError) as exc:
        error = exc.__cause__ if isinstance(exc, DiskFullError) and isinstance(exc.__cause__, OSError) else exc
        reason = (error.strerror if isinstance(error, OSError) else None) or _first_line(error)
        raise CheckpointWriteError(path, reason, needed if needed and is_disk_full(exc) else None) from exc


def save_run_file(obj: Any, path: Path) -> None:
    """``torch.save(obj)`` into ``path`` atomically (see :func:`write_run_file`)."""
    needed = payload_bytes(obj)

    def write(f: BinaryIO) -> None:
        try:
            torch.save(obj, f)
        except RuntimeError as exc:  # torch's zip writer reports a full disk as RuntimeError, not OSError
            room = needed if is_disk_full(exc) else None
            raise CheckpointWriteError(path, f"torch.save failed: {_first_line(exc)}", room) from exc

    write_run_file(path, write, needed)


def write_run_text(path: Path, text: str) -> None:
    """UTF-8 ``text`` into ``path`` atomically (see :func:`write_run_file`)."""
    data = text.encode("utf-8")
    write_run_file(path, lambda f: f.write(data), len(data))


def write_image_grid(path: Path, grid: Tensor) -> None:
    """A (C, H, W) image in [0, 1] as a PNG, atomically (see :func:`write_run_file`)."""
    from torchvision.utils import save_image

    write_run_file(path, lambda f: save_image(grid, f, format="png"))


def save_generator_checkpoint(
    path: Path,
    *,
    config: Any,
    preset: str,
    G_ema: nn.Module,
    G: nn.Module | None = None,
    D: nn.Module | None = None,
    extra: dict[str, Any],
) -> None:
    """A checkpoint in the project's format (``linop_core.model.checkpoint``), which writes it atomically.

    Raises:
        CheckpointWriteError: the write failed; the previous file, if any, is intact.
    """
    from linop_core.model.checkpoint import save_checkpoint

    try:
        save_checkpoint(path, config=config, preset=preset, G_ema=G_ema, G=G, D=D, extra=extra)
    except DiskFullError as exc:
        raise CheckpointWriteError(path, "not enough disk space", exc.needed) from exc
    except OSError as exc:
        raise CheckpointWriteError(path, exc.strerror or _first_line(exc)) from exc
    except RuntimeError as exc:  # torch.save's report of a full disk
        raise CheckpointWriteError(path, f"torch.save failed: {_first_line(exc)}") from exc


def open_tensorboard(files: RunFiles, purge_step: int | None) -> Any:
    """A TensorBoard ``SummaryWriter`` on ``files.tensorboard``; ``purge_step`` drops events a resumed run repeats."""
    from torch.utils.tensorboard import SummaryWriter

    return SummaryWriter(str(files.tensorboard), purge_step=purge_step)


# ---------------------------------------------------------------------------------------------------------------
# Reading


def load_training_state(path: Path) -> dict[str, Any]:
    """Read a ``last.pt`` training state (bounded, then weights-only unpickling)."""
    try:
        state = guarded_torch_load(path, what="the training state", map_location="cpu")
    except ModelError:
        raise
    except FileNotFoundError:
        raise ModelError(path, "no training state here; was the run started with this --out folder?") from None
    except Exception as exc:
        raise ModelError(path, f"unreadable training state ({exc}); resume from a snapshot with --init") from exc
    if not isinstance(state, dict) or state.get("format") != STATE_FORMAT:
        raise ModelError(path, "not a linop-train training state (last.pt); use --init for model checkpoints")
    return state
