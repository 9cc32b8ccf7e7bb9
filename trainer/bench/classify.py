"""One cell of Table 2: DenseNet121 on the 4-class VinDr-CXR task (real portion + optional out-painting set).

torchvision's DenseNet121 with a 4-way classifier; gray images are replicated to three channels and
normalised with the ImageNet mean and std (CheXNet's input convention). Recipe (``train:``): Adam, random
horizontal flips, lr divided by 10 when the validation loss stops falling, the weights with the lowest
validation loss are tested (the loop is :func:`trainer.classifier.fit_classifier`). Test softmax
probabilities are kept in the cell result for the bootstrap.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset, RandomSampler
from torchvision.models import densenet121

from linop_core.errors import ModelError
from linop_core.vindr import FOUR_CLASSES
from trainer.bench.config import ClassifyTrainSettings
from trainer.bench.data import BenchData, cell_training_set
from trainer.bench.metrics import accuracy, macro_auroc
from trainer.classifier import ClassifierRecipe, LrSchedule, fit_classifier

Progress = Callable[[int, int], None]
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# torchvision's DenseNet checkpoints use the old "norm.1" key style; this is torchvision's own remapping rule.
_OLD_KEY = re.compile(r"^(.*denselayer\d+\.(?:norm|relu|conv))\.((?:[12])\.(?:weight|bias|running_mean|running_var))$")


class GrayDenseNet121(nn.Module):
    """DenseNet121 for (B, 1, H, W) images in [0, 1] -> (B, 4) logits."""

    def __init__(self, num_classes: int = len(FOUR_CLASSES)) -> None:
        super().__init__()
        self.net = densenet121(weights=None)
        self.net.classifier = nn.Linear(self.net.classifier.in_features, num_classes)
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = (x.expand(-1, 3, -1, -1) - self.mean) / self.std
        return self.net(x)


def build_classifier(settings: ClassifyTrainSettings) -> tuple[GrayDenseNet121, str]:
    """The classifier and a sentence naming its initialisation (for the report)."""
    model = GrayDenseNet121()
    if not settings.pretrained:
        return model, "random initialisation (no ImageNet weights)"
    from torchvision.models import DenseNet121_Weights

    from linop_core.weights import resolve_weights_file

    path = resolve_weights_file(settings.weights_file, DenseNet121_Weights.IMAGENET1K_V1, what="the DenseNet121")
    state = torch.load(path, map_location="cpu", weights_only=True)
    state = {(_OLD_KEY.sub(r"\1\2", k) if _OLD_KEY.match(k) else k): v for k, v in state.items()}
    state = {k: v for k, v in state.items() if not k.startswith("classifier.")}
    missing, unexpected = model.net.load_state_dict(state, strict=False)
    if unexpected or any(not k.startswith("classifier.") for k in missing):
        raise ModelError(Path(path), "not a DenseNet121 ImageNet state dict; check train.weights_file")
    return model, f"ImageNet DenseNet121 ({Path(path).name})"


@torch.no_grad()
def predict(model: nn.Module, dataset: Dataset, device: torch.device, batch_size: int
            ) -> tuple[torch.Tensor, torch.Tensor, list[str], float]:  # fmt: skip
    """Softmax probabilities (N, 4), labels (N,), ids and the mean cross-entropy over ``dataset``."""
    model.eval()
    probs, labels, ids, loss_sum = [], [], [], 0.0
    for batch in DataLoader(dataset, batch_size=batch_size, shuffle=False):
        logits = model(batch["image"].to(device)).float()
        target = batch["label"].to(device)
        loss_sum += float(F.cross_entropy(logits, target, reduction="sum"))
        probs.append(logits.softmax(1).cpu())
        labels.append(batch["label"])
        ids.extend(str(i) for i in batch["id"])
    if not probs:
        return torch.zeros(0, len(FOUR_CLASSES)), torch.zeros(0, dtype=torch.int64), [], float("nan")
    return torch.cat(probs), torch.cat(labels), ids, loss_sum / len(ids)


def auroc_or_nan(probs: torch.Tensor, labels: torch.Tensor) -> float:
    """Macro one-vs-rest AUROC, NaN when a class has no positive or no negative (the AUROC is undefined)."""
    counts = torch.bincount(labels, minlength=probs.shape[1])
    if (counts == 0).any() or (counts == len(labels)).any():
        return float("nan")
    return macro_auroc(probs, labels)


def training_loader(dataset: Dataset, settings: ClassifyTrainSettings, generator: torch.Generator) -> DataLoader:
    """Shuffled training batches: one pass per epoch, or ``settings.samples_per_epoch`` images per epoch."""
    n_epoch = settings.samples_per_epoch or len(dataset)
    order: dict[str, Any] = {"shuffle": True, "generator": generator}
    if settings.samples_per_epoch is not None:
        # Without replacement: whole passes in fresh orders (then part of one) when an epoch outgrows the set.
        order = {"sampler": RandomSampler(dataset, num_samples=n_epoch, generator=generator)}
    return DataLoader(
        dataset,
        batch_size=settings.batch_size,
        num_workers=settings.num_workers,
        drop_last=n_epoch > settings.batch_size,  # BatchNorm needs more than one sample
        persistent_workers=settings.num_workers > 0,
        **order,
    )


def fit_cell_classifier(
    model: nn.Module,
    dataset: Dataset,
    val: Dataset,
    settings: ClassifyTrainSettings,
    device: torch.device,
    generator: torch.Generator,
    progress: Progress | None = None,
) -> list[dict[str, float]]:
    """Train in place for ``settings.epochs``; the weights with the lowest validation loss are loaded back."""
    loader = training_loader(dataset, settings, generator)
    recipe = ClassifierRecipe(epochs=settings.epochs, lr=settings.lr, schedule=LrSchedule.PLATEAU,
                              weight_decay=settings.weight_decay, plateau_patience=settings.plateau_patience,
                              hflip=settings.hflip)  # fmt: skip

    def validation_loss(trained: nn.Module) -> float:
        return predict(trained, val, device, settings.batch_size)[3]

    return fit_classifier(model, loader, recipe, device=device, generator=generator,
                          validation_loss=validation_loss if len(val) else None, progress=progress)  # fmt: skip


def run_classify_cell(
    data: BenchData,
    *,
    portion: float,
    synthetic_share: float | str,
    seed: int,
    source: str = "",
    settings: ClassifyTrainSettings,
    device: torch.device,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Train and test one (portion, synthetic share, seed) cell on synthetic set ``source``; returns its
    JSON-ready result."""
    cell = cell_training_set(data, portion, synthetic_share, seed, source)
    generator = torch.Generator().manual_seed(seed)
    started = time.monotonic()
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(seed)  # weight init draws from torch's global generator
        model, weights = build_classifier(settings)
        history = fit_cell_classifier(model, cell.dataset, data.val, settings, device, generator, progress)
    train_seconds = time.monotonic() - started
    probs, labels, ids, _ = predict(model, data.test, device, settings.batch_size)
    acc = accuracy(probs, labels) if len(labels) else float("nan")
    return {
        "metrics": {"accuracy": acc, "auroc": auroc_or_nan(probs, labels)},
        "n_real_train": cell.n_real,
        "n_synthetic_train": cell.n_synthetic,
        "synthetic_available": cell.synthetic_available,
        "backbone": weights,
        "train_seconds": round(train_seconds, 1),
        "history": history,
        "test": {
            "ids": ids,
            "labels": labels.tolist(),
            "probs": torch.round(probs, decimals=6).tolist(),
        },
    }
