"""The sidecar manifest of a finished set: its SHA-256, size and counts, written atomically next to it."""

from __future__ import annotations

import json
import os
from collections import Counter
from pathlib import Path
from typing import Any

import h5py

from linop_core.diskspace import full_disk_as_error, require_space
from linop_core.errors import DataError
from linop_core.fileio import atomic_write_text
from linop_core.hashing import sha256_file
from linop_core.synthset.records import DECISION_NAMES
from linop_core.synthset.store import check_schema, read_meta, read_root_attrs


def manifest_path(set_path: str | os.PathLike[str]) -> Path:
    path = Path(set_path)
    return path.with_name(path.name + ".manifest.json")


def build_manifest(set_path: str | os.PathLike[str]) -> dict[str, Any]:
    """Counts and checksum of a finished set (what the dataset card needs)."""
    path = Path(set_path)
    with h5py.File(path, "r") as file:
        check_schema(file, path)
        attrs = read_root_attrs(file)
        table = read_meta(file, path)
    box_counts: Counter[str] = Counter()
    global_counts: Counter[str] = Counter()
    for text in table["box_labels"]:
        box_counts.update(json.loads(text))
    for text in table["global_labels"]:
        global_counts.update(json.loads(text))
    return {
        "file": path.name,
        "sha256": sha256_file(path),
        "size_bytes": path.stat().st_size,
        "schema": attrs["schema"],
        "schema_version": attrs["schema_version"],
        "export_id": attrs["export_id"],
        "created_utc": attrs["created_utc"],
        "updated_utc": attrs["updated_utc"],
        "app_version": attrs["app_version"],
        "synthetic": True,
        "filter": attrs["filter"],
        "n_samples": len(table["index"]),
        "n_source_images": len(set(table["source_image_id"])),
        "counts": {
            "task": dict(Counter(table["task"])),
            "dataset": dict(Counter(table["dataset"])),
            "engine": dict(Counter(table["engine"])),
            "source_split": dict(Counter(table["source_split"])),
            "decision": dict(Counter(DECISION_NAMES[int(code)] for code in table["decision"])),
            "box_labels": dict(box_counts),
            "global_labels": dict(global_counts),
            "boxes": int(table["n_boxes"].sum()),
        },
        "models": attrs["models"],
        "source_datasets": attrs["source_datasets"],
    }


def write_manifest(set_path: str | os.PathLike[str]) -> dict[str, Any]:
    manifest = build_manifest(set_path)
    text = json.dumps(manifest, indent=2, sort_keys=True) + "\n"
    sidecar = manifest_path(set_path)
    resume = f"the set is complete: free space and run `linop-export verify {Path(set_path).name} --rewrite`"
    require_space(sidecar, len(text), resume=resume)
    with full_disk_as_error(sidecar, len(text), resume=resume):
        atomic_write_text(sidecar, text)
    return manifest


def verify_manifest(set_path: str | os.PathLike[str]) -> dict[str, Any]:
    """Check a set against its manifest (checksum and sample count); returns the manifest."""
    path = Path(set_path)
    sidecar = manifest_path(path)
    try:
        manifest = json.loads(sidecar.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DataError(sidecar, "manifest missing; recreate it with linop-export verify --rewrite") from None
    except json.JSONDecodeError as exc:
        raise DataError(sidecar, f"not valid JSON ({exc.msg})", exc.lineno) from exc
    actual = sha256_file(path)
    if actual != manifest.get("sha256"):
        raise DataError(path, f"SHA-256 {actual[:12]}… does not match the manifest's; the file changed or is damaged")
    return manifest
