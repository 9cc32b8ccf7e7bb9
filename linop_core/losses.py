"""Training losses of MAT: non-saturating GAN on both generator outputs, lazy R1, VGG-19 perceptual loss.

The formulas follow the official two-stage loss (see the MAT spec, section 4):

- generator: ``softplus(-D(x̂)) + softplus(-D₁(x̂₁)) + pcp_ratio · L_pcp(x̂, x)``;
- discriminator: ``softplus(D(x̂)) + softplus(D₁(x̂₁)) + softplus(-D(x)) + softplus(-D₁(x))``;
- R1: ``(γ/2)·‖∇ₓD(x)‖² + (γ/2)·‖∇ₓD₁(x)‖²`` on separate copies of the real image, applied lazily every
  ``interval`` discriminator steps and multiplied by ``interval``;
- perceptual: L1 between pre-ReLU VGG-19 conv4_4 (×1/4) and conv5_4 (×1/2) features of ImageNet-normalised
  [0, 1] images; grayscale images are replicated to three channels.

Not in the official recipe, off by default: ``hole_l1`` · (mean |x̂ - x| + mean |x̂₁ - x|) over the hole pixels.
MAT ties its fill to the ground truth only through the perceptual loss; a run without VGG-19 weights (the
CPU-trained demo models) has nothing else to pull the fill towards the masked content, and a few thousand
images are far too few for the adversarial term alone.

A discriminator here is any callable ``D(img, mask, img_stage1) -> (logit, logit_stage1)`` with logits (B, 1).
The VGG-19 weights are never downloaded: they come from a given file or from torchvision's cache directory.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from linop_core.errors import ModelError
from linop_core.loss_config import MatLossConfig
from linop_core.weights import resolve_weights_file, torchvision_cache_file

Discriminator = Callable[[Tensor, Tensor, Tensor], tuple[Tensor, Tensor]]

# Indices into torchvision's VGG-19 ``features``: the conv layers *before* their ReLU.
VGG19_CONV4_4 = 25
VGG19_CONV5_4 = 34
PERCEPTUAL_LAYER_WEIGHTS: dict[int, float] = {VGG19_CONV4_4: 0.25, VGG19_CONV5_4: 0.5}
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


# ----------------------------------------------------------------------------------------------------
# Adversarial losses


def generator_adversarial_loss(logits_fake: Tensor, logits_fake_stage1: Tensor) -> Tensor:
    """Non-saturating G loss on both discriminators: mean softplus(-D(x̂)) + mean softplus(-D₁(x̂₁)).

    Args:
        logits_fake: (B, 1) main-D logits of the final output.
        logits_fake_stage1: (B, 1) stage-1-D logits of the coarse output.
    Returns:
        scalar tensor.
    """
    return F.softplus(-logits_fake).mean() + F.softplus(-logits_fake_stage1).mean()


def discriminator_adversarial_loss(
    logits_real: Tensor, logits_real_stage1: Tensor, logits_fake: Tensor, logits_fake_stage1: Tensor
) -> Tensor:
    """Non-saturating D loss on both discriminators (the stage-1 D sees the real image as its "real").

    Returns the scalar mean softplus(D(x̂)) + softplus(D₁(x̂₁)) + softplus(-D(x)) + softplus(-D₁(x)).
    """
    return (
        F.softplus(logits_fake).mean()
        + F.softplus(logits_fake_stage1).mean()
        + F.softplus(-logits_real).mean()
        + F.softplus(-logits_real_stage1).mean()
    )


# ----------------------------------------------------------------------------------------------------
# R1


def r1_penalty(discriminator: Discriminator, real: Tensor, mask: Tensor, *, gamma: float) -> Tensor:
    """Batch mean of (γ/2)·(‖∇ₓD(x)‖² + ‖∇ₓD₁(x)‖²), with a graph for the D update.

    The two gradients are taken w.r.t. two separate copies of the real image (never w.r.t. the mask), as the
    official loss does.

    Args:
        discriminator: ``D(img, mask, img_stage1) -> (logit, logit_stage1)``.
        real: (B, C, H, W) real images in [-1, 1].
        mask: (B, 1, H, W), 1 = known pixel.
        gamma: R1 weight γ.
    Returns:
        scalar tensor.
    """
    real_main = real.detach().requires_grad_(True)
    real_stage1 = real.detach().requires_grad_(True)
    logits, logits_stage1 = discriminator(real_main, mask.detach(), real_stage1)
    outputs = [t.sum() for t in (logits, logits_stage1) if t.requires_grad]
    zeros = torch.zeros(real.shape[0], device=real.device, dtype=real.dtype)
    if not outputs:  # a D whose output depends on nothing learnable or on the input: no gradient at all
        return zeros.mean()
    grads = torch.autograd.grad(
        outputs=sum(outputs), inputs=[real_main, real_stage1], create_graph=True, allow_unused=True
    )
    penalty = zeros
    for grad in grads:
        if grad is not None:
            penalty = penalty + grad.square().sum(dim=[1, 2, 3])
    # ``logits * 0`` keeps every D parameter in the graph, which DistributedDataParallel requires.
    keep_in_graph = (logits.sum() + logits_stage1.sum()) * 0
    return (penalty * (gamma / 2)).mean() + keep_in_graph


@dataclass(frozen=True)
class LazyR1:
    """R1 applied every ``interval`` D steps and scaled by ``interval`` (StyleGAN2's lazy regularisation).

    gamma = 0 switches R1 off; interval = 1 applies it on every step.
    """

    gamma: float = 10.0
    interval: int = 16

    def __post_init__(self) -> None:
        if self.gamma < 0:
            raise ValueError(f"R1 gamma must be >= 0, got {self.gamma}")
        if self.interval < 1:
            raise ValueError(f"R1 interval must be >= 1, got {self.interval}")

    def due(self, d_step: int) -> bool:
        """True when the D step with index ``d_step`` (0-based) should run the R1 phase."""
        return self.gamma > 0 and d_step % self.interval == 0

    def loss(self, discriminator: Discriminator, real: Tensor, mask: Tensor) -> Tensor:
        """The R1 term to back-propagate in a regularisation step: interval · r1_penalty."""
        return r1_penalty(discriminator, real, mask, gamma=self.gamma) * self.interval

    @property
    def adam_ratio(self) -> float:
        """interval / (interval + 1): StyleGAN2's correction for the D optimizer's lr and betas."""
        return self.interval / (self.interval + 1)


# ----------------------------------------------------------------------------------------------------
# Perceptual loss


def vgg19_cache_path() -> Path:
    """torchvision's cache file of the ImageNet VGG-19: ``torch.hub.get_dir()/checkpoints/vgg19-*.pth``."""
    from torchvision.models import VGG19_Weights

    return torchvision_cache_file(VGG19_Weights.IMAGENET1K_V1)


def resolve_vgg19_weights(path: str | os.PathLike[str] | None = None) -> Path:
    """The VGG-19 weight file to use: ``path`` if given, else torchvision's cache file. Never downloads.

    Raises:
        ModelError: the file does not exist; the message names it and says how to provide it.
    """
    from torchvision.models import VGG19_Weights

    return resolve_weights_file(
        path,
        VGG19_Weights.IMAGENET1K_V1,
        what="the VGG-19 perceptual loss",
        alternative="or switch the perceptual loss off",
    )


def _vgg19_features(last_index: int) -> nn.Sequential:
    from torchvision.models.vgg import cfgs, make_layers

    features = make_layers(cfgs["E"], batch_norm=False)[: last_index + 1]
    for layer in features:
        if isinstance(layer, nn.ReLU):
            # In-place ReLUs would overwrite the pre-ReLU features we read out.
            layer.inplace = False
    return features


def load_vgg19_features(path: str | os.PathLike[str], last_index: int = VGG19_CONV5_4) -> nn.Sequential:
    """torchvision's VGG-19 ``features[: last_index + 1]`` with weights from ``path``, frozen, in eval mode.

    ``path`` holds a torchvision VGG-19 state dict (the classifier entries, if any, are ignored); it is read
    with ``weights_only=True``.
    """
    features = _vgg19_features(last_index)
    try:
        try:
            state = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        except RuntimeError:  # legacy (non-zip) files cannot be memory-mapped
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise ModelError(path, f"cannot read VGG-19 weights ({exc}); use torchvision's vgg19-*.pth") from exc
    if not isinstance(state, dict):
        raise ModelError(path, "not a VGG-19 state dict; use torchvision's vgg19-*.pth")
    wanted = {f"features.{name}": tensor for name, tensor in features.state_dict().items()}
    missing = sorted(k for k in wanted if k not in state)
    if missing:
        raise ModelError(path, f"not a VGG-19 state dict (missing {', '.join(missing[:3])}); "
                               "use torchvision's vgg19-*.pth")
    bad = [k for k, v in wanted.items() if tuple(state[k].shape) != tuple(v.shape)]
    if bad:
        raise ModelError(path, f"VGG-19 weights of the wrong shape ({bad[0]}); use torchvision's vgg19-*.pth")
    features.load_state_dict({k.removeprefix("features."): state[k].float() for k in wanted})
    features.eval().requires_grad_(False)
    return features


class VGG19PerceptualLoss(nn.Module):
    """L1 between pre-ReLU VGG-19 features: 1/4 · conv4_4 + 1/2 · conv5_4 (BasicSR's loss as MAT uses it).

    Inputs are images in [-1, 1] with 1 or 3 channels; 1-channel images are replicated to RGB. The target
    branch is detached. The network stays frozen and in eval mode even when the parent module trains.
    """

    def __init__(self, weights_path: str | os.PathLike[str] | None = None) -> None:
        super().__init__()
        self.weights_path = resolve_vgg19_weights(weights_path)
        self.features = load_vgg19_features(self.weights_path, max(PERCEPTUAL_LAYER_WEIGHTS))
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    def train(self, mode: bool = True) -> VGG19PerceptualLoss:
        super().train(mode)
        self.features.eval()
        return self

    def _prepare(self, img: Tensor) -> Tensor:
        if img.ndim != 4 or img.shape[1] not in (1, 3):
            raise ValueError(f"expected (B, 1 or 3, H, W) images, got shape {tuple(img.shape)}")
        if img.shape[1] == 1:
            img = img.expand(-1, 3, -1, -1)
        return ((img + 1) * 0.5 - self.mean) / self.std

    def _layer_outputs(self, img: Tensor) -> dict[int, Tensor]:
        outputs: dict[int, Tensor] = {}
        x = self._prepare(img)
        for index, layer in enumerate(self.features):
            x = layer(x)
            if index in PERCEPTUAL_LAYER_WEIGHTS:
                outputs[index] = x
        return outputs

    def forward(self, fake: Tensor, real: Tensor) -> Tensor:
        """Args: fake, real: (B, C, H, W) in [-1, 1], C in {1, 3}. Returns a scalar tensor."""
        fake_features = self._layer_outputs(fake)
        with torch.no_grad():
            real_features = self._layer_outputs(real.detach())
        loss = fake.new_zeros(())
        for index, weight in PERCEPTUAL_LAYER_WEIGHTS.items():
            loss = loss + weight * F.l1_loss(fake_features[index], real_features[index])
        return loss


# ----------------------------------------------------------------------------------------------------
# The two-stage MAT loss


def hole_l1_loss(fake: Tensor, real: Tensor, mask: Tensor) -> Tensor:
    """Mean |fake - real| over the hole pixels. fake / real: (B, C, H, W); mask (B, 1, H, W), 1 = keep.

    Averaged per hole pixel (not per image pixel), so small holes weigh as much as large ones; 0 when the
    batch has no hole.
    """
    hole = 1.0 - mask
    count = hole.sum() * fake.shape[1]
    return ((fake - real).abs() * hole).sum() / count.clamp(min=1.0)


@dataclass
class LossTerms:
    """A loss to back-propagate plus detached parts for logging (tensors: logging need not sync a GPU)."""

    total: Tensor
    parts: dict[str, Tensor]


class MatLoss(nn.Module):
    """MAT's two-stage GAN loss. Holds the perceptual network (if on); the models are passed per call."""

    def __init__(self, config: MatLossConfig) -> None:
        super().__init__()
        self.config = config
        self.r1 = LazyR1(gamma=config.r1_gamma, interval=config.r1_interval)
        self.perceptual = VGG19PerceptualLoss(config.vgg_weights) if config.uses_perceptual else None

    def generator_loss(
        self, discriminator: Discriminator, fake: Tensor, fake_stage1: Tensor, real: Tensor, mask: Tensor
    ) -> LossTerms:
        """G main loss. fake / fake_stage1 / real: (B, C, H, W) in [-1, 1]; mask (B, 1, H, W), 1 = keep."""
        logits, logits_stage1 = discriminator(fake, mask, fake_stage1)
        adversarial = generator_adversarial_loss(logits, logits_stage1)
        total = adversarial
        parts = {"G/adv": adversarial.detach(), "G/l1": (fake - real).detach().abs().mean()}
        if self.config.hole_l1 > 0:
            hole_l1 = hole_l1_loss(fake, real, mask) + hole_l1_loss(fake_stage1, real, mask)
            total = total + self.config.hole_l1 * hole_l1
            parts["G/hole_l1"] = hole_l1.detach()
        if self.perceptual is not None:
            pcp = self.perceptual(fake, real)
            total = total + self.config.pcp_ratio * pcp
            parts["G/pcp"] = pcp.detach()
        parts["G/total"] = total.detach()
        return LossTerms(total, parts)

    def discriminator_loss(
        self, discriminator: Discriminator, fake: Tensor, fake_stage1: Tensor, real: Tensor, mask: Tensor
    ) -> LossTerms:
        """D main loss on detached fakes and the real image (the stage-1 D gets the real image as real)."""
        logits_fake, logits_fake_stage1 = discriminator(fake.detach(), mask, fake_stage1.detach())
        logits_real, logits_real_stage1 = discriminator(real.detach(), mask, real.detach())
        total = discriminator_adversarial_loss(
            logits_real, logits_real_stage1, logits_fake, logits_fake_stage1
        )
        parts = {
            "D/total": total.detach(),
            "D/logit_real": logits_real.detach().mean(),
            "D/logit_fake": logits_fake.detach().mean(),
        }
        return LossTerms(total, parts)

    def r1_due(self, d_step: int) -> bool:
        return self.r1.due(d_step)

    def r1_loss(self, discriminator: Discriminator, real: Tensor, mask: Tensor) -> LossTerms:
        """The lazy-R1 term (already multiplied by the interval)."""
        total = self.r1.loss(discriminator, real, mask)
        return LossTerms(total, {"D/r1": total.detach() / self.r1.interval})
