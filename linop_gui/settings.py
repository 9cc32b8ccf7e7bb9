"""Persisted preferences (QSettings), typed: theme, recent datasets, tool defaults, window layout.

QSettings returns strings from INI files and native types from others; every getter here converts, so a
hand-edited or older settings file cannot crash the app. Tests pass their own ``QSettings`` (an INI file in a
temporary folder) so nothing leaks between tests or into the user's real settings.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from PySide6.QtCore import QByteArray, QSettings, QSize

from linop_core.vocab import HoleKind

ORGANIZATION = "LINOP"
APPLICATION = "LINOP Studio"
MAX_RECENT = 10
THEMES = ("dark", "light")
HOLE_SHAPES = (HoleKind.ELLIPSE, HoleKind.RECTANGLE, HoleKind.BRUSH)


def _as_bool(value: Any, default: bool) -> bool:
    if value is None:
        return default
    if isinstance(value, bool):
        return value
    return str(value).strip().lower() in ("1", "true", "yes", "on")


def _as_int(value: Any, default: int, lo: int, hi: int) -> int:
    try:
        number = int(float(value))
    except (TypeError, ValueError):
        return default
    return min(max(number, lo), hi)


def _as_float(value: Any, default: float, lo: float, hi: float) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return default
    return min(max(number, lo), hi)


def _root_key(root: str | os.PathLike[str]) -> str:
    return hashlib.sha1(str(Path(root).expanduser().resolve()).encode()).hexdigest()[:16]


class Settings:
    """Typed access to the app's QSettings."""

    def __init__(self, qsettings: QSettings | None = None) -> None:
        self.q = qsettings if qsettings is not None else QSettings(ORGANIZATION, APPLICATION)

    # -- appearance ------------------------------------------------------------------------------------------
    @property
    def theme(self) -> str:
        value = str(self.q.value("appearance/theme", "dark"))
        return value if value in THEMES else "dark"

    @theme.setter
    def theme(self, value: str) -> None:
        if value not in THEMES:
            raise ValueError(f"theme must be one of {THEMES}, got {value!r}")
        self.q.setValue("appearance/theme", value)

    # -- recent datasets -------------------------------------------------------------------------------------
    def recent(self) -> list[str]:
        """Most recent first; entries that no longer exist on disk are kept (a share may be unmounted)."""
        value = self.q.value("recent/paths", [])
        if isinstance(value, str):
            value = [value] if value else []
        return [str(v) for v in (value or []) if str(v)][:MAX_RECENT]

    def add_recent(self, path: str | os.PathLike[str]) -> None:
        text = str(Path(path).expanduser().resolve())
        items = [p for p in self.recent() if p != text]
        self.q.setValue("recent/paths", [text, *items][:MAX_RECENT])

    def clear_recent(self) -> None:
        self.q.setValue("recent/paths", [])

    # -- PACS ------------------------------------------------------------------------------------------------
    @property
    def dicomweb_url(self) -> str:
        """The DICOMweb root last searched (never credentials: those come from the environment)."""
        return str(self.q.value("pacs/dicomweb_url", "") or "")

    @dicomweb_url.setter
    def dicomweb_url(self, value: str) -> None:
        parts = urlsplit(str(value).strip())
        if parts.username is not None or parts.password is not None:  # user:password@ never goes to disk
            parts = parts._replace(netloc=parts.netloc.rsplit("@", 1)[1])
        self.q.setValue("pacs/dicomweb_url", urlunsplit(parts))

    # -- tools -----------------------------------------------------------------------------------------------
    @property
    def brush_radius(self) -> int:
        return _as_int(self.q.value("tools/brush_radius", 12), 12, 1, 512)

    @brush_radius.setter
    def brush_radius(self, value: int) -> None:
        self.q.setValue("tools/brush_radius", int(value))

    @property
    def hole_shape(self) -> HoleKind:
        value = str(self.q.value("tools/hole_shape", HoleKind.ELLIPSE))
        return HoleKind(value) if value in HOLE_SHAPES else HoleKind.ELLIPSE

    @hole_shape.setter
    def hole_shape(self, value: HoleKind | str) -> None:
        if value not in HOLE_SHAPES:
            raise ValueError(f"hole shape must be one of {', '.join(HOLE_SHAPES)}, got {value!r}")
        self.q.setValue("tools/hole_shape", str(value))

    @property
    def outpaint_margin(self) -> float:
        return _as_float(self.q.value("tools/outpaint_margin", 16.0), 16.0, 0.0, 4096.0)

    @outpaint_margin.setter
    def outpaint_margin(self, value: float) -> None:
        self.q.setValue("tools/outpaint_margin", float(value))

    @property
    def show_findings(self) -> bool:
        return _as_bool(self.q.value("view/show_findings", True), True)

    @show_findings.setter
    def show_findings(self, value: bool) -> None:
        self.q.setValue("view/show_findings", bool(value))

    @property
    def show_overlays(self) -> bool:
        return _as_bool(self.q.value("view/show_overlays", True), True)

    @show_overlays.setter
    def show_overlays(self, value: bool) -> None:
        self.q.setValue("view/show_overlays", bool(value))

    @property
    def reviewer(self) -> str:
        """The reviewer pseudonym recorded with each decision."""
        return str(self.q.value("review/reviewer", "") or "")

    @reviewer.setter
    def reviewer(self, value: str) -> None:
        self.q.setValue("review/reviewer", str(value))

    @property
    def study_reader(self) -> str:
        """The reader name last used in a reader study (offered when the next study asks)."""
        return str(self.q.value("study/reader", "") or "")

    @study_reader.setter
    def study_reader(self, value: str) -> None:
        self.q.setValue("study/reader", str(value))

    # -- where the reader was, per dataset -------------------------------------------------------------------
    def last_view(self, root: str | os.PathLike[str]) -> tuple[str | None, int | None]:
        """The image and selected box in use when ``root`` was last open (so reopening returns there)."""
        key = _root_key(root)
        image_id = self.q.value(f"datasets/{key}/image_id")
        box = self.q.value(f"datasets/{key}/selected_box")
        index = _as_int(box, -1, -1, 1_000_000) if box not in (None, "") else -1
        return (str(image_id) if image_id else None), (index if index >= 0 else None)

    def set_last_view(self, root: str | os.PathLike[str], image_id: str, selected: int | None) -> None:
        key = _root_key(root)
        self.q.setValue(f"datasets/{key}/image_id", image_id)
        self.q.setValue(f"datasets/{key}/selected_box", -1 if selected is None else int(selected))

    # -- window layout ---------------------------------------------------------------------------------------
    def window_geometry(self) -> QByteArray | None:
        value = self.q.value("window/geometry")
        return value if isinstance(value, QByteArray) else None

    def window_state(self) -> QByteArray | None:
        value = self.q.value("window/state")
        return value if isinstance(value, QByteArray) else None

    def window_size(self) -> QSize | None:
        """The size of the saved window (without its frame), to tell whether it fits the screen at hand."""
        value = self.q.value("window/size")
        return value if isinstance(value, QSize) and value.isValid() else None

    def save_window(self, geometry: QByteArray, state: QByteArray, size: QSize | None = None) -> None:
        self.q.setValue("window/geometry", geometry)
        self.q.setValue("window/state", state)
        if size is not None:
            self.q.setValue("window/size", size)

    def sync(self) -> None:
        self.q.sync()
