"""Decoding off the GUI thread: full images (with a small LRU cache and prefetch), thumbnails, other tasks.

DICOM decoding of a full-field mammogram takes a good fraction of a second; it runs in a capped
``QThreadPool`` (two threads, so decoding never starves the GUI). A ``QRunnable`` is not a ``QObject``,
so each task reports through a small carrier object whose signals arrive, queued, in the GUI thread.
Workers only return numpy arrays and dataclasses; every widget update happens in the GUI thread.
"""

from __future__ import annotations

import itertools
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from PySide6.QtCore import QObject, QRunnable, QThreadPool, Signal, Slot
from skimage.transform import resize

from linop_core.dicom import DicomImage, apply_window, choose_window, read_dicom
from linop_core.errors import LinopError

THUMBNAIL_SIDE = 96


class _Carrier(QObject):
    """Signals of one task; lives in the GUI thread, emitted from the worker."""

    done = Signal(int, object)
    failed = Signal(int, str)


class _Task(QRunnable):
    def __init__(self, task_id: int, fn: Callable[[], Any], carrier: _Carrier) -> None:
        super().__init__()
        self.task_id = task_id
        self.fn = fn
        self.carrier = carrier

    def run(self) -> None:
        try:
            result = self.fn()
        except LinopError as exc:
            self.carrier.failed.emit(self.task_id, str(exc))
        except Exception as exc:  # a bug or an unexpected library error: still one line for the user
            self.carrier.failed.emit(self.task_id, f"{type(exc).__name__}: {exc}")
        else:
            self.carrier.done.emit(self.task_id, result)


def make_thumbnail(image: DicomImage, side: int = THUMBNAIL_SIDE) -> np.ndarray:
    """uint8 (h, w) preview, longest side ``side``, in the file's default window."""
    pixels = image.pixels
    h, w = pixels.shape
    step = max(1, min(h, w) // (2 * side) if max(h, w) > 2 * side else 1)
    small = pixels[::step, ::step]
    padding = image.padding_mask[::step, ::step] if image.padding_mask.size else None
    window = choose_window(image)
    unit = apply_window(small, window, image.meta.voi_lut_function)
    if padding is not None and padding.any():
        unit[padding] = 0.0
    scale = side / max(unit.shape)
    out_shape = (max(1, round(unit.shape[0] * scale)), max(1, round(unit.shape[1] * scale)))
    unit = resize(unit, out_shape, anti_aliasing=True, preserve_range=True)
    return np.clip(unit * 255.0 + 0.5, 0, 255).astype(np.uint8)


class ImageLoader(QObject):
    """Loads images and thumbnails on a thread pool; results come back as signals in the GUI thread.

    ``image_loaded(path, DicomImage)`` / ``image_failed(path, message)`` answer :meth:`load` (and
    :meth:`prefetch`, silently for failures); ``thumbnail_ready(path, uint8 array)`` / ``thumbnail_failed``
    answer :meth:`thumbnail`.
    """

    image_loaded = Signal(object, object)
    image_failed = Signal(object, str)
    thumbnail_ready = Signal(object, object)
    thumbnail_failed = Signal(object, str)

    def __init__(self, parent: QObject | None = None, *, max_threads: int = 2, cache_size: int = 6) -> None:
        super().__init__(parent)
        self._pool = QThreadPool(self)
        self._pool.setMaxThreadCount(max_threads)
        self._cache: OrderedDict[Path, DicomImage] = OrderedDict()
        self._cache_size = cache_size
        self._thumbs: dict[Path, np.ndarray] = {}
        self._pending_images: dict[Path, bool] = {}  # path -> someone is waiting (False: prefetch only)
        self._pending_thumbs: set[Path] = set()
        self._tasks: dict[int, tuple[_Carrier, Callable[[Any], None], Callable[[str], None]]] = {}
        self._ids = itertools.count(1)
        self._closed = False

    # -- generic tasks ---------------------------------------------------------------------------------------
    def submit(
        self,
        fn: Callable[[], Any],
        on_done: Callable[[Any], None],
        on_failed: Callable[[str], None],
        *,
        priority: int = 0,
    ) -> int:
        """Run ``fn`` on the pool; ``on_done(result)`` or ``on_failed(message)`` is then called in the GUI thread."""
        if self._closed:
            raise RuntimeError("the loader has been shut down")
        task_id = next(self._ids)
        carrier = _Carrier()
        carrier.done.connect(self._task_done)
        carrier.failed.connect(self._task_failed)
        self._tasks[task_id] = (carrier, on_done, on_failed)
        self._pool.start(_Task(task_id, fn, carrier), priority)
        return task_id

    @Slot(int, object)
    def _task_done(self, task_id: int, result: Any) -> None:
        entry = self._tasks.pop(task_id, None)
        if entry is not None and not self._closed:
            entry[1](result)

    @Slot(int, str)
    def _task_failed(self, task_id: int, message: str) -> None:
        entry = self._tasks.pop(task_id, None)
        if entry is not None and not self._closed:
            entry[2](message)

    # -- full images -----------------------------------------------------------------------------------------
    def cached(self, path: Path) -> DicomImage | None:
        image = self._cache.get(Path(path))
        if image is not None:
            self._cache.move_to_end(Path(path))
        return image

    def load(self, path: Path) -> DicomImage | None:
        """The image if cached (returned now, no signal); otherwise decoding starts and a signal follows."""
        path = Path(path)
        image = self.cached(path)
        if image is not None:
            return image
        if path in self._pending_images:
            self._pending_images[path] = True
            return None
        self._pending_images[path] = True
        self._start_image(path, priority=10)
        return None

    def prefetch(self, path: Path) -> None:
        """Decode ``path`` into the cache in the background (no signal unless someone asks for it meanwhile)."""
        path = Path(path)
        if path in self._cache or path in self._pending_images or self._closed:
            return
        self._pending_images[path] = False
        self._start_image(path, priority=1)

    def is_loading(self, path: Path) -> bool:
        return Path(path) in self._pending_images

    def _start_image(self, path: Path, priority: int) -> None:
        self.submit(
            lambda: read_dicom(path),
            lambda image: self._image_done(path, image),
            lambda message: self._image_failed(path, message),
            priority=priority,
        )

    def _image_done(self, path: Path, image: DicomImage) -> None:
        wanted = self._pending_images.pop(path, False)
        self._cache[path] = image
        self._cache.move_to_end(path)
        while len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        if path not in self._thumbs:
            self._thumbs[path] = make_thumbnail(image)
            self.thumbnail_ready.emit(path, self._thumbs[path])
        if wanted:
            self.image_loaded.emit(path, image)

    def _image_failed(self, path: Path, message: str) -> None:
        wanted = self._pending_images.pop(path, False)
        if wanted:
            self.image_failed.emit(path, message)

    # -- thumbnails ------------------------------------------------------------------------------------------
    def cached_thumbnail(self, path: Path) -> np.ndarray | None:
        return self._thumbs.get(Path(path))

    def thumbnail(self, path: Path) -> np.ndarray | None:
        """The thumbnail if made already; otherwise it is made in the background (``thumbnail_ready``)."""
        path = Path(path)
        if path in self._thumbs:
            return self._thumbs[path]
        if path in self._pending_thumbs or path in self._pending_images or self._closed:
            return None
        image = self._cache.get(path)
        if image is not None:
            self._thumbs[path] = make_thumbnail(image)
            return self._thumbs[path]
        self._pending_thumbs.add(path)
        self.submit(
            lambda: make_thumbnail(read_dicom(path)),
            lambda thumb: self._thumb_done(path, thumb),
            lambda message: self._thumb_failed(path, message),
            priority=0,
        )
        return None

    def _thumb_done(self, path: Path, thumb: np.ndarray) -> None:
        self._pending_thumbs.discard(path)
        self._thumbs[path] = thumb
        self.thumbnail_ready.emit(path, thumb)

    def _thumb_failed(self, path: Path, message: str) -> None:
        self._pending_thumbs.discard(path)
        self.thumbnail_failed.emit(path, message)

    # -- lifetime --------------------------------------------------------------------------------------------
    def clear(self) -> None:
        """Forget cached images and thumbnails (another dataset was opened); queued work is dropped."""
        self._pool.clear()
        self._cache.clear()
        self._thumbs.clear()
        self._pending_images.clear()
        self._pending_thumbs.clear()

    def wait(self, msecs: int = -1) -> bool:
        """Block until running tasks finish (tests, shutdown)."""
        return self._pool.waitForDone(msecs)

    def shutdown(self, msecs: int = 5000) -> None:
        """Drop queued tasks and wait for running ones; later results are ignored."""
        self._closed = True
        self._pool.clear()
        self._pool.waitForDone(msecs)
        self._tasks.clear()
