"""Fréchet Inception Distance through torchmetrics, with weights that are never downloaded.

Two feature extractors, named in every number they produce:

- ``inception-v3``: torchmetrics' default, torch-fidelity's ``FeatureExtractorInceptionV3`` (2048-d pool3),
  i.e. the standard FID. Its weights file ``weights-inception-2015-12-05-6726825d.pth`` comes from
  ``eval.inception_weights`` or the torch hub cache (``torch.hub.get_dir()/checkpoints/``); without it the
  run fails at start with a message naming the file. Needs the ``torch-fidelity`` package.
- ``randconv-<seed>``: a small fixed, randomly initialised conv net (64-d), seeded by ``<seed>``. It needs
  no weights; its numbers are only comparable with numbers of the same name (smoke tests, laptops).

Images enter as (B, 1 or 3, H, W) tensors in [-1, 1]; gray images are replicated to RGB.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from linop_core.errors import LinopError, ModelError
from linop_core.weights import resolve_local_weights

INCEPTION_FILENAME = "weights-inception-2015-12-05-6726825d.pth"
INCEPTION_URL = f"https://github.com/toshas/torch-fidelity/releases/download/v0.2.0/{INCEPTION_FILENAME}"
INCEPTION_NAME = "inception-v3"
RANDCONV_PREFIX = "randconv-"


def resolve_inception_weights(path: str | os.PathLike[str] | None) -> Path:
    """The FID Inception weight file: ``path`` if given, else the torch hub cache. Never downloads.

    Raises:
        ModelError: the file is missing; the message names it, where to get it, and the alternatives.
    """
    return resolve_local_weights(
        path,
        filename=INCEPTION_FILENAME,
        url=INCEPTION_URL,
        what="FID (torch-fidelity's Inception-v3; or set eval.inception_weights)",
        alternative="or use eval.feature=randconv-0 (not comparable with published FIDs), "
        "or eval.every_kimg=0 to switch FID off",
    )


class RandomConvFeatures(nn.Module):
    """A fixed random conv net, 64-d features: the documented weight-free FID stand-in.

    Input: (B, 3, H, W) float in [0, 1], resized to 64×64. The weights depend only on ``seed`` (and the
    architecture below), so the same name always means the same features.
    """

    num_features = 64

    def __init__(self, seed: int) -> None:
        super().__init__()
        self.seed = int(seed)
        self.net = nn.Sequential(
            nn.Conv2d(3, 32, 3, stride=2, padding=1),
            nn.LeakyReLU(0.2),
            nn.Conv2d(32, 64, 3, stride=2, padding=1),
            nn.LeakyReLU(0.2),
            nn.Conv2d(64, self.num_features, 3, stride=2, padding=1),
            nn.LeakyReLU(0.2),
        )
        generator = torch.Generator().manual_seed(self.seed)
        with torch.no_grad():
            for module in self.net:
                if isinstance(module, nn.Conv2d):
                    fan_in = module.in_channels * module.kernel_size[0] * module.kernel_size[1]
                    module.weight.copy_(torch.randn(module.weight.shape, generator=generator) / fan_in**0.5)
                    module.bias.zero_()
        self.requires_grad_(False)
        self.eval()

    def train(self, mode: bool = True) -> RandomConvFeatures:
        return super().train(False)

    def forward(self, x: Tensor) -> Tensor:
        """(B, 3, H, W) in [0, 1] -> (B, 64)."""
        x = F.interpolate(x.float(), size=(64, 64), mode="bilinear", antialias=True, align_corners=False)
        return self.net(x * 2 - 1).mean(dim=(2, 3))


def parse_feature(feature: str) -> tuple[str, int | None]:
    """("inception-v3", None) or ("randconv", seed); raises LinopError for anything else."""
    if feature == INCEPTION_NAME:
        return INCEPTION_NAME, None
    if feature.startswith(RANDCONV_PREFIX):
        try:
            return "randconv", int(feature.removeprefix(RANDCONV_PREFIX))
        except ValueError:
            pass
    raise LinopError(f"eval.feature {feature!r}: use '{INCEPTION_NAME}' or '{RANDCONV_PREFIX}<seed>'")


class FidEvaluator:
    """torchmetrics FID whose real statistics are kept across evaluations (the validation set is fixed).

    In a process group, every rank adds its share of images and :meth:`compute` syncs the sums, so every rank
    gets the same number.
    """

    def __init__(self, feature: str, inception_weights: str | None, device: torch.device) -> None:
        kind, seed = parse_feature(feature)
        # Check the weights before the (slow) torchmetrics import: a missing file fails the run at once.
        weights = resolve_inception_weights(inception_weights) if kind == INCEPTION_NAME else None
        from torchmetrics.image.fid import FrechetInceptionDistance

        self.device = device
        if weights is not None:
            try:
                self.metric = FrechetInceptionDistance(
                    feature=2048, reset_real_features=False, feature_extractor_weights_path=str(weights)
                )
            except ModuleNotFoundError as exc:
                raise LinopError(
                    f"FID with {INCEPTION_NAME} needs the torch-fidelity package ({exc}); "
                    "pip install torch-fidelity, or set eval.feature=randconv-0"
                ) from exc
            except Exception as exc:
                raise ModelError(weights, f"cannot load the FID Inception weights ({exc})") from exc
            self.uint8_input = True
            self.name = f"{INCEPTION_NAME}-2048"
        else:
            assert seed is not None
            self.metric = FrechetInceptionDistance(feature=RandomConvFeatures(seed), reset_real_features=False)
            self.uint8_input = False
            self.name = f"{RANDCONV_PREFIX}{seed}-{RandomConvFeatures.num_features}"
        self.metric = self.metric.to(device)
        self.real_count = 0

    def _prepare(self, images: Tensor) -> Tensor:
        if images.ndim != 4 or images.shape[1] not in (1, 3):
            raise ValueError(f"expected (B, 1 or 3, H, W) images, got {tuple(images.shape)}")
        unit = ((images.detach().float() + 1) * 0.5).clamp(0, 1)
        if unit.shape[1] == 1:
            unit = unit.expand(-1, 3, -1, -1)
        unit = unit.to(self.device)
        if self.uint8_input:
            return (unit * 255).round().to(torch.uint8)
        return unit

    @torch.no_grad()
    def add_real(self, images: Tensor) -> None:
        self.metric.update(self._prepare(images), real=True)
        self.real_count += images.shape[0]

    @torch.no_grad()
    def add_fake(self, images: Tensor) -> None:
        self.metric.update(self._prepare(images), real=False)

    def compute(self) -> float:
        """FID between everything added as real and the fakes added since the last compute."""
        value = float(self.metric.compute().item())
        self.metric.reset()  # keeps the real statistics (reset_real_features=False)
        return value
