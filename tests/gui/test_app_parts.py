"""Command line, demo cache, settings, shortcuts, tag browser, loader and box/mask files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PySide6.QtCore import QSettings

from linop_core.review.session import ImageAnnotation, LesionBox, ReviewSession
from linop_gui.settings import MAX_RECENT, Settings
from linop_gui.tools import (
    annotations_from_json,
    annotations_to_json,
    box_from_points,
    label_rows,
    load_annotations,
    mask_bbox,
    paint_segment,
    save_annotations,
)


@pytest.mark.slow
def test_screenshot_renders_the_window_after_loading_and_exits(mammo_root: Path, tmp_path: Path, qapp) -> None:
    """The real entry point in a child process (its own QApplication and event loop, as from the shell)."""
    import os
    import subprocess
    import sys

    target = tmp_path / "shots" / "main.png"
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen"}
    proc = subprocess.run(
        [sys.executable, "-m", "linop_gui.app", str(mammo_root), "--screenshot", str(target), "--device", "cpu"],
        env=env, capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    data = target.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 20_000
    from PySide6.QtGui import QImage

    image = QImage(str(target))
    assert image.width() >= 800 and image.height() >= 500
    # not a blank frame: the image area and the panels differ
    grey = [QImage.pixelColor(image, x, image.height() // 2).lightness() for x in range(0, image.width(), 20)]
    assert max(grey) - min(grey) > 40


def test_command_line_rejects_a_missing_checkpoint(tmp_path: Path, qapp, capsys) -> None:
    from linop_gui.app import build_parser, main

    args = build_parser().parse_args(["data", "--model", "m.pt", "--device", "cuda:1", "--demo"])
    assert (args.path, args.model, args.device, args.demo) == ("data", "m.pt", "cuda:1", True)
    assert main([str(tmp_path), "--model", str(tmp_path / "missing.pt")]) == 2
    assert "missing.pt" in capsys.readouterr().err


@pytest.mark.slow
def test_demo_datasets_are_generated_once_and_regenerated_when_incomplete(tmp_path: Path, monkeypatch) -> None:
    import linop_gui.app as app

    monkeypatch.setattr(app, "DEMO_MAMMO", {"n": 1, "seed": 0})
    monkeypatch.setattr(app, "DEMO_CXR", {"n": 2, "seed": 0})
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    roots = app.ensure_demo_datasets()
    assert roots["mammo"] == tmp_path / "cache" / "linop" / "demo" / "mammo"
    csv = roots["mammo"] / "breast-level_annotations.csv"
    stamp = csv.stat().st_mtime_ns
    calls: list[str] = []
    assert app.ensure_demo_datasets(progress=lambda name, d, t: calls.append(name)) == roots
    assert csv.stat().st_mtime_ns == stamp and calls == []  # cached: nothing rewritten
    (roots["cxr"] / app._COMPLETE_MARKER).unlink()  # as if interrupted half-way
    (roots["cxr"] / "stray.txt").write_text("left from an interrupted run")
    app.ensure_demo_datasets(progress=lambda name, d, t: calls.append(name))
    assert set(calls) == {"cxr"} and not (roots["cxr"] / "stray.txt").exists()
    from linop_core.catalog import Catalog

    assert Catalog.open(roots["cxr"]).kind == "cxr" and Catalog.open(roots["mammo"]).kind == "mammo"


def test_settings_persist_and_survive_bad_values(tmp_path: Path) -> None:
    path = str(tmp_path / "s.ini")
    settings = Settings(QSettings(path, QSettings.Format.IniFormat))
    for i in range(MAX_RECENT + 3):
        (tmp_path / f"d{i}").mkdir()
        settings.add_recent(tmp_path / f"d{i}")
    settings.add_recent(tmp_path / "d5")
    settings.theme = "light"
    settings.brush_radius = 40
    settings.sync()
    again = Settings(QSettings(path, QSettings.Format.IniFormat))
    recent = again.recent()
    assert len(recent) == MAX_RECENT and recent[0] == str((tmp_path / "d5").resolve())
    assert recent[1] == str((tmp_path / f"d{MAX_RECENT + 2}").resolve()) and len(set(recent)) == MAX_RECENT
    assert (again.theme, again.brush_radius) == ("light", 40)
    again.q.setValue("tools/brush_radius", "huge")
    again.q.setValue("appearance/theme", "purple")
    assert (again.brush_radius, again.theme) == (12, "dark")
    with pytest.raises(ValueError):
        again.hole_shape = "star"


def test_shortcut_table_has_no_clashes_and_drives_the_dialog(qtbot) -> None:
    from linop_gui.shortcuts import SHORTCUTS, ShortcutDialog, duplicate_keys

    assert duplicate_keys() == {}
    ids = [s.action_id for s in SHORTCUTS]
    assert len(ids) == len(set(ids))
    dialog = ShortcutDialog()
    qtbot.addWidget(dialog)
    assert "Next image" in dialog.visible_actions() and "Undo" in dialog.visible_actions()
    dialog.search.setText("brush")
    shown = dialog.visible_actions()
    assert shown and all("brush" in s.lower() or "b" in s.lower() for s in shown)
    assert "Next image" not in shown


def test_tag_browser_lists_and_filters_elements(mammo_root: Path, qtbot) -> None:
    from linop_gui.tags import TagDialog

    path = next(mammo_root.glob("images/*/*.dicom"))
    dialog = TagDialog(path)
    qtbot.addWidget(dialog)
    assert dialog.find_rows("Manufacturer")
    assert dialog.find_rows("Rows")
    dialog.search.setText("manufacturer")
    assert dialog.find_rows("Manufacturer") and not dialog.find_rows("Rows")


def test_loader_decodes_off_thread_caches_and_reports_failures(mammo_root: Path, tmp_path: Path, qtbot) -> None:
    from linop_gui.loader import ImageLoader

    loader = ImageLoader()
    path = next(mammo_root.glob("images/*/*.dicom"))
    assert loader.load(path) is None
    with qtbot.waitSignal(loader.image_loaded, timeout=20_000) as blocker:
        pass
    assert Path(blocker.args[0]) == path and blocker.args[1].pixels.ndim == 2
    assert loader.load(path) is blocker.args[1]  # from the cache, no signal
    thumb = loader.cached_thumbnail(path)
    assert thumb is not None and thumb.dtype == np.uint8 and max(thumb.shape) == 96
    bad = tmp_path / "bad.dcm"
    bad.write_bytes(b"nope")
    with qtbot.waitSignal(loader.image_failed, timeout=20_000) as blocker:
        loader.load(bad)
    assert "bad.dcm" in blocker.args[1]
    loader.shutdown()


def test_brush_painting_geometry() -> None:
    mask = np.zeros((50, 80), dtype=bool)
    paint_segment(mask, (10.0, 25.0), (60.0, 25.0), 5.0, True)
    assert mask_bbox(mask) == (5.0, 20.0, 65.0, 30.0)
    assert mask[25, 10] and mask[25, 60] and not mask[25, 70] and not mask[10, 30]
    paint_segment(mask, (30.0, 25.0), (30.0, 25.0), 3.0, False)
    assert not mask[25, 30] and mask[25, 20]
    assert box_from_points((10.4, 20.6), (3.2, 5.9), 8, 100) == (3.0, 5.0, 8.0, 21.0)
    assert box_from_points((1, 1), (2, 2), 100, 100) is None


def test_boxes_and_masks_round_trip_through_json(tmp_path: Path) -> None:
    session = ReviewSession.open(tmp_path / "data", tmp_path / "session")
    brush = np.zeros((60, 40), dtype=bool)
    brush[10:20, 5:30] = True
    brush[15, 35] = True
    name = session.save_brush(brush)
    session.apply("a", ImageAnnotation(boxes=[LesionBox((1, 2, 30, 40), "rectangle"),
                                              LesionBox((5, 10, 36, 20), "brush", name)]))
    session.apply("b", ImageAnnotation(mode="outpaint", margin=24,
                                       boxes=[LesionBox((3, 3, 9, 9), "rectangle", source="finding")]))
    out = tmp_path / "session" / "annotations.json"
    assert save_annotations(out, session) == 2

    other = ReviewSession.open(tmp_path / "data", tmp_path / "other")
    assert load_annotations(out, other, known_ids=["a", "b"]) == ["a", "b"]
    a, b = other.annotation("a"), other.annotation("b")
    assert [x.box for x in a.boxes] == [(1, 2, 30, 40), (5, 10, 36, 20)] and a.boxes[0].hole == "rectangle"
    np.testing.assert_array_equal(other.load_brush(a.boxes[1].brush_file), brush)
    assert (b.mode, b.margin, b.boxes[0].source) == ("outpaint", 24, "finding")
    assert other.undo() == "b"  # loading is undoable per image

    data = annotations_to_json({"a": a}, other.load_brush, "root")
    data["images"]["a"]["boxes"][0]["box"] = [5, 5, 1, 1]
    with pytest.raises(ValueError, match="positive size"):
        annotations_from_json(data, other.save_brush)


def test_display_transform_matches_the_dicom_window_exactly() -> None:
    from linop_core.dicom import VoiWindow, apply_window
    from linop_gui.display import display_transform

    window = VoiWindow(2100.0, 900.0)
    values = np.arange(1000, 3301)
    sigmoid = display_transform(window, "SIGMOID", False, (1000.0, 3300.0), integral=True)
    lo, _ = sigmoid.levels
    expected = np.clip(apply_window(values, window, "SIGMOID") * 255 + 0.5, 0, 255).astype(np.uint8)
    np.testing.assert_array_equal(sigmoid.lut[(values - lo).astype(int)], expected)
    inverted = display_transform(window, "SIGMOID", True, (1000.0, 3300.0), integral=True)
    assert np.all(inverted.lut.astype(int) + sigmoid.lut.astype(int) >= 254)
    linear = display_transform(window, "LINEAR", False, (1000.0, 3300.0), integral=True)
    assert linear.lut is None and linear.levels == pytest.approx((1650.0, 2549.0))


def test_pyramid_levels_are_block_means() -> None:
    from linop_gui.display import downsample_mean

    data = np.arange(7 * 9, dtype=np.uint16).reshape(7, 9)
    half = downsample_mean(data, 2)
    assert half.shape == (3, 4) and half.dtype == np.uint16
    assert half[1, 2] == round(data[2:4, 4:6].mean())
    floats = downsample_mean(data.astype(np.float32), 4)
    assert floats[0, 1] == pytest.approx(data[0:4, 4:8].mean())


def test_finding_labels_at_nearly_the_same_corner_stack_instead_of_hiding_each_other() -> None:
    # Three readers' boxes of one finding (VinDr-CXR) and one box far away.
    corners = [(53.3, 248.5), (37.1, 245.0), (38.7, 250.7), (300.0, 40.0)]
    assert label_rows(corners, near_x=100, near_y=20) == [0, 1, 2, 0]
    # Corners apart by more than a label's reach share the first row.
    assert label_rows([(0, 0), (0, 30), (150, 0)], near_x=100, near_y=20) == [0, 0, 0]
    # A freed row is reused: the third label only collides with the second.
    assert label_rows([(0, 0), (0, 15), (0, 30)], near_x=100, near_y=20) == [0, 1, 0]
    assert label_rows([], near_x=1, near_y=1) == []
