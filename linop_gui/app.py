"""``linop-gui``: the desktop app's entry point.

    linop-gui [PATH] [--model CKPT] [--device DEV] [--demo] [--screenshot FILE.png] [--theme dark|light]
              [--dicomweb URL] [--precision auto|fp32|bf16|fp16]
    linop-gui --study STUDY.json [--reader NAME] [--theme dark|light]

PATH is a VinDr-Mammo / VinDr-CXR root, a folder of DICOM files or one DICOM file. ``--demo`` writes small
phantom datasets of both modalities once into the cache (``$XDG_CACHE_HOME/linop/demo``, else
``~/.cache/linop/demo``) and opens the mammography one with the bundled demo model when there is one.
``--screenshot`` renders the main window once the first image is shown, writes the PNG and exits (offscreen when
there is no display; it neither restores nor saves the window layout; a first image that cannot be shown ends it
at once with its error). ``--dicomweb URL`` opens File > Open from PACS on that DICOMweb root and lists its
studies (credentials from ``LINOP_DICOMWEB_TOKEN`` or ``LINOP_DICOMWEB_USER`` / ``LINOP_DICOMWEB_PASSWORD``;
studies are cached under ``<cache>/dicomweb``). Before Qt starts, a missing display, missing system libraries of
Qt's X11 plugin, a path that does not exist, a file that is not DICOM, a ``--dicomweb`` value that is not an
http(s) URL or a missing ``--study`` file end the command with one line and exit code 2.
``--study`` opens the reading view of a reader study (:mod:`linop_gui.reading_window`) instead of the main window;
without ``--reader`` a small dialog asks for the reader name (the last one offered).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from linop_core.errors import LinopError
from linop_core.precision import Precision

DEMO_MAMMO = {"n": 3, "seed": 0}
DEMO_CXR = {"n": 8, "seed": 0}
_COMPLETE_MARKER = ".linop-demo-complete"
SCREENSHOT_TIMEOUT_MS = 60_000


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="linop-gui",
        description="LINOP Studio: browse mammograms and chest X-rays, draw lesion boxes, preview and review "
        "MAT in/out-painting.",
    )
    parser.add_argument("path", nargs="?", help="VinDr-Mammo or VinDr-CXR root, folder of DICOM files, or a file")
    parser.add_argument("--model", metavar="CKPT", help="LINOP generator checkpoint (.pt) used for previews")
    parser.add_argument("--device", metavar="DEV", help="torch device for generation: auto, cpu, cuda, cuda:1, mps")
    parser.add_argument("--precision", choices=[str(p) for p in Precision],
                        help="MAT arithmetic: auto (bf16 where the CPU/GPU computes it natively), fp32, bf16, fp16 "
                        "(GPU only); default: the last choice in the Model panel, else auto")
    parser.add_argument("--demo", action="store_true",
                        help="open small phantom datasets (generated once into the cache) with the demo model")
    parser.add_argument("--screenshot", metavar="FILE.png",
                        help="render the main window after loading, save it as PNG and exit")
    parser.add_argument("--theme", choices=("dark", "light"), help="colour theme (default: the saved one)")
    parser.add_argument("--dicomweb", metavar="URL",
                        help="browse a PACS: open File > Open from PACS on this DICOMweb root (e.g. "
                        "http://localhost:8042/dicom-web); credentials from LINOP_DICOMWEB_TOKEN or "
                        "LINOP_DICOMWEB_USER / LINOP_DICOMWEB_PASSWORD")
    parser.add_argument("--study", metavar="STUDY.json",
                        help="read a reader study (made by linop-study create): one blinded case at a time")
    parser.add_argument("--reader", metavar="NAME", help="with --study: your reader name (else a dialog asks)")
    return parser


def cache_dir() -> Path:
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "linop"


def ensure_demo_datasets(
    base: Path | None = None, progress: Callable[[str, int, int], None] | None = None
) -> dict[str, Path]:
    """Phantom VinDr-Mammo and VinDr-CXR datasets under ``<cache>/demo``, generated when absent or incomplete.

    Returns ``{"mammo": root, "cxr": root}``. A marker file written last tells a complete dataset from one
    interrupted half-way, which is regenerated.
    """
    from linop_core.phantom import make_cxr_dataset, make_mammo_dataset

    base = base or cache_dir() / "demo"
    out: dict[str, Path] = {}
    for name, make, params in (("mammo", make_mammo_dataset, DEMO_MAMMO), ("cxr", make_cxr_dataset, DEMO_CXR)):
        root = base / name
        marker = root / _COMPLETE_MARKER
        if not marker.is_file():
            if root.exists():
                import shutil

                shutil.rmtree(root)
            report = (lambda done, total, n=name: progress(n, done, total)) if progress else None
            make(root, n=params["n"], seed=params["seed"], size="small", progress=report)
            marker.write_text(f"n={params['n']} seed={params['seed']} size=small\n", encoding="utf-8")
        out[name] = root
    return out


def dicomweb_problem(url: str) -> str | None:
    """Why ``--dicomweb URL`` cannot be a DICOMweb root (one line), checked before Qt starts; None if it can."""
    from linop_core.dicomweb import DicomwebServer

    try:
        DicomwebServer(url)
    except LinopError as exc:
        return str(exc)
    return None


def study_problem(study: str, reader: str | None) -> str | None:
    """What stops a reader study before Qt starts: no study file, or a reader name that cannot name a file."""
    if not Path(study).is_file():
        return f"{study}: no such study file; check the --study path"
    if reader is not None:
        from linop_core.study.answers import check_reader_name

        try:
            check_reader_name(reader)
        except LinopError as exc:
            return str(exc)
    return None


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(list(argv) if argv is not None else None)
    if args.study is not None and (args.path or args.demo or args.model or args.screenshot):
        parser.error("--study opens the reading view alone: leave out PATH, --demo, --model and --screenshot")
    if args.reader is not None and args.study is None:
        parser.error("--reader names the reader of a --study")

    # Checked before Qt starts, so a problem is one line and exit code 2, never Qt's abort.
    from linop_gui.preflight import display_problem, has_display, path_problem

    problem = path_problem(args.path) if args.path is not None else None
    if args.study is not None:
        problem = study_problem(args.study, args.reader)
    if problem is None and args.model is not None and not Path(args.model).is_file():
        problem = f"{args.model}: checkpoint not found; check the --model path"
    if problem is None and args.dicomweb is not None:
        problem = dicomweb_problem(args.dicomweb)
    if problem is None:
        problem = display_problem(os.environ, screenshot=bool(args.screenshot))
    if problem is not None:
        print(f"linop-gui: {problem}", file=sys.stderr)
        return 2
    if args.screenshot and not has_display(os.environ):
        os.environ["QT_QPA_PLATFORM"] = "offscreen"  # a screenshot needs no screen

    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication, QProgressDialog

    from linop_gui.main_window import MainWindow
    from linop_gui.settings import APPLICATION, ORGANIZATION, Settings
    from linop_gui.theme import app_icon, apply_theme

    app = QApplication.instance() or QApplication([sys.argv[0]])
    assert isinstance(app, QApplication)
    app.setOrganizationName(ORGANIZATION)
    app.setApplicationName(APPLICATION)
    app.setApplicationDisplayName(APPLICATION)
    app.setWindowIcon(app_icon())
    settings = Settings()
    theme = args.theme or settings.theme
    apply_theme(app, theme)
    if args.theme:
        settings.theme = args.theme

    if args.study is not None:
        from linop_gui.reading_launch import ask_reader, open_study

        reader = args.reader or ask_reader(settings)
        if reader is None:
            return 1  # the reader cancelled the name dialog
        reading = open_study(settings, args.study, reader)
        if reading is None:
            return 2
        app.exec()
        return 0

    model = args.model
    path = args.path
    demo: dict[str, Path] = {}
    if args.demo:
        dialog = QProgressDialog("Writing phantom demo datasets…", "", 0, 100)
        dialog.setCancelButton(None)
        dialog.setMinimumDuration(500)

        def report(name: str, done: int, total: int) -> None:
            dialog.setLabelText(f"Writing the phantom {name} demo dataset ({done}/{total})…")
            dialog.setValue(int(100 * done / max(total, 1)))
            app.processEvents()

        try:
            demo = ensure_demo_datasets(progress=report)
        except (LinopError, OSError) as exc:
            print(f"linop-gui: cannot write the demo datasets: {exc}", file=sys.stderr)
            return 1
        finally:
            dialog.close()
        # No model named: the generation panel picks the bundled demo model of the open dataset's modality.
        path = path or str(demo["mammo"])

    window = MainWindow(settings, model_path=model, device=args.device, precision=args.precision,
                        remember_layout=not args.screenshot)
    window.enable_generation()
    base = cache_dir() / "demo"
    labels = {"mammo": "Phantom VinDr-Mammo", "cxr": "Phantom VinDr-CXR"}
    window.set_demo_datasets(
        {labels[k]: base / k for k in labels},
        lambda: {labels[k]: root for k, root in ensure_demo_datasets(base).items()},
    )
    from linop_gui.pacs_dialog import install_pacs

    pacs = install_pacs(window, cache_dir() / "dicomweb", url=args.dicomweb)
    window.show()
    if args.dicomweb and not args.screenshot:
        QTimer.singleShot(0, lambda: pacs.show_dialog(search=True))

    status = {"code": 0, "shot": False}
    if args.screenshot:
        target = Path(args.screenshot)

        def shoot() -> None:
            if status["shot"]:
                return
            status["shot"] = True
            app.processEvents()
            target.parent.mkdir(parents=True, exist_ok=True)
            if not window.grab().save(str(target), "PNG"):
                print(f"linop-gui: cannot write the screenshot {target}", file=sys.stderr)
                status["code"] = 1
            window.close()
            app.quit()

        def fail(message: str) -> None:
            print(f"linop-gui: {message}", file=sys.stderr)
            status["code"] = 1
            shoot()

        # Let thumbnails and overlays settle after the first image is on screen.
        window.image_changed.connect(lambda *_: QTimer.singleShot(1500, shoot))
        window.open_failed.connect(fail)
        window.image_failed.connect(fail)  # the first image cannot be shown: say why now, not after the timeout
        QTimer.singleShot(SCREENSHOT_TIMEOUT_MS, lambda: fail("timed out waiting for the first image"))
        if path is None:
            QTimer.singleShot(500, shoot)

    if path is not None:
        window.open_path(path)
    app.exec()
    return status["code"]


if __name__ == "__main__":
    sys.exit(main())
