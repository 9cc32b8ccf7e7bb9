"""MAT configurations and the named presets: plain data, a leaf that imports no other model module.

Presets:

- ``mat-512``: the paper's model (Places/CelebA-HQ 512), 3 channels. G 61,562,518 and D 36,231,618 parameters,
  the same parameter shapes and state-dict keys as the official release.
- ``mat-512-gray``: ``mat-512`` with one image channel, the default for X-ray and mammography.
- ``mat-256``: the official 256 build (CelebA-HQ 256): two head down-samplings, 10 ws.
- ``mat-small``: a narrow 256 model, single channel, trainable on a CPU in minutes (tests, demo model).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from linop_core.errors import ModelError


@dataclass(frozen=True)
class MatConfig:
    """Hyper-parameters of a MAT generator/discriminator pair.

    Stage-2 and discriminator widths follow the StyleGAN2 table: at resolution 2**r,
    ``channels = clip(channel_base / 2**r, 1, channel_max)``.
    """

    resolution: int = 512  # design resolution; inputs must be multiples of it (height and width separately)
    img_channels: int = 3
    z_dim: int = 512
    w_dim: int = 512
    mapping_layers: int = 8
    mapping_lr_multiplier: float = 0.01
    w_avg_beta: float = 0.995
    stage1_dim: int = 180  # channels of the whole first stage (tokens, head convs and decoder)
    stage1_heads: int = 6
    stage1_tokens: int = 64  # token grid side at the design resolution
    depths: tuple[int, ...] = (2, 3, 4, 3, 2)  # blocks per transformer stage (grid: T, T/2, T/4, T/2, T)
    windows: tuple[int, ...] = (8, 16, 16, 16, 8)
    mlp_ratio: float = 2.0
    channel_base: int = 32768  # stage-2 generator width table
    channel_max: int = 512
    d_channel_base: int = 32768  # discriminator width table
    d_channel_max: int = 512
    mbstd_group_size: int = 4
    mbstd_channels: int = 1

    def __post_init__(self) -> None:
        res_log2 = int(math.log2(self.resolution)) if self.resolution > 0 else 0
        tok_log2 = int(math.log2(self.stage1_tokens)) if self.stage1_tokens > 0 else 0
        problems = []
        if self.resolution < 32 or 2**res_log2 != self.resolution:
            problems.append(f"resolution {self.resolution} must be a power of two >= 32")
        if self.stage1_tokens < 8 or 2**tok_log2 != self.stage1_tokens or self.stage1_tokens >= self.resolution:
            problems.append(f"stage1_tokens {self.stage1_tokens} must be a power of two in [8, resolution)")
        if len(self.depths) != 5 or len(self.windows) != 5:
            problems.append("depths and windows need 5 entries (grid T, T/2, T/4, T/2, T)")
        if any(d < 1 for d in self.depths):
            problems.append("every depth must be >= 1")
        if self.stage1_dim % self.stage1_heads:
            problems.append(f"stage1_dim {self.stage1_dim} is not divisible by stage1_heads {self.stage1_heads}")
        if self.img_channels < 1 or self.mapping_layers < 1 or self.mbstd_group_size < 1:
            problems.append("img_channels, mapping_layers and mbstd_group_size must be >= 1")
        if problems:
            raise ModelError(None, "invalid MatConfig: " + "; ".join(problems))

    @property
    def resolution_log2(self) -> int:
        return int(math.log2(self.resolution))

    @property
    def num_ws(self) -> int:
        """Number of w vectors the mapping network broadcasts to (12 at 512, 10 at 256)."""
        return 2 * self.resolution_log2 - 6

    @property
    def bottleneck_tokens(self) -> int:
        """Token grid side at the transformer's bottleneck (16 for the official models)."""
        return self.stage1_tokens // 4

    def stage2_channels(self, res_log2: int) -> int:
        """Stage-2 generator width at resolution 2**res_log2."""
        return int(min(max(self.channel_base // 2**res_log2, 1), self.channel_max))

    def d_channels(self, res_log2: int) -> int:
        """Discriminator width at resolution 2**res_log2."""
        return int(min(max(self.d_channel_base // 2**res_log2, 1), self.d_channel_max))


def mat_512() -> MatConfig:
    """The paper's model: 512x512, 3 channels (61,562,518 G / 36,231,618 D parameters)."""
    return MatConfig()


def mat_512_gray() -> MatConfig:
    """``mat-512`` with a single image channel: the default for X-ray and mammography."""
    return MatConfig(img_channels=1)


def mat_256() -> MatConfig:
    """The official 256x256 build (two head down-samplings, 10 ws), 3 channels."""
    return MatConfig(resolution=256)


def mat_small() -> MatConfig:
    """A narrow single-channel 256 model for tests and the bundled CPU-trained demo.

    32x32 tokens of width 32 (2 heads), 8x8 windows, a 2-layer 128-d mapping network, stage-2 widths 8 (at 256)
    to 128 (at 16) and a discriminator capped at 128 channels: about 4.1 GFLOPs per 256x256 image.
    """
    return MatConfig(
        resolution=256, img_channels=1, z_dim=128, w_dim=128, mapping_layers=2,
        stage1_dim=32, stage1_heads=2, stage1_tokens=32, depths=(2, 2, 2, 2, 2), windows=(8, 8, 8, 8, 8),
        channel_base=2048, channel_max=128, d_channel_base=4096, d_channel_max=128,
    )


PRESETS: dict[str, Callable[[], MatConfig]] = {
    "mat-512": mat_512,
    "mat-512-gray": mat_512_gray,
    "mat-256": mat_256,
    "mat-small": mat_small,
}


def get_config(name: str) -> MatConfig:
    """The config of a named preset; raises :class:`ModelError` naming the choices for an unknown name."""
    try:
        return PRESETS[name]()
    except KeyError:
        raise ModelError(None, f"unknown model preset {name!r}; choose one of {', '.join(PRESETS)}") from None


def config_to_dict(cfg: MatConfig) -> dict[str, Any]:
    """Plain JSON/YAML-friendly dict (tuples become lists)."""
    return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(cfg).items()}


def config_from_dict(data: Mapping[str, Any]) -> MatConfig:
    """Inverse of :func:`config_to_dict`; missing fields take their defaults, unknown fields are an error."""
    known = {f.name for f in dataclasses.fields(MatConfig)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ModelError(None, f"unknown MatConfig field(s) {', '.join(unknown)}; the checkpoint needs a newer LINOP")
    values = {k: tuple(v) if isinstance(v, list) else v for k, v in data.items()}
    return MatConfig(**values)
