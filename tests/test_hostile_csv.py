"""Hostile and real-world VinDr CSVs: foreign encodings, huge literals, stray quotes, duplicates, boxless lesions
and path-traversal ids. Each gives one line naming the file and the line (stopping under --strict), memory stays
bounded, and nothing changes silently: every row dropped, de-duplicated or left without its box is counted and
listed as ``file:line: reason``."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest
from hostile_inputs import (
    MAMMO_BREAST_HEADER,
    MAMMO_FINDING_HEADER,
    assert_one_line,
    cxr_annotation_rows,
    mammo_rows,
    run_bounded,
    write_cxr_root,
    write_mammo_root,
)

from linop_core.cli.data import main as data_main
from linop_core.errors import DataError
from linop_core.synthset.plan import read_box_csv
from linop_core.vindr import CxrDataset, MammoDataset
from linop_core.vindr.csvfile import MAX_LINE_CHARS


@pytest.fixture(autouse=True)
def _quiet() -> None:
    warnings.simplefilter("ignore", UserWarning)  # the one-per-dataset summary warning; the report is checked


def _open_mammo(root: Path, strict: bool = False) -> MammoDataset:
    return MammoDataset.open(root, strict=strict)


# ----------------------------------------------------------------------------------------------- encodings

ENCODING_CASES = ("breast-level", "finding", "metadata", "cxr-annotations", "cxr-labels", "kaggle", "box-csv")


def _foreign_byte_root(tmp_path: Path, kind: str) -> tuple[Path, Path, int]:
    """A root whose ``kind`` CSV has a Windows-1252 'é' on one line: (root, that file, that line)."""
    breast, finding = mammo_rows(2)
    root = tmp_path / kind
    if kind in ("breast-level", "finding", "metadata", "box-csv"):
        if kind == "breast-level":
            breast[2] = breast[2].replace(",se0,", ",séries0,")
        elif kind == "finding":
            finding[2] = finding[2].replace(",se0,", ",séries0,")
        write_mammo_root(root, breast, finding, encoding="cp1252")
        if kind == "metadata":
            (root / "metadata.csv").write_bytes("SOP Instance UID,Manufacturer\n1,Siemens\n2,Fujifilm Médical\n"
                                                .encode("cp1252"))
            return root, root / "metadata.csv", 3
        if kind == "box-csv":
            boxes = root / "boxes.csv"
            boxes.write_bytes("image_id,xmin,ymin,xmax,ymax,label\nabc,1,2,30,40,Mass\nabd,1,2,30,40,Masse é\n"
                              .encode("cp1252"))
            return root, boxes, 3
        return root, root / ("breast-level_annotations.csv" if kind == "breast-level" else "finding_annotations.csv"), 4
    if kind == "kaggle":
        root.mkdir()
        rows = ["image_id,class_name,class_id,rad_id,x_min,y_min,x_max,y_max",
                f"{1:032x},No finding,14,R1,,,,", f"{2:032x},Nodule/Mass,8,R2é,10,10,50,50"]
        (root / "train.csv").write_bytes(("\n".join(rows) + "\n").encode("cp1252"))
        return root, root / "train.csv", 3
    rows = cxr_annotation_rows(3)
    if kind == "cxr-annotations":
        rows[1] = rows[1].replace(",R2,", ",R2é,")
        write_cxr_root(root, rows)
        path = root / "annotations" / "annotations_train.csv"
        path.write_bytes(path.read_text().encode("cp1252"))
        return root, path, 3
    write_cxr_root(root, rows)
    labels = ["image_id", "rad_id", *CXR_LABEL_COLUMNS]
    values = [f"{100:032x}", "R1é", *(["0"] * len(CXR_LABEL_COLUMNS))]
    path = root / "annotations" / "image_labels_train.csv"
    path.write_bytes((",".join(labels) + "\n" + ",".join(values) + "\n").encode("cp1252"))
    return root, path, 2


CXR_LABEL_COLUMNS = [
    "Aortic enlargement", "Atelectasis", "Calcification", "Cardiomegaly", "Clavicle fracture", "Consolidation",
    "Edema", "Emphysema", "Enlarged PA", "ILD", "Infiltration", "Lung Opacity", "Lung cavity", "Lung cyst",
    "Mediastinal shift", "Nodule/Mass", "Pleural effusion", "Pleural thickening", "Pneumothorax",
    "Pulmonary fibrosis", "Rib fracture", "Other lesion", "COPD", "Lung tumor", "Pneumonia", "Tuberculosis",
    "Other diseases", "No finding",
]  # fmt: skip


@pytest.mark.parametrize("kind", ENCODING_CASES)
def test_non_utf8_csv_names_file_and_line_and_strict_stops(tmp_path: Path, kind: str) -> None:
    root, path, line = _foreign_byte_root(tmp_path, kind)
    if kind == "box-csv":  # a box CSV is always strict: a unit must not silently move
        with pytest.raises(DataError) as info:
            read_box_csv(path)
        assert_one_line(str(info.value), f"{path}:{line}", "not UTF-8", "0xe9")
        return
    opener = MammoDataset.open if kind in ("breast-level", "finding", "metadata") else CxrDataset.open
    with pytest.raises(DataError) as info:
        opener(root, strict=True)
    assert_one_line(str(info.value), f"{path}:{line}", "not UTF-8", "strict")
    dataset = opener(root)
    assert dataset.report.files_not_utf8 == 1
    assert any(p.startswith(f"{path}:{line}: not UTF-8") for p in dataset.report.problems)
    if kind == "metadata":
        assert dataset.metadata["2"]["Manufacturer"] == "Fujifilm Médical"  # Windows-1252, decoded right
    elif kind in ("breast-level", "finding"):
        assert len(dataset.records) == 8 and dataset.report.rows_skipped == 0  # nothing lost


def test_utf16_and_bom_files_read_like_utf8(tmp_path: Path) -> None:
    breast, finding = mammo_rows(2)
    plain = _open_mammo(write_mammo_root(tmp_path / "utf8", breast, finding))
    for encoding in ("utf-16", "utf-8-sig"):
        other = _open_mammo(write_mammo_root(tmp_path / encoding, breast, finding, encoding=encoding))
        assert [r.image_id for r in other.records] == [r.image_id for r in plain.records]
        assert other.report.problems == []


def test_cli_on_non_utf8_is_one_line_and_goes_on_without_strict(tmp_path: Path, capsys) -> None:
    root, path, line = _foreign_byte_root(tmp_path, "finding")
    assert data_main(["inspect", str(root)]) == 0
    assert f"{path}:{line}: not UTF-8" in capsys.readouterr().out
    assert data_main(["inspect", str(root), "--strict"]) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err and err.count("\n") == 1 and f"{path}:{line}" in err


# ----------------------------------------------------------------------------------------------- literals, lines


@pytest.mark.parametrize("literal", ["[" * 100_000, "['Mass', " * 12_500 + "'Mass']", "'" + "M" * 100_000 + "'"],
                         ids=["nested", "long-list", "long-name"])
def test_huge_finding_categories_is_one_counted_row(tmp_path: Path, literal: str) -> None:
    breast, finding = mammo_rows(2)
    fields = finding[1].split(",")
    finding[1] = ",".join(fields[:9]) + f',"{literal}",' + ",".join(fields[11:])
    dataset = _open_mammo(write_mammo_root(tmp_path / "root", breast, finding))
    assert dataset.report.rows_skipped == 1
    (problem,) = dataset.report.problems
    assert problem.startswith(f"{tmp_path / 'root' / 'finding_annotations.csv'}:3: ") and len(problem) < 400


def test_huge_literal_and_overlong_line_stay_in_bounded_memory(tmp_path: Path) -> None:
    breast, finding = mammo_rows(2)
    fields = finding[1].split(",")
    finding[1] = ",".join(fields[:9]) + ',"' + "[" * 100_000 + '",' + ",".join(fields[11:])
    finding.insert(3, "x" * (3 * MAX_LINE_CHARS))  # a 3 MB line without a comma or a quote
    root = write_mammo_root(tmp_path / "root", breast, finding)
    result = run_bounded(f"""
        import warnings; warnings.simplefilter("ignore")
        from linop_core.vindr import MammoDataset
        limit()
        report = MammoDataset.open({str(root)!r}).report
        done({{"skipped": report.rows_skipped, "problems": report.problems}})
    """, headroom_mib=256)
    assert result["skipped"] == 2 and any("longer than" in p for p in result["problems"]), result
    assert result["maxrss_mib"] < 300, result


def test_stray_quote_costs_its_own_line_only(tmp_path: Path) -> None:
    breast, finding = mammo_rows(8)  # 32 finding rows
    finding[4] = '"' + finding[4]  # line 6: an opening quote that never closes
    path = tmp_path / "root" / "finding_annotations.csv"
    dataset = _open_mammo(write_mammo_root(tmp_path / "root", breast, finding))
    assert dataset.report.rows_skipped == 1 and dataset.report.rows_read == 64
    (problem,) = dataset.report.problems
    assert problem.startswith(f"{path}:6: ") and "quote" in problem
    assert len(dataset.mass_boxes()) == 8  # the 26 rows after it are all there
    with pytest.raises(DataError) as info:
        read_box_csv(_box_csv(tmp_path, '"abc,1,2,30,40'))
    assert_one_line(str(info.value), ":3:", "quote")


def _box_csv(tmp_path: Path, bad: str) -> Path:
    path = tmp_path / "boxes.csv"
    path.write_text(f"image_id,xmin,ymin,xmax,ymax\nabc,1,2,30,40\n{bad}\nabd,1,2,30,40\n")
    return path


# ----------------------------------------------------------------------------------------------- silent changes


def test_mass_row_without_box_is_counted_and_listed(tmp_path: Path) -> None:
    breast, finding = mammo_rows(3)
    finding[1] = finding[1].replace(",1000,1200,1300,1500,", ",nan,NaN,,,")
    path = tmp_path / "root" / "finding_annotations.csv"
    dataset = _open_mammo(write_mammo_root(tmp_path / "root", breast, finding))
    assert dataset.report.findings_without_box == 1 and len(dataset.mass_boxes()) == 2
    assert dataset.report.problems == [f"{path}:3: Mass finding has no box (empty or NaN coordinates); kept as a "
                                       "label only"]
    record = next(r for r in dataset.records if r.labels == ("Mass",) and not r.boxes)
    assert record not in dataset.normal_pool()  # an unboxed lesion is no normal image either
    with pytest.raises(DataError, match=r"finding_annotations\.csv:3: Mass finding has no box"):
        _open_mammo(tmp_path / "root", strict=True)


def test_duplicate_mammo_rows_do_not_duplicate_boxes(tmp_path: Path) -> None:
    breast, finding = mammo_rows(3)
    clean = _open_mammo(write_mammo_root(tmp_path / "clean", breast, finding))
    doubled = _open_mammo(write_mammo_root(tmp_path / "doubled", breast, [*finding, finding[1], finding[0]]))
    boxes = [(r.image_id, box) for r, box in doubled.mass_boxes()]
    assert boxes == [(r.image_id, box) for r, box in clean.mass_boxes()] and len(boxes) == 3
    assert doubled.report.rows_deduplicated == 2
    path = tmp_path / "doubled" / "finding_annotations.csv"
    assert f"{path}:14: duplicate of line 3; counted once" in doubled.report.problems


def test_duplicate_cxr_rows_do_not_move_fused_boxes(tmp_path: Path) -> None:
    rows = cxr_annotation_rows(4)
    clean = CxrDataset.open(write_cxr_root(tmp_path / "clean", rows))
    doubled = CxrDataset.open(write_cxr_root(tmp_path / "doubled", [*rows, rows[0], rows[0], rows[7]]))
    assert [r.findings for r in doubled.records] == [r.findings for r in clean.records]
    assert [len(r.reader_findings) for r in doubled.records] == [len(r.reader_findings) for r in clean.records]
    assert doubled.report.rows_deduplicated == 3
    path = tmp_path / "doubled" / "annotations" / "annotations_train.csv"
    assert f"{path}:14: duplicate of line 2; counted once" in doubled.report.problems


# ----------------------------------------------------------------------------------------------- path traversal

TRAVERSALS = ("../../..", "..", "../outside", "/etc/passwd", "a/b", ".hidden", "C:\\evil", "x" * 200, "a b")


@pytest.mark.parametrize("column", ["study_id", "image_id"])
@pytest.mark.parametrize("bad", TRAVERSALS)
def test_mammo_ids_cannot_leave_the_root(tmp_path: Path, column: str, bad: str) -> None:
    breast, finding = mammo_rows(2)
    index = MAMMO_BREAST_HEADER.split(",").index(column)
    fields = breast[0].split(",")
    fields[index] = bad
    breast[0] = ",".join(fields)
    fields = finding[0].split(",")
    fields[MAMMO_FINDING_HEADER.split(",").index(column)] = bad
    finding[0] = ",".join(fields)
    root = write_mammo_root(tmp_path / "data" / "root", breast, finding)
    outside = tmp_path / "data" / "outside.dicom"  # what "../outside" with images/<study>/ would reach
    outside.write_bytes(b"x")
    dataset = _open_mammo(root)
    assert dataset.report.rows_skipped == 2 and len(dataset.records) == 7
    assert all(r.path.resolve().is_relative_to(root.resolve()) for r in dataset.records)
    assert dataset.report.missing_files == 7  # nothing outside is counted "on disk"
    assert all("not a plain id" in p for p in dataset.report.problems)


@pytest.mark.parametrize("bad", TRAVERSALS)
def test_cxr_ids_cannot_leave_the_root(tmp_path: Path, bad: str) -> None:
    rows = cxr_annotation_rows(2)
    rows[0] = bad + rows[0][32:]
    dataset = CxrDataset.open(write_cxr_root(tmp_path / "root", rows))
    assert dataset.report.rows_skipped == 1
    assert all(r.path.resolve().is_relative_to((tmp_path / "root").resolve()) for r in dataset.records)
