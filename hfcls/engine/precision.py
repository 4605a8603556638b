"""train.mixed_precision against the hardware that will run it.

The zoo recipes ask for bf16: 2x the fp32 step on an H100 and 3.5x on a CPU
with AMX (benchmarks/README.md). A GPU without bf16 cannot run it at all, and
a CPU without bf16 instructions emulates it, slower than fp32.
"""

from __future__ import annotations

import logging
import platform

import torch

from hfcls.errors import HfclsError

logger = logging.getLogger(__name__)


def check_mixed_precision(mode: str, device_type: str) -> None:
    """Raise where `mode` cannot run on `device_type`; warn where it runs slower than fp32."""
    if mode != "bf16" or has_bf16(device_type):
        return
    if device_type == "cuda":
        raise HfclsError(
            f"train.mixed_precision=bf16 needs a GPU with bfloat16 (Ampere or newer); "
            f"{torch.cuda.get_device_name()} has none: set train.mixed_precision=fp16 or no"
        )
    logger.warning(
        "train.mixed_precision=bf16 on a CPU without bfloat16 instructions (AVX512-BF16 or AMX) "
        "is emulated and slower than fp32; set train.mixed_precision=no for this run"
    )


def has_bf16(device_type: str) -> bool:
    """Whether `device_type` computes in bfloat16 itself (other devices are given the benefit of the doubt)."""
    if device_type == "cuda":
        return torch.cuda.is_bf16_supported()
    return cpu_has_bf16() if device_type == "cpu" else True


def cpu_has_bf16() -> bool:
    """x86 with AVX512-BF16 or AMX; ARM CPUs are given the benefit of the doubt."""
    if platform.machine().lower() in ("arm64", "aarch64"):
        return True
    return torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported()


def default_device_type() -> str:
    """The kind of device Accelerate will train on in this process."""
    accelerator = torch.accelerator.current_accelerator(check_available=True)
    return accelerator.type if accelerator is not None else "cpu"
