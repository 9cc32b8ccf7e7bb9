"""Background work off the GUI thread: one long-lived thread per worker, jobs in, progress / results / errors out.

A :class:`BackgroundWorker` (GUI side) owns a ``QThread`` and a :class:`_Runner` ``QObject`` moved into it.
The model worker's runner owns the generation engine (MAT on its device, or the biharmonic baseline): it is
built there, used there and released there, so a CUDA model has exactly one owner.

Protocol (all signals arrive queued in the GUI thread):

* ``submit(fn, channel=...) -> job_id``: ``fn(ctx)`` runs in the worker thread with a :class:`JobContext`
  (the engine, a ``progress(done, total)`` callback, a cancellation check). Job ids increase.
* ``progress(job_id, done, total)``, ``partial(job_id, payload)`` (a piece of the result sent with
  ``ctx.partial`` while the job runs, e.g. each candidate), ``result(job_id, payload)``,
  ``failed(job_id, WorkerError)``, ``cancelled(job_id)``.
* Latest request wins, per channel: a new job cancels the previous job of its channel (cooperatively: the
  running job stops at its next ``progress``/``check`` call, a queued one never starts), and only the latest
  job of a channel reports ``progress``, ``partial``, ``result`` and ``failed``; results of stale ids are dropped.
* A CUDA forward pass cannot be interrupted, so cancellation takes effect between batches / candidates.

Payloads cross threads as numpy arrays and frozen dataclasses; jobs must not mutate arrays they handed out,
and only the GUI thread touches widgets.
"""

from __future__ import annotations

import itertools
import logging
import threading
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from PySide6.QtCore import QObject, QThread, Signal, Slot

from linop_core.engines import EngineSpec, make_engine
from linop_core.errors import LinopError, ModelError
from linop_core.precision import dtype_name

_log = logging.getLogger("linop_gui.worker")

ErrorKind = Literal["model", "oom", "input", "bug"]
DEFAULT_CHANNEL = "default"
ENGINE_CHANNEL = "engine"


class Cancelled(Exception):
    """Raised inside a job (from its progress callback) when the job was cancelled or superseded."""


# ----------------------------------------------------------------------------------------------- records


@dataclass(frozen=True)
class EngineInfo:
    """What the status bar shows about the loaded engine and its device."""

    engine: str  # "mat" | "biharmonic"
    model_name: str | None
    checkpoint: str | None
    checkpoint_sha256: str | None
    device: str  # "cpu", "cuda:0", "mps"
    device_name: str
    free_bytes: int | None = None  # CUDA only
    total_bytes: int | None = None
    note: str = ""
    dtype: str = ""  # what MAT computes in ("float32", "bfloat16"...); "" for the biharmonic baseline
    precision: str = ""  # what was asked for ("auto", "bf16"...)

    def status_text(self) -> str:
        if self.engine == "mat":
            sha = f" {self.checkpoint_sha256[:8]}" if self.checkpoint_sha256 else ""
            model = f"MAT {self.model_name or 'model'}{sha}"
        else:
            model = "biharmonic baseline (no model)"
        arithmetic = f" · {self.dtype}" + (" (auto)" if self.precision == "auto" else "") if self.dtype else ""
        return f"{model} · {self.device_text()}{arithmetic}"

    def device_text(self) -> str:
        """``CPU``, ``Apple MPS`` or ``CUDA <name> · <free> of <total> GiB free``."""
        text = self.device_name or self.device
        if self.free_bytes is not None and self.total_bytes:
            text += f" · {self.free_bytes / 2**30:.1f} of {self.total_bytes / 2**30:.1f} GiB free"
        return text


@dataclass(frozen=True)
class WorkerError:
    """A failed job, classified so the GUI can say what to do. ``detail`` holds the traceback of a bug."""

    kind: ErrorKind
    message: str
    detail: str = ""

    @property
    def title(self) -> str:
        return {
            "model": "The model cannot be used",
            "oom": "Out of GPU memory",
            "input": "Cannot do that",
            "bug": "Unexpected error",
        }[self.kind]


OOM_FIX = (
    "close other programs using the GPU, generate fewer candidates at once, choose a smaller model, "
    "or switch the device to CPU in the Model panel"
)


def classify_error(exc: BaseException) -> WorkerError:
    """Turns an exception from a job into a :class:`WorkerError` with a one-line message naming the fix."""
    if _is_out_of_memory(exc):
        text = str(exc).split("\n")[0]
        if isinstance(exc, ModelError):
            return WorkerError("oom", str(exc))
        return WorkerError("oom", f"{text}; {OOM_FIX}")
    if isinstance(exc, ModelError):
        return WorkerError("model", str(exc))
    if isinstance(exc, LinopError):
        return WorkerError("input", str(exc))
    detail = "".join(traceback.format_exception(exc))
    return WorkerError("bug", f"{type(exc).__name__}: {exc} (a LINOP bug; please report it with the details)", detail)


def _is_out_of_memory(exc: BaseException) -> bool:
    try:
        import torch

        if isinstance(exc, torch.cuda.OutOfMemoryError):
            return True
    except ImportError:  # pragma: no cover - torch is a dependency
        pass
    return isinstance(exc, RuntimeError | LinopError) and "out of memory" in str(exc).lower()


# ----------------------------------------------------------------------------------------------- engines


def engine_info(engine: Any, spec: EngineSpec | None = None) -> EngineInfo:
    """Describes ``engine`` and its device; on CUDA with the free memory now."""
    import torch

    device = getattr(engine, "device", None)
    device = torch.device("cpu") if device is None else torch.device(device)
    free = total = None
    if device.type == "cuda":
        index = device.index if device.index is not None else torch.cuda.current_device()
        name = f"CUDA {torch.cuda.get_device_name(index)}"
        free, total = torch.cuda.mem_get_info(index)
        device_text = f"cuda:{index}"
    elif device.type == "mps":
        name, device_text = "Apple MPS", "mps"
    else:
        name, device_text = "CPU", "cpu"
    return EngineInfo(
        engine=str(getattr(engine, "name", "?")),
        model_name=getattr(engine, "model_name", None),
        checkpoint=getattr(engine, "source", None),
        checkpoint_sha256=getattr(engine, "checkpoint_sha256", None),
        device=device_text,
        device_name=name,
        free_bytes=int(free) if free is not None else None,
        total_bytes=int(total) if total is not None else None,
        note=spec.note if spec is not None else "",
        dtype=dtype_name(getattr(engine, "dtype", None)),
        precision=str(getattr(engine, "precision", "") or ""),
    )


def _release(engine: Any) -> None:
    """Drops a replaced engine's GPU memory (the generator is the only big reference)."""
    import torch

    device = getattr(engine, "device", None)
    if device is None:
        return
    engine.generator = None
    if torch.device(device).type == "cuda":
        torch.cuda.empty_cache()


# ----------------------------------------------------------------------------------------------- jobs


class JobContext:
    """What a job gets in the worker thread."""

    def __init__(self, job_id: int, token: threading.Event, engine: Any, emit: Callable[[int, int, int], None],
                 emit_partial: Callable[[int, object], None] | None = None):
        self.job_id = job_id
        self._token = token
        self.engine = engine
        self._emit = emit
        self._emit_partial = emit_partial

    @property
    def cancelled(self) -> bool:
        return self._token.is_set()

    def check(self) -> None:
        """Raises :class:`Cancelled` when the job was cancelled or superseded."""
        if self._token.is_set():
            raise Cancelled

    def progress(self, done: int, total: int) -> None:
        """``progress(done, total)`` for library code; also the cancellation point."""
        self.check()
        self._emit(self.job_id, int(done), int(total))

    def partial(self, payload: object) -> None:
        """Hands a piece of the result to the GUI thread now (e.g. one candidate), before the job ends; the GUI
        receives it only while the job is still the latest of its channel."""
        self.check()
        if self._emit_partial is not None:
            self._emit_partial(self.job_id, payload)


JobFn = Callable[[JobContext], Any]


@dataclass
class _Pending:
    job_id: int
    channel: str
    token: threading.Event = field(default_factory=threading.Event)


class _Runner(QObject):
    """Lives in the worker thread; runs one job at a time and owns the engine."""

    progress = Signal(int, int, int)
    partial = Signal(int, object)
    result = Signal(int, object)
    failed = Signal(int, object)
    cancelled = Signal(int)
    finished = Signal(int)
    engine_changed = Signal(object)  # EngineInfo

    def __init__(self) -> None:
        super().__init__()
        self.engine: Any = None
        self.spec: EngineSpec | None = None

    @Slot(int, object, object)
    def run(self, job_id: int, fn: JobFn, token: threading.Event) -> None:
        try:
            if token.is_set():
                self.cancelled.emit(job_id)
                return
            ctx = JobContext(job_id, token, self.engine, self.progress.emit, self.partial.emit)
            try:
                payload = fn(ctx)
                ctx.check()  # a job cancelled in its last step reports as cancelled
            except Cancelled:
                self.cancelled.emit(job_id)
            except Exception as exc:
                error = classify_error(exc)
                if error.kind == "bug":
                    _log.error("job %d failed:\n%s", job_id, error.detail)
                self.failed.emit(job_id, error)
            else:
                self.result.emit(job_id, payload)
            self._refresh_device()
        finally:
            self.finished.emit(job_id)

    @Slot(int, object, object)
    def load_engine(self, job_id: int, spec: EngineSpec, token: threading.Event) -> None:
        try:
            if token.is_set():
                self.cancelled.emit(job_id)
                return
            try:
                engine = make_engine(spec)
                info = engine_info(engine, spec)
            except Exception as exc:
                self.failed.emit(job_id, classify_error(exc))
                return
            old, self.engine, self.spec = self.engine, engine, spec
            if old is not None and old is not engine:
                _release(old)
            self.result.emit(job_id, info)
            self.engine_changed.emit(info)
        finally:
            self.finished.emit(job_id)

    @Slot()
    def release(self) -> None:
        if self.engine is not None:
            _release(self.engine)
            self.engine = None

    def _refresh_device(self) -> None:
        # Free GPU memory changes with every job; the CPU has nothing new to say.
        device = getattr(self.engine, "device", None)
        if device is not None and str(device).startswith("cuda"):
            try:
                self.engine_changed.emit(engine_info(self.engine, self.spec))
            except Exception as exc:  # never let a status-bar refresh fail a job
                _log.warning("cannot read CUDA memory: %s", exc)


class BackgroundWorker(QObject):
    """GUI-side handle of one long-lived worker thread (see the module docstring)."""

    progress = Signal(int, int, int)  # job id, done, total (latest job of its channel only)
    partial = Signal(int, object)  # job id, a piece of the result sent before the end (latest job only)
    result = Signal(int, object)  # job id, payload (latest job of its channel only)
    failed = Signal(int, object)  # job id, WorkerError (latest job of its channel only)
    cancelled = Signal(int)  # job id (every job that stopped or never started because of a cancel)
    finished = Signal(int)  # job id, after its result / failed / cancelled (every job)
    busy_changed = Signal(bool)
    engine_changed = Signal(object)  # EngineInfo, after a load and after each job on CUDA

    _run_job = Signal(int, object, object)
    _load = Signal(int, object, object)
    _release = Signal()

    def __init__(self, name: str = "linop-worker", parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._ids = itertools.count(1)
        self._latest: dict[str, _Pending] = {}  # channel -> its latest job
        self._channel_of: dict[int, str] = {}
        self._pending: dict[int, _Pending] = {}  # every job not finished yet
        self.engine_info: EngineInfo | None = None
        self._thread = QThread()
        self._thread.setObjectName(name)
        self._runner = _Runner()
        self._runner.moveToThread(self._thread)
        self._run_job.connect(self._runner.run)
        self._load.connect(self._runner.load_engine)
        self._release.connect(self._runner.release)
        self._runner.progress.connect(self._on_progress)
        self._runner.partial.connect(self._on_partial)
        self._runner.result.connect(self._on_result)
        self._runner.failed.connect(self._on_failed)
        self._runner.cancelled.connect(self.cancelled)
        self._runner.finished.connect(self._on_finished)
        self._runner.engine_changed.connect(self._on_engine_changed)
        self._thread.finished.connect(self._runner.deleteLater)
        self._thread.start()

    # -- submitting ------------------------------------------------------------------------------------
    def submit(self, fn: JobFn, *, channel: str = DEFAULT_CHANNEL) -> int:
        """Queues ``fn(ctx)``; the previous job of ``channel`` is cancelled (latest request wins)."""
        pending = self._enqueue(channel)
        self._run_job.emit(pending.job_id, fn, pending.token)
        return pending.job_id

    def load_engine(self, spec: EngineSpec) -> int:
        """Builds the engine of ``spec`` in the worker; the old one stays in use if this fails."""
        pending = self._enqueue(ENGINE_CHANNEL)
        self._load.emit(pending.job_id, spec, pending.token)
        return pending.job_id

    def _enqueue(self, channel: str) -> _Pending:
        previous = self._latest.get(channel)
        if previous is not None:
            previous.token.set()
        pending = _Pending(next(self._ids), channel)
        self._latest[channel] = pending
        self._channel_of[pending.job_id] = channel
        was_busy = self.busy
        self._pending[pending.job_id] = pending
        if not was_busy:
            self.busy_changed.emit(True)
        return pending

    def cancel(self, channel: str | None = None) -> None:
        """Cancels the jobs of ``channel`` (all channels when None); they report ``cancelled``."""
        for pending in self._pending.values():
            if channel is None or pending.channel == channel:
                pending.token.set()

    # -- state -----------------------------------------------------------------------------------------
    @property
    def busy(self) -> bool:
        return bool(self._pending)

    def is_current(self, job_id: int) -> bool:
        """True while ``job_id`` is the latest job of its channel and has not been cancelled."""
        channel = self._channel_of.get(job_id)
        latest = self._latest.get(channel) if channel is not None else None
        return latest is not None and latest.job_id == job_id and not latest.token.is_set()

    def channel_busy(self, channel: str) -> bool:
        return any(p.channel == channel for p in self._pending.values())

    @property
    def thread(self) -> QThread:
        return self._thread

    # -- from the runner (GUI thread) ----------------------------------------------------------------------
    def _on_progress(self, job_id: int, done: int, total: int) -> None:
        if self.is_current(job_id):
            self.progress.emit(job_id, done, total)

    def _on_partial(self, job_id: int, payload: object) -> None:
        if self.is_current(job_id):
            self.partial.emit(job_id, payload)

    def _on_result(self, job_id: int, payload: object) -> None:
        if self.is_current(job_id):
            self.result.emit(job_id, payload)

    def _on_failed(self, job_id: int, error: object) -> None:
        if self.is_current(job_id):
            self.failed.emit(job_id, error)

    def _on_finished(self, job_id: int) -> None:
        self._pending.pop(job_id, None)
        self._channel_of.pop(job_id, None)
        for channel, latest in list(self._latest.items()):
            if latest.job_id == job_id:
                del self._latest[channel]
        self.finished.emit(job_id)
        if not self._pending:
            self.busy_changed.emit(False)

    def _on_engine_changed(self, info: object) -> None:
        self.engine_info = info  # type: ignore[assignment]
        self.engine_changed.emit(info)

    # -- shutdown --------------------------------------------------------------------------------------
    def shutdown(self, timeout_ms: int = 10_000) -> bool:
        """Cancels everything, releases the engine, stops the thread; False if it did not stop in time."""
        if not self._thread.isRunning():
            return True
        self.cancel()
        self._release.emit()
        self._thread.quit()
        stopped = self._thread.wait(timeout_ms)
        if not stopped:
            _log.warning("worker thread %s did not stop within %d ms", self._thread.objectName(), timeout_ms)
        return bool(stopped)
