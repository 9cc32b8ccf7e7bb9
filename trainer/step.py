"""One optimisation step of MAT's GAN: G main, D main and lazy R1 phases, then the generator's EMA.

Each phase takes one optimizer step over all rounds of this process's share of the global batch (gradient
accumulation), after averaging the gradients over processes (:func:`trainer.distributed.reduce_gradients`).
The step's randomness (latents, style mixing, the generator's noise and dropout) comes from the
``torch.Generator`` passed in; :mod:`trainer.loop` seeds it from ``(train.seed, rank, step)``.
"""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from linop_core.losses import MatLoss
from trainer import distributed as ddp
from trainer.config import LossConfig, TrainConfig
from trainer.distributed import DistInfo

Batch = dict[str, Tensor]
LossParts = dict[str, Tensor]


def derive_seed(*parts: int) -> int:
    """A 63-bit seed from integers (stable across processes and runs)."""
    digest = hashlib.blake2b(np.asarray(parts, dtype=np.int64).tobytes(), digest_size=8).digest()
    return int.from_bytes(digest, "little") & (2**63 - 1)


def autocast(device: torch.device, dtype: torch.dtype | None) -> Any:
    """``torch.autocast`` to ``dtype`` on ``device``, or switched off (fp32) when ``dtype`` is None."""
    if dtype is None:
        return torch.autocast(device_type=device.type, enabled=False)
    return torch.autocast(device_type=device.type, dtype=dtype)


def adam_for(params: Any, lr: float, betas: tuple[float, float], eps: float, reg_interval: int) -> torch.optim.Adam:
    """Adam with StyleGAN2's lazy-regularisation correction (ratio = interval / (interval + 1))."""
    ratio = reg_interval / (reg_interval + 1) if reg_interval > 0 else 1.0
    return torch.optim.Adam(
        params, lr=lr * ratio, betas=(betas[0] ** ratio, betas[1] ** ratio), eps=eps
    )


def _requires_grad(module: nn.Module, flag: bool) -> None:
    for p in module.parameters():
        p.requires_grad_(flag)


class GanStep:
    """The G main, D main and (when due) R1 phases of one step, on the given networks, optimizers and loss.

    Args:
        loss_config: the ``loss`` section; its ``truncation_psi`` and ``style_mixing_prob`` shape the latents.
        precision: the autocast dtype of the forward passes (None: fp32); R1 always runs in fp32.
    """

    def __init__(
        self,
        G: nn.Module,
        D: nn.Module,
        opt_G: torch.optim.Optimizer,
        opt_D: torch.optim.Optimizer,
        loss: MatLoss,
        loss_config: LossConfig,
        *,
        z_dim: int,
        dist: DistInfo,
        precision: torch.dtype | None,
    ) -> None:
        self.G, self.D, self.opt_G, self.opt_D = G, D, opt_G, opt_D
        self.loss = loss
        self.loss_config = loss_config
        self.z_dim = z_dim
        self.dist = dist
        self.device = dist.device
        self.precision = precision

    def generate(self, img: Tensor, mask: Tensor, gen: torch.Generator) -> tuple[Tensor, Tensor]:
        """Training-time G: truncation, style mixing, random noise; returns (output, stage-1 output)."""
        lc = self.loss_config
        z = torch.randn((img.shape[0], self.z_dim), generator=gen, device=self.device)
        ws = self.G.mapping(z, truncation_psi=lc.truncation_psi, truncation_cutoff=None, update_w_avg=True)
        if lc.style_mixing_prob > 0:
            num_ws = ws.shape[1]
            mix = torch.rand((), generator=gen, device=self.device).item() < lc.style_mixing_prob
            cutoff = int(torch.randint(1, num_ws, (), generator=gen, device=self.device).item()) if num_ws > 1 else 1
            if mix and cutoff < num_ws:
                z2 = torch.randn((img.shape[0], self.z_dim), generator=gen, device=self.device)
                ws2 = self.G.mapping(z2, truncation_psi=lc.truncation_psi, truncation_cutoff=None, update_w_avg=False)
                ws = torch.cat([ws[:, :cutoff], ws2[:, cutoff:]], dim=1)
        out, stage1 = self.G.synthesis(img, mask, ws, generator=gen, noise_mode="random", return_stage1=True)
        return out, stage1

    def __call__(self, batches: list[Batch], gen: torch.Generator, step: int) -> list[LossParts]:
        """Run every due phase on ``batches`` (this rank's rounds); returns the logged parts of every round."""
        scale = 1.0 / len(batches)
        logged: list[LossParts] = []

        # G main.
        _requires_grad(self.G, True)
        _requires_grad(self.D, False)
        self.opt_G.zero_grad(set_to_none=True)
        for b in batches:
            with autocast(self.device, self.precision):
                fake, fake1 = self.generate(b["img"], b["mask"], gen)
                terms = self.loss.generator_loss(self.D, fake.float(), fake1.float(), b["img"], b["mask"])
            (terms.total * scale).backward()
            logged.append(terms.parts)
        ddp.reduce_gradients(self.G.parameters(), self.dist)
        self.opt_G.step()

        # D main, on fresh fakes.
        _requires_grad(self.G, False)
        _requires_grad(self.D, True)
        self.opt_D.zero_grad(set_to_none=True)
        for b in batches:
            with torch.no_grad(), autocast(self.device, self.precision):
                fake, fake1 = self.generate(b["img"], b["mask"], gen)
            with autocast(self.device, self.precision):
                terms = self.loss.discriminator_loss(self.D, fake.float(), fake1.float(), b["img"], b["mask"])
            (terms.total * scale).backward()
            logged.append(terms.parts)
        ddp.reduce_gradients(self.D.parameters(), self.dist)
        self.opt_D.step()

        # Lazy R1 (in fp32: double backward in bf16 is not worth the risk).
        if self.loss.r1_due(step):
            self.opt_D.zero_grad(set_to_none=True)
            for b in batches:
                terms = self.loss.r1_loss(self.D, b["img"], b["mask"])
                (terms.total * scale).backward()
                logged.append(terms.parts)
            ddp.reduce_gradients(self.D.parameters(), self.dist)
            self.opt_D.step()
        _requires_grad(self.G, True)
        return logged


def ema_beta(train: TrainConfig, cur_nimg: int) -> float:
    """The EMA decay per step of ``train.batch`` images: half-life ``train.ema_kimg``, ramped up if asked."""
    ema_nimg = train.ema_kimg * 1000
    if train.ema_rampup is not None:
        ema_nimg = min(ema_nimg, (cur_nimg + train.batch) * train.ema_rampup)
    return 0.5 ** (train.batch / max(ema_nimg, 1e-8))


@torch.no_grad()
def update_ema(G_ema: nn.Module, G: nn.Module, beta: float) -> None:
    """G_ema <- beta * G_ema + (1 - beta) * G for parameters; buffers are copied."""
    for p_ema, p in zip(G_ema.parameters(), G.parameters(), strict=True):
        p_ema.copy_(p.detach().lerp(p_ema, beta))
    for b_ema, b in zip(G_ema.buffers(), G.buffers(), strict=True):
        b_ema.copy_(b)
