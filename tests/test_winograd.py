"""NNPACK Winograd 3x3 convs: equal to the direct conv within Winograd rounding, used only where they may be."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from linop_core.model.layers import conv2d_resample, fir_filter
from linop_core.model.winograd import MIN_CHANNELS, conv3x3_winograd, nnpack_available, relayout, use_winograd

needs_nnpack = pytest.mark.skipif(not nnpack_available(), reason="this PyTorch build has no NNPACK")
CHANNELS_LAST = torch.channels_last
# Winograd F(6x6, 3x3) in float32 is off by ~1e-5 of the output's range (the direct conv by ~1e-7); a wrong
# tap or channel would be off by the order of the range itself.
WINOGRAD_ROUNDING = 3e-5


def _operands(batch: int = 1, channels: int = MIN_CHANNELS, out: int = 160, size: int = 20
              ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(batch, channels, size, size + 4, generator=gen)
    weight = torch.randn(out, channels, 3, 3, generator=gen) / (9 * channels) ** 0.5
    return x, weight, torch.randn(out, generator=gen)


def test_relayout_keeps_values_and_takes_the_format() -> None:
    x = torch.randn(2, 5, 7, 9)
    y = relayout(x, CHANNELS_LAST)
    assert torch.equal(y, x) and y.is_contiguous(memory_format=CHANNELS_LAST) and not y.is_contiguous()
    z = relayout(y[..., 1:5, 2:8], torch.contiguous_format)
    assert torch.equal(z, x[..., 1:5, 2:8]) and z.is_contiguous()


@needs_nnpack
@pytest.mark.parametrize("layout", ["contiguous", "channels_last", "cropped"])
def test_winograd_equals_direct_conv(layout: str) -> None:
    x, weight, bias = _operands(batch=2)
    if layout == "channels_last":
        x = x.contiguous(memory_format=CHANNELS_LAST)
    elif layout == "cropped":  # a hole window: a strided view of a larger channels-last map
        x = x.contiguous(memory_format=CHANNELS_LAST)[..., 2:17, 3:21]
    reference = F.conv2d(x.double(), weight.double(), bias.double(), padding=1)
    with torch.no_grad():
        y = conv3x3_winograd(x, weight, bias)
        no_bias = conv3x3_winograd(x, weight, None)
    assert y.shape == reference.shape
    assert y.is_contiguous() == (layout == "contiguous")
    scale = reference.abs().max().item()
    torch.testing.assert_close(y.double(), reference, rtol=0, atol=WINOGRAD_ROUNDING * scale)
    torch.testing.assert_close(no_bias.double(), reference - bias.double()[:, None, None], rtol=0,
                               atol=WINOGRAD_ROUNDING * scale)


@needs_nnpack
def test_conv2d_resample_takes_the_winograd_path_only_in_fp32_inference() -> None:
    x, weight, bias = _operands()
    x = x.contiguous(memory_format=CHANNELS_LAST)
    f = fir_filter()
    with torch.no_grad():
        assert use_winograd(x, weight)
        fast = conv2d_resample(x, weight, f, bias=bias)
        with torch.backends.nnpack.flags(enabled=False):
            assert not use_winograd(x, weight)
            direct = conv2d_resample(x, weight, f, bias=bias)
        assert fast.is_contiguous(memory_format=CHANNELS_LAST)
        torch.testing.assert_close(fast, direct, rtol=0, atol=WINOGRAD_ROUNDING * direct.abs().max().item())
        assert not use_winograd(x, weight, stride=2)
        assert not use_winograd(x, weight, groups=2)
        assert not use_winograd(x[:, : MIN_CHANNELS - 1], weight[:, : MIN_CHANNELS - 1])
        assert not use_winograd(x.double(), weight.double())
        assert not use_winograd(x, weight[..., :1, :1], padding=0)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            assert not use_winograd(x, weight)  # autocast asked for bf16 convs
    assert not use_winograd(x, weight)  # autograd on: training keeps the direct conv and its gradients
