"""The catalog behind the browser: VinDr roots, plain folders with bad files, filters, hanging slots."""

from __future__ import annotations

from pathlib import Path

import pytest

from linop_core.catalog import HANGING_SLOTS, Catalog, Filters
from linop_core.errors import DataError


def test_vindr_mammo_root_lists_every_image_in_hanging_order(mammo_root: Path) -> None:
    catalog = Catalog.open(mammo_root)
    assert catalog.kind == "mammo" and len(catalog) == 8
    assert all(e.ok for e in catalog.entries)
    first_study = [e for e in catalog.entries if e.study_id == catalog.entries[0].study_id]
    assert [(e.laterality, e.view) for e in first_study] == list(HANGING_SLOTS)
    assert catalog.choices("split") == ["test", "training"]
    assert "Mass" in catalog.choices("category")


def test_filters_combine_and_match_only_what_they_say(mammo_root: Path) -> None:
    catalog = Catalog.open(mammo_root)
    masses = catalog.filtered(Filters(category="Mass"))
    assert masses and all("Mass" in e.categories for e in masses)
    assert all(e.findings for e in masses)
    left_mlo = catalog.filtered(Filters(laterality="L", view="MLO"))
    assert len(left_mlo) == 2 and all((e.laterality, e.view) == ("L", "MLO") for e in left_mlo)
    test_split = catalog.filtered(Filters(split="test"))
    assert len(test_split) == 4 and all(e.split == "test" for e in test_split)
    study = catalog.entries[5].study_id
    assert {e.study_id for e in catalog.filtered(Filters(text=study[:6].upper()))} == {study}
    assert catalog.filtered(Filters(split="test", breast_birads="BI-RADS 0")) == []


def test_hanging_slots_hold_the_four_views_of_the_study(mammo_root: Path) -> None:
    catalog = Catalog.open(mammo_root)
    entry = catalog.entries[2]
    slots = catalog.hanging(entry)
    assert set(slots) == set(HANGING_SLOTS)
    for (lat, view), e in slots.items():
        assert e is not None and (e.laterality, e.view, e.study_id) == (lat, view, entry.study_id)
    assert catalog.has_hanging(entry)


def test_folder_with_bad_files_lists_them_as_errors_and_keeps_the_rest(dicom_folder: Path) -> None:
    catalog = Catalog.open(dicom_folder)
    assert catalog.kind == "folder" and len(catalog) == 4
    good = [e for e in catalog.entries if e.ok]
    bad = {e.path.name: e.error for e in catalog.entries if not e.ok}
    # Only headers are read while listing: a file cut inside its pixel data lists fine and fails on display.
    assert sorted(e.path.name for e in good) == ["good0.dcm", "good1.dcm", "truncated.dcm"]
    assert set(bad) == {"notes.dcm"}
    assert all(name in message and "\n" not in message for name, message in bad.items())
    assert len(catalog.problems) == 1
    assert catalog.entries[-1].ok is False  # errors sort last
    assert Filters(show_errors=False).matches(catalog.entries[-1]) is False


def test_single_file_opens_its_folder_and_remembers_the_file(dicom_folder: Path) -> None:
    catalog = Catalog.open(dicom_folder / "good1.dcm")
    assert catalog.initial_path == (dicom_folder / "good1.dcm").resolve()
    assert catalog.find_path(dicom_folder / "good1.dcm") is not None


def test_nothing_to_open_raises_data_error(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="no DICOM files"):
        Catalog.open(tmp_path)
    with pytest.raises(DataError, match="does not exist"):
        Catalog.open(tmp_path / "missing")


def test_each_image_of_a_plain_folder_gets_the_task_its_header_says(dicom_folder: Path, tmp_path: Path,
                                                                   write_dicom) -> None:
    import numpy as np

    from linop_core.catalog import image_label, task_for_label
    from linop_core.vocab import Task

    def task_for_image(modality, body_part=None, view=None):
        return task_for_label(image_label(modality, body_part, None, view))

    assert task_for_image("MG") is Task.INPAINT
    assert task_for_image("DX", "CHEST") is Task.OUTPAINT and task_for_image("CR", "thorax") is Task.OUTPAINT
    assert task_for_image("CR", None, "PA") is Task.OUTPAINT  # no body part: a chest view decides
    assert task_for_image("DX", "HAND", "PA") is None and task_for_image("CT", "CHEST") is None
    assert task_for_image(None) is None

    mammo = Catalog.open(dicom_folder)  # phantom mammograms copied into a plain folder: MG
    assert mammo.kind == "folder"
    tasks = {e.path.name: mammo.task_of(e) for e in mammo.entries}
    assert tasks["good0.dcm"] is Task.INPAINT and tasks["notes.dcm"] is None

    pixels = np.full((64, 48), 900, np.uint16)
    folder = tmp_path / "mixed"
    folder.mkdir()
    write_dicom(pixels, "mixed/chest.dcm", Modality="DX", BodyPartExamined="CHEST", ViewPosition="PA")
    write_dicom(pixels, "mixed/knee.dcm", Modality="CR", BodyPartExamined="KNEE", ViewPosition="AP")
    catalog = Catalog.open(folder)
    by_name = {e.path.name: e for e in catalog.entries}
    assert by_name["chest.dcm"].body_part == "CHEST"
    assert catalog.task_of(by_name["chest.dcm"]) is Task.OUTPAINT and catalog.task_of(by_name["knee.dcm"]) is None


def test_a_vindr_root_gives_every_image_its_task(mammo_root: Path) -> None:
    from linop_core.vocab import Task

    catalog = Catalog.open(mammo_root)
    assert {catalog.task_of(e) for e in catalog.entries} == {Task.INPAINT}
