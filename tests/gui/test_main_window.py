"""The main window end to end (offscreen): open, navigate, window/level, draw, undo/redo, filters, hanging."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PySide6.QtCore import QPoint, Qt
from PySide6.QtTest import QTest

from linop_gui.browser import EntryRole
from linop_gui.tools import Tool


def _drag(qtbot, viewer, p0: tuple[float, float], p1: tuple[float, float],
          button: Qt.MouseButton = Qt.MouseButton.LeftButton, steps: int = 6) -> None:
    """A real press / move / release on the viewport, at image coordinates mapped through the ViewBox."""
    viewport = viewer.graphics.viewport()
    a = QPoint(*viewer.map_image_to_widget(*p0))
    b = QPoint(*viewer.map_image_to_widget(*p1))
    QTest.mousePress(viewport, button, Qt.KeyboardModifier.NoModifier, a)
    for i in range(1, steps + 1):
        t = i / steps
        QTest.mouseMove(viewport, QPoint(round(a.x() + t * (b.x() - a.x())), round(a.y() + t * (b.y() - a.y()))))
        qtbot.wait(5)
    QTest.mouseRelease(viewport, button, Qt.KeyboardModifier.NoModifier, b)
    qtbot.wait(10)


def test_open_navigate_and_prefetch(make_window, mammo_root: Path, qtbot) -> None:
    window = make_window(mammo_root)
    assert window.browser.model.rowCount() == 8
    first = window.workspace.entry
    assert first is window.browser.model.entries[0] and window.workspace.image is not None
    assert window.viewer.image is window.workspace.image
    # the next image is decoded in the background while the first is shown
    qtbot.waitUntil(lambda: window.loader.cached(window.browser.model.entries[1].path) is not None, timeout=20_000)

    with qtbot.waitSignal(window.image_changed, timeout=20_000) as blocker:
        QTest.keyClick(window, Qt.Key.Key_D)
    assert blocker.args[0] is window.browser.model.entries[1]
    with qtbot.waitSignal(window.image_changed, timeout=20_000) as blocker:
        QTest.keyClick(window, Qt.Key.Key_PageDown)
    assert blocker.args[0] is window.browser.model.entries[2]
    with qtbot.waitSignal(window.image_changed, timeout=20_000) as blocker:
        QTest.keyClick(window, Qt.Key.Key_A)
    assert blocker.args[0] is window.browser.model.entries[1]
    assert window.viewer.overlay_text()["tl"].count(window.workspace.entry.laterality) >= 1
    # thumbnails arrive for the rows in sight
    qtbot.waitUntil(lambda: window.browser.model.has_thumbnail(str(first.path)), timeout=20_000)
    assert mammo_root.resolve().as_posix() in [Path(p).as_posix() for p in window.settings.recent()]


def test_window_level_presets_drag_and_invert(make_window, mammo_root: Path, qtbot) -> None:
    window = make_window(mammo_root)
    viewer = window.viewer
    image = window.workspace.image
    presets = viewer.presets
    assert len(presets) >= 2 and viewer.window == presets[0]
    QTest.keyClick(window, Qt.Key.Key_2)
    assert viewer.window == presets[1] and viewer.preset_index == 1
    qtbot.waitUntil(lambda: "[2]" in viewer.overlay_text()["bl"], timeout=2000)

    before = viewer.window
    levels_before = viewer.display_levels()
    lut_before = None if viewer.image_item.lut is None else np.array(viewer.image_item.lut, copy=True)
    w, h = image.pixels.shape[1], image.pixels.shape[0]
    _drag(qtbot, viewer, (w * 0.5, h * 0.5), (w * 0.7, h * 0.6), Qt.MouseButton.RightButton)
    after = viewer.window
    assert after.width > before.width and after.center > before.center
    changed = viewer.display_levels() != levels_before or (
        lut_before is not None and not np.array_equal(np.asarray(viewer.image_item.lut), lut_before))
    assert changed
    qtbot.waitUntil(lambda: f"W {after.width:.0f}" in viewer.overlay_text()["bl"], timeout=2000)

    QTest.keyClick(window, Qt.Key.Key_I)
    assert viewer.inverted and window.action("invert").isChecked()
    lut = np.asarray(viewer.image_item.lut)
    assert lut[0] > lut[-1]  # bright for low values: inverted
    QTest.keyClick(window, Qt.Key.Key_R)
    assert not viewer.inverted and viewer.window == presets[0]


def test_linear_window_maps_to_exact_levels(make_window, mammo_root: Path, qtbot) -> None:
    from linop_core.dicom import VoiWindow

    window = make_window(mammo_root)
    viewer = window.viewer
    viewer.function = "LINEAR"
    viewer.set_window(VoiWindow(2000.0, 1001.0))
    lo, hi = viewer.display_levels()
    assert (lo, hi) == pytest.approx((1499.5, 2499.5))  # PS3.3 C.11.2.1.2: c - 0.5 -/+ (w - 1) / 2


def test_zoom_fit_and_one_to_one(make_window, mammo_root: Path, qtbot) -> None:
    window = make_window(mammo_root)
    viewer = window.viewer
    QTest.keyClick(window, Qt.Key.Key_Z)
    assert viewer.zoom() == pytest.approx(1.0, rel=0.02)
    window.action("zoom_in").trigger()
    assert viewer.zoom() == pytest.approx(1.25, rel=0.03)
    QTest.keyClick(window, Qt.Key.Key_F)
    h, w = viewer.image.pixels.shape
    rect = viewer.viewbox.viewRect()
    assert rect.width() >= w and rect.height() >= h
    assert min(rect.width() - w, rect.height() - h) < 0.1 * max(w, h)


def test_draw_move_undo_redo_box_with_the_mouse(make_window, mammo_root: Path, qtbot) -> None:
    window = make_window(mammo_root)
    viewer, session = window.viewer, window.workspace.session
    image_id = window.workspace.entry.image_id
    QTest.keyClick(window, Qt.Key.Key_N)
    assert viewer.tool == Tool.BOX and window.action("tool_box").isChecked()
    assert not window.action("tool_pan").isChecked()
    h, w = viewer.image.pixels.shape
    p0, p1 = (w * 0.30, h * 0.35), (w * 0.55, h * 0.60)
    with qtbot.waitSignal(window.annotation_changed, timeout=5000):
        _drag(qtbot, viewer, p0, p1)
    boxes = session.annotation(image_id).boxes
    assert len(boxes) == 1 and boxes[0].hole == "ellipse" and boxes[0].source == "drawn"
    x0, y0, x1, y1 = boxes[0].box
    tol = 2.5 / viewer.zoom() + 1
    assert abs(x0 - p0[0]) <= tol and abs(y0 - p0[1]) <= tol and abs(x1 - p1[0]) <= tol and abs(y1 - p1[1]) <= tol
    assert all(float(v).is_integer() for v in boxes[0].box)
    assert viewer.selected == 0 and window.panel.list.count() == 1

    # move it through the ROI: snapped, clipped, committed as one undoable step
    roi = viewer.roi(0)
    with qtbot.waitSignal(window.annotation_changed, timeout=5000):
        roi.setPos((x0 + 10.4, y0 + 5.2))
    moved = session.annotation(image_id).boxes[0].box
    assert moved == (x0 + 10, y0 + 5, x1 + 10, y1 + 5)

    # hole shape of the selected box
    QTest.keyClick(window, Qt.Key.Key_R, Qt.KeyboardModifier.ShiftModifier)
    assert session.annotation(image_id).boxes[0].hole == "rectangle"

    QTest.keyClick(window, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert session.annotation(image_id).boxes[0].hole == "ellipse"
    QTest.keyClick(window, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert session.annotation(image_id).boxes[0].box == (x0, y0, x1, y1)
    QTest.keyClick(window, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert session.annotation(image_id).boxes == [] and viewer.annotation.boxes == []
    QTest.keyClick(window, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.ShiftModifier)
    assert len(viewer.annotation.boxes) == 1 and session.annotation(image_id).boxes[0].box == (x0, y0, x1, y1)

    viewer.select_box(0)
    QTest.keyClick(window, Qt.Key.Key_Delete)
    assert session.annotation(image_id).boxes == []
    # Esc while drawing cancels the rubber band: nothing is committed
    QTest.keyClick(window, Qt.Key.Key_Escape)
    assert viewer.tool == Tool.PAN


def test_brush_paints_a_hole_and_the_eraser_clears_it(make_window, mammo_root: Path, qtbot) -> None:
    window = make_window(mammo_root)
    viewer, session = window.viewer, window.workspace.session
    image_id = window.workspace.entry.image_id
    h, w = viewer.image.pixels.shape
    window.view.set_brush_radius(10)
    QTest.keyClick(window, Qt.Key.Key_B)
    assert viewer.tool == Tool.BRUSH
    with qtbot.waitSignal(window.annotation_changed, timeout=5000):
        _drag(qtbot, viewer, (w * 0.4, h * 0.5), (w * 0.6, h * 0.5))
    box = session.annotation(image_id).boxes[0]
    assert box.hole == "brush" and box.brush_file
    mask = session.load_brush(box.brush_file)
    assert mask.shape == (h, w) and mask.any()
    painted = int(mask.sum())
    assert painted > 0.2 * w * 20 * 0.8  # a stroke about 0.2 w long and 20 px wide
    rows = np.flatnonzero(mask.any(axis=1))
    assert abs((rows[0] + rows[-1]) / 2 - h * 0.5) < 3

    QTest.keyClick(window, Qt.Key.Key_E)
    with qtbot.waitSignal(window.annotation_changed, timeout=5000):
        _drag(qtbot, viewer, (w * 0.38, h * 0.5), (w * 0.5, h * 0.5))
    erased = session.load_brush(session.annotation(image_id).boxes[0].brush_file)
    assert 0 < erased.sum() < painted and not (erased & ~mask).any()

    QTest.keyClick(window, Qt.Key.Key_BracketRight)
    assert viewer.brush_radius > 10 and window.settings.brush_radius == viewer.brush_radius
    window.editor.undo()
    assert int(session.load_brush(session.annotation(image_id).boxes[0].brush_file).sum()) == painted


def test_outpainting_selects_findings_by_click_and_keeps_a_margin(make_window, mammo_root: Path, qtbot) -> None:
    window = make_window(mammo_root)
    row = next(i for i, e in enumerate(window.browser.model.entries) if e.findings)
    with qtbot.waitSignal(window.image_changed, timeout=20_000):
        window.browser.select_row(row)
    entry = window.workspace.entry
    finding = entry.findings[0].box
    QTest.keyClick(window, Qt.Key.Key_2, Qt.KeyboardModifier.ControlModifier)
    assert window.workspace.annotation().mode == "outpaint"
    assert window.action("mode_outpaint").isChecked() and not window.action("mode_inpaint").isChecked()
    viewer = window.viewer
    cx, cy = (finding[0] + finding[2]) / 2, (finding[1] + finding[3]) / 2
    with qtbot.waitSignal(window.annotation_changed, timeout=5000):
        QTest.mouseClick(viewer.graphics.viewport(), Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier,
                         QPoint(*viewer.map_image_to_widget(cx, cy)))
    boxes = window.workspace.annotation().boxes
    assert len(boxes) == 1 and boxes[0].source == "finding" and boxes[0].box == finding
    window.panel.margin.setValue(40)
    window.panel.margin.editingFinished.emit()
    assert window.workspace.annotation().margin == 40
    with qtbot.waitSignal(window.annotation_changed, timeout=5000):  # a second click deselects
        QTest.mouseClick(viewer.graphics.viewport(), Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier,
                         QPoint(*viewer.map_image_to_widget(cx, cy)))
    assert window.workspace.annotation().boxes == []


def test_filters_narrow_the_list_and_keep_navigation_inside(make_window, mammo_root: Path, qtbot) -> None:
    window = make_window(mammo_root)
    browser = window.browser
    combo = browser.combos["category"]
    combo.setCurrentIndex(combo.findText("Mass"))
    entries = browser.model.entries
    assert 0 < len(entries) < 8 and all("Mass" in e.categories for e in entries)
    qtbot.waitUntil(lambda: window.workspace.entry is entries[0] and window.workspace.image is not None, timeout=20_000)
    if len(entries) > 1:
        with qtbot.waitSignal(window.image_changed, timeout=20_000):
            window.action("next_image").trigger()
        assert window.workspace.entry is entries[1]
    browser.combos["laterality"].setCurrentIndex(browser.combos["laterality"].findText("R"))
    assert all(e.laterality == "R" and "Mass" in e.categories for e in browser.model.entries)
    assert browser.count.text().endswith("of 8 images")
    browser.clear_filters()
    assert browser.model.rowCount() == 8


def test_bad_files_show_an_error_entry_and_the_rest_still_open(make_window, dicom_folder: Path, qtbot) -> None:
    window = make_window(dicom_folder)
    model = window.browser.model
    names = [e.path.name for e in model.entries]
    assert names[-1] == "notes.dcm" and len(names) == 4
    assert window.workspace.image is not None and window.workspace.entry.path.name == "good0.dcm"
    bad_row = names.index("notes.dcm")
    assert "unreadable" in model.data(model.index(bad_row))
    window.browser.select_row(bad_row)
    assert window.workspace.image is None and "notes.dcm" in window.viewer.placeholder_text()
    window.browser.select_row(names.index("truncated.dcm"))  # header fine, pixels cut: fails on decode
    qtbot.waitUntil(lambda: "truncat" in window.viewer.placeholder_text().lower(), timeout=20_000)
    with qtbot.waitSignal(window.image_changed, timeout=20_000):
        window.browser.select_row(names.index("good1.dcm"))
    assert window.workspace.image is not None


def test_four_view_hanging_places_and_mirrors_views(make_window, mammo_root: Path, qtbot) -> None:
    from linop_gui.hanging import chest_wall_side

    window = make_window(mammo_root)
    QTest.keyClick(window, Qt.Key.Key_G, Qt.KeyboardModifier.ControlModifier)
    assert window.stack.currentWidget() is window.hanging
    qtbot.waitUntil(lambda: window.hanging.loaded_count() == 4, timeout=30_000)
    for (lat, view), viewer in window.hanging.viewers.items():
        assert (viewer.entry.laterality, viewer.entry.view) == (lat, view)
        side = chest_wall_side(viewer.image)
        shown = {"left": "right", "right": "left"}[side] if viewer.mirror else side
        assert shown == ("right" if lat == "R" else "left")  # chest walls face each other
    # double-click opens one view alone
    target = window.hanging.viewers[("L", "MLO")]
    target.double_clicked.emit()
    assert window.stack.currentWidget() is window.viewer
    qtbot.waitUntil(lambda: window.workspace.entry is target.entry and window.workspace.image is not None,
                    timeout=20_000)


def test_hanging_mirror_follows_the_chest_wall(mammo_root: Path) -> None:
    from dataclasses import replace

    from linop_core.catalog import Catalog
    from linop_core.dicom import read_dicom
    from linop_gui.hanging import chest_wall_side, needs_mirror

    entry = next(e for e in Catalog.open(mammo_root).entries if e.laterality == "R")
    image = read_dicom(entry.path)
    flipped = replace(image, pixels=image.pixels[:, ::-1].copy(), padding_mask=image.padding_mask[:, ::-1].copy())
    assert chest_wall_side(image) != chest_wall_side(flipped)
    assert needs_mirror(image, "R") != needs_mirror(flipped, "R")


def test_drop_and_recent_and_about(make_window, mammo_root: Path, qtbot) -> None:
    from PySide6.QtCore import QMimeData, QPointF, QUrl
    from PySide6.QtGui import QDropEvent

    window = make_window()
    assert "biharmonic (no model)" in window.about_text() and "biharmonic" in window.status_line.model_label.text()
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(mammo_root))])
    event = QDropEvent(QPointF(10, 10), Qt.DropAction.CopyAction, mime, Qt.MouseButton.NoButton,
                       Qt.KeyboardModifier.NoModifier)
    with qtbot.waitSignal(window.dataset_opened, timeout=30_000):
        window.dropEvent(event)
    assert window.workspace.catalog.kind == "mammo"
    assert next(a.text() for a in window.menus.recent.actions()) == str(mammo_root.resolve())


def test_model_and_device_are_kept_for_generation(make_window, tmp_path: Path) -> None:
    from linop_gui.main_window import ModelInfo

    ckpt = tmp_path / "mat-demo.pt"
    ckpt.write_bytes(b"x")
    window = make_window(model_path=str(ckpt), device="cpu")
    assert window.model_path == str(ckpt) and window.device == "cpu"
    assert "mat-demo" in window.status_line.model_label.text()
    window.workspace.set_model(ModelInfo("mat-small", "0.1.0", "Apache-2.0", str(ckpt), "cpu"))
    assert "Apache-2.0" in window.about_text() and "mat-small" in window.status_line.model_label.text()
    assert not window.action("generate").isEnabled()


def test_generate_seam_and_gallery_dock(make_window, mammo_root: Path, qtbot) -> None:
    from PySide6.QtWidgets import QLabel

    from linop_gui.shortcuts import ShortcutSpec

    window = make_window(mammo_root)
    calls: list[str] = []
    window.set_generate_handler(lambda: calls.append(window.workspace.entry.image_id))
    assert window.action("generate").isEnabled()
    QTest.keyClick(window, Qt.Key.Key_G)
    assert calls == [window.workspace.entry.image_id]
    gallery = QLabel("gallery")
    window.set_gallery_widget(gallery)
    assert window.gallery_dock.widget() is gallery and window.gallery_dock.isVisible()
    hits: list[int] = []
    window.add_action(ShortcutSpec("mark", "Mark", ("Ctrl+Return",), "Review"), lambda: hits.append(1))
    QTest.keyClick(window, Qt.Key.Key_Return, Qt.KeyboardModifier.ControlModifier)
    assert hits == [1] and any(s.action_id == "mark" for s in window.specs)


def test_entries_carry_the_record_role(make_window, mammo_root: Path) -> None:
    window = make_window(mammo_root)
    model = window.browser.model
    assert model.data(model.index(0), EntryRole) is window.workspace.entry


def test_demo_menu_prepares_datasets_off_the_gui_thread(make_window, mammo_root: Path, qtbot) -> None:
    import threading

    window = make_window()
    threads: list[str] = []

    def provider() -> dict[str, Path]:
        threads.append(threading.current_thread().name)
        return {"Phantom VinDr-Mammo": mammo_root}

    window.set_demo_datasets({"Phantom VinDr-Mammo": mammo_root}, provider)
    (action,) = window.menus.demo.actions()
    with qtbot.waitSignal(window.dataset_opened, timeout=30_000):
        action.trigger()
    assert threads and threads[0] != threading.main_thread().name
    window.settings.outpaint_margin = 30
    qtbot.waitUntil(lambda: window.workspace.image is not None, timeout=20_000)
    window.editor.set_mode("outpaint")
    assert window.workspace.annotation().margin == 30 and window.panel.margin.value() == 30


def test_saved_boxes_load_back_into_the_view_and_tags_open(make_window, mammo_root: Path, qtbot, tmp_path) -> None:
    from linop_core.review.session import ImageAnnotation, LesionBox
    from linop_gui import tools

    window = make_window(mammo_root)
    image_id = window.workspace.entry.image_id
    window.workspace.session.apply(image_id, ImageAnnotation(boxes=[LesionBox((10.0, 20.0, 60.0, 90.0), "rectangle")]))
    path = tmp_path / "boxes.json"
    assert tools.save_annotations(path, window.workspace.session) == 1
    window.workspace.session.apply(image_id, ImageAnnotation())
    window.viewer.set_annotation(window.workspace.annotation())
    assert window.editor.load(path) == [image_id]
    assert [b.box for b in window.viewer.annotation.boxes] == [(10.0, 20.0, 60.0, 90.0)]
    assert window.panel.list.count() == 1
    QTest.keyClick(window, Qt.Key.Key_T)
    assert window._tags_dialog.isVisible() and window._tags_dialog.find_rows("Manufacturer")
    window._tags_dialog.close()
    QTest.keyClick(window, Qt.Key.Key_H)
    assert window._shortcut_dialog.isVisible()
    window._shortcut_dialog.close()
