"""Before Qt starts: no display, missing system libraries of Qt's X11 plugin, and bad paths end the command with
one line and exit code 2 (never Qt's abort); a screenshot of an undecodable first image fails at once."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from linop_gui import preflight


def test_missing_sonames_map_to_debian_packages_and_one_command() -> None:
    packages, unknown = preflight.packages_for(["libxcb-icccm.so.4", "libxcb-keysyms.so.1", "libxcb-icccm.so.4",
                                                "libnot-a-real-lib.so.7"])
    assert packages == ["libxcb-icccm4", "libxcb-keysyms1"] and unknown == ["libnot-a-real-lib.so.7"]
    libraries = preflight.QtLibraries(("libxcb-icccm.so.4", "libxcb-keysyms.so.1"), tuple(packages), ())
    message = libraries.message()
    assert "libxcb-icccm.so.4" in message and "apt-get install -y libxcb-icccm4 libxcb-keysyms1" in message
    assert "\n" not in message


def test_ldd_on_the_real_plugin_finds_what_is_missing_here() -> None:
    plugin = preflight.xcb_plugin()
    if plugin is None:
        pytest.skip("PySide6 ships no libqxcb.so here")
    out = subprocess.run(["ldd", str(plugin)], capture_output=True, text=True).stdout
    libraries = preflight.check_qt_libraries(plugin)
    assert set(libraries.missing) == {line.split()[0] for line in out.splitlines() if "not found" in line}
    assert all(soname in preflight.DEBIAN_PACKAGES or soname in libraries.unknown for soname in libraries.missing)


def test_what_counts_as_a_display() -> None:
    assert preflight.display_problem({}, screenshot=False) == preflight.NO_DISPLAY
    assert preflight.display_problem({}, screenshot=True) is None  # offscreen
    assert preflight.display_problem({"QT_QPA_PLATFORM": "offscreen"}, screenshot=False) is None
    assert preflight.display_problem({"WAYLAND_DISPLAY": "wayland-0", "XDG_SESSION_TYPE": "wayland"},
                                     screenshot=False) is None
    assert not preflight.uses_xcb({"WAYLAND_DISPLAY": "wayland-0", "XDG_SESSION_TYPE": "wayland"})
    assert preflight.uses_xcb({"DISPLAY": ":0"}) and preflight.uses_xcb({"QT_QPA_PLATFORM": "xcb"})


def test_without_a_display_the_app_says_so_and_exits_2(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM")}
    proc = subprocess.run([sys.executable, "-m", "linop_gui.app", "--demo"], env=env, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "no display" in lines[0] and "--screenshot" in lines[0] and "make demo-data" in lines[0]


def test_a_file_that_is_not_dicom_is_refused_not_its_folder_opened(tmp_path: Path, dicom_folder: Path,
                                                                  capsys) -> None:
    from linop_gui.app import main

    notes = dicom_folder / "notes.txt"
    notes.write_text("a reader's notes\n")
    assert main([str(notes)]) == 2
    err = capsys.readouterr().err
    assert "notes.txt" in err and "not a DICOM file" in err and len(err.strip().splitlines()) == 1
    assert main([str(tmp_path / "nowhere")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_opening_a_non_dicom_file_in_the_window_says_so(qtbot, make_window, dicom_folder: Path) -> None:
    notes = dicom_folder / "notes.txt"
    notes.write_text("a reader's notes\n")
    window = make_window()
    with qtbot.waitSignal(window.open_failed, timeout=30_000) as blocker:
        window.open_path(notes)
    assert "notes.txt" in blocker.args[0] and "not a DICOM file" in blocker.args[0]
    assert window.workspace.catalog is None


@pytest.mark.slow
def test_a_screenshot_of_an_undecodable_first_image_fails_at_once(tmp_path: Path, dicom_folder: Path) -> None:
    folder = tmp_path / "cut"
    folder.mkdir()
    (folder / "truncated.dcm").write_bytes((dicom_folder / "truncated.dcm").read_bytes())
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "XDG_CONFIG_HOME": str(tmp_path / "config")}
    start = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "linop_gui.app", str(folder), "--screenshot", str(tmp_path / "s.png"),
                           "--device", "cpu"], env=env, capture_output=True, text=True, timeout=120)
    elapsed = time.monotonic() - start
    assert proc.returncode == 1 and "truncat" in proc.stderr.lower(), proc.stderr
    assert elapsed < 40  # not the 60 s timeout
