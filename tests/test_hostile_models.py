"""Malicious and damaged model files: every allocation a pickle can ask for is bounded by the file (a 32-byte
pickle must not reach for gigabytes), code is still refused, and a cut file says it is truncated.

All attacks run in one interpreter whose address space may grow by only 1 GiB (each asks for 3.5 GB or
more), through the three loaders users meet: ``linop-model import`` (official snapshots and .pth),
checkpoints, and ``linop-train --resume`` training states.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from hostile_inputs import FLOOD_CAP, MALICIOUS_MODELS, PickleCase, assert_one_line, run_bounded

from linop_core.model.checkpoint import load_checkpoint, save_checkpoint
from linop_core.model.config import get_config
from linop_core.model.official import read_official
from linop_core.model.pickle_guard import guarded_torch_load
from trainer.run_files import load_training_state, save_run_file

CASES = [(case, loader) for case in MALICIOUS_MODELS for loader in case.loaders]


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    folder = tmp_path_factory.mktemp("models")
    files = {case.name: str(case.make(folder / f"{case.name}.pt")) for case in MALICIOUS_MODELS}
    jobs = [(case.name, files[case.name], loader) for case, loader in CASES]
    return run_bounded(f"""
        import torch
        import linop_core.model.pickle_guard as guard
        guard.MAX_PICKLE_OPS = {FLOOD_CAP}  # the same check, a flood that takes less time to walk
        from linop_core.errors import LinopError
        from linop_core.model.checkpoint import load_checkpoint
        from linop_core.model.official import read_official
        from trainer.run_files import load_training_state
        from pathlib import Path
        loaders = {{"official": read_official, "checkpoint": load_checkpoint,
                   "training_state": lambda p: load_training_state(Path(p))}}
        limit()
        out = {{}}
        for name, path, loader in {jobs!r}:
            try:
                loaders[loader](path)
                out[name + "/" + loader] = "!loaded"
            except LinopError as exc:
                out[name + "/" + loader] = str(exc)
            except BaseException as exc:
                out[name + "/" + loader] = "!" + type(exc).__name__ + ": " + str(exc)[:300]
        done({{"outcomes": out, "files": {files!r}}})
    """, headroom_mib=1024, timeout=300)


@pytest.mark.parametrize("case,loader", CASES, ids=[f"{c.name}-{loader}" for c, loader in CASES])
def test_malicious_model_file_is_refused_in_one_line(outcomes: dict[str, Any], case: PickleCase, loader: str) -> None:
    message = outcomes["outcomes"][f"{case.name}/{loader}"]
    assert not message.startswith("!"), message  # a LinopError, not MemoryError, not a load
    assert_one_line(message, outcomes["files"][case.name], *case.words)


def test_the_attacks_stayed_in_bounded_memory(outcomes: dict[str, Any]) -> None:
    assert outcomes["maxrss_mib"] < 1500, outcomes["maxrss_mib"]  # torch itself is most of it


def test_genuine_files_still_load_through_the_bounds(tmp_path: Path) -> None:
    state = {"w": torch.randn(64, 32), "b": torch.zeros(3, dtype=torch.float16), "n": torch.arange(5)}
    for zip_format in (True, False):
        path = tmp_path / f"state-{zip_format}.pth"
        torch.save(state, path, _use_new_zipfile_serialization=zip_format)
        loaded = guarded_torch_load(path)
        assert all(torch.equal(loaded[k], v) for k, v in state.items())
    ckpt = save_checkpoint(tmp_path / "small.pt", config=get_config("mat-small"), preset="mat-small",
                           G_ema={"w": torch.ones(2, 2)})
    assert torch.equal(load_checkpoint(ckpt).G_ema["w"], torch.ones(2, 2))
    save_run_file({"format": "linop-train-state", "step": 3, "opt": {"m": torch.ones(4)}}, tmp_path / "last.pt")
    assert load_training_state(tmp_path / "last.pt")["step"] == 3


def test_code_in_a_snapshot_never_runs(tmp_path: Path) -> None:
    sentinel = tmp_path / "pwned"
    command = f"touch {sentinel}".encode()
    path = tmp_path / "evil.pkl"
    path.write_bytes(b"\x80\x02cos\nsystem\nX" + len(command).to_bytes(4, "little") + command + b"\x85R.")
    with pytest.raises(Exception, match="could run code"):
        read_official(path)
    assert not sentinel.exists()
