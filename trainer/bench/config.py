"""Benchmark configuration: YAML -> dataclasses, with type-checked ``--set a.b=c`` overrides.

One file describes one table of the paper: the task (``detect``: Table 1, ``classify``: Table 2), the data,
the grid (real-data portions x synthetic shares x seeds), the training recipe and the evaluation. Unknown
keys are errors naming the key. See ``trainer/bench/configs/*.yaml`` for annotated examples.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Literal

from trainer.configfile import ConfigError, build, coerce, dump_yaml, read_yaml, set_overrides, to_plain

Task = Literal["detect", "classify"]
SHIPPED = ("detect", "classify", "phantom-detect", "phantom-classify", "phantom-study-detect",
           "phantom-study-classify")
ALL = "all"  # a synthetic share meaning "the whole (leak-filtered) synthetic set"
PHANTOM_SOURCES = ("mat", "biharmonic", "copy-paste")  # synthetic sets the phantom presets can make


@dataclass
class DataSettings:
    """Real data, the synthetic set and how they are split and resized."""

    root: str = ""  # VinDr-Mammo root (detect) or VinDr-CXR root (classify)
    synthetic: str | None = None  # HDF5 set written by linop-export; needed for cells with a synthetic share
    # Several synthetic sets compared in one grid, by name (e.g. {mat: a.h5, biharmonic: b.h5}): every cell
    # with a synthetic share runs once per set. Replaces ``synthetic``.
    synthetic_sets: dict[str, str] | None = None
    synthetic_decisions: list[str] | None = None  # e.g. [approved]; null: every sample
    split_level: Literal["study", "image"] = "study"
    split_seed: int = 0  # fixed across training seeds, so every seed is tested on the same images
    fractions: tuple[float, float, float] = (0.8, 0.1, 0.1)
    image_size: int = 1333  # detect: longer side in pixels (boxes scaled); classify: square side
    normal_per_mass: float | None = None  # detect: normal images kept per mass image (null: all BI-RADS 1)
    include_normal_test: bool = True  # detect: normal test images count (their detections are false positives)
    multi: Literal["drop", "priority"] = "drop"  # classify: images with several of the 3 diseases
    cache_dir: str | None = None  # resized images are cached here as .npy (recommended for real data)


@dataclass
class GridSettings:
    portions: list[float] = field(default_factory=lambda: [1.0])  # shares of the real training split
    synthetic: list[float | str] = field(default_factory=lambda: [0.0, 0.5, 1.0])  # x real-train size, or "all"
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2])


@dataclass
class DetectTrainSettings:
    """SGD recipe of mmdetection's 1x schedule, counted in iterations."""

    iterations: int = 12000
    batch_size: int = 2
    lr: float = 0.005
    momentum: float = 0.9
    weight_decay: float = 1e-4
    warmup_iters: int = 500
    lr_steps: list[float] = field(default_factory=lambda: [0.667, 0.889])  # fractions of iterations; lr x 0.1
    eval_every: int = 1000  # validation mAP@50 every N iterations, best kept; 0: keep the last weights
    hflip: bool = True
    pretrained: bool = False  # ImageNet ResNet-50 backbone (from weights_file or torchvision's cache)
    weights_file: str | None = None
    num_workers: int = 2
    model: dict[str, Any] = field(default_factory=dict)  # CascadeConfig overrides (min_size/max_size are set)


@dataclass
class ClassifyTrainSettings:
    """CheXNet's recipe: Adam, lr divided by 10 when the validation loss plateaus, best validation loss kept."""

    epochs: int = 30
    # null: an epoch is one pass over the training set (CheXNet). A number: every epoch draws this many images
    # (whole passes in fresh orders, then part of one), so every cell takes the same number of steps whatever
    # its real portion and synthetic share: more data is then more variety, not more training.
    samples_per_epoch: int | None = None
    batch_size: int = 16
    lr: float = 1e-3
    weight_decay: float = 0.0
    plateau_patience: int = 2
    hflip: bool = True
    pretrained: bool = False  # ImageNet DenseNet121 (from weights_file or torchvision's cache)
    weights_file: str | None = None
    num_workers: int = 2


@dataclass
class EvalSettings:
    n_boot: int = 1000  # bootstrap resamples of the test set
    level: float = 0.95
    boot_seed: int = 0


@dataclass
class PhantomSettings:
    """Sizes for ``--preset phantom``: phantom VinDr data, then a synthetic set made by linop-export."""

    n: int = 30  # studies (mammo) or images (cxr)
    seed: int = 0  # the data seed: phantom images, synthetic sets and copy-paste donors all follow it
    synth_units: int = 30  # linop-export units (one synthetic image each)
    engine_resolution: int = 128  # biharmonic window side
    # Synthetic sets to make and compare: mat (the bundled demo model), biharmonic (same boxes, no learned
    # texture), copy-paste (real lesions pasted; see trainer.bench.copypaste). One entry: data.synthetic.
    sources: list[str] = field(default_factory=lambda: ["mat"])


@dataclass
class BenchConfig:
    task: Task = "detect"
    data: DataSettings = field(default_factory=DataSettings)
    grid: GridSettings = field(default_factory=GridSettings)
    train: DetectTrainSettings | ClassifyTrainSettings = field(default_factory=DetectTrainSettings)
    eval: EvalSettings = field(default_factory=EvalSettings)
    phantom: PhantomSettings | None = None
    device: str | None = None  # cpu, cuda, cuda:1; default: CUDA when present
    threads: int | None = None  # torch CPU threads

    def validate(self) -> None:
        if not all(0.0 < p <= 1.0 for p in self.grid.portions):
            raise ConfigError("grid.portions", f"{self.grid.portions}: each must be in (0, 1]")
        for s in self.grid.synthetic:
            if isinstance(s, str) and s != ALL:
                raise ConfigError("grid.synthetic", f"{s!r}: use a number >= 0 or {ALL!r}")
            if not isinstance(s, str) and s < 0:
                raise ConfigError("grid.synthetic", f"{s}: must be >= 0")
        if self.data.synthetic and self.data.synthetic_sets:
            raise ConfigError("data.synthetic_sets", "give either data.synthetic or data.synthetic_sets, not both")
        for name in self.data.synthetic_sets or {}:
            if not name or not all(c.isalnum() or c in "-_" for c in name):
                raise ConfigError("data.synthetic_sets", f"{name!r}: set names are letters, digits, '-' or '_'")
        if self.phantom is not None:
            unknown = [s for s in self.phantom.sources if s not in PHANTOM_SOURCES]
            if unknown or not self.phantom.sources or len(set(self.phantom.sources)) != len(self.phantom.sources):
                raise ConfigError("phantom.sources", f"{self.phantom.sources}: name each of "
                                  f"{', '.join(PHANTOM_SOURCES)} at most once")  # fmt: skip
        if not self.grid.seeds or not self.grid.portions or not self.grid.synthetic:
            raise ConfigError("grid", "portions, synthetic and seeds each need at least one entry")
        if self.data.image_size < 32:
            raise ConfigError("data.image_size", f"{self.data.image_size} is too small (>= 32)")
        if not 0.0 < self.eval.level < 1.0:
            raise ConfigError("eval.level", f"{self.eval.level} must be in (0, 1)")
        samples = getattr(self.train, "samples_per_epoch", None)
        if samples is not None and samples < 2:
            raise ConfigError("train.samples_per_epoch", f"{samples}: use null or at least 2 images")
        want = DetectTrainSettings if self.task == "detect" else ClassifyTrainSettings
        if not isinstance(self.train, want):
            raise ConfigError("train", f"task {self.task} needs {want.__name__} settings")

    def digest(self) -> str:
        """SHA-256 of what a cell's result depends on (not the grid, the evaluation, devices or workers)."""
        values = to_dict(self)
        train = {k: v for k, v in values["train"].items() if k != "num_workers"}
        data = {k: v for k, v in values["data"].items() if k != "cache_dir"}
        text = json.dumps({"task": self.task, "data": data, "train": train}, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()


# ---------------------------------------------------------------------------------------------------------------


def from_dict(values: dict[str, Any], where: str = "config") -> BenchConfig:
    """Build and validate a :class:`BenchConfig`; the ``train`` section's type follows ``task``."""
    if not isinstance(values, dict):
        raise ConfigError(where, "expected a mapping of sections (task, data, grid, train, eval)")
    values = dict(values)
    task = coerce(values.get("task", "detect"), Task, f"{where}: task")
    train_cls = DetectTrainSettings if task == "detect" else ClassifyTrainSettings
    train = build(train_cls, values.pop("train", None) or {}, f"{where}: train")
    config = build(BenchConfig, values, where)
    config.train = train
    if config.task == "classify" and "grid" not in values:
        config.grid = GridSettings(portions=[1.0, 0.5, 0.25, 0.125], synthetic=[0.0, ALL])
    config.validate()
    return config


def to_dict(config: Any) -> dict[str, Any]:
    return to_plain(config)


def apply_overrides(config: BenchConfig, overrides: list[str]) -> BenchConfig:
    """Apply ``a.b=c`` overrides; ``c`` is parsed as YAML (``null``, ``[1, 2]``, ``true``...)."""
    return from_dict(set_overrides(to_dict(config), overrides, example="train.iterations=100"), "--set")


def shipped_config_path(name: str) -> Path:
    return Path(str(resources.files("trainer.bench") / "configs" / f"{name}.yaml"))


def load_config(source: str | os.PathLike[str], overrides: list[str] | None = None) -> BenchConfig:
    """Read a config YAML file (or a shipped one by name: detect, classify, phantom-detect, phantom-classify)."""
    path, values = read_yaml(source, {name: shipped_config_path(name) for name in SHIPPED})
    return apply_overrides(from_dict(values, str(path)), overrides or [])


def dump_config(config: BenchConfig) -> str:
    return dump_yaml(config)
