"""The MAT training loop: G main, D main and lazy R1 phases, EMA, FID-based checkpoint choice, resume.

One :class:`Trainer` runs in every process. Per step, the global batch ``train.batch`` is split over the
processes and, inside each, into rounds of ``train.batch_gpu`` (gradient accumulation); the discriminator's
minibatch-stddev therefore sees ``batch_gpu`` images, as in the recipe. Phases per step, each with its own
optimizer step (:mod:`trainer.step`): G main, D main, and every ``optim.d_reg_interval`` steps D R1 (lazy
regularisation, with StyleGAN2's Adam learning-rate and beta correction for both networks).

Randomness is a pure function of ``(train.seed, rank, step)`` for latents, style mixing and the
generator's noise and dropout, and of ``(train.seed, slot)`` for the data (see :mod:`trainer.data`). So a
checkpoint needs only the weights, optimizer states, counters and the global RNG state to resume exactly:
on CPU an interrupted and resumed run ends with the same weights as an uninterrupted one.

What the run folder holds, and how it is written, is :mod:`trainer.run_files`.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import resource
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from linop_core.errors import LinopError, ModelError
from trainer import distributed as ddp
from trainer.config import Config, config_to_dict, dump_config
from trainer.data import TRAIN_STREAM, InpaintingSamples, ensure_root, select_images, training_batches
from trainer.distributed import DistInfo
from trainer.fid import FidEvaluator
from trainer.metrics_log import append_metrics, truncate_metrics
from trainer.networks import build_networks, load_initial_weights, run_model_config
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
from trainer.step import GanStep, adam_for, derive_seed, ema_beta, update_ema
from trainer.validation import FixedValidation, validation_samples

_log = logging.getLogger("trainer.loop")

Progress = Callable[[int, int], None]


# ---------------------------------------------------------------------------------------------------------------
# Helpers


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
        self.precision = self._autocast_dtype()
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
        self.mat_config = run_model_config(cfg.model, cfg.data.resolution)
        self.channels = channels = self.mat_config.img_channels

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
        self.validation = FixedValidation(
            validation_samples(root, cfg.data, cfg.eval, channels=channels, train_images=train_images),
            cfg.eval, z_dim=self.mat_config.z_dim, device=self.device, precision=self.precision,
        )

        # A resumed run must be the same model: check before building (and allocating) anything big.
        state = load_training_state(self.files.last) if self.resume else None
        if state is not None:
            self._check_state_model(state)

        # Networks: the same seeds everywhere, then rank 0's weights broadcast for certainty.
        self.G, self.D, self.G_ema = build_networks(self.mat_config, cfg.train.seed, self.device)
        o = cfg.optim
        self.opt_G = adam_for(self.G.parameters(), o.g_lr, o.betas, o.eps, o.g_reg_interval)
        self.opt_D = adam_for(self.D.parameters(), o.d_lr, o.betas, o.eps, o.d_reg_interval)

        from linop_core.losses import MatLoss

        self.loss = MatLoss(cfg.loss).to(self.device)
        self.gan_step = GanStep(self.G, self.D, self.opt_G, self.opt_D, self.loss, cfg.loss,
                                z_dim=self.mat_config.z_dim, dist=self.dist, precision=self.precision)

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
        t = self.config.train
        return training_batches(self.train_set, seed=t.seed, batch=t.batch, batch_gpu=self.batch_gpu,
                                workers=self.config.data.workers, dist=self.dist, start_nimg=self.cur_nimg)

    def _record(self, parts: dict[str, Tensor]) -> None:
        # Kept as tensors: converting each to a float would synchronise the GPU every round.
        for key, value in parts.items():
            self._stats.setdefault(key, []).append(value.detach().float().reshape(()))

    def train_step(self, batches: list[dict[str, Tensor]]) -> None:
        """One optimizer step of every due phase on ``batches`` (this rank's rounds of the global batch)."""
        gen = torch.Generator(device=self.device)
        gen.manual_seed(derive_seed(self.config.train.seed, self.dist.rank, self.step))
        for parts in self.gan_step(batches, gen, self.step):
            self._record(parts)
        update_ema(self.G_ema, self.G, ema_beta(self.config.train, self.cur_nimg))

    # -- evaluation ------------------------------------------------------------------------------------------

    def evaluate_fid(self) -> float:
        """FID of G_ema on this rank's share of the fixed validation set (synced over ranks)."""
        assert self.fid is not None
        return self.validation.fid(self.G_ema, self.fid, self.dist)

    def _write_images(self) -> None:
        count = min(self.config.log.image_count, max(1, self.config.eval.num_images))
        grid = self.validation.image_grid(self.G_ema, count)
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
