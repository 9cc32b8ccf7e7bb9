"""The real app on a real X server with a window manager, on a 1366 x 768 screen: the window, its docks, the review
buttons and the status bar all fit on the screen.

Runs ``linop_gui.app.main`` in a child process under Xvfb + openbox (``.ci/run`` installs both, like Qt's
system libraries); skipped only where Xvfb or openbox is not installed."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

SCREEN = (1366, 768)

PROBE = textwrap.dedent("""
    import json, sys
    from PySide6.QtCore import QPoint, QTimer
    from PySide6.QtWidgets import QApplication, QDockWidget
    qapp = QApplication([sys.argv[0]])
    import linop_gui.app as app
    from linop_gui.main_window import MainWindow

    def rect(widget):
        p = widget.mapToGlobal(QPoint(0, 0))
        return [p.x(), p.y(), widget.width(), widget.height()]

    def probe():
        found = [w for w in qapp.topLevelWidgets() if isinstance(w, MainWindow) and w.isVisible()]
        w = found[0] if found else None
        if w is None or w.workspace.image is None or w.generation is None or w.generation.engine_info is None:
            QTimer.singleShot(200, probe)
            return
        w.show_gallery(True)  # every dock on screen at once
        QTimer.singleShot(1500, lambda: report(w))

    def report(w):
        frame, avail = w.frameGeometry(), w.screen().availableGeometry()
        # A dock behind another's tab stays "visible" to Qt but has nothing on screen: ask what is painted.
        docks = {d.objectName(): {"rect": rect(d), "visible": d.isVisible() and not d.visibleRegion().isEmpty(),
                                  "tabbed_with": [t.objectName() for t in w.tabifiedDockWidgets(d)]}
                 for d in w.findChildren(QDockWidget)}
        data = {"available": [avail.x(), avail.y(), avail.width(), avail.height()],
                "frame": [frame.x(), frame.y(), frame.width(), frame.height()], "docks": docks,
                "approve": rect(w.generation.gallery.approve_button),
                "status": rect(w.statusBar()), "viewer": rect(w.viewer), "focus": type(qapp.focusWidget()).__name__}
        print("PROBE " + json.dumps(data), flush=True)
        w.close()

    QTimer.singleShot(0, probe)
    sys.exit(app.main(sys.argv[1:]))
""")


def _free_display() -> int:
    for number in range(90 + os.getpid() % 40, 200):
        if not Path(f"/tmp/.X11-unix/X{number}").exists() and not Path(f"/tmp/.X{number}-lock").exists():
            return number
    raise RuntimeError("no free X display number")


@pytest.fixture
def desktop(tmp_path: Path) -> Iterator[dict[str, str]]:
    """An Xvfb screen of SCREEN with openbox running on it; yields the environment to run the app in."""
    xvfb, openbox = shutil.which("Xvfb"), shutil.which("openbox")
    if xvfb is None or openbox is None:
        pytest.skip("Xvfb and openbox are not installed (.ci/run installs them: apt-get install xvfb openbox)")
    number = _free_display()
    server = subprocess.Popen([xvfb, f":{number}", "-screen", "0", f"{SCREEN[0]}x{SCREEN[1]}x24", "-nolisten", "tcp"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    env = {k: v for k, v in os.environ.items() if k not in ("QT_QPA_PLATFORM", "WAYLAND_DISPLAY")}
    env.update(DISPLAY=f":{number}", XDG_CONFIG_HOME=str(tmp_path / "config"), XDG_CACHE_HOME=str(tmp_path / "cache"),
               XDG_DATA_HOME=str(tmp_path / "data"))
    wm = None
    try:
        deadline = time.monotonic() + 20
        while not Path(f"/tmp/.X11-unix/X{number}").exists():
            if server.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"Xvfb :{number} did not start")
            time.sleep(0.05)
        wm = subprocess.Popen([openbox], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(0.5)
        yield env
    finally:
        for process in (wm, server):
            if process is not None:
                process.terminate()
                try:
                    process.wait(10)
                except subprocess.TimeoutExpired:
                    process.kill()


def _inside(rect: list[int], area: list[int]) -> bool:
    x, y, w, h = rect
    ax, ay, aw, ah = area
    return x >= ax and y >= ay and x + w <= ax + aw and y + h <= ay + ah


def test_the_window_and_its_docks_fit_a_1366_x_768_screen(desktop: dict[str, str], mammo_root: Path) -> None:
    proc = subprocess.run([sys.executable, "-c", PROBE, str(mammo_root), "--device", "cpu"], env=desktop,
                          capture_output=True, text=True, timeout=120)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("PROBE ")]
    assert proc.returncode == 0 and lines, proc.stdout[-2000:] + proc.stderr[-3000:]
    data = json.loads(lines[0].removeprefix("PROBE "))
    screen = data["available"]
    assert screen[2] <= SCREEN[0] and screen[3] <= SCREEN[1]
    assert _inside(data["frame"], screen), data["frame"]
    for name in ("dock_browser", "dock_annotate", "dock_gallery", "dock_generate"):
        dock = data["docks"][name]
        # Every dock is on screen, or a tab behind one that is (Generate shares the right edge on a short screen).
        assert dock["visible"] or any(data["docks"][t]["visible"] for t in dock["tabbed_with"]), (name, dock)
        if dock["visible"]:
            assert _inside(dock["rect"], screen), (name, dock["rect"])
    for widget in ("approve", "status", "viewer"):
        assert _inside(data[widget], screen), (widget, data[widget])
    viewer = data["viewer"]
    assert viewer[2] >= 500 and viewer[3] >= 250  # the image keeps a usable share of the screen
    assert data["focus"] == "ImageViewer"  # the keyboard is on the image at start, not in the filter
