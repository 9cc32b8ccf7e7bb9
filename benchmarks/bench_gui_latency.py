"""Box drawn -> first candidate on screen, in the real desktop app (offscreen Qt), per model and precision.

For each model (``mat-small``: the bundled demo; ``mat-512-gray``: random weights at the paper's size) and each
precision, the app opens a phantom mammogram, the engine is loaded once (it stays warm in the model thread, as
for a user), then for each repeat a new box is drawn in the breast and G is pressed; the time runs from G to
the moment the first candidate is selected in the gallery and shown in the viewer (the event loop has drawn
it), and on to the last candidate. Prints one table row per model and precision with the median of the
repeats, the CPU's bf16 support, the thread count and the machine's load.

    python benchmarks/bench_gui_latency.py                       # both models, fp32 / bf16 / auto, 3 repeats
    python benchmarks/bench_gui_latency.py --models mat-small --precisions auto --repeats 5 --threads 2
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("QT_LOGGING_RULES", "qt.qpa.*=false")  # the offscreen plugin's size-hint notices

import numpy as np
import torch

from linop_core.anatomy import breast_mask
from linop_core.demo_models import demo_model_path
from linop_core.dicom import read_dicom
from linop_core.engines import EngineSpec
from linop_core.model.checkpoint import save_checkpoint
from linop_core.model.presets import build_generator, get_config
from linop_core.phantom import make_mammo_dataset
from linop_core.precision import CpuFeatures, Precision, resolve_precision
from linop_core.vindr import open_dataset


def _checkpoint(model: str, folder: Path) -> Path:
    if model == "mat-small":
        path = demo_model_path("inpaint")
        if path is None:
            raise SystemExit("the bundled demo model resources/models/mammo-inpaint-demo.pt is not installed")
        return path
    config = get_config(model)
    return save_checkpoint(folder / f"{model}.pt", config=config, preset=model, G_ema=build_generator(config, seed=0),
                           half=True)


def _boxes(path: Path, n: int, side: int) -> list[tuple[float, float, float, float]]:
    """``n`` square boxes of ``side`` px well inside the breast, spread over it."""
    image = read_dicom(path)
    mask = breast_mask(image.pixels, padding_mask=image.padding_mask)
    ys, xs = np.nonzero(mask)
    rng = np.random.default_rng(0)
    boxes = []
    while len(boxes) < n:
        i = int(rng.integers(len(ys)))
        cy, cx, half = int(ys[i]), int(xs[i]), side // 2
        if mask[max(cy - side, 0): cy + side, max(cx - side, 0): cx + side].mean() > 0.99:
            boxes.append((float(cx - half), float(cy - half), float(cx + half), float(cy + half)))
    return boxes


def measure(model: str, precision: Precision, repeats: int, candidates: int, root: Path, folder: Path) -> dict:
    from PySide6.QtWidgets import QApplication

    from linop_gui.main_window import MainWindow
    from linop_gui.settings import Settings

    app = QApplication.instance() or QApplication(sys.argv[:1])
    from PySide6.QtCore import QSettings

    settings = Settings(QSettings(str(folder / f"gui-{model}-{precision}.ini"), QSettings.Format.IniFormat))
    window = MainWindow(settings, session_base=folder / f"sessions-{model}-{precision}", remember_layout=False)
    window.resize(1600, 1000)
    window.show()

    def wait(predicate, timeout: float = 600.0) -> None:
        deadline = time.perf_counter() + timeout
        while not predicate():
            app.processEvents()
            if time.perf_counter() > deadline:
                raise SystemExit(f"{model} {precision}: timed out waiting")
            time.sleep(0.001)

    window.open_path(root)
    wait(lambda: window.workspace.catalog is not None)
    record = sorted(open_dataset(root).normal_pool("training"), key=lambda r: r.image_id)[0]
    window.browser.select(record.image_id)
    wait(lambda: window.workspace.image_ready and window.workspace.entry.image_id == record.image_id)
    controller = window.enable_generation()
    spec = EngineSpec(checkpoint=str(_checkpoint(model, folder)), device="cpu", precision=precision)
    loaded: list = []
    controller.model_worker.engine_changed.connect(loaded.append)
    controller.load_engine(spec, remember=False)
    wait(lambda: bool(loaded) and loaded[-1].checkpoint == spec.checkpoint and loaded[-1].precision == precision)
    controller.panel.candidates_spin.setValue(candidates)
    first_times, all_times = [], []
    shown: list[float] = []  # when a candidate was selected in the gallery (the first one is, as it arrives)
    controller.gallery.candidate_selected.connect(lambda item: shown.append(time.perf_counter()) if item else None)
    for box in _boxes(Path(record.path), repeats + 1, 64):
        window.viewer.add_box(box)
        shown.clear()
        wanted = len(controller.gallery.items) + candidates
        start = time.perf_counter()
        controller.generate()
        wait(lambda: bool(shown))
        app.processEvents()  # the viewer repaints the selected candidate
        first_times.append(time.perf_counter() - start)
        wait(lambda wanted=wanted: len(controller.gallery.items) >= wanted and not controller.model_worker.busy)
        all_times.append(time.perf_counter() - start)
    controller.shutdown()
    window.close()
    # the first round warms caches (oneDNN primitives, allocator): the user's first G after loading pays it
    return {"first_warmup": first_times[0], "first": statistics.median(first_times[1:]),
            "all": statistics.median(all_times[1:]), "dtype": str(controller.engine_info.dtype)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["mat-small", "mat-512-gray"])
    parser.add_argument("--precisions", nargs="+", default=["fp32", "bf16", "auto"],
                        choices=[str(p) for p in Precision])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--candidates", type=int, default=4)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    cpu = CpuFeatures.detect()
    print(f"CPU bf16: avx512_bf16={cpu.avx512_bf16} amx_bf16={cpu.amx_bf16}; auto -> "
          f"{resolve_precision('auto', 'cpu')}; threads {args.threads}; load {os.getloadavg()}")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        root = folder / "mammo"
        make_mammo_dataset(root, n=2, seed=0)
        print(f"{'model':14} {'precision':9} {'dtype':9} {'first (warm-up)':>16} {'first':>8} "
              f"{'all ' + str(args.candidates):>8}")
        for model in args.models:
            for precision in args.precisions:
                r = measure(model, Precision(precision), args.repeats, args.candidates, root, folder)
                print(f"{model:14} {precision:9} {r['dtype']:9} {r['first_warmup']:15.2f}s {r['first']:7.2f}s "
                      f"{r['all']:7.2f}s", flush=True)
    print(f"load after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
