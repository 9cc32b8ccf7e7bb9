"""Numeric precision of generator inference: the user's choice and the dtype it resolves to on a device.

``auto`` takes bfloat16 where the hardware computes it natively, float32 elsewhere:

- CPU: bfloat16 when the CPU has AVX512-BF16 or AMX-BF16, where oneDNN's bf16 convs run about twice as fast as
  its float32 ones (the generator's output stays 50-70 dB PSNR from float32); without them bf16 is emulated and
  usually slower than float32.
- CUDA: bfloat16 when ``torch.cuda.is_bf16_supported()`` (Ampere and newer), float32 otherwise.
- Any other device: float32.

float16 is a GPU format: on the CPU it is refused with a one-line :class:`~linop_core.errors.LinopError`.
The CPU's features are passed in as a :class:`CpuFeatures` where a caller (or a test) knows them, and are read
from PyTorch and ``/proc/cpuinfo`` otherwise.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from pathlib import Path

import torch

from linop_core.errors import LinopError

CPUINFO = Path("/proc/cpuinfo")


class Precision(enum.StrEnum):
    """What the user asks for (CLI ``--precision``, GUI setting)."""

    AUTO = "auto"
    FP32 = "fp32"
    BF16 = "bf16"
    FP16 = "fp16"


DTYPES = {Precision.FP32: torch.float32, Precision.BF16: torch.bfloat16, Precision.FP16: torch.float16}


def dtype_name(dtype: torch.dtype | None) -> str:
    """How provenance, the status bar and reports name a dtype ("float32", "bfloat16"); "" for none."""
    return "" if dtype is None else str(dtype).removeprefix("torch.")


@dataclass(frozen=True)
class CpuFeatures:
    """The CPU instruction-set extensions that make bfloat16 native."""

    avx512_bf16: bool = False
    amx_bf16: bool = False

    @property
    def native_bf16(self) -> bool:
        return self.avx512_bf16 or self.amx_bf16

    @classmethod
    def from_flags(cls, flags: str | set[str]) -> CpuFeatures:
        """From Linux ``/proc/cpuinfo`` flag names (a whitespace-separated string or a set)."""
        names = set(flags.split()) if isinstance(flags, str) else set(flags)
        return cls(avx512_bf16="avx512_bf16" in names, amx_bf16="amx_bf16" in names)

    @classmethod
    def detect(cls, cpuinfo: Path = CPUINFO) -> CpuFeatures:
        """This machine's features: PyTorch's own CPU checks, or the ``flags`` line of ``cpuinfo`` where PyTorch
        has none."""
        avx512_bf16 = getattr(torch.cpu, "_is_avx512_bf16_supported", None)
        amx_tile = getattr(torch.cpu, "_is_amx_tile_supported", None)
        from_torch = cls(avx512_bf16=bool(avx512_bf16()) if avx512_bf16 else False,
                         amx_bf16=bool(amx_tile()) if amx_tile else False)
        if from_torch.native_bf16 or (avx512_bf16 and amx_tile):
            return from_torch
        return cls.from_flags(_cpuinfo_flags(cpuinfo))


def _cpuinfo_flags(cpuinfo: Path) -> set[str]:
    try:
        text = cpuinfo.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return set()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "flags":
            return set(value.split())
    return set()


def parse_precision(choice: Precision | str) -> Precision:
    """``choice`` as a :class:`Precision`; a one-line :class:`LinopError` naming the choices otherwise."""
    try:
        return Precision(str(choice).strip().lower())
    except ValueError:
        names = ", ".join(p.value for p in Precision)
        raise LinopError(f"unknown precision {choice!r}; choose one of {names}") from None


def resolve_precision(choice: Precision | str, device: torch.device | str, *, cpu: CpuFeatures | None = None,
                      cuda_bf16: bool | None = None) -> torch.dtype:
    """The dtype to run the generator in for ``choice`` on ``device``.

    Args:
        choice: ``auto``, ``fp32``, ``bf16`` or ``fp16``.
        device: where the generator runs.
        cpu: the CPU's features (default: :meth:`CpuFeatures.detect`); only read for ``auto`` on the CPU.
        cuda_bf16: whether the CUDA device computes bf16 natively (default: ``torch.cuda.is_bf16_supported()``);
            only read on CUDA.

    Raises:
        LinopError: fp16 on the CPU, or bf16 on a GPU without it.
    """
    precision = parse_precision(choice)
    kind = torch.device(device).type
    if kind == "cpu":
        if precision is Precision.FP16:
            raise LinopError("fp16 runs only on CUDA GPUs; on the CPU choose bf16, fp32 or auto")
        if precision is Precision.AUTO:
            native = (cpu if cpu is not None else CpuFeatures.detect()).native_bf16
            return torch.bfloat16 if native else torch.float32
        return DTYPES[precision]
    if kind == "cuda":
        has_bf16 = torch.cuda.is_bf16_supported() if cuda_bf16 is None else cuda_bf16
        if precision is Precision.AUTO:
            return torch.bfloat16 if has_bf16 else torch.float32
        if precision is Precision.BF16 and not has_bf16:
            raise LinopError(f"this GPU ({device}) has no bf16 arithmetic; choose fp16, fp32 or auto")
        return DTYPES[precision]
    if precision is Precision.AUTO:
        return torch.float32
    return DTYPES[precision]
