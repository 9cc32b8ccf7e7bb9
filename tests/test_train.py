"""linop-train building blocks: config loading, training samples, sampling, FID extractors, atomic writes, CLI."""

from __future__ import annotations

import errno
from pathlib import Path

import numpy as np
import pytest
import torch

from linop_core.errors import DataError, ModelError
from trainer.config import SHIPPED_CONFIGS, ConfigError, config_to_dict, load_config
from trainer.data import (
    InpaintingSamples,
    SlotSampler,
    crop_around_box,
    ensure_root,
    select_images,
    validation_keys,
)
from trainer.fid import INCEPTION_FILENAME, FidEvaluator, RandomConvFeatures
from trainer.loop import crossed
from trainer.run_files import CheckpointWriteError, load_training_state, save_run_file
from trainer.train import main


@pytest.fixture(scope="module")
def phantom_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 4-study phantom VinDr-Mammo root, made through data.phantom (the smoke config's path)."""
    root = tmp_path_factory.mktemp("train_data") / "mammo"
    config = load_config("smoke", [f"data.root={root}", "data.phantom.n=4"])
    assert ensure_root(config.data) == root
    assert (root / "finding_annotations.csv").is_file()
    return root


# -- config -------------------------------------------------------------------------------------------------------


def test_shipped_configs_load_and_follow_the_paper() -> None:
    for name in SHIPPED_CONFIGS:
        load_config(name)
    mammo, cxr = load_config("mammo-inpaint"), load_config("cxr-outpaint")
    assert mammo.data.task == "mammo-inpaint" and cxr.data.task == "cxr-outpaint"
    for config in (mammo, cxr):
        assert config.train.total_kimg == 1000 and config.train.batch == 32 and config.data.resolution == 512
        assert config.loss.truncation_psi == 0.5 and config.loss.style_mixing_prob == 0.5
        assert config.optim.betas == (0.0, 0.99) and config.loss.r1_gamma == 10.0
    smoke = load_config("smoke")
    assert smoke.model.preset == "mat-small" and smoke.data.phantom is not None


def test_overrides_are_type_checked_and_unknown_keys_named() -> None:
    config = load_config("smoke", ["train.batch=8", "optim.betas=[0.1, 0.9]", "model.overrides.resolution=64"])
    assert config.train.batch == 8 and config.optim.betas == (0.1, 0.9)
    assert config.model.overrides == {"resolution": 64}
    with pytest.raises(ConfigError, match=r"train\.batchsize"):
        load_config("smoke", ["train.batchsize=8"])
    with pytest.raises(ConfigError, match=r"train\.batch: expected a whole number"):
        load_config("smoke", ["train.batch=eight"])
    with pytest.raises(ConfigError, match=r"data\.task"):
        load_config("smoke", ["data.task=segmentation"])
    with pytest.raises(ConfigError, match="keep_box_range"):
        load_config("smoke", ["data.keep_box_range=[0.5, 0.2]"])


def test_the_loss_section_is_the_loss_config_and_r1_follows_the_d_reg_interval() -> None:
    from linop_core.loss_config import MatLossConfig

    config = load_config("smoke", ["optim.d_reg_interval=4", "loss.hole_l1=2.0"])
    assert isinstance(config.loss, MatLossConfig)
    assert config.loss.r1_interval == 4 and config.loss.hole_l1 == 2.0
    assert load_config("smoke", ["optim.d_reg_interval=0"]).loss.r1_interval == 1
    assert "r1_interval" not in config_to_dict(config)["loss"]
    with pytest.raises(ConfigError, match=r"loss\.r1_interval: follows optim\.d_reg_interval"):
        load_config("smoke", ["loss.r1_interval=4"])
    repo = Path(__file__).resolve().parents[1]
    shipped = [*(repo / "trainer" / "configs").glob("*.yaml"), *(repo / "resources" / "models").glob("*.yaml")]
    assert len(shipped) >= 7
    for path in shipped:
        load_config(path)  # every shipped file's loss keys are still valid


def test_unknown_key_in_a_file_is_named(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("train:\n  batch: 4\n  epochs: 3\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"bad\.yaml: train\.epochs: unknown key"):
        load_config(path)


# -- data ---------------------------------------------------------------------------------------------------------


def test_samples_are_deterministic_and_follow_the_mask_convention(phantom_root: Path) -> None:
    config = load_config("smoke", [f"data.root={phantom_root}", "data.resolution=64"])
    images = select_images(phantom_root, config.data, "training")
    assert images and all(image.boxes for image in images)  # only images with masses
    samples = InpaintingSamples(images, config.data, channels=1, seed=0, stream=0)
    first, again, other = samples[(0, 5)], samples[(0, 5)], samples[(0, 6)]
    assert first["img"].shape == (1, 64, 64) and first["mask"].shape == (1, 64, 64)
    assert torch.equal(first["img"], again["img"]) and torch.equal(first["mask"], again["mask"])
    assert not torch.equal(first["mask"], other["mask"])
    assert first["img"].min() >= -1 and first["img"].max() <= 1
    assert set(first["mask"].unique().tolist()) <= {0.0, 1.0}
    rgb = InpaintingSamples(images, config.data, channels=3, seed=0, stream=0)[(0, 5)]
    assert rgb["img"].shape == (3, 64, 64) and torch.equal(rgb["img"][2], first["img"][0])


def test_lesion_holes_cover_the_mass(phantom_root: Path) -> None:
    config = load_config(
        "smoke", [f"data.root={phantom_root}", "data.resolution=128", "data.mass_crop_prob=1",
                  "data.lesion_hole_prob=1", "data.xflip=false"]
    )
    images = select_images(phantom_root, config.data, "training")
    samples = InpaintingSamples(images, config.data, channels=1, seed=0, stream=0)
    for slot in range(4):
        _, mask = samples.sample(0, samples.rng_for(slot))
        hole = mask == 0
        assert 0 < hole.mean() < 0.9  # one lesion-sized hole, not a MAT free-form mask over everything


def test_crop_around_box_contains_the_box() -> None:
    rng = np.random.default_rng(0)
    box = (300.0, 400.0, 380.0, 470.0)
    origins = set()
    for _ in range(50):
        oy, ox = crop_around_box(rng, box, (1000, 800), 256)
        assert 0 <= oy <= 1000 - 256 and 0 <= ox <= 800 - 256
        assert ox <= 300 and ox + 256 >= 380 and oy <= 400 and oy + 256 >= 470
        origins.add((oy, ox))
    assert len(origins) > 10  # the box is shifted around inside the crop


def test_cxr_outpaint_samples(tmp_path: Path, phantom_root: Path) -> None:
    root = tmp_path / "cxr"
    config = load_config(
        "smoke",
        [f"data.root={root}", "data.task=cxr-outpaint", "data.phantom.modality=cxr", "data.phantom.n=6",
         "data.resolution=64", "data.inverse_mask_prob=1", "data.xflip=false"],
    )
    ensure_root(config.data)
    images = select_images(root, config.data, "training")
    samples = InpaintingSamples(images, config.data, channels=1, seed=0, stream=0)
    image, mask = samples.sample(0, samples.rng_for(0))
    assert image.shape == (64, 64)  # the whole radiograph, resized
    kept_rows, kept_cols = np.nonzero(mask)
    # An inverse mask keeps exactly one box and generates everything around it.
    assert mask[kept_rows.min() : kept_rows.max() + 1, kept_cols.min() : kept_cols.max() + 1].all()
    assert 0.02 < mask.mean() < 0.5
    with pytest.raises(DataError, match="cxr-outpaint needs VinDr-CXR"):
        select_images(phantom_root, config.data, "training")


def test_empty_selection_is_a_clear_data_error(phantom_root: Path) -> None:
    config = load_config("smoke", [f"data.root={phantom_root}"])
    with pytest.raises(DataError, match="no validation-split images with mass boxes"):
        select_images(phantom_root, config.data, "validation")
    with pytest.raises(DataError, match="dataset root not found"):
        ensure_root(load_config("smoke", ["data.root=/nonexistent/linop", "data.phantom=null"]).data)


def test_missing_csv_column_is_reported(tmp_path: Path, phantom_root: Path) -> None:
    import shutil

    root = tmp_path / "broken"
    shutil.copytree(phantom_root, root)
    csv = root / "finding_annotations.csv"
    lines = csv.read_text(encoding="utf-8").splitlines()
    lines[0] = lines[0].replace("xmin", "x_min")
    csv.write_text("\n".join(lines) + "\n", encoding="utf-8")
    config = load_config("smoke", [f"data.root={root}"])
    with pytest.raises(DataError, match="xmin"):
        select_images(root, config.data, "training")


def test_slot_sampler_shares_one_global_stream_over_ranks() -> None:
    def take(sampler: SlotSampler, n: int) -> list[tuple[int, int]]:
        it = iter(sampler)
        return [next(it) for _ in range(n)]

    single = take(SlotSampler(7, seed=3, batch=4, rank=0, world=1, start_nimg=8), 12)
    rank0 = take(SlotSampler(7, seed=3, batch=4, rank=0, world=2, start_nimg=8), 6)
    rank1 = take(SlotSampler(7, seed=3, batch=4, rank=1, world=2, start_nimg=8), 6)
    merged = [*rank0[0:2], *rank1[0:2], *rank0[2:4], *rank1[2:4], *rank0[4:6], *rank1[4:6]]
    assert merged == single
    assert [slot for _, slot in single] == list(range(8, 20))
    epoch = [image for image, slot in take(SlotSampler(7, seed=3, batch=7, rank=0, world=1, start_nimg=0), 7)]
    assert sorted(epoch) == list(range(7))  # every image once per epoch
    assert validation_keys(3, 5) == [(0, 0), (1, 1), (2, 2), (0, 3), (1, 4)]


# -- FID ----------------------------------------------------------------------------------------------------------


def test_fid_without_inception_weights_names_the_file(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match=INCEPTION_FILENAME):
        FidEvaluator("inception-v3", str(tmp_path / "nothing.pth"), torch.device("cpu"))


def test_randconv_fid_is_named_deterministic_and_sensitive() -> None:
    a, b = RandomConvFeatures(0), RandomConvFeatures(0)
    x = torch.rand(2, 3, 40, 40)
    assert torch.equal(a(x), b(x)) and not torch.equal(a(x), RandomConvFeatures(1)(x))
    gen = torch.Generator().manual_seed(0)
    real = torch.rand(16, 1, 32, 32, generator=gen) * 2 - 1
    fid = FidEvaluator("randconv-0", None, torch.device("cpu"))
    assert fid.name == "randconv-0-64"
    fid.add_real(real)
    fid.add_fake(real)
    same = fid.compute()
    fid.add_fake((real * 0.3 + 0.5).clamp(-1, 1))  # real statistics are kept between computes
    shifted = fid.compute()
    assert abs(same) < 1e-3 and shifted > 100 * max(abs(same), 1e-6)


# -- files and CLI ------------------------------------------------------------------------------------------------


def test_disk_full_leaves_the_previous_checkpoint_intact(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "last.pt"
    save_run_file({"format": "x", "value": 1}, path)

    def full_disk(obj: object, f: object) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(torch, "save", full_disk)
    with pytest.raises(CheckpointWriteError, match=r"No space left on device.*--resume"):
        save_run_file({"format": "x", "value": 2}, path)
    monkeypatch.undo()
    assert torch.load(path, weights_only=True)["value"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]  # no temporary file left behind
    with pytest.raises(ModelError, match="not a linop-train training state"):
        load_training_state(path)


def test_torch_reporting_a_full_disk_as_runtime_error_names_the_file(tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "snapshots" / "snapshot-000000.004kimg.pt"

    def full_disk(obj: object, f: object) -> None:  # what torch's zip writer raises when a write fails
        raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 704 vs 598")

    monkeypatch.setattr(torch, "save", full_disk)
    with pytest.raises(CheckpointWriteError, match=rf"snapshot-000000\.004kimg\.pt: cannot write .*unexpected pos.*"
                                                   rf"--resume {tmp_path}`"):
        save_run_file({"value": 1}, path)
    assert list(path.parent.iterdir()) == []


def test_crossed_periods() -> None:
    assert crossed(3990, 4010, 4.0) and not crossed(4010, 4030, 4.0) and not crossed(0, 10**6, 0)


def test_cli_errors_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--config", "smoke", "--out", str(tmp_path / "r"), "--set", "train.epochs=2"]) == 2
    assert "train.epochs: unknown key" in capsys.readouterr().err
    assert main(["--resume", str(tmp_path / "r")]) == 1
    assert "no last.pt to resume from" in capsys.readouterr().err
    assert main(["--config", "smoke"]) == 1
    assert "--out RUN_DIR" in capsys.readouterr().err


def test_unreadable_image_is_a_one_line_sample_error(tmp_path: Path) -> None:
    from trainer.data import SampleError, SourceImage

    bad = tmp_path / "bad.dicom"
    bad.write_bytes(b"not a dicom")
    config = load_config("smoke", ["data.resolution=64"])
    samples = InpaintingSamples([SourceImage(bad, ((1.0, 1.0, 9.0, 9.0),), "x")], config.data,
                                channels=1, seed=0, stream=0)
    with pytest.raises(SampleError, match=r"bad\.dicom"):
        samples[(0, 0)]
    # How a DataLoader worker re-raises it: the whole traceback as the message; only our line is kept.
    relayed = SampleError("Caught SampleError in DataLoader worker process 0.\nOriginal Traceback (most recent "
                          "call last):\n  File x\ntrainer.data.SampleError: /d/bad.dicom: not a DICOM file")
    assert str(relayed) == "/d/bad.dicom: not a DICOM file"
