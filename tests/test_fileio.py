"""Atomic writes leave either the old file or the new one, with the user's usual permissions."""

from __future__ import annotations

import os
import stat

import pytest

from linop_core.diskspace import DiskFullError
from linop_core.fileio import atomic_open, atomic_open_text, atomic_write_text, atomic_write_with


def test_a_failed_write_keeps_the_old_file_and_no_temp(tmp_path) -> None:
    target = tmp_path / "set.json"
    atomic_write_text(target, "old")
    with pytest.raises(RuntimeError), atomic_open(target) as f:
        f.write(b"half of the new")
        raise RuntimeError("disk full")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["set.json"]


def test_text_writes_and_permissions_follow_the_umask(tmp_path) -> None:
    target = tmp_path / "rows.csv"
    with atomic_open_text(target, newline="") as f:
        f.write("a,b\r\n1,2\n")
    assert target.read_bytes() == b"a,b\r\n1,2\n"
    umask = os.umask(0o022)
    os.umask(umask)
    assert stat.S_IMODE(target.stat().st_mode) == 0o666 & ~umask


def test_a_writer_callable_gets_the_file_and_its_failure_keeps_the_old_one(tmp_path) -> None:
    target = tmp_path / "state.bin"
    atomic_write_with(target, lambda f: f.write(b"new"))
    assert target.read_bytes() == b"new"

    def fail(f) -> None:
        f.write(b"half")
        raise OSError(28, "No space left on device")

    with pytest.raises(DiskFullError, match="state.bin: not enough disk space"):
        atomic_write_with(target, fail)
    assert target.read_bytes() == b"new"
    assert [p.name for p in tmp_path.iterdir()] == ["state.bin"]


def test_a_full_disk_is_one_line_naming_the_file_and_leaves_nothing(tmp_path) -> None:
    import errno

    target = tmp_path / "out.json"
    with pytest.raises(DiskFullError, match="out.json: not enough disk space"), atomic_open(target):
        raise OSError(errno.ENOSPC, "No space left on device")
    assert list(tmp_path.iterdir()) == []
