"""Keep freed memory in the process instead of returning it to the OS after every tensor.

glibc serves allocations above its mmap threshold (128 KiB to 32 MiB) with fresh ``mmap``
pages and unmaps them on free, so every forward pass of the network faults its activations in
again, page by page: about 1 GB of page faults per 512 x 512 image, which on virtual machines
cost as much as a fifth of the inference time and over a third of a training step (measured:
benchmarks/results/allocator.json). ``retain_freed_memory`` serves everything from the heap and
trims it only above 1 GiB of free space; peak memory stays what the work needs.

The ``deepfill`` command calls it at start. It changes the whole process, so the library never
does; programs that embed deepfill may call it themselves, or set ``MALLOC_MMAP_MAX_=0`` and
``MALLOC_TRIM_THRESHOLD_=1073741824`` in the environment.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import platform

log = logging.getLogger(__name__)

_M_TRIM_THRESHOLD = -1
_M_MMAP_MAX = -4
TRIM_THRESHOLD = 1 << 30


def retain_freed_memory() -> bool:
    """Tune glibc's malloc as described above; returns False (and does nothing) elsewhere."""
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        done = libc.mallopt(_M_MMAP_MAX, 0) == 1 and libc.mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD) == 1
    except (OSError, AttributeError):
        done = False
    if not done:
        log.debug("could not tune glibc malloc; keeping its defaults")
    return done
