"""Adversarial, R1 and perceptual losses (linop_core.losses)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from torch import Tensor, nn

from linop_core.errors import ModelError
from linop_core.losses import (
    LazyR1,
    MatLoss,
    MatLossConfig,
    VGG19PerceptualLoss,
    discriminator_adversarial_loss,
    generator_adversarial_loss,
    hole_l1_loss,
    r1_penalty,
    resolve_vgg19_weights,
    vgg19_cache_path,
)


def _softplus(x: float) -> float:
    return math.log1p(math.exp(x))


class ConstantD(nn.Module):
    """A discriminator that ignores its images: its logits come from a learnable bias only."""

    def __init__(self) -> None:
        super().__init__()
        self.bias = nn.Parameter(torch.tensor([0.3, -0.2]))

    def forward(self, img: Tensor, mask: Tensor, img_stage1: Tensor) -> tuple[Tensor, Tensor]:
        batch = img.shape[0]
        return self.bias[0].expand(batch, 1), self.bias[1].expand(batch, 1)


class LinearD(nn.Module):
    """logit = <w, x> and logit_stage1 = <w1, x1>: the input gradients are w and w1 for every sample."""

    def __init__(self, shape: tuple[int, int, int], generator: torch.Generator) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.randn(shape, generator=generator))
        self.w1 = nn.Parameter(torch.randn(shape, generator=generator))

    def forward(self, img: Tensor, mask: Tensor, img_stage1: Tensor) -> tuple[Tensor, Tensor]:
        main = (img * self.w).sum(dim=[1, 2, 3]).unsqueeze(1)
        stage1 = (img_stage1 * self.w1).sum(dim=[1, 2, 3]).unsqueeze(1)
        return main, stage1


def test_generator_adversarial_loss_matches_softplus() -> None:
    fake = torch.tensor([[0.0], [2.0]])
    fake_stage1 = torch.tensor([[-1.5], [0.5]])
    expected = (_softplus(-0.0) + _softplus(-2.0)) / 2 + (_softplus(1.5) + _softplus(-0.5)) / 2
    assert generator_adversarial_loss(fake, fake_stage1).item() == pytest.approx(expected, rel=1e-6)


def test_discriminator_adversarial_loss_matches_softplus() -> None:
    real, real1 = torch.tensor([[1.0], [3.0]]), torch.tensor([[-0.5], [0.0]])
    fake, fake1 = torch.tensor([[-2.0], [0.25]]), torch.tensor([[4.0], [-1.0]])
    expected = (
        (_softplus(-2.0) + _softplus(0.25)) / 2
        + (_softplus(4.0) + _softplus(-1.0)) / 2
        + (_softplus(-1.0) + _softplus(-3.0)) / 2
        + (_softplus(0.5) + _softplus(0.0)) / 2
    )
    loss = discriminator_adversarial_loss(real, real1, fake, fake1)
    assert loss.item() == pytest.approx(expected, rel=1e-6)


def test_r1_is_zero_for_a_discriminator_that_ignores_its_input() -> None:
    real = torch.randn(2, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    mask = torch.ones(2, 1, 8, 8)
    penalty = r1_penalty(ConstantD(), real, mask, gamma=10.0)
    assert penalty.item() == 0.0


def test_r1_equals_gamma_half_squared_gradient_norms() -> None:
    gen = torch.Generator().manual_seed(1)
    disc = LinearD((1, 8, 8), gen)
    real = torch.randn(3, 1, 8, 8, generator=gen)
    mask = (torch.rand(3, 1, 8, 8, generator=gen) > 0.5).float()
    gamma = 4.0
    penalty = r1_penalty(disc, real, mask, gamma=gamma)
    expected = gamma / 2 * (disc.w.square().sum() + disc.w1.square().sum())
    assert penalty.item() > 0
    torch.testing.assert_close(penalty, expected)
    # The penalty has a graph back to D's weights (d/dw of γ/2·‖w‖² = γ·w).
    penalty.backward()
    torch.testing.assert_close(disc.w.grad, gamma * disc.w.detach())


def test_lazy_r1_schedule_and_scale() -> None:
    gen = torch.Generator().manual_seed(2)
    disc = LinearD((1, 4, 4), gen)
    real, mask = torch.randn(2, 1, 4, 4, generator=gen), torch.ones(2, 1, 4, 4)
    lazy = LazyR1(gamma=10.0, interval=16)
    assert [s for s in range(40) if lazy.due(s)] == [0, 16, 32]
    torch.testing.assert_close(lazy.loss(disc, real, mask), 16 * r1_penalty(disc, real, mask, gamma=10.0))
    assert not any(LazyR1(gamma=0.0, interval=4).due(s) for s in range(8))
    with pytest.raises(ValueError):
        LazyR1(gamma=1.0, interval=0)


# ----------------------------------------------------------------------------------------------------
# Perceptual loss


@pytest.fixture(scope="module")
def random_vgg_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A torchvision-layout VGG-19 ``features.*`` state dict with random weights (no download)."""
    from torchvision.models.vgg import cfgs, make_layers

    torch.manual_seed(3)
    features = make_layers(cfgs["E"])
    path = tmp_path_factory.mktemp("vgg") / "vgg19-random.pth"
    torch.save({f"features.{k}": v for k, v in features.state_dict().items()}, path)
    return path


@pytest.fixture(scope="module")
def vgg_loss(random_vgg_file: Path) -> VGG19PerceptualLoss:
    return VGG19PerceptualLoss(random_vgg_file)


def test_perceptual_zero_for_identical_and_positive_otherwise(vgg_loss: VGG19PerceptualLoss) -> None:
    loss = vgg_loss
    gen = torch.Generator().manual_seed(4)
    real = torch.rand(2, 3, 32, 32, generator=gen) * 2 - 1
    assert loss(real, real.clone()).item() == 0.0
    fake = (real + 0.3 * torch.randn(2, 3, 32, 32, generator=gen)).requires_grad_(True)
    value = loss(fake, real)
    assert value.item() > 0
    value.backward()
    assert fake.grad is not None and fake.grad.abs().sum() > 0
    assert all(p.grad is None for p in loss.parameters())
    assert not loss.train().features.training  # VGG stays in eval mode inside a training parent


def test_perceptual_replicates_gray_to_rgb(vgg_loss: VGG19PerceptualLoss) -> None:
    loss = vgg_loss
    gen = torch.Generator().manual_seed(5)
    a, b = torch.rand(1, 1, 32, 32, generator=gen) * 2 - 1, torch.rand(1, 1, 32, 32, generator=gen) * 2 - 1
    torch.testing.assert_close(loss(a, b), loss(a.repeat(1, 3, 1, 1), b.repeat(1, 3, 1, 1)))


def test_perceptual_reads_torchvision_cache(
    random_vgg_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    expected = tmp_path / "hub" / "checkpoints" / "vgg19-dcbb9e9d.pth"
    assert vgg19_cache_path() == expected
    with pytest.raises(ModelError) as info:
        resolve_vgg19_weights()
    message = str(info.value)
    assert str(expected) in message and "download.pytorch.org" in message and "\n" not in message
    expected.parent.mkdir(parents=True)
    expected.symlink_to(random_vgg_file)
    assert VGG19PerceptualLoss().weights_path == expected


def test_missing_explicit_vgg_file_names_it(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere" / "vgg19.pth"
    with pytest.raises(ModelError, match=r"nowhere/vgg19\.pth.*vgg19-dcbb9e9d\.pth"):
        VGG19PerceptualLoss(missing)


def test_vgg_file_of_wrong_layout_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "not_vgg.pth"
    torch.save({"weight": torch.zeros(3)}, path)
    with pytest.raises(ModelError, match="not a VGG-19 state dict"):
        VGG19PerceptualLoss(path)


def test_mat_loss_without_perceptual_needs_no_weights(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "empty-hub"))
    loss = MatLoss(MatLossConfig(perceptual=False, r1_gamma=2.0, r1_interval=4))
    assert loss.perceptual is None
    gen = torch.Generator().manual_seed(6)
    disc = LinearD((1, 8, 8), gen)
    real, fake, fake1 = (torch.rand(2, 1, 8, 8, generator=gen) * 2 - 1 for _ in range(3))
    mask = torch.ones(2, 1, 8, 8)
    g_terms = loss.generator_loss(disc, fake, fake1, real, mask)
    logits, logits1 = disc(fake, mask, fake1)
    torch.testing.assert_close(g_terms.total, generator_adversarial_loss(logits, logits1))
    assert set(g_terms.parts) == {"G/adv", "G/l1", "G/total"}
    d_terms = loss.discriminator_loss(disc, fake, fake1, real, mask)
    assert d_terms.total.item() > 0
    r1_terms = loss.r1_loss(disc, real, mask)
    torch.testing.assert_close(r1_terms.total, 4 * r1_penalty(disc, real, mask, gamma=2.0))
    with pytest.raises(ModelError, match="empty-hub"):
        MatLoss(MatLossConfig(perceptual=True))


def test_mat_loss_adds_weighted_perceptual_term(random_vgg_file: Path) -> None:
    loss = MatLoss(MatLossConfig(pcp_ratio=0.1, vgg_weights=str(random_vgg_file)))
    gen = torch.Generator().manual_seed(7)
    disc = ConstantD()
    real, fake, fake1 = (torch.rand(1, 3, 32, 32, generator=gen) * 2 - 1 for _ in range(3))
    mask = torch.ones(1, 1, 32, 32)
    terms = loss.generator_loss(disc, fake, fake1, real, mask)
    assert loss.perceptual is not None
    expected = terms.parts["G/adv"] + 0.1 * loss.perceptual(fake, real)
    torch.testing.assert_close(terms.total, expected)


def test_hole_l1_averages_over_hole_pixels_only() -> None:
    real = torch.zeros(2, 1, 4, 4)
    mask = torch.ones(2, 1, 4, 4)
    mask[0, :, :2, :2] = 0  # 4 hole pixels in image 0, none in image 1
    fake = torch.full_like(real, 5.0)  # differs everywhere, known pixels included
    fake[0, :, :2, :2] = torch.tensor([[1.0, -1.0], [3.0, -3.0]])
    torch.testing.assert_close(hole_l1_loss(fake, real, mask), torch.tensor(2.0))
    assert hole_l1_loss(real + 1, real, torch.ones_like(mask)).item() == 0.0  # no hole: no loss


def test_mat_loss_adds_weighted_hole_l1_on_both_outputs() -> None:
    gen = torch.Generator().manual_seed(8)
    real, fake, fake1 = (torch.rand(2, 1, 8, 8, generator=gen) * 2 - 1 for _ in range(3))
    mask = (torch.rand(2, 1, 8, 8, generator=gen) > 0.5).float()
    disc = ConstantD()
    plain = MatLoss(MatLossConfig(perceptual=False)).generator_loss(disc, fake, fake1, real, mask)
    assert "G/hole_l1" not in plain.parts
    terms = MatLoss(MatLossConfig(perceptual=False, hole_l1=3.0)).generator_loss(disc, fake, fake1, real, mask)
    expected_l1 = hole_l1_loss(fake, real, mask) + hole_l1_loss(fake1, real, mask)
    torch.testing.assert_close(terms.parts["G/hole_l1"], expected_l1)
    torch.testing.assert_close(terms.total, plain.total + 3.0 * expected_l1)
