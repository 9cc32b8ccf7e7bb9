"""Writing a synthetic set so that no crash can lose or corrupt committed samples.

HDF5 is not crash-consistent: a process killed between two flushes can leave a file whose last flushed
metadata points at space the library has since reused, so one growing ``.h5`` cannot safely be the record
of progress. The writer therefore commits each *work unit* (one source image's candidates) as its own small
set file in the spool folder ``<set>.parts/`` (temporary name, fsync, ``os.replace``): a unit is either
complete there or absent. :meth:`SynthSetWriter.finish` assembles the spool (after the existing set, when
appending) into ``<set>.partial``, renames it over ``<set>``, writes the manifest and removes the spool.
A killed export resumes from the spool with the same options; a killed finish simply runs again.
"""

from __future__ import annotations

import gc
import json
import os
import shutil
import sys
import traceback
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import h5py

from linop_core.diskspace import full_disk_as_error, require_space
from linop_core.errors import DataError
from linop_core.fileio import atomic_write_text
from linop_core.synthset.manifest import write_manifest
from linop_core.synthset.records import SCHEMA, SynthSample, check_sample
from linop_core.synthset.store import (
    DEFAULT_CHUNK_LIMIT,
    GZIP_LEVEL,
    Progress,
    assemble,
    check_schema,
    read_meta,
    read_root_attrs,
    unit_file_bytes,
)

_HEADER = "header.json"
_UNIT_PREFIX = "unit_"
_RESUME = "the units committed so far are kept: free space and run the same command again to resume"
ASSEMBLY_OVERHEAD = 1 << 20  # the /meta table, root attributes and HDF5 bookkeeping of an assembled set


def utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _app_version() -> str:
    from linop_core import __version__

    return __version__


def spool_path(set_path: Path) -> Path:
    return set_path.with_name(set_path.name + ".parts")


def partial_path(set_path: Path) -> Path:
    return set_path.with_name(set_path.name + ".partial")


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class SynthSetWriter:
    """Commit samples unit by unit, resumably, then :meth:`finish` into one ``.h5`` set.

    ``config`` describes how the samples are made (engine, seed, sampling options...); a resumed export must
    pass the same, and it is stored in the set so shards can be checked before a merge. ``filter`` records
    which review decisions the set holds (e.g. ``"decision==approved"``). With ``append=True`` an existing
    set is extended (its units count as done); otherwise an existing set is refused. ``gzip_level`` trades
    file size for write speed (the samples are compressed once, at commit).
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        config: Mapping[str, Any] | None = None,
        filter: str = "all",
        allow_test_split: bool = False,
        box_label_names: Sequence[str] = (),
        global_label_names: Sequence[str] = (),
        append: bool = False,
        chunk_limit: int = DEFAULT_CHUNK_LIMIT,
        gzip_level: int = GZIP_LEVEL,
    ) -> None:
        self.path = Path(path)
        self.spool = spool_path(self.path)
        self.allow_test_split = allow_test_split
        self.chunk_limit = chunk_limit
        if not 0 <= gzip_level <= 9:
            raise ValueError(f"gzip_level must be 0-9, got {gzip_level}")
        self.gzip_level = gzip_level
        wanted = {
            "schema": SCHEMA,
            "config": dict(config or {}),
            "filter": filter,
            "allow_test_split": allow_test_split,
            "box_label_names": list(box_label_names),
            "global_label_names": list(global_label_names),
        }
        # json round trip so tuples and lists compare equal against a header read back from disk
        wanted = json.loads(json.dumps(wanted, sort_keys=True))
        header_file = self.spool / _HEADER
        self._base_attrs: dict[str, Any] | None = None
        self._done: set[int] = set()
        if header_file.is_file():
            self.header = self._resume(header_file, wanted)
        else:
            if self.path.exists() and not append:
                raise DataError(
                    self.path, "a set with this name exists; append to it (--append) or choose another name"
                )
            if self.path.exists() and not os.access(self.path, os.R_OK | os.W_OK):
                raise DataError(self.path, "cannot read and write this set; check its permissions")
            if not self.path.parent.is_dir():
                raise DataError(self.path.parent, "output folder does not exist; create it first")
            self.header = {**wanted, "export_id": str(uuid.uuid4()), "created_utc": utc_now()}
            text = json.dumps(self.header, indent=2, sort_keys=True)
            with full_disk_as_error(header_file, len(text)):
                self.spool.mkdir(exist_ok=True)
                atomic_write_text(header_file, text)
        for unit_file in self.spool.glob(f"{_UNIT_PREFIX}*.h5"):
            self._done.add(int(unit_file.stem[len(_UNIT_PREFIX) :]))
        if self.path.exists():
            self._read_base()

    def _resume(self, header_file: Path, wanted: Mapping[str, Any]) -> dict[str, Any]:
        try:
            header = json.loads(header_file.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise DataError(header_file, f"unreadable spool header ({exc}); delete {self.spool} to start over") from exc
        differ = sorted(key for key in wanted if header.get(key) != wanted[key])
        if differ:
            raise DataError(
                self.spool,
                f"an interrupted export with other {', '.join(differ)} is waiting here; rerun it with the same "
                f"options to resume, or delete {self.spool} to start over",
            )
        # tidy what a kill left half-written: temporary unit files and an unfinished assembly
        for leftover in self.spool.glob("*.tmp"):
            leftover.unlink()
        partial_path(self.path).unlink(missing_ok=True)
        return header

    def _read_base(self) -> None:
        with h5py.File(self.path, "r") as file:
            check_schema(file, self.path)
            self._base_attrs = read_root_attrs(file)
            self._done.update(int(u) for u in read_meta(file, self.path)["unit"].tolist())

    @property
    def export_id(self) -> str:
        if self._base_attrs is not None:
            return str(self._base_attrs["export_id"])
        return str(self.header["export_id"])

    @property
    def done_units(self) -> frozenset[int]:
        """Units already committed (in the spool or, when appending, in the existing set)."""
        return frozenset(self._done)

    def commit(self, unit: int, samples: Sequence[SynthSample], events: Sequence[str] = ()) -> None:
        """Check and durably store the samples of one unit (possibly none: the unit is then done, empty), with
        its audit ``events`` (JSON strings, e.g. the sources it skipped), which the set's ``/audit/events``
        keeps."""
        if unit in self._done:
            raise ValueError(f"unit {unit} is already committed to {self.path}")
        indices = [sample.index for sample in samples]
        if len(set(indices)) != len(indices):
            raise ValueError(f"unit {unit} repeats a sample index: {indices}")
        for sample in samples:
            check_sample(sample, self.path, allow_test_split=self.allow_test_split)
        final = self.spool / f"{_UNIT_PREFIX}{unit:09d}.h5"
        tmp = final.with_name(final.name + ".tmp")
        data = unit_file_bytes(unit, samples, self._attrs(), self.chunk_limit, self.gzip_level, events)
        require_space(self.spool, len(data), resume=_RESUME)
        with full_disk_as_error(final, len(data), resume=_RESUME, cleanup=lambda _: tmp.unlink(missing_ok=True)):
            with open(tmp, "xb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, final)
        self._done.add(unit)

    def _attrs(self) -> dict[str, Any]:
        header = self.header
        attrs: dict[str, Any] = {
            "export_id": header["export_id"],
            "created_utc": header["created_utc"],
            "updated_utc": utc_now(),
            "app_version": _app_version(),
            "filter": header["filter"],
            "test_split_sources_allowed": header["allow_test_split"],
            "configs": [header["config"]],
            "box_label_names": header["box_label_names"],
            "global_label_names": header["global_label_names"],
        }
        base = self._base_attrs
        if base is not None:
            attrs["export_id"] = base["export_id"]
            attrs["created_utc"] = base["created_utc"]
            if base["filter"] != header["filter"]:
                attrs["filter"] = f"{base['filter']} | {header['filter']}"
            attrs["test_split_sources_allowed"] = bool(base["test_split_sources_allowed"]) or header["allow_test_split"]
            configs = list(base["configs"])
            if header["config"] not in configs:
                configs.append(header["config"])
            attrs["configs"] = configs
            attrs["box_label_names"] = [*base["box_label_names"], *header["box_label_names"]]
            attrs["global_label_names"] = [*base["global_label_names"], *header["global_label_names"]]
            attrs["merged_from"] = base.get("merged_from", [])
        return attrs

    @property
    def next_unit(self) -> int:
        """The first unit number after every committed one (for callers that number units as they go)."""
        return max(self._done, default=-1) + 1

    def finish(self, progress: Progress | None = None, audit_events: Sequence[str] = ()) -> dict[str, Any]:
        """Assemble the committed units into the set, rename it into place, write the manifest; returns it.

        ``audit_events`` (JSON strings, e.g. the review log) are appended to ``/audit/events``.
        """
        units = sorted(self.spool.glob(f"{_UNIT_PREFIX}*.h5"))
        partial = partial_path(self.path)
        base = self.path if self.path.exists() else None
        with _assembling(partial, self.path, [*units, *([base] if base else [])], _RESUME):
            assemble(
                partial,
                units,
                self._attrs(),
                base=base,
                label_path=self.path,
                progress=progress,
                audit_events=audit_events,
            )
        os.replace(partial, self.path)
        manifest = write_manifest(self.path)
        shutil.rmtree(self.spool)
        return manifest


def merge_sets(
    out: str | os.PathLike[str],
    inputs: Sequence[str | os.PathLike[str]],
    *,
    require_same_config: bool = True,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Copy the samples of several sets (e.g. the shards of one export) into one new set, sorted by index.

    Shards of one export carry the same generation config; with ``require_same_config`` a set made with
    other options is refused, so a merge cannot silently mix two different exports. Sample indices must not
    overlap. Returns the new set's manifest.
    """
    out_path = Path(out)
    paths = [Path(p) for p in inputs]
    if not paths:
        raise DataError(out_path, "nothing to merge: give at least one input set")
    if out_path.exists():
        raise DataError(out_path, "already exists; choose another name for the merged set")
    input_attrs = []
    for path in paths:
        if not path.is_file():
            raise DataError(path, "input set not found")
        with h5py.File(path, "r") as file:
            check_schema(file, path)
            input_attrs.append(read_root_attrs(file))
    if require_same_config:
        first = input_attrs[0]["configs"]
        for path, attrs in zip(paths[1:], input_attrs[1:], strict=True):
            if attrs["configs"] != first:
                raise DataError(
                    path,
                    f"made with other export options than {paths[0].name}; merge sets of one export only, "
                    "or pass --any-config to mix them on purpose",
                )
    configs: list[Any] = []
    box_names: list[str] = []
    global_names: list[str] = []
    for attrs in input_attrs:
        configs.extend(c for c in attrs["configs"] if c not in configs)
        box_names.extend(attrs["box_label_names"])
        global_names.extend(attrs["global_label_names"])
    filters = list(dict.fromkeys(str(a["filter"]) for a in input_attrs))
    now = utc_now()
    attrs: dict[str, Any] = {
        "export_id": str(uuid.uuid4()),
        "created_utc": now,
        "updated_utc": now,
        "app_version": _app_version(),
        "filter": " | ".join(filters),
        "test_split_sources_allowed": any(bool(a["test_split_sources_allowed"]) for a in input_attrs),
        "configs": configs,
        "box_label_names": box_names,
        "global_label_names": global_names,
        "merged_from": [{"file": p.name, "export_id": a["export_id"]} for p, a in zip(paths, input_attrs, strict=True)],
    }
    partial = partial_path(out_path)
    resume = "the input sets are untouched: free space and run the same merge again"
    with _assembling(partial, out_path, paths, resume):
        assemble(partial, paths, attrs, label_path=out_path, progress=progress)
    os.replace(partial, out_path)
    return write_manifest(out_path)


@contextmanager
def _assembling(partial: Path, target: Path, inputs: Sequence[Path], resume: str) -> Iterator[None]:
    """Room for ``partial``, on its way to ``target`` (the inputs' bytes: compressed chunks are copied as they
    are), checked first; on any failure the partial file is removed, HDF5's objects of the failed file are
    let go quietly (they report their own write errors as they die), and a full disk becomes one
    DiskFullError line about ``target``."""
    needed = sum(path.stat().st_size for path in inputs) + ASSEMBLY_OVERHEAD
    require_space(target, needed, resume=resume)

    def cleanup(exc: BaseException) -> None:
        _release_quietly(exc)
        partial.unlink(missing_ok=True)

    with full_disk_as_error(target, needed, resume=resume, cleanup=cleanup):
        yield
        _fsync(partial)


def _release_quietly(exc: BaseException) -> None:
    previous = sys.unraisablehook
    sys.unraisablehook = lambda unraisable: None  # h5py's "Exception ignored in ObjectID.__dealloc__" noise
    try:
        cause: BaseException | None = exc
        while cause is not None:
            traceback.clear_frames(cause.__traceback__)
            cause = cause.__cause__ or cause.__context__
        gc.collect()
    finally:
        sys.unraisablehook = previous
