"""MAT discriminator: two residual StyleGAN2-style discriminators, one for the final image (``Dis``, ``fc0``,
``fc1``) and a half-width one for the stage-1 image (``Dis_stg1``, ``fc0_stg1``, ``fc1_stg1``).

Both see [mask - 0.5, image] at full resolution (mask: 1 = known, 0 = hole). Key names equal the official ones.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from linop_core.errors import ModelError
from linop_core.model.config import MatConfig
from linop_core.model.layers import Conv2dLayer, FullyConnectedLayer, MinibatchStdLayer


class FromRGB(nn.Module):
    """1x1 conv with lrelu stored as ``.conv``: (B, I, H, W) -> (B, O, H, W)."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv = Conv2dLayer(in_channels, out_channels, 1, activation="lrelu")

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(x)


class DiscriminatorBlock(nn.Module):
    """Residual block: skip = 1x1 down x2 (no bias) * sqrt(0.5); main = conv 3x3, conv 3x3 down x2 * sqrt(0.5).

    Input (B, I, H, W) -> (B, O, H/2, W/2).
    """

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv0 = Conv2dLayer(in_channels, in_channels, 3, activation="lrelu")
        self.conv1 = Conv2dLayer(in_channels, out_channels, 3, activation="lrelu", down=2)
        self.skip = Conv2dLayer(in_channels, out_channels, 1, bias=False, down=2)

    def forward(self, x: Tensor) -> Tensor:
        gain = math.sqrt(0.5)
        return self.skip(x, gain=gain) + self.conv1(self.conv0(x), gain=gain)


def _trunk(in_channels: int, widths: list[int], mbstd_group_size: int, mbstd_channels: int) -> nn.Sequential:
    """FromRGB, DiscriminatorBlocks down to 4x4, minibatch stddev, conv 3x3. widths[i] is the width at the i-th
    resolution from the top; the last entry is the 4x4 width."""
    layers: list[nn.Module] = [FromRGB(in_channels, widths[0])]
    layers += [DiscriminatorBlock(widths[i], widths[i + 1]) for i in range(len(widths) - 1)]
    layers.append(MinibatchStdLayer(mbstd_group_size, mbstd_channels))
    layers.append(Conv2dLayer(widths[-1] + mbstd_channels, widths[-1], 3, activation="lrelu"))
    return nn.Sequential(*layers)


class Discriminator(nn.Module):
    """Scores (final image, stage-1 image) pairs.

    Input img (B, C, H, W), mask (B, 1, H, W), img_stage1 (B, C, H, W), H = W = design resolution
    -> (logits (B, 1), stage-1 logits (B, 1)).
    """

    def __init__(self, cfg: MatConfig) -> None:
        super().__init__()
        self.cfg = cfg
        top = cfg.resolution_log2
        widths = [cfg.d_channels(r) for r in range(top, 1, -1)]  # resolution 2**top ... 4
        in_channels = cfg.img_channels + 1
        c4 = widths[-1]
        self.Dis = _trunk(in_channels, widths, cfg.mbstd_group_size, cfg.mbstd_channels)
        self.fc0 = FullyConnectedLayer(c4 * 16, c4, activation="lrelu")
        self.fc1 = FullyConnectedLayer(c4, 1)
        half = [max(w // 2, 1) for w in widths]
        self.Dis_stg1 = _trunk(in_channels, half, cfg.mbstd_group_size, cfg.mbstd_channels)
        self.fc0_stg1 = FullyConnectedLayer(half[-1] * 16, half[-1], activation="lrelu")
        self.fc1_stg1 = FullyConnectedLayer(half[-1], 1)

    def forward(self, img: Tensor, mask: Tensor, img_stage1: Tensor) -> tuple[Tensor, Tensor]:
        cfg = self.cfg
        expected = (cfg.img_channels, cfg.resolution, cfg.resolution)
        if tuple(img.shape[1:]) != expected or img_stage1.shape != img.shape:
            raise ModelError(None, f"discriminator input {tuple(img.shape)} / {tuple(img_stage1.shape)} does not fit: "
                                   f"expected (B, {expected[0]}, {expected[1]}, {expected[2]}) for both images")
        m = mask - 0.5
        x = self.Dis(torch.cat([m, img], dim=1))
        logits = self.fc1(self.fc0(x.flatten(1)))
        x1 = self.Dis_stg1(torch.cat([m, img_stage1], dim=1))
        logits1 = self.fc1_stg1(self.fc0_stg1(x1.flatten(1)))
        return logits, logits1
