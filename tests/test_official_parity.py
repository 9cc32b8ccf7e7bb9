"""Numerical parity with the official MAT code (fenglinglwb/MAT), at 512 on the CPU.

Skipped unless ``LINOP_MAT_REFERENCE`` points at a checkout of the official code and ``timm`` (which the official
networks import) is installed. The official code is only imported here, never shipped.

The official generator and discriminator are built with random weights (every parameter perturbed, so biases,
noise strengths and w_avg are non-trivial), written as a real official snapshot pickle by their own persistence
mechanism (each network embeds its source code), imported through ``linop_core.model.official`` (which must not
run that code) and compared on the same image, mask, z, constant noise and dropout maps.
"""

from __future__ import annotations

import importlib.util
import os
import pickle
import sys
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch

REFERENCE = os.environ.get("LINOP_MAT_REFERENCE")
TOLERANCE = 1e-4
RGB_WEIGHT_SCALE = 0.02

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not REFERENCE or not (Path(REFERENCE) / "networks" / "mat.py").is_file(),
        reason="set LINOP_MAT_REFERENCE to a checkout of github.com/fenglinglwb/MAT",
    ),
    pytest.mark.skipif(importlib.util.find_spec("timm") is None, reason="the official MAT code needs timm"),
]

_OFFICIAL_PACKAGES = ("networks", "torch_utils", "dnnlib")


@pytest.fixture
def official(monkeypatch: pytest.MonkeyPatch) -> Iterator[types.ModuleType]:
    """``networks.mat`` of the reference checkout, imported for this test only."""
    assert REFERENCE is not None
    clashes = [name for name in _OFFICIAL_PACKAGES if name in sys.modules]
    if clashes:
        pytest.skip(f"modules {clashes} already imported from elsewhere")
    monkeypatch.syspath_prepend(REFERENCE)
    if importlib.util.find_spec("requests") is None:
        # dnnlib.util imports requests only for downloads, which this test never does.
        monkeypatch.setitem(sys.modules, "requests", types.ModuleType("requests"))
    import networks.mat as mat

    yield mat
    for name in list(sys.modules):
        if name.split(".")[0] in _OFFICIAL_PACKAGES:
            del sys.modules[name]


def _randomise(module: torch.nn.Module, generator: torch.Generator) -> None:
    """Perturb the constant-initialised parameters (biases, noise strengths) and w_avg so that they matter.

    Weights are already N(0, 1) draws (equalized learning rate); scaling them up would blow up the activations.
    """
    with torch.no_grad():
        for name, param in module.named_parameters():
            if not name.endswith("weight"):
                param.add_(torch.randn(param.shape, generator=generator) * 0.1)
        for name, buffer in module.named_buffers():
            if name.endswith("w_avg"):
                buffer.copy_(torch.randn(buffer.shape, generator=generator) * 0.3)


class _ReplayDropout:
    """Stands in for torch.nn.functional.dropout with precomputed keep masks, used in call order.

    MAT calls ``dropout(0.5 * ones, p=0.5, training=True)``, so the result is exactly the {0, 1} keep mask.
    """

    def __init__(self, maps: list[torch.Tensor]) -> None:
        self.maps = list(maps)
        self.calls = 0

    def __call__(self, x: torch.Tensor, p: float = 0.5, training: bool = True, inplace: bool = False) -> Any:
        assert p == 0.5 and training, "MAT's dropout is always p=0.5 with training=True"
        keep = self.maps[self.calls]
        self.calls += 1
        assert keep.shape == x.shape, (keep.shape, x.shape)
        return x * keep / (1 - p)


def test_parity_with_official_mat_512(official: types.ModuleType, tmp_path: Path) -> None:
    from linop_core.model.checkpoint import load_checkpoint, load_discriminator, load_generator
    from linop_core.model.official import import_official

    rng = torch.Generator().manual_seed(2022)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        g_official = official.Generator(z_dim=512, c_dim=0, w_dim=512, img_resolution=512, img_channels=3,
                                        mapping_kwargs={"num_layers": 8})
        d_official = official.Discriminator(c_dim=0, img_resolution=512, img_channels=3, mbstd_group_size=4)
    _randomise(g_official, rng)
    _randomise(d_official, rng)
    with torch.no_grad():
        # A random generator paints with values around ±100; bring its images to the [-1, 1] scale of a
        # trained model so that the absolute tolerance compares like with like.
        for name, param in g_official.named_parameters():
            if name.endswith("toRGB.conv.weight"):
                param.mul_(RGB_WEIGHT_SCALE)
    g_official.eval().requires_grad_(False)
    d_official.eval().requires_grad_(False)

    snapshot_path = tmp_path / "network-snapshot-000000.pkl"
    with open(snapshot_path, "wb") as f:
        pickle.dump({"G_ema": g_official, "D": d_official, "augment_pipe": None,
                     "training_set_kwargs": {"resolution": 512}}, f)
    with open(snapshot_path, "rb") as f:
        assert b"module_src" in f.read(1 << 16)  # the fixture really embeds source code
    report = import_official(snapshot_path, tmp_path / "imported.pt")
    assert report.source_preset == "mat-512" and report.networks == ("G_ema", "D")
    g_ours, checkpoint = load_generator(report.out, expected_preset="mat-512")
    d_ours = load_discriminator(load_checkpoint(report.out)).eval().requires_grad_(False)
    assert checkpoint.metadata["source"].startswith("imported from network-snapshot-000000.pkl sha256=")

    img = torch.rand(1, 3, 512, 512, generator=rng) * 2 - 1
    mask = torch.ones(1, 1, 512, 512)
    mask[..., 96:320, 128:400] = 0
    mask[..., 360:480, 40:200] = 0
    z = torch.randn(1, 512, generator=rng)
    keep1_shape, keep2_shape = g_ours.synthesis.keep_map_shapes(1, 512, 512)
    keep1 = torch.empty(keep1_shape).bernoulli_(0.5, generator=rng)
    keep2 = torch.empty(keep2_shape).bernoulli_(0.5, generator=rng)
    psi = 0.5

    replay = _ReplayDropout([keep1, keep2])
    with torch.no_grad(), pytest.MonkeyPatch.context() as patch:
        patch.setattr(torch.nn.functional, "dropout", replay)
        final_ref, stage1_ref = g_official(img, mask, z, None, truncation_psi=psi, noise_mode="const",
                                           return_stg1=True)
    assert replay.calls == 2

    with torch.no_grad():
        final, stage1 = g_ours(img, mask, z, truncation_psi=psi, noise_mode="const", return_stage1=True,
                               dropout_maps=(keep1, keep2))
        logit_ref, logit1_ref = d_official(final_ref, mask, stage1_ref, None)
        logit, logit1 = d_ours(final_ref, mask, stage1_ref)

    diffs = {
        "final": (final - final_ref).abs().max().item(),
        "stage1": (stage1 - stage1_ref).abs().max().item(),
        "logit": (logit - logit_ref).abs().max().item(),
        "logit_stage1": (logit1 - logit1_ref).abs().max().item(),
    }
    scale = {"final": final_ref.abs().max().item(), "stage1": stage1_ref.abs().max().item(),
             "logit": logit_ref.abs().max().item()}
    print("max abs differences vs official MAT:", diffs, "output scale:", scale)
    # The hole must have been synthesised (not a trivially equal composite) for the comparison to mean much.
    assert (final_ref - img).abs().amax() > 0.1
    assert all(value <= TOLERANCE for value in diffs.values()), diffs
