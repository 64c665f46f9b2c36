"""Inference latency without and with the process settings of ``deepfill.runtime``.

Variants: ``default`` (neither: denormals are turned back on after the Inpainter, which flushes
them, is made), ``retain_freed_memory`` (only the allocator setting), ``tune_process`` (both:
what the ``deepfill`` command runs with). The settings are process-wide, so each variant runs in
its own child process; the variants alternate ``--rounds`` times so all see the same load.
Reports, per variant, the median over all rounds of the per-image latency, the minor page
faults per image and peak RSS.

    python benchmarks/runtime_settings.py --sizes 512 --dtype float32 --json benchmarks/results/runtime_settings.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys

import torch

from deepfill.training import hardware

CHILD = r"""
import json, resource, sys, time
variant, size, dtype, runs = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
from deepfill import runtime
if variant != "default":
    getattr(runtime, variant)()
import torch
from deepfill.benchmark import square_hole_case
from deepfill.inpainter import Inpainter
torch.set_num_threads(2)
inpainter = Inpainter.from_pretrained(device="cpu", dtype=dtype)
torch.set_flush_denormal(variant == "tune_process")
rgb, hole = square_hole_case(size)
inpainter.fill(rgb, hole)
faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
times = []
for _ in range(runs):
    start = time.perf_counter()
    inpainter.fill(rgb, hole)
    times.append(time.perf_counter() - start)
usage = resource.getrusage(resource.RUSAGE_SELF)
print(json.dumps({"times": times, "faults_per_image": (usage.ru_minflt - faults) / runs,
                  "peak_rss_mb": usage.ru_maxrss / 1024}))
"""


VARIANTS = ("default", "retain_freed_memory", "tune_process")


def run_child(variant: str, size: int, dtype: str, runs: int) -> dict:
    out = subprocess.run([sys.executable, "-c", CHILD, variant, str(size), dtype, str(runs)],
                         check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="512")
    parser.add_argument("--dtype", default="float32")
    parser.add_argument("--runs", type=int, default=3, help="images per child process")
    parser.add_argument("--rounds", type=int, default=3, help="alternating child processes per variant")
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    results = []
    for size in (int(s) for s in args.sizes.split(",")):
        runs = {variant: [] for variant in VARIANTS}
        for _ in range(args.rounds):
            for variant in VARIANTS:
                runs[variant].append(run_child(variant, size, args.dtype, args.runs))
        for variant in VARIANTS:
            row = {"size": size, "dtype": args.dtype, "settings": variant,
                   "median_ms": 1000 * statistics.median(t for r in runs[variant] for t in r["times"]),
                   "faults_per_image": statistics.median(r["faults_per_image"] for r in runs[variant]),
                   "peak_rss_mb": max(r["peak_rss_mb"] for r in runs[variant])}
            results.append(row)
            print(f"{size:5d} {args.dtype:9s} {variant:20s} {row['median_ms']:8.0f} ms "
                  f"{row['faults_per_image']:9.0f} faults/image  peak RSS {row['peak_rss_mb']:.0f} MB", flush=True)
    if args.json:
        torch.set_num_threads(2)  # as in the children
        with open(args.json, "w") as fh:
            json.dump({"machine": hardware(torch.device("cpu"), 1), "results": results}, fh, indent=2)
            fh.write("\n")


if __name__ == "__main__":
    main()
