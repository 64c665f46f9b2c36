"""Process-wide settings that make the network run at the speed of its arithmetic.

:func:`tune_process` applies both below; the ``deepfill`` command calls it at start. The
trainer and :class:`~deepfill.inpainter.Inpainter` flush denormals themselves, since that alone
is worth 3x; the allocator setting changes the whole process's memory use, so only the command
makes it (programs that embed deepfill may call :func:`retain_freed_memory` themselves).

**Freed memory stays in the process.** glibc serves allocations above its mmap threshold
(128 KiB to 32 MiB) with fresh ``mmap`` pages and unmaps them on free, so every forward pass
faults its activations in again, page by page: at 512 x 512 float32, 76k faults per image, 6k
with this setting. Once denormals are flushed that costs no measurable inference time
(benchmarks/results/runtime_settings.json), but in a live bf16 training run on a virtual
machine it was 30 % of a step (16.9 s -> 12.0 s). ``retain_freed_memory`` serves everything
from the heap and trims it only above 1 GiB of free space; peak memory stays what the work
needs. The same from the environment: ``MALLOC_MMAP_MAX_=0 MALLOC_TRIM_THRESHOLD_=1073741824``.

**Denormals are flushed to zero.** ELU's exp and the backward pass of a trained network make
values below 1e-38, which x86 cores compute in microcode at a fraction of the normal speed: on
2 cores, 512 x 512 float32 inference took 3.49 s with them and 1.12 s without, and a float32
training step from trained weights 20.2 s against 8.7 s (256 x 256, batch 8). Flushing them
changes no result beyond 1e-38.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import logging
import platform

import torch

log = logging.getLogger(__name__)

_M_TRIM_THRESHOLD = -1
_M_MMAP_MAX = -4
TRIM_THRESHOLD = 1 << 30


@functools.cache
def _glibc() -> ctypes.CDLL | None:
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return None
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    except OSError:
        return None


def retain_freed_memory() -> bool:
    """Tune glibc's malloc as described above; returns False (and does nothing) elsewhere."""
    libc = _glibc()
    try:
        done = libc is not None and libc.mallopt(_M_MMAP_MAX, 0) == 1 and \
            libc.mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD) == 1
    except AttributeError:
        done = False
    if not done:
        log.debug("could not tune glibc malloc; keeping its defaults")
    return done


def release_freed_memory() -> None:
    """Hand the free pages of every malloc arena back to the system now (glibc; elsewhere a no-op).

    For long-lived processes after unusually large work: what :func:`retain_freed_memory` keeps,
    and what threads' arenas hold, would otherwise stay with the process for good.
    """
    libc = _glibc()
    if libc is not None and hasattr(libc, "malloc_trim"):
        libc.malloc_trim(0)


def flush_denormals() -> bool:
    """Treat float32 values below 1e-38 as zero on this CPU (see above); False where unsupported."""
    return torch.set_flush_denormal(True)


def has_fast_kernels(dtype: torch.dtype, device: torch.device) -> bool:
    """Whether ``device`` computes ``dtype`` convolutions and matrix products in hardware.

    A CPU without AVX-512 (or AMX, or Arm's BF16) emulates bfloat16 and float16: on a 2-core
    AVX2 EPYC a 128-channel 3x3 convolution took 10x and a 2k x 1k x 4k product 300x as long as
    in float32. float32 is fast everywhere.
    """
    if dtype == torch.float32:
        return True
    if device.type == "cuda":
        return dtype != torch.bfloat16 or torch.cuda.is_bf16_supported()
    if device.type != "cpu":
        return True
    check = {torch.bfloat16: "_is_mkldnn_bf16_supported", torch.float16: "_is_mkldnn_fp16_supported"}.get(dtype)
    try:
        return check is not None and bool(getattr(torch.ops.mkldnn, check)())
    except (AttributeError, RuntimeError):  # a build without oneDNN
        return False


def tune_process() -> None:
    """Both settings of this module, where the platform has them."""
    retain_freed_memory()
    flush_denormals()
