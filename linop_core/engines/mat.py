"""MAT inference on a torch device (our checkpoints or imported official ones)."""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from linop_core.engines.base import ProgressFn, check_inputs
from linop_core.engines.device import is_out_of_memory, pick_device, release_memory, resolve_dtype
from linop_core.errors import LinopError, ModelError
from linop_core.hashing import sha256_file
from linop_core.model.checkpoint import load_generator
from linop_core.precision import dtype_name

_log = logging.getLogger("linop_core.engines")


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
        precision: str | None = None,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if noise_mode not in ("const", "random", "none"):
            raise LinopError(f"noise mode {noise_mode!r} is not one of const, random, none")
        self.device = pick_device(device)
        self.dtype = resolve_dtype(dtype, self.device)
        if isinstance(model, tuple):
            generator, checkpoint = model
            path = getattr(checkpoint, "path", None)
            self.source = str(path) if path is not None else None
            self.checkpoint_sha256 = _sha256_if_file(path)
        else:
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
        # what the user asked for ("auto", "bf16", ...), recorded beside the dtype it resolved to
        self.precision = precision or dtype_name(self.dtype)

    def provenance(self) -> dict[str, Any]:
        return {
            "engine": self.name,
            "model_name": self.model_name,
            "checkpoint_sha256": self.checkpoint_sha256,
            "checkpoint_path": self.source,
            "device": str(self.device),
            "dtype": dtype_name(self.dtype),
            "precision": self.precision,
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
        check_inputs(images, keep, seeds, self.resolution)
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
                if not is_out_of_memory(exc):
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
                release_memory(self.device)
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
    return sha256_file(path)
