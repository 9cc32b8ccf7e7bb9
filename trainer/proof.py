"""Proof that the bundled demo models do their job, measured on freshly rendered, held-out phantoms.

``python -m trainer.proof --out docs/demo`` (models default to the bundled ones, see
:func:`linop_core.demo_models.demo_model_path`) writes ``proof.json``, ``proof.md`` and ``examples.png``.

Inpainting (mammography). Each test case is one phantom mammogram rendered twice from the same seed, with and
without masses (the renderer draws masses from their own stream, so every pixel more than a pixel or two
outside the mass boxes is the same in both). That gives, for one box: the real mass, the normal tissue under
it, and the box to inpaint.
A small CNN (:class:`CropClassifier`) is trained on mass versus normal crops of *other* phantoms (the same
pairing, so only the presence of a mass separates the classes) and then scores, on the held-out cases:
real masses, normal tissue, MAT-inpainted boxes and biharmonic-inpainted boxes. A crop is the window
``inpaint_lesion`` gives the model (``synthesis.crop_window``, context 2, the engine's resolution), resized to
64 x 64. Reported: the share of each called "mass" (target: MAT >= 80 %, biharmonic <= 20 %), and the same
share for a negative control, the same MAT architecture with untrained weights ("mat-untrained"): a measure
that calls the control's blobs masses would not tell a lesion from any bright fill. A stricter measure
follows: a classifier two-sample test (cross-validated accuracy of a fresh CNN telling real masses from each
engine's fills at the same boxes; 50 % = indistinguishable).

Outpainting (chest X-ray). A 4-class CNN (normal, pleural effusion, pneumothorax, pneumonia) is trained on
whole phantom chest X-rays resized to 128 x 128; held-out abnormal phantoms are outpainted around their
finding boxes (``outpaint_around``, margin 16 px) and classified again. Reported: the share that keeps the
source label (target >= 80 %) and the mean absolute difference to the source over the fully regenerated
pixels (window units, [0, 1]): well above zero means the model did not copy the source.

FID of each engine against the real images, with two named feature extractors: the proof classifier's
penultimate layer (``proof-mass-cnn-64`` / ``proof-cxr-cnn-64``: trained here, on phantoms) and the trainer's
weight-free ``randconv-0-64`` (``trainer.fid``). Sample counts are small (tens to ~200), so FIDs are biased
upward and only comparable within one run.

``--cache DIR`` keeps every rendered phantom set (most of the run time; none depends on the models) for later
runs.

Windows: each rendered image gets the window the phantom DICOM writer would store (0.5-99.5 percentile of the
body part, widened by 5 %), i.e. what the trainer saw, and that window is passed to the synthesis requests.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from linop_core.dicom import VoiWindow, apply_window
from linop_core.engines import BiharmonicEngine, Engine, MatEngine
from linop_core.errors import LinopError
from linop_core.fileio import atomic_open, atomic_write_text
from linop_core.masks import box_hole
from linop_core.phantom import CXR_FINDINGS, DENSITIES, MASS_SHAPES, MassSpec, render_cxr, render_mammogram
from linop_core.phantom.dicom_writer import vendor_windows
from linop_core.synthesis import InpaintRequest, OutpaintRequest, crop_window, inpaint_lesion, outpaint_around

Box = tuple[float, float, float, float]
Stage = Callable[[str], None]

MASS_CROP_SIDE = 64
CXR_SIDE = 128
CONTEXT = 2.0
OUTPAINT_MARGIN = 16.0
FEATURE_DIM = 64
# Stream ids so that the classifier's training phantoms and the held-out phantoms never share a seed.
_TRAIN_STREAM, _TEST_STREAM, _CXR_TRAIN_STREAM, _CXR_TEST_STREAM, _ENGINE_STREAM = range(5)


@dataclass(frozen=True)
class ProofSettings:
    """Sizes of the proof's phantom sets and of its classifiers' training."""

    seed: int = 0
    mammo_shape: tuple[int, int] = (880, 704)  # a 'small' VinDr-Mammo phantom (rows, cols)
    cxr_shape: tuple[int, int] = (640, 544)  # a 'small' VinDr-CXR phantom
    mass_size_range: tuple[float, float] = (0.035, 0.10)  # box side / image height of the masses drawn here
    train_cases: int = 60  # mammogram pairs (with / without masses) for the mass classifier
    test_cases: int = 50  # held-out pairs: real masses, normal tissue, and the boxes to inpaint
    masses_per_case: tuple[int, int] = (1, 2)
    train_jitter: int = 3  # jittered crops per training box and class
    # 30 per class (and 15 epochs) gave a 4-class classifier right on only 81 % of real held-out phantoms:
    # too weak an instrument to measure an 80 % label-keeping target with
    cxr_train_per_class: int = 100
    cxr_test_per_class: int = 30
    epochs: int = 15  # mass classifier
    cxr_epochs: int = 30
    batch: int = 32
    lr: float = 2e-3


@dataclass
class ClassifierReport:
    name: str
    train_images: int
    train_accuracy: float
    seconds: float


@dataclass
class InpaintResult:
    boxes: int
    mass_share: dict[str, float]  # source -> share called "mass": real, normal, <engine names>
    fid: dict[str, dict[str, float]]  # feature name -> source -> FID against the real masses
    classifier: ClassifierReport
    box_side_px: tuple[float, float]  # min, max side of the evaluated boxes (source pixels)
    target_mat: bool
    target_biharmonic: bool
    # engine -> cross-validated accuracy of a classifier telling real masses from that engine's fills at the
    # same boxes (a classifier two-sample test: 0.5 = indistinguishable, 1.0 = always told apart)
    two_sample_accuracy: dict[str, float] = field(default_factory=dict)


@dataclass
class OutpaintResult:
    images: int
    real_accuracy: float  # 4-class accuracy on all held-out phantoms (normal included)
    label_kept: dict[str, float]  # engine -> share of outpainted images that keep the source label
    regenerated_mad: dict[str, float]  # engine -> mean |result - source| over fully regenerated pixels
    fid: dict[str, dict[str, float]]  # feature name -> engine -> FID against the held-out abnormal sources
    classifier: ClassifierReport
    target_label: bool


@dataclass
class ProofResult:
    settings: dict[str, Any]
    inpaint_model: str
    outpaint_model: str
    inpaint_sha256: str | None = None
    outpaint_sha256: str | None = None
    inpaint: InpaintResult | None = None
    outpaint: OutpaintResult | None = None
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)


# ----------------------------------------------------------------------------------------------- classifier


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


def train_classifier(
    images: np.ndarray, labels: np.ndarray, num_classes: int, settings: ProofSettings, *, seed: int, name: str,
    augment_flips: bool = True, epochs: int | None = None,
) -> tuple[CropClassifier, ClassifierReport]:
    """Train :class:`CropClassifier` on (N, S, S) float images in [0, 1]; deterministic for a seed (CPU).
    ``epochs`` defaults to ``settings.epochs``."""
    epochs = settings.epochs if epochs is None else epochs
    start = time.perf_counter()
    gen = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = CropClassifier(num_classes)
    x_all = torch.from_numpy(images.astype(np.float32))[:, None]
    y_all = torch.from_numpy(labels.astype(np.int64))
    opt = torch.optim.Adam(model.parameters(), lr=settings.lr)
    steps_per_epoch = max(1, math.ceil(len(x_all) / settings.batch))
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, settings.lr, total_steps=epochs * steps_per_epoch)
    model.train()
    for _ in range(epochs):
        order = torch.randperm(len(x_all), generator=gen)
        for i in range(0, len(order), settings.batch):
            idx = order[i : i + settings.batch]
            if len(idx) < 2:  # BatchNorm needs two samples
                continue
            x, y = x_all[idx], y_all[idx]
            if augment_flips:
                flip = torch.rand(len(idx), generator=gen) < 0.5
                x = torch.where(flip[:, None, None, None], x.flip(-1), x)
            loss = F.cross_entropy(model(x), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
    _recalibrate_batchnorm(model, x_all, settings.batch)
    model.eval().requires_grad_(False)
    accuracy = float((predict(model, images) == labels).mean())
    report = ClassifierReport(name, len(images), accuracy, time.perf_counter() - start)
    return model, report


@torch.no_grad()
def _recalibrate_batchnorm(model: nn.Module, images: Tensor, batch: int) -> None:
    """Exact BatchNorm statistics of the final weights: the running averages lag far behind after a few
    hundred steps, which would make eval mode disagree with what was trained."""
    norms = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    for norm in norms:
        norm.reset_running_stats()
        norm.momentum = None  # cumulative average over the pass below
    model.train()
    for i in range(0, len(images), batch):
        model(images[i : i + batch])
    for norm in norms:
        norm.momentum = 0.1


@torch.no_grad()
def predict(model: CropClassifier, images: np.ndarray, batch: int = 64) -> np.ndarray:
    """Class indices for (N, S, S) images in [0, 1]."""
    out = [model(torch.from_numpy(images[i : i + batch].astype(np.float32))[:, None]).argmax(1)
           for i in range(0, len(images), batch)]
    return torch.cat(out).numpy() if out else np.zeros(0, dtype=np.int64)


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


def _randconv_features() -> tuple[str, nn.Module]:
    from trainer.fid import RandomConvFeatures

    net = RandomConvFeatures(0)
    return f"randconv-0-{net.num_features}", net


# ----------------------------------------------------------------------------------------------- phantoms


def writer_window(pixels: np.ndarray, foreground: np.ndarray) -> VoiWindow:
    """The first window the phantom DICOM writer stores (what ``linop-train`` decodes phantoms with)."""
    (center,), (width,) = vendor_windows(pixels, foreground, 1)
    return VoiWindow(center=float(center), width=float(width))


def _resize(image: np.ndarray, side: int) -> np.ndarray:
    t = torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32))[None, None]
    return F.interpolate(t, size=(side, side), mode="bilinear", antialias=True, align_corners=False)[0, 0].numpy()


def _sample_mass(rng: np.random.Generator, size_range: tuple[float, float]) -> MassSpec:
    lo, hi = size_range
    return MassSpec(
        shape=MASS_SHAPES[int(rng.integers(len(MASS_SHAPES)))],
        depth=float(rng.uniform(0.3, 0.78)),
        lateral=float(rng.uniform(-0.8, 0.8)),
        size=float(np.clip(rng.lognormal(np.log(0.066), 0.3), lo, hi)),
        contrast=float(rng.uniform(0.1, 0.25)),
        birads=int(rng.choice([3, 4, 5])),
    )


@dataclass(frozen=True)
class MammoPair:
    """One phantom rendered with and without masses: same anatomy, identical pixels away from the boxes."""

    normal: np.ndarray  # uint16 (H, W)
    with_mass: np.ndarray  # uint16 (H, W)
    boxes: tuple[Box, ...]
    window_normal: VoiWindow
    window_mass: VoiWindow


def render_pair(seed: Sequence[int], settings: ProofSettings) -> MammoPair:
    choice = np.random.default_rng([*seed, 0])
    side = ("L", "R")[int(choice.integers(2))]
    view = ("CC", "MLO")[int(choice.integers(2))]
    density = DENSITIES[int(choice.integers(len(DENSITIES)))]
    lo, hi = settings.masses_per_case
    masses = [_sample_mass(choice, settings.mass_size_range) for _ in range(int(choice.integers(lo, hi + 1)))]
    h, w = settings.mammo_shape
    kwargs = {"laterality": side, "view": view, "density": density, "height": h, "width": w}
    normal = render_mammogram(np.random.default_rng([*seed, 1]), **kwargs)
    mass = render_mammogram(np.random.default_rng([*seed, 1]), masses=masses, **kwargs)
    return MammoPair(
        normal=normal.image, with_mass=mass.image, boxes=tuple(mass.boxes),
        window_normal=writer_window(normal.image, normal.breast_mask),
        window_mass=writer_window(mass.image, mass.breast_mask),
    )


def _feather_px(box: Box) -> float:
    return max(2.0, 0.15 * min(box[2] - box[0], box[3] - box[1]))


def box_crop(unit: np.ndarray, box: Box, resolution: int) -> np.ndarray:
    """The model window ``inpaint_lesion`` uses for ``box``, from a [0, 1] image, resized to 64 x 64."""
    win = crop_window(unit.shape, box, resolution=resolution, context=CONTEXT, feather_px=_feather_px(box),
                      max_scale=1.0)
    return _resize(unit[win.y0 : win.y0 + win.height, win.x0 : win.x0 + win.width], MASS_CROP_SIDE)


def _jitter(box: Box, rng: np.random.Generator, shape: tuple[int, int]) -> Box:
    x0, y0, x1, y1 = box
    dx, dy = rng.uniform(-0.15, 0.15, 2) * np.array([x1 - x0, y1 - y0])
    h, w = shape
    dx = float(np.clip(dx, -x0, w - x1))
    dy = float(np.clip(dy, -y0, h - y1))
    return (x0 + dx, y0 + dy, x1 + dx, y1 + dy)


def cached_arrays(
    cache_dir: Path | None, key: dict[str, Any], build: Callable[[], tuple[np.ndarray, np.ndarray]]
) -> tuple[np.ndarray, np.ndarray]:
    """``build()`` (an (images, labels) pair), stored in ``cache_dir`` under a hash of ``key`` and reused.

    Rendering phantoms is most of the proof's run time and does not depend on the models, so repeated proofs
    (one per checkpoint) share it.
    """
    data = _cached_npz(cache_dir, key, lambda: dict(zip(("images", "labels"), build(), strict=True)))
    return data["images"], data["labels"]


def _cached_npz(cache_dir: Path | None, key: dict[str, Any], build: Callable[[], dict[str, np.ndarray]]
                ) -> dict[str, np.ndarray]:
    if cache_dir is None:
        return build()
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
    path = cache_dir / f"{key['what']}-{digest}.npz"
    if path.is_file():
        with np.load(path, allow_pickle=False) as data:
            return {k: data[k] for k in data.files}
    arrays = build()
    with atomic_open(path) as f:
        np.savez(f, **arrays)
    return arrays


def held_out_pairs(settings: ProofSettings, cache_dir: Path | None = None) -> list[MammoPair]:
    """The ``test_cases`` held-out mammogram pairs (rendered, or read back from ``cache_dir``)."""

    def build() -> dict[str, np.ndarray]:
        pairs = [render_pair((settings.seed, _TEST_STREAM, case), settings) for case in range(settings.test_cases)]
        meta = [{"boxes": p.boxes, "windows": [asdict(p.window_normal), asdict(p.window_mass)]} for p in pairs]
        return {"normal": np.stack([p.normal for p in pairs]), "with_mass": np.stack([p.with_mass for p in pairs]),
                "meta": np.array(json.dumps(meta))}

    key = {"what": "mammo-test", "format": 1, **asdict(settings)}
    for name in ("train_cases", "train_jitter", "cxr_train_per_class", "cxr_test_per_class", "epochs", "cxr_epochs",
                 "batch", "lr"):
        key.pop(name)
    data = _cached_npz(cache_dir, key, build)
    meta = json.loads(str(data["meta"]))
    return [
        MammoPair(normal=data["normal"][i], with_mass=data["with_mass"][i],
                  boxes=tuple(tuple(float(v) for v in b) for b in m["boxes"]),  # type: ignore[misc]
                  window_normal=VoiWindow(**m["windows"][0]), window_mass=VoiWindow(**m["windows"][1]))
        for i, m in enumerate(meta)
    ]


def mass_training_set(settings: ProofSettings, resolution: int) -> tuple[np.ndarray, np.ndarray]:
    """(N, 64, 64) crops and labels (1 = mass) from ``train_cases`` pairs, jittered around the mass boxes."""
    crops, labels = [], []
    for case in range(settings.train_cases):
        pair = render_pair((settings.seed, _TRAIN_STREAM, case), settings)
        rng = np.random.default_rng([settings.seed, _TRAIN_STREAM, case, 2])
        normal = apply_window(pair.normal, pair.window_normal)
        mass = apply_window(pair.with_mass, pair.window_mass)
        for box in pair.boxes:
            for _ in range(settings.train_jitter):
                shifted = _jitter(box, rng, normal.shape)
                crops += [box_crop(mass, shifted, resolution), box_crop(normal, shifted, resolution)]
                labels += [1, 0]
    return np.stack(crops), np.array(labels)


# ----------------------------------------------------------------------------------------------- inpainting


@dataclass
class InpaintExample:
    source: np.ndarray  # [0, 1] window of the normal image around the box
    hole: np.ndarray  # bool, same shape: the requested hole
    real: np.ndarray  # the real mass at that place
    candidates: dict[str, list[np.ndarray]]  # engine -> windows


def _cache_key(what: str, settings: ProofSettings, **extra: Any) -> dict[str, Any]:
    fields = asdict(settings)
    for name in ("test_cases", "cxr_test_per_class", "epochs", "cxr_epochs", "batch", "lr"):  # not for rendering
        fields.pop(name)
    return {"what": what, "format": 1, **fields, **extra}


def evaluate_inpainting(
    engines: dict[str, Engine], settings: ProofSettings, *, stage: Stage, example_seeds: int = 3,
    cache_dir: Path | None = None,
) -> tuple[InpaintResult, InpaintExample | None]:
    """Train the mass classifier, inpaint every held-out box with every engine and score the crops."""
    resolution = next(iter(engines.values())).resolution
    stage("mass classifier: rendering training phantoms (or reading them from the cache)")
    x, y = cached_arrays(cache_dir, _cache_key("mass-crops", settings, resolution=resolution),
                         lambda: mass_training_set(settings, resolution))
    stage(f"mass classifier: training on {len(x)} crops")
    classifier, report = train_classifier(x, y, 2, settings, seed=settings.seed, name="proof-mass-cnn")

    crops: dict[str, list[np.ndarray]] = {"real": [], "normal": [], **{name: [] for name in engines}}
    sides: list[float] = []
    example: InpaintExample | None = None
    stage("rendering the held-out mammograms (or reading them from the cache)")
    pairs = held_out_pairs(settings, cache_dir)
    for case, pair in enumerate(pairs):
        stage(f"inpainting held-out case {case + 1}/{settings.test_cases}")
        normal = apply_window(pair.normal, pair.window_normal)
        mass = apply_window(pair.with_mass, pair.window_mass)
        for b, box in enumerate(pair.boxes):
            sides.append(max(box[2] - box[0], box[3] - box[1]))
            crops["real"].append(box_crop(mass, box, resolution))
            crops["normal"].append(box_crop(normal, box, resolution))
            seed = int(np.random.default_rng([settings.seed, _ENGINE_STREAM, case, b]).integers(2**31))
            want_example = example is None
            seeds = [seed + k for k in range(example_seeds)] if want_example else [seed]
            request = InpaintRequest(box=box, hole="ellipse", seeds=seeds, window=pair.window_normal,
                                     feather_px=_feather_px(box), context=CONTEXT, max_scale=1.0)
            generated: dict[str, list[np.ndarray]] = {}
            for name, engine in engines.items():
                candidates = inpaint_lesion(pair.normal, request, engine, anatomy_check=False)
                units = [apply_window(c.image, pair.window_normal) for c in candidates]
                crops[name].append(box_crop(units[0], box, resolution))
                generated[name] = units
            if want_example:
                win = crop_window(normal.shape, box, resolution=resolution, context=CONTEXT,
                                  feather_px=_feather_px(box), max_scale=1.0)
                rows, cols = slice(win.y0, win.y0 + win.height), slice(win.x0, win.x0 + win.width)
                example = InpaintExample(
                    source=normal[rows, cols], hole=box_hole(normal.shape, box, "ellipse")[rows, cols],
                    real=mass[rows, cols], candidates={k: [u[rows, cols] for u in v] for k, v in generated.items()},
                )
    stacked = {k: np.stack(v) for k, v in crops.items()}
    share = {k: float((predict(classifier, v) == 1).mean()) for k, v in stacked.items()}
    stage("inpainting FID")
    rc_name, rc_net = _randconv_features()
    features = {f"proof-mass-cnn-{FEATURE_DIM}": ClassifierFeatures(classifier, MASS_CROP_SIDE), rc_name: rc_net}
    fakes = {k: v for k, v in stacked.items() if k != "real"}
    fid = fid_scores(stacked["real"], fakes, features)
    two_sample = {}
    for name in engines:
        stage(f"two-sample test: real masses vs {name}")
        two_sample[name] = two_sample_accuracy(stacked["real"], stacked[name], settings, seed=settings.seed + 7)
    result = InpaintResult(
        boxes=len(stacked["real"]), mass_share=share, fid=fid, classifier=report,
        box_side_px=(float(min(sides)), float(max(sides))),
        target_mat=share.get("mat", 0.0) >= 0.8, target_biharmonic=share.get("biharmonic", 1.0) <= 0.2,
        two_sample_accuracy=two_sample,
    )
    return result, example


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
        model, _ = train_classifier(x, y, 2, settings, seed=seed + k, name="two-sample")
        correct += int((predict(model, real[test]) == 1).sum() + (predict(model, fake[test]) == 0).sum())
    return correct / (2 * n)


# ----------------------------------------------------------------------------------------------- outpainting


@dataclass(frozen=True)
class CxrCase:
    image: np.ndarray  # uint16
    window: VoiWindow
    label: int  # index into CXR_FINDINGS
    boxes: tuple[tuple[str, Box], ...]
    global_labels: tuple[str, ...]


def render_cxr_case(seed: Sequence[int], label: int, settings: ProofSettings) -> CxrCase:
    h, w = settings.cxr_shape
    ph = render_cxr(np.random.default_rng(list(seed)), height=h, width=w, finding=CXR_FINDINGS[label])
    return CxrCase(ph.image, writer_window(ph.image, ph.body_mask), label, tuple(ph.boxes), tuple(ph.global_labels))


def held_out_cxr(settings: ProofSettings, cache_dir: Path | None = None) -> list[CxrCase]:
    """``cxr_test_per_class`` held-out chest X-rays of each class, interleaved by class (or from the cache)."""
    order = [(i, label) for i in range(settings.cxr_test_per_class) for label in range(len(CXR_FINDINGS))]

    def build() -> dict[str, np.ndarray]:
        cases = [render_cxr_case((settings.seed, _CXR_TEST_STREAM, i, label), label, settings) for i, label in order]
        meta = [{"window": asdict(c.window), "label": c.label, "boxes": c.boxes, "global_labels": c.global_labels}
                for c in cases]
        return {"images": np.stack([c.image for c in cases]), "meta": np.array(json.dumps(meta))}

    key = {"what": "cxr-test", "format": 1, "seed": settings.seed, "cxr_shape": list(settings.cxr_shape),
           "per_class": settings.cxr_test_per_class}
    data = _cached_npz(cache_dir, key, build)
    return [
        CxrCase(image=data["images"][k], window=VoiWindow(**m["window"]), label=int(m["label"]),
                boxes=tuple((str(n), tuple(float(v) for v in b)) for n, b in m["boxes"]),  # type: ignore[misc]
                global_labels=tuple(m["global_labels"]))
        for k, m in enumerate(json.loads(str(data["meta"])))
    ]


def _cxr_unit(pixels: np.ndarray, window: VoiWindow) -> np.ndarray:
    return _resize(apply_window(pixels, window), CXR_SIDE)


@dataclass
class OutpaintExample:
    source: np.ndarray
    kept: np.ndarray  # bool: pixels kept bit-exact
    candidates: dict[str, list[np.ndarray]]


def cxr_training_set(settings: ProofSettings) -> tuple[np.ndarray, np.ndarray]:
    """(N, 128, 128) whole phantom chest X-rays in [0, 1] and their class indices, balanced over the 4 classes."""
    images, labels = [], []
    for i in range(settings.cxr_train_per_class):
        for label in range(len(CXR_FINDINGS)):
            case = render_cxr_case((settings.seed, _CXR_TRAIN_STREAM, i, label), label, settings)
            images.append(_cxr_unit(case.image, case.window))
            labels.append(label)
    return np.stack(images), np.array(labels)


def evaluate_outpainting(
    engines: dict[str, Engine], settings: ProofSettings, *, stage: Stage, example_seeds: int = 3,
    cache_dir: Path | None = None,
) -> tuple[OutpaintResult, OutpaintExample | None]:
    """Train the 4-class CXR classifier, outpaint held-out abnormal phantoms, score label keeping and copying."""
    n_classes = len(CXR_FINDINGS)
    stage("CXR classifier: rendering training phantoms (or reading them from the cache)")
    train_x, train_y = cached_arrays(cache_dir, _cache_key("cxr-images", settings), lambda: cxr_training_set(settings))
    stage(f"CXR classifier: training on {len(train_x)} images")
    # no flips: a finding's side is part of the phantom (and of its boxes)
    classifier, report = train_classifier(train_x, train_y, n_classes, settings,
                                          seed=settings.seed + 1, name="proof-cxr-cnn", augment_flips=False,
                                          epochs=settings.cxr_epochs)

    real_x, real_y = [], []
    sources, results = [], {name: [] for name in engines}
    kept_labels = {name: [] for name in engines}
    mad = {name: [] for name in engines}
    example: OutpaintExample | None = None
    stage("rendering the held-out chest X-rays (or reading them from the cache)")
    cases = held_out_cxr(settings, cache_dir)
    for k, case in enumerate(cases):
        stage(f"outpainting held-out image {k + 1}/{len(cases)}")
        source_unit = apply_window(case.image, case.window)
        real_x.append(_resize(source_unit, CXR_SIDE))
        real_y.append(case.label)
        if not case.boxes:
            continue
        sources.append(real_x[-1])
        seed = int(np.random.default_rng([settings.seed, _ENGINE_STREAM, 1000 + k]).integers(2**31))
        want_example = example is None
        seeds = [seed + j for j in range(example_seeds)] if want_example else [seed]
        request = OutpaintRequest(
            boxes=tuple(b for _, b in case.boxes), box_labels=tuple(n for n, _ in case.boxes), seeds=seeds,
            margin=OUTPAINT_MARGIN, global_labels=case.global_labels, window=case.window,
        )
        generated: dict[str, list[np.ndarray]] = {}
        kept = np.zeros(source_unit.shape, dtype=bool)
        for name, engine in engines.items():
            candidates = outpaint_around(case.image, request, engine, anatomy_check=False)
            units = [apply_window(c.image, case.window) for c in candidates]
            first = units[0]
            results[name].append(_resize(first, CXR_SIDE))
            regenerated = candidates[0].generated >= 1.0
            mad[name].append(float(np.abs(first - source_unit)[regenerated].mean()))
            generated[name] = units
            kept = candidates[0].generated == 0
            kept_labels[name].append(case.label)
        if want_example:
            example = OutpaintExample(source=source_unit, kept=kept, candidates=generated)
    real_pred = predict(classifier, np.stack(real_x))
    stacked = {name: np.stack(v) for name, v in results.items()}
    label_kept = {name: float((predict(classifier, stacked[name]) == np.array(kept_labels[name])).mean())
                  for name in engines}
    stage("outpainting FID")
    rc_name, rc_net = _randconv_features()
    features = {f"proof-cxr-cnn-{FEATURE_DIM}": ClassifierFeatures(classifier, CXR_SIDE), rc_name: rc_net}
    fid = fid_scores(np.stack(sources), stacked, features)
    result = OutpaintResult(
        images=len(sources), real_accuracy=float((real_pred == np.array(real_y)).mean()), label_kept=label_kept,
        regenerated_mad={k: float(np.mean(v)) for k, v in mad.items()}, fid=fid, classifier=report,
        target_label=label_kept.get("mat", 0.0) >= 0.8,
    )
    return result, example


# ----------------------------------------------------------------------------------------------- outputs


def save_examples(path: Path, inpaint: InpaintExample | None, outpaint: OutpaintExample | None) -> None:
    """A PNG grid: per task, source, hole / kept region, MAT candidates, biharmonic (and the real mass)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows: list[list[tuple[str, np.ndarray, np.ndarray | None]]] = []
    if inpaint is not None:
        row = [("normal source", inpaint.source, None), ("hole (red)", inpaint.source, inpaint.hole)]
        row += [(f"MAT seed {k}", img, None) for k, img in enumerate(inpaint.candidates.get("mat", []))]
        row += [("biharmonic", img, None) for img in inpaint.candidates.get("biharmonic", [])[:1]]
        row += [("real phantom mass", inpaint.real, None)]
        rows.append(row)
    if outpaint is not None:
        row = [("abnormal source", outpaint.source, None),
               ("red = regenerated", outpaint.source, ~outpaint.kept)]
        row += [(f"MAT seed {k}", img, None) for k, img in enumerate(outpaint.candidates.get("mat", []))]
        row += [("biharmonic", img, None) for img in outpaint.candidates.get("biharmonic", [])[:1]]
        rows.append(row)
    if not rows:
        return
    cols = max(len(r) for r in rows)
    fig, axes = plt.subplots(len(rows), cols, figsize=(2.4 * cols, 2.6 * len(rows)), squeeze=False)
    for r, row in enumerate(rows):
        for c in range(cols):
            ax = axes[r][c]
            ax.axis("off")
            if c >= len(row):
                continue
            title, image, overlay = row[c]
            ax.imshow(image, cmap="gray", vmin=0, vmax=1)
            if overlay is not None:
                tint = np.zeros((*overlay.shape, 4), dtype=np.float32)
                tint[overlay] = (1.0, 0.0, 0.0, 0.35)
                ax.imshow(tint)
            ax.set_title(title, fontsize=8)
    fig.tight_layout()
    with atomic_open(path) as f:
        fig.savefig(f, format="png", dpi=110)
    plt.close(fig)


def _pct(value: float) -> str:
    return f"{100 * value:.1f} %"


def render_markdown(result: ProofResult) -> str:
    """The proof as a markdown report (numbers exactly as in proof.json)."""
    lines = ["# Demo models: realism proof", "",
             f"Measured by `python -m trainer.proof` in {result.seconds:.0f} s (CPU). Settings: "
             f"`{json.dumps(result.settings)}`.", "",
             f"- inpainting model: `{Path(result.inpaint_model).name}` (sha256 {result.inpaint_sha256})",
             f"- outpainting model: `{Path(result.outpaint_model).name}` (sha256 {result.outpaint_sha256})", ""]
    inp = result.inpaint
    if inp is not None:
        lines += ["## Inpainting: does a generated lesion look like a mass?", "",
                  f"Mass classifier `{inp.classifier.name}`: {inp.classifier.train_images} training crops, "
                  f"training accuracy {_pct(inp.classifier.train_accuracy)}. Held-out boxes: {inp.boxes} "
                  f"(sides {inp.box_side_px[0]:.0f}-{inp.box_side_px[1]:.0f} px).", "",
                  "| crops at the held-out boxes | share called \"mass\" |", "|---|---|"]
        labels = {"real": "real phantom masses", "normal": "normal tissue (no mass)", "mat": "MAT inpainted",
                  "biharmonic": "biharmonic inpainted",
                  "mat-untrained": "MAT, untrained weights (negative control)"}
        lines += [f"| {labels.get(k, k)} | {_pct(v)} |" for k, v in inp.mass_share.items()]
        lines += ["", f"Targets: MAT >= 80 %: **{'met' if inp.target_mat else 'NOT met'}**; "
                  f"biharmonic <= 20 %: **{'met' if inp.target_biharmonic else 'NOT met'}**.", ""]
        if inp.two_sample_accuracy:
            lines += ["Two-sample test: cross-validated accuracy of a fresh CNN telling real masses from each "
                      "engine's fills at the same boxes (50 % = indistinguishable, 100 % = always told apart):", "",
                      "| engine | real-vs-generated accuracy |", "|---|---|"]
            lines += [f"| {k} | {_pct(v)} |" for k, v in inp.two_sample_accuracy.items()]
            lines += [""]
        lines += _fid_table(inp.fid, "FID against the real phantom masses (lower = closer)")
    out = result.outpaint
    if out is not None:
        lines += ["## Outpainting: is the finding kept, and is the rest new?", "",
                  f"4-class classifier `{out.classifier.name}`: {out.classifier.train_images} training images, "
                  f"training accuracy {_pct(out.classifier.train_accuracy)}, held-out accuracy on real phantoms "
                  f"{_pct(out.real_accuracy)}. Outpainted held-out abnormal images: {out.images}.", "",
                  "| engine | source label kept | mean abs. difference on regenerated pixels |", "|---|---|---|"]
        lines += [f"| {k} | {_pct(v)} | {out.regenerated_mad[k]:.4f} |" for k, v in out.label_kept.items()]
        lines += ["", f"Target: MAT keeps the label on >= 80 %: **{'met' if out.target_label else 'NOT met'}**.", ""]
        lines += _fid_table(out.fid, "FID against the held-out abnormal sources (lower = closer)")
    if result.notes:
        lines += ["## Notes", ""] + [f"- {n}" for n in result.notes] + [""]
    return "\n".join(lines)


def _fid_table(fid: dict[str, dict[str, float]], title: str) -> list[str]:
    sources = list(next(iter(fid.values())).keys())
    lines = [f"{title}:", "", "| features | " + " | ".join(sources) + " |", "|---" * (len(sources) + 1) + "|"]
    lines += [f"| {name} | " + " | ".join(f"{v[s]:.3f}" for s in sources) + " |" for name, v in fid.items()]
    return [*lines, ""]


def proof_engines(model: str | os.PathLike[str], device: str, seed: int) -> dict[str, Engine]:
    """The engines compared: the trained MAT, the biharmonic baseline, and a negative control.

    The control ("mat-untrained") is the same architecture with freshly initialised weights. If the
    classifiers scored its output as lesions, the measure would reward any bright blob rather than a lesion.
    """
    from linop_core.model.checkpoint import load_generator
    from linop_core.model.presets import build_generator

    mat = MatEngine(model, device=device)
    _, checkpoint = load_generator(model)
    untrained = build_generator(checkpoint.config, seed=seed).eval().requires_grad_(False)
    control = MatEngine((untrained, checkpoint), device=device)
    control.checkpoint_sha256 = None  # not the file's weights
    return {"mat": mat, "biharmonic": BiharmonicEngine(mat.resolution), "mat-untrained": control}


def run_proof(
    inpaint_model: str | os.PathLike[str] | None,
    outpaint_model: str | os.PathLike[str] | None,
    out_dir: Path,
    settings: ProofSettings,
    *,
    stage: Stage = lambda message: None,
    device: str = "cpu",
    cache_dir: Path | None = None,
    notes: Sequence[str] = (),
) -> ProofResult:
    """Run both evaluations (a task is skipped when its model is None) and write proof.json/.md, examples.png."""
    start = time.perf_counter()
    out_dir.mkdir(parents=True, exist_ok=True)
    result = ProofResult(settings=asdict(settings), inpaint_model=str(inpaint_model),
                         outpaint_model=str(outpaint_model), notes=list(notes))
    from linop_core.hashing import sha256_file

    result.inpaint_sha256 = sha256_file(inpaint_model) if inpaint_model is not None else None
    result.outpaint_sha256 = sha256_file(outpaint_model) if outpaint_model is not None else None
    inpaint_example = outpaint_example = None
    if inpaint_model is not None:
        result.inpaint, inpaint_example = evaluate_inpainting(
            proof_engines(inpaint_model, device, settings.seed), settings, stage=stage, cache_dir=cache_dir)
    if outpaint_model is not None:
        result.outpaint, outpaint_example = evaluate_outpainting(
            proof_engines(outpaint_model, device, settings.seed), settings, stage=stage, cache_dir=cache_dir)
    result.seconds = time.perf_counter() - start
    atomic_write_text(out_dir / "proof.json", json.dumps(asdict(result), indent=2) + "\n")
    atomic_write_text(out_dir / "proof.md", render_markdown(result))
    save_examples(out_dir / "examples.png", inpaint_example, outpaint_example)
    return result


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m trainer.proof",
        description="Measure whether the demo models' lesions look like lesions and whether outpainting keeps the "
        "finding, on held-out phantoms, against the biharmonic baseline.",
    )
    parser.add_argument("--inpaint-model", help="mammography inpainting checkpoint (default: the bundled demo)")
    parser.add_argument("--outpaint-model", help="chest X-ray outpainting checkpoint (default: the bundled demo)")
    parser.add_argument("--skip", choices=["inpaint", "outpaint"], action="append", default=[],
                        help="skip one task (repeatable)")
    parser.add_argument("--out", type=Path, default=Path("docs/demo"), help="folder for proof.json/.md, examples.png")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--test-cases", type=int, default=ProofSettings.test_cases,
                        help="held-out mammogram pairs (1-2 boxes each)")
    parser.add_argument("--cxr-test-per-class", type=int, default=ProofSettings.cxr_test_per_class)
    parser.add_argument("--cache", type=Path, default=None, metavar="DIR",
                        help="keep the classifiers' rendered training phantoms here and reuse them")
    parser.add_argument("--note", action="append", default=[], metavar="TEXT",
                        help="a line of context for the report's Notes (e.g. how long the models trained)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    return parser


def _model_for(task: str, given: str | None, skipped: bool) -> str | None:
    if skipped:
        return None
    if given is not None:
        return given
    from linop_core.demo_models import demo_model_path

    path = demo_model_path(task)  # type: ignore[arg-type]
    if path is None:
        raise LinopError(f"no bundled {task} demo model in resources/models; pass --{task}-model PATH")
    return str(path)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.threads is not None:
        torch.set_num_threads(args.threads)  # process-wide, set once at this entry point
    settings = ProofSettings(seed=args.seed, test_cases=args.test_cases, cxr_test_per_class=args.cxr_test_per_class)
    try:
        inpaint = _model_for("inpaint", args.inpaint_model, "inpaint" in args.skip)
        outpaint = _model_for("outpaint", args.outpaint_model, "outpaint" in args.skip)
        started = time.perf_counter()

        def stage(message: str) -> None:
            print(f"[{time.perf_counter() - started:7.1f} s] {message}", file=sys.stderr, flush=True)

        result = run_proof(inpaint, outpaint, args.out, settings, stage=stage, cache_dir=args.cache,
                           notes=args.note)
    except LinopError as exc:
        print(f"proof: error: {exc}", file=sys.stderr)
        return 1
    print(render_markdown(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
