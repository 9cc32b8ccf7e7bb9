"""Throughput and peak memory of `linop-export generate` on a phantom VinDr-Mammo root.

    python benchmarks/bench_export.py                      # biharmonic + MAT, N = 100, 250, 500
    python benchmarks/bench_export.py --engines biharmonic --steps 500
    python benchmarks/bench_export.py --engines mat --model ckpt.pt --device cuda

Each (engine, N) runs in a fresh process, so its peak RSS (``ru_maxrss``) belongs to that run alone: memory is
flat when the peak does not grow with N. Samples per second count the whole export (dataset open, engine
load, synthesis, commits and the final assembly), excluding interpreter start-up. Without ``--model`` the MAT
run uses a freshly initialised (untrained) checkpoint of ``--preset``: its images are noise, its speed is
the model's.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def _child(spec: dict) -> None:
    from linop_core.cli.export import main
    from linop_core.synthset import SynthSet

    start = time.perf_counter()
    code = main(spec["argv"])
    elapsed = time.perf_counter() - start
    if code != 0:
        raise SystemExit(code)
    with SynthSet(spec["out"]) as synth:
        n_samples = len(synth)
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB
    print(json.dumps({"seconds": elapsed, "samples": n_samples, "peak_rss_mib": peak_mib}))


def _untrained_checkpoint(preset: str, path: Path) -> Path:
    from linop_core.model.checkpoint import save_checkpoint
    from linop_core.model.presets import build_generator, get_config

    config = get_config(preset)
    generator = build_generator(config, seed=0)
    extra = {"notes": "untrained weights for the export benchmark (speed only)"}
    return save_checkpoint(path, config=config, preset=preset, G_ema=generator, extra=extra)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--engines", default="biharmonic,mat")
    parser.add_argument("--steps", default="100,250,500", help="sample counts N, comma-separated")
    parser.add_argument("--model", help="MAT checkpoint (default: an untrained --preset model)")
    parser.add_argument("--preset", default="mat-small")
    parser.add_argument("--device", help="torch device for MAT")
    parser.add_argument("--studies", type=int, default=6, help="phantom studies (4 views each)")
    parser.add_argument("--size", choices=("small", "full"), default="small")
    parser.add_argument("--workdir", help="keep the phantom and outputs here (default: a temporary folder)")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _child(json.loads(args.child))
        return

    from linop_core.phantom import make_mammo_dataset

    with tempfile.TemporaryDirectory(prefix="bench_export_") as tmp:
        work = Path(args.workdir or tmp)
        work.mkdir(parents=True, exist_ok=True)
        root = work / "mammo"
        if not root.exists():
            make_mammo_dataset(root, args.studies, 0, args.size)
        engines = [e for e in args.engines.split(",") if e]
        steps = [int(s) for s in args.steps.split(",")]
        print(f"phantom VinDr-Mammo ({args.studies} studies, size {args.size}) at {root}")
        print(f"{'engine':<11}{'N':>6}{'seconds':>10}{'samples/s':>11}{'peak RSS MiB':>14}")
        for engine in engines:
            extra: list[str] = ["--engine", engine]
            if engine == "mat":
                model = Path(args.model) if args.model else _untrained_checkpoint(args.preset, work / "untrained.pt")
                extra += ["--model", str(model)]
                if args.device:
                    extra += ["--device", args.device]
            for n in steps:
                out = work / f"{engine}_{n}.h5"
                for stale in work.glob(f"{engine}_{n}.h5*"):
                    if stale.is_file():
                        stale.unlink()
                argv = ["generate", str(root), str(out), "--n", str(n), "--seed", "0", "--no-progress", *extra]
                spec = json.dumps({"argv": argv, "out": str(out)})
                run = subprocess.run(
                    [sys.executable, __file__, "--child", spec], capture_output=True, text=True, check=False
                )
                if run.returncode != 0:
                    print(f"{engine:<11}{n:>6}  failed: {run.stderr.strip().splitlines()[-1:]}")
                    break
                result = json.loads(run.stdout.strip().splitlines()[-1])
                rate = result["samples"] / result["seconds"]
                print(
                    f"{engine:<11}{result['samples']:>6}{result['seconds']:>10.1f}{rate:>11.2f}"
                    f"{result['peak_rss_mib']:>14.0f}",
                    flush=True,
                )
        if args.model is None and "mat" in engines:
            print(f"mat: untrained {args.preset} weights (speed only)")


if __name__ == "__main__":
    main()
