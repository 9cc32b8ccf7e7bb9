"""Training an image classifier with cross-entropy and Adam: the one loop behind the realism proof's small CNNs
(:mod:`trainer.proof`) and the benchmark's DenseNet121 (:mod:`trainer.bench.classify`).

The caller passes the model, its batches (mappings with an ``image`` (B, C, H, W) and a ``label`` (B,) tensor)
and the ``torch.Generator`` that draws the flips (and, through the batches, the order), so a run is a function
of the caller's seeds. The two recipes differ only in :class:`ClassifierRecipe`: the proof uses a one-cycle
learning rate over a fixed number of epochs, the benchmark CheXNet's lr / 10 on a validation-loss plateau
and keeps the weights with the lowest validation loss.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Protocol

import torch
import torch.nn.functional as F
from torch import Tensor, nn

Batch = Mapping[str, Tensor]
Progress = Callable[[int, int], None]


class LrSchedule(Enum):
    ONE_CYCLE = "one-cycle"  # OneCycleLR peaking at ``lr``, stepped after every batch
    PLATEAU = "plateau"  # lr / 10 when the validation loss has not fallen for ``plateau_patience`` epochs


@dataclass(frozen=True)
class ClassifierRecipe:
    epochs: int
    lr: float
    schedule: LrSchedule
    weight_decay: float = 0.0
    plateau_patience: int = 2
    hflip: bool = True  # random horizontal flips, drawn from the caller's generator


class Batches(Protocol):
    """What :func:`fit_classifier` iterates once per epoch; ``len`` is the number of batches in an epoch."""

    def __iter__(self) -> Iterator[Batch]: ...

    def __len__(self) -> int: ...


class TensorBatches:
    """Batches of in-memory images and labels in a fresh order from ``generator`` on every pass.

    A batch of fewer than ``min_batch`` images (only the last can be) is skipped, because BatchNorm needs two
    samples; ``len`` still counts it, so a schedule's length does not depend on the remainder.
    """

    def __init__(self, images: Tensor, labels: Tensor, batch_size: int, generator: torch.Generator,
                 min_batch: int = 2) -> None:  # fmt: skip
        self.images, self.labels = images, labels
        self.batch_size = batch_size
        self.generator = generator
        self.min_batch = min_batch

    def __len__(self) -> int:
        return max(1, math.ceil(len(self.images) / self.batch_size))

    def __iter__(self) -> Iterator[Batch]:
        order = torch.randperm(len(self.images), generator=self.generator)
        for start in range(0, len(order), self.batch_size):
            idx = order[start : start + self.batch_size]
            if len(idx) < self.min_batch:
                continue
            yield {"image": self.images[idx], "label": self.labels[idx]}


def fit_classifier(
    model: nn.Module,
    batches: Batches,
    recipe: ClassifierRecipe,
    *,
    device: torch.device,
    generator: torch.Generator,
    validation_loss: Callable[[nn.Module], float] | None = None,
    progress: Progress | None = None,
) -> list[dict[str, float]]:
    """Train ``model`` in place on ``device``; returns ``{"epoch", "loss"[, "val_loss"]}`` per epoch.

    With ``validation_loss`` (the mean loss of a model on held-out data, called after every epoch) the weights
    with the lowest validation loss are loaded back at the end.
    """
    model.to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=recipe.lr, weight_decay=recipe.weight_decay)
    total = recipe.epochs * len(batches)
    one_cycle = (torch.optim.lr_scheduler.OneCycleLR(optimizer, recipe.lr, total_steps=total)
                 if recipe.schedule is LrSchedule.ONE_CYCLE else None)  # fmt: skip
    plateau = (torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, factor=0.1, patience=recipe.plateau_patience)
               if recipe.schedule is LrSchedule.PLATEAU else None)  # fmt: skip
    history: list[dict[str, float]] = []
    best: tuple[float, dict[str, Tensor]] | None = None
    step = 0
    for epoch in range(recipe.epochs):
        model.train()
        losses = []
        for batch in batches:
            images = batch["image"].to(device)
            if recipe.hflip:
                flip = (torch.rand(len(images), generator=generator) < 0.5).to(device)
                images = torch.where(flip.view(-1, 1, 1, 1), images.flip(-1), images)
            loss = F.cross_entropy(model(images), batch["label"].to(device))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            if one_cycle is not None:
                one_cycle.step()
            losses.append(float(loss.detach()))
            step += 1
            if progress is not None:
                progress(step, total)
        record: dict[str, float] = {"epoch": epoch + 1, "loss": sum(losses) / max(len(losses), 1)}
        if validation_loss is not None:
            val_loss = validation_loss(model)
            record["val_loss"] = val_loss
            if plateau is not None:
                plateau.step(val_loss)
            if best is None or val_loss < best[0]:
                best = (val_loss, copy.deepcopy({k: v.detach().cpu() for k, v in model.state_dict().items()}))
        history.append(record)
    if best is not None:
        model.load_state_dict(best[1])
    return history


@torch.no_grad()
def recalibrate_batchnorm(model: nn.Module, images: Tensor, batch_size: int) -> None:
    """Exact BatchNorm statistics of the final weights over ``images``: after a few hundred steps the running
    averages lag far behind, which would make eval mode disagree with what was trained."""
    norms = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    for norm in norms:
        norm.reset_running_stats()
        norm.momentum = None  # cumulative average over the pass below
    model.train()
    for start in range(0, len(images), batch_size):
        model(images[start : start + batch_size])
    for norm in norms:
        norm.momentum = 0.1


@torch.no_grad()
def predict_classes(model: nn.Module, images: Tensor, batch_size: int = 64) -> Tensor:
    """Class indices (N,) of ``model`` (in its current mode) for (N, C, H, W) images."""
    out = [model(images[start : start + batch_size]).argmax(1) for start in range(0, len(images), batch_size)]
    return torch.cat(out) if out else torch.zeros(0, dtype=torch.int64)
