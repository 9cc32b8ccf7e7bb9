"""Where the main window and its docks go on the screen at hand.

The window must fit an ordinary laptop (1366 x 768) with every dock usable: dock contents scroll instead of
imposing their full height, the side panels share the right edge as tabs on a short screen (stacked on a tall
one), the default size is the screen's available area at most, and a saved size larger than the current screen
is never restored.
"""

from __future__ import annotations

from PySide6.QtCore import QByteArray, QRect, QSize, Qt
from PySide6.QtGui import QGuiApplication, QScreen
from PySide6.QtWidgets import QDockWidget, QFrame, QMainWindow, QScrollArea, QWidget

DEFAULT_SIZE = QSize(1500, 920)
TALL_SCREEN = 1000  # px of available height from which the right-hand panels are stacked, not tabbed
_FRAME = QSize(8, 40)  # room for the window manager's border and title bar


def scrolled(widget: QWidget) -> QScrollArea:
    """``widget`` in a frameless scroll area: a dock then asks for little height and scrolls when short."""
    area = QScrollArea()
    area.setWidget(widget)
    area.setWidgetResizable(True)
    area.setFrameShape(QFrame.Shape.NoFrame)
    area.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAsNeeded)
    area.setMinimumHeight(80)
    # As wide as the content wants (up to a limit), so only the height ever scrolls.
    area.setMinimumWidth(min(widget.minimumSizeHint().width() + area.verticalScrollBar().sizeHint().width(), 380))
    return area


def screen_of(window: QWidget) -> QScreen | None:
    return window.screen() or QGuiApplication.primaryScreen()


def available(window: QWidget) -> QRect:
    """The screen's area for windows. The offscreen platform (tests, ``--screenshot`` without a display) has no
    real screen: nothing limits the window there."""
    screen = screen_of(window)
    if screen is None or QGuiApplication.platformName() == "offscreen":
        return QRect(0, 0, 4096, 4096)
    return screen.availableGeometry()


def tall_screen(window: QWidget) -> bool:
    return available(window).height() >= TALL_SCREEN


def place_side_dock(window: QMainWindow, anchor: QDockWidget, dock: QDockWidget) -> None:
    """``dock`` on the right with ``anchor``: under it on a tall screen, as a tab behind it on a short one."""
    window.addDockWidget(Qt.DockWidgetArea.RightDockWidgetArea, dock)
    if tall_screen(window):
        window.splitDockWidget(anchor, dock, Qt.Orientation.Vertical)
    else:
        window.tabifyDockWidget(anchor, dock)
        anchor.raise_()


def fits(size: QSize, area: QRect) -> bool:
    """True when a window of ``size`` (without its frame) fits ``area`` with its frame."""
    return size.width() + _FRAME.width() <= area.width() and size.height() + _FRAME.height() <= area.height()


def default_geometry(window: QMainWindow) -> None:
    """The default size, capped to the screen's available area, centred on it."""
    area = available(window)
    width = min(DEFAULT_SIZE.width(), area.width() - _FRAME.width())
    height = min(DEFAULT_SIZE.height(), area.height() - _FRAME.height())
    window.resize(width, height)
    window.move(area.x() + (area.width() - width) // 2, area.y() + (area.height() - height - _FRAME.height()) // 2)


def restore_layout(window: QMainWindow, geometry: QByteArray | None, state: QByteArray | None,
                   saved_size: QSize | None) -> bool:
    """The saved geometry and dock layout when the saved window fits this screen; else the default geometry.
    Returns True when the saved layout was used."""
    area = available(window)
    usable = geometry is not None and saved_size is not None and fits(saved_size, area)
    if usable and window.restoreGeometry(geometry) and fits(window.size(), area):  # type: ignore[arg-type]
        if state is not None:
            window.restoreState(state)
        return True
    default_geometry(window)
    return False
