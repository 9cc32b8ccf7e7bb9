"""Light and dark themes, icons from ``resources/icons``, and the neutral grey of image areas.

Image areas stay the same neutral grey in both themes: a coloured or bright surround changes how grey
levels are perceived, which matters when judging a synthetic lesion against real tissue.
Icons are single-colour SVGs drawn with ``currentColor``; they are recoloured for the active theme.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

from PySide6.QtCore import QByteArray, QSize, Qt
from PySide6.QtGui import QColor, QIcon, QPainter, QPalette, QPixmap
from PySide6.QtSvg import QSvgRenderer
from PySide6.QtWidgets import QApplication

THEMES = ("dark", "light")
IMAGE_BACKGROUND = QColor(38, 38, 38)  # neutral grey behind images, both themes
OVERLAY_TEXT = QColor(230, 230, 230)
FINDING_COLOR = QColor(255, 196, 0)  # amber: existing radiologist findings
BOX_COLOR = QColor(64, 196, 255)  # cyan: boxes the user draws
SELECTED_COLOR = QColor(255, 255, 255)
KEEP_COLOR = QColor(120, 220, 120)  # outpainting: kept regions
BRUSH_RGBA = (255, 90, 60, 110)  # hole painted with the brush

_ICON_COLORS = {"dark": "#d5d9df", "light": "#30363d"}
_ICON_DISABLED = {"dark": "#62666c", "light": "#a8adb3"}
_ACCENT = {"dark": "#7aa2e0", "light": "#2f6fd1"}


def resources_dir() -> Path:
    """``resources/`` at the repository root (installed editable) or next to the package."""
    here = Path(__file__).resolve().parent
    for candidate in (here.parent / "resources", here / "resources"):
        if candidate.is_dir():
            return candidate
    return here.parent / "resources"


def icon_path(name: str) -> Path:
    return resources_dir() / "icons" / f"{name}.svg"


@cache
def _svg_text(name: str) -> str:
    path = icon_path(name)
    return path.read_text(encoding="utf-8") if path.is_file() else ""


def _render(svg: str, color: str, size: int) -> QPixmap:
    renderer = QSvgRenderer(QByteArray(svg.replace("currentColor", color).encode("utf-8")))
    pixmap = QPixmap(QSize(size, size))
    pixmap.fill(Qt.GlobalColor.transparent)
    painter = QPainter(pixmap)
    renderer.render(painter)
    painter.end()
    return pixmap


def icon(name: str, theme: str = "dark") -> QIcon:
    """Themed icon ``resources/icons/<name>.svg``; an empty icon if the file is missing."""
    svg = _svg_text(name)
    if not svg:
        return QIcon()
    result = QIcon()
    for size in (16, 24, 32, 48):
        result.addPixmap(_render(svg, _ICON_COLORS.get(theme, _ICON_COLORS["dark"]), size), QIcon.Mode.Normal)
        result.addPixmap(_render(svg, _ICON_DISABLED.get(theme, _ICON_DISABLED["dark"]), size), QIcon.Mode.Disabled)
        result.addPixmap(_render(svg, _ACCENT.get(theme, _ACCENT["dark"]), size), QIcon.Mode.Active, QIcon.State.On)
    return result


def app_icon() -> QIcon:
    path = icon_path("app")
    return QIcon(str(path)) if path.is_file() else QIcon()


def stylesheet(theme: str) -> str:
    """The theme's QSS with ``@ICONS@`` made the absolute icons folder (QSS has no relative image paths)."""
    path = resources_dir() / "styles" / f"{theme}.qss"
    if not path.is_file():
        return ""
    return path.read_text(encoding="utf-8").replace("@ICONS@", (resources_dir() / "icons").as_posix())


def _palette(theme: str) -> QPalette:
    palette = QPalette()
    if theme == "dark":
        window, base, text, button, highlight = "#2b2d30", "#232427", "#dcdfe4", "#393c41", "#3d6fb4"
    else:
        window, base, text, button, highlight = "#f3f4f6", "#ffffff", "#1f2328", "#ffffff", "#2f6fd1"
    palette.setColor(QPalette.ColorRole.Window, QColor(window))
    palette.setColor(QPalette.ColorRole.WindowText, QColor(text))
    palette.setColor(QPalette.ColorRole.Base, QColor(base))
    palette.setColor(QPalette.ColorRole.AlternateBase, QColor(window))
    palette.setColor(QPalette.ColorRole.Text, QColor(text))
    palette.setColor(QPalette.ColorRole.Button, QColor(button))
    palette.setColor(QPalette.ColorRole.ButtonText, QColor(text))
    palette.setColor(QPalette.ColorRole.Highlight, QColor(highlight))
    palette.setColor(QPalette.ColorRole.HighlightedText, QColor("#ffffff"))
    palette.setColor(QPalette.ColorRole.ToolTipBase, QColor(base))
    palette.setColor(QPalette.ColorRole.ToolTipText, QColor(text))
    return palette


def apply_theme(app: QApplication, theme: str) -> None:
    """Fusion style + palette + the theme's stylesheet, application-wide."""
    if theme not in THEMES:
        raise ValueError(f"theme must be one of {THEMES}, got {theme!r}")
    app.setStyle("Fusion")
    app.setPalette(_palette(theme))
    app.setStyleSheet(stylesheet(theme))
