"""``linop-train``: train the LINOP MAT models (mammography inpainting, chest X-ray outpainting).

    linop-train --config mammo-inpaint --out runs/mammo [--set data.root=/data/vindr-mammo ...]
    linop-train --config smoke --out runs/smoke                      # phantom data, mat-small, minutes on a CPU
    linop-train --config cxr-outpaint --out runs/cxr --gpus 4        # 4 processes through torchrun
    linop-train --resume runs/mammo [--set train.total_kimg=1200]    # continue from runs/mammo/last.pt
    linop-train --config mammo-inpaint --out runs/ft --init MAT_Places512.pkl

Several machines: start ``torchrun`` yourself on each node with the same rendezvous options, e.g.
``torchrun --nnodes=2 --nproc_per_node=4 --rdzv_backend=c10d --rdzv_endpoint=HOST:29400 --rdzv_id=mammo
-m trainer.train --config mammo-inpaint --out /shared/runs/mammo``.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from types import FrameType

from linop_core.errors import LinopError
from linop_core.progress import tqdm_progress
from trainer.config import SHIPPED_CONFIGS, Config, ConfigError, apply_overrides, load_config

_log = logging.getLogger("trainer.train")
KIMG_BAR = "{l_bar}{bar}| {n:.3f}/{total:.3f} kimg [{elapsed}<{remaining}]"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="linop-train",
        description="Train a LINOP MAT model (inpainting on VinDr-Mammo, outpainting on VinDr-CXR).",
        epilog="Multi-node: run `torchrun --nnodes=N --nproc_per_node=G --rdzv_backend=c10d "
        "--rdzv_endpoint=HOST:PORT --rdzv_id=ID -m trainer.train ...` on every node.",
    )
    parser.add_argument(
        "--config",
        help=f"YAML config file, or a shipped config: {', '.join(SHIPPED_CONFIGS)} "
        "(default with --resume: the run's own config.yaml)",
    )
    parser.add_argument(
        "--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
        help="override a config value, e.g. --set train.batch_gpu=4 (repeatable; values are YAML)",
    )
    parser.add_argument("--out", type=Path, help="run folder (created); holds checkpoints, logs, metrics")
    parser.add_argument("--resume", type=Path, metavar="RUN_DIR", help="continue the run in RUN_DIR from last.pt")
    parser.add_argument(
        "--init", metavar="CHECKPOINT",
        help="start from these weights: an official MAT .pkl/.pth, a LINOP checkpoint or a last.pt",
    )
    parser.add_argument(
        "--gpus", type=int, default=None, metavar="N",
        help="launch N processes on this machine through torchrun (one per GPU; CPU processes with --device cpu)",
    )
    parser.add_argument("--device", choices=["cuda", "cpu"], default=None, help="default: cuda when available")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    return parser


def _strip_gpus(argv: Sequence[str]) -> list[str]:
    """``argv`` without ``--gpus N`` / ``--gpus=N`` (the launched processes must not launch again)."""
    out: list[str] = []
    skip = False
    for arg in argv:
        if skip:
            skip = False
            continue
        if arg == "--gpus":
            skip = True
            continue
        if arg.startswith("--gpus="):
            continue
        out.append(arg)
    return out


def resolve_config(args: argparse.Namespace) -> tuple[Config, Path, bool]:
    """(config, run folder, resume?) from the command line; checks the run folder's state."""
    if args.resume is not None:
        run = args.resume
        if args.out is not None and args.out.resolve() != run.resolve():
            raise LinopError(f"--out {args.out} differs from --resume {run}; a resumed run stays in its folder")
        if not (run / "last.pt").is_file():
            raise LinopError(f"{run}: no last.pt to resume from; start a new run with --config ... --out {run}")
        source = args.config or (run / "config.yaml")
        config = load_config(source, args.overrides)
        resume = True
    else:
        if args.config is None or args.out is None:
            raise LinopError("give --config CONFIG and --out RUN_DIR (or --resume RUN_DIR)")
        run = args.out
        if (run / "last.pt").exists():
            raise LinopError(
                f"{run} already holds a run (last.pt); continue it with --resume {run} or pick another --out"
            )
        config = load_config(args.config, args.overrides)
        resume = False
    if args.init is not None:
        if resume:
            raise LinopError("--init starts a new run from weights; it cannot be combined with --resume")
        config = apply_overrides(config, [f"model.init={args.init}"])
    return config, run, resume


class StopRequest:
    """First SIGINT/SIGTERM: finish the step, save last.pt and stop. Second: stop at once."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def __call__(self) -> bool:
        return self._event.is_set()

    def install(self) -> None:
        def handler(signum: int, frame: FrameType | None) -> None:
            if self._event.is_set():
                raise KeyboardInterrupt
            self._event.set()
            print("\nlinop-train: stopping after this step (saving last.pt); interrupt again to abort", file=sys.stderr)

        signal.signal(signal.SIGINT, handler)
        signal.signal(signal.SIGTERM, handler)





def run(args: argparse.Namespace) -> int:
    from trainer import distributed as ddp
    from trainer.loop import Trainer

    config, run_dir, resume = resolve_config(args)
    info = ddp.init_distributed(args.device)
    if info.device.type == "cuda":
        import torch

        # Process-wide switches, set once here at the entry point of a training process.
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = config.train.tf32
        torch.backends.cudnn.allow_tf32 = config.train.tf32
    logging.basicConfig(
        level=logging.INFO if info.is_main else logging.WARNING,
        format=f"%(asctime)s [rank {info.rank}] %(message)s" if info.distributed else "%(asctime)s %(message)s",
        datefmt="%H:%M:%S",
    )
    stop = StopRequest()
    stop.install()
    try:
        trainer = Trainer(
            config, run_dir, info, resume=resume,
            progress=tqdm_progress(
                enabled=info.is_main and not args.no_progress, unit="kimg", scale=1e-3, bar_format=KIMG_BAR
            ),
            should_stop=stop,
        )
        summary = trainer.run()
    finally:
        ddp.shutdown_distributed()
    if info.is_main:
        if summary["stopped"]:
            print(f"linop-train: stopped at {summary['kimg']:.2f} kimg; continue with `linop-train --resume {run_dir}`")
        else:
            best = summary["best_fid"]
            fid = ""
            if best is not None:
                fid = f", best FID[{summary['fid_feature']}] {best:.3f} at {summary['best_kimg']:.3f} kimg"
            print(f"linop-train: done, {summary['kimg']:.2f} kimg{fid}; checkpoints in {run_dir}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``linop-train`` console script."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    args = parser.parse_args(argv)
    inside_torchrun = "LOCAL_RANK" in os.environ
    try:
        if args.gpus is not None and not inside_torchrun:
            if args.gpus < 1:
                raise LinopError("--gpus must be >= 1")
            resolve_config(args)  # fail here, once, rather than in every process
            from trainer.distributed import launch

            status = launch(args.gpus, "trainer.train", _strip_gpus(argv))
            if status != 0:
                run_dir = args.resume or args.out
                print(
                    f"linop-train: a training process failed (exit status {status}); fix the cause shown above and "
                    f"continue with `linop-train --resume {run_dir}`" if status != 130 else
                    f"linop-train: interrupted; continue with `linop-train --resume {run_dir}`",
                    file=sys.stderr,
                )
            return status
        return run(args)
    except ConfigError as exc:
        print(f"linop-train: config error: {exc}", file=sys.stderr)
        return 2
    except LinopError as exc:
        print(f"linop-train: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("linop-train: aborted; continue from the last saved state with `linop-train --resume`", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
