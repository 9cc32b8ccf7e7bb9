"""What the viewer shows on open and over any image: a landscape image fits whole (and stays whole while the
window changes size), corner texts stay legible on white, and reopening a dataset returns to where the reader was."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PySide6.QtCore import QPoint

from linop_core.review.session import ImageAnnotation, LesionBox


def _whole_image_in_view(viewer) -> bool:
    h, w = viewer.image.pixels.shape
    rect = viewer.viewbox.viewRect()
    return rect.left() <= 0.5 and rect.top() <= 0.5 and rect.right() >= w - 0.5 and rect.bottom() >= h - 0.5


def test_a_landscape_image_opens_whole_and_stays_whole(qtbot, make_window, write_dicom, tmp_path: Path) -> None:
    pixels = np.tile(np.linspace(100, 3000, 1318, dtype=np.uint16), (788, 1))
    path = write_dicom(pixels, "landscape.dcm", Modality="DX", BodyPartExamined="CHEST", ViewPosition="AP")
    window = make_window(path)
    viewer = window.viewer
    qtbot.waitUntil(lambda: viewer.image is not None, timeout=20_000)
    assert _whole_image_in_view(viewer) and viewer.zoom() < 1.0
    # The window (or a dock appearing) changes the view's size: the image stays whole.
    for size in ((1000, 900), (1500, 700), (900, 1000)):
        window.resize(*size)
        qtbot.wait(30)
        assert _whole_image_in_view(viewer), (size, viewer.viewbox.viewRect())
    # Once the reader zooms, the view is theirs.
    viewer.zoom_by(2.0)
    window.resize(1200, 900)
    qtbot.wait(30)
    assert not _whole_image_in_view(viewer)


def test_corner_texts_are_legible_on_a_white_image(qtbot, make_window, write_dicom) -> None:
    path = write_dicom(np.full((600, 500), 4000, np.uint16), "white.dcm")
    window = make_window(path)
    viewer = window.viewer
    qtbot.waitUntil(lambda: viewer.image is not None and bool(viewer.overlay_text()["bl"]), timeout=20_000)
    qtbot.wait(100)
    shot = viewer.graphics.grab().toImage()
    for key in ("tl", "bl", "br"):
        label = viewer.overlays.labels[key]
        top_left = label.mapTo(viewer.graphics, QPoint(0, 0))
        values = [shot.pixelColor(top_left.x() + x, top_left.y() + y).lightness()
                  for x in range(0, label.width(), 2) for y in range(0, label.height(), 2)]
        # Light text on a dark plate: both the text and the plate are there, far apart in lightness.
        assert min(values) < 110 and max(values) > 200, (key, min(values), max(values))


def test_reopening_a_dataset_returns_to_the_image_and_box_in_use(qtbot, make_window, open_dataset,
                                                                mammo_root: Path) -> None:
    window = make_window(mammo_root)
    target = window.browser.model.entries[5]
    with qtbot.waitSignal(window.image_changed, timeout=20_000):
        window.browser.select(target.image_id)
    boxes = [LesionBox((10.0, 20.0, 60.0, 90.0)), LesionBox((100.0, 120.0, 160.0, 190.0))]
    window.workspace.commit(ImageAnnotation(boxes=boxes), selected=1)
    window.close()

    again = make_window()
    open_dataset(again, mammo_root)
    qtbot.waitUntil(lambda: again.workspace.image_id == target.image_id and again.workspace.image is not None,
                    timeout=20_000)
    qtbot.waitUntil(lambda: again.workspace.selected == 1, timeout=5_000)
    assert again.viewer.selected == 1 and again.panel.list.currentRow() == 1
