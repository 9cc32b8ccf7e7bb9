"""trainer.proof on tiny data: the classifier learns and is deterministic, the phantom pairs are paired, the
windows match the phantom writer's, and the whole proof runs and writes its report."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest

from linop_core.model.checkpoint import save_checkpoint
from linop_core.model.presets import build_generator, get_config
from linop_core.phantom.dicom_writer import vendor_windows
from trainer.proof import cli as proof_cli
from trainer.proof.instruments import predict, train_crop_classifier, two_sample_accuracy
from trainer.proof.phantoms import held_out_cxr, held_out_pairs, render_pair, writer_window
from trainer.proof.run import run_proof
from trainer.proof.settings import ProofSettings

TINY = ProofSettings(
    mammo_shape=(300, 240), cxr_shape=(256, 224), train_cases=3, test_cases=1, cxr_train_per_class=2,
    cxr_test_per_class=1, epochs=1, cxr_epochs=1, train_jitter=1,
)



def _blobs(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    images = rng.uniform(0.2, 0.5, (n, 64, 64)).astype(np.float32)
    labels = np.arange(n) % 2
    yy, xx = np.mgrid[0:64, 0:64]
    for i in np.flatnonzero(labels):
        cy, cx = rng.integers(20, 44, 2)
        images[i][(yy - cy) ** 2 + (xx - cx) ** 2 < 100] += 0.4
    return images, labels


def test_classifier_learns_and_is_deterministic() -> None:
    x, y = _blobs(64, 0)
    settings = dataclasses.replace(TINY, epochs=8)
    model_a, report = train_crop_classifier(x, y, 2, settings, seed=3, name="t")
    model_b, _ = train_crop_classifier(x, y, 2, settings, seed=3, name="t")
    test_x, test_y = _blobs(64, 1)
    assert (predict(model_a, test_x) == test_y).mean() >= 0.9
    assert report.train_images == 64 and report.train_accuracy >= 0.9
    for a, b in zip(model_a.state_dict().values(), model_b.state_dict().values(), strict=True):
        assert np.array_equal(a.numpy(), b.numpy())


def test_two_sample_accuracy_separates_different_sets_and_not_equal_ones() -> None:
    x, y = _blobs(64, 2)
    settings = dataclasses.replace(TINY, epochs=8)
    different = two_sample_accuracy(x[y == 1], x[y == 0], settings, seed=0, folds=2)
    assert different >= 0.9
    same = two_sample_accuracy(x[y == 0][:16], x[y == 0][16:], settings, seed=0, folds=2)
    assert same <= 0.8


def test_render_pair_differs_only_at_the_mass_boxes() -> None:
    pair = render_pair((0, 9, 0), TINY)
    assert pair.boxes
    outside = np.ones(pair.normal.shape, dtype=bool)
    for x0, y0, x1, y1 in pair.boxes:
        # the box holds the profile above 20 %; its faint rim may touch the next pixel
        outside[max(int(y0) - 2, 0) : int(np.ceil(y1)) + 2, max(int(x0) - 2, 0) : int(np.ceil(x1)) + 2] = False
    assert np.array_equal(pair.normal[outside], pair.with_mass[outside])
    inside = ~outside
    assert pair.with_mass[inside].astype(float).mean() > pair.normal[inside].astype(float).mean()


def test_writer_window_is_the_phantom_writers_first_window() -> None:
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 4096, (50, 40)).astype(np.uint16)
    foreground = np.zeros((50, 40), dtype=bool)
    foreground[10:40, 5:30] = True
    centers, widths = vendor_windows(pixels, foreground, 1)
    window = writer_window(pixels, foreground)
    assert window.center == pytest.approx(centers[0]) and window.width == pytest.approx(widths[0])


@pytest.mark.slow
def test_proof_runs_end_to_end_and_reports(tmp_path: Path) -> None:
    config = dataclasses.replace(get_config("mat-small"), resolution=128, stage1_tokens=16, windows=(8, 8, 4, 8, 8))
    model = save_checkpoint(tmp_path / "tiny.pt", config=config, preset="mat-small",
                            G_ema=build_generator(config, seed=0), half=True)
    out = tmp_path / "proof"
    stages: list[str] = []
    result = run_proof(model, model, out, TINY, stage=stages.append, cache_dir=tmp_path / "cache")
    assert stages and (out / "examples.png").stat().st_size > 0
    report = json.loads((out / "proof.json").read_text(encoding="utf-8"))
    shares = report["inpaint"]["mass_share"]
    assert set(shares) == {"real", "normal", "mat", "biharmonic", "mat-untrained"}
    assert all(0.0 <= v <= 1.0 for v in shares.values())
    assert result.outpaint is not None and result.outpaint.images >= 1
    assert all(v > 0.0 for v in result.outpaint.regenerated_mad.values())  # regenerated pixels differ
    assert set(report["inpaint"]["fid"]) == {"proof-mass-cnn-64", "randconv-0-64"}
    assert set(report["inpaint"]["two_sample_accuracy"]) == {"mat", "biharmonic", "mat-untrained"}
    assert all(0.0 <= v <= 1.0 for v in report["inpaint"]["two_sample_accuracy"].values())
    markdown = (out / "proof.md").read_text(encoding="utf-8")
    assert "MAT >= 80 %" in markdown and "negative control" in markdown
    cached = sorted(p.name.rsplit("-", 1)[0] for p in (tmp_path / "cache").glob("*.npz"))
    assert cached == ["cxr-images", "cxr-test", "mammo-test", "mass-crops"]


def test_held_out_sets_read_back_from_the_cache_unchanged(tmp_path: Path) -> None:
    settings = dataclasses.replace(TINY, cxr_test_per_class=1)
    fresh = held_out_pairs(settings, tmp_path)
    again = held_out_pairs(settings, tmp_path)  # from the cache
    assert len(fresh) == len(again) == settings.test_cases
    for a, b in zip(fresh, again, strict=True):
        assert np.array_equal(a.normal, b.normal) and np.array_equal(a.with_mass, b.with_mass)
        assert a.boxes == b.boxes and a.window_normal == b.window_normal and a.window_mass == b.window_mass
    cxr = held_out_cxr(settings, tmp_path)
    cxr_again = held_out_cxr(settings, tmp_path)
    assert [c.label for c in cxr] == [0, 1, 2, 3]
    for a, b in zip(cxr, cxr_again, strict=True):
        assert np.array_equal(a.image, b.image) and a.boxes == b.boxes and a.window == b.window
        assert a.global_labels == b.global_labels


def test_main_without_bundled_models_says_what_to_pass(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    import linop_core.demo_models as demo_models

    monkeypatch.setattr(demo_models, "demo_model_dirs", lambda: [tmp_path])
    assert proof_cli.main(["--out", str(tmp_path / "o"), "--skip", "outpaint"]) == 1
    assert "--inpaint-model" in capsys.readouterr().err
