"""Procedural phantoms: VinDr layouts and schemas, DICOM round trip, determinism, visible findings."""

from __future__ import annotations

import ast
import csv
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.pixels import apply_modality_lut

from linop_core.errors import LinopError
from linop_core.phantom import (
    MASS_SHAPES,
    MassSpec,
    make_cxr_dataset,
    make_mammo_dataset,
    render_cxr,
    render_mammogram,
    render_mass,
)
from linop_core.phantom.dicom_writer import MAMMO_PROFILES, DicomIdentity, write_dicom

# The exact headers from vindr-data.md (written out here, not imported, so a drift in the code fails).
BREAST_COLUMNS = [
    "study_id", "series_id", "image_id", "laterality", "view_position", "height", "width", "breast_birads",
    "breast_density", "split",
]
FINDING_COLUMNS = [
    "study_id", "series_id", "image_id", "laterality", "view_position", "height", "width", "breast_birads",
    "breast_density", "finding_categories", "finding_birads", "xmin", "ymin", "xmax", "ymax", "split",
]
CXR_ANN_COLUMNS = ["image_id", "rad_id", "class_name", "x_min", "y_min", "x_max", "y_max"]
CXR_LOCAL = ["Aortic enlargement", "Atelectasis", "Calcification", "Cardiomegaly", "Clavicle fracture",
             "Consolidation", "Edema", "Emphysema", "Enlarged PA", "ILD", "Infiltration", "Lung Opacity",
             "Lung cavity", "Lung cyst", "Mediastinal shift", "Nodule/Mass", "Pleural effusion",
             "Pleural thickening", "Pneumothorax", "Pulmonary fibrosis", "Rib fracture", "Other lesion"]
MAMMO_VENDORS = {("Siemens", "Mammomat Inspiration"), ("Planmed", "Nuance"), ("IMS Giotto SpA", "Giotto Image 3DL"),
                 ("IMS srl", "Giotto Class")}
NATIVE_MAMMO = {(3518, 2800), (2812, 2012)} | {(3580, w) for w in range(2531, 2813)}


def read_csv(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    with path.open(newline="") as handle:
        reader = csv.DictReader(handle)
        return list(reader.fieldnames or []), list(reader)


def as_monochrome2(ds: pydicom.Dataset) -> np.ndarray:
    """Plain-pydicom reading: raw stored values, MONOCHROME1 inverted with 2**BitsStored - 1 - x."""
    pixels = ds.pixel_array.astype(np.int64)
    if ds.PhotometricInterpretation == "MONOCHROME1":
        pixels = (1 << ds.BitsStored) - 1 - pixels
    return pixels


@pytest.fixture(scope="module")
def mammo(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("mammo")
    calls: list[tuple[int, int]] = []
    summary = make_mammo_dataset(root, n=3, seed=11, progress=lambda d, t: calls.append((d, t)))
    return root, summary, calls


@pytest.fixture(scope="module")
def cxr(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("cxr")
    summary = make_cxr_dataset(root, n=6, seed=5)
    return root, summary


# ---------------------------------------------------------------- mammography dataset


def test_mammo_csv_headers_are_exact(mammo) -> None:
    root, _, _ = mammo
    assert read_csv(root / "breast-level_annotations.csv")[0] == BREAST_COLUMNS
    assert read_csv(root / "finding_annotations.csv")[0] == FINDING_COLUMNS
    meta_columns = read_csv(root / "metadata.csv")[0]
    for column in ("SOP Instance UID", "Window Center", "Window Width", "Photometric Interpretation",
                   "Pixel Padding Value", "Manufacturer's Model Name"):
        assert column in meta_columns


def test_mammo_layout_and_values(mammo) -> None:
    root, summary, calls = mammo
    _, breast = read_csv(root / "breast-level_annotations.csv")
    assert len(breast) == 4 * 3 == summary.n_images and summary.n_studies == 3
    by_study: dict[str, set[tuple[str, str]]] = defaultdict(set)
    for row in breast:
        assert len(row["study_id"]) == 32 and len(row["image_id"]) == 32
        int(row["study_id"], 16), int(row["image_id"], 16)
        assert (root / "images" / row["study_id"] / f"{row['image_id']}.dicom").is_file()
        by_study[row["study_id"]].add((row["laterality"], row["view_position"]))
        assert row["breast_birads"] in {f"BI-RADS {k}" for k in range(1, 6)}
        assert row["breast_density"] in {f"DENSITY {k}" for k in "ABCD"}
        assert row["split"] in {"training", "test"}
    assert all(views == {("L", "CC"), ("L", "MLO"), ("R", "CC"), ("R", "MLO")} for views in by_study.values())
    splits = {row["study_id"]: row["split"] for row in breast}
    assert set(splits.values()) == {"training", "test"}  # split at study level, both present
    assert calls == [(1, 3), (2, 3), (3, 3)]  # one call per study


def test_mammo_findings_and_counts_match_summary(mammo) -> None:
    root, summary, _ = mammo
    _, breast = read_csv(root / "breast-level_annotations.csv")
    _, findings = read_csv(root / "finding_annotations.csv")
    breast_by_image = {row["image_id"]: row for row in breast}
    assert set(breast_by_image) == {row["image_id"] for row in findings}
    mass_rows = 0
    for row in findings:
        categories = ast.literal_eval(row["finding_categories"])
        if categories == ["No Finding"]:
            assert row["xmin"] == row["ymin"] == row["xmax"] == row["ymax"] == row["finding_birads"] == ""
            continue
        assert categories == ["Mass"]
        mass_rows += 1
        x0, y0, x1, y1 = (float(row[k]) for k in ("xmin", "ymin", "xmax", "ymax"))
        assert 0 <= x0 < x1 <= int(row["width"]) and 0 <= y0 < y1 <= int(row["height"])
        assert row["finding_birads"] in {"BI-RADS 3", "BI-RADS 4", "BI-RADS 5"}
        assert int(row["breast_birads"][-1]) >= int(row["finding_birads"][-1])
    counts = summary.counts
    assert counts["mass_boxes"] == mass_rows > 0
    assert counts["no_finding_rows"] == len(findings) - mass_rows
    assert counts["normal_images"] == sum(row["breast_birads"] == "BI-RADS 1" for row in breast)
    assert counts["images_training"] + counts["images_test"] == len(breast)
    assert counts["images_test"] == sum(row["split"] == "test" for row in breast)
    assert counts["monochrome1"] > 0 and counts["monochrome2"] > 0


def test_mammo_dicom_tags_and_pixels(mammo) -> None:
    root, _, _ = mammo
    _, breast = read_csv(root / "breast-level_annotations.csv")
    _, meta = read_csv(root / "metadata.csv")
    meta_by_image = {row["SOP Instance UID"]: row for row in meta}
    photometrics = set()
    for row in breast:
        ds = pydicom.dcmread(root / "images" / row["study_id"] / f"{row['image_id']}.dicom")
        assert ds.SOPClassUID == "1.2.840.10008.5.1.4.1.1.1.2"  # Digital Mammography For Presentation
        assert ds.file_meta.TransferSyntaxUID == pydicom.uid.ExplicitVRLittleEndian
        assert ds.Modality == "MG" and ds.PresentationIntentType == "FOR PRESENTATION"
        assert ds.ImageLaterality == ds.Laterality == row["laterality"]
        assert ds.ViewPosition == row["view_position"]
        assert (ds.Rows, ds.Columns) == (int(row["height"]), int(row["width"]))
        assert ds.BitsAllocated == 16 and ds.BitsStored in (12, 14, 16) and ds.HighBit == ds.BitsStored - 1
        assert (ds.Manufacturer, ds.ManufacturerModelName) in MAMMO_VENDORS
        assert pydicom.uid.UID(ds.SOPInstanceUID).is_valid
        assert ds.ImageComments == f"image_id={row['image_id']}"
        assert ds.PresentationLUTShape == ("INVERSE" if ds.PhotometricInterpretation == "MONOCHROME1" else "IDENTITY")
        photometrics.add(ds.PhotometricInterpretation)
        pixels = as_monochrome2(ds)
        assert pixels.shape == (ds.Rows, ds.Columns)
        if "PixelPaddingValue" in ds:
            raw = ds.pixel_array
            assert (raw == ds.PixelPaddingValue).mean() > 0.05  # background is padding
            assert pixels[raw == ds.PixelPaddingValue].max() == 0  # ...and black once read as MONOCHROME2
        centers = ds.WindowCenter
        if isinstance(centers, pydicom.multival.MultiValue):
            assert len(ds.WindowWidth) == len(centers) == len(ds.WindowCenterWidthExplanation)
            assert meta_by_image[row["image_id"]]["Window Center"].startswith("[")
        # the first window covers the breast: most breast pixels lie inside it (in stored units)
        c, w = float(centers[0] if isinstance(centers, pydicom.multival.MultiValue) else centers), float(
            ds.WindowWidth[0] if isinstance(ds.WindowWidth, pydicom.multival.MultiValue) else ds.WindowWidth)
        values = apply_modality_lut(ds.pixel_array, ds)
        assert ((values > c - w / 2) & (values < c + w / 2)).mean() > 0.3
    assert photometrics == {"MONOCHROME1", "MONOCHROME2"}


@pytest.mark.slow
def test_mammo_dataset_is_deterministic(tmp_path: Path) -> None:
    a = make_mammo_dataset(tmp_path / "a", n=1, seed=3)
    b = make_mammo_dataset(tmp_path / "b", n=1, seed=3)
    c = make_mammo_dataset(tmp_path / "c", n=1, seed=4)
    files_a = sorted(p.relative_to(a.root) for p in a.root.rglob("*") if p.is_file())
    files_b = sorted(p.relative_to(b.root) for p in b.root.rglob("*") if p.is_file())
    assert files_a == files_b and len(files_a) == 4 + 3
    assert all((a.root / f).read_bytes() == (b.root / f).read_bytes() for f in files_a)
    assert a.counts == b.counts
    assert (a.root / "finding_annotations.csv").read_bytes() != (c.root / "finding_annotations.csv").read_bytes()


def test_bad_arguments_raise_linop_error(tmp_path: Path) -> None:
    with pytest.raises(LinopError, match="--n"):
        make_mammo_dataset(tmp_path, n=0, seed=0)
    with pytest.raises(LinopError, match="--size"):
        make_cxr_dataset(tmp_path, n=1, seed=0, size="huge")  # type: ignore[arg-type]


# ---------------------------------------------------------------- mammography renderer


def test_render_mammogram_geometry_and_determinism() -> None:
    kwargs = dict(view="MLO", density="C", height=440, width=350)
    left = render_mammogram(np.random.default_rng(1), laterality="L", **kwargs)
    again = render_mammogram(np.random.default_rng(1), laterality="L", **kwargs)
    other = render_mammogram(np.random.default_rng(2), laterality="L", **kwargs)
    right = render_mammogram(np.random.default_rng(1), laterality="R", **kwargs)
    assert left.image.dtype == np.uint16 and left.image.shape == (440, 350)
    assert np.array_equal(left.image, again.image) and not np.array_equal(left.image, other.image)
    # left breast: chest wall on the image's left edge; right breast mirrored
    assert left.breast_mask[:, :10].mean() > 0.5 > left.breast_mask[:, -10:].mean()
    assert np.array_equal(right.breast_mask, left.breast_mask[:, ::-1])
    assert left.nipple[0] > 350 / 2 > right.nipple[0]
    # MLO: pectoral muscle in the upper corner at the chest wall, brighter than the breast below it
    assert left.pectoral_mask[:40, :20].mean() > 0.8 and not left.pectoral_mask[-40:].any()
    tissue = left.breast_mask & ~left.pectoral_mask
    assert left.image[left.pectoral_mask].mean() > left.image[tissue].mean()
    assert left.image[left.breast_mask].mean() > 2 * left.image[~left.breast_mask].mean()
    cc = render_mammogram(np.random.default_rng(1), laterality="L", view="CC", density="C", height=440, width=350)
    assert not cc.pectoral_mask.any()


def test_density_classes_increase_brightness() -> None:
    means = []
    for density in "ABCD":
        phantom = render_mammogram(np.random.default_rng(4), laterality="L", view="CC", density=density,
                                   height=400, width=320)
        means.append(phantom.image[phantom.breast_mask].mean())
    assert means == sorted(means) and means[3] > 1.2 * means[0]


@pytest.mark.parametrize("density", ["A", "D"])
def test_masses_are_boxed_and_visible(density: str) -> None:
    spec = MassSpec("irregular", depth=0.5, lateral=0.2, size=0.1, contrast=0.12, birads=4)
    kwargs = dict(laterality="R", view="CC", density=density, height=500, width=400)
    plain = render_mammogram(np.random.default_rng(9), **kwargs)
    with_mass = render_mammogram(np.random.default_rng(9), masses=[spec], **kwargs)
    (x0, y0, x1, y1), = with_mass.boxes
    assert 0 <= x0 < x1 <= 400 and 0 <= y0 < y1 <= 500 and 35 <= y1 - y0 <= 65
    ys, xs = slice(int(y0), int(y1)), slice(int(x0), int(x1))
    inner = (slice(int(y0 + 0.3 * (y1 - y0)), int(y1 - 0.3 * (y1 - y0))),
             slice(int(x0 + 0.3 * (x1 - x0)), int(x1 - 0.3 * (x1 - x0))))
    padded = (slice(int(y0) - 2, int(y1) + 2), slice(int(x0) - 2, int(x1) + 2))
    assert not plain.mass_mask.any() and with_mass.mass_mask[padded].sum() == with_mass.mass_mask.sum() > 0
    core_gain = with_mass.image[inner].astype(float).mean() - plain.image[inner].astype(float).mean()
    tissue_std = plain.image[plain.breast_mask].astype(float).std()
    assert core_gain > 0.5 * tissue_std  # stands out from normal tissue, also in dense breasts
    margin = int(0.5 * (y1 - y0))
    outside = np.ones_like(plain.breast_mask)
    outside[max(0, ys.start - margin):ys.stop + margin, max(0, xs.start - margin):xs.stop + margin] = False
    assert np.array_equal(plain.image[outside], with_mass.image[outside])  # drawn only around its box


@pytest.mark.parametrize("shape", MASS_SHAPES)
def test_render_mass_shapes(shape: str) -> None:
    patch = render_mass(np.random.default_rng(0), shape, 64, 64)  # type: ignore[arg-type]
    assert patch.profile.shape == (64, 64) and patch.profile.dtype == np.float32
    assert patch.profile.min() >= 0.0 and patch.profile.max() <= 1.0
    assert patch.profile[32, 32] > 0.7 and patch.profile[0, 0] < 0.1 and patch.mask.any()


def test_mass_shapes_differ_in_margin() -> None:
    def perimeter_ratio(shape: str) -> float:
        mask = render_mass(np.random.default_rng(3), shape, 96, 96).profile > 0.35  # type: ignore[arg-type]
        edge = mask ^ np.pad(mask[1:-1, 1:-1] & mask[:-2, 1:-1] & mask[2:, 1:-1] & mask[1:-1, :-2]
                             & mask[1:-1, 2:], 1)
        return edge.sum() / np.sqrt(mask.sum())

    assert perimeter_ratio("spiculated") > 1.3 * perimeter_ratio("round")
    oval = render_mass(np.random.default_rng(3), "oval", 96, 96, angle=0.0).profile > 0.5
    rows, cols = np.flatnonzero(oval.any(axis=1)), np.flatnonzero(oval.any(axis=0))
    assert cols.size > 1.25 * rows.size  # elongated along its angle


def test_write_dicom_round_trip_monochrome1_with_padding(tmp_path: Path) -> None:
    phantom = render_mammogram(np.random.default_rng(0), laterality="L", view="CC", density="B", height=300,
                               width=240, bits_stored=16)
    profile = next(p for p in MAMMO_PROFILES if p.photometric == "MONOCHROME1" and p.padding)
    identity = DicomIdentity(patient_id="P1", study_hex="ab" * 16, series_hex="cd" * 16, image_hex="ef" * 16,
                             series_number=1, instance_number=1, study_date="20190101", patient_age="050Y",
                             patient_sex="F")
    path = tmp_path / "x.dicom"
    write_dicom(path, phantom.image, phantom.breast_mask, profile, identity, pixel_spacing_mm=0.34,
                view_position="CC", laterality="L", patient_orientation=("A", "R"), body_part="BREAST",
                study_description="t")
    ds = pydicom.dcmread(path)
    assert ds.PhotometricInterpretation == "MONOCHROME1" and ds.PixelPaddingValue == 65535
    back = as_monochrome2(ds)
    assert np.array_equal(back[phantom.breast_mask], phantom.image[phantom.breast_mask])
    assert not back[~phantom.breast_mask].any()
    assert ds.SOPInstanceUID == identity.sop_uid and not list(tmp_path.glob(".*tmp"))


# ---------------------------------------------------------------- chest X-ray dataset


def test_cxr_layout_headers_and_readers(cxr) -> None:
    root, summary = cxr
    train_cols, train_ann = read_csv(root / "annotations" / "annotations_train.csv")
    test_cols, test_ann = read_csv(root / "annotations" / "annotations_test.csv")
    assert train_cols == test_cols == CXR_ANN_COLUMNS
    label_train_cols, label_train = read_csv(root / "annotations" / "image_labels_train.csv")
    label_test_cols, label_test = read_csv(root / "annotations" / "image_labels_test.csv")
    assert label_train_cols[2:] == [*CXR_LOCAL, "COPD", "Lung tumor", "Pneumonia", "Tuberculosis",
                                    "Other diseases", "No finding"]
    assert label_test_cols[2:] == [*CXR_LOCAL, "COPD", "Lung tumor", "Pneumonia", "Tuberculosis",
                                   "Other disease", "No finding"]
    train_ids = {p.stem for p in (root / "train").glob("*.dicom")}
    test_ids = {p.stem for p in (root / "test").glob("*.dicom")}
    assert len(train_ids) + len(test_ids) == summary.n_images == 6 and train_ids and test_ids
    readers: dict[str, set[str]] = defaultdict(set)
    for row in label_train:
        readers[row["image_id"]].add(row["rad_id"])
    assert set(readers) == train_ids
    for rads in readers.values():
        assert len(rads) == 3 and all(r.startswith("R") and 1 <= int(r[1:]) <= 17 for r in rads)
    assert Counter(row["image_id"] for row in label_test) == Counter(dict.fromkeys(test_ids, 1))
    for row in train_ann + test_ann:
        if row["class_name"] == "No finding":
            assert row["x_min"] == row["y_min"] == row["x_max"] == row["y_max"] == ""
        else:
            assert float(row["x_min"]) < float(row["x_max"]) and float(row["y_min"]) < float(row["y_max"])
    # every class occurs in the training split (the first images of a split cycle through the four)
    classes = {row["class_name"] for row in train_ann}
    assert {"No finding", "Pleural effusion", "Pneumothorax", "Consolidation"} <= classes
    assert any(row["Pneumonia"] == "1" for row in label_train)


def test_cxr_labels_agree_with_boxes_and_counts(cxr) -> None:
    root, summary = cxr
    _, train_ann = read_csv(root / "annotations" / "annotations_train.csv")
    _, label_train = read_csv(root / "annotations" / "image_labels_train.csv")
    boxes_by_reading: dict[tuple[str, str], set[str]] = defaultdict(set)
    for row in train_ann:
        boxes_by_reading[(row["image_id"], row["rad_id"])].add(row["class_name"])
    for row in label_train:
        names = boxes_by_reading[(row["image_id"], row["rad_id"])]
        assert {c for c in CXR_LOCAL if row[c] == "1"} == names - {"No finding"}
        assert (row["No finding"] == "1") == (names == {"No finding"} and row["Pneumonia"] == "0")
    counts = summary.counts
    assert counts["images_train"] + counts["images_test"] == 6
    assert counts["label_rows_train"] == len(label_train)
    assert counts.get("Pneumothorax_boxes_train", 0) == sum(r["class_name"] == "Pneumothorax" for r in train_ann)
    assert counts.get("No_finding_rows_train", 0) == sum(r["class_name"] == "No finding" for r in train_ann)


def test_cxr_dicoms(cxr) -> None:
    root, _ = cxr
    photometrics = set()
    for path in sorted(root.glob("*/*.dicom")):
        ds = pydicom.dcmread(path)
        assert ds.Modality in ("DX", "CR") and ds.ViewPosition == "PA" and ds.BodyPartExamined == "CHEST"
        assert ds.ImageComments == f"image_id={path.stem}" and "Laterality" not in ds
        photometrics.add(ds.PhotometricInterpretation)
        image = as_monochrome2(ds)
        h, w = image.shape
        # lungs dark, mediastinum / spine bright (MONOCHROME2 after reading)
        lung_band = image[int(0.35 * h):int(0.55 * h), int(0.2 * w):int(0.3 * w)].mean()
        spine_band = image[int(0.35 * h):int(0.55 * h), int(0.48 * w):int(0.52 * w)].mean()
        assert spine_band > 1.3 * lung_band
        if "RescaleIntercept" in ds:
            values = apply_modality_lut(ds.pixel_array, ds)
            assert np.allclose(values, ds.pixel_array * float(ds.RescaleSlope) + float(ds.RescaleIntercept))
    assert photometrics == {"MONOCHROME1", "MONOCHROME2"}


# ---------------------------------------------------------------- chest X-ray renderer


def test_render_cxr_findings_change_their_box() -> None:
    kwargs = dict(height=400, width=330)
    normal = render_cxr(np.random.default_rng(2), finding="normal", **kwargs)
    assert normal.boxes == () and normal.global_labels == ()
    assert normal.image.dtype == np.uint16 and normal.lung_mask[:, : 330 // 2].any() and normal.lung_mask[:, 165:].any()
    again = render_cxr(np.random.default_rng(2), finding="normal", **kwargs)
    assert np.array_equal(normal.image, again.image)

    effusion = render_cxr(np.random.default_rng(2), finding="pleural effusion", **kwargs)
    (name, (x0, y0, x1, y1)), = effusion.boxes
    assert name == "Pleural effusion" and y1 > 0.5 * 400  # dependent: in the lower chest
    fluid = effusion.finding_mask
    assert fluid.any() and fluid[int(y0):int(y1), int(x0):int(x1)].sum() == fluid.sum()
    assert effusion.image[fluid].mean() > 1.2 * normal.image[fluid].mean()  # fluid is opaque

    ptx = render_cxr(np.random.default_rng(2), finding="pneumothorax", **kwargs)
    (name, (x0, y0, x1, y1)), = ptx.boxes
    assert name == "Pneumothorax" and y0 < 0.4 * 400  # apical
    air = ptx.finding_mask
    assert air.any() and air[int(y0):int(y1), int(x0):int(x1)].sum() == air.sum()
    assert ptx.image[air].mean() < normal.image[air].mean()  # more lucent, no lung markings
    assert np.array_equal(ptx.image[:, :5], normal.image[:, :5])  # same anatomy and noise elsewhere

    pneumonia = render_cxr(np.random.default_rng(2), finding="pneumonia", **kwargs)
    assert pneumonia.global_labels == ("Pneumonia",) and pneumonia.boxes
    assert pneumonia.image[pneumonia.finding_mask].mean() > 1.1 * normal.image[pneumonia.finding_mask].mean()
    for name, (x0, y0, x1, y1) in pneumonia.boxes:
        region = (slice(int(y0), int(y1)), slice(int(x0), int(x1)))
        assert name == "Consolidation" and pneumonia.image[region].mean() > normal.image[region].mean()


# ---------------------------------------------------------------- native sizes


@pytest.mark.slow
def test_full_size_gives_native_shapes(tmp_path: Path) -> None:
    mammo = make_mammo_dataset(tmp_path / "m", n=1, seed=0, size="full")
    _, breast = read_csv(mammo.root / "breast-level_annotations.csv")
    assert {(int(r["height"]), int(r["width"])) for r in breast} <= NATIVE_MAMMO
    ds = pydicom.dcmread(next((mammo.root / "images").rglob("*.dicom")), stop_before_pixels=True)
    assert (ds.Rows, ds.Columns) in NATIVE_MAMMO and float(ds.PixelSpacing[0]) < 0.1
    chest = make_cxr_dataset(tmp_path / "c", n=1, seed=0, size="full")
    ds = pydicom.dcmread(next(chest.root.rglob("*.dicom")), stop_before_pixels=True)
    assert 2000 <= max(ds.Rows, ds.Columns) <= 3100
