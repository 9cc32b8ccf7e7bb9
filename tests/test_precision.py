"""Precision choice -> dtype per device, with the hardware features passed in (independent of this machine)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from linop_core.errors import LinopError
from linop_core.precision import CpuFeatures, Precision, parse_precision, resolve_precision

PLAIN_CPU = CpuFeatures()
BF16_CPU = CpuFeatures.from_flags("fpu sse2 avx2 avx512f avx512_bf16")
AMX_CPU = CpuFeatures.from_flags({"avx512f", "amx_tile", "amx_bf16"})


def test_cpu_features_from_flags() -> None:
    assert not PLAIN_CPU.native_bf16
    assert (BF16_CPU.avx512_bf16, BF16_CPU.amx_bf16, BF16_CPU.native_bf16) == (True, False, True)
    assert (AMX_CPU.avx512_bf16, AMX_CPU.amx_bf16, AMX_CPU.native_bf16) == (False, True, True)
    assert not CpuFeatures.from_flags("avx512f avx512_vnni").native_bf16


def test_auto_on_the_cpu_follows_native_bf16() -> None:
    assert resolve_precision("auto", "cpu", cpu=BF16_CPU) == torch.bfloat16
    assert resolve_precision(Precision.AUTO, torch.device("cpu"), cpu=AMX_CPU) == torch.bfloat16
    assert resolve_precision("auto", "cpu", cpu=PLAIN_CPU) == torch.float32


def test_explicit_choices_on_the_cpu() -> None:
    assert resolve_precision("fp32", "cpu", cpu=BF16_CPU) == torch.float32
    assert resolve_precision("bf16", "cpu", cpu=PLAIN_CPU) == torch.bfloat16  # allowed, only slower
    with pytest.raises(LinopError, match="fp16 runs only on CUDA") as info:
        resolve_precision("fp16", "cpu", cpu=BF16_CPU)
    assert "\n" not in str(info.value)


def test_cuda_follows_bf16_support() -> None:
    assert resolve_precision("auto", "cuda:0", cuda_bf16=True) == torch.bfloat16
    assert resolve_precision("auto", "cuda", cuda_bf16=False) == torch.float32
    assert resolve_precision("fp16", "cuda", cuda_bf16=False) == torch.float16
    assert resolve_precision("bf16", "cuda", cuda_bf16=True) == torch.bfloat16
    with pytest.raises(LinopError, match="no bf16"):
        resolve_precision("bf16", "cuda", cuda_bf16=False)


def test_other_devices_and_bad_names() -> None:
    assert resolve_precision("auto", "meta") == torch.float32
    assert parse_precision(" BF16 ") is Precision.BF16
    with pytest.raises(LinopError, match="unknown precision 'fp8'; choose one of auto, fp32, bf16, fp16"):
        resolve_precision("fp8", "cpu")


def test_detect_reads_cpuinfo_when_torch_cannot_tell(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delattr(torch.cpu, "_is_avx512_bf16_supported", raising=False)
    monkeypatch.delattr(torch.cpu, "_is_amx_tile_supported", raising=False)
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nflags\t\t: fpu avx2 avx512f avx512_bf16\n\nprocessor\t: 1\n")
    assert CpuFeatures.detect(cpuinfo) == CpuFeatures(avx512_bf16=True)
    assert CpuFeatures.detect(tmp_path / "missing") == CpuFeatures()


def test_detect_uses_torch_checks(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False, raising=False)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: True, raising=False)
    assert CpuFeatures.detect(tmp_path / "missing") == CpuFeatures(amx_bf16=True)
