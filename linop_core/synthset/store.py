"""The HDF5 file format of a synthetic set: writing sample groups and the ``/meta`` table, and assembling sets.

Layout (schema ``linop-synthset`` 1.0)::

    /                       attrs: schema, schema_version, export_id, created_utc, updated_utc, app_version,
                            synthetic=True, n_samples, pixel_convention="MONOCHROME2", intensity, layout,
                            models (JSON), source_datasets (JSON), filter, configs (JSON list),
                            box_label_names (JSON), global_label_names (JSON), test_split_sources_allowed,
                            merged_from (JSON)
    /samples/<index:09d>/   one group per sample, at native resolution (sizes vary between samples)
        image               (H, W) source dtype            synthetic image, full source size
        source_patch        (h, w) source dtype            source pixels under the generated rectangle
        generated_patch     (h, w) float32 in [0, 1]       blend weight there (0 = source kept bit-exact)
        boxes               (K, 4) float64                 x0, y0, x1, y1, half-open, image coordinates
    /meta/<column>          (N,) or (N, 2), one row per sample, sorted by index (see records.META_COLUMNS)
    /audit/events           optional, vlen UTF-8 JSON records (e.g. the GUI's review log), oldest first

Every chunk belongs to exactly one sample: a sample's array is one chunk when it fits the chunk limit
(4 MiB by default: a 1448x1448 uint16 image) and 512x512 tiles otherwise, all gzip + shuffle (level 4 by
default; level 1 writes about 20 % faster for the same size on phantom mammograms), so
reading one sample decompresses only that sample. The source image is ``image`` with ``source_patch`` put
back at ``patch_origin``: everything outside that rectangle is bit-exact by construction (checked before
writing), so storing it twice would only double the file.
"""

from __future__ import annotations

import io
import json
import shutil
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from linop_core.errors import DataError
from linop_core.synthset.records import (
    ADDED_COLUMNS,
    INTENSITY,
    LAYOUT,
    META_COLUMNS,
    PIXEL_CONVENTION,
    SCHEMA,
    SCHEMA_VERSION,
    SynthSample,
    columns_from_rows,
    concat_columns,
    generated_patch,
    meta_row,
    take_rows,
)

Progress = Callable[[int, int], None]

DEFAULT_CHUNK_LIMIT = 4 * 1024 * 1024
TILE = 512
GZIP_LEVEL = 4
_STR = h5py.string_dtype("utf-8")


def group_name(index: int) -> str:
    return f"{int(index):09d}"


def _chunks(shape: tuple[int, ...], itemsize: int, limit: int) -> tuple[int, ...] | None:
    if 0 in shape:
        return None
    if int(np.prod(shape)) * itemsize <= limit:
        return shape
    return (min(TILE, shape[0]), min(TILE, shape[1]))


def _put_array(group: h5py.Group, name: str, data: np.ndarray, limit: int, level: int) -> None:
    chunks = _chunks(data.shape, data.dtype.itemsize, limit)
    if chunks is None:
        group.create_dataset(name, data=data)
        return
    group.create_dataset(name, data=data, chunks=chunks, compression="gzip", compression_opts=level, shuffle=True)


def write_sample_group(
    samples_group: h5py.Group, sample: SynthSample, chunk_limit: int, gzip_level: int = GZIP_LEVEL
) -> None:
    """Write one sample's arrays under ``samples_group/<index>`` (see the module docstring)."""
    cand = sample.candidate
    group = samples_group.create_group(group_name(sample.index))
    _put_array(group, "image", np.ascontiguousarray(cand.image), chunk_limit, gzip_level)
    (y0, x0), (h, w) = generated_patch(cand.generated)
    patch = np.ascontiguousarray(sample.source_pixels[y0 : y0 + h, x0 : x0 + w])
    _put_array(group, "source_patch", patch, chunk_limit, gzip_level)
    weights = np.ascontiguousarray(cand.generated[y0 : y0 + h, x0 : x0 + w], dtype=np.float32)
    _put_array(group, "generated_patch", weights, chunk_limit, gzip_level)
    boxes = np.asarray(cand.boxes, dtype=np.float64).reshape(len(cand.boxes), 4)
    group.create_dataset("boxes", data=boxes)


def write_meta(file: h5py.File, columns: Mapping[str, np.ndarray]) -> None:
    """(Re)write the whole ``/meta`` table."""
    if "meta" in file:
        del file["meta"]
    meta = file.create_group("meta")
    for name, (dtype, _width) in META_COLUMNS.items():
        values = columns[name]
        if dtype == "str":
            meta.create_dataset(name, data=np.asarray(values, dtype=object), dtype=_STR)
        else:
            meta.create_dataset(name, data=values)


def read_meta(file: h5py.File, path: Path) -> dict[str, np.ndarray]:
    if "meta" not in file:
        raise DataError(path, "no /meta table: not a LINOP synthetic set, or an unfinished one")
    meta = file["meta"]
    columns: dict[str, np.ndarray] = {}
    n_rows = meta["index"].shape[0] if "index" in meta else 0
    for name, (dtype, _width) in META_COLUMNS.items():
        if name not in meta and name in ADDED_COLUMNS:  # a set from before the column existed: "unknown"
            columns[name] = columns_from_rows([{name: ADDED_COLUMNS[name]}] * n_rows, [name])[name]
            continue
        if name not in meta:
            raise DataError(path, f"/meta/{name} is missing; the file was written by another schema version")
        dataset = meta[name]
        if dtype == "str":
            values = dataset.asstr()[()]
            array = np.empty(len(values), dtype=object)
            array[:] = list(values)
            columns[name] = array
        else:
            columns[name] = dataset[()]
    return columns


def check_schema(file: h5py.File, path: Path) -> None:
    schema = file.attrs.get("schema")
    if schema != SCHEMA:
        raise DataError(path, f"schema is {schema!r}, not {SCHEMA!r}: not a LINOP synthetic set")
    version = str(file.attrs.get("schema_version", ""))
    if version.split(".")[0] != SCHEMA_VERSION.split(".")[0]:
        raise DataError(path, f"schema version {version} cannot be read by this LINOP (reads {SCHEMA_VERSION})")


def _ordered_names(first: Sequence[str], columns: Mapping[str, np.ndarray], column: str) -> list[str]:
    names = list(dict.fromkeys(first))
    seen = set(names)
    for text in columns[column]:
        for name in json.loads(text):
            if name not in seen:
                seen.add(name)
                names.append(name)
    return names


def _models(columns: Mapping[str, np.ndarray]) -> list[dict[str, str]]:
    triples = dict.fromkeys(zip(columns["engine"], columns["model_name"], columns["checkpoint_sha256"], strict=True))
    return [{"engine": e, "model_name": m, "checkpoint_sha256": c} for e, m, c in triples]


def _source_datasets(columns: Mapping[str, np.ndarray]) -> list[dict[str, Any]]:
    out = []
    for dataset in dict.fromkeys(columns["dataset"]):
        rows = columns["dataset"] == dataset
        out.append(
            {
                "dataset": str(dataset),
                "n_samples": int(rows.sum()),
                "n_source_images": len(set(columns["source_image_id"][rows])),
                "source_splits": dict(Counter(str(s) for s in columns["source_split"][rows])),
            }
        )
    return out


def set_root_attrs(file: h5py.File, columns: Mapping[str, np.ndarray], attrs: Mapping[str, Any]) -> None:
    """Write the root attributes; the summaries (models, source datasets, label names) come from the table."""
    file.attrs["schema"] = SCHEMA
    file.attrs["schema_version"] = SCHEMA_VERSION
    file.attrs["synthetic"] = True
    file.attrs["pixel_convention"] = PIXEL_CONVENTION
    file.attrs["intensity"] = INTENSITY
    file.attrs["layout"] = LAYOUT
    for key in ("export_id", "created_utc", "updated_utc", "app_version", "filter"):
        file.attrs[key] = str(attrs[key])
    file.attrs["test_split_sources_allowed"] = bool(attrs["test_split_sources_allowed"])
    file.attrs["configs"] = json.dumps(attrs["configs"], sort_keys=True)
    file.attrs["merged_from"] = json.dumps(attrs.get("merged_from", []))
    file.attrs["n_samples"] = len(columns["index"])
    file.attrs["models"] = json.dumps(_models(columns))
    file.attrs["source_datasets"] = json.dumps(_source_datasets(columns))
    file.attrs["box_label_names"] = json.dumps(_ordered_names(attrs.get("box_label_names", ()), columns, "box_labels"))
    file.attrs["global_label_names"] = json.dumps(
        _ordered_names(attrs.get("global_label_names", ()), columns, "global_labels")
    )


def read_root_attrs(file: h5py.File) -> dict[str, Any]:
    attrs: dict[str, Any] = {}
    for key, value in file.attrs.items():
        attrs[key] = value.decode() if isinstance(value, bytes) else value
    for key in ("configs", "merged_from", "models", "source_datasets", "box_label_names", "global_label_names"):
        if key in attrs:
            attrs[key] = json.loads(attrs[key])
    return attrs


def read_audit(file: h5py.File) -> list[str]:
    if "audit/events" not in file:
        return []
    return [str(v) for v in file["audit/events"].asstr()[()]]


def append_audit(file: h5py.File, events: Sequence[str]) -> None:
    """Append JSON event records to ``/audit/events`` (one string per event, oldest first)."""
    if not events:
        return
    if "audit/events" not in file:
        file.require_group("audit").create_dataset(
            "events", shape=(0,), maxshape=(None,), chunks=(256,), dtype=_STR, compression="gzip"
        )
    dataset = file["audit/events"]
    start = dataset.shape[0]
    dataset.resize((start + len(events),))
    dataset[start:] = np.asarray(list(events), dtype=object)


def unit_file_bytes(
    unit: int,
    samples: Sequence[SynthSample],
    attrs: Mapping[str, Any],
    chunk_limit: int,
    gzip_level: int = GZIP_LEVEL,
    events: Sequence[str] = (),
) -> bytes:
    """The samples of one work unit as a small complete set, built in memory (the resumable spool's building
    block): its exact size is known before a byte goes to disk, and a full disk fails a plain file write,
    not HDF5 halfway through its metadata."""
    buffer = io.BytesIO()
    write_unit_file(buffer, unit, samples, attrs, chunk_limit, gzip_level, events)
    return buffer.getvalue()


def write_unit_file(
    path: Path | io.BytesIO,
    unit: int,
    samples: Sequence[SynthSample],
    attrs: Mapping[str, Any],
    chunk_limit: int,
    gzip_level: int = GZIP_LEVEL,
    events: Sequence[str] = (),
) -> None:
    """Write the samples of one work unit as a small complete set to ``path`` (a file name or a buffer)."""
    rows = [meta_row(sample, unit) for sample in samples]
    columns = columns_from_rows(rows)
    with h5py.File(path, "w") as file:
        group = file.create_group("samples")
        for sample in samples:
            write_sample_group(group, sample, chunk_limit, gzip_level)
        write_meta(file, columns)
        set_root_attrs(file, columns, attrs)
        append_audit(file, events)


def assemble(
    partial: Path,
    inputs: Iterable[Path],
    attrs: Mapping[str, Any],
    *,
    base: Path | None = None,
    label_path: Path,
    progress: Progress | None = None,
    n_inputs: int | None = None,
    audit_events: Sequence[str] = (),
) -> dict[str, np.ndarray]:
    """Build ``partial`` from ``base`` (copied byte for byte, then appended to) and the samples of ``inputs``.

    Samples are copied group by group (HDF5 object copy: compressed chunks are not recompressed), so memory
    stays at one sample whatever the set size. An index already in ``base`` is skipped (a finish that was
    interrupted after its rename); an index found twice among ``inputs`` is an error. The audit events of
    ``base`` and ``inputs`` are kept, then ``audit_events`` appended. Returns the table.
    """
    inputs = list(inputs)
    total = n_inputs if n_inputs is not None else len(inputs)
    if base is not None:
        shutil.copyfile(base, partial)
        file = h5py.File(partial, "r+")
    else:
        file = h5py.File(partial, "w")
    try:
        if base is not None:
            check_schema(file, base)
            parts = [read_meta(file, base)]
            samples = file["samples"]
        else:
            parts = []
            samples = file.create_group("samples")
        base_indices = set(parts[0]["index"].tolist()) if parts else set()
        seen: dict[int, Path] = {}
        for done, source_path in enumerate(inputs, start=1):
            with h5py.File(source_path, "r") as source:
                check_schema(source, source_path)
                columns = read_meta(source, source_path)
                keep = []
                for row, index in enumerate(columns["index"].tolist()):
                    if index in base_indices:
                        continue
                    if index in seen:
                        raise DataError(
                            label_path,
                            f"sample index {index} is in both {seen[index]} and {source_path}; shards must not overlap",
                        )
                    seen[index] = source_path
                    source.copy(source["samples"][group_name(index)], samples, name=group_name(index))
                    keep.append(row)
                parts.append(take_rows(columns, np.asarray(keep, dtype=np.int64)))
                append_audit(file, read_audit(source))
            if progress is not None:
                progress(done, total)
        table = concat_columns(parts)
        table = take_rows(table, np.argsort(table["index"], kind="stable"))
        write_meta(file, table)
        set_root_attrs(file, table, attrs)
        recorded = set(read_audit(file))  # a repeated finish must not log its events twice
        append_audit(file, [event for event in audit_events if event not in recorded])
    finally:
        file.close()
    return table
