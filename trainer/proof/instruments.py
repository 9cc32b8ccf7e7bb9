"""The proof's measuring instruments: a small crop CNN (trained by :func:`trainer.classifier.fit_classifier`,
the loop the benchmark's classifier uses too), the classifier two-sample test, and FID with named features."""

from __future__ import annotations

import time

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from trainer.classifier import (
    ClassifierRecipe,
    LrSchedule,
    TensorBatches,
    fit_classifier,
    predict_classes,
    recalibrate_batchnorm,
)
from trainer.proof.results import ClassifierReport
from trainer.proof.settings import FEATURE_DIM, ProofSettings


class CropClassifier(nn.Module):
    """A small CNN for (B, 1, S, S) images in [0, 1]; ``features`` gives the 64-d penultimate layer."""

    def __init__(self, num_classes: int, width: int = 16) -> None:
        super().__init__()

        def block(cin: int, cout: int, stride: int) -> list[nn.Module]:
            return [nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU()]

        # stride 2 from the first layer: a few MFLOPs per 64 x 64 crop, so it trains in a minute on a busy CPU
        self.body = nn.Sequential(
            *block(1, width, 2), *block(width, 2 * width, 2), *block(2 * width, 2 * width, 1),
            *block(2 * width, 4 * width, 2), *block(4 * width, FEATURE_DIM, 2),
            nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        )
        self.head = nn.Linear(FEATURE_DIM, num_classes)

    def features(self, x: Tensor) -> Tensor:
        """(B, 1, S, S) in [0, 1] -> (B, 64)."""
        return self.body(x * 2.0 - 1.0)

    def forward(self, x: Tensor) -> Tensor:
        """(B, 1, S, S) in [0, 1] -> (B, num_classes) logits."""
        return self.head(self.features(x))


def train_crop_classifier(
    images: np.ndarray, labels: np.ndarray, num_classes: int, settings: ProofSettings, *, seed: int, name: str,
    augment_flips: bool = True, epochs: int | None = None,
) -> tuple[CropClassifier, ClassifierReport]:
    """Train :class:`CropClassifier` on (N, S, S) float images in [0, 1]; deterministic for a seed (CPU).

    One-cycle Adam for ``epochs`` (default ``settings.epochs``), then BatchNorm statistics recomputed over the
    training images; the order and the flips come from ``seed``, and so do the initial weights.
    """
    epochs = settings.epochs if epochs is None else epochs
    start = time.perf_counter()
    gen = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = CropClassifier(num_classes)
    x_all = torch.from_numpy(images.astype(np.float32))[:, None]
    y_all = torch.from_numpy(labels.astype(np.int64))
    recipe = ClassifierRecipe(epochs=epochs, lr=settings.lr, schedule=LrSchedule.ONE_CYCLE, hflip=augment_flips)
    fit_classifier(model, TensorBatches(x_all, y_all, settings.batch, gen), recipe, device=torch.device("cpu"),
                   generator=gen)
    recalibrate_batchnorm(model, x_all, settings.batch)
    model.eval().requires_grad_(False)
    accuracy = float((predict(model, images) == labels).mean())
    report = ClassifierReport(name, len(images), accuracy, time.perf_counter() - start)
    return model, report


def predict(model: CropClassifier, images: np.ndarray, batch: int = 64) -> np.ndarray:
    """Class indices for (N, S, S) images in [0, 1]."""
    return predict_classes(model, torch.from_numpy(images.astype(np.float32))[:, None], batch).numpy()


def two_sample_accuracy(real: np.ndarray, fake: np.ndarray, settings: ProofSettings, *, seed: int,
                        folds: int = 4) -> float:
    """Cross-validated accuracy of a fresh :class:`CropClassifier` separating ``real`` from ``fake`` crops.

    ``real[i]`` and ``fake[i]`` come from the same box, so they always fall in the same fold: the classifier
    never sees the place it is tested on. 0.5 means the two sets cannot be told apart.
    """
    n = len(real)
    order = np.random.default_rng([seed, n]).permutation(n)
    correct = 0
    for k in range(folds):
        test = order[k::folds]
        train = np.setdiff1d(order, test)
        if len(test) == 0 or len(train) < 2:
            continue
        x = np.concatenate([real[train], fake[train]])
        y = np.concatenate([np.ones(len(train), np.int64), np.zeros(len(train), np.int64)])
        model, _ = train_crop_classifier(x, y, 2, settings, seed=seed + k, name="two-sample")
        correct += int((predict(model, real[test]) == 1).sum() + (predict(model, fake[test]) == 0).sum())
    return correct / (2 * n)


class ClassifierFeatures(nn.Module):
    """torchmetrics FID feature extractor: (B, 3, H, W) in [0, 1] -> the classifier's 64-d penultimate layer."""

    def __init__(self, classifier: CropClassifier, side: int) -> None:
        super().__init__()
        self.classifier = classifier
        self.side = side
        self.num_features = FEATURE_DIM

    def forward(self, x: Tensor) -> Tensor:
        gray = x.float().mean(dim=1, keepdim=True)
        if gray.shape[-2:] != (self.side, self.side):
            gray = F.interpolate(gray, size=(self.side, self.side), mode="bilinear", antialias=True,
                                 align_corners=False)
        return self.classifier.features(gray)


def fid_scores(
    real: np.ndarray, fakes: dict[str, np.ndarray], features: dict[str, nn.Module]
) -> dict[str, dict[str, float]]:
    """FID of every fake set against ``real`` ((N, S, S) in [0, 1]), per named feature extractor."""
    from torchmetrics.image.fid import FrechetInceptionDistance

    def rgb(a: np.ndarray) -> Tensor:
        return torch.from_numpy(a.astype(np.float32))[:, None].expand(-1, 3, -1, -1)

    out: dict[str, dict[str, float]] = {}
    for name, extractor in features.items():
        metric = FrechetInceptionDistance(feature=extractor, reset_real_features=False, normalize=True)
        metric.update(rgb(real), real=True)
        out[name] = {}
        for source, images in fakes.items():
            metric.update(rgb(images), real=False)
            out[name][source] = float(metric.compute())
            metric.reset()
    return out


def randconv_features() -> tuple[str, nn.Module]:
    from trainer.fid import RandomConvFeatures

    net = RandomConvFeatures(0)
    return f"randconv-0-{net.num_features}", net
