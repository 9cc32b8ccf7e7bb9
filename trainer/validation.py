"""What the loop measures on held-out samples: FID of G_ema and the image grids in ``images/``.

The validation samples are fixed (crops and masks by their keys, see :func:`trainer.data.validation_keys`), and
so are the latents and the noise (by ``eval.seed`` and the keys), so successive FIDs and grids of one run
compare the generator and nothing else.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import torch
from torch import Tensor, nn

from linop_core.errors import LinopError
from trainer.config import DataConfig, EvalConfig
from trainer.data import VALIDATION_STREAM, InpaintingSamples, SourceImage, collate, select_images, validation_keys
from trainer.distributed import DistInfo
from trainer.fid import FidEvaluator
from trainer.step import autocast, derive_seed

Key = tuple[int, int]


def validation_samples(
    root: Path, data: DataConfig, settings: EvalConfig, *, channels: int, train_images: list[SourceImage]
) -> InpaintingSamples:
    """The samples of split ``eval.split``; without FID, a root lacking that split falls back to the training images."""
    try:
        images = select_images(root, data, settings.split)
    except LinopError:
        if settings.every_kimg > 0:
            raise
        images = train_images  # image grids only: any fixed images will do
    return InpaintingSamples(images, data, channels=channels, seed=settings.seed, stream=VALIDATION_STREAM)


class FixedValidation:
    """G_ema inpainting the fixed validation samples; FID over ``eval.num_images`` of them, image grids."""

    def __init__(
        self, samples: InpaintingSamples, settings: EvalConfig, *, z_dim: int, device: torch.device,
        precision: torch.dtype | None,
    ) -> None:
        self.samples = samples
        self.settings = settings
        self.z_dim = z_dim
        self.device = device
        self.precision = precision

    def _batches(self, keys: list[Key]) -> Iterator[tuple[list[Key], dict[str, Tensor]]]:
        size = self.settings.batch
        for start in range(0, len(keys), size):
            chunk = keys[start : start + size]
            batch = collate([self.samples[k] for k in chunk])
            yield chunk, {k: v.to(self.device) for k, v in batch.items()}

    @torch.no_grad()
    def inpaint(self, G_ema: nn.Module, batch: dict[str, Tensor], chunk: list[Key]) -> tuple[Tensor, Tensor]:
        """G_ema's (output, stage-1 output) with latents and noise fixed by ``eval.seed`` and the keys."""
        seed = self.settings.seed
        z = torch.stack(
            [torch.randn(self.z_dim, generator=torch.Generator().manual_seed(derive_seed(seed, slot)))
             for _, slot in chunk]
        ).to(self.device)
        gen = torch.Generator(device=self.device)
        gen.manual_seed(derive_seed(seed, -1, chunk[0][1]))
        ws = G_ema.mapping(z, truncation_psi=1.0, truncation_cutoff=None, update_w_avg=False)
        with autocast(self.device, self.precision):
            out, stage1 = G_ema.synthesis(
                batch["img"], batch["mask"], ws, generator=gen, noise_mode="const", return_stage1=True
            )
        return out.float(), stage1.float()

    def fid(self, G_ema: nn.Module, fid: FidEvaluator, dist: DistInfo) -> float:
        """FID of G_ema on this rank's share of the ``eval.num_images`` samples (synced over ranks)."""
        keys = validation_keys(len(self.samples), self.settings.num_images)[dist.rank :: dist.world]
        add_real = fid.real_count == 0  # the real side never changes: computed once per run
        for chunk, batch in self._batches(keys):
            if add_real:
                fid.add_real(batch["img"])
            out, _ = self.inpaint(G_ema, batch, chunk)
            fid.add_fake(out)
        return fid.compute()

    @torch.no_grad()
    def image_grid(self, G_ema: nn.Module, count: int) -> Tensor:
        """(3, H, W) in [0, 1]: a row per sample of masked input, mask, stage-1 output and output."""
        from torchvision.utils import make_grid

        rows = []
        for chunk, batch in self._batches(validation_keys(len(self.samples), count)):
            out, stage1 = self.inpaint(G_ema, batch, chunk)
            masked = batch["img"] * batch["mask"]
            rows.append(torch.stack([masked, batch["mask"].expand_as(masked) * 2 - 1, stage1, out], dim=1))
        tiles = torch.cat(rows).flatten(0, 1).add(1).mul(0.5).clamp(0, 1).cpu()
        return make_grid(tiles, nrow=4, padding=2)
