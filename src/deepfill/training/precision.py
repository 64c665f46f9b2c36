"""The precision a device trains in: ``amp = "auto"`` takes bf16 only where it runs fast."""

from __future__ import annotations

import contextlib
import logging

import torch

from deepfill.runtime import has_fast_kernels

log = logging.getLogger(__name__)


def autocast_dtype(amp: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype of ``amp`` (auto | none | bf16 | fp16) on ``device``; None: float32."""
    if amp == "none":
        return None
    if amp == "fp16":
        return torch.float16
    if amp == "bf16":
        return torch.bfloat16
    if amp != "auto":
        raise ValueError(f"amp must be auto, none, bf16 or fp16, got {amp!r}")
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else None
    return torch.bfloat16 if has_fast_kernels(torch.bfloat16, device) else None


def warn_if_emulated(dtype: torch.dtype | None, device: torch.device, amp: str) -> None:
    """One warning line when ``dtype`` would be emulated on ``device`` (many times slower)."""
    if dtype is not None and not has_fast_kernels(dtype, device):
        log.warning("warning: amp = %s on a device that emulates it: steps will be many times slower "
                    "than with amp = \"none\"", amp)


def autocast(dtype: torch.dtype | None, device: torch.device) -> contextlib.AbstractContextManager:
    """``torch.autocast`` to ``dtype`` on ``device``, or nothing for float32."""
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=dtype)
