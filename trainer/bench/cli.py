"""`linop-bench`: the paper's downstream tables as resumable grids.

    linop-bench detect   --config CONFIG.yaml [--set k=v ...] [--out DIR] [--nproc N] [--device D]
    linop-bench classify --config CONFIG.yaml [--set k=v ...] [--out DIR] [--nproc N] [--device D]
    linop-bench detect|classify --preset phantom [--out DIR]     # phantom data -> linop-export -> grid
    linop-bench phantom [--out DIR]                              # both phantom chains, one combined report
    linop-bench phantom --preset study [--nproc 2] [--out DIR]   # the phantom study: power, controls, pairs

``--config`` takes a YAML file or a shipped name (detect, classify, phantom-detect, phantom-classify).
Finished cells are kept in ``OUT/cells/``; running the same command again resumes; ``--only KEY`` runs just
the named cell(s). ``--nproc N`` runs N processes through ``torchrun`` (one GPU, or one CPU core, each), each
training a share of the cells.

Presets: ``phantom`` is the fast end-to-end smoke run (tiny grids, one MAT synthetic set); ``study`` is the
phantom study of Tables 1 and 2 with enough test images and seeds to see an effect, the biharmonic and
copy-paste controls, and paired comparisons (configs ``phantom-study-detect`` / ``phantom-study-classify``).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import platform
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from linop_core.errors import LinopError
from linop_core.precision import Precision
from linop_core.progress import tqdm_progress

PROG = "linop-bench"
PRESETS = ("phantom", "study")


# -- running -----------------------------------------------------------------------------------------------------


def execute(config: Any, out: Path, *, progress: bool, extra_facts: dict[str, Any] | None = None,
            preset: str | None = None, started: float | None = None,
            only: Sequence[str] = ()) -> Path | None:  # fmt: skip
    """Run the grid of ``config`` (this process's share of it under torchrun) and, on rank 0, the report."""
    import torch

    from trainer.bench import grid
    from trainer.bench.config import to_dict
    from trainer.bench.data import classification_data, detection_data
    from trainer.distributed import barrier, init_distributed, shutdown_distributed

    started = time.monotonic() if started is None else started
    threads_before = torch.get_num_threads()
    if config.threads:
        torch.set_num_threads(config.threads)
    info = init_distributed(config.device, timeout_s=14 * 24 * 3600.0)  # cells of other ranks may take days
    try:
        data = detection_data(config.data) if config.task == "detect" else classification_data(config.data)
        sources = list(config.data.synthetic_sets or {}) or [""]
        cells = grid.grid_cells(config.grid.portions, config.grid.synthetic, config.grid.seeds, sources)
        chosen = grid.select_cells(cells, only)
        digest = hashlib.sha256(f"{config.digest()}:{data.identity()}".encode()).hexdigest()
        show = progress and info.is_main

        def run_cell(cell: grid.Cell, bar: Callable[[int, int], None] | None) -> dict[str, Any]:
            if config.task == "detect":
                from trainer.bench.detect import run_detect_cell

                return run_detect_cell(data, portion=cell.portion, synthetic_share=cell.synthetic, seed=cell.seed,
                                       source=cell.source, settings=config.train, image_size=config.data.image_size,
                                       device=info.device, progress=bar)  # fmt: skip
            from trainer.bench.classify import run_classify_cell

            return run_classify_cell(data, portion=cell.portion, synthetic_share=cell.synthetic, seed=cell.seed,
                                     source=cell.source, settings=config.train, device=info.device,
                                     progress=bar)  # fmt: skip

        grid.run_grid(
            chosen, run_cell, out, digest, rank=info.rank, world=info.world,
            progress=tqdm_progress(desc=f"{config.task} cells", enabled=show),
            cell_progress=(lambda c: tqdm_progress(desc=c.key, enabled=show, position=1, leave=False)),
        )  # fmt: skip
        barrier(info)
        if not info.is_main:
            return None
        from trainer.bench.report import write_report

        records = grid.collect(out, cells, digest)
        environment = {
            "preset": preset,
            "device": f"{info.device} x {info.world} process(es)"
            + (f" ({torch.cuda.get_device_name(info.device)})" if info.device.type == "cuda" else ""),
            "cpu_threads": torch.get_num_threads(),
            "machine": f"{platform.machine()}, {os.cpu_count()} CPU(s)",
            "torch": torch.__version__,
            "backbone": sorted({r["result"]["backbone"] for r in records}),
            "cells_finished": f"{len(records)} of {len(cells)}",
            "training_seconds_summed_over_cells": round(sum(r["result"]["train_seconds"] for r in records), 1),
            "wall_seconds_this_invocation": round(time.monotonic() - started, 1),
            "config_sha256": digest,
        }
        return write_report(out, config.task, records, config=to_dict(config),
                            facts={**data.facts, **(extra_facts or {})}, environment=environment,
                            n_cells=len(cells))  # fmt: skip
    finally:
        shutdown_distributed()
        torch.set_num_threads(threads_before)


def run_task(task: str, args: argparse.Namespace, out: Path, started: float) -> Path | None:
    import json

    from trainer.bench.config import ConfigError, dump_config, load_config

    preset_config = {"phantom": f"phantom-{task}", "study": f"phantom-study-{task}"}.get(args.preset or "")
    source = args.config or preset_config
    if source is None:
        raise LinopError(f"{PROG} {task}: give --config CONFIG.yaml (or a shipped name: {task}, phantom-{task})")
    config = load_config(source, args.set)
    if config.task != task:
        raise ConfigError(str(source), f"is a {config.task} config; run `{PROG} {config.task}` with it")
    if args.device:
        config.device = args.device
    facts: dict[str, Any] = {}
    if args.preset in PRESETS:
        from trainer.bench.phantom_prep import prepare_phantom

        if config.phantom is None:
            from trainer.bench.config import PhantomSettings

            config.phantom = PhantomSettings()
        facts = prepare_phantom(config, out, not args.no_progress, precision=args.precision)
    elif not config.data.root:
        raise ConfigError("data.root", f"set the {'VinDr-Mammo' if task == 'detect' else 'VinDr-CXR'} root "
                               "(in the config or with --set data.root=PATH), or use --preset phantom")  # fmt: skip
    out.mkdir(parents=True, exist_ok=True)
    from linop_core.fileio import atomic_write_text

    resolved = out / "config.yaml"
    atomic_write_text(resolved, dump_config(config))
    facts_file = out / "preset_facts.json"
    if facts:
        atomic_write_text(facts_file, json.dumps(facts))
    elif args.preset_name and facts_file.is_file():  # a torchrun worker of a preset run
        facts = json.loads(facts_file.read_text(encoding="utf-8"))
    if args.nproc > 1:
        argv = [task, "--config", str(resolved), "--out", str(out)]
        for key in args.only:
            argv += ["--only", key]
        if args.no_progress:
            argv.append("--no-progress")
        if args.preset:
            argv += ["--preset-name", args.preset]
        from trainer.distributed import launch

        code = launch(args.nproc, "trainer.bench.cli", argv)
        if code != 0:
            raise LinopError(f"torchrun exited with status {code}; run the same command again to resume")
        return None  # rank 0 has written (and announced) the report
    return execute(config, out, progress=not args.no_progress, extra_facts=facts or None,
                   preset=args.preset or args.preset_name, started=started, only=args.only)  # fmt: skip


def run_phantom(args: argparse.Namespace, out: Path) -> Path:
    """Both phantom chains, then ``out/report.md`` joining the two reports (plots linked in their folders).

    ``--preset study`` (the default is ``phantom``, the smoke run) writes the study report instead: headline
    comparisons, per-cell counts, times and commands (:mod:`trainer.bench.study_report`).
    """
    from linop_core.fileio import atomic_write_text

    started = time.monotonic()
    args.preset, args.config = args.preset or "phantom", None
    parts, runs = [], {}
    for task in ("detect", "classify"):
        t0, load0 = time.monotonic(), os.getloadavg()
        path = run_task(task, args, out / task, time.monotonic())
        path = path or out / task / "report.md"  # with --nproc, rank 0 of torchrun wrote it
        if not path.is_file():
            raise LinopError(f"the {task} grid did not write a report")
        runs[task] = {"wall_seconds": time.monotonic() - t0, "load_start": load0, "load_end": os.getloadavg()}
        text = path.read_text(encoding="utf-8").replace("](", f"]({task}/").replace("# ", "## ", 1)
        parts.append(text + f"\nWall time of the {task} chain (data, synthesis, grid, report): "
                     f"{time.monotonic() - t0:.0f} s.\n")  # fmt: skip
    total = time.monotonic() - started
    if args.preset == "study":
        from trainer.bench.study_report import write_study_report

        return write_study_report(out, runs, total_seconds=total, command=_command_line(args, out))
    head = ["# LINOP downstream benchmark: phantom end-to-end run", "",
            f"Command: `{PROG} phantom --out {out}`. Total wall time: {total:.0f} s ({total / 60:.1f} min) on "
            f"{os.cpu_count()} CPU core(s). Phantom images are procedural: the numbers show the pipeline "
            "works end to end, as measured, and say nothing about the method on real data.", ""]  # fmt: skip
    path = out / "report.md"
    atomic_write_text(path, "\n".join(head) + "\n" + "\n".join(parts))
    return path


def _command_line(args: argparse.Namespace, out: Path) -> str:
    words = [PROG, "phantom", "--preset", str(args.preset)]
    words += [w for item in args.set for w in ("--set", item)]
    if args.precision != str(Precision.AUTO):
        words += ["--precision", str(args.precision)]
    if args.nproc > 1:
        words += ["--nproc", str(args.nproc)]
    return " ".join([*words, "--out", str(out)])


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=PROG, description="The paper's downstream experiments (Tables 1 and 2).")
    parser.add_argument("command", choices=("detect", "classify", "phantom"),
                        help="detect: Table 1 (Cascade R-CNN); classify: Table 2 (DenseNet121); phantom: both, "
                        "on phantom data")  # fmt: skip
    parser.add_argument("--config", help="YAML file or shipped name (detect, classify, phantom-detect, ...)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config key, e.g. --set train.iterations=100 (repeatable)")  # fmt: skip
    parser.add_argument("--out", help="output folder (default runs/bench-<command>)")
    parser.add_argument("--preset", choices=PRESETS, help="phantom: make phantom data and a synthetic set first "
                        "(the smoke run); study: the phantom study (controls, power, paired comparisons)")
    parser.add_argument("--only", action="append", default=[], metavar="CELL",
                        help="run only this cell of the grid (its key, e.g. real100_syn50-mat_seed0; repeatable)")
    parser.add_argument("--preset-name", help=argparse.SUPPRESS)  # passed to torchrun workers for the report
    parser.add_argument("--nproc", type=int, default=1, help="processes (GPUs) through torchrun (default 1)")
    parser.add_argument("--device", help="cpu, cuda (default: CUDA when available)")
    parser.add_argument("--precision", choices=[str(p) for p in Precision], default=str(Precision.AUTO),
                        help="precision of the MAT engine that makes a preset's synthetic set (auto: bf16 where "
                        "the CPU or GPU computes it natively, fp32 otherwise; fp16 on a GPU only); the "
                        "detectors and classifiers train in fp32")  # fmt: skip
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    out = Path(args.out or f"runs/bench-{args.command}")
    try:
        if args.nproc < 1:
            raise LinopError("--nproc must be at least 1")
        if args.command == "phantom":
            if args.only:
                raise LinopError("--only names cells of one grid; use it with `linop-bench detect` or `classify`")
            path = run_phantom(args, out)
        else:
            path = run_task(args.command, args, out, time.monotonic())
        if path is not None:
            print(f"wrote {path}")
        return 0
    except LinopError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
