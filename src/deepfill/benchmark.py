"""Inference latency and memory measurements for ``deepfill benchmark``."""

from __future__ import annotations

import dataclasses
import logging
import platform
import resource
import statistics
import time
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from deepfill.inpainter import Inpainter

log = logging.getLogger(__name__)


@dataclasses.dataclass
class Measurement:
    case: str
    size: str
    dtype: str
    device: str
    threads: int
    median_s: float
    min_s: float
    runs: int
    peak_rss_mb: float

    def row(self) -> list[str]:
        return [self.case, self.size, self.dtype, self.device, str(self.threads),
                f"{self.median_s * 1000:.1f}", f"{self.min_s * 1000:.1f}", f"{self.peak_rss_mb:.0f}"]


HEADER = ["case", "size", "dtype", "device", "threads", "median ms", "min ms", "peak RSS MB"]


def _timed(fn: Callable[[], None], runs: int, warmup: int, device: torch.device) -> list[float]:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(runs):
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return times


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def square_hole_case(size: int, hole_fraction: float = 0.25) -> tuple[np.ndarray, np.ndarray]:
    """A photo-like image with a centred square hole covering ``hole_fraction`` of the area."""
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:size, 0:size] / size
    rgb = np.stack([xx, yy, 0.5 + 0.3 * np.sin(20 * xx)], axis=2) + rng.normal(0, 0.03, (size, size, 3))
    hole = np.zeros((size, size), bool)
    side = int(size * hole_fraction**0.5)
    start = (size - side) // 2
    hole[start : start + side, start : start + side] = True
    return np.clip(rgb, 0, 1).astype(np.float32), hole


def bench_square(inpainter: Inpainter, size: int, runs: int, warmup: int) -> Measurement:
    """End to end through ``Inpainter.fill``: the network on a size x size image, 25 % hole."""
    rgb, hole = square_hole_case(size)
    times = _timed(lambda: inpainter.fill(rgb, hole), runs, warmup, inpainter.device)
    return _measurement("square hole 25%", f"{size}x{size}", inpainter, times)


def bench_photo(inpainter: Inpainter, width: int, height: int, hole: int, runs: int, warmup: int) -> Measurement:
    """A large photo with one small hole: exercises the crop strategy."""
    rng = np.random.default_rng(0)
    rgb = rng.random((height, width, 3), dtype=np.float32)
    mask = np.zeros((height, width), bool)
    top, left = (height - hole) // 2, (width - hole) // 2
    mask[top : top + hole, left : left + hole] = True
    times = _timed(lambda: inpainter.fill(rgb, mask), runs, warmup, inpainter.device)
    return _measurement(f"photo, {hole}x{hole} hole", f"{width}x{height}", inpainter, times)


def _measurement(case: str, size: str, inpainter: Inpainter, times: list[float]) -> Measurement:
    return Measurement(case, size, str(inpainter.dtype).removeprefix("torch."),
                       str(inpainter.device), torch.get_num_threads(), statistics.median(times), min(times),
                       len(times), peak_rss_mb())


# The /proc/cpuinfo flags that decide which precisions run in hardware (has_fast_kernels asks
# oneDNN; these say why, e.g. AMX tiles behind a 7x faster bfloat16 convolution).
PRECISION_FLAGS = ("avx512f", "avx512_bf16", "avx512_fp16", "amx_bf16", "amx_fp16", "amx_int8")


def describe_machine() -> dict[str, object]:
    """The CPU model, its precision-related flags, torch's vector extensions, threads, torch version."""
    processor = platform.processor() or platform.machine()
    flags: set[str] = set()
    try:
        cpuinfo = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        cpuinfo = []
    for line in cpuinfo:
        key, _, value = line.partition(":")
        if key.strip() == "model name":
            processor = value.strip()
        elif key.strip() == "flags":
            flags = set(value.split())
            break
    return {"processor": processor, "machine": platform.machine(),
            "cpu_flags": [flag for flag in PRECISION_FLAGS if flag in flags],
            "cpu_capability": torch.backends.cpu.get_cpu_capability(), "threads": torch.get_num_threads(),
            "torch": torch.__version__}


def format_table(rows: list[Measurement]) -> str:
    table = [HEADER] + [r.row() for r in rows]
    widths = [max(len(line[i]) for line in table) for i in range(len(HEADER))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(line, widths)) for line in table]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)
