"""Generator speed: ms per image and peak memory per preset, batch size, device, dtype and options.

Every configuration runs in its own child process so that peak memory (CPU: max RSS of the child; CUDA:
``torch.cuda.max_memory_allocated``) belongs to that configuration alone. Timings are the median over
``--repeats`` timed forward passes after ``--warmup`` untimed ones, in inference mode, at the preset's design
resolution unless ``--size`` is given. ``cpu ms/img`` is the process CPU time (all threads); on a shared machine,
``--threads 1`` and that column give the most stable numbers (OpenMP barriers stall badly when cores are
oversubscribed). For reduced precision the script also reports the PSNR of the output
against fp32 on the same inputs and random draws (peak = the fp32 output's range, at least 2 for [-1, 1]).
Timings depend on the hole (``--hole``): the generator computes its last decoder layers only around the holes'
bounding box. NNPACK (fp32 3x3 convs on the CPU) sizes its thread pool once, by ``--threads`` here.

Examples:
    python benchmarks/bench_generator.py                          # every preset, CPU fp32 + bf16, batch 1 and 8
    python benchmarks/bench_generator.py --presets mat-512 --batch 1 --dtypes fp32 bf16 --repeats 5
    python benchmarks/bench_generator.py --device cuda --dtypes fp32 bf16 fp16 --compile
"""

from __future__ import annotations

import argparse
import json
import math
import resource
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass

import torch

from linop_core.model.presets import PRESETS, build_generator

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


@dataclass(frozen=True)
class BenchConfig:
    preset: str
    device: str
    dtype: str
    batch: int
    channels_last: bool
    compile: bool
    size: int | None
    hole: str
    warmup: int
    repeats: int
    threads: int | None


def _inputs(cfg_channels: int, batch: int, height: int, width: int, device: torch.device,
            channels_last: bool, hole: str) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    img = (torch.rand(batch, cfg_channels, height, width, generator=gen) * 2 - 1).to(device)
    mask = torch.ones(batch, 1, height, width)
    if hole == "box":  # a large hole, 20 % of the image
        mask[:, :, height // 5 : height * 3 // 5, width // 4 : width * 3 // 4] = 0
    else:  # outpainting around the central 60 %: the hole's bounding box is the whole image
        mask.zero_()
        mask[:, :, height // 5 : height * 4 // 5, width // 5 : width * 4 // 5] = 1
    mask = mask.to(device)
    if channels_last:
        img = img.contiguous(memory_format=torch.channels_last)
        mask = mask.contiguous(memory_format=torch.channels_last)
    return img, mask


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def run_one(bc: BenchConfig) -> dict[str, float | str | None]:
    """Time one configuration in this process; returns the result record."""
    if bc.threads:
        torch.set_num_threads(bc.threads)
    device = torch.device(bc.device)
    cfg = PRESETS[bc.preset]()
    size = bc.size or cfg.resolution
    g = build_generator(cfg, seed=0).eval().to(device)
    img, mask = _inputs(cfg.img_channels, bc.batch, size, size, device, bc.channels_last, bc.hole)
    dtype = DTYPES[bc.dtype]
    model = torch.compile(g) if bc.compile else g

    def forward(seed: int) -> torch.Tensor:
        rng = torch.Generator(device=device).manual_seed(seed)
        with torch.inference_mode(), torch.autocast(device.type, dtype=dtype, enabled=dtype != torch.float32):
            return model(img, mask, generator=rng, noise_mode="random")

    for _ in range(bc.warmup):
        forward(0)
    _sync(device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    times = []
    cpu_times = []
    out = None
    for i in range(bc.repeats):
        start, cpu_start = time.perf_counter(), time.process_time()
        out = forward(i)
        _sync(device)
        times.append(time.perf_counter() - start)
        cpu_times.append(time.process_time() - cpu_start)
    assert out is not None
    psnr = None
    if dtype != torch.float32:
        reference = g  # uncompiled fp32 reference with the same seed
        with torch.inference_mode():
            ref = reference(img, mask, generator=torch.Generator(device=device).manual_seed(bc.repeats - 1))
        ref = ref.float()
        peak = max(2.0, (ref.max() - ref.min()).item())  # untrained weights can exceed [-1, 1]
        mse = (out.float() - ref).square().mean().item()
        psnr = 10 * math.log10(peak**2 / mse) if mse > 0 else math.inf
    if device.type == "cuda":
        peak_mb = torch.cuda.max_memory_allocated(device) / 2**20
    else:
        peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB
    median = statistics.median(times)
    return {
        **asdict(bc),
        "size": size,
        "ms_per_image": 1000 * median / bc.batch,
        "images_per_s": bc.batch / median,
        "min_ms_per_image": 1000 * min(times) / bc.batch,
        "cpu_ms_per_image": 1000 * statistics.median(cpu_times) / bc.batch,
        "peak_mb": peak_mb,
        "psnr_vs_fp32_db": psnr,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--presets", nargs="+", default=list(PRESETS), choices=list(PRESETS))
    parser.add_argument("--batch", nargs="+", type=int, default=[1, 8])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--dtypes", nargs="+", default=None, choices=list(DTYPES),
                        help="default: fp32 bf16 on CPU, fp32 bf16 fp16 on CUDA")
    parser.add_argument("--channels-last", choices=["on", "off", "both"], default="on",
                        help="input memory format (the network runs channels-last internally either way)")
    parser.add_argument("--compile", action="store_true", help="also time torch.compile(G)")
    parser.add_argument("--size", type=int, default=None, help="input side (default: the design resolution)")
    parser.add_argument("--hole", choices=["box", "frame"], default="box",
                        help="box: one large hole; frame: outpainting (in inference the generator's last decoder "
                             "layers run only around the holes, so the hole's extent matters)")
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.child:
        print(json.dumps(run_one(BenchConfig(**json.loads(args.child)))))
        return

    dtypes = args.dtypes or (["fp32", "bf16"] if args.device == "cpu" else ["fp32", "bf16", "fp16"])
    layouts = {"on": [True], "off": [False], "both": [False, True]}[args.channels_last]
    compiles = [False, True] if args.compile else [False]
    print(f"torch {torch.__version__}, device {args.device}, threads {args.threads or torch.get_num_threads()}")
    header = (f"{'preset':<13} {'dtype':<5} {'batch':>5} {'cl':>3} {'comp':>4} {'size':>5} {'ms/img':>9} "
              f"{'img/s':>7} {'cpu ms/img':>10} {'peak MB':>8} {'PSNR dB':>8}")
    print(header)
    for preset in args.presets:
        for dtype in dtypes:
            for batch in args.batch:
                for cl in layouts:
                    for comp in compiles:
                        bc = BenchConfig(preset, args.device, dtype, batch, cl, comp, args.size, args.hole,
                                         args.warmup, args.repeats, args.threads)
                        proc = subprocess.run([sys.executable, __file__, "--child", json.dumps(asdict(bc))],
                                              capture_output=True, text=True, check=False)
                        if proc.returncode != 0:
                            reason = (proc.stderr.strip().splitlines() or ["unknown error"])[-1]
                            print(f"{preset:<13} {dtype:<5} {batch:>5} {cl!s:>3} {comp!s:>4} failed: {reason}")
                            continue
                        r = json.loads(proc.stdout.strip().splitlines()[-1])
                        psnr = "" if r["psnr_vs_fp32_db"] is None else f"{r['psnr_vs_fp32_db']:.1f}"
                        print(f"{preset:<13} {dtype:<5} {batch:>5} {'y' if cl else 'n':>3} {'y' if comp else 'n':>4} "
                              f"{r['size']:>5} {r['ms_per_image']:>9.1f} {r['images_per_s']:>7.2f} "
                              f"{r['cpu_ms_per_image']:>10.1f} {r['peak_mb']:>8.0f} {psnr:>8}", flush=True)


if __name__ == "__main__":
    main()
