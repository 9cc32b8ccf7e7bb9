"""The proof's phantoms: mammogram pairs with and without masses, chest X-rays per finding, their crops and
windows, and a cache of every rendered set (rendering is most of a proof's run time and none depends on the models).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from linop_core.dicom import VoiWindow, apply_window
from linop_core.fileio import atomic_open
from linop_core.phantom import CXR_FINDINGS, DENSITIES, MASS_SHAPES, MassSpec, render_cxr, render_mammogram
from linop_core.phantom.dicom_writer import vendor_windows
from linop_core.synthesis import crop_window
from trainer.proof.settings import (
    CONTEXT,
    CXR_SIDE,
    CXR_TEST_STREAM,
    CXR_TRAIN_STREAM,
    MASS_CROP_SIDE,
    TEST_STREAM,
    TRAIN_STREAM,
    Box,
    ProofSettings,
)

# ----------------------------------------------------------------------------------------------- mammograms


def writer_window(pixels: np.ndarray, foreground: np.ndarray) -> VoiWindow:
    """The first window the phantom DICOM writer stores (what ``linop-train`` decodes phantoms with)."""
    (center,), (width,) = vendor_windows(pixels, foreground, 1)
    return VoiWindow(center=float(center), width=float(width))


def resize(image: np.ndarray, side: int) -> np.ndarray:
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


def feather_px(box: Box) -> float:
    return max(2.0, 0.15 * min(box[2] - box[0], box[3] - box[1]))


def box_crop(unit: np.ndarray, box: Box, resolution: int) -> np.ndarray:
    """The model window ``inpaint_lesion`` uses for ``box``, from a [0, 1] image, resized to 64 x 64."""
    win = crop_window(unit.shape, box, resolution=resolution, context=CONTEXT, feather_px=feather_px(box),
                      max_scale=1.0)
    return resize(unit[win.y0 : win.y0 + win.height, win.x0 : win.x0 + win.width], MASS_CROP_SIDE)


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
        pairs = [render_pair((settings.seed, TEST_STREAM, case), settings) for case in range(settings.test_cases)]
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
        pair = render_pair((settings.seed, TRAIN_STREAM, case), settings)
        rng = np.random.default_rng([settings.seed, TRAIN_STREAM, case, 2])
        normal = apply_window(pair.normal, pair.window_normal)
        mass = apply_window(pair.with_mass, pair.window_mass)
        for box in pair.boxes:
            for _ in range(settings.train_jitter):
                shifted = _jitter(box, rng, normal.shape)
                crops += [box_crop(mass, shifted, resolution), box_crop(normal, shifted, resolution)]
                labels += [1, 0]
    return np.stack(crops), np.array(labels)


def cache_key(what: str, settings: ProofSettings, **extra: Any) -> dict[str, Any]:
    fields = asdict(settings)
    for name in ("test_cases", "cxr_test_per_class", "epochs", "cxr_epochs", "batch", "lr"):  # not for rendering
        fields.pop(name)
    return {"what": what, "format": 1, **fields, **extra}


# ----------------------------------------------------------------------------------------------- chest X-rays


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
        cases = [render_cxr_case((settings.seed, CXR_TEST_STREAM, i, label), label, settings) for i, label in order]
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
    return resize(apply_window(pixels, window), CXR_SIDE)


def cxr_training_set(settings: ProofSettings) -> tuple[np.ndarray, np.ndarray]:
    """(N, 128, 128) whole phantom chest X-rays in [0, 1] and their class indices, balanced over the 4 classes."""
    images, labels = [], []
    for i in range(settings.cxr_train_per_class):
        for label in range(len(CXR_FINDINGS)):
            case = render_cxr_case((settings.seed, CXR_TRAIN_STREAM, i, label), label, settings)
            images.append(_cxr_unit(case.image, case.window))
            labels.append(label)
    return np.stack(images), np.array(labels)

