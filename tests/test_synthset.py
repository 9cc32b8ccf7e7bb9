"""Synthetic-set writer, reader, PyTorch dataset, merge, COCO export and safeguards, on hand-built candidates."""

from __future__ import annotations

import csv
import inspect
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import MISSING, fields, replace
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from PIL import Image
from pycocotools.coco import COCO
from torch.utils.data import DataLoader

from linop_core.dicom import VoiWindow
from linop_core.errors import DataError
from linop_core.synthesis import Candidate
from linop_core.synthset import (
    Review,
    SourceInfo,
    SynthSample,
    SynthSet,
    SynthSetDataset,
    SynthSetWriter,
    collate_samples,
    export_coco,
    manifest_path,
    merge_sets,
    spool_path,
    verify_manifest,
)

CONFIG = {"engine": "test", "seed": 3}


def make_sample(
    index: int,
    *,
    shape: tuple[int, int] = (64, 48),
    split: str = "training",
    dataset: str = "mammo",
    dtype: type = np.uint16,
    decision: str = "pending",
) -> SynthSample:
    """A source image with a feathered, changed rectangle: what a real inpainting candidate looks like."""
    rng = np.random.default_rng(index)
    height, width = shape
    source = rng.integers(0, 4096, size=shape).astype(dtype)
    y0, x0 = int(rng.integers(0, height // 2)), int(rng.integers(0, width // 2))
    y1, x1 = y0 + height // 3, x0 + width // 3
    generated = np.zeros(shape, dtype=np.float32)
    generated[y0:y1, x0:x1] = 1.0
    generated[y0, x0:x1] = 0.5  # a feathered edge
    fake = rng.integers(0, 4096, size=shape).astype(np.float32)
    image = source.copy()
    blend = generated > 0
    image[blend] = np.round(generated[blend] * fake[blend] + (1 - generated[blend]) * source[blend]).astype(dtype)
    labels = ("Mass",) if dataset == "mammo" else ("Pleural effusion",)
    cand = Candidate(
        task="inpaint" if dataset == "mammo" else "outpaint",
        image=image,
        generated=generated,
        boxes=((float(x0), float(y0), float(x1), float(y1)),),
        box_labels=labels,
        global_labels=() if dataset == "mammo" else ("Pleural effusion", "Pneumonia"),
        seed=1000 + index,
        crop_origin=(y0, x0),
        crop_size=(y1 - y0, x1 - x0),
        scale=0.5,
        feather_px=2.0,
        window=VoiWindow(2048.0, 4096.0, "test window"),
        window_function="LINEAR",
        engine="biharmonic",
        model_name=None,
        checkpoint_sha256=None,
    )
    source_info = SourceInfo(
        dataset=dataset,
        image_id=f"img{index:04d}",
        study_id=f"study{index // 4:04d}",
        split=split,
        laterality="L",
        view="CC",
        pixel_spacing_mm=(0.1, 0.1),
    )
    review = Review(decision=decision, reviewer="reader-7" if decision != "pending" else "")
    return SynthSample(index=index, candidate=cand, source_pixels=source, source=source_info, review=review)


def write_set(path: Path, units: list[int], *, per_unit: int = 2, **kwargs: object) -> dict:
    writer = SynthSetWriter(path, config=CONFIG, **kwargs)
    for unit in units:
        writer.commit(unit, [make_sample(unit * per_unit + k, shape=(40 + 8 * k, 48)) for k in range(per_unit)])
    return writer.finish()


def test_round_trip_arrays_provenance_and_manifest(tmp_path: Path) -> None:
    path = tmp_path / "set.h5"
    samples = [make_sample(0), make_sample(1, shape=(1100, 700)), make_sample(2, dataset="cxr", decision="approved")]
    writer = SynthSetWriter(path, config=CONFIG, chunk_limit=1 << 20)
    writer.commit(0, samples[:2])
    writer.commit(1, samples[2:])
    manifest = writer.finish()
    assert not spool_path(path).exists()
    assert manifest["n_samples"] == 3
    assert manifest["counts"]["box_labels"] == {"Mass": 2, "Pleural effusion": 1}
    assert verify_manifest(path)["sha256"] == manifest["sha256"]
    with SynthSet(path) as synth:
        assert synth.attrs["synthetic"] and synth.attrs["schema"] == "linop-synthset"
        assert synth.attrs["n_samples"] == 3 and synth.attrs["pixel_convention"] == "MONOCHROME2"
        assert synth.meta["index"].tolist() == [0, 1, 2]
        assert synth.meta["synthetic"].all()
        for row, sample in enumerate(samples):
            cand = sample.candidate
            assert np.array_equal(synth.image(row), cand.image) and synth.image(row).dtype == cand.image.dtype
            assert np.array_equal(synth.source(row), sample.source_pixels)
            assert np.array_equal(synth.generated(row), cand.generated)
            rec = synth.record(row)
            assert rec.boxes.tolist() == [list(b) for b in cand.boxes]
            assert rec.box_labels == cand.box_labels and rec.global_labels == cand.global_labels
            assert rec.meta["source_image_id"] == sample.source.image_id
            assert rec.meta["seed"] == cand.seed and rec.meta["crop_origin"] == list(cand.crop_origin)
            assert rec.meta["voi_center"] == 2048.0 and rec.meta["engine"] == "biharmonic"
        assert synth.record(2).decision == "approved" and synth.record(2).meta["reviewer"] == "reader-7"
    with h5py.File(path, "r") as file:
        small, large = file["samples/000000000/image"], file["samples/000000001/image"]
        assert small.chunks == small.shape and small.compression == "gzip" and small.shuffle
        assert large.chunks == (512, 512)  # 1100x700 uint16 is over the 1 MiB limit: tiled, one sample per chunk


def test_dataset_round_trip_with_two_workers(tmp_path: Path) -> None:
    path = tmp_path / "set.h5"
    write_set(path, [0, 1, 2])
    dataset = SynthSetDataset(path)
    loader = DataLoader(dataset, batch_size=2, num_workers=2, collate_fn=collate_samples, shuffle=False)
    items = [item for batch in loader for item in batch]
    assert len(items) == 6
    with SynthSet(path) as synth:
        for row, item in enumerate(items):
            assert item["row"] == row and item["index"] == int(synth.meta["index"][row])
            assert torch.equal(item["image"][0], torch.from_numpy(synth.image(row).astype(np.float32)))
            assert torch.equal(item["mask"], torch.from_numpy(synth.mask(row)))
            assert np.array_equal(item["boxes"].numpy(), synth.boxes(row).astype(np.float32))
            assert item["labels"].tolist() == [1]  # "Mass" is label 0 + offset 1 (0 = background)
    windowed = SynthSetDataset(path, intensity="window")[0]["image"]
    assert float(windowed.min()) >= 0.0 and float(windowed.max()) <= 1.0


def test_dataset_filters_decisions_and_multi_hot(tmp_path: Path) -> None:
    path = tmp_path / "set.h5"
    writer = SynthSetWriter(path, config=CONFIG, global_label_names=("No finding",))
    writer.commit(0, [make_sample(0, dataset="cxr", decision="approved"), make_sample(1, decision="rejected")])
    writer.finish()
    approved = SynthSetDataset(path, decisions=("approved",))
    assert len(approved) == 1
    item = approved[0]
    assert approved.global_label_names == ["No finding", "Pleural effusion", "Pneumonia"]
    assert item["global_labels"].tolist() == [0.0, 1.0, 1.0]


def test_test_split_sources_are_refused_unless_overridden(tmp_path: Path) -> None:
    writer = SynthSetWriter(tmp_path / "a.h5", config=CONFIG)
    with pytest.raises(DataError, match="test split"):
        writer.commit(0, [make_sample(0, split="test")])
    assert writer.done_units == frozenset()
    allowed = SynthSetWriter(tmp_path / "b.h5", config=CONFIG, allow_test_split=True)
    allowed.commit(0, [make_sample(0, split="test")])
    allowed.finish()
    with SynthSet(tmp_path / "b.h5") as synth:
        assert synth.attrs["test_split_sources_allowed"] and synth.meta["source_split"].tolist() == ["test"]


def test_changed_pixel_outside_generated_region_is_refused(tmp_path: Path) -> None:
    sample = make_sample(0)
    image = sample.candidate.image.copy()
    kept = np.argwhere(sample.candidate.generated == 0)[5]
    image[tuple(kept)] ^= 1  # one bit of one untouched pixel
    bad = replace(sample, candidate=replace(sample.candidate, image=image))
    writer = SynthSetWriter(tmp_path / "set.h5", config=CONFIG)
    with pytest.raises(DataError, match="outside the generated region"):
        writer.commit(0, [bad])
    wrong_dtype = replace(sample, candidate=replace(sample.candidate, image=sample.candidate.image.astype(np.int32)))
    with pytest.raises(DataError, match="dtype"):
        writer.commit(0, [wrong_dtype])
    assert not list(spool_path(tmp_path / "set.h5").glob("unit_*"))


def test_existing_set_is_refused_then_appended(tmp_path: Path) -> None:
    path = tmp_path / "set.h5"
    write_set(path, [0, 1])
    with pytest.raises(DataError, match="append"):
        SynthSetWriter(path, config=CONFIG)
    writer = SynthSetWriter(path, config=CONFIG, append=True)
    assert writer.done_units == {0, 1}
    with SynthSet(path) as synth:
        export_id = synth.attrs["export_id"]
    assert writer.next_unit == 2
    writer.commit(2, [make_sample(4)])
    events = ['{"action": "approve", "index": 4}', '{"action": "export"}']
    manifest = writer.finish(audit_events=events)
    assert manifest["n_samples"] == 5
    with SynthSet(path) as synth:
        assert synth.meta["index"].tolist() == [0, 1, 2, 3, 4] and synth.attrs["export_id"] == export_id
        assert synth.audit_events() == events
        assert np.array_equal(synth.image(4), make_sample(4).candidate.image)


def test_resume_needs_same_options_and_finish_is_repeatable(tmp_path: Path) -> None:
    path = tmp_path / "set.h5"
    writer = SynthSetWriter(path, config=CONFIG)
    writer.commit(0, [make_sample(0)])
    writer.commit(3, [make_sample(3)])
    (spool_path(path) / "unit_000000005.h5.tmp").write_bytes(b"half a unit")  # a kill during a commit
    with pytest.raises(DataError, match="config"):
        SynthSetWriter(path, config={**CONFIG, "seed": 4})
    resumed = SynthSetWriter(path, config=CONFIG)
    assert resumed.done_units == {0, 3}
    assert not list(spool_path(path).glob("*.tmp"))
    resumed.commit(1, [make_sample(1)])
    saved = tmp_path / "saved_spool"
    shutil.copytree(spool_path(path), saved)
    resumed.finish()
    # a kill after the rename but before the spool was removed: running finish again changes nothing
    shutil.copytree(saved, spool_path(path))
    again = SynthSetWriter(path, config=CONFIG)
    assert again.done_units == {0, 1, 3}
    assert again.finish()["n_samples"] == 3
    with SynthSet(path) as synth:
        assert synth.meta["index"].tolist() == [0, 1, 3]


def _rows_equal(a: SynthSet, b: SynthSet) -> None:
    assert len(a) == len(b)
    for name in a.meta:
        assert np.array_equal(a.meta[name], b.meta[name], equal_nan=a.meta[name].dtype.kind == "f"), name
    for row in range(len(a)):
        assert np.array_equal(a.image(row), b.image(row))
        assert np.array_equal(a.source(row), b.source(row))
        assert np.array_equal(a.generated(row), b.generated(row))
        assert np.array_equal(a.boxes(row), b.boxes(row))


def test_merge_of_shards_equals_single_set(tmp_path: Path) -> None:
    write_set(tmp_path / "all.h5", list(range(6)))
    write_set(tmp_path / "s0.h5", [0, 2, 4])
    write_set(tmp_path / "s1.h5", [1, 3, 5])
    manifest = merge_sets(tmp_path / "merged.h5", [tmp_path / "s1.h5", tmp_path / "s0.h5"])
    assert manifest["n_samples"] == 12
    with SynthSet(tmp_path / "all.h5") as single, SynthSet(tmp_path / "merged.h5") as merged:
        _rows_equal(single, merged)
        assert merged.box_label_names == single.box_label_names
        assert [m["file"] for m in merged.attrs["merged_from"]] == ["s1.h5", "s0.h5"]
    with pytest.raises(DataError, match="overlap"):
        merge_sets(tmp_path / "bad.h5", [tmp_path / "s0.h5", tmp_path / "all.h5"])
    assert not (tmp_path / "bad.h5").exists()
    other = tmp_path / "other.h5"
    writer = SynthSetWriter(other, config={"engine": "other"})
    writer.commit(9, [make_sample(99)])
    writer.finish()
    with pytest.raises(DataError, match="other export options"):
        merge_sets(tmp_path / "mixed.h5", [tmp_path / "s0.h5", other])


def test_coco_and_csv_export(tmp_path: Path) -> None:
    path = tmp_path / "set.h5"
    writer = SynthSetWriter(path, config=CONFIG)
    writer.commit(0, [make_sample(0), make_sample(1, decision="rejected")])
    writer.commit(1, [make_sample(2, dataset="cxr")])
    writer.finish()
    result = export_coco(path, tmp_path / "coco")
    coco = COCO(str(result.coco_json))
    assert sorted(coco.getImgIds()) == [0, 1, 2] and result.n_annotations == 3
    mass = coco.getCatIds(catNms=["Mass"])
    assert len(coco.getAnnIds(catIds=mass)) == 2
    with SynthSet(path) as synth:
        for row in range(3):
            info = coco.loadImgs([int(synth.meta["index"][row])])[0]
            png = np.array(Image.open(tmp_path / "coco" / info["file_name"]))
            assert png.dtype == np.uint16 and np.array_equal(png, synth.image(row))
            mask = np.array(Image.open(tmp_path / "coco" / info["mask_file_name"]))
            assert np.array_equal(mask > 0, synth.mask(row))
            x0, y0, x1, y1 = synth.boxes(row)[0]
            assert coco.loadAnns(coco.getAnnIds(imgIds=[info["id"]]))[0]["bbox"] == [x0, y0, x1 - x0, y1 - y0]
            assert info["synthetic"] is True and info["source_image_id"] == synth.meta["source_image_id"][row]
    with (tmp_path / "coco" / "finding_annotations.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert [r["finding_categories"] for r in rows] == ["['Mass']", "['Mass']"]
    assert {r["synthetic"] for r in rows} == {"1"} and rows[0]["source_image_id"] == "img0000"
    with (tmp_path / "coco" / "image_labels.csv").open() as handle:
        labels = list(csv.DictReader(handle))
    assert labels[0]["Pneumonia"] == "1"
    approved_only = export_coco(path, tmp_path / "none", decisions=("approved",))
    assert approved_only.n_images == 0


def test_manifest_detects_a_changed_file(tmp_path: Path) -> None:
    path = tmp_path / "set.h5"
    write_set(path, [0])
    data = json.loads(manifest_path(path).read_text())
    assert data["sha256"] and data["synthetic"] is True
    with path.open("r+b") as handle:
        handle.seek(-1, os.SEEK_END)
        last = handle.read(1)
        handle.seek(-1, os.SEEK_END)
        handle.write(bytes([last[0] ^ 0xFF]))
    with pytest.raises(DataError, match="SHA-256"):
        verify_manifest(path)


def _kill_script(path: Path) -> str:
    """A writer loop that imports no torch (it stands in for the candidates), so it starts fast when killed."""
    lines = [
        "from __future__ import annotations",
        "import numpy as np",
        "from dataclasses import dataclass",
        "from linop_core.dicom import VoiWindow",
        "from linop_core.synthset import Review, SourceInfo, SynthSample, SynthSetWriter",
        "@dataclass(frozen=True)",
        "class Candidate:",
        *(f"    {f.name}: object" for f in fields(Candidate) if f.default is MISSING and f.default_factory is MISSING),
        "    engine_settings: object = None  # the one defaulted field a set's row reads",
        f"CONFIG = {CONFIG!r}",
        inspect.getsource(make_sample),
        f"writer = SynthSetWriter({str(path)!r}, config=CONFIG)",
        "for unit in range(24):",
        "    if unit not in writer.done_units:",
        "        writer.commit(unit, [make_sample(2 * unit + k, shape=(200, 150)) for k in range(2)])",
        "writer.finish()",
    ]
    return "\n".join(lines)


@pytest.mark.slow
def test_writer_killed_mid_way_resumes_without_duplicates_or_gaps(tmp_path: Path) -> None:
    path = tmp_path / "set.h5"
    script = _kill_script(path)
    proc = subprocess.Popen([sys.executable, "-c", script])
    deadline = time.monotonic() + 60
    while len(list(spool_path(path).glob("unit_*.h5"))) < 4 and proc.poll() is None:
        assert time.monotonic() < deadline, "the export did not commit 4 units within 60 s"
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    assert proc.wait() == -signal.SIGKILL, "the writer ended before it was killed"
    assert not path.exists()
    assert subprocess.run([sys.executable, "-c", script], check=False).returncode == 0
    assert not spool_path(path).exists()
    with SynthSet(path) as synth:
        assert synth.meta["index"].tolist() == list(range(48))
        assert synth.meta["unit"].tolist() == [i // 2 for i in range(48)]
        for row in (0, 21, 47):
            assert np.array_equal(synth.image(row), make_sample(row, shape=(200, 150)).candidate.image)
    verify_manifest(path)
