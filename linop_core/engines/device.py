"""Which torch device and dtype an engine runs on, and how out-of-memory is recognised and released."""

from __future__ import annotations

import torch

from linop_core.errors import LinopError


def pick_device(override: str | torch.device | None = None) -> torch.device:
    """The torch device to run on: ``override`` if given ("cpu", "cuda", "cuda:1", "mps", "auto"),
    else CUDA, then Apple MPS, then the CPU. Raises :class:`LinopError` for a device this machine lacks."""
    if isinstance(override, torch.device):
        override = str(override)
    choice = (override or "auto").strip().lower()
    if choice == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(choice)
    except RuntimeError:
        raise LinopError(
            f"device {override!r} is not a device name; use auto, cpu, cuda, cuda:N or mps"
        ) from None
    if device.type == "cpu":
        return device
    if device.type == "cuda":
        if not torch.backends.cuda.is_built():
            raise LinopError(
                f"device {override!r}: this PyTorch build has no CUDA support; install a CUDA build of torch "
                "or use --device cpu"
            )
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise LinopError(
                f"device {override!r}: no CUDA GPU is visible (driver missing or CUDA_VISIBLE_DEVICES empty); "
                "use --device cpu"
            )
        if device.index is not None and device.index >= count:
            raise LinopError(
                f"device {override!r}: this machine has {count} CUDA device(s) (cuda:0..cuda:{count - 1}); "
                "pick one of those"
            )
        return device
    if device.type == "mps":
        if not torch.backends.mps.is_available():
            raise LinopError(
                f"device {override!r}: Apple MPS is not available here (needs macOS 12.3+ on Apple silicon "
                "and an MPS build of torch); use --device cpu"
            )
        return device
    raise LinopError(f"device {override!r} is not supported; use auto, cpu, cuda, cuda:N or mps")


_DTYPES = {
    "float32": torch.float32, "fp32": torch.float32,
    "float16": torch.float16, "fp16": torch.float16, "half": torch.float16,
    "bfloat16": torch.bfloat16, "bf16": torch.bfloat16,
}


def resolve_dtype(dtype: str | torch.dtype | None, device: torch.device) -> torch.dtype:
    if dtype is None:
        return torch.float32
    if isinstance(dtype, str):
        try:
            dtype = _DTYPES[dtype.lower()]
        except KeyError:
            raise LinopError(f"dtype {dtype!r} is not supported; use float32, float16 or bfloat16") from None
    if dtype not in (torch.float32, torch.float16, torch.bfloat16):
        raise LinopError(f"dtype {dtype} is not supported; use float32, float16 or bfloat16")
    if dtype == torch.float16 and device.type == "cpu":
        raise LinopError("float16 needs a GPU; on the CPU use float32 or bfloat16")
    return dtype


def is_out_of_memory(exc: BaseException) -> bool:
    if isinstance(exc, torch.cuda.OutOfMemoryError):
        return True
    # MPS and some CUDA paths raise a plain RuntimeError.
    return isinstance(exc, RuntimeError) and "out of memory" in str(exc).lower()


def release_memory(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.empty_cache()
    elif device.type == "mps":
        torch.mps.empty_cache()
