"""Synthesis: lesion inpainting and outpainting at native resolution, bit-exact outside the generated region."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from linop_core.dicom import VoiWindow, read_dicom
from linop_core.engines import BiharmonicEngine, MatEngine
from linop_core.errors import LinopError
from linop_core.masks import box_hole, outpaint_keep_mask
from linop_core.synthesis import (
    Candidate,
    InpaintRequest,
    OutpaintRequest,
    PasteIntegrityError,
    crop_window,
    inpaint_lesion,
    outpaint_around,
    verify_outside_unchanged,
)

FULL_SHAPE = (3518, 2800)  # a VinDr-Mammo detector size


def _smooth_noise(rng: np.random.Generator, shape: tuple[int, int], cells: int) -> np.ndarray:
    coarse = torch.from_numpy(rng.standard_normal((cells, cells)).astype(np.float32))[None, None]
    return F.interpolate(coarse, size=shape, mode="bicubic", align_corners=False)[0, 0].numpy()


def synthetic_mammogram(shape: tuple[int, int], seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """uint16 CC-like mammogram: a half-ellipse breast on the left chest wall, textured, on a dark background."""
    rng = np.random.default_rng(seed)
    h, w = shape
    yy, xx = np.ogrid[0:h, 0:w]
    breast = (xx / (0.7 * w)) ** 2 + ((yy - h / 2) / (0.42 * h)) ** 2 <= 1.0
    tissue = 1600.0 + 500.0 * _smooth_noise(rng, shape, 40) + rng.normal(0.0, 40.0, shape)
    background = 80.0 + rng.normal(0.0, 8.0, shape)
    image = np.where(breast, tissue, background)
    return np.clip(image, 0, 4095).astype(np.uint16), breast


def synthetic_cxr(shape: tuple[int, int], seed: int = 0) -> np.ndarray:
    """uint16 PA chest-like image: bright body, air at the top corners, two dark textured lungs."""
    rng = np.random.default_rng(seed)
    h, w = shape
    yy, xx = np.ogrid[0:h, 0:w]
    body = (np.abs(xx - w / 2) < 0.45 * w) & (yy > 0.04 * h)
    lungs = np.zeros(shape, bool)
    for cx in (0.3 * w, 0.7 * w):
        lungs |= ((xx - cx) / (0.15 * w)) ** 2 + ((yy - 0.45 * h) / (0.3 * h)) ** 2 <= 1.0
    ribs = 120.0 * (np.sin(yy / h * 60.0) > 0.6)
    image = np.full(shape, 150.0)
    image[body] = 2600.0
    image[lungs] = 900.0
    image = image + np.where(lungs, ribs, 0.0) + 60.0 * _smooth_noise(rng, shape, 30) + rng.normal(0, 15, shape)
    return np.clip(image, 0, 4095).astype(np.uint16)


@pytest.fixture(scope="module")
def full_mammogram() -> tuple[np.ndarray, np.ndarray]:
    return synthetic_mammogram(FULL_SHAPE)


def _assert_bit_exact_outside(candidate: Candidate, source: np.ndarray) -> None:
    assert candidate.image.shape == source.shape and candidate.image.dtype == source.dtype
    outside = candidate.generated == 0
    assert np.array_equal(candidate.image[outside], source[outside])


# ----------------------------------------------------------------------------------------------- inpaint


@pytest.mark.slow
def test_inpaint_full_size_mammogram_is_bit_exact_outside_the_hole(full_mammogram) -> None:
    source, _ = full_mammogram
    original = source.copy()
    box = (600.0, 1500.0, 860.0, 1800.0)  # 260 x 300 px mass in the breast
    engine = BiharmonicEngine(256)
    done: list[tuple[int, int]] = []
    candidates = inpaint_lesion(source, InpaintRequest(box, seeds=[4, 5]), engine,
                                progress=lambda d, t: done.append((d, t)))
    assert np.array_equal(source, original)  # the input is never modified
    assert len(candidates) == 2 and done[-1] == (2, 2)
    for cand, seed in zip(candidates, (4, 5), strict=True):
        assert cand.task == "inpaint" and cand.seed == seed
        assert cand.boxes == (box,) and cand.box_labels == ("Mass",)
        _assert_bit_exact_outside(cand, source)
        hole = box_hole(FULL_SHAPE, box)
        assert np.all(cand.generated[hole] == 1.0)
        assert np.count_nonzero(cand.image[hole] != source[hole]) > 0.5 * hole.sum()
        # The weight stays within the hole grown by the feather width.
        rows, cols = np.nonzero(cand.generated)
        fx = cand.feather_px
        assert cols.min() >= box[0] - fx - 1 and cols.max() <= box[2] + fx + 1
        assert rows.min() >= box[1] - fx - 1 and rows.max() <= box[3] + fx + 1
        # Window: context x the longer side, around the box, inside the image; scale = model / window.
        (y0, x0), (ch, cw) = cand.crop_origin, cand.crop_size
        assert (ch, cw) == (600, 600)
        assert x0 <= box[0] and box[2] <= x0 + cw and y0 <= box[1] and box[3] <= y0 + ch
        assert cand.scale == pytest.approx(256 / 600)
        assert cand.engine == "biharmonic" and cand.model_name is None and cand.checkpoint_sha256 is None
        assert cand.seed_used is False and cand.hole_kind == "ellipse"
        assert cand.window.width > 1000 and cand.window_function == "LINEAR"
    # Biharmonic ignores the seed.
    assert np.array_equal(candidates[0].image, candidates[1].image)


def test_inpaint_rectangle_and_brush_holes() -> None:
    source, _ = synthetic_mammogram((1200, 960), seed=1)
    box = (200.0, 500.0, 300.0, 580.0)
    engine = BiharmonicEngine(128)
    rect = inpaint_lesion(source, InpaintRequest(box, hole="rectangle", seeds=[0], feather_px=6.0), engine)[0]
    _assert_bit_exact_outside(rect, source)
    assert np.all(rect.generated[500:580, 200:300] == 1.0)
    assert rect.generated[500:580, 190:194].max() == 0.0  # beyond the 6 px feather band
    assert rect.feather_px == 6.0 and rect.hole_kind == "rectangle"

    brush = np.zeros(source.shape, bool)
    brush[520:560, 220:250] = True
    brush[700:720, 700:720] = True  # outside the box: ignored
    cand = inpaint_lesion(source, InpaintRequest(box, hole=brush, seeds=[0], feather_px=3.0), engine)[0]
    _assert_bit_exact_outside(cand, source)
    assert cand.boxes == ((220.0, 520.0, 250.0, 560.0),)  # the painted part inside the box
    assert cand.hole_kind == "brush"
    assert cand.generated[700:720, 700:720].max() == 0.0
    with pytest.raises(LinopError, match="brush mask is empty inside the box"):
        inpaint_lesion(source, InpaintRequest((10.0, 10.0, 20.0, 20.0), hole=brush, seeds=[0]), engine,
                       anatomy_check=False)


def test_crop_window_shifts_but_does_not_shrink_at_the_edges() -> None:
    win = crop_window((1000, 800), (740.0, 900.0, 790.0, 990.0), resolution=256, context=3.0, feather_px=5.0,
                      max_scale=1.0)
    assert (win.height, win.width) == (270, 270)
    assert win.y0 + win.height == 1000 and win.x0 + win.width == 800
    # Small box: the window is at least the model size (no magnification beyond max_scale).
    small = crop_window((1000, 800), (400.0, 400.0, 410.0, 410.0), resolution=256, context=2.0, feather_px=2.0,
                        max_scale=1.0)
    assert (small.height, small.width) == (256, 256) and small.scale == 1.0
    # Image smaller than the window: cut to the image, one scale for both axes.
    tiny = crop_window((200, 150), (50.0, 50.0, 100.0, 100.0), resolution=256, context=2.0, feather_px=2.0,
                       max_scale=1.0)
    assert (tiny.height, tiny.width) == (200, 150) and (tiny.model_height, tiny.model_width) == (200, 150)


def test_box_outside_the_image_is_refused() -> None:
    source, _ = synthetic_mammogram((600, 480), seed=2)
    with pytest.raises(LinopError, match=r"m\.dcm: box \(400, 100, 520, 200\) is 33% outside the image"):
        inpaint_lesion(source, InpaintRequest((400.0, 100.0, 520.0, 200.0)), BiharmonicEngine(64),
                       image_name="m.dcm")


def test_box_outside_the_breast_is_refused_with_a_clear_message() -> None:
    source, _ = synthetic_mammogram((600, 480), seed=2)
    box = (400.0, 20.0, 470.0, 90.0)  # the dark background at the top right
    with pytest.raises(LinopError) as info:
        inpaint_lesion(source, InpaintRequest(box), BiharmonicEngine(64), image_name="case12_L_CC.dcm")
    message = str(info.value)
    assert message.startswith("case12_L_CC.dcm: 100% of box (400, 20, 470, 90) lies outside the breast")
    assert "move the box onto the breast" in message and "anatomy check off" in message
    # The check can be switched off (e.g. when the heuristic mask is wrong).
    cand = inpaint_lesion(source, InpaintRequest(box), BiharmonicEngine(64), anatomy_check=False)[0]
    _assert_bit_exact_outside(cand, source)


def test_requests_are_validated() -> None:
    source, _ = synthetic_mammogram((400, 320), seed=3)
    with pytest.raises(LinopError, match="no seeds"):
        inpaint_lesion(source, InpaintRequest((50.0, 150.0, 90.0, 190.0), seeds=[]), BiharmonicEngine(64))
    with pytest.raises(LinopError, match="window index needs a DICOM"):
        inpaint_lesion(source, InpaintRequest((50.0, 150.0, 90.0, 190.0), window=0), BiharmonicEngine(64))
    with pytest.raises(LinopError, match="cannot be used"):
        inpaint_lesion(source, InpaintRequest((50.0, 150.0, 90.0, 190.0), window=VoiWindow(100.0, 0.5)),
                       BiharmonicEngine(64))
    with pytest.raises(LinopError, match="one label per box"):
        outpaint_around(source, OutpaintRequest(((50.0, 150.0, 90.0, 190.0),), ()), BiharmonicEngine(64))


def test_dicom_input_uses_the_file_window(write_dicom: Callable[..., Path]) -> None:
    pixels, _ = synthetic_mammogram((512, 400), seed=4)
    path = write_dicom(pixels, WindowCenter=1600, WindowWidth=2400, bits_stored=12)
    image = read_dicom(path)
    box = (60.0, 200.0, 120.0, 260.0)
    cand = inpaint_lesion(image, InpaintRequest(box, seeds=[1]), BiharmonicEngine(128))[0]
    assert cand.window == VoiWindow(1600.0, 2400.0) or (cand.window.center, cand.window.width) == (1600, 2400)
    assert cand.window_function == "LINEAR"
    assert cand.source_id == image.meta.sop_instance_uid
    _assert_bit_exact_outside(cand, image.pixels)
    generated = cand.image[cand.generated > 0]
    assert generated.min() >= image.value_range[0] and generated.max() <= image.value_range[1]


@pytest.mark.slow
def test_inpaint_with_a_mat_model_gives_seed_dependent_candidates() -> None:
    pytest.importorskip("linop_core.model.generator", reason="linop_core.model.generator (helper D) not present")
    from linop_core.model.checkpoint import Checkpoint
    from linop_core.model.presets import build_generator, config_to_dict, get_config

    cfg = get_config("mat-small")
    checkpoint = Checkpoint(path=Path("in-memory"), format_version=1, preset="mat-small",
                            config_dict=config_to_dict(cfg), G_ema={})
    engine = MatEngine((build_generator(cfg, seed=1), checkpoint), device="cpu", batch_size=2)
    source, _ = synthetic_mammogram((700, 560), seed=5)
    box = (120.0, 300.0, 220.0, 390.0)
    a, b = inpaint_lesion(source, InpaintRequest(box, seeds=[3, 4]), engine)
    for cand in (a, b):
        _assert_bit_exact_outside(cand, source)
        assert cand.engine == "mat" and cand.model_name == "mat-small" and cand.seed_used
        assert cand.engine_settings["device"] == "cpu"
    # An untrained model saturates many pixels to the window ends, so only a share of the hole differs.
    hole = a.generated == 1.0
    assert np.count_nonzero(a.image[hole] != b.image[hole]) > 0.25 * hole.sum()


# ----------------------------------------------------------------------------------------------- outpaint


@pytest.mark.slow
def test_outpaint_full_size_keeps_lesions_bit_exact_and_carries_labels() -> None:
    source = synthetic_cxr(FULL_SHAPE)
    boxes = ((700.0, 1200.0, 1000.0, 1500.0), (1800.0, 1900.0, 2050.0, 2200.0))
    labels = ("Pleural effusion", "Nodule/Mass")
    request = OutpaintRequest(boxes, labels, seeds=[0], margin=24.0, global_labels=("Pneumonia",))
    [cand] = outpaint_around(source, request, BiharmonicEngine(256), image_name="cxr1.dcm")
    assert cand.task == "outpaint"
    assert cand.boxes == boxes and cand.box_labels == labels and cand.global_labels == ("Pneumonia",)
    assert cand.crop_origin == (0, 0) and cand.crop_size == FULL_SHAPE
    assert cand.scale == pytest.approx(256 / 3518)
    assert cand.model_size == (256, 256) and cand.margin_px == 24.0
    _assert_bit_exact_outside(cand, source)
    kept = outpaint_keep_mask(FULL_SHAPE, boxes, 24.0)
    assert np.all(cand.generated[kept] == 0.0)
    assert np.array_equal(cand.image[kept], source[kept])
    # Everything farther than the feather band is regenerated (weight 1).
    assert np.mean(cand.generated == 1.0) > 0.9
    changed = cand.image != source
    assert changed.mean() > 0.5


def test_outpaint_refuses_a_box_outside_the_chest() -> None:
    source = synthetic_cxr((900, 720), seed=1)
    with pytest.raises(LinopError, match=r"cxr2\.dcm: 100% of box \(5, 5, 40, 30\) lies outside the lungs"):
        outpaint_around(source, OutpaintRequest(((5.0, 5.0, 40.0, 30.0),), ("Nodule/Mass",)),
                        BiharmonicEngine(128), image_name="cxr2.dcm")


def test_outpaint_with_a_larger_canvas_pads_with_hole() -> None:
    source = synthetic_cxr((600, 450), seed=2)
    request = OutpaintRequest(((150.0, 200.0, 230.0, 300.0),), ("Nodule/Mass",), seeds=[1], long_side=128,
                              margin=4.0)
    [cand] = outpaint_around(source, request, BiharmonicEngine(64))
    assert cand.model_size == (128, 128)  # 128 x 96 content padded to a multiple of 64
    _assert_bit_exact_outside(cand, source)


# ----------------------------------------------------------------------------------------------- guard


def test_integrity_guard_catches_a_changed_pixel() -> None:
    source = np.arange(100, dtype=np.uint16).reshape(10, 10)
    weight = np.zeros((10, 10), np.float32)
    weight[2:4, 2:4] = 1.0
    result = source.copy()
    result[2:4, 2:4] += 7
    verify_outside_unchanged(source, result, weight, name="x")
    result[9, 9] += 1
    with pytest.raises(PasteIntegrityError, match="1 pixel"):
        verify_outside_unchanged(source, result, weight, name="x")
    with pytest.raises(PasteIntegrityError, match="differs from source"):
        verify_outside_unchanged(source, result.astype(np.int32), weight, name="x")


# ----------------------------------------------------------------------------------------------- streaming


class _SeedFillEngine:
    """Fills every hole pixel with a grey that depends on the seed only; records each call."""

    name, resolution, model_name, checkpoint_sha256, seed_used = "fake", 64, None, None, True

    def __init__(self, events: list[str]) -> None:
        self.events = events

    def generate(self, images, keep, seeds, progress=None):
        self.events.append(f"generate {list(seeds)}")
        out = images.copy()
        for i, seed in enumerate(seeds):
            out[i][~keep[i]] = 0.2 + 0.1 * (seed % 7)
            if progress is not None:
                progress(i + 1, len(seeds))
        return out

    def provenance(self):
        return {"engine": self.name}


@pytest.mark.parametrize("task", ["inpaint", "outpaint"])
def test_candidates_stream_one_by_one_and_equal_the_batch(task: str) -> None:
    from linop_core.synthesis import synthesize

    if task == "inpaint":
        source, _ = synthetic_mammogram((400, 320), seed=3)
        request = InpaintRequest((60.0, 160.0, 120.0, 220.0), seeds=[5, 6, 7])
    else:
        source = synthetic_cxr((400, 320), seed=3)
        request = OutpaintRequest(((80.0, 150.0, 130.0, 200.0),), ("Nodule/Mass",), seeds=[5, 6, 7])
    batch_events: list[str] = []
    batch = synthesize(source, request, _SeedFillEngine(batch_events), anatomy_check=False)
    assert batch_events == ["generate [5, 6, 7]"]

    events: list[str] = []
    done: list[tuple[int, int]] = []
    streamed = synthesize(source, request, _SeedFillEngine(events), anatomy_check=False,
                          progress=lambda d, t: done.append((d, t)),
                          on_candidate=lambda c: events.append(f"candidate {c.seed}"))
    # Each candidate is handed over before the next one is generated, the first seed first.
    assert events == ["generate [5]", "candidate 5", "generate [6]", "candidate 6", "generate [7]", "candidate 7"]
    assert done == [(1, 3), (2, 3), (3, 3)]
    for a, b in zip(batch, streamed, strict=True):
        assert a.seed == b.seed and np.array_equal(a.image, b.image) and np.array_equal(a.generated, b.generated)
        _assert_bit_exact_outside(b, source)


def test_each_streamed_candidate_is_checked_before_it_is_handed_over(monkeypatch) -> None:
    import linop_core.synthesis as synthesis

    source, _ = synthetic_mammogram((400, 320), seed=4)
    blend = synthesis.blend_native
    calls = {"n": 0}

    def broken_second(src, generated, weight):
        calls["n"] += 1
        out = blend(src, generated, weight)
        if calls["n"] == 2:
            out[0, 0] += 1  # a pixel outside the hole changes: the paste-back contract is broken
        return out

    monkeypatch.setattr(synthesis, "blend_native", broken_second)
    handed: list[int] = []
    with pytest.raises(PasteIntegrityError):
        synthesis.synthesize(source, InpaintRequest((60.0, 160.0, 120.0, 220.0), seeds=[1, 2, 3]),
                             _SeedFillEngine([]), anatomy_check=False, on_candidate=lambda c: handed.append(c.seed))
    assert handed == [1]
