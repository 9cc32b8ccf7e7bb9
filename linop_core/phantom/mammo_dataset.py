"""Write a VinDr-Mammo-shaped phantom dataset: ``images/<study_id>/<image_id>.dicom`` plus the three CSVs.

Every study has four images (R/L x CC/MLO) from one device profile. Studies are split ~80/20 into
training/test at study level. Labels follow VinDr's conventions: breast-level BI-RADS and density on every
image, one ``finding_annotations.csv`` row per box, and a ``['No Finding']`` row with empty coordinates for
an image without boxes -- which, as in VinDr, does not mean normal: a mass seen in one view only leaves the
other view of that breast without a box but with the breast's BI-RADS 3-5.

Prevalences are enriched relative to VinDr (masses on about 30 % of studies instead of 12 %) so that
small phantom sets still contain findings, while about 2/3 of the images stay BI-RADS 1 as in VinDr. The
first studies cycle through vendors (MONOCHROME1 and MONOCHROME2 first) and density classes, so every quirk
appears in sets as small as four studies, and each split gets at least one study with a mass.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Literal

import numpy as np

from linop_core.phantom.dicom_writer import MAMMO_PROFILES, DicomIdentity, WrittenImage, hex_id, write_dicom
from linop_core.phantom.mammo import DENSITIES, MASS_SHAPES, MassSpec, render_mammogram
from linop_core.phantom.records import (
    PhantomSummary,
    ProgressFn,
    check_arguments,
    coverage_order,
    fmt_coord,
    random_study_date,
    split_indices,
    write_csv_atomic,
)
from linop_core.vindr.mammo import BREAST_LEVEL_COLUMNS, FINDING_COLUMNS

METADATA_COLUMNS: tuple[str, ...] = (
    "SOP Instance UID", "Series Instance UID", "Study Instance UID", "Patient's Age", "View Position",
    "Image Laterality", "Photometric Interpretation", "Rows", "Columns", "Imager Pixel Spacing", "Bits Stored",
    "Window Center", "Window Width", "Window Center & Width Explanation", "VOI LUT Function",
    "Pixel Padding Value", "Rescale Slope", "Rescale Intercept", "Presentation LUT Shape", "Manufacturer",
    "Manufacturer's Model Name",
)

# density prior (VinDr: A 0.5 %, B 9.5 %, C 76.5 %, D 13.5 %), after the first four studies cycle A..D
_DENSITY_P = (0.01, 0.12, 0.72, 0.15)
_MASS_STUDY_P = 0.3
_BIRADS1_P = 0.8  # breasts without a mass: BI-RADS 1, else 2 (about 2/3 of all images end up BI-RADS 1)
_SHAPE_P = (0.2, 0.3, 0.3, 0.2)
_FINDING_BIRADS = {  # (categories, probabilities) of the finding BI-RADS by mass shape
    "round": ((3, 4), (0.8, 0.2)),
    "oval": ((3, 4), (0.75, 0.25)),
    "irregular": ((3, 4, 5), (0.15, 0.65, 0.2)),
    "spiculated": ((4, 5), (0.45, 0.55)),
}
_VIEWS = (("R", "CC"), ("L", "CC"), ("R", "MLO"), ("L", "MLO"))  # instance order within a study
_ORIENTATION = {("L", "CC"): ("A", "R"), ("R", "CC"): ("P", "L"), ("L", "MLO"): ("A", "FR"),
                ("R", "MLO"): ("P", "FL")}


def _sample_mass(rng: np.random.Generator) -> MassSpec:
    shape = MASS_SHAPES[int(rng.choice(len(MASS_SHAPES), p=_SHAPE_P))]
    categories, probs = _FINDING_BIRADS[shape]
    size = float(np.clip(rng.lognormal(np.log(0.066), 0.4), 0.025, 0.22))
    return MassSpec(
        shape=shape,
        depth=float(rng.uniform(0.3, 0.78)),
        lateral=float(rng.uniform(-0.8, 0.8)),
        size=size,
        contrast=float(rng.uniform(0.1, 0.25)),
        birads=int(rng.choice(categories, p=probs)),
    )


def _list_string(items: list[str]) -> str:
    """Python-list string as in VinDr's CSV, e.g. "['Mass']"."""
    return "[" + ", ".join(repr(item) for item in items) + "]"


def _window_text(values: tuple[float, ...]) -> str:
    return str(values[0]) if len(values) == 1 else str(list(values))


def make_mammo_dataset(
    out: Path,
    n: int,
    seed: int,
    size: Literal["small", "full"] = "small",
    progress: ProgressFn | None = None,
) -> PhantomSummary:
    """Write ``n`` four-view studies under ``out`` and return what was written.

    ``progress(done_studies, n)`` is called after each study.

    Deterministic: the same (n, seed, size) gives byte-identical files.
    """
    check_arguments(n, size)
    out = Path(out)
    seeds = np.random.SeedSequence(seed).spawn(n + 1)
    plan = np.random.default_rng(seeds[0])

    vendor_order = coverage_order(plan.permutation(len(MAMMO_PROFILES)), [p.photometric for p in MAMMO_PROFILES])
    density_order = plan.permutation(len(DENSITIES))
    weights = np.array([p.weight for p in MAMMO_PROFILES])
    test = split_indices(n, 0.2, [int(i) for i in plan.permutation(n)])

    studies = []
    for s in range(n):
        vendor = vendor_order[s] if s < len(vendor_order) else int(plan.choice(len(weights), p=weights / weights.sum()))
        density_index = int(density_order[s]) if s < len(DENSITIES) else int(plan.choice(4, p=_DENSITY_P))
        density = DENSITIES[density_index]
        studies.append({"vendor": vendor, "density": density, "mass": bool(plan.random() < _MASS_STUDY_P)})
    for in_test in (False, True):  # at least one mass study per split, when the split exists
        members = [s for s in range(n) if (s in test) == in_test]
        if members and not any(studies[s]["mass"] for s in members):
            studies[members[0]]["mass"] = True

    breast_rows: list[list[object]] = []
    finding_rows: list[list[object]] = []
    meta_rows: list[list[object]] = []
    written: list[WrittenImage] = []
    for s, study in enumerate(studies):
        profile = MAMMO_PROFILES[study["vendor"]]
        split = "test" if s in test else "training"
        study_id = hex_id(plan)
        rows, cols = profile.shape(size, plan)
        masses: dict[str, list[MassSpec]] = {"L": [], "R": []}
        views_with_mass: dict[str, set[str]] = {"L": set(), "R": set()}
        if study["mass"]:
            side = "L" if plan.random() < 0.5 else "R"
            count = int(plan.choice((1, 2, 3), p=(0.85, 0.12, 0.03)))
            masses[side] = [_sample_mass(plan) for _ in range(count)]
            views_with_mass[side] = {"CC", "MLO"} if plan.random() < 0.9 else {str(plan.choice(("CC", "MLO")))}
        birads: dict[str, int] = {}
        for side in ("L", "R"):
            if masses[side]:
                birads[side] = max(m.birads for m in masses[side])
            else:
                birads[side] = 1 if plan.random() < _BIRADS1_P else 2
        series = {side: hex_id(plan) for side in ("R", "L")}
        identity_base = {
            "patient_id": f"PHANTOM{study_id[:10].upper()}",
            "study_date": random_study_date(plan),
            "patient_age": f"{int(plan.integers(38, 76)):03d}Y",
        }
        image_ids = [hex_id(plan) for _ in _VIEWS]
        render_rng = np.random.default_rng(seeds[s + 1])
        for index, ((side, view), image_id) in enumerate(zip(_VIEWS, image_ids, strict=True)):
            shown = masses[side] if view in views_with_mass[side] else []
            phantom = render_mammogram(
                render_rng, laterality=side, view=view, density=study["density"], height=rows, width=cols,
                masses=shown, bits_stored=profile.bits_stored,
                benign_calcifications=int(render_rng.integers(2, 6)) if birads[side] == 2 else 0,
            )
            identity = DicomIdentity(
                series_hex=series[side], image_hex=image_id, study_hex=study_id,
                series_number=1 if side == "R" else 2, instance_number=index + 1, patient_sex="F",
                **identity_base,
            )
            info = write_dicom(
                out / "images" / study_id / f"{image_id}.dicom", phantom.image, phantom.breast_mask, profile,
                identity, pixel_spacing_mm=profile.spacing(size), view_position=view, laterality=side,
                patient_orientation=_ORIENTATION[(side, view)], body_part="BREAST",
                study_description="MAMMOGRAPHY SCREENING (PHANTOM)",
            )
            written.append(info)
            head = [study_id, series[side], image_id, side, view, rows, cols,
                    f"BI-RADS {birads[side]}", f"DENSITY {study['density']}"]
            breast_rows.append([*head, split])
            if phantom.boxes:
                for spec, (x0, y0, x1, y1) in zip(phantom.masses, phantom.boxes, strict=True):
                    finding_rows.append([*head, _list_string(["Mass"]), f"BI-RADS {spec.birads}",
                                         fmt_coord(x0), fmt_coord(y0), fmt_coord(x1), fmt_coord(y1), split])
            else:
                finding_rows.append([*head, _list_string(["No Finding"]), "", "", "", "", "", split])
            meta_rows.append([
                image_id, series[side], study_id, identity.patient_age, view, side, info.photometric, rows, cols,
                str([profile.spacing(size)] * 2), profile.bits_stored, _window_text(info.window_centers),
                _window_text(info.window_widths),
                str(["NORMAL", "HARDER", "SOFTER"][: len(info.window_centers)]) if len(info.window_centers) > 1 else "",
                profile.voi_lut_function or "", "" if info.padding_value is None else info.padding_value,
                "" if profile.rescale is None else profile.rescale[0],
                "" if profile.rescale is None else profile.rescale[1],
                "INVERSE" if info.photometric == "MONOCHROME1" else "IDENTITY",
                profile.manufacturer, profile.model,
            ])
        if progress is not None:
            progress(s + 1, n)

    write_csv_atomic(out / "breast-level_annotations.csv", BREAST_LEVEL_COLUMNS, breast_rows)
    write_csv_atomic(out / "finding_annotations.csv", FINDING_COLUMNS, finding_rows)
    write_csv_atomic(out / "metadata.csv", METADATA_COLUMNS, meta_rows)
    return PhantomSummary(root=out, modality="mammo", n_studies=n, n_images=len(breast_rows),
                          counts=_mammo_counts(breast_rows, finding_rows, written))


def _mammo_counts(breast_rows: list[list[object]], finding_rows: list[list[object]],
                  written: list[WrittenImage]) -> dict[str, int]:
    counts: Counter[str] = Counter()
    for row in breast_rows:
        split = str(row[-1])
        counts[f"images_{split}"] += 1
        counts[str(row[7]).replace("BI-RADS ", "birads_")] += 1
        counts[str(row[8]).replace("DENSITY ", "density_")] += 1
        counts["normal_images"] += row[7] == "BI-RADS 1"
    counts["studies_training"] = len({row[0] for row in breast_rows if row[-1] == "training"})
    counts["studies_test"] = len({row[0] for row in breast_rows if row[-1] == "test"})
    for row in finding_rows:
        if row[9] == "['Mass']":
            counts["mass_boxes"] += 1
            counts[f"mass_boxes_{row[-1]}"] += 1
        else:
            counts["no_finding_rows"] += 1
    counts["images_with_mass"] = len({row[2] for row in finding_rows if row[9] == "['Mass']"})
    for info in written:
        counts[info.photometric.lower()] += 1
        counts["padded_images"] += info.padding_value is not None
        counts["multi_window_images"] += len(info.window_centers) > 1
    return dict(sorted(counts.items()))
