"""`linop-data` end to end: phantom then inspect round-trips the counts; bad input gives one clear line."""

from __future__ import annotations

import json

import pytest

from linop_core.cli.data import main
from linop_core.phantom import make_mammo_dataset


@pytest.mark.slow
def test_phantom_then_inspect_json_round_trips_the_counts(tmp_path, capsys) -> None:
    root = tmp_path / "mammo"
    assert main(["phantom", "mammo", "--out", str(root), "--n", "2", "--seed", "4"]) == 0
    printed = capsys.readouterr().out
    assert "images: 8" in printed
    assert main(["inspect", str(root), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    # The generator's own summary (same seed, same files) against what the readers find on disk.
    summary = make_mammo_dataset(tmp_path / "again", n=2, seed=4)
    assert report["images"] == summary.n_images == 8
    assert report["missing_on_disk"] == 0
    assert report["categories"].get("Mass", {}).get("boxes", 0) == (
        summary.counts["mass_boxes_training"] + summary.counts["mass_boxes_test"]
    )
    assert main(["inspect", str(root)]) == 0
    assert "VinDr-Mammo" in capsys.readouterr().out


def test_inspect_of_a_bad_file_names_it_in_one_line(tmp_path, capsys) -> None:
    bad = tmp_path / "scan.dcm"
    bad.write_bytes(b"not a dicom file at all")
    assert main(["inspect", str(bad)]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("linop-data: error: ") and str(bad) in err and "\n" not in err


def test_phantom_needs_a_positive_count(tmp_path, capsys) -> None:
    assert main(["phantom", "cxr", "--out", str(tmp_path), "--n", "0"]) == 2
    assert "--n" in capsys.readouterr().err
