"""The window fits an ordinary laptop screen: minimum size, docks that scroll or tab, no oversized restore, and
no layout saved by a screenshot run. (The real thing under a window manager: test_desktop.py.)"""

from __future__ import annotations

import pytest
from PySide6.QtCore import QRect, QSize

from linop_gui import window_layout
from linop_gui.main_window import MainWindow

LAPTOP = QRect(0, 0, 1366, 768 - 32)  # a 1366 x 768 screen less a panel


@pytest.fixture
def laptop(monkeypatch: pytest.MonkeyPatch) -> QRect:
    monkeypatch.setattr(window_layout, "available", lambda window: LAPTOP)
    return LAPTOP


def test_the_smallest_window_with_every_dock_fits_a_laptop(qtbot, settings, tmp_path, laptop) -> None:
    window = MainWindow(settings, session_base=tmp_path / "sessions")
    qtbot.addWidget(window)
    controller = window.enable_generation()
    window.show_gallery()
    window.show()
    qtbot.waitExposed(window)
    minimum = window.minimumSizeHint()
    assert window_layout.fits(minimum, laptop), minimum
    assert window_layout.fits(window.size(), laptop), window.size()  # the default size too
    # On a short screen the Generate panel is a tab behind the annotation panel, not stacked under it.
    assert controller.dock in window.tabifiedDockWidgets(window.panel_dock)
    controller.shutdown()


def test_a_saved_window_larger_than_the_screen_is_not_restored(qtbot, settings, tmp_path, laptop) -> None:
    big = MainWindow(settings, session_base=tmp_path / "sessions")
    qtbot.addWidget(big)
    big.resize(1800, 1300)
    settings.save_window(big.saveGeometry(), big.saveState(), big.size())
    window = MainWindow(settings, session_base=tmp_path / "sessions")
    qtbot.addWidget(window)
    assert window.size() != QSize(1800, 1300) and window_layout.fits(window.size(), laptop)
    assert not window_layout.restore_layout(window, settings.window_geometry(), settings.window_state(),
                                            settings.window_size())
    # One that fits is restored.
    big.resize(760, 560)  # (the offscreen test screen is 800 x 800)
    settings.save_window(big.saveGeometry(), big.saveState(), big.size())
    again = MainWindow(settings, session_base=tmp_path / "sessions")
    qtbot.addWidget(again)
    assert again.size() == QSize(760, 560)


def test_a_screenshot_window_neither_restores_nor_saves_its_layout(qtbot, settings, tmp_path) -> None:
    settings.save_window(MainWindow(settings).saveGeometry(), b"", QSize(900, 500))
    settings.q.remove("window")
    window = MainWindow(settings, session_base=tmp_path / "sessions", remember_layout=False)
    qtbot.addWidget(window)
    window.show()
    qtbot.waitExposed(window)
    assert window.size() == window_layout.DEFAULT_SIZE
    window.close()
    assert settings.window_geometry() is None and settings.window_size() is None


def test_side_panels_scroll_only_up_and_down(qtbot, settings, tmp_path) -> None:
    """A panel wider than its dock gets a sideways scroll bar and cut-off labels (the Precision choice did)."""
    from PySide6.QtWidgets import QScrollArea

    window = MainWindow(settings, session_base=tmp_path / "sessions")
    qtbot.addWidget(window)
    controller = window.enable_generation()
    window.show()
    qtbot.waitExposed(window)
    areas = [a for a in window.findChildren(QScrollArea) if a.widget() is not None and a.minimumWidth() > 0]
    assert areas
    for area in areas:
        wanted = area.widget().minimumSizeHint().width() + area.verticalScrollBar().sizeHint().width()
        assert wanted <= area.minimumWidth(), (type(area.widget()).__name__, wanted, area.minimumWidth())
    controller.shutdown()
