"""One torchrun launcher (trainer.distributed.launch) for linop-train --gpus and linop-bench --nproc."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from trainer import distributed
from trainer.bench import cli as bench_cli
from trainer.train import main as train_main


def test_torchrun_command_runs_the_module_standalone() -> None:
    command = distributed.torchrun_command(2, "trainer.bench.cli", ["classify", "--out", "x"])
    assert command == [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                       "-m", "trainer.bench.cli", "classify", "--out", "x"]


@pytest.fixture
def launches(monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, str, list[str]]]:
    calls: list[tuple[int, str, list[str]]] = []

    def fake_launch(nproc: int, module: str, args: list[str]) -> int:
        calls.append((nproc, module, list(args)))
        return 0

    monkeypatch.setattr(distributed, "launch", fake_launch)
    return calls


def test_both_clis_launch_through_the_shared_launcher(tmp_path: Path, launches: list[tuple[int, str, list[str]]],
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LOCAL_RANK", raising=False)
    assert train_main(["--config", "smoke", "--out", str(tmp_path / "run"), "--gpus", "2", "--device", "cpu"]) == 0
    assert launches[-1] == (2, "trainer.train", ["--config", "smoke", "--out", str(tmp_path / "run"),
                                                 "--device", "cpu"])
    out = tmp_path / "bench"
    assert bench_cli.main(["classify", "--config", "phantom-classify", "--set", f"data.root={tmp_path}",
                           "--out", str(out), "--nproc", "3", "--no-progress"]) == 0
    assert launches[-1] == (3, "trainer.bench.cli", ["classify", "--config", str(out / "config.yaml"),
                                                     "--out", str(out), "--no-progress"])
