"""The MAT training loop: G main, D main and lazy R1 phases, EMA, FID-based checkpoint choice, resume.

One :class:`Trainer` runs in every process. Per step, the global batch ``train.batch`` is split over the
processes and, inside each, into rounds of ``train.batch_gpu`` (gradient accumulation); the discriminator's
minibatch-stddev therefore sees ``batch_gpu`` images, as in the recipe. Phases per step, each with its own
optimizer step: G main, D main, and every ``optim.d_reg_interval`` steps D R1 (lazy regularisation, with
StyleGAN2's Adam learning-rate and beta correction for both networks).

Randomness is a pure function of ``(train.seed, rank, step)`` for latents, style mixing and the
generator's noise and dropout, and of ``(train.seed, slot)`` for the data (see :mod:`trainer.data`). So a
checkpoint needs only the weights, optimizer states, counters and the global RNG state to resume exactly:
on CPU an interrupted and resumed run ends with the same weights as an uninterrupted one.

What the run folder holds, and how it is written, is :mod:`trainer.run_files`.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import logging
import math
import os
import resource
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader

from linop_core.errors import LinopError, ModelError
from trainer import distributed as ddp
from trainer.config import Config, config_to_dict, dump_config
from trainer.data import (
    TRAIN_STREAM,
    VALIDATION_STREAM,
    InpaintingSamples,
    SlotSampler,
    SourceImage,
    collate,
    ensure_root,
    select_images,
    validation_keys,
)
from trainer.distributed import DistInfo
from trainer.fid import FidEvaluator
from trainer.metrics_log import append_metrics, truncate_metrics
from trainer.networks import load_initial_weights, resolve_model_config
from trainer.run_files import (
    STATE_FORMAT,
    STATE_VERSION,
    RunFiles,
    load_training_state,
    open_tensorboard,
    save_generator_checkpoint,
    save_run_file,
    write_image_grid,
    write_run_text,
)

_log = logging.getLogger("trainer.loop")

Progress = Callable[[int, int], None]


# ---------------------------------------------------------------------------------------------------------------
# Helpers


def derive_seed(*parts: int) -> int:
    """A 63-bit seed from integers (stable across processes and runs)."""
    digest = hashlib.blake2b(np.asarray(parts, dtype=np.int64).tobytes(), digest_size=8).digest()
    return int.from_bytes(digest, "little") & (2**63 - 1)


def crossed(before: int, after: int, period_kimg: float) -> bool:
    """True when ``after`` images passed a multiple of ``period_kimg`` that ``before`` had not."""
    if period_kimg <= 0:
        return False
    period = max(1, round(period_kimg * 1000))
    return after // period > before // period


def peak_memory_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def _requires_grad(module: nn.Module, flag: bool) -> None:
    for p in module.parameters():
        p.requires_grad_(flag)


def adam_for(params: Any, lr: float, betas: tuple[float, float], eps: float, reg_interval: int) -> torch.optim.Adam:
    """Adam with StyleGAN2's lazy-regularisation correction (ratio = interval / (interval + 1))."""
    ratio = reg_interval / (reg_interval + 1) if reg_interval > 0 else 1.0
    return torch.optim.Adam(
        params, lr=lr * ratio, betas=(betas[0] ** ratio, betas[1] ** ratio), eps=eps
    )


def _rng_state(device: torch.device) -> dict[str, Tensor]:
    state = {"torch_cpu": torch.get_rng_state()}
    if device.type == "cuda":
        state["torch_cuda"] = torch.cuda.get_rng_state(device)
    return state


def _set_rng_state(state: dict[str, Tensor], device: torch.device) -> None:
    torch.set_rng_state(state["torch_cpu"])
    if device.type == "cuda" and "torch_cuda" in state:
        torch.cuda.set_rng_state(state["torch_cuda"], device)


# ---------------------------------------------------------------------------------------------------------------
# The trainer


class Trainer:
    """Builds data, networks, optimizers and metrics for one process and runs the loop.

    Args:
        config: the run's configuration.
        out: the run folder.
        dist: this process's rank and device.
        resume: continue from ``out/last.pt``.
        progress: ``progress(done_images, total_images)`` after every step (rank 0 only).
        should_stop: polled after every step; when it returns True on any rank, the state is saved and
            :meth:`run` returns (a graceful interrupt).
    """

    def __init__(
        self,
        config: Config,
        out: str | os.PathLike[str],
        dist: DistInfo,
        *,
        resume: bool = False,
        progress: Progress | None = None,
        should_stop: Callable[[], bool] | None = None,
    ) -> None:
        # An absolute data root in the saved config, so --resume works from any working directory.
        root = str(Path(config.data.root).expanduser().resolve())
        self.config = config = dataclasses.replace(config, data=dataclasses.replace(config.data, root=root))
        self.files = RunFiles(Path(out))
        self.dist = dist
        self.device = dist.device
        self.progress = progress
        self.should_stop = should_stop or (lambda: False)
        self.resume = resume
        t = config.train
        per_rank = t.batch // dist.world
        # More GPUs than the config was written for: each simply takes a smaller share of the batch.
        self.batch_gpu = min(t.batch_gpu, per_rank) if per_rank else t.batch_gpu
        if t.batch % dist.world or per_rank % self.batch_gpu:
            raise LinopError(
                f"train.batch={t.batch} does not split evenly over {dist.world} process(es) in rounds of "
                f"train.batch_gpu={t.batch_gpu}; use a batch divisible by {dist.world} and a batch_gpu dividing "
                "batch / processes"
            )
        self.rounds = per_rank // self.batch_gpu
        self.total_nimg = round(t.total_kimg * 1000)
        self.cur_nimg = 0
        self.step = 0
        self.best_fid: float | None = None
        self.best_nimg: int | None = None
        self._stats: dict[str, list[Tensor]] = {}
        self._writer: Any = None
        self._tick_start = (time.time(), 0)
        self.autocast = self._autocast_dtype()
        self._setup()

    # -- setup ----------------------------------------------------------------------------------------------

    def _autocast_dtype(self) -> torch.dtype | None:
        if self.config.train.precision != "bf16":
            return None
        if self.device.type != "cuda":
            _log.warning("train.precision=bf16 needs a GPU; training in fp32 on %s", self.device)
            return None
        return torch.bfloat16

    def _setup(self) -> None:
        cfg = self.config
        from linop_core.model.presets import PRESETS, build_discriminator, build_generator

        if cfg.model.preset not in PRESETS:
            raise LinopError(f"model.preset {cfg.model.preset!r} is not one of {', '.join(sorted(PRESETS))}")
        self.mat_config = resolve_model_config(cfg.model.preset, cfg.model.overrides)
        resolution, channels = self.mat_config.resolution, self.mat_config.img_channels
        if cfg.data.resolution != resolution:
            raise LinopError(
                f"data.resolution={cfg.data.resolution} but preset {cfg.model.preset} is built for {resolution}; "
                f"set data.resolution={resolution}"
            )
        self.channels = channels

        # Data: rank 0 makes a phantom root if asked; the others wait for it.
        if self.dist.is_main:
            root = ensure_root(cfg.data)
        ddp.barrier(self.dist)
        if not self.dist.is_main:
            root = ensure_root(cfg.data, create=False)
        self.root = root
        train_images = select_images(root, cfg.data, cfg.data.split)
        self.train_set = InpaintingSamples(
            train_images, cfg.data, channels=channels, seed=cfg.train.seed, stream=TRAIN_STREAM
        )
        self.val_set = self._validation_set(root, train_images)

        # A resumed run must be the same model: check before building (and allocating) anything big.
        state = load_training_state(self.files.last) if self.resume else None
        if state is not None:
            self._check_state_model(state)

        # Networks: the same seeds everywhere, then rank 0's weights broadcast for certainty.
        seed = cfg.train.seed
        self.G = build_generator(self.mat_config, seed=derive_seed(seed, 1)).to(self.device).train()
        self.D = build_discriminator(self.mat_config, seed=derive_seed(seed, 2)).to(self.device).train()
        self.G_ema = copy.deepcopy(self.G).eval().requires_grad_(False)
        o = cfg.optim
        self.opt_G = adam_for(self.G.parameters(), o.g_lr, o.betas, o.eps, o.g_reg_interval)
        self.opt_D = adam_for(self.D.parameters(), o.d_lr, o.betas, o.eps, o.d_reg_interval)

        from linop_core.losses import MatLoss

        self.loss = MatLoss(cfg.loss).to(self.device)

        self.fid = (
            FidEvaluator(cfg.eval.feature, cfg.eval.inception_weights, self.device) if cfg.eval.every_kimg > 0 else None
        )

        if state is not None:
            self._load_state(state)
        elif cfg.model.init:
            source = load_initial_weights(Path(cfg.model.init), self.G, self.D, self.G_ema, self.mat_config)
            if self.dist.is_main:
                _log.info("initialised from %s: %s", cfg.model.init, source)
        for module in (self.G, self.D, self.G_ema):
            ddp.broadcast_module(module, self.dist)

        if self.dist.is_main:
            self.files.root.mkdir(parents=True, exist_ok=True)
            write_run_text(self.files.config, dump_config(cfg))
            if self.resume:
                truncate_metrics(self.files.metrics, self.cur_nimg)
            if cfg.log.tensorboard:
                self._writer = open_tensorboard(self.files, purge_step=self.cur_nimg or None)

    def _validation_set(self, root: Path, train_images: list[SourceImage]) -> InpaintingSamples:
        cfg = self.config
        try:
            images = select_images(root, cfg.data, cfg.eval.split)
        except LinopError:
            if cfg.eval.every_kimg > 0:
                raise
            images = train_images  # image grids only: any fixed images will do
        return InpaintingSamples(images, cfg.data, channels=self.channels, seed=cfg.eval.seed, stream=VALIDATION_STREAM)

    # -- state ----------------------------------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        """The full training state (collective: every rank must call it)."""
        rng = ddp.gather_objects(_rng_state(self.device), self.dist)
        from linop_core.model.presets import config_to_dict as model_config_to_dict

        return {
            "format": STATE_FORMAT,
            "version": STATE_VERSION,
            "torch_version": str(torch.__version__),
            "config": config_to_dict(self.config),
            "preset": self.config.model.preset,
            "model_config": model_config_to_dict(self.mat_config),
            "G": self.G.state_dict(),
            "D": self.D.state_dict(),
            "G_ema": self.G_ema.state_dict(),
            "opt_G": self.opt_G.state_dict(),
            "opt_D": self.opt_D.state_dict(),
            "cur_nimg": self.cur_nimg,
            "step": self.step,
            "best_fid": self.best_fid,
            "best_nimg": self.best_nimg,
            "fid_feature": self.fid.name if self.fid is not None else None,
            "world": self.dist.world,
            "rng": [{k: v.cpu() for k, v in r.items()} for r in rng],
        }

    def _check_state_model(self, state: dict[str, Any]) -> None:
        from linop_core.model.presets import config_to_dict as model_config_to_dict

        if state.get("model_config") != model_config_to_dict(self.mat_config):
            raise ModelError(
                self.files.last,
                f"this run trained preset {state.get('preset')!r} but the config asks for "
                f"{self.config.model.preset!r} (or other model.overrides); drop those overrides to resume",
            )

    def _load_state(self, state: dict[str, Any]) -> None:
        path = self.files.last
        try:
            self.G.load_state_dict(state["G"])
            self.D.load_state_dict(state["D"])
            self.G_ema.load_state_dict(state["G_ema"])
            self.opt_G.load_state_dict(state["opt_G"])
            self.opt_D.load_state_dict(state["opt_D"])
        except (KeyError, RuntimeError, ValueError) as exc:
            raise ModelError(path, f"training state does not fit the networks ({exc})") from exc
        self.cur_nimg = int(state["cur_nimg"])
        self.step = int(state["step"])
        self.best_fid = state.get("best_fid")
        self.best_nimg = state.get("best_nimg")
        fid_name = self.fid.name if self.fid is not None else None
        if self.best_fid is not None and state.get("fid_feature") != fid_name:
            _log.warning("FID feature changed (%s -> %s): best.pt is chosen afresh", state.get("fid_feature"), fid_name)
            self.best_fid, self.best_nimg = None, None
        rng = state.get("rng") or []
        if len(rng) == self.dist.world:
            _set_rng_state(rng[self.dist.rank], self.device)
        else:
            _log.warning(
                "resuming on %d processes (saved on %d): global RNG states not restored", self.dist.world, len(rng)
            )

    def save_last(self) -> None:
        state = self.state_dict()
        if self.dist.is_main:
            save_run_file(state, self.files.last)
        ddp.barrier(self.dist)

    def _save_generator(self, path: Path, *, with_training_nets: bool, extra: dict[str, Any]) -> None:
        save_generator_checkpoint(
            path, config=self.mat_config, preset=self.config.model.preset, G_ema=self.G_ema,
            G=self.G if with_training_nets else None, D=self.D if with_training_nets else None,
            extra={**extra, "train_config": config_to_dict(self.config), "source": "linop-train"},
        )

    # -- one step -------------------------------------------------------------------------------------------

    def _batches(self) -> Iterator[dict[str, Tensor]]:
        sampler = SlotSampler(
            len(self.train_set),
            seed=self.config.train.seed,
            batch=self.config.train.batch,
            rank=self.dist.rank,
            world=self.dist.world,
            start_nimg=self.cur_nimg,
        )
        workers = self.config.data.workers
        loader = DataLoader(
            self.train_set,
            batch_size=self.batch_gpu,
            sampler=sampler,
            num_workers=workers,
            collate_fn=collate,
            pin_memory=self.device.type == "cuda",
            persistent_workers=workers > 0,
            prefetch_factor=2 if workers > 0 else None,
        )
        for batch in loader:
            yield {k: v.to(self.device, non_blocking=True) for k, v in batch.items()}

    def _autocast(self) -> Any:
        if self.autocast is None:
            return torch.autocast(device_type=self.device.type, enabled=False)
        return torch.autocast(device_type=self.device.type, dtype=self.autocast)

    def _run_generator(self, img: Tensor, mask: Tensor, gen: torch.Generator) -> tuple[Tensor, Tensor]:
        """Training-time G: truncation, style mixing, random noise; returns (output, stage-1 output)."""
        lc = self.config.loss
        z_dim = self.mat_config.z_dim
        z = torch.randn((img.shape[0], z_dim), generator=gen, device=self.device)
        ws = self.G.mapping(z, truncation_psi=lc.truncation_psi, truncation_cutoff=None, update_w_avg=True)
        if lc.style_mixing_prob > 0:
            num_ws = ws.shape[1]
            mix = torch.rand((), generator=gen, device=self.device).item() < lc.style_mixing_prob
            cutoff = int(torch.randint(1, num_ws, (), generator=gen, device=self.device).item()) if num_ws > 1 else 1
            if mix and cutoff < num_ws:
                z2 = torch.randn((img.shape[0], z_dim), generator=gen, device=self.device)
                ws2 = self.G.mapping(z2, truncation_psi=lc.truncation_psi, truncation_cutoff=None, update_w_avg=False)
                ws = torch.cat([ws[:, :cutoff], ws2[:, cutoff:]], dim=1)
        out, stage1 = self.G.synthesis(img, mask, ws, generator=gen, noise_mode="random", return_stage1=True)
        return out, stage1

    def _record(self, parts: dict[str, Tensor]) -> None:
        # Kept as tensors: converting each to a float would synchronise the GPU every round.
        for key, value in parts.items():
            self._stats.setdefault(key, []).append(value.detach().float().reshape(()))

    def train_step(self, batches: list[dict[str, Tensor]]) -> None:
        """One optimizer step of every due phase on ``batches`` (this rank's rounds of the global batch)."""
        gen = torch.Generator(device=self.device)
        gen.manual_seed(derive_seed(self.config.train.seed, self.dist.rank, self.step))
        scale = 1.0 / len(batches)

        # G main.
        _requires_grad(self.G, True)
        _requires_grad(self.D, False)
        self.opt_G.zero_grad(set_to_none=True)
        for b in batches:
            with self._autocast():
                fake, fake1 = self._run_generator(b["img"], b["mask"], gen)
                terms = self.loss.generator_loss(self.D, fake.float(), fake1.float(), b["img"], b["mask"])
            (terms.total * scale).backward()
            self._record(terms.parts)
        ddp.reduce_gradients(self.G.parameters(), self.dist)
        self.opt_G.step()

        # D main, on fresh fakes.
        _requires_grad(self.G, False)
        _requires_grad(self.D, True)
        self.opt_D.zero_grad(set_to_none=True)
        for b in batches:
            with torch.no_grad(), self._autocast():
                fake, fake1 = self._run_generator(b["img"], b["mask"], gen)
            with self._autocast():
                terms = self.loss.discriminator_loss(self.D, fake.float(), fake1.float(), b["img"], b["mask"])
            (terms.total * scale).backward()
            self._record(terms.parts)
        ddp.reduce_gradients(self.D.parameters(), self.dist)
        self.opt_D.step()

        # Lazy R1 (in fp32: double backward in bf16 is not worth the risk).
        if self.config.loss.r1_gamma > 0 and self.loss.r1_due(self.step):
            self.opt_D.zero_grad(set_to_none=True)
            for b in batches:
                terms = self.loss.r1_loss(self.D, b["img"], b["mask"])
                (terms.total * scale).backward()
                self._record(terms.parts)
            ddp.reduce_gradients(self.D.parameters(), self.dist)
            self.opt_D.step()
        _requires_grad(self.G, True)
        self._update_ema()

    @torch.no_grad()
    def _update_ema(self) -> None:
        t = self.config.train
        ema_nimg = t.ema_kimg * 1000
        if t.ema_rampup is not None:
            ema_nimg = min(ema_nimg, (self.cur_nimg + t.batch) * t.ema_rampup)
        beta = 0.5 ** (t.batch / max(ema_nimg, 1e-8))
        for p_ema, p in zip(self.G_ema.parameters(), self.G.parameters(), strict=True):
            p_ema.copy_(p.detach().lerp(p_ema, beta))
        for b_ema, b in zip(self.G_ema.buffers(), self.G.buffers(), strict=True):
            b_ema.copy_(b)

    # -- evaluation ------------------------------------------------------------------------------------------

    def _val_batches(self, keys: list[tuple[int, int]]) -> Iterator[tuple[list[tuple[int, int]], dict[str, Tensor]]]:
        size = self.config.eval.batch
        for start in range(0, len(keys), size):
            chunk = keys[start : start + size]
            batch = collate([self.val_set[k] for k in chunk])
            yield chunk, {k: v.to(self.device) for k, v in batch.items()}

    @torch.no_grad()
    def _inpaint_fixed(self, batch: dict[str, Tensor], chunk: list[tuple[int, int]]) -> tuple[Tensor, Tensor]:
        """G_ema on validation samples with latents and noise fixed by ``eval.seed`` and the keys."""
        seed = self.config.eval.seed
        z_dim = self.mat_config.z_dim
        z = torch.stack(
            [torch.randn(z_dim, generator=torch.Generator().manual_seed(derive_seed(seed, slot))) for _, slot in chunk]
        ).to(self.device)
        gen = torch.Generator(device=self.device)
        gen.manual_seed(derive_seed(seed, -1, chunk[0][1]))
        ws = self.G_ema.mapping(z, truncation_psi=1.0, truncation_cutoff=None, update_w_avg=False)
        with self._autocast():
            out, stage1 = self.G_ema.synthesis(
                batch["img"], batch["mask"], ws, generator=gen, noise_mode="const", return_stage1=True
            )
        return out.float(), stage1.float()

    def evaluate_fid(self) -> float:
        """FID of G_ema on this rank's share of the fixed validation set (synced over ranks)."""
        assert self.fid is not None
        keys = validation_keys(len(self.val_set), self.config.eval.num_images)[self.dist.rank :: self.dist.world]
        add_real = self.fid.real_count == 0
        for chunk, batch in self._val_batches(keys):
            if add_real:
                self.fid.add_real(batch["img"])
            out, _ = self._inpaint_fixed(batch, chunk)
            self.fid.add_fake(out)
        return self.fid.compute()

    @torch.no_grad()
    def _write_images(self) -> None:
        from torchvision.utils import make_grid

        count = min(self.config.log.image_count, max(1, self.config.eval.num_images))
        keys = validation_keys(len(self.val_set), count)
        rows = []
        for chunk, batch in self._val_batches(keys):
            out, stage1 = self._inpaint_fixed(batch, chunk)
            masked = batch["img"] * batch["mask"]
            rows.append(torch.stack([masked, batch["mask"].expand_as(masked) * 2 - 1, stage1, out], dim=1))
        tiles = torch.cat(rows).flatten(0, 1).add(1).mul(0.5).clamp(0, 1).cpu()
        grid = make_grid(tiles, nrow=4, padding=2)
        if self._writer is not None:
            self._writer.add_image("images/input_mask_stage1_output", grid, self.cur_nimg)
        write_image_grid(self.files.image_grid(self.cur_nimg), grid)

    # -- logging ---------------------------------------------------------------------------------------------

    def _log_tick(self) -> dict[str, float]:
        means = {k: float(torch.stack(v).mean()) for k, v in sorted(self._stats.items())}
        means = ddp.mean_over_ranks(means, self.dist)
        self._stats.clear()
        now = time.time()
        start_time, start_nimg = self._tick_start
        self._tick_start = (now, self.cur_nimg)
        done = max(1, self.cur_nimg - start_nimg)
        record = {
            **means,
            "lr/G": self.opt_G.param_groups[0]["lr"],
            "lr/D": self.opt_D.param_groups[0]["lr"],
            "time/sec_per_kimg": (now - start_time) / done * 1000,
            "mem/peak_mb": peak_memory_mb(self.device),
        }
        for key, value in record.items():
            if not math.isfinite(value) and key.startswith(("G/", "D/")):
                _log.warning("non-finite %s at %.1f kimg", key, self.cur_nimg / 1000)
        if self.dist.is_main:
            kimg = self.cur_nimg / 1000
            append_metrics(self.files.metrics, {"kind": "train", "nimg": self.cur_nimg, "kimg": kimg, **record})
            if self._writer is not None:
                for key, value in record.items():
                    self._writer.add_scalar(key, value, self.cur_nimg)
        return record

    def _after_fid(self, value: float) -> None:
        assert self.fid is not None
        kimg = self.cur_nimg / 1000
        improved = self.best_fid is None or value < self.best_fid
        if improved:
            self.best_fid, self.best_nimg = value, self.cur_nimg
        if not self.dist.is_main:
            return
        record = {"kind": "fid", "nimg": self.cur_nimg, "kimg": kimg, "fid": value, "fid_feature": self.fid.name,
                  "num_images": self.config.eval.num_images, "best": improved}
        append_metrics(self.files.metrics, record)
        if self._writer is not None:
            self._writer.add_scalar(f"fid/{self.fid.name}", value, self.cur_nimg)
        _log.info("FID[%s] %.3f at %.3f kimg%s", self.fid.name, value, kimg, " (best)" if improved else "")
        if improved:
            self._save_generator(self.files.best, with_training_nets=False,
                                 extra={"training_kimg": kimg, "fid": value, "fid_feature": self.fid.name})

    # -- the loop --------------------------------------------------------------------------------------------

    def run(self) -> dict[str, Any]:
        """Train until ``train.total_kimg`` or a stop request; return a summary."""
        cfg = self.config
        log = cfg.log
        if self.dist.is_main:
            _log.info(
                "training %s on %d image(s), %d process(es) × %d round(s) × batch %d, from %.3f to %.3f kimg",
                cfg.model.preset, len(self.train_set), self.dist.world, self.rounds, self.batch_gpu,
                self.cur_nimg / 1000, self.total_nimg / 1000,
            )
        stopped = False
        last_saved = self.cur_nimg if self.resume else -1
        self._tick_start = (time.time(), self.cur_nimg)
        batches = self._batches()
        while self.cur_nimg < self.total_nimg:
            try:
                rounds = [next(batches) for _ in range(self.rounds)]
            except Exception:
                # A stop signal also reaches DataLoader workers, which then die mid-fetch: no step has started,
                # so the state is consistent and can be saved.
                if self.should_stop():
                    self.save_last()
                    stopped = True
                    break
                raise
            try:
                self.train_step(rounds)
            except torch.OutOfMemoryError as exc:
                raise LinopError(
                    f"out of GPU memory at train.batch_gpu={self.batch_gpu} ({str(exc).splitlines()[0]}); "
                    f"lower train.batch_gpu (the global batch stays {cfg.train.batch} by gradient accumulation) "
                    f"and continue with `linop-train --resume {self.files.root} --set train.batch_gpu=N`"
                ) from None
            before = self.cur_nimg
            self.cur_nimg += cfg.train.batch
            self.step += 1
            if self.progress is not None and self.dist.is_main:
                self.progress(min(self.cur_nimg, self.total_nimg), self.total_nimg)
            final = self.cur_nimg >= self.total_nimg
            if crossed(before, self.cur_nimg, log.tick_kimg) or final:
                self._log_tick()
            if self.fid is not None and (crossed(before, self.cur_nimg, cfg.eval.every_kimg) or final):
                self._after_fid(self.evaluate_fid())
            if self.dist.is_main and (crossed(before, self.cur_nimg, log.image_kimg) or final):
                self._write_images()
            if crossed(before, self.cur_nimg, log.snapshot_kimg) and self.dist.is_main:
                self._save_generator(self.files.snapshot(self.cur_nimg), with_training_nets=True,
                                     extra={"training_kimg": self.cur_nimg / 1000})
            stop = ddp.any_rank(bool(self.should_stop()), self.dist)
            if crossed(before, self.cur_nimg, log.checkpoint_kimg) or final or stop:
                self.save_last()
                last_saved = self.cur_nimg
            if stop and not final:
                stopped = True
                break
        if last_saved != self.cur_nimg:
            self.save_last()
        if self._writer is not None:
            self._writer.close()
        return {
            "kimg": self.cur_nimg / 1000,
            "step": self.step,
            "stopped": stopped,
            "best_fid": self.best_fid,
            "best_kimg": None if self.best_nimg is None else self.best_nimg / 1000,
            "fid_feature": self.fid.name if self.fid is not None else None,
        }
