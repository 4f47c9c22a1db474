"""Where and how a trial's model runs: device, autocast dtype, memory format, threads.

Defaults (``auto``): on CUDA, bf16 autocast (fp16 where bf16 is unsupported) and
channels_last; on the CPU, fp32. ``bench/precision.py`` decides the CPU default: bf16 (+
channels_last) trains faster on CPUs with native bf16, but after a short training its val
IoU was not within 0.005 of fp32 (measured -0.008 to -0.031), so it is opt-in there
(``precision: bf16``, which also turns channels_last on).
"""

from __future__ import annotations

import contextlib
import functools
from dataclasses import dataclass
from pathlib import Path

import torch

from trainables.augment import normalize

AMP_DTYPES = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


@dataclass(frozen=True)
class Runtime:
    """Device, autocast dtype (None = fp32) and memory format of a model's inputs."""

    device: torch.device
    amp_dtype: torch.dtype | None = None
    channels_last: bool = False

    def autocast(self) -> contextlib.AbstractContextManager:
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.amp_dtype)

    def prepare(self, batch_uint8: torch.Tensor) -> torch.Tensor:
        """``(N, 3, H, W)`` uint8 on the CPU -> normalised float input on the device."""
        x = normalize(batch_uint8.to(self.device, non_blocking=True))
        fmt = torch.channels_last if self.channels_last else torch.contiguous_format
        return x.contiguous(memory_format=fmt)

    def place(self, model: torch.nn.Module) -> torch.nn.Module:
        model = model.to(self.device)
        if self.channels_last:
            model = model.to(memory_format=torch.channels_last)
        return model


@functools.cache
def cpu_has_bf16() -> bool:
    """Native bf16 arithmetic on this CPU (Linux flags; False where unknown)."""
    try:
        flags = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def resolve_runtime(precision: str, channels_last: str, *, use_cuda: bool) -> Runtime:
    """Turn the config's ``precision`` / ``channels_last`` (``auto`` included) into a Runtime."""
    device = torch.device("cuda" if use_cuda else "cpu")
    if precision == "auto" and use_cuda:
        precision = "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    elif precision == "auto":
        precision = "fp32"  # on CPUs: see bench/precision.py
    auto_cl = use_cuda or precision == "bf16"
    cl = auto_cl if channels_last == "auto" else channels_last == "true"
    return Runtime(device=device, amp_dtype=AMP_DTYPES[precision], channels_last=cl)


def ray_resources() -> tuple[int, bool]:
    """CPUs and whether a usable GPU were assigned to this trial by Ray (1 CPU, no GPU outside)."""
    import ray

    if not ray.is_initialized():
        return 1, False
    assigned = ray.get_runtime_context().get_assigned_resources()
    cpus = max(1, int(assigned.get("CPU", 1)))
    return cpus, assigned.get("GPU", 0) > 0 and torch.cuda.is_available()
