"""One training process per GPU (or per CPU worker) through ``torchrun``: setup, gradient reduction, launch.

Gradients are averaged by hand (one flat all-reduce per optimizer step) instead of wrapping the networks in
DistributedDataParallel, because a MAT step runs several phases through G and D (and R1 needs a double
backward), which DDP's hooks do not fit. Every process builds the networks from the same seed and rank 0's
weights are broadcast once, so replicas start identical and stay identical.
"""

from __future__ import annotations

import datetime
import os
import subprocess
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

from linop_core.errors import LinopError


@dataclass(frozen=True)
class DistInfo:
    """Where this process stands: its rank among ``world`` processes and the device it trains on."""

    rank: int
    world: int
    local_rank: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world > 1


def init_distributed(device: str | None = None, timeout_s: float = 1800.0) -> DistInfo:
    """Join the process group that ``torchrun`` describes in the environment (a single process otherwise).

    The backend is NCCL on CUDA and gloo on CPU. ``device`` ("cpu", "cuda") forces a device kind; by default
    CUDA is used when present, one GPU per local rank.
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    use_cuda = torch.cuda.is_available() if device is None else device.startswith("cuda")
    if use_cuda and not torch.cuda.is_available():
        raise LinopError("CUDA was asked for but no GPU is visible; run with --device cpu")
    if use_cuda:
        if local_rank >= torch.cuda.device_count():
            raise LinopError(
                f"local rank {local_rank} has no GPU ({torch.cuda.device_count()} visible); "
                "lower --nproc_per_node / --gpus"
            )
        torch.cuda.set_device(local_rank)
        dev = torch.device("cuda", local_rank)
    else:
        dev = torch.device("cpu")
    if world > 1 and not dist.is_initialized():
        dist.init_process_group(
            backend="nccl" if use_cuda else "gloo",
            timeout=datetime.timedelta(seconds=timeout_s),
            device_id=dev if use_cuda else None,
        )
    return DistInfo(rank=rank, world=world, local_rank=local_rank, device=dev)


def shutdown_distributed() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def barrier(info: DistInfo) -> None:
    if info.distributed:
        dist.barrier()


def broadcast_module(module: nn.Module, info: DistInfo) -> None:
    """Copy rank 0's parameters and buffers into every other replica."""
    if not info.distributed:
        return
    with torch.no_grad():
        for tensor in [*module.parameters(), *module.buffers()]:
            dist.broadcast(tensor.data, src=0)


def reduce_gradients(params: Iterable[nn.Parameter], info: DistInfo) -> None:
    """Average gradients over processes (missing ones count as zero), then sanitise them in place.

    NaN becomes 0 and ±inf becomes ±1e5, as in the MAT/StyleGAN2 recipe, so one bad batch cannot poison
    the Adam moments.
    """
    params = [p for p in params if p.requires_grad]
    if not params:
        return
    for p in params:
        if p.grad is None:
            p.grad = torch.zeros_like(p)
    flat = torch.cat([p.grad.reshape(-1) for p in params])
    if info.distributed:
        dist.all_reduce(flat)
        flat /= info.world
    torch.nan_to_num(flat, nan=0.0, posinf=1e5, neginf=-1e5, out=flat)
    offset = 0
    for p in params:
        n = p.numel()
        p.grad.copy_(flat[offset : offset + n].view_as(p.grad))
        offset += n


def mean_over_ranks(values: dict[str, float], info: DistInfo) -> dict[str, float]:
    """Average a dict of numbers over processes (same keys on every rank)."""
    if not info.distributed or not values:
        return values
    keys = sorted(values)
    tensor = torch.tensor([values[k] for k in keys], dtype=torch.float64, device=info.device)
    dist.all_reduce(tensor)
    tensor /= info.world
    return dict(zip(keys, tensor.tolist(), strict=True))


def gather_objects(obj: Any, info: DistInfo) -> list[Any]:
    """Every rank's ``obj``, in rank order (on every rank)."""
    if not info.distributed:
        return [obj]
    out: list[Any] = [None] * info.world
    dist.all_gather_object(out, obj)
    return out


def any_rank(flag: bool, info: DistInfo) -> bool:
    """True on every rank when ``flag`` is true on at least one (e.g. a stop request seen by rank 0)."""
    if not info.distributed:
        return flag
    tensor = torch.tensor([1.0 if flag else 0.0], device=info.device)
    dist.all_reduce(tensor, op=dist.ReduceOp.MAX)
    return bool(tensor.item() > 0)


def torchrun_command(nproc: int, module: str, args: Sequence[str], *, standalone: bool = True) -> list[str]:
    """The command that runs ``python -m module args`` in ``nproc`` processes on this machine."""
    command = [sys.executable, "-m", "torch.distributed.run"]
    if standalone:
        command.append("--standalone")
    command += [f"--nproc_per_node={nproc}", "-m", module, *args]
    return command


def launch(nproc: int, module: str, args: Sequence[str]) -> int:
    """Run ``torchrun --standalone --nproc_per_node=nproc -m module args``; return its exit status (130: Ctrl-C).

    Used by ``linop-train --gpus`` (module ``trainer.train``) and ``linop-bench --nproc`` (``trainer.bench.cli``).
    torchrun stops the other processes when one dies; the callers' messages then tell the user how to resume.
    Each process gets an equal share of the CPU threads unless ``OMP_NUM_THREADS`` is set.
    """
    command = torchrun_command(nproc, module, args)
    env = dict(os.environ)
    env.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // nproc)))
    try:
        return subprocess.call(command, env=env)
    except KeyboardInterrupt:
        return 130
