"""Generation engines behind one interface: MAT (our checkpoints or imported official ones) and a classical
biharmonic baseline that needs no weights.

An engine fills the holes of a stack of single-channel images::

    engine.generate(images, keep, seeds, progress=None) -> filled
        images (N, H, W) float32 in [0, 1]; keep (N, H, W) bool, True = known pixel;
        seeds: one int per image; returns (N, H, W) float32 in [0, 1] with the known pixels unchanged.

``H`` and ``W`` must be multiples of ``engine.resolution`` (the side synthesis resizes its windows to).
Candidate ``i`` depends only on ``images[i]``, ``keep[i]`` and ``seeds[i]``: the same whether generated alone
or in a batch.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np
import torch
from skimage.restoration import inpaint_biharmonic

from linop_core.errors import LinopError, ModelError

ProgressFn = Callable[[int, int], None]

_log = logging.getLogger("linop_core.engines")


@runtime_checkable
class Engine(Protocol):
    """What synthesis needs from a generator of hole contents."""

    name: str  # "mat" | "biharmonic"
    resolution: int  # model window side; generate() takes H, W that are multiples of it
    model_name: str | None  # preset name, None without a model
    checkpoint_sha256: str | None
    seed_used: bool  # False when the output does not depend on the seed (deterministic engines)

    def generate(
        self,
        images: np.ndarray,
        keep: np.ndarray,
        seeds: Sequence[int],
        progress: ProgressFn | None = None,
    ) -> np.ndarray: ...

    def provenance(self) -> dict[str, Any]: ...


def _check_inputs(images: np.ndarray, keep: np.ndarray, seeds: Sequence[int], resolution: int) -> None:
    if images.ndim != 3:
        raise ValueError(f"images must be (N, H, W), got shape {images.shape}")
    if keep.shape != images.shape:
        raise ValueError(f"keep mask shape {keep.shape} differs from images shape {images.shape}")
    if keep.dtype != np.bool_:
        raise ValueError(f"keep must be a bool mask (True = known), got dtype {keep.dtype}")
    if len(seeds) != images.shape[0]:
        raise ValueError(f"{len(seeds)} seeds for {images.shape[0]} images; give one seed per image")
    h, w = images.shape[1:]
    if h % resolution or w % resolution:
        raise ValueError(f"image size {h}x{w} is not a multiple of the engine resolution {resolution}")


# ----------------------------------------------------------------------------------------------- device


def pick_device(override: str | torch.device | None = None) -> torch.device:
    """The torch device to run on: ``override`` if given ("cpu", "cuda", "cuda:1", "mps", "auto"),
    else CUDA, then Apple MPS, then the CPU. Raises :class:`LinopError` for a device this machine lacks."""
    if isinstance(override, torch.device):
        override = str(override)
    choice = (override or "auto").strip().lower()
    if choice == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(choice)
    except RuntimeError:
        raise LinopError(
            f"device {override!r} is not a device name; use auto, cpu, cuda, cuda:N or mps"
        ) from None
    if device.type == "cpu":
        return device
    if device.type == "cuda":
        if not torch.backends.cuda.is_built():
            raise LinopError(
                f"device {override!r}: this PyTorch build has no CUDA support; install a CUDA build of torch "
                "or use --device cpu"
            )
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise LinopError(
                f"device {override!r}: no CUDA GPU is visible (driver missing or CUDA_VISIBLE_DEVICES empty); "
                "use --device cpu"
            )
        if device.index is not None and device.index >= count:
            raise LinopError(
                f"device {override!r}: this machine has {count} CUDA device(s) (cuda:0..cuda:{count - 1}); "
                "pick one of those"
            )
        return device
    if device.type == "mps":
        if not torch.backends.mps.is_available():
            raise LinopError(
                f"device {override!r}: Apple MPS is not available here (needs macOS 12.3+ on Apple silicon "
                "and an MPS build of torch); use --device cpu"
            )
        return device
    raise LinopError(f"device {override!r} is not supported; use auto, cpu, cuda, cuda:N or mps")


_DTYPES = {
    "float32": torch.float32, "fp32": torch.float32,
    "float16": torch.float16, "fp16": torch.float16, "half": torch.float16,
    "bfloat16": torch.bfloat16, "bf16": torch.bfloat16,
}


def _resolve_dtype(dtype: str | torch.dtype | None, device: torch.device) -> torch.dtype:
    if dtype is None:
        return torch.float32
    if isinstance(dtype, str):
        try:
            dtype = _DTYPES[dtype.lower()]
        except KeyError:
            raise LinopError(f"dtype {dtype!r} is not supported; use float32, float16 or bfloat16") from None
    if dtype not in (torch.float32, torch.float16, torch.bfloat16):
        raise LinopError(f"dtype {dtype} is not supported; use float32, float16 or bfloat16")
    if dtype == torch.float16 and device.type == "cpu":
        raise LinopError("float16 needs a GPU; on the CPU use float32 or bfloat16")
    return dtype


def _is_out_of_memory(exc: BaseException) -> bool:
    if isinstance(exc, torch.cuda.OutOfMemoryError):
        return True
    # MPS and some CUDA paths raise a plain RuntimeError.
    return isinstance(exc, RuntimeError) and "out of memory" in str(exc).lower()


def _release_memory(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.empty_cache()
    elif device.type == "mps":
        torch.mps.empty_cache()


# ----------------------------------------------------------------------------------------------- MAT


class MatEngine:
    """MAT inference on a torch device.

    ``model`` is a checkpoint path (our format, see :mod:`linop_core.model.checkpoint`) or an already loaded
    ``(generator, checkpoint)`` pair. Single-channel models take the gray image; a 3-channel model (an
    imported official RGB one) gets it replicated to 3 channels and its 3 outputs averaged.

    Randomness: all of candidate ``i``'s random inputs (z, the two style-manipulation keep maps that stand in
    for MAT's inference-time dropout, and with ``noise_mode="random"`` the stage-2 noise) are drawn on the CPU
    from ``torch.Generator().manual_seed(seed)`` and passed to the network explicitly, so a seed gives the
    same candidate alone or in any batch, on every device (up to floating-point differences between
    devices). ``noise_mode`` "const" (the default, as in MAT's official inference) uses the model's stored
    noise, "none" adds none.

    ``dtype`` float16/bfloat16 runs the network under ``torch.autocast``. On GPU out-of-memory the batch is
    halved and retried (the smaller size is kept for later calls); at batch size 1 a :class:`ModelError`
    says what to do.
    """

    name = "mat"
    seed_used = True

    def __init__(
        self,
        model: str | os.PathLike[str] | tuple[torch.nn.Module, Any],
        device: str | torch.device | None = None,
        dtype: str | torch.dtype | None = None,
        batch_size: int = 8,
        *,
        truncation_psi: float = 1.0,
        noise_mode: str = "const",
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if noise_mode not in ("const", "random", "none"):
            raise LinopError(f"noise mode {noise_mode!r} is not one of const, random, none")
        self.device = pick_device(device)
        self.dtype = _resolve_dtype(dtype, self.device)
        if isinstance(model, tuple):
            generator, checkpoint = model
            path = getattr(checkpoint, "path", None)
            self.source = str(path) if path is not None else None
            self.checkpoint_sha256 = _sha256_if_file(path)
        else:
            from linop_core.model.checkpoint import load_generator, sha256_file

            generator, checkpoint = load_generator(model, device="cpu")
            self.source = str(model)
            self.checkpoint_sha256 = sha256_file(model)
        config = checkpoint.config
        self.model_name: str | None = checkpoint.preset
        self.resolution = int(config.resolution)
        self.img_channels = int(config.img_channels)
        self.z_dim = int(config.z_dim)
        if self.img_channels not in (1, 3):
            raise ModelError(self.source, f"the model has {self.img_channels} image channels; LINOP runs 1 or 3")
        self.generator = generator.eval().requires_grad_(False).to(self.device)
        self.batch_size = batch_size
        self.truncation_psi = float(truncation_psi)
        self.noise_mode = noise_mode

    def provenance(self) -> dict[str, Any]:
        return {
            "engine": self.name,
            "model_name": self.model_name,
            "checkpoint_sha256": self.checkpoint_sha256,
            "checkpoint_path": self.source,
            "device": str(self.device),
            "dtype": str(self.dtype).removeprefix("torch."),
            "noise_mode": self.noise_mode,
            "truncation_psi": self.truncation_psi,
            "seed_used": True,
        }

    def generate(
        self,
        images: np.ndarray,
        keep: np.ndarray,
        seeds: Sequence[int],
        progress: ProgressFn | None = None,
    ) -> np.ndarray:
        """Fill the holes: see the module docstring for shapes and guarantees."""
        _check_inputs(images, keep, seeds, self.resolution)
        images = np.asarray(images, dtype=np.float32)
        total = images.shape[0]
        out = np.empty_like(images)
        done = 0
        while done < total:
            size = min(self.batch_size, total - done)
            part = slice(done, done + size)
            try:
                out[part] = self._run_batch(images[part], keep[part], seeds[part])
            except Exception as exc:
                if not _is_out_of_memory(exc):
                    raise
                if size == 1:
                    raise ModelError(
                        self.source,
                        f"out of memory on {self.device} even with batch size 1 at "
                        f"{images.shape[1]}x{images.shape[2]}; close other programs using the GPU, "
                        "use a smaller model, or run on the CPU (device 'cpu')",
                    ) from exc
                exc.__traceback__ = None  # drop the frames that hold the failed batch's tensors
                out_of_memory = True
            else:
                out_of_memory = False
            if out_of_memory:
                _release_memory(self.device)
                self.batch_size = max(1, size // 2)
                _log.warning("out of memory on %s with batch size %d; retrying with %d",
                             self.device, size, self.batch_size)
                continue
            done += size
            if progress is not None:
                progress(done, total)
        np.copyto(out, images, where=keep)
        return out

    def _random_inputs(
        self, seeds: Sequence[int], height: int, width: int
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor], dict[str, torch.Tensor]]:
        """Every random tensor of the batch, each candidate's drawn from its own CPU generator.

        Per seed, in this order: z (1, z_dim), the stage-1 keep map, the stage-2 keep map, then (noise mode
        "random" only) the stage-2 noise of every layer in decoder order. Drawing on the CPU makes a seed give
        the same candidate on every device and in every batch.
        """
        synthesis = self.generator.synthesis
        shape1, shape2 = synthesis.keep_map_shapes(1, height, width)
        noise_shapes = synthesis.noise_shapes(height, width) if self.noise_mode == "random" else {}
        zs, keeps1, keeps2 = [], [], []
        noises: dict[str, list[torch.Tensor]] = {name: [] for name in noise_shapes}
        for seed in seeds:
            rng = torch.Generator().manual_seed(int(seed))
            zs.append(torch.randn((1, self.z_dim), generator=rng))
            keeps1.append(torch.empty(shape1).bernoulli_(0.5, generator=rng))
            keeps2.append(torch.empty(shape2).bernoulli_(0.5, generator=rng))
            for name, (h, w) in noise_shapes.items():
                noises[name].append(torch.randn((1, 1, h, w), generator=rng))
        device = self.device
        z = torch.cat(zs).to(device)
        maps = (torch.cat(keeps1).to(device), torch.cat(keeps2).to(device))
        noise = {name: torch.cat(parts).to(device) for name, parts in noises.items()}
        return z, maps, noise

    @torch.inference_mode()
    def _run_batch(self, images: np.ndarray, keep: np.ndarray, seeds: Sequence[int]) -> np.ndarray:
        height, width = images.shape[1:]
        x = torch.from_numpy(np.ascontiguousarray(images)).to(self.device)[:, None] * 2.0 - 1.0
        mask = torch.from_numpy(np.ascontiguousarray(keep)).to(self.device, torch.float32)[:, None]
        if self.img_channels == 3:
            x = x.expand(-1, 3, -1, -1)
        z, maps, noise = self._random_inputs(seeds, height, width)
        autocast = (contextlib.nullcontext() if self.dtype == torch.float32
                    else torch.autocast(self.device.type, dtype=self.dtype))
        with autocast:
            y = self.generator(
                x, mask, z, truncation_psi=self.truncation_psi, noise_mode=self.noise_mode,
                noise=noise or None, dropout_maps=maps,
            )
        y = y.float().mean(dim=1) if y.shape[1] > 1 else y.float()[:, 0]
        unit = ((y + 1.0) * 0.5).clamp_(0.0, 1.0)
        return unit.cpu().numpy()


def _sha256_if_file(path: Any) -> str | None:
    if path is None or not Path(path).is_file():
        return None
    from linop_core.model.checkpoint import sha256_file

    return sha256_file(path)


# ----------------------------------------------------------------------------------------------- biharmonic


class BiharmonicEngine:
    """Classical baseline: biharmonic inpainting (scikit-image), no weights.

    Deterministic: the seed does not change the result (``seed_used`` is False and provenance says so).
    It solves a sparse system over the hole pixels, so cost grows fast with hole size (measured on 2 CPU
    cores: 0.2 s for a 30 % hole at 256 x 256, 0.7 s for a 96 % hole at 256, 1.2-3.6 s for 30-60 % at 512).
    ``resolution`` is the window side synthesis resizes to (default 256); images larger than ``max_side``
    (default 512) are refused rather than left to run for minutes.
    """

    name = "biharmonic"
    model_name: str | None = None
    checkpoint_sha256: str | None = None
    seed_used = False

    def __init__(self, resolution: int = 256, *, max_side: int = 512) -> None:
        if resolution < 8 or resolution > max_side:
            raise ValueError(f"resolution must be in [8, max_side={max_side}], got {resolution}")
        self.resolution = int(resolution)
        self.max_side = int(max_side)

    def provenance(self) -> dict[str, Any]:
        return {
            "engine": self.name,
            "model_name": None,
            "checkpoint_sha256": None,
            "resolution": self.resolution,
            "seed_used": False,
            "note": "deterministic (skimage.restoration.inpaint_biharmonic); seeds do not change the output",
        }

    def generate(
        self,
        images: np.ndarray,
        keep: np.ndarray,
        seeds: Sequence[int],
        progress: ProgressFn | None = None,
    ) -> np.ndarray:
        """Fill the holes: see the module docstring for shapes and guarantees (seeds are ignored)."""
        _check_inputs(images, keep, seeds, self.resolution)
        h, w = images.shape[1:]
        if max(h, w) > self.max_side:
            raise LinopError(
                f"biharmonic inpainting at {h}x{w} would take minutes; it runs up to {self.max_side} px a side "
                "(use a smaller engine resolution or the MAT engine)"
            )
        images = np.asarray(images, dtype=np.float32)
        out = np.empty_like(images)
        solved: dict[bytes, np.ndarray] = {}  # identical requests differ only by seed: solve once
        total = images.shape[0]
        for i in range(total):
            key = hashlib.sha1(images[i].tobytes() + np.packbits(keep[i]).tobytes()).digest()
            if key not in solved:
                solved[key] = self._solve(images[i], keep[i])
            out[i] = solved[key]
            if progress is not None:
                progress(i + 1, total)
        return out

    @staticmethod
    def _solve(image: np.ndarray, keep: np.ndarray) -> np.ndarray:
        if keep.all():
            return image.copy()
        if not keep.any():
            raise LinopError("biharmonic inpainting needs some known pixels; the whole window is a hole")
        filled = inpaint_biharmonic(image, ~keep, split_into_regions=True).astype(np.float32)
        np.clip(filled, 0.0, 1.0, out=filled)
        filled[keep] = image[keep]
        return filled
