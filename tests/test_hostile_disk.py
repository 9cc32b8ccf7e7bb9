"""Full disks: every writer stops with one line naming the path, the space it needs and the space free, leaves
no temporary or partial file, and the same command with room resumes to the same samples and bytes.

Real full disks are size-limited tmpfs mounts (root only; skipped elsewhere); the writes that fail midway,
after the room check passed, are also injected (ENOSPC from the file system, as h5py and torch report it).
"""

from __future__ import annotations

import errno
import shutil
import subprocess
import sys
import textwrap
import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from hostile_inputs import REPO, SmallDisk, assert_one_line, small_disk

import linop_core.synthset.manifest as manifest_module
import linop_core.synthset.writer as writer_module
from linop_core.cli.export import main as export_main
from linop_core.diskspace import DiskFullError
from linop_core.model.checkpoint import save_checkpoint
from linop_core.model.config import get_config
from linop_core.synthset import SynthSet, write_manifest
from trainer.run_files import CheckpointWriteError, save_run_file

FAST = ["--engine", "biharmonic", "--resolution", "64", "--no-progress"]
UNITS = 6  # about 0.43 MB each on the phantom root; the set is about 2.6 MB


@pytest.fixture
def disk(tmp_path: Path) -> Iterator[SmallDisk]:
    try:
        with small_disk(tmp_path, 1.2) as mounted:
            yield mounted
    except (OSError, subprocess.CalledProcessError) as exc:
        pytest.skip(f"no size-limited file system here ({exc}); the injected ENOSPC tests still run")


@pytest.fixture(scope="module")
def reference(mammo_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The export every interrupted one must come back to, made on a disk with room."""
    path = tmp_path_factory.mktemp("reference") / "set.h5"
    assert export_main(["generate", str(mammo_root), str(path), "--n", str(UNITS), *FAST]) == 0
    return path


def _samples(path: Path) -> list[tuple[object, ...]]:
    with SynthSet(path) as synth:
        rows = []
        for row in range(len(synth)):
            meta = tuple(np.asarray(values[row]).tobytes() if not isinstance(values[row], str) else values[row]
                         for values in synth.meta.values())
            rows.append((meta, synth.image(row).tobytes(), synth.source(row).tobytes(),
                         synth.generated(row).tobytes(), synth.boxes(row).tobytes()))
        return rows


def _error_line(err: str) -> str:
    assert "Traceback" not in err and "Exception ignored" not in err, err
    lines = [line for line in err.splitlines() if "error:" in line]
    assert len(lines) == 1, err
    return lines[0]


def _leftovers(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if p.name.endswith((".tmp", ".partial")) or p.name.startswith(".")]


def test_export_unit_on_full_disk_then_resume(mammo_root: Path, disk: SmallDisk, reference: Path, capsys) -> None:
    out = disk.path / "set.h5"
    args = ["generate", str(mammo_root), str(out), "--n", str(UNITS), *FAST]
    assert export_main(args) == 1
    line = _error_line(capsys.readouterr().err)
    assert_one_line(line, str(out) + ".parts", "not enough disk space", "needs about", "free there", "resume")
    assert _leftovers(disk.path) == [] and not out.exists()
    committed = len(list((disk.path / "set.h5.parts").glob("unit_*.h5")))
    assert 0 < committed < UNITS
    disk.resize(8)
    assert export_main(args) == 0
    assert f"resuming: {committed} of {UNITS}" in capsys.readouterr().err
    assert _samples(out) == _samples(reference) and _leftovers(disk.path) == []


def test_assembly_on_full_disk_is_refused_before_it_starts(mammo_root: Path, disk: SmallDisk, reference: Path,
                                                          capsys) -> None:
    disk.resize(3.5)  # the committed units fit; a second copy of them (the assembled set) does not
    out = disk.path / "set.h5"
    args = ["generate", str(mammo_root), str(out), "--n", str(UNITS), *FAST]
    assert export_main(args) == 1
    assert_one_line(_error_line(capsys.readouterr().err), str(out), "needs about", "free there")
    assert len(list((disk.path / "set.h5.parts").glob("unit_*.h5"))) == UNITS and _leftovers(disk.path) == []
    disk.resize(8)
    assert export_main(args) == 0
    assert _samples(out) == _samples(reference)


@pytest.mark.slow
def test_assembly_failing_midway_leaves_nothing_and_no_noise(mammo_root: Path, disk: SmallDisk) -> None:
    disk.resize(4)  # units fit, the room check is switched off, the assembly runs into the full disk
    out = disk.path / "set.h5"
    code = textwrap.dedent(f"""
        import sys; sys.path.insert(0, {str(REPO)!r})
        import linop_core.synthset.writer as writer
        writer.require_space = lambda *args, **kwargs: None
        from linop_core.cli.export import main
        sys.exit(main(["generate", {str(mammo_root)!r}, {str(out)!r}, "--n", "{UNITS}", *{FAST!r}]))
    """)
    proc = subprocess.run([sys.executable, "-W", "ignore", "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1, proc.stderr[-3000:]  # not 139: HDF5 failing mid-file must not crash the process
    assert_one_line(_error_line(proc.stderr), str(out), "not enough disk space", "needs about")
    assert _leftovers(disk.path) == [] and not out.exists()


def test_coco_export_on_full_disk_then_again(reference: Path, disk: SmallDisk, tmp_path: Path, capsys) -> None:
    roomy = tmp_path / "coco"
    assert export_main(["coco", str(reference), str(roomy), "--no-progress"]) == 0
    capsys.readouterr()
    tight = disk.path / "coco"
    assert export_main(["coco", str(reference), str(tight), "--no-progress"]) == 1
    assert_one_line(_error_line(capsys.readouterr().err), str(tight), "needs about", "free there")
    assert _leftovers(disk.path) == []
    disk.resize(16)
    assert export_main(["coco", str(reference), str(tight), "--no-progress"]) == 0
    made = sorted(p.relative_to(tight) for p in tight.rglob("*") if p.is_file())
    assert made == sorted(p.relative_to(roomy) for p in roomy.rglob("*") if p.is_file())
    assert all((tight / p).read_bytes() == (roomy / p).read_bytes() for p in made)


def test_merge_on_full_disk_then_again(reference: Path, disk: SmallDisk, capsys) -> None:
    out = disk.path / "merged.h5"
    assert export_main(["merge", str(out), str(reference), "--no-progress"]) == 1
    assert_one_line(_error_line(capsys.readouterr().err), str(out), "needs about", "input sets are untouched")
    assert _leftovers(disk.path) == [] and not out.exists()
    disk.resize(8)
    assert export_main(["merge", str(out), str(reference), "--no-progress"]) == 0
    assert _samples(out) == _samples(reference)


def test_checkpoint_on_full_disk(disk: SmallDisk) -> None:
    path = disk.path / "model.pt"
    config = get_config("mat-small")
    save_checkpoint(path, config=config, preset="mat-small", G_ema={"w": torch.ones(16)})
    before = path.read_bytes()
    big = {"w": torch.ones(600_000)}  # 2.4 MB on a 1.2 MB disk
    with pytest.raises(DiskFullError) as info:
        save_checkpoint(path, config=config, preset="mat-small", G_ema=big)
    assert_one_line(str(info.value), str(path), "needs about 2.5 MB", "free there")
    # the disk fills during torch.save (room check off): torch's RuntimeError becomes the same line
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("linop_core.model.checkpoint.require_space", lambda *a, **k: None)
        with pytest.raises(DiskFullError) as info:
            save_checkpoint(path, config=config, preset="mat-small", G_ema=big)
    assert_one_line(str(info.value), str(path), "needs about")
    assert path.read_bytes() == before and _leftovers(disk.path) == []


def test_training_run_file_on_full_disk(disk: SmallDisk) -> None:
    path = disk.path / "run" / "last.pt"
    save_run_file({"format": "linop-train-state", "step": 1}, path)
    before = path.read_bytes()
    state = {"format": "linop-train-state", "step": 2, "opt": torch.ones(600_000)}
    with pytest.raises(CheckpointWriteError) as info:
        save_run_file(state, path)
    assert_one_line(str(info.value), str(path), "needs about 2.4 MB", "free there", f"--resume {path.parent}")
    with pytest.MonkeyPatch.context() as patch:  # torch.save itself runs into the full disk
        patch.setattr("trainer.run_files.free_bytes", lambda *_: 1 << 40)
        with pytest.raises(CheckpointWriteError) as info:
            save_run_file(state, path)
    assert_one_line(str(info.value), str(path), "torch.save failed", "needs about")
    assert path.read_bytes() == before and _leftovers(disk.path) == []


# ----------------------------------------------------------------------------------------------- injected ENOSPC


class _FullFile:
    """A file that takes a few bytes and then reports a full disk, as the kernel does."""

    def __init__(self, path: Path, mode: str) -> None:
        self._file = open(path, mode)  # noqa: SIM115 - closed in __exit__

    def write(self, data: bytes) -> int:
        self._file.write(data[:100])
        raise OSError(errno.ENOSPC, "No space left on device")

    def __enter__(self) -> _FullFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self._file.close()


def test_injected_enospc_at_unit_commit(mammo_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                        reference: Path, capsys) -> None:
    out = tmp_path / "set.h5"
    args = ["generate", str(mammo_root), str(out), "--n", str(UNITS), *FAST]
    monkeypatch.setattr(writer_module, "open", lambda path, mode: _FullFile(path, mode), raising=False)
    assert export_main(args) == 1
    assert_one_line(_error_line(capsys.readouterr().err), "unit_000000000.h5", "not enough disk space")
    assert _leftovers(tmp_path) == []
    monkeypatch.undo()
    assert export_main(args) == 0
    assert _samples(out) == _samples(reference)


def test_injected_enospc_during_assembly(mammo_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                         reference: Path, capsys) -> None:
    out = tmp_path / "set.h5"
    args = ["generate", str(mammo_root), str(out), "--n", str(UNITS), *FAST]
    real = writer_module.assemble

    def assemble_then_full(partial: Path, *a: object, **k: object) -> object:
        real(partial, *a, **k)  # a whole partial file exists, then the disk is full
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(writer_module, "assemble", assemble_then_full)
    assert export_main(args) == 1
    assert_one_line(_error_line(capsys.readouterr().err), str(out), "not enough disk space")
    assert _leftovers(tmp_path) == [] and not out.exists()
    monkeypatch.undo()
    assert export_main(args) == 0
    assert _samples(out) == _samples(reference)


def test_injected_enospc_writing_the_manifest(reference: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    copy = tmp_path / "set.h5"
    shutil.copy(reference, copy)

    def full(path: Path, text: str) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(manifest_module, "atomic_write_text", full)
    with pytest.raises(DiskFullError) as info:
        write_manifest(copy)
    assert_one_line(str(info.value), f"{copy}.manifest.json", "needs about", "--rewrite")
    monkeypatch.undo()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert write_manifest(copy)["n_samples"] == UNITS
