"""`linop-study create` on phantom VinDr roots: determinism, matching, blinding of the case view, moved/changed
inputs and bad options."""

from __future__ import annotations

import dataclasses
import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
from study_inputs import phantom_inputs

from linop_core.cli.study import main
from linop_core.dicom import read_dicom
from linop_core.errors import DataError, LinopError
from linop_core.study import (
    CaseView,
    DisplayMode,
    ReadingSession,
    Study,
    StudyOptions,
    Truth,
    check_inputs,
    create_study,
)
from linop_core.study.matching import box_side
from linop_core.study.model import SourceKind
from linop_core.study.views import CaseLoader
from linop_core.synthset import SynthSet
from linop_core.vindr import open_dataset


def options(**changes: object) -> StudyOptions:
    base = StudyOptions(
        cases=10, synthetic_share=0.5, mode=DisplayMode.CROP, crop_size=256, seed=3,
        decisions=("approved", "pending"), size_tolerance=3.0, match_density=False,
    )  # fmt: skip
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def mammo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return phantom_inputs(tmp_path_factory, "mammo")


@pytest.fixture(scope="module")
def cxr(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return phantom_inputs(tmp_path_factory, "cxr")


def without_time(study: Study) -> dict[str, object]:
    data = study.to_json()
    data.pop("created_utc")
    return data


def test_create_is_deterministic_in_the_seed(mammo: tuple[Path, Path]) -> None:
    root, set_path = mammo
    first = create_study([set_path], root, options())
    again = create_study([set_path], root, options())
    other = create_study([set_path], root, options(seed=4))
    assert without_time(first) == without_time(again)
    assert [c.case_id for c in first.cases] != [c.case_id for c in other.cases]
    assert len({c.case_id for c in first.cases}) == len(first.cases)


def test_real_cases_are_matched_in_size_and_never_show_a_source_image(mammo: tuple[Path, Path]) -> None:
    root, set_path = mammo
    study = create_study([set_path], root, options(cases=10, size_tolerance=3.0))
    sel = study.selection
    truths = [c.truth for c in study.cases]
    assert truths.count(Truth.SYNTHETIC) == sel.synthetic == 5
    assert truths.count(Truth.REAL) == sel.real == sel.real_requested - len(sel.unmatched)
    assert sel.real >= 3, "the phantom root has six images with masses, none of them a synthetic source"
    dataset = open_dataset(root)
    with SynthSet(set_path) as synth:
        sources = set(synth.meta["source_image_id"].tolist())
        for case in study.cases:
            if case.truth is Truth.SYNTHETIC:
                row = synth.row_of(case.source.sample_index)
                assert np.allclose(synth.boxes(row), case.lesion_boxes, atol=1e-3)
                assert case.lesion_labels == ("Mass",)
                continue
            target = study.case(case.matched_to)
            assert target.truth is Truth.SYNTHETIC
            ratio = box_side(case.lesion_boxes[0]) / box_side(target.lesion_boxes[0])
            assert 1 / 3.0 <= ratio <= 3.0
            image_id = Path(case.source.path).stem
            assert image_id not in sources
            assert "Mass" in dataset.by_id(image_id).labels
    real_images = [c.source.path for c in study.cases if c.truth is Truth.REAL]
    assert len(set(real_images)) == len(real_images), "each real image is used once"


def test_density_matching_and_unmatched_cases_are_reported(mammo: tuple[Path, Path], tmp_path: Path,
                                                           capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    root, set_path = mammo
    dataset = open_dataset(root)
    study = create_study([set_path], root, options(match_density=True, size_tolerance=3.0))
    with SynthSet(set_path) as synth:
        for case in study.cases:
            if case.truth is Truth.REAL:
                target = study.case(case.matched_to)
                source_id = str(synth.meta["source_image_id"][synth.row_of(target.source.sample_index)])
                real_density = dataset.by_id(Path(case.source.path).stem).breast_density
                assert real_density == dataset.by_id(source_id).breast_density
    exact = create_study([set_path], root, options(size_tolerance=1.0))
    assert exact.selection.real == 0 and len(exact.selection.unmatched) == exact.selection.real_requested == 5
    assert all("within 1x" in u.reason for u in exact.selection.unmatched)
    out = tmp_path / "exact.json"
    args = ["create", "--sets", str(set_path), "--root", str(root), "--out", str(out), "--cases", "10"]
    assert main([*args, "--size-tolerance", "1.0", "--seed", "3"]) == 0
    printed = capsys.readouterr().out
    assert "unmatched: 5 synthetic case(s) got no real match" in printed and "--size-tolerance" in printed


def test_crops_hold_the_lesion_and_whole_mode_shows_everything(mammo: tuple[Path, Path]) -> None:
    root, set_path = mammo
    study = create_study([set_path], root, options(crop_size=200))
    offsets = set()
    for case in study.cases:
        x0, y0, x1, y1 = case.crop
        height, width = case.image_size
        assert (x1 - x0, y1 - y0) == (min(200, width), min(200, height))
        bx0, by0, bx1, by1 = case.lesion_boxes[0]
        assert x0 <= bx0 and y0 <= by0 and bx1 <= x1 and by1 <= y1
        offsets.add((round(bx0 - x0), round(by0 - y0)))
    assert len(offsets) > 1, "the lesion must not sit at one fixed place in the crop"
    whole = create_study([set_path], root, options(mode=DisplayMode.WHOLE))
    assert all(c.crop == (0, 0, c.image_size[1], c.image_size[0]) for c in whole.cases)


def test_case_view_gives_nothing_away(mammo: tuple[Path, Path], tmp_path: Path) -> None:
    root, set_path = mammo
    study = create_study([set_path], root, options()).save(tmp_path / "study.json")
    assert {f.name for f in dataclasses.fields(CaseView)} == {"pixels", "window", "window_function", "crop_box"}
    loader = CaseLoader(study)
    dtypes = {}
    with SynthSet(set_path) as synth:
        for case in study.cases:
            view = loader.view(case)
            text = repr(view) + str(view.window)
            for secret in (case.case_id, "real", "synthetic", "Mass", set_path.name, root.name, ".dicom"):
                assert secret not in text
            assert view.window.explanation is None
            assert not view.pixels.flags.writeable
            x0, y0, x1, y1 = case.crop
            if case.source.kind is SourceKind.SET:
                full = synth.image(synth.row_of(case.source.sample_index))
            else:
                full = read_dicom(root / case.source.path).pixels
            assert np.array_equal(view.pixels, full[y0:y1, x0:x1])
            assert view.to_image(1, 2) == (x0 + 1, y0 + 2)
            dtypes[case.truth] = view.pixels.dtype
    loader.close()
    assert dtypes[Truth.REAL] == dtypes[Truth.SYNTHETIC], "the pixel type must not tell real from synthetic"


@pytest.mark.slow  # makes the phantom CXR root and set (~10 s on 2 cores)
def test_cxr_real_cases_share_the_finding_class(cxr: tuple[Path, Path]) -> None:
    root, set_path = cxr
    study = create_study([set_path], root, options(cases=6, size_tolerance=1.5))
    assert study.task == "cxr" and study.selection.synthetic == 3
    assert study.selection.excluded_real_sources >= 1
    real = [c for c in study.cases if c.truth is Truth.REAL]
    assert real, "the phantom CXR root has unused images of the synthetic cases' classes"
    for case in real:
        target = study.case(case.matched_to)
        assert case.lesion_labels[0] == target.lesion_labels[0]
        assert target.lesion_labels[0] in case.lesion_labels


def test_moved_inputs_are_named_with_the_fix(mammo: tuple[Path, Path], tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    root, set_path = mammo
    work = tmp_path / "work"
    shutil.copytree(root, work / "root")
    shutil.copy(set_path, work / "a.h5")
    study_path = tmp_path / "study.json"
    create_study([work / "a.h5"], work / "root", options()).save(study_path)
    (work / "a.h5").rename(tmp_path / "moved.h5")
    (work / "root").rename(tmp_path / "moved-root")
    with pytest.raises(DataError) as info:
        ReadingSession.open(study_path, "reader1")
    message = str(info.value)
    assert str(work / "a.h5") in message and str(work / "root") in message and "relocate" in message
    assert "\n" not in message
    assert main(["check", str(study_path)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "moved or missing" in err
    (tmp_path / "empty").mkdir()
    assert main(["relocate", str(study_path), "--root", str(tmp_path / "empty")]) == 1
    assert "lacks" in capsys.readouterr().err
    assert main(["relocate", str(study_path), "--set", f"0={tmp_path / 'moved.h5'}"]) == 0
    assert f"still missing: the VinDr root {work / 'root'}" in capsys.readouterr().err
    assert main(["relocate", str(study_path), "--root", str(tmp_path / "moved-root")]) == 0
    assert main(["check", str(study_path)]) == 0
    with ReadingSession.open(study_path, "reader1") as session:
        assert session.current_case() is not None


def test_one_missing_dicom_is_named(mammo: tuple[Path, Path], tmp_path: Path) -> None:
    root, set_path = mammo
    shutil.copytree(root, tmp_path / "root")
    study = create_study([set_path], tmp_path / "root", options()).save(tmp_path / "study.json")
    gone = next(c for c in study.cases if c.truth is Truth.REAL).source.path
    (tmp_path / "root" / gone).unlink()
    with pytest.raises(DataError, match="1 input"):
        check_inputs(study)
    with pytest.raises(DataError) as info:
        check_inputs(study)
    assert str(tmp_path / "root" / gone) in str(info.value)


def test_a_changed_set_is_refused(mammo: tuple[Path, Path], tmp_path: Path) -> None:
    root, set_path = mammo
    copy = tmp_path / "a.h5"
    shutil.copy(set_path, copy)
    study = create_study([copy], root, options()).save(tmp_path / "study.json")
    data = bytearray(copy.read_bytes())
    data[len(data) // 2] ^= 0xFF  # same size, different content
    copy.write_bytes(bytes(data))
    with pytest.raises(DataError, match="changed since the study was made") as info:
        check_inputs(study)
    assert str(copy) in str(info.value)
    check_inputs(study, verify_hashes=False)  # the size alone cannot see it
    with copy.open("ab") as handle:
        handle.write(b"appended")
    with pytest.raises(DataError, match="bytes"):
        check_inputs(study, verify_hashes=False)


def test_bad_options_and_inputs_get_one_clear_line(mammo: tuple[Path, Path], tmp_path: Path) -> None:
    root, set_path = mammo
    cxr_root = tmp_path / "cxr"
    cxr_root.mkdir()
    (cxr_root / "train.csv").write_text("image_id,class_name,class_id,rad_id,x_min,y_min,x_max,y_max\n")
    with pytest.raises(LinopError, match="--cases"):
        create_study([set_path], root, options(cases=0))
    with pytest.raises(LinopError, match="--synthetic-share"):
        create_study([set_path], root, options(synthetic_share=1.5))
    with pytest.raises(LinopError, match="--decisions"):
        create_study([set_path], root, options(decisions=("maybe",)))
    with pytest.raises(DataError, match="eligible synthetic sample") as info:
        create_study([set_path], root, options(cases=40))
    assert str(set_path) in str(info.value)
    with pytest.raises(DataError, match="eligible synthetic sample"):
        create_study([set_path], root, options(decisions=("approved",)))
    with pytest.raises(DataError, match="VinDr-CXR root"):
        create_study([set_path], cxr_root, options())
    with pytest.raises(DataError, match="synthetic set not found"):
        create_study([tmp_path / "nope.h5"], root, options())
    out = tmp_path / "study.json"
    out.write_text("{}")
    args = ["create", "--sets", str(set_path), "--root", str(root), "--out", str(out)]
    assert main(args) == 1
    assert json.loads(out.read_text()) == {}, "an existing study file is never overwritten"


def test_study_file_round_trips_and_bad_json_names_the_line(mammo: tuple[Path, Path], tmp_path: Path) -> None:
    root, set_path = mammo
    study = create_study([set_path], root, options()).save(tmp_path / "study.json")
    loaded = Study.load(tmp_path / "study.json")
    assert loaded == study
    assert math.isclose(loaded.options.size_tolerance, 3.0)
    text = (tmp_path / "study.json").read_text().splitlines()
    text[5] = text[5] + ","
    (tmp_path / "broken.json").write_text("\n".join(text))
    with pytest.raises(DataError, match=r"broken\.json:\d+: not valid JSON"):
        Study.load(tmp_path / "broken.json")
