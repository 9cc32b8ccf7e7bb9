"""The one way front doors get an engine: an :class:`EngineSpec` (what the user chose) -> :func:`make_engine`.

The GUI's model panel, ``linop-export``, ``linop-bench`` and the demo-model proof all describe the engine
they want with a spec; the defaults (the bundled demo model of a task when no checkpoint is named) are
decided here, once.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING

from linop_core.demo_models import demo_model_path
from linop_core.engines.base import Engine
from linop_core.engines.biharmonic import BiharmonicEngine
from linop_core.engines.device import pick_device
from linop_core.engines.mat import MatEngine
from linop_core.errors import LinopError, ModelError
from linop_core.model.checkpoint import load_generator
from linop_core.model.presets import build_generator
from linop_core.precision import Precision, parse_precision, resolve_precision
from linop_core.vocab import Task

if TYPE_CHECKING:
    import torch


class EngineKind(StrEnum):
    MAT = "mat"
    BIHARMONIC = "biharmonic"


@dataclass(frozen=True)
class EngineSpec:
    """Which engine to build.

    ``checkpoint``: a MAT checkpoint; None with ``kind`` MAT means the bundled demo model of ``task``.
    ``device``: a torch device name ("auto", "cpu", "cuda", "cuda:1", "mps") or None for auto; ``precision``
    the numeric format of MAT inference (``auto``: bf16 where the device computes it natively, see
    :mod:`linop_core.precision`). ``resolution`` is the biharmonic window side.
    ``random_weights_seed``: build the checkpoint's architecture with fresh weights from this seed instead of
    loading them (a negative control: what an untrained MAT makes). ``note`` says why this engine was chosen.
    """

    kind: EngineKind = EngineKind.MAT
    checkpoint: str | None = None
    task: Task | None = None
    device: str | None = None
    precision: Precision = Precision.AUTO
    batch_size: int = 8
    resolution: int = 256
    random_weights_seed: int | None = None
    note: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "kind", EngineKind(self.kind))  # frozen: normalise text to the enum
        if self.task is not None:
            object.__setattr__(self, "task", Task(self.task))
        object.__setattr__(self, "precision", parse_precision(self.precision))

    @classmethod
    def biharmonic(cls, resolution: int = 256, *, device: str | None = None, note: str = "") -> EngineSpec:
        return cls(EngineKind.BIHARMONIC, resolution=resolution, device=device, note=note)

    def dtype(self, device: torch.device | None = None) -> torch.dtype | None:
        """The dtype :func:`make_engine` runs this spec's MAT engine in (``precision`` on ``device``, default
        this spec's), found without loading a checkpoint; None for the biharmonic engine, which has none."""
        if self.kind is EngineKind.BIHARMONIC:
            return None
        return resolve_precision(self.precision, device if device is not None else pick_device(self.device))

    def resolved(self) -> EngineSpec:
        """This spec with the demo checkpoint filled in where a MAT spec names none (raises if absent)."""
        if self.kind is not EngineKind.MAT or self.checkpoint is not None:
            return self
        return replace(self, checkpoint=str(default_checkpoint(self.task)))


def default_checkpoint(task: Task | None) -> Path:
    """The bundled demo model of ``task``; :class:`LinopError` naming the fix when there is none."""
    if task is None:
        raise LinopError("the MAT engine needs a checkpoint (--model CHECKPOINT); or use the biharmonic engine")
    path = demo_model_path(Task(task))
    if path is None:
        raise LinopError(
            f"the MAT engine needs a checkpoint (--model CHECKPOINT): no bundled demo {task} model is installed; "
            "or use the biharmonic engine"
        )
    return path


def make_engine(spec: EngineSpec) -> Engine:
    """Build the engine ``spec`` describes (loading a checkpoint takes a while: call it off the GUI thread)."""
    if spec.kind is EngineKind.BIHARMONIC:
        pick_device(spec.device)  # a bad device name is still an error the user should see
        return BiharmonicEngine(resolution=spec.resolution)
    spec = spec.resolved()
    assert spec.checkpoint is not None
    path = Path(spec.checkpoint).expanduser()
    if not path.is_file():
        raise ModelError(path, "checkpoint file not found; pass an existing .pt or imported official checkpoint")
    device = pick_device(spec.device)
    options = {"device": device, "dtype": spec.dtype(device), "batch_size": spec.batch_size,
               "precision": str(spec.precision)}  # fmt: skip
    if spec.random_weights_seed is None:
        return MatEngine(path, **options)
    _, checkpoint = load_generator(path)
    untrained = build_generator(checkpoint.config, seed=spec.random_weights_seed).eval().requires_grad_(False)
    engine = MatEngine((untrained, checkpoint), **options)
    engine.checkpoint_sha256 = None  # these are not the file's weights
    return engine

