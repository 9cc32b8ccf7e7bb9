"""Training throughput of each MAT preset on the available device: kimg per hour and peak memory.

Runs the real loop (phantom VinDr-Mammo root, the data pipeline, G main + D main + lazy R1 phases, EMA) for a
few steps per preset and prints one line per preset. R1 runs every ``d_reg_interval`` (16) steps, so its cost
is measured on one extra step and amortised.

    python benchmarks/bench_train.py                               # every preset, defaults for the device
    python benchmarks/bench_train.py --presets mat-small --batch-gpu 2 --steps 3

Anchor: the paper trained 1,000 kimg on 4 V100 GPUs (MAT at 512, batch 32).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from linop_core.model.presets import PRESETS, get_config
from trainer.config import load_config
from trainer.data import ensure_root
from trainer.distributed import DistInfo
from trainer.loop import Trainer, peak_memory_mb


def bench_preset(preset: str, root: Path, out: Path, device: torch.device, batch_gpu: int, steps: int,
                 perceptual: bool, precision: str) -> dict[str, float]:
    resolution = get_config(preset).resolution
    config = load_config(
        "smoke",
        [
            f"data.root={root}",
            f"data.resolution={resolution}",
            f"data.workers={4 if device.type == 'cuda' else 0}",
            f"model.preset={preset}",
            f"loss.perceptual={'true' if perceptual else 'false'}",
            f"train.batch={batch_gpu}",
            f"train.batch_gpu={batch_gpu}",
            "train.total_kimg=1000",
            f"train.precision={precision}",
            "eval.every_kimg=0",
            "log.tensorboard=false",
        ],
    )
    info = DistInfo(rank=0, world=1, local_rank=0, device=device)
    trainer = Trainer(config, out / preset, info)
    batches = trainer._batches()

    def timed_step() -> float:
        rounds = [next(batches) for _ in range(trainer.rounds)]
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        trainer.train_step(rounds)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        trainer.step += 1
        return time.perf_counter() - start

    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    timed_step()  # warm-up (step 0 also runs R1)
    main_times = [timed_step() for _ in range(steps)]
    trainer.step = 16 * (trainer.step // 16 + 1)  # the next step is an R1 step
    with_r1 = timed_step()
    t_main = sum(main_times) / len(main_times)
    interval = max(1, config.optim.d_reg_interval)
    per_step = t_main + max(0.0, with_r1 - t_main) / interval
    return {
        "resolution": resolution,
        "batch": batch_gpu,
        "sec_per_step": per_step,
        "r1_extra_sec": max(0.0, with_r1 - t_main),
        "kimg_per_hour": batch_gpu / per_step * 3600 / 1000,
        "peak_mb": peak_memory_mb(device),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presets", nargs="*", default=list(PRESETS))
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--batch-gpu", type=int, default=None, help="default: 8 on GPU, 1 on CPU")
    parser.add_argument("--steps", type=int, default=None, help="timed steps per preset (default: 10 GPU, 2 CPU)")
    parser.add_argument("--perceptual", action="store_true", help="include the VGG-19 loss (needs its weights)")
    parser.add_argument("--precision", choices=["fp32", "bf16"], default="fp32")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--in-process", action="store_true",
                        help="bench every preset in this process (CPU peak memory is then a running maximum)")
    parser.add_argument("--row-only", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    device = torch.device(args.device)
    gpu = device.type == "cuda"
    if args.threads:
        torch.set_num_threads(args.threads)
    batch_gpu = args.batch_gpu or (8 if gpu else 1)
    steps = args.steps or (10 if gpu else 2)
    name = torch.cuda.get_device_name(device) if gpu else f"CPU ({torch.get_num_threads()} threads)"
    if not args.row_only:
        print(f"device: {name}; batch per device {batch_gpu}; {steps} timed steps; precision {args.precision}; "
              f"perceptual loss {'on' if args.perceptual else 'off'}")
        print("anchor: the paper trained 1,000 kimg of MAT-512 on 4 V100 GPUs")
        print(f"{'preset':<14}{'res':>5}{'batch':>6}{'s/step':>9}{'R1 s':>8}{'kimg/h':>9}{'peak MB':>10}"
              f"{'1000 kimg (1 dev)':>19}", flush=True)
    if len(args.presets) > 1 and not args.in_process:
        # One process per preset, so each peak-memory figure is that preset's own.
        for preset in args.presets:
            rest = [a for a in sys.argv[1:] if a not in args.presets and a != "--presets"]
            subprocess.run([sys.executable, __file__, "--presets", preset, "--row-only", *rest], check=False)
        return
    with tempfile.TemporaryDirectory(prefix="bench_train_") as tmp:
        work = Path(tmp)
        root = ensure_root(load_config("smoke", [f"data.root={work / 'mammo'}", "data.phantom.n=2"]).data)
        for preset in args.presets:
            try:
                r = bench_preset(preset, root, work / "runs", device, batch_gpu, steps, args.perceptual,
                                 args.precision)
            except torch.OutOfMemoryError:
                print(f"{preset:<14} out of memory at batch {batch_gpu}")
                continue
            days = 1000 / r["kimg_per_hour"] / 24
            print(f"{preset:<14}{r['resolution']:>5}{r['batch']:>6}{r['sec_per_step']:>9.2f}{r['r1_extra_sec']:>8.2f}"
                  f"{r['kimg_per_hour']:>9.3f}{r['peak_mb']:>10.0f}{days:>16.1f} d", flush=True)
            if gpu:
                torch.cuda.empty_cache()


if __name__ == "__main__":
    main()
