"""The long-lived worker thread: results and progress, latest request wins, cooperative cancel, error classes,
engine loading in the worker, shutdown."""

from __future__ import annotations

import threading
import time

import pytest
import torch
from PySide6.QtCore import QThread

from linop_core.engines import EngineSpec
from linop_core.errors import LinopError, ModelError
from linop_gui.worker import BackgroundWorker, JobContext, WorkerError, classify_error


@pytest.fixture
def worker(qtbot):
    w = BackgroundWorker("test-worker")
    yield w
    assert w.shutdown(5_000)


def test_a_job_runs_in_the_worker_thread_and_reports_progress(qtbot, worker) -> None:
    progress: list[tuple[int, int, int]] = []
    worker.progress.connect(lambda *args: progress.append(args))

    def job(ctx: JobContext) -> str:
        for i in range(1, 4):
            ctx.progress(i, 3)
        return threading.current_thread().name, QThread.currentThread() is worker.thread

    with qtbot.waitSignal(worker.result, timeout=5_000) as blocker:
        job_id = worker.submit(job)
    assert blocker.args[0] == job_id
    _, in_worker_thread = blocker.args[1]
    assert in_worker_thread
    qtbot.waitUntil(lambda: not worker.busy, timeout=5_000)
    assert progress == [(job_id, 1, 3), (job_id, 2, 3), (job_id, 3, 3)]


def test_latest_request_wins(qtbot, worker) -> None:
    results: list[tuple[int, object]] = []
    cancelled: list[int] = []
    worker.result.connect(lambda j, p: results.append((j, p)))
    worker.cancelled.connect(cancelled.append)
    started = threading.Event()

    def slow(ctx: JobContext) -> str:
        started.set()
        for i in range(2000):  # stops at the first progress call after it is superseded
            time.sleep(0.005)
            ctx.progress(i, 2000)
        return "slow finished"

    first = worker.submit(slow, channel="preview")
    assert started.wait(5)
    second = worker.submit(lambda ctx: "second", channel="preview")
    third = worker.submit(lambda ctx: "third", channel="preview")  # supersedes the queued second before it runs
    qtbot.waitUntil(lambda: not worker.busy, timeout=10_000)
    assert results == [(third, "third")]
    assert sorted(cancelled) == [first, second]
    assert not worker.is_current(first)


def test_other_channels_are_not_cancelled(qtbot, worker) -> None:
    results: list[object] = []
    worker.result.connect(lambda j, p: results.append(p))
    worker.submit(lambda ctx: "export", channel="export")
    worker.submit(lambda ctx: "preview", channel="preview")
    qtbot.waitUntil(lambda: not worker.busy, timeout=5_000)
    assert results == ["export", "preview"]


def test_cancel_stops_a_running_job_at_its_next_progress_call(qtbot, worker) -> None:
    results: list[object] = []
    worker.result.connect(lambda j, p: results.append(p))
    started = threading.Event()
    steps: list[int] = []

    def job(ctx: JobContext) -> str:
        started.set()
        for i in range(1000):
            time.sleep(0.005)
            steps.append(i)
            ctx.progress(i, 1000)
        return "done"

    job_id = worker.submit(job, channel="generate")
    assert started.wait(5)
    with qtbot.waitSignal(worker.cancelled, timeout=5_000) as blocker:
        worker.cancel("generate")
    assert blocker.args == [job_id]
    assert results == [] and len(steps) < 1000


@pytest.mark.parametrize(
    ("error", "kind", "needle"),
    [
        (ModelError("/models/x.pt", "not a LINOP checkpoint; choose another file"), "model", "x.pt"),
        (torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 4.00 GiB"), "oom", "CPU"),
        (RuntimeError("MPS backend out of memory"), "oom", "CPU"),
        (LinopError("box (1, 2, 3, 4) lies outside the breast; draw it on the breast"), "input", "breast"),
        (ZeroDivisionError("division by zero"), "bug", "ZeroDivisionError"),
    ],
)
def test_errors_are_classified_with_their_fix(error: Exception, kind: str, needle: str) -> None:
    result = classify_error(error)
    assert result.kind == kind and needle in result.message
    assert "\n" not in result.message
    if kind == "bug":
        assert "ZeroDivisionError" in result.detail


def test_a_failing_job_reports_failed_and_the_worker_goes_on(qtbot, worker) -> None:
    def broken(ctx: JobContext) -> None:
        raise ModelError("/tmp/ckpt.pt", "weights do not fit the model config")

    with qtbot.waitSignal(worker.failed, timeout=5_000) as blocker:
        worker.submit(broken)
    error = blocker.args[1]
    assert isinstance(error, WorkerError) and error.kind == "model" and "ckpt.pt" in error.message
    with qtbot.waitSignal(worker.result, timeout=5_000) as blocker:
        worker.submit(lambda ctx: 42)
    assert blocker.args[1] == 42


def test_the_engine_is_built_and_owned_by_the_worker(qtbot, worker, tmp_path) -> None:
    with qtbot.waitSignal(worker.engine_changed, timeout=10_000) as blocker:
        worker.load_engine(EngineSpec.biharmonic(64, device="cpu", note="test"))
    info = blocker.args[0]
    assert (info.engine, info.device, info.note) == ("biharmonic", "cpu", "test")
    assert "biharmonic" in info.status_text() and "CPU" in info.status_text()

    with qtbot.waitSignal(worker.result, timeout=5_000) as blocker:
        worker.submit(lambda ctx: (ctx.engine.name, ctx.engine.resolution))
    assert blocker.args[1] == ("biharmonic", 64)

    # A missing checkpoint fails without replacing the working engine.
    with qtbot.waitSignal(worker.failed, timeout=10_000) as blocker:
        worker.load_engine(EngineSpec(checkpoint=str(tmp_path / "nope.pt")))
    assert blocker.args[1].kind == "model" and "nope.pt" in blocker.args[1].message
    with qtbot.waitSignal(worker.result, timeout=5_000) as blocker:
        worker.submit(lambda ctx: ctx.engine.name)
    assert blocker.args[1] == "biharmonic"


def test_a_device_this_machine_lacks_is_refused(qtbot, worker) -> None:
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    with qtbot.waitSignal(worker.failed, timeout=10_000) as blocker:
        worker.load_engine(EngineSpec.biharmonic(device="cuda"))
    assert blocker.args[1].kind == "input" and "cpu" in blocker.args[1].message


def test_shutdown_stops_a_running_job_and_the_thread(qtbot) -> None:
    worker = BackgroundWorker("shutdown-test")
    started = threading.Event()

    def forever(ctx: JobContext) -> None:
        started.set()
        while True:
            time.sleep(0.01)
            ctx.check()

    worker.submit(forever)
    assert started.wait(5)
    assert worker.shutdown(5_000)
    assert not worker.thread.isRunning()
