"""Training and validation samples for the two LINOP tasks, read from VinDr layouts (real or phantom).

A sample is fully determined by ``(image index, slot)``: the crop, the hole and the flip are drawn from
``numpy.random.default_rng([seed, stream, slot])``. Training consumes a global stream of slots (the epoch
permutation of images is seeded too), so the data position is just the number of images seen, resuming
needs no loader state, and the global sample sequence does not depend on the number of GPUs.

- ``mammo-inpaint``: training-split VinDr-Mammo images with masses. Crops of ``resolution`` pixels at native
  resolution, around a mass (the box shifted randomly inside the crop) or anywhere in the breast; holes from
  MAT's free-form + box generator, or lesion-shaped holes over the mass.
- ``cxr-outpaint``: VinDr-CXR "No finding" images resized to ``resolution``; holes from MAT's generator or
  inverse masks (keep one box, generate everything around it).

Images are in [-1, 1] with 1 channel (gray presets) or the gray value replicated to 3; masks are
(1, R, R) float32 with 1 = known pixel, 0 = hole (MAT's convention).
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from linop_core.errors import DataError, LinopError
from trainer.config import DataConfig
from trainer.distributed import DistInfo

Box = tuple[float, float, float, float]
TRAIN_STREAM = 0
VALIDATION_STREAM = 1

_log = logging.getLogger("trainer.data")


class SampleError(LinopError):
    """A training image could not be read. Single-argument so DataLoader workers can re-raise it."""

    def __init__(self, message: str) -> None:
        # A worker re-raises with the whole traceback as the message: keep only our line.
        lines = [line for line in str(message).strip().splitlines() if line.strip()]
        last = lines[-1] if lines else str(message)
        prefix = f"{__name__}.SampleError: "
        super().__init__(last.removeprefix(prefix))


@dataclass(frozen=True)
class SourceImage:
    """One training image: its DICOM, its mass boxes (native pixels; empty for CXR) and its id."""

    path: Path
    boxes: tuple[Box, ...]
    image_id: str


# ---------------------------------------------------------------------------------------------------------------
# Dataset selection


def ensure_root(config: DataConfig, *, create: bool = True) -> Path:
    """``data.root``; a phantom root is made there first when it does not exist and ``data.phantom`` is set.

    The phantom is written to a temporary sibling folder and renamed into place, so a crash never leaves a
    half-written root. With ``create=False`` (ranks other than 0) the root must already exist.
    """
    root = Path(config.root).expanduser()
    if root.exists():
        return root
    if config.phantom is None:
        raise DataError(root, "dataset root not found; set data.root to a VinDr download (or data.phantom)")
    if not create:
        raise DataError(root, "dataset root not found (rank 0 should have made the phantom)")
    from linop_core import phantom

    makers = {"mammo": phantom.make_mammo_dataset, "cxr": phantom.make_cxr_dataset}
    ph = config.phantom
    if ph.modality not in makers:
        raise DataError(root, f"data.phantom.modality {ph.modality!r} must be 'mammo' or 'cxr'")
    root.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{root.name}.", suffix=".partial", dir=root.parent))
    try:
        makers[ph.modality](tmp, n=ph.n, seed=ph.seed, size=ph.size)
        os.replace(tmp, root)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        if root.exists():  # another process won the race: its root is complete
            return root
        raise
    _log.info("made a %s phantom root (%d studies) at %s", ph.modality, ph.n, root)
    return root


def select_images(root: Path, config: DataConfig, split: str) -> list[SourceImage]:
    """The task's images of ``split`` that exist on disk, in CSV order.

    Raises:
        DataError: wrong modality for the task, or no usable image (the message says what was looked for).
    """
    from linop_core.vindr import CxrDataset, MammoDataset, open_dataset

    dataset = open_dataset(root)
    images: list[SourceImage] = []
    if config.task == "mammo-inpaint":
        if not isinstance(dataset, MammoDataset):
            raise DataError(root, "is a VinDr-CXR root; mammo-inpaint needs VinDr-Mammo (set data.root)")
        boxes: dict[str, list[Box]] = {}
        records = {}
        for record, box in dataset.mass_boxes(split):
            records[record.image_id] = record
            boxes.setdefault(record.image_id, []).append(tuple(float(v) for v in box))  # type: ignore[misc]
        for image_id, record in records.items():
            if record.exists:
                images.append(SourceImage(Path(record.path), tuple(boxes[image_id]), image_id))
        what = f"{split}-split images with mass boxes"
    else:
        if not isinstance(dataset, CxrDataset):
            raise DataError(root, "is a VinDr-Mammo root; cxr-outpaint needs VinDr-CXR (set data.root)")
        for record in dataset.normal(split):
            if record.exists:
                images.append(SourceImage(Path(record.path), (), record.image_id))
        what = f"{split}-split 'No finding' images"
    if not images:
        listed = len(dataset.split(split))
        raise DataError(
            root,
            f"no {what} found on disk ({listed} {split}-split records in the CSVs, "
            f"{dataset.report.missing_files} listed files missing); check data.root and data.split / eval.split",
        )
    return images


# ---------------------------------------------------------------------------------------------------------------
# Decoding with a per-process cache


class ImageCache:
    """Windowed [0, 1] float32 arrays by path, least recently used dropped beyond ``budget_bytes``.

    Each DataLoader worker holds its own cache (the dataset object is copied into the worker), so every
    DICOM is decoded at most once per worker while the working set fits.
    """

    def __init__(self, budget_bytes: int) -> None:
        self.budget_bytes = max(0, int(budget_bytes))
        self._items: OrderedDict[tuple[str, int | None], np.ndarray] = OrderedDict()
        self._bytes = 0

    def get(self, path: Path, window: int | None, resize_to: int | None) -> np.ndarray:
        key = (str(path), resize_to)
        if key in self._items:
            self._items.move_to_end(key)
            return self._items[key]
        array = _decode(path, window, resize_to)
        if array.nbytes <= self.budget_bytes:
            self._items[key] = array
            self._bytes += array.nbytes
            while self._bytes > self.budget_bytes:
                _, old = self._items.popitem(last=False)
                self._bytes -= old.nbytes
        return array


def _decode(path: Path, window: int | None, resize_to: int | None) -> np.ndarray:
    from linop_core.dicom import read_dicom, to_unit

    try:
        array = np.asarray(to_unit(read_dicom(path), window), dtype=np.float32)
    except LinopError as exc:
        raise SampleError(str(exc)) from exc
    if array.ndim != 2:
        raise SampleError(f"{path}: expected a single gray frame, got an array of shape {array.shape}")
    if resize_to is not None and array.shape != (resize_to, resize_to):
        from skimage.transform import resize

        array = resize(array, (resize_to, resize_to), order=1, anti_aliasing=True, preserve_range=True)
        array = np.clip(array, 0.0, 1.0).astype(np.float32)
    return array


# ---------------------------------------------------------------------------------------------------------------
# Crops and holes


def _crop_origin_around(rng: np.random.Generator, lo: float, hi: float, extent: int, size: int) -> int:
    """Origin (1-D) of a ``size`` window that holds [lo, hi) where possible, shifted at random, inside
    [0, extent) where possible (a window larger than the image is centred and padded)."""
    if extent <= size:
        return (extent - size) // 2
    first = int(np.floor(min(hi - size, lo)))
    last = int(np.ceil(max(hi - size, lo)))
    first, last = max(first, 0), min(last, extent - size)
    if first > last:  # the box sits at an edge: clamp into the image
        first = last = int(np.clip(first, 0, extent - size))
    return int(rng.integers(first, last + 1))


def crop_around_box(
    rng: np.random.Generator, box: Box, shape: tuple[int, int], size: int
) -> tuple[int, int]:
    """(y, x) origin of a ``size``² crop containing ``box`` (x0, y0, x1, y1) at a random position."""
    x0, y0, x1, y1 = box
    oy = _crop_origin_around(rng, y0, y1, shape[0], size)
    ox = _crop_origin_around(rng, x0, x1, shape[1], size)
    return oy, ox


def crop_in_foreground(
    rng: np.random.Generator, image: np.ndarray, size: int, min_foreground: float, tries: int = 12
) -> tuple[int, int]:
    """(y, x) origin of a random ``size``² crop whose fraction of non-background pixels is at least
    ``min_foreground`` (the best of ``tries`` when none is). Background = windowed value below 2 %."""
    height, width = image.shape
    best, best_fraction = (0, 0), -1.0
    step = max(1, size // 64)
    for _ in range(tries):
        oy = int(rng.integers(0, height - size + 1)) if height > size else (height - size) // 2
        ox = int(rng.integers(0, width - size + 1)) if width > size else (width - size) // 2
        patch = image[max(oy, 0) : oy + size : step, max(ox, 0) : ox + size : step]
        # Pixels outside the image (padding) count as background.
        fraction = np.count_nonzero(patch > 0.02) / (-(-size // step)) ** 2
        if fraction >= min_foreground:
            return oy, ox
        if fraction > best_fraction:
            best, best_fraction = (oy, ox), fraction
    return best


def take_crop(image: np.ndarray, origin: tuple[int, int], size: int) -> np.ndarray:
    """The ``size``² window at ``origin`` (may lie partly outside: zero padding, i.e. background)."""
    oy, ox = origin
    out = np.zeros((size, size), dtype=np.float32)
    ys, xs = max(oy, 0), max(ox, 0)
    ye, xe = min(oy + size, image.shape[0]), min(ox + size, image.shape[1])
    if ye > ys and xe > xs:
        out[ys - oy : ye - oy, xs - ox : xe - ox] = image[ys:ye, xs:xe]
    return out


def _shift_box(box: Box, origin: tuple[int, int], size: int) -> Box:
    oy, ox = origin
    x0, y0, x1, y1 = box
    return (
        float(np.clip(x0 - ox, 0, size)),
        float(np.clip(y0 - oy, 0, size)),
        float(np.clip(x1 - ox, 0, size)),
        float(np.clip(y1 - oy, 0, size)),
    )


def random_keep_box(rng: np.random.Generator, size: int, side_range: tuple[float, float]) -> Box:
    """A random box to keep for an outpainting (inverse) mask, sides a fraction of ``size``."""
    w = float(rng.uniform(*side_range)) * size
    h = float(rng.uniform(*side_range)) * size
    x0 = float(rng.uniform(0, size - w))
    y0 = float(rng.uniform(0, size - h))
    return (x0, y0, x0 + w, y0 + h)


# ---------------------------------------------------------------------------------------------------------------
# Datasets


class InpaintingSamples(Dataset):
    """Map-style dataset indexed by ``(image index, slot)``; returns ``{"img": (C,R,R), "mask": (1,R,R)}``."""

    def __init__(
        self, images: Sequence[SourceImage], config: DataConfig, *, channels: int, seed: int, stream: int
    ) -> None:
        if channels not in (1, 3):
            raise ValueError(f"channels must be 1 or 3, got {channels}")
        self.images = list(images)
        self.config = config
        self.channels = channels
        self.seed = int(seed)
        self.stream = int(stream)
        workers = max(1, config.workers)
        self.cache = ImageCache(config.cache_mb * 2**20 // workers)

    def __len__(self) -> int:
        return len(self.images)

    def rng_for(self, slot: int) -> np.random.Generator:
        return np.random.default_rng([self.seed, self.stream, int(slot)])

    def __getitem__(self, key: tuple[int, int]) -> dict[str, torch.Tensor]:
        index, slot = key
        image, mask = self.sample(int(index), self.rng_for(slot))
        tensor = torch.from_numpy(image).mul(2.0).sub(1.0)[None]
        if self.channels == 3:
            tensor = tensor.expand(3, -1, -1).contiguous()
        return {"img": tensor, "mask": torch.from_numpy(mask)[None]}

    def sample(self, index: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """(image [0,1] (R,R) float32, mask (R,R) float32 1 = keep) for image ``index``."""
        from linop_core.masks import lesion_shaped_hole, outpaint_keep_mask, random_mat_mask

        cfg = self.config
        size = cfg.resolution
        source = self.images[index]

        def mat_mask() -> np.ndarray:
            return random_mat_mask(rng, (size, size), hole_range=cfg.mask_hole_range, variant=cfg.mask_variant)

        if cfg.task == "mammo-inpaint":
            full = self.cache.get(source.path, cfg.window, None)
            if source.boxes and rng.random() < cfg.mass_crop_prob:
                box = source.boxes[int(rng.integers(len(source.boxes)))]
                origin = crop_around_box(rng, box, full.shape, size)
                if rng.random() < cfg.lesion_hole_prob:
                    hole = lesion_shaped_hole(rng, (size, size), _shift_box(box, origin, size))
                    mask = (~np.asarray(hole, dtype=bool)).astype(np.float32)
                else:
                    mask = mat_mask()
            else:
                origin = crop_in_foreground(rng, full, size, cfg.min_foreground)
                mask = mat_mask()
            image = take_crop(full, origin, size)
        else:
            image = self.cache.get(source.path, cfg.window, size)
            if rng.random() < cfg.inverse_mask_prob:
                keep = random_keep_box(rng, size, cfg.keep_box_range)
                mask = np.asarray(outpaint_keep_mask((size, size), [keep], cfg.keep_margin), dtype=np.float32)
            else:
                mask = mat_mask()
        mask = np.asarray(mask, dtype=np.float32)
        if cfg.xflip and rng.random() < 0.5:
            image, mask = image[:, ::-1], mask[:, ::-1]
        return np.ascontiguousarray(image, dtype=np.float32), np.ascontiguousarray(mask)


class SlotSampler(Sampler[tuple[int, int]]):
    """Endless ``(image index, slot)`` keys for one rank, starting after ``start_nimg`` images.

    A step that starts at ``n`` images covers the global slots ``[n, n + batch)``; rank ``r`` of ``world``
    takes the ``r``-th contiguous share. Slot ``s`` shows image ``perm_e[s mod N]`` where ``perm_e`` is the
    seeded permutation of epoch ``e = s // N``.
    """

    def __init__(
        self, num_images: int, *, seed: int, batch: int, rank: int, world: int, start_nimg: int
    ) -> None:
        if num_images < 1:
            raise ValueError("no images to sample from")
        if batch % world:
            raise ValueError(f"batch {batch} is not divisible by {world} processes")
        self.num_images = num_images
        self.seed = seed
        self.batch = batch
        self.rank = rank
        self.world = world
        self.start_nimg = start_nimg
        self._perm: tuple[int, np.ndarray] | None = None

    def image_for_slot(self, slot: int) -> int:
        epoch, pos = divmod(slot, self.num_images)
        if self._perm is None or self._perm[0] != epoch:
            rng = np.random.default_rng([self.seed, TRAIN_STREAM, 2**31, epoch])
            self._perm = (epoch, rng.permutation(self.num_images))
        return int(self._perm[1][pos])

    def __iter__(self) -> Iterator[tuple[int, int]]:
        share = self.batch // self.world
        nimg = self.start_nimg
        while True:
            first = nimg + self.rank * share
            for slot in range(first, first + share):
                yield self.image_for_slot(slot), slot
            nimg += self.batch


def validation_keys(num_images: int, count: int) -> list[tuple[int, int]]:
    """Fixed ``(image index, slot)`` keys of the validation set: images in order, repeated if needed."""
    return [(i % num_images, i) for i in range(count)]


def collate(batch: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    return {key: torch.stack([item[key] for item in batch]) for key in batch[0]}


def training_batches(
    samples: InpaintingSamples, *, seed: int, batch: int, batch_gpu: int, workers: int, dist: DistInfo,
    start_nimg: int,
) -> Iterator[dict[str, torch.Tensor]]:
    """Endless rounds of ``batch_gpu`` samples on ``dist.device``: this rank's share of every global batch of
    ``batch`` images from ``start_nimg`` on (see :class:`SlotSampler`)."""
    sampler = SlotSampler(len(samples), seed=seed, batch=batch, rank=dist.rank, world=dist.world,
                          start_nimg=start_nimg)
    loader = DataLoader(
        samples,
        batch_size=batch_gpu,
        sampler=sampler,
        num_workers=workers,
        collate_fn=collate,
        pin_memory=dist.device.type == "cuda",
        persistent_workers=workers > 0,
        prefetch_factor=2 if workers > 0 else None,
    )
    for round_ in loader:
        yield {k: v.to(dist.device, non_blocking=True) for k, v in round_.items()}
