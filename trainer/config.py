"""Training configuration: dataclasses loaded from YAML, with type-checked ``--set a.b=c`` overrides.

A config file holds the sections below; every key is optional (the defaults are the paper's mammography
recipe). An unknown key, in the file or in an override, is an error that names the key.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Literal

from linop_core.loss_config import MatLossConfig
from trainer.configfile import ConfigError, build, derived_from, dump_yaml, read_yaml, set_overrides, to_plain

TaskKind = Literal["mammo-inpaint", "cxr-outpaint"]
SHIPPED_CONFIGS = ("mammo-inpaint", "cxr-outpaint", "smoke")


@dataclass
class PhantomConfig:
    """A phantom root made on the fly (by ``linop_core.phantom``) when ``data.root`` does not exist."""

    modality: Literal["mammo", "cxr"] = "mammo"
    n: int = 24
    seed: int = 0
    size: str = "small"


@dataclass
class DataConfig:
    """Where the images come from and how training samples (crop, hole, flip) are drawn."""

    task: TaskKind = "mammo-inpaint"
    root: str = "data/vindr-mammo"
    phantom: PhantomConfig | None = None
    resolution: int = 512
    split: str = "training"
    # mammo-inpaint: probability that a crop is centred (with a random shift) on a mass, else anywhere in
    # the breast; probability that a mass crop gets a lesion-shaped hole over its mass, else a MAT mask.
    mass_crop_prob: float = 0.5
    lesion_hole_prob: float = 0.5
    min_foreground: float = 0.5
    # cxr-outpaint: probability of an inverse mask (keep one box, generate everything around it), and the
    # kept box's side as a fraction of the image side.
    inverse_mask_prob: float = 0.5
    keep_box_range: tuple[float, float] = (0.2, 0.6)
    keep_margin: int = 0
    mask_hole_range: tuple[float, float] = (0.0, 1.0)
    mask_variant: Literal["large", "small"] = "large"
    xflip: bool = True
    # Which of the file's VOI windows to use (None: the first one, else a percentile window).
    window: int | None = None
    workers: int = 2
    cache_mb: int = 1024


@dataclass
class ModelConfig:
    """A preset of ``linop_core.model`` (optionally with MatConfig fields overridden) and initial weights."""

    preset: str = "mat-512-gray"
    overrides: dict[str, Any] | None = None
    init: str | None = None


@dataclass(frozen=True)
class LossConfig(MatLossConfig):
    """The ``loss`` section: :class:`~linop_core.losses.MatLossConfig` itself (a new loss setting is added there
    only), plus how the loop draws the generator's latents for the G loss.

    ``r1_interval`` is not a key here: lazy R1 runs every ``optim.d_reg_interval`` D steps, the interval that
    also corrects D's Adam settings (0 there: R1 on every step, no correction).
    """

    r1_interval: int = field(default=16, metadata=derived_from("optim.d_reg_interval"))
    truncation_psi: float = 0.5
    style_mixing_prob: float = 0.5


@dataclass
class OptimConfig:
    g_lr: float = 1e-3
    d_lr: float = 1e-3
    betas: tuple[float, float] = (0.0, 0.99)
    eps: float = 1e-8
    # The recipe has no G regulariser, but keeps StyleGAN2's G lazy-reg ratio (interval 4) in G's Adam
    # settings; 0 switches that correction off.
    g_reg_interval: int = 4
    d_reg_interval: int = 16


@dataclass
class TrainConfig:
    total_kimg: float = 1000.0
    batch: int = 32
    batch_gpu: int = 8
    ema_kimg: float = 10.0
    ema_rampup: float | None = None
    seed: int = 0
    # fp32 as in the MAT recipe (TF32 off unless ``tf32``), or bf16 autocast on GPU.
    precision: Literal["fp32", "bf16"] = "fp32"
    tf32: bool = False


@dataclass
class EvalConfig:
    """FID on a fixed validation set (fixed crops, masks, latents) every ``every_kimg``; 0 switches it off."""

    every_kimg: float = 40.0
    split: str = "test"
    num_images: int = 1000
    batch: int = 8
    seed: int = 123
    # "inception-v3" (torch-fidelity's FID Inception, weights from ``inception_weights`` or the torch hub
    # cache, never downloaded) or "randconv-<seed>" (a fixed random-init conv net: only comparable with
    # numbers carrying the same name).
    feature: str = "inception-v3"
    inception_weights: str | None = None


@dataclass
class LogConfig:
    tick_kimg: float = 4.0
    checkpoint_kimg: float = 4.0
    snapshot_kimg: float = 200.0
    image_kimg: float = 40.0
    image_count: int = 8
    tensorboard: bool = True


@dataclass
class Config:
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    log: LogConfig = field(default_factory=LogConfig)

    def __post_init__(self) -> None:
        self.loss = dataclasses.replace(self.loss, r1_interval=max(1, self.optim.d_reg_interval))

    def validate(self) -> None:
        """Cross-field checks that a type check cannot make."""
        t = self.train
        if t.batch < 1 or t.batch_gpu < 1:
            raise ConfigError("train.batch", "batch and batch_gpu must be >= 1")
        if t.total_kimg <= 0:
            raise ConfigError("train.total_kimg", "must be > 0")
        if self.data.resolution < 8:
            raise ConfigError("data.resolution", f"{self.data.resolution} is too small")
        for name in ("mass_crop_prob", "lesion_hole_prob", "inverse_mask_prob", "min_foreground"):
            value = getattr(self.data, name)
            if not 0.0 <= value <= 1.0:
                raise ConfigError(f"data.{name}", f"{value} is not a probability in [0, 1]")
        lo, hi = self.data.keep_box_range
        if not 0.0 < lo <= hi <= 1.0:
            raise ConfigError("data.keep_box_range", f"({lo}, {hi}) must satisfy 0 < lo <= hi <= 1")
        if self.eval.every_kimg > 0 and self.eval.num_images < 2:
            raise ConfigError("eval.num_images", "FID needs at least 2 images")
        if not (self.eval.feature == "inception-v3" or self.eval.feature.startswith("randconv-")):
            raise ConfigError("eval.feature", f"{self.eval.feature!r}: use 'inception-v3' or 'randconv-<seed>'")


# ---------------------------------------------------------------------------------------------------------------
# Reading, overriding and writing


def config_from_dict(values: dict[str, Any], where: str = "") -> Config:
    """Build a :class:`Config` from nested plain data (as read from YAML); unknown keys are errors."""
    if not isinstance(values, dict):
        raise ConfigError(where or "config", "expected a mapping of sections (data, model, loss, ...)")
    try:
        config = build(Config, values, "")
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc.where}" if where else exc.where, exc.reason) from None
    config.validate()
    return config


def config_to_dict(config: Any) -> dict[str, Any]:
    """Nested plain data (lists for tuples) that YAML and ``torch.load(weights_only=True)`` both accept."""
    return to_plain(config)


def apply_overrides(config: Config, overrides: list[str]) -> Config:
    """Apply ``a.b=c`` overrides; ``c`` is parsed as YAML (``null``, ``[1, 2]``, ``true``...)."""
    values = set_overrides(config_to_dict(config), overrides, example="train.batch=16")
    return config_from_dict(values, "--set")


def shipped_config_path(name: str) -> Path:
    """The path of a config shipped in ``trainer/configs`` (``mammo-inpaint``, ``cxr-outpaint``, ``smoke``)."""
    return Path(str(resources.files("trainer") / "configs" / f"{name}.yaml"))


def load_config(source: str | os.PathLike[str], overrides: list[str] | None = None) -> Config:
    """Read a config YAML file (or a shipped config by name) and apply overrides."""
    path, values = read_yaml(source, {name: shipped_config_path(name) for name in SHIPPED_CONFIGS})
    config = config_from_dict(values, str(path))
    return apply_overrides(config, overrides or [])


def dump_config(config: Config) -> str:
    return dump_yaml(config)
