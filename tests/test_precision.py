"""Precision choice -> dtype per device, with the hardware features passed in (independent of this machine)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from linop_core.errors import LinopError
from linop_core.precision import CpuFeatures, Precision, dtype_name, parse_precision, resolve_precision

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


def test_the_engine_factory_resolves_the_precision_and_records_the_choice(tmp_path) -> None:
    from linop_core.engines import EngineSpec, make_engine
    from linop_core.model.checkpoint import save_checkpoint
    from linop_core.model.presets import build_generator, get_config

    config = get_config("mat-small")
    path = save_checkpoint(tmp_path / "g.pt", config=config, preset="mat-small", G_ema=build_generator(config, seed=0))
    exact = make_engine(EngineSpec(checkpoint=str(path), device="cpu", precision="fp32"))
    assert exact.dtype == torch.float32 and exact.provenance()["precision"] == "fp32"
    fast = make_engine(EngineSpec(checkpoint=str(path), device="cpu", precision="bf16"))
    assert fast.dtype == torch.bfloat16 and fast.provenance()["dtype"] == "bfloat16"
    auto = make_engine(EngineSpec(checkpoint=str(path), device="cpu"))
    assert auto.provenance()["precision"] == "auto"
    assert auto.dtype == resolve_precision("auto", "cpu")
    # The spec knows its dtype without loading anything, and it is the one the engine runs in.
    for engine, spec in ((exact, EngineSpec(checkpoint="absent.pt", device="cpu", precision="fp32")),
                         (fast, EngineSpec(checkpoint="absent.pt", device="cpu", precision="bf16")),
                         (auto, EngineSpec(checkpoint="absent.pt", device="cpu"))):  # fmt: skip
        assert spec.dtype() == engine.dtype and dtype_name(spec.dtype()) == engine.provenance()["dtype"]
    assert EngineSpec.biharmonic(64).dtype() is None and dtype_name(None) == ""
    with pytest.raises(LinopError, match="fp16 runs only on CUDA"):
        make_engine(EngineSpec(checkpoint=str(path), device="cpu", precision="fp16"))


def test_every_sample_of_a_set_records_the_precision(tmp_path) -> None:
    import json

    import numpy as np

    from linop_core.engines import EngineSpec, make_engine
    from linop_core.model.checkpoint import save_checkpoint
    from linop_core.model.presets import build_generator, get_config
    from linop_core.sources import ArraySource, SourceInfo
    from linop_core.synthesis import InpaintRequest
    from linop_core.synthset import SynthSet
    from linop_core.synthset.batch import UnitPlan, explicit_job, write_set

    config = get_config("mat-small")
    path = save_checkpoint(tmp_path / "g.pt", config=config, preset="mat-small", G_ema=build_generator(config, seed=0))
    engine = make_engine(EngineSpec(checkpoint=str(path), device="cpu", precision="bf16"))
    pixels = np.random.default_rng(0).integers(100, 3000, (300, 300)).astype(np.uint16)
    unit = UnitPlan(ArraySource(pixels, SourceInfo("phantom", "a", "s", "training")),
                    InpaintRequest(box=(120.0, 120.0, 170.0, 160.0), seeds=(3,)))
    job = explicit_job([unit], engine, candidates=1, config={"test": "precision"}, anatomy_check=False)
    write_set(job, tmp_path / "set.h5")
    with SynthSet(tmp_path / "set.h5") as synth:
        settings = json.loads(synth.record(0).meta["engine_settings"])
    assert settings["precision"] == "bf16" and settings["dtype"] == "bfloat16" and settings["device"] == "cpu"
