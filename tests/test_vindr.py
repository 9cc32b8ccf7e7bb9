"""VinDr-Mammo / VinDr-CXR readers on CSV fixtures written with the exact release schemas."""

from __future__ import annotations

import sys
import types
from pathlib import Path

import pytest

from linop_core.errors import DataError, DicomError
from linop_core.vindr import (
    FOUR_CLASSES,
    CxrDataset,
    Finding,
    FusionConfig,
    MammoDataset,
    fuse_reader_boxes,
    open_dataset,
    parse_categories,
)

BREAST_HEADER = "study_id,series_id,image_id,laterality,view_position,height,width,breast_birads,breast_density,split"
FINDING_HEADER = (
    "study_id,series_id,image_id,laterality,view_position,height,width,breast_birads,breast_density,"
    "finding_categories,finding_birads,xmin,ymin,xmax,ymax,split"
)
S1, S2 = "s" * 31 + "1", "s" * 31 + "2"
# image ids: a* in training study S1, b* in test study S2
BREAST_ROWS = [
    f"{S1},se1,a1,L,CC,3518,2800,BI-RADS 1,DENSITY C,training",
    f"{S1},se1,a2,L,MLO,3518,2800,BI-RADS 1,DENSITY C,training",
    f"{S1},se1,a3,R,CC,3518,2800,BI-RADS 4,DENSITY C,training",
    f"{S1},se1,a4,R,MLO,3518,2800,BI-RADS 4,DENSITY C,training",
    f"{S2},se2,b1,R,CC,2812,2012,BI-RADS 3,DENSITY B,test",
    f"{S2},se2,b2,R,MLO,2812,2012,BI-RADS 2,DENSITY B,test",
    f"{S2},se2,b3,L,CC,2812,2012,BI-RADS 1,DENSITY D,test",
    f"{S2},se2,b4,L,MLO,abc,2012,BI-RADS 1,DENSITY D,test",  # line 9: bad height
]
FINDING_ROWS = [
    f"{S1},se1,a1,L,CC,3518,2800,BI-RADS 1,DENSITY C,['No Finding'],,,,,,training",
    f"{S1},se1,a2,L,MLO,3518,2800,BI-RADS 1,DENSITY C,['No Finding'],,,,,,training",
    # negative xmin and xmax beyond the width: clipped to (0, 2800)
    f"{S1},se1,a3,R,CC,3518,2800,BI-RADS 4,DENSITY C,['Mass'],BI-RADS 4,-5.36,100.5,2810.25,400.75,training",
    f"{S1},se1,a3,R,CC,3518,2800,BI-RADS 4,DENSITY C,\"['Suspicious Calcification', 'Mass']\",BI-RADS 4,"
    "1000,1000,1232.5,1238,training",
    # BI-RADS 4 breast but No Finding in this view: not normal
    f"{S1},se1,a4,R,MLO,3518,2800,BI-RADS 4,DENSITY C,['No Finding'],,,,,,training",
    f"{S2},se2,b1,R,CC,2812,2012,BI-RADS 3,DENSITY B,\"['Suspicious Calcification', 'Mass']\",BI-RADS 3,"
    "1355.1398925781,700,2500,900,test",
    f"{S2},se2,b1,R,CC,2812,2012,BI-RADS 3,DENSITY B,['Focal Asymmetry'],BI-RADS 3,10,20,30,40,test",
    f"{S2},se2,b2,R,MLO,2812,2012,BI-RADS 2,DENSITY B,['No Finding'],,,,,,test",
    f"{S2},se2,b3,L,CC,2812,2012,BI-RADS 1,DENSITY D,['No Finding'],,,,,,test",
    f"{S2},se2,b2,R,MLO,2812,2012,BI-RADS 2,DENSITY B,['Tumour'],BI-RADS 4,1,2,3,4,test",  # line 11
    f"{S2},se2,b1,R,CC,2812,2012,BI-RADS 3,DENSITY B,['Mass'],BI-RADS 3,500,20,400,40,test",  # line 12
    f"{S2},se2,b1,R,CC,2812,2012,BI-RADS 3,DENSITY B,['Mass'],BI-RADS 3,5,x12,40,40,test",  # line 13
]


def write(path: Path, header: str, rows: list[str]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join([header, *rows]) + "\n", encoding="utf-8")
    return path


@pytest.fixture
def mammo_root(tmp_path: Path) -> Path:
    tmp_path = tmp_path / "mammo"
    write(tmp_path / "breast-level_annotations.csv", BREAST_HEADER, BREAST_ROWS)
    write(tmp_path / "finding_annotations.csv", FINDING_HEADER, FINDING_ROWS)
    image = tmp_path / "images" / S1 / "a1.dicom"
    image.parent.mkdir(parents=True)
    image.write_bytes(b"placeholder: only existence is checked by the reader")
    return tmp_path


def test_parse_categories_accepts_list_strings() -> None:
    assert parse_categories("['Mass']") == ("Mass",)
    assert parse_categories("['Suspicious Calcification', 'Mass']") == ("Suspicious Calcification", "Mass")
    with pytest.raises(ValueError, match="unknown finding category 'Tumour'"):
        parse_categories("['Tumour']")
    with pytest.raises(ValueError, match="list string"):
        parse_categories("Mass, Calc")


def test_mammo_records_findings_and_queries(mammo_root: Path) -> None:
    with pytest.warns(UserWarning, match="4 row"):
        ds = MammoDataset.open(mammo_root)
    assert [r.image_id for r in ds.records] == ["a1", "a2", "a3", "a4", "b1", "b2", "b3"]
    a3 = ds.by_id("a3")
    assert a3.path == mammo_root / "images" / S1 / "a3.dicom"
    assert (a3.split, a3.laterality, a3.view, a3.height, a3.width) == ("training", "R", "CC", 3518, 2800)
    assert a3.breast_birads == "BI-RADS 4" and a3.breast_density == "DENSITY C"
    assert a3.findings[0] == Finding(("Mass",), (0.0, 100.5, 2800.0, 400.75), "BI-RADS 4")
    assert a3.findings[1].categories == ("Suspicious Calcification", "Mass")
    assert a3.labels == ("Mass", "Suspicious Calcification")
    assert a3.reader_findings == ()
    b1 = ds.by_id("b1")
    assert b1.findings[0].box == (1355.1398925781, 700.0, 2012.0, 900.0)  # clipped to the width
    assert [f.categories for f in b1.findings] == [("Suspicious Calcification", "Mass"), ("Focal Asymmetry",)]

    assert [r.image_id for r in ds.normal_pool()] == ["a1", "a2"]
    assert [r.image_id for r in ds.normal_pool("test")] == ["b3"]
    assert len(ds.normal_pool(None)) == 3
    assert [r.image_id for r in ds.with_masses()] == ["a3", "b1"]
    assert [r.image_id for r in ds.with_masses("test")] == ["b1"]
    assert [(r.image_id, box) for r, box in ds.mass_boxes("training")] == [
        ("a3", (0.0, 100.5, 2800.0, 400.75)),
        ("a3", (1000.0, 1000.0, 1232.5, 1238.0)),
    ]
    assert len(ds.mass_boxes()) == 3
    with pytest.raises(DataError, match="no image 'zz'"):
        ds.by_id("zz")


def test_mammo_malformed_rows_reported_with_file_and_line(mammo_root: Path) -> None:
    with pytest.warns(UserWarning):
        ds = MammoDataset.open(mammo_root)
    report = ds.report
    assert report.rows_read == len(BREAST_ROWS) + len(FINDING_ROWS)
    assert report.rows_skipped == 4
    breast, finding = mammo_root / "breast-level_annotations.csv", mammo_root / "finding_annotations.csv"
    assert report.problems[0] == f"{breast}:9: height 'abc' is not a number"
    assert report.problems[1] == f"{finding}:11: unknown finding category 'Tumour'"
    assert report.problems[2].startswith(f"{finding}:12: inverted box")
    assert report.problems[3] == f"{finding}:13: ymin 'x12' is not a number"
    assert report.missing_files == 6  # only a1 exists on disk
    assert ds.by_id("a1").exists and not ds.by_id("a2").exists


def test_mammo_strict_makes_malformed_row_fatal(mammo_root: Path) -> None:
    with pytest.raises(DataError) as info:
        MammoDataset.open(mammo_root, strict=True)
    assert info.value.line == 9
    assert "breast-level_annotations.csv:9: height 'abc'" in str(info.value)


def test_mammo_box_with_no_area_inside_image_is_skipped(tmp_path: Path) -> None:
    rows = [
        f"{S1},se1,a1,L,CC,100,80,BI-RADS 4,DENSITY C,['Mass'],BI-RADS 4,90,10,120,20,training",
        f"{S1},se1,a1,L,CC,100,80,BI-RADS 4,DENSITY C,['Mass'],BI-RADS 4,70,10,120,20,training",
    ]
    write(tmp_path / "finding_annotations.csv", FINDING_HEADER, rows)
    with pytest.warns(UserWarning):
        ds = MammoDataset.open(tmp_path)
    assert ds.report.problems == [
        f"{tmp_path / 'finding_annotations.csv'}:2: box (90, 10, 120, 20) has no area inside the image"
    ]
    # finding_annotations.csv alone lists the image: it repeats the breast-level columns
    (record,) = ds.records
    assert record.breast_birads == "BI-RADS 4" and record.findings[0].box == (70.0, 10.0, 80.0, 20.0)


def test_mammo_missing_column_is_fatal(tmp_path: Path) -> None:
    write(tmp_path / "breast-level_annotations.csv", BREAST_HEADER.replace(",split", ""), [])
    with pytest.raises(DataError, match=r"missing column.*split"):
        MammoDataset.open(tmp_path)


def test_mammo_metadata_rows_kept_by_sop_uid(mammo_root: Path) -> None:
    write(
        mammo_root / "metadata.csv",
        "SOP Instance UID,Window Center,Window Width,Photometric Interpretation",
        ['a1,"[1800, 2000]","[3000, 3500]",MONOCHROME1'],
    )
    with pytest.warns(UserWarning):
        ds = MammoDataset.open(mammo_root)
    assert ds.metadata["a1"]["Window Center"] == "[1800, 2000]"


# ---------------------------------------------------------------- VinDr-CXR
LOCAL = [
    "Aortic enlargement", "Atelectasis", "Calcification", "Cardiomegaly", "Clavicle fracture",
    "Consolidation", "Edema", "Emphysema", "Enlarged PA", "ILD", "Infiltration", "Lung Opacity",
    "Lung cavity", "Lung cyst",
    "Mediastinal shift", "Nodule/Mass", "Pleural effusion", "Pleural thickening", "Pneumothorax",
    "Pulmonary fibrosis", "Rib fracture", "Other lesion",
]  # fmt: skip
GLOBAL_TRAIN = ["COPD", "Lung tumor", "Pneumonia", "Tuberculosis", "Other diseases", "No finding"]
GLOBAL_TEST = ["COPD", "Lung tumor", "Pneumonia", "Tuberculosis", "Other disease", "No finding"]


def label_row(image_id: str, reader: str | None, *present: str, names: list[str]) -> str:
    flags = ["1" if n in present else "0" for n in LOCAL + names]
    return ",".join([image_id, *([reader] if reader else []), *flags])


# c1: 3 readers, effusion; c2: unanimous normal; c3: 1 of 3 pneumothorax; c4: effusion+pneumothorax+pneumonia;
# c5: pneumonia only (global, no box)
LABELS_TRAIN = [
    label_row("c1", "R1", "Pleural effusion", "Lung Opacity", names=GLOBAL_TRAIN),
    label_row("c1", "R2", "Pleural effusion", names=GLOBAL_TRAIN),
    label_row("c1", "R3", "Pleural effusion", names=GLOBAL_TRAIN),
    *(label_row("c2", r, "No finding", names=GLOBAL_TRAIN) for r in ("R1", "R2", "R3")),
    label_row("c3", "R4", "Pneumothorax", names=GLOBAL_TRAIN),
    label_row("c3", "R5", "No finding", names=GLOBAL_TRAIN),
    label_row("c3", "R6", "No finding", names=GLOBAL_TRAIN),
    *(label_row("c4", r, "Pleural effusion", "Pneumothorax", "Pneumonia", names=GLOBAL_TRAIN) for r in ("R1", "R2")),
    label_row("c4", "R3", "Nodule/Mass", names=GLOBAL_TRAIN),
    *(label_row("c5", r, "Pneumonia", "Other lesion", names=GLOBAL_TRAIN) for r in ("R7", "R8", "R9")),
    "c5,R10," + ",".join(["2"] * 28),  # line 17: value 2
    "c6,R1," + ",".join(["1"] * 27 + ["yes"]),  # line 18: not a number; c6 is listed nowhere else
]
ANN_TRAIN = [
    "c1,R1,Pleural effusion,100,200,300,400",
    "c1,R1,Lung Opacity,100,200,300,400",
    "c1,R2,Pleural effusion,110,210,310,410",
    "c1,R3,Pleural effusion,120,190,290,420",
    *(f"c2,{r},No finding,,,," for r in ("R1", "R2", "R3")),
    "c3,R4,Pneumothorax,-0.66,10,500,900",
    "c3,R5,No finding,,,,",
    "c3,R6,No finding,,,,",
    "c4,R1,Pleural effusion,10,10,50,50",
    "c4,R2,Pleural effusion,12,10,50,52",
    "c4,R1,Pneumothorax,600,10,700,300",
    "c4,R2,Pneumothorax,610,15,700,310",
    "c4,R3,Nodule/Mass,300,300,340,340",
    "c5,R7,Other lesion,5,5,60,60",
    "c5,R8,Lung Tumour Thing,5,5,60,60",  # line 17: unknown class
    "c5,R9,Other lesion,5.5,abc,60,60",  # line 18: bad number
    "c5,R9,Other lesion,80,5,60,60",  # line 19: inverted
]
LABELS_TEST = [
    label_row("t1", None, "No finding", names=GLOBAL_TEST),
    label_row("t2", None, "Pleural effusion", names=GLOBAL_TEST),
]
ANN_TEST = ["t1,No finding,,,,", "t2,Pleural effusion,10,10,100,100", "t2,Pleural effusion,20,20,110,110"]


@pytest.fixture
def cxr_root(tmp_path: Path) -> Path:
    tmp_path = tmp_path / "cxr"
    ann = tmp_path / "annotations"
    write(ann / "image_labels_train.csv", ",".join(["image_id", "rad_id", *LOCAL, *GLOBAL_TRAIN]), LABELS_TRAIN)
    write(ann / "annotations_train.csv", "image_id,rad_id,class_name,x_min,y_min,x_max,y_max", ANN_TRAIN)
    write(ann / "image_labels_test.csv", ",".join(["image_id", *LOCAL, *GLOBAL_TEST]), LABELS_TEST)
    write(ann / "annotations_test.csv", "image_id,class_name,x_min,y_min,x_max,y_max", ANN_TEST)
    return tmp_path


def open_cxr(root: Path, **kwargs: object) -> CxrDataset:
    with pytest.warns(UserWarning):
        return CxrDataset.open(root, **kwargs)  # type: ignore[arg-type]


def test_cxr_records_labels_and_problems(cxr_root: Path) -> None:
    ds = open_cxr(cxr_root)
    assert ds.layout == "physionet" and ds.has_global_labels
    assert [r.image_id for r in ds.records] == ["c1", "c2", "c3", "c4", "c5", "t1", "t2"]
    c1 = ds.by_id("c1")
    assert c1.path == cxr_root / "train" / "c1.dicom" and c1.split == "training" and not c1.exists
    assert c1.labels == ("Pleural effusion",)  # Lung Opacity: 1 of 3 readers
    assert ds.by_id("c3").labels == ("No finding",)
    assert ds.by_id("c4").labels == ("Pleural effusion", "Pneumothorax", "Pneumonia")  # Nodule/Mass: 1 of 3
    assert ds.by_id("c5").labels == ("Other lesion", "Pneumonia")
    assert ds.by_id("t2").labels == ("Pleural effusion",) and ds.by_id("t2").split == "test"
    assert ds.by_id("t2").path == cxr_root / "test" / "t2.dicom"
    report = ds.report
    assert report.missing_files == 7
    assert report.rows_skipped == 5
    labels, ann = (
        cxr_root / "annotations" / "image_labels_train.csv",
        cxr_root / "annotations" / "annotations_train.csv",
    )
    assert report.problems == [
        f"{labels}:17: Aortic enlargement '2' is not 0 or 1",
        f"{labels}:18: No finding 'yes' is not a number",
        f"{ann}:18: unknown class 'Lung Tumour Thing'",
        f"{ann}:19: y_min 'abc' is not a number",
        f"{ann}:20: inverted box (80, 5, 60, 60): max below min",
    ]


def test_cxr_any_reader_vote(cxr_root: Path) -> None:
    ds = open_cxr(cxr_root, fusion=FusionConfig(label_votes=1))
    assert ds.by_id("c1").labels == ("Lung Opacity", "Pleural effusion")
    assert ds.by_id("c3").labels == ("Pneumothorax", "No finding")
    assert ds.by_id("c4").labels == ("Nodule/Mass", "Pleural effusion", "Pneumothorax", "Pneumonia")


def test_cxr_fused_boxes(cxr_root: Path) -> None:
    ds = open_cxr(cxr_root)
    c1 = ds.by_id("c1")
    assert len(c1.reader_findings) == 4 and {f.reader for f in c1.reader_findings} == {"R1", "R2", "R3"}
    effusion = [f for f in c1.findings if f.categories == ("Pleural effusion",)]
    opacity = [f for f in c1.findings if f.categories == ("Lung Opacity",)]
    assert len(effusion) == 1 and effusion[0].score == pytest.approx(1.0) and effusion[0].reader is None
    assert effusion[0].box == pytest.approx((110.0, 200.0, 300.0, 410.0))  # mean of the three reader boxes
    assert len(opacity) == 1 and opacity[0].score == pytest.approx(1 / 3)
    # one reader's box on an image read by three: kept, score 1/3; negative x clipped at 0
    (ptx,) = ds.by_id("c3").findings
    assert ptx.box == (0.0, 10.0, 500.0, 900.0) and ptx.score == pytest.approx(1 / 3)
    c4 = ds.by_id("c4").findings
    assert [(f.categories[0], round(f.score, 3)) for f in c4] == [
        ("Nodule/Mass", 0.333),
        ("Pleural effusion", 0.667),
        ("Pneumothorax", 0.667),
    ]
    # a single consensus reader: boxes are kept as drawn, not merged
    t2 = ds.by_id("t2")
    assert [f.box for f in t2.findings] == [(10.0, 10.0, 100.0, 100.0), (20.0, 20.0, 110.0, 110.0)]
    assert all(f.score == 1.0 for f in t2.findings)


def test_cxr_consensus_boxes_with_reader_ids_are_not_fused(cxr_root: Path) -> None:
    rows = ["t1,R11,No finding,,,,", "t2,R11,Pleural effusion,10,10,100,100", "t2,R12,Pleural effusion,20,20,110,110"]
    write(cxr_root / "annotations" / "annotations_test.csv", "image_id,rad_id,class_name,x_min,y_min,x_max,y_max", rows)
    t2 = open_cxr(cxr_root).by_id("t2")
    assert [(f.box, f.score, f.reader) for f in t2.findings] == [
        ((10.0, 10.0, 100.0, 100.0), 1.0, None),
        ((20.0, 20.0, 110.0, 110.0), 1.0, None),
    ]
    assert [f.reader for f in t2.reader_findings] == ["R11", "R12"]


def test_fusion_is_independent_of_normaliser() -> None:
    findings = [
        Finding(("Nodule/Mass",), (10.0, 20.0, 30.0, 40.0), reader="R1"),
        Finding(("Nodule/Mass",), (12.0, 22.0, 32.0, 44.0), reader="R2"),
        Finding(("Nodule/Mass",), (400.0, 400.0, 450.0, 480.0), reader="R2"),
    ]
    by_max = fuse_reader_boxes(findings, ["R1", "R2", "R3"], None, None, FusionConfig())
    by_size = fuse_reader_boxes(findings, ["R1", "R2", "R3"], 2000, 1000, FusionConfig())
    assert len(by_max) == 2
    for a, b in zip(by_max, by_size, strict=True):
        assert a.box == pytest.approx(b.box) and a.score == pytest.approx(b.score)
    assert by_max[0].box == pytest.approx((11.0, 21.0, 31.0, 42.0)) and by_max[0].score == pytest.approx(2 / 3)
    strict = fuse_reader_boxes(findings, ["R1", "R2", "R3"], None, None, FusionConfig(iou_thr=0.95))
    assert len(strict) == 3


def test_cxr_four_class_policy(cxr_root: Path) -> None:
    ds = open_cxr(cxr_root)
    assert FOUR_CLASSES == ("normal", "pleural effusion", "pneumothorax", "pneumonia")
    pairs = [(r.image_id, k) for r, k in ds.four_class()]
    assert pairs == [("c1", 1), ("c2", 0), ("c3", 0), ("c5", 3), ("t1", 0), ("t2", 1)]  # c4 dropped
    assert [(r.image_id, k) for r, k in ds.four_class("training", multi="priority")] == [
        ("c1", 1), ("c2", 0), ("c3", 0), ("c4", 2), ("c5", 3),
    ]  # fmt: skip
    assert [r.image_id for r in ds.normal("training")] == ["c2", "c3"]


def test_cxr_strict_and_missing_columns(cxr_root: Path) -> None:
    with pytest.raises(DataError) as info:
        CxrDataset.open(cxr_root, strict=True)
    assert info.value.line == 17 and "image_labels_train.csv:17" in str(info.value)
    write(cxr_root / "annotations" / "image_labels_test.csv", "image_id,COPD", ["t1,0"])
    with pytest.raises(DataError, match="missing label column"):
        CxrDataset.open(cxr_root)


def test_cxr_sizes_from_dicom_header_clip_boxes(cxr_root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Uses a stand-in for linop_core.dicom.read_dicom_meta: only Rows/Columns matter here."""
    (cxr_root / "train").mkdir()
    for name in ("c3", "c4"):
        (cxr_root / "train" / f"{name}.dicom").write_bytes(b"stand-in")

    def read_dicom_meta(path: Path) -> types.SimpleNamespace:
        if path.stem == "c4":
            raise DicomError(path, "not a DICOM file")
        return types.SimpleNamespace(rows=800, columns=450)

    monkeypatch.setitem(sys.modules, "linop_core.dicom", types.SimpleNamespace(read_dicom_meta=read_dicom_meta))
    calls: list[tuple[int, int]] = []
    ds = open_cxr(cxr_root, progress=lambda done, total: calls.append((done, total)))
    assert calls == [(i, 7) for i in range(1, 8)]
    c3 = ds.by_id("c3")
    assert (c3.height, c3.width) == (800, 450)
    assert c3.findings[0].box == (0.0, 10.0, 450.0, 800.0)
    assert ds.by_id("c4").height is None
    assert any("c4.dicom: size unknown" in p for p in ds.report.problems)
    assert ds.report.missing_files == 5


def test_kaggle_train_csv_layout(tmp_path: Path) -> None:
    rows = [
        "k1,No finding,14,R1,,,,",
        "k1,No finding,14,R2,,,,",
        "k1,No finding,14,R3,,,,",
        "k2,Pleural effusion,10,R8,691,1375,1653,1831",
        "k2,Pleural effusion,10,R9,700,1380,1650,1820",
        "k2,Cardiomegaly,3,R10,1000,1500,1800,1900",
        "k2,Cardiomegaly,x,R10,1000,1500,1800,1900",
    ]
    write(tmp_path / "train.csv", "image_id,class_name,class_id,rad_id,x_min,y_min,x_max,y_max", rows)
    with pytest.warns(UserWarning):
        ds = open_dataset(tmp_path)
    assert isinstance(ds, CxrDataset) and ds.layout == "kaggle" and not ds.has_global_labels
    assert ds.by_id("k1").labels == ("No finding",)
    k2 = ds.by_id("k2")
    assert k2.labels == ("Pleural effusion",) and k2.split == "training"
    assert [(f.categories[0], round(f.score, 3)) for f in k2.findings] == [
        ("Cardiomegaly", 0.333),
        ("Pleural effusion", 0.667),
    ]
    assert ds.report.problems == [f"{tmp_path / 'train.csv'}:8: class_id 'x' is not a whole number"]
    with pytest.raises(DataError, match="image_labels"):
        ds.four_class()


def test_open_dataset_detects_layouts(mammo_root: Path, cxr_root: Path, tmp_path: Path) -> None:
    with pytest.warns(UserWarning):
        assert isinstance(open_dataset(mammo_root), MammoDataset)
    with pytest.warns(UserWarning):
        assert isinstance(open_dataset(cxr_root), CxrDataset)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DataError, match="empty: no VinDr CSV files found"):
        open_dataset(empty)
    with pytest.raises(DataError, match="not a folder"):
        open_dataset(tmp_path / "nope")
