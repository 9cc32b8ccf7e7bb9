"""LINOP's ``mat-512`` generator against the official MAT generator, side by side in one process on the CPU.

The official code (github.com/fenglinglwb/MAT, non-commercial licence) is never shipped with LINOP: this script
imports it at run time from the checkout that ``LINOP_MAT_REFERENCE`` names, and prints
"skipped: LINOP_MAT_REFERENCE not set" (exit 0) without it. It also needs ``timm``, which the official
networks import.

Both generators get the same random weights (the official one is built with seed 0, its biases, noise strengths
and w_avg perturbed, its toRGB weights scaled to give images on the [-1, 1] scale of a trained model; its state
dict is then loaded into LINOP's), and the same image, mask, z, constant noise and dropout keep maps (the
official ``F.dropout`` is replayed from the maps LINOP receives), so their outputs can be compared.

Runs are interleaved (official, LINOP, official, LINOP ...) so that load from other users of the machine hits
both alike; the figure that counts is the ratio of process CPU time (``time.process_time``, all threads) per
image. It includes the kernel's share ("of it sys": mostly page faults on the fresh memory of large tensors,
which on some machines costs the official code a third of its time). Wall time is printed too. fp32 runs both
in fp32; bf16 runs LINOP under CPU bf16 autocast against the official model in fp32 and, when its code survives
it, in bf16 autocast as well. Accuracy: max abs difference of the fp32 outputs (must be <= 1e-4) and PSNR of
the bf16 outputs against the official fp32 output (peak 2).

Examples:
    LINOP_MAT_REFERENCE=/path/to/MAT python benchmarks/bench_vs_official.py
    LINOP_MAT_REFERENCE=/path/to/MAT python benchmarks/bench_vs_official.py --threads 2 --repeats 5 --dtypes fp32
    LINOP_MAT_REFERENCE=/path/to/MAT python benchmarks/bench_vs_official.py --mask frame   # no hole window
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import math
import os
import resource
import statistics
import subprocess
import sys
import time
import types
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import torch

from linop_core.model.config import get_config
from linop_core.model.official import match_state_dict, official_to_linop
from linop_core.model.presets import build_generator

RESOLUTION = 512
PARITY_TOLERANCE = 1e-4
RGB_WEIGHT_SCALE = 0.02  # brings a random generator's images (around ±100) to the [-1, 1] scale
TRUNCATION_PSI = 0.5
OFFICIAL_PACKAGES = ("networks", "torch_utils", "dnnlib")


@dataclass
class Timings:
    """Per-run process CPU seconds (and their kernel share) and wall seconds of one contender."""

    cpu: list[float] = field(default_factory=list)
    kernel: list[float] = field(default_factory=list)
    wall: list[float] = field(default_factory=list)

    def add(self, cpu: float, kernel: float, wall: float) -> None:
        self.cpu.append(cpu)
        self.kernel.append(kernel)
        self.wall.append(wall)


def load_average() -> str:
    """The machine's 1/5/15-minute load average as ``uptime`` reports it."""
    try:
        return subprocess.run(["uptime"], capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        one, five, fifteen = os.getloadavg()
        return f"load average: {one:.2f}, {five:.2f}, {fifteen:.2f}"


def import_official_mat(reference: Path) -> types.ModuleType:
    """``networks.mat`` from the reference checkout (its packages are top-level names, hence sys.path)."""
    clashes = [name for name in OFFICIAL_PACKAGES if name in sys.modules]
    if clashes:
        raise SystemExit(f"modules {clashes} are already imported from elsewhere")
    sys.path.insert(0, str(reference))
    if importlib.util.find_spec("requests") is None:
        # dnnlib.util imports requests only for downloads, which never happen here.
        sys.modules["requests"] = types.ModuleType("requests")
    return importlib.import_module("networks.mat")


def build_pair(mat: types.ModuleType) -> tuple[torch.nn.Module, torch.nn.Module]:
    """The official ``mat-512`` generator with perturbed random weights and LINOP's with the same state."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        official = mat.Generator(z_dim=512, c_dim=0, w_dim=512, img_resolution=RESOLUTION, img_channels=3,
                                 mapping_kwargs={"num_layers": 8})
    rng = torch.Generator().manual_seed(2022)
    with torch.no_grad():
        for name, param in official.named_parameters():
            if not name.endswith("weight"):
                param.add_(torch.randn(param.shape, generator=rng) * 0.1)
            elif name.endswith("toRGB.conv.weight"):
                param.mul_(RGB_WEIGHT_SCALE)
        for name, buffer in official.named_buffers():
            if name.endswith("w_avg"):
                buffer.copy_(torch.randn(buffer.shape, generator=rng) * 0.3)
    official.eval().requires_grad_(False)
    ours = build_generator(get_config("mat-512"), seed=0)
    weights = official_to_linop(official.state_dict())
    ours.load_state_dict(match_state_dict(ours.state_dict(), weights, "official G", "random official weights"))
    return official, ours.eval().requires_grad_(False)


@contextlib.contextmanager
def replayed_dropout(maps: tuple[torch.Tensor, ...]) -> Iterator[None]:
    """Make ``F.dropout`` return MAT's ``dropout(0.5 * ones, p=0.5)`` from fixed {0, 1} keep maps, in call order."""
    pending = list(maps)
    original = torch.nn.functional.dropout

    def dropout(x: torch.Tensor, p: float = 0.5, training: bool = True, inplace: bool = False) -> torch.Tensor:
        keep = pending.pop(0)
        return x * keep.to(x.dtype) / (1 - p)

    torch.nn.functional.dropout = dropout
    try:
        yield
    finally:
        torch.nn.functional.dropout = original


def make_mask(kind: str) -> torch.Tensor:
    """(1, 1, 512, 512), 1 = known. LINOP computes its last decoder layers only around the holes (the composite
    discards the rest), so the hole's bounding box matters: ``parity`` (the parity test's two holes, box 55 % of
    the image), ``lesion`` (one 96x96 hole, a mass to inpaint) or ``frame`` (outpainting around a known central
    320x320 square: the box is the whole image)."""
    mask = torch.ones(1, 1, RESOLUTION, RESOLUTION)
    if kind == "parity":
        mask[..., 96:320, 128:400] = 0
        mask[..., 360:480, 40:200] = 0
    elif kind == "lesion":
        mask[..., 200:296, 240:336] = 0
    elif kind == "frame":
        mask.zero_()
        mask[..., 96:416, 96:416] = 1
    else:
        raise ValueError(f"unknown mask {kind!r}")
    return mask


def autocast(dtype: torch.dtype) -> contextlib.AbstractContextManager[None]:
    if dtype == torch.float32:
        return contextlib.nullcontext()
    return torch.autocast("cpu", dtype=dtype)


def timed(fn: Callable[[], torch.Tensor], timings: Timings) -> torch.Tensor:
    sys0 = resource.getrusage(resource.RUSAGE_SELF).ru_stime
    cpu0, wall0 = time.process_time(), time.perf_counter()
    out = fn()
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    timings.add(cpu, resource.getrusage(resource.RUSAGE_SELF).ru_stime - sys0, wall)
    return out


def psnr(x: torch.Tensor, ref: torch.Tensor, peak: float = 2.0) -> float:
    mse = (x.float() - ref.float()).square().mean().item()
    return 10 * math.log10(peak**2 / mse) if mse > 0 else math.inf


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads (default 1)")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per contender and dtype")
    parser.add_argument("--warmup", type=int, default=1, help="untimed runs per contender and dtype first")
    parser.add_argument("--dtypes", nargs="+", default=["fp32", "bf16"], choices=["fp32", "bf16"])
    parser.add_argument("--mask", default="parity", choices=["parity", "lesion", "frame"],
                        help="hole layout (see make_mask; default: the parity test's two holes)")
    args = parser.parse_args(argv)

    reference = os.environ.get("LINOP_MAT_REFERENCE")
    if not reference:
        print("skipped: LINOP_MAT_REFERENCE not set")
        return 0
    if not (Path(reference) / "networks" / "mat.py").is_file():
        print(f"error: LINOP_MAT_REFERENCE={reference} is not a checkout of github.com/fenglinglwb/MAT "
              "(no networks/mat.py); point it at one", file=sys.stderr)
        return 2
    torch.set_num_threads(args.threads)
    mat = import_official_mat(Path(reference))
    official, ours = build_pair(mat)

    rng = torch.Generator().manual_seed(7)
    img = torch.rand(1, 3, RESOLUTION, RESOLUTION, generator=rng) * 2 - 1
    mask = make_mask(args.mask)
    z = torch.randn(1, 512, generator=rng)
    shape1, shape2 = ours.synthesis.keep_map_shapes(1, RESOLUTION, RESOLUTION)
    keep = (torch.empty(shape1).bernoulli_(0.5, generator=rng), torch.empty(shape2).bernoulli_(0.5, generator=rng))

    def run_official(dtype: torch.dtype) -> torch.Tensor:
        with torch.inference_mode(), autocast(dtype), replayed_dropout(keep):
            return official(img, mask, z, None, truncation_psi=TRUNCATION_PSI, noise_mode="const").float()

    def run_ours(dtype: torch.dtype) -> torch.Tensor:
        with torch.inference_mode(), autocast(dtype):
            return ours(img, mask, z, truncation_psi=TRUNCATION_PSI, noise_mode="const", dropout_maps=keep).float()

    load_before = load_average()
    print(f"torch {torch.__version__}, CPU capability {torch.backends.cpu.get_cpu_capability()}, "
          f"threads {args.threads}, {args.repeats} interleaved runs after {args.warmup} warm-up, "
          f"{RESOLUTION}x{RESOLUTION} batch 1, mask {args.mask} ({100 * (1 - mask.mean().item()):.0f} % hole)")
    print(f"load before: {load_before}")
    rows: list[tuple[str, str, Timings, str]] = []
    reference_out = None
    failures = 0
    for name in args.dtypes:
        dtype = torch.float32 if name == "fp32" else torch.bfloat16
        contenders: dict[str, Callable[[], torch.Tensor]] = {
            "official fp32": lambda: run_official(torch.float32),
            f"LINOP {name}": lambda dtype=dtype: run_ours(dtype),
        }
        if name == "bf16":
            try:
                run_official(dtype)
                contenders["official bf16"] = lambda dtype=dtype: run_official(dtype)
            except (RuntimeError, TypeError) as exc:
                print(f"official bf16 autocast does not run: {str(exc).splitlines()[0]}")
        timings = {label: Timings() for label in contenders}
        outputs: dict[str, torch.Tensor] = {}
        for _ in range(args.warmup):
            for fn in contenders.values():
                fn()
        for _ in range(args.repeats):
            for label, fn in contenders.items():
                outputs[label] = timed(fn, timings[label])
        reference_out = outputs["official fp32"]
        for label, t in timings.items():
            if label == "official fp32":
                accuracy = "reference"
            elif name == "fp32":
                diff = (outputs[label] - reference_out).abs().max().item()
                ok = diff <= PARITY_TOLERANCE
                failures += not ok
                accuracy = f"max |diff| {diff:.2e} ({'ok' if ok else 'OVER'} {PARITY_TOLERANCE:g})"
            else:
                accuracy = f"PSNR {psnr(outputs[label], reference_out):.1f} dB vs official fp32"
            rows.append((name, label, t, accuracy))

    print(f"\n{'set':<5} {'contender':<14} {'cpu s (median)':>14} {'cpu s (min)':>11} {'of it sys':>9} "
          f"{'wall s (median)':>15}  accuracy")
    for name, label, t, accuracy in rows:
        print(f"{name:<5} {label:<14} {statistics.median(t.cpu):>14.2f} {min(t.cpu):>11.2f} "
              f"{statistics.median(t.kernel):>9.2f} {statistics.median(t.wall):>15.2f}  {accuracy}")
    print("\nCPU-time ratio official fp32 / contender (median of per-pair ratios):")
    for name in args.dtypes:
        base = next(t for n, label, t, _ in rows if n == name and label == "official fp32")
        for n, label, t, _ in rows:
            if n == name and label != "official fp32":
                ratio = statistics.median(a / b for a, b in zip(base.cpu, t.cpu, strict=True))
                print(f"  {name}: {label:<14} {ratio:.2f}x  (medians {statistics.median(base.cpu):.2f} s / "
                      f"{statistics.median(t.cpu):.2f} s)")
    print(f"load after: {load_average()}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
