"""Tests of the MAT network: layers, attention, generator, discriminator, presets."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from linop_core.errors import ModelError
from linop_core.model.attention import (
    BasicLayer,
    WindowAttention,
    shifted_window_bias,
    window_partition,
    window_reverse,
)
from linop_core.model.discriminator import DiscriminatorBlock
from linop_core.model.layers import (
    Conv2dLayer,
    MinibatchStdLayer,
    ModulatedConv2d,
    StyleConv,
    bias_act,
    conv2d_resample,
    fir_filter,
    upsample2d,
)
from linop_core.model.presets import (
    PRESETS,
    MatConfig,
    build_discriminator,
    build_generator,
    config_from_dict,
    config_to_dict,
    mat_512,
    mat_small,
)

# ---------------------------------------------------------------------------------------------------------------
# Fixtures


@pytest.fixture(scope="module")
def small_g() -> torch.nn.Module:
    return build_generator(mat_small(), seed=0).eval()


@pytest.fixture(scope="module")
def small_batch() -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(123)
    img = torch.rand(2, 1, 256, 256, generator=gen) * 2 - 1
    mask = torch.ones(2, 1, 256, 256)
    mask[0, :, 40:180, 60:200] = 0
    mask[1, :, 128:, :] = 0
    return img, mask


def _seeded(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# ---------------------------------------------------------------------------------------------------------------
# FIR helpers against a direct upfirdn2d definition


def _upfirdn2d_reference(x: torch.Tensor, f: torch.Tensor, up: int, down: int, pad: tuple[int, int],
                         gain: float) -> torch.Tensor:
    """Zero insertion, symmetric (pad0, pad1) padding, true convolution with f * gain, subsampling."""
    b, c, h, w = x.shape
    if up > 1:
        z = torch.zeros(b, c, h * up, w * up, dtype=x.dtype)
        z[:, :, ::up, ::up] = x
        x = z
    x = F.pad(x, (pad[0], pad[1], pad[0], pad[1]))
    k = (f * gain).flip([0, 1])[None, None].repeat(c, 1, 1, 1)
    return F.conv2d(x, k, groups=c)[:, :, ::down, ::down]


def test_upsample2d_matches_zero_insert_pad_filter() -> None:
    x = torch.randn(2, 3, 5, 7, dtype=torch.float64)
    f = fir_filter().double()
    expected = _upfirdn2d_reference(x, f, up=2, down=1, pad=(2, 1), gain=4.0)
    torch.testing.assert_close(upsample2d(x, f), expected)


def test_conv2d_resample_down_and_up_match_reference() -> None:
    torch.manual_seed(0)
    x = torch.randn(1, 4, 8, 6, dtype=torch.float64)
    w = torch.randn(5, 4, 3, 3, dtype=torch.float64)
    f = fir_filter().double()
    # down: blur with padding 2, then stride-2 valid conv
    blurred = _upfirdn2d_reference(x, f, up=1, down=1, pad=(2, 2), gain=1.0)
    torch.testing.assert_close(conv2d_resample(x, w, f, down=2), F.conv2d(blurred, w, stride=2))
    # up (StyleGAN2's generic path): zero insertion, padding (3, 2), blur with gain 4, then a valid 3x3 conv
    upsampled = _upfirdn2d_reference(x, f, up=2, down=1, pad=(3, 2), gain=4.0)
    expected = F.conv2d(upsampled, w)
    up = conv2d_resample(x, w, f, up=2)
    assert up.shape == (1, 5, 16, 12)
    torch.testing.assert_close(up, expected)


def test_conv_layer_equalized_lr_and_lrelu_gain() -> None:
    layer = Conv2dLayer(3, 2, 1, activation="lrelu")
    with torch.no_grad():
        layer.weight.fill_(1.0)
        layer.bias.fill_(-1.0)
    x = torch.ones(1, 3, 2, 2)
    # weight gain 1/sqrt(3): 3 * (1/sqrt(3)) - 1 = sqrt(3) - 1 > 0, then * sqrt(2)
    torch.testing.assert_close(layer(x), torch.full((1, 2, 2, 2), (math.sqrt(3) - 1) * math.sqrt(2)))
    x = -torch.ones(1, 3, 2, 2)
    torch.testing.assert_close(layer(x), torch.full((1, 2, 2, 2), 0.2 * (-math.sqrt(3) - 1) * math.sqrt(2)))


@pytest.mark.parametrize("up", [1, 2])
def test_modulated_conv_batch_path_equals_per_sample_path(up: int) -> None:
    torch.manual_seed(0)
    conv = ModulatedConv2d(6, 5, 3, 8, up=up)
    x = torch.randn(3, 6, 8, 8)
    style = torch.randn(3, 8)
    batched = conv(x, style)  # input scaling + demodulation of the output
    single = torch.cat([conv(x[i : i + 1], style[i : i + 1]) for i in range(3)])  # weight modulation
    torch.testing.assert_close(batched, single, rtol=1e-4, atol=1e-5)


def test_minibatch_std_groups() -> None:
    x = torch.randn(6, 4, 3, 3)
    y = MinibatchStdLayer(group_size=4)(x)  # 4 does not divide 6: falls back to groups of 3
    assert y.shape == (6, 5, 3, 3)
    group = x[[0, 2, 4]]  # sample i is in group i % (N / G)
    expected = (group.var(dim=0, unbiased=False) + 1e-8).sqrt().mean()
    torch.testing.assert_close(y[0, 4, 0, 0], expected)
    torch.testing.assert_close(y[0, 4], y[2, 4])


# ---------------------------------------------------------------------------------------------------------------
# Attention


def test_window_partition_roundtrip_and_region_bias() -> None:
    x = torch.randn(2, 8, 16, 3)
    windows = window_partition(x, 4)
    assert windows.shape == (2 * 2 * 4, 16, 3)
    torch.testing.assert_close(window_reverse(windows, 4, 8, 16), x)
    bias = shifted_window_bias(8, 16, 4, 2)
    assert bias.shape == (8, 16, 16)
    assert torch.all(bias[0] == 0)  # windows away from the wrapped border hold one region
    assert torch.all(bias.diagonal(dim1=1, dim2=2) == 0)
    assert set(bias.unique().tolist()) == {-100.0, 0.0}
    assert torch.equal(bias, bias.transpose(1, 2))


def test_attention_ignores_masked_keys_and_updates_mask() -> None:
    torch.manual_seed(0)
    attn = WindowAttention(12, 3)
    x = torch.randn(1, 8, 8, 12)
    mask = torch.ones(1, 8, 8, 1)
    mask[:, :4, :4] = 0  # one whole 4x4 window is a hole
    mask[:, 4, 4] = 0  # one hole token inside a window with valid tokens
    out, new_mask = attn(x, mask, window=4, shift=0, region_bias=None)
    assert torch.all(new_mask[:, :4, :4] == 0)
    assert torch.all(new_mask[:, 4:, :] == 1) and torch.all(new_mask[:, :4, 4:] == 1)
    x2 = x.clone()
    x2[:, 4, 4] += 5.0  # change the hole token: other queries of its window must not see it
    out2, _ = attn(x2, mask, window=4, shift=0, region_bias=None)
    diff = (out2 - out).abs().amax(dim=-1)[0]
    assert diff[4, 4] > 1e-3
    diff[4, 4] = 0
    assert diff.max() < 1e-5


def test_basic_layer_non_square_grid_with_shift() -> None:
    torch.manual_seed(0)
    layer = BasicLayer(12, design_grid=16, depth=2, num_heads=2, window=4)
    assert layer.shift == 2
    x = torch.randn(2, 8, 16, 12)
    mask = torch.ones(2, 8, 16, 1)
    mask[:, :4, :8] = 0
    y, m = layer(x, mask)
    assert y.shape == x.shape and m.shape == mask.shape
    assert BasicLayer(12, design_grid=8, depth=2, num_heads=2, window=8).shift == 0


# ---------------------------------------------------------------------------------------------------------------
# Presets, parameter counts, key names


def test_mat512_parameter_counts_and_official_keys() -> None:
    cfg = mat_512()
    g = build_generator(cfg, seed=0)
    d = build_discriminator(cfg, seed=0)
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    assert count(g) == 61_562_518
    assert count(d) == 36_231_618
    assert count(g.mapping) == 2_101_248
    assert count(g.synthesis.first_stage) == 12_063_865
    assert count(g.synthesis.enc) == 14_123_328
    assert count(g.synthesis.dec) == 25_538_013
    sd = g.state_dict()
    assert len(sd) == 487 - 4  # the official 487 entries minus the four unused attn_mask buffers
    assert not any(k.endswith("attn_mask") for k in sd)
    expected = {
        "mapping.fc0.weight": (512, 512),
        "mapping.fc7.bias": (512,),
        "mapping.w_avg": (512,),
        "synthesis.first_stage.conv_first.conv.weight": (180, 4, 3, 3),
        "synthesis.first_stage.conv_first.conv.resample_filter": (4, 4),
        "synthesis.first_stage.enc_conv.2.conv.weight": (180, 180, 3, 3),
        "synthesis.first_stage.tran.0.blocks.1.attn.q.weight": (180, 180),
        "synthesis.first_stage.tran.2.blocks.3.fuse.weight": (180, 360),
        "synthesis.first_stage.tran.4.blocks.1.mlp.fc1.weight": (360, 180),
        "synthesis.first_stage.tran.4.blocks.1.mlp.fc2.weight": (180, 360),
        "synthesis.first_stage.tran.3.downsample.conv.conv.weight": (180, 180, 3, 3),
        "synthesis.first_stage.tran.1.conv.conv.bias": (180,),
        "synthesis.first_stage.down_conv.3.weight": (180, 180, 3, 3),
        "synthesis.first_stage.to_style.weight": (360, 180),
        "synthesis.first_stage.ws_style.weight": (180, 512),
        "synthesis.first_stage.to_square.weight": (256, 180),
        "synthesis.first_stage.dec_conv.0.conv0.conv.weight": (1, 180, 180, 3, 3),
        "synthesis.first_stage.dec_conv.0.conv0.conv.affine.weight": (180, 540),
        "synthesis.first_stage.dec_conv.2.toRGB.conv.weight": (1, 3, 180, 1, 1),
        "synthesis.first_stage.dec_conv.2.toRGB.bias": (3,),
        "synthesis.enc.EncConv_Block_512x512.conv0.weight": (64, 7, 1, 1),
        "synthesis.enc.EncConv_Block_16x16.conv1.weight": (512, 512, 3, 3),
        "synthesis.to_square.weight": (256, 512),
        "synthesis.to_style.conv.2.weight": (512, 512, 3, 3),
        "synthesis.to_style.fc.weight": (1024, 512),
        "synthesis.dec.Dec_16x16.conv0.weight": (512, 512, 3, 3),
        "synthesis.dec.Dec_16x16.conv1.noise_const": (16, 16),
        "synthesis.dec.Dec_32x32.conv0.noise_const": (32, 32),
        "synthesis.dec.Dec_32x32.conv0.noise_strength": (),
        "synthesis.dec.Dec_512x512.conv1.conv.affine.weight": (64, 1536),
        "synthesis.dec.Dec_512x512.toRGB.conv.weight": (1, 3, 64, 1, 1),
    }
    for key, shape in expected.items():
        assert tuple(sd[key].shape) == shape, key
    assert not any(k.startswith("synthesis.first_stage.tran.0.downsample") for k in sd)
    assert not any("noise" in k for k in sd if k.startswith("synthesis.first_stage"))
    dsd = d.state_dict()
    for key, shape in {
        "Dis.0.conv.weight": (64, 4, 1, 1),
        "Dis.1.skip.weight": (128, 64, 1, 1),
        "Dis.7.conv1.weight": (512, 512, 3, 3),
        "Dis.9.weight": (512, 513, 3, 3),
        "fc0.weight": (512, 8192),
        "fc1.weight": (1, 512),
        "Dis_stg1.9.weight": (256, 257, 3, 3),
        "fc0_stg1.weight": (256, 4096),
        "fc1_stg1.bias": (1,),
    }.items():
        assert tuple(dsd[key].shape) == shape, key
    assert "Dis.1.skip.bias" not in dsd


@pytest.mark.parametrize("name", list(PRESETS))
def test_output_shapes_every_preset(name: str) -> None:
    """Shapes for every preset on a non-square input, traced on the meta device (no arithmetic)."""
    cfg = PRESETS[name]()
    r = cfg.resolution
    with torch.device("meta"):
        g = build_generator(cfg)
        d = build_discriminator(cfg)
        for h, w in ((r, r), (r, 2 * r), (2 * r, r)):
            img = torch.zeros(2, cfg.img_channels, h, w)
            mask = torch.zeros(2, 1, h, w)
            keep1, keep2 = g.synthesis.keep_map_shapes(2, h, w)
            out, stage1 = g(img, mask, torch.zeros(2, cfg.z_dim), noise_mode="none", return_stage1=True,
                            dropout_maps=(torch.zeros(keep1), torch.zeros(keep2)))
            assert out.shape == stage1.shape == (2, cfg.img_channels, h, w)
        logits, logits1 = d(torch.zeros(2, cfg.img_channels, r, r), torch.zeros(2, 1, r, r),
                            torch.zeros(2, cfg.img_channels, r, r))
        assert logits.shape == logits1.shape == (2, 1)


def test_config_dict_roundtrip_and_validation() -> None:
    for make in PRESETS.values():
        cfg = make()
        assert config_from_dict(config_to_dict(cfg)) == cfg
    with pytest.raises(ModelError, match="unknown MatConfig field"):
        config_from_dict({"resolution": 512, "bogus": 1})
    with pytest.raises(ModelError, match="resolution"):
        MatConfig(resolution=500)


def test_mat_small_is_small() -> None:
    g = build_generator(mat_small(), seed=0)
    d = build_discriminator(mat_small(), seed=0)
    n_g = sum(p.numel() for p in g.parameters())
    n_d = sum(p.numel() for p in d.parameters())
    assert n_g == 1_898_753 and n_d == 1_878_274
    fp16_bytes = 2 * (n_g + sum(b.numel() for b in g.buffers()))
    assert fp16_bytes < 25e6


def test_build_seed_is_reproducible_and_leaves_global_rng_alone() -> None:
    state = torch.random.get_rng_state()
    a = build_generator(mat_small(), seed=5).state_dict()
    b = build_generator(mat_small(), seed=5).state_dict()
    assert torch.equal(torch.random.get_rng_state(), state)
    assert all(torch.equal(a[k], b[k]) for k in a)


# ---------------------------------------------------------------------------------------------------------------
# Generator behaviour


def test_known_pixels_exact_and_seeds(small_g, small_batch) -> None:
    img, mask = small_batch
    with torch.no_grad():
        out_a, st1_a = small_g(img, mask, generator=_seeded(1), return_stage1=True)
        out_b = small_g(img, mask, generator=_seeded(1))
        out_c = small_g(img, mask, generator=_seeded(2))
    known = mask.bool().expand_as(img)
    for out in (out_a, st1_a, out_c):
        assert torch.equal(out[known], img[known])
    assert torch.equal(out_a, out_b)  # same seed: bit for bit
    hole = ~known
    assert (out_a[hole] - out_c[hole]).abs().mean() > 1e-3  # another seed: another candidate
    assert torch.isfinite(out_a).all()


def test_explicit_randomness_reproduces_seeded_draws(small_g, small_batch) -> None:
    """Passing z, keep maps and noise explicitly reproduces the draws from a generator (the parity hook)."""
    img, mask = small_batch
    syn = small_g.synthesis
    gen = _seeded(7)
    z = torch.randn((2, small_g.z_dim), generator=gen)
    s1, s2 = syn.keep_map_shapes(2, 256, 256)
    keep1 = torch.empty(s1).bernoulli_(0.5, generator=gen)
    keep2 = torch.empty(s2).bernoulli_(0.5, generator=gen)
    noise = {name: torch.randn((2, 1, *hw), generator=gen) for name, hw in syn.noise_shapes(256, 256).items()}
    with torch.no_grad():
        drawn = small_g(img, mask, generator=_seeded(7))
        given = small_g(img, mask, z, generator=_seeded(99), noise=noise, dropout_maps=(keep1, keep2))
    torch.testing.assert_close(given, drawn, rtol=0, atol=0)


def test_noise_modes_and_truncation(small_g, small_batch) -> None:
    img, mask = small_batch[0][:1], small_batch[1][:1]
    z = torch.randn(1, small_g.z_dim, generator=_seeded(3))
    with torch.no_grad():
        for p in small_g.parameters():  # make noise matter
            if p.ndim == 0:
                p.fill_(0.5)
        try:
            a = small_g(img, mask, z, generator=_seeded(1), noise_mode="const")
            b = small_g(img, mask, z, generator=_seeded(1), noise_mode="none")
            c = small_g(img, mask, z, generator=_seeded(1), noise_mode="random")
            wide = torch.cat([img, img], dim=3), torch.cat([mask, mask], dim=3)
            d = small_g(*wide, z, generator=_seeded(1), noise_mode="const")  # falls back to random noise
        finally:
            for p in small_g.parameters():
                if p.ndim == 0:
                    p.zero_()
        assert not torch.equal(a, b) and not torch.equal(a, c)
        assert d.shape == (1, 1, 256, 512)
        ws = small_g.mapping(z, truncation_psi=0.0)
        assert torch.equal(ws, small_g.mapping.w_avg.expand_as(ws))
        ws_half = small_g.mapping(z, truncation_psi=0.0, truncation_cutoff=3)
        assert torch.equal(ws_half[:, :3], ws[:, :3])
        assert torch.equal(ws_half[:, 3:], small_g.mapping(z)[:, 3:])


def test_update_w_avg(small_batch) -> None:
    g = build_generator(mat_small(), seed=1)
    z = torch.randn(4, g.z_dim)
    with torch.no_grad():
        w = g.mapping(z, update_w_avg=True)[:, 0]
    torch.testing.assert_close(g.mapping.w_avg, 0.005 * w.mean(dim=0))


def test_non_square_inputs(small_g) -> None:
    gen = _seeded(0)
    for h, w in ((256, 512), (512, 256)):
        img = torch.rand(1, 1, h, w, generator=gen) * 2 - 1
        mask = torch.ones(1, 1, h, w)
        mask[..., h // 4 : h // 2, w // 3 : w // 2] = 0
        with torch.no_grad():
            out = small_g(img, mask, generator=gen)
        assert out.shape == (1, 1, h, w)
        assert torch.equal(out[mask.bool()], img[mask.bool()])


def test_input_validation(small_g) -> None:
    with pytest.raises(ModelError, match="multiple of the model's design resolution"):
        small_g(torch.zeros(1, 1, 300, 256), torch.ones(1, 1, 300, 256))
    with pytest.raises(ModelError, match="channel"):
        small_g(torch.zeros(1, 3, 256, 256), torch.ones(1, 1, 256, 256))
    with pytest.raises(ModelError, match="mask shape"):
        small_g(torch.zeros(1, 1, 256, 256), torch.ones(1, 256, 256))


def test_channels_last_and_bf16_autocast(small_g, small_batch) -> None:
    img, mask = small_batch
    with torch.no_grad():
        ref = small_g(img, mask, generator=_seeded(4))
        cl = small_g(img.contiguous(memory_format=torch.channels_last),
                     mask.contiguous(memory_format=torch.channels_last), generator=_seeded(4))
        torch.testing.assert_close(cl, ref, rtol=1e-4, atol=1e-4)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            low = small_g(img, mask, generator=_seeded(4))
    assert low.shape == ref.shape and torch.isfinite(low).all()
    mse = (low.float() - ref).square().mean().item()
    psnr = 10 * math.log10(4.0 / max(mse, 1e-12))  # images span [-1, 1]
    assert psnr > 30


def test_gradients_reach_every_parameter() -> None:
    cfg = mat_small()
    g = build_generator(cfg, seed=0).train()
    d = build_discriminator(cfg, seed=0).train()
    gen = _seeded(0)
    img = torch.rand(2, 1, 256, 256, generator=gen) * 2 - 1
    mask = torch.ones(2, 1, 256, 256)
    mask[:, :, 64:192, 32:160] = 0
    with torch.no_grad():
        for p in g.parameters():  # noise_strength starts at 0; nudge it so every path is exercised
            if p.ndim == 0:
                p.fill_(0.1)
    out, stage1 = g(img, mask, generator=gen, return_stage1=True, update_w_avg=True)
    logits, logits1 = d(out, mask, stage1)
    (F.softplus(-logits).mean() + F.softplus(-logits1).mean()).backward()
    for module in (g, d):
        for name, p in module.named_parameters():
            assert p.grad is not None, name
            assert torch.isfinite(p.grad).all(), name
            assert p.grad.abs().sum() > 0, name


def test_fused_layers_gradcheck_and_double_backward() -> None:
    """The folded gains and in-place activations keep first and second derivatives exact (R1 needs both)."""
    torch.manual_seed(0)
    conv = StyleConv(1, 2, 2, 8, up=2).double()
    with torch.no_grad():
        conv.noise_strength.fill_(0.3)
        conv.bias.normal_()
    noise = torch.randn(2, 1, 8, 8, dtype=torch.float64)
    x = torch.randn(2, 1, 4, 4, dtype=torch.float64, requires_grad=True)
    style = torch.randn(2, 2, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda a, s: conv(a, s, noise=noise), (x, style))
    block = DiscriminatorBlock(1, 2).double()
    assert torch.autograd.gradgradcheck(block, (torch.randn(1, 1, 4, 4, dtype=torch.float64, requires_grad=True),))


def test_fused_conv_equals_reference_bias_act() -> None:
    torch.manual_seed(0)
    for up, down in ((1, 1), (2, 1), (1, 2)):
        layer = Conv2dLayer(3, 4, 3, activation="lrelu", up=up, down=down)
        with torch.no_grad():
            layer.bias.normal_()
        x = torch.randn(2, 3, 8, 8)
        w = layer.weight * layer.weight_gain
        reference = bias_act(conv2d_resample(x, w, layer.resample_filter, up=up, down=down), layer.bias, "lrelu", 0.5)
        torch.testing.assert_close(layer(x, gain=0.5), reference)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_seeded_determinism_and_bf16() -> None:
    device = torch.device("cuda")
    g = build_generator(mat_small(), seed=0).eval().to(device)
    img = torch.rand(2, 1, 256, 256, device=device) * 2 - 1
    mask = torch.ones(2, 1, 256, 256, device=device)
    mask[:, :, 64:192, 64:192] = 0
    with torch.no_grad():
        a = g(img, mask, generator=torch.Generator(device=device).manual_seed(1))
        b = g(img, mask, generator=torch.Generator(device=device).manual_seed(1))
        with torch.autocast("cuda", dtype=torch.bfloat16):
            c = g(img, mask, generator=torch.Generator(device=device).manual_seed(1))
    assert torch.equal(a, b)
    assert torch.equal(a[mask.bool().expand_as(a)], img[mask.bool().expand_as(img)])
    assert torch.isfinite(c).all()
