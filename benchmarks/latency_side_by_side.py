"""Inference latency of two code trees of deepfill side by side.

Each revision's ``src`` folder (e.g. a ``git worktree`` of an older commit) runs in its own
child process with the same settings as the ``deepfill`` command; the revisions alternate
``--rounds`` times so both see the same load. Reports the median per-image latency per
revision and size over all rounds.

    git worktree add /tmp/before 629064c
    python benchmarks/latency_side_by_side.py /tmp/before/src src --sizes 512 --dtypes bfloat16,float32 \\
        --json benchmarks/results/latency_side_by_side.json
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys

import torch

from deepfill.training import hardware

CHILD = r"""
import json, sys, time
size, dtype, runs, hole_fraction = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
from deepfill.runtime import tune_process
tune_process()
import torch
import numpy as np
from deepfill.benchmark import square_hole_case
from deepfill.inpainter import Inpainter
torch.set_num_threads(2)
inpainter = Inpainter.from_pretrained(device="cpu", dtype=dtype)
if size == "photo":  # bench_photo's case, built here so that revisions before it run it too
    rgb = np.random.default_rng(0).random((3000, 4000, 3), dtype=np.float32)
    hole = np.zeros((3000, 4000), bool)
    hole[1350:1650, 1850:2150] = True
elif size == "holes":  # 100 small holes (8-24 px squares) in a 1024 x 1024 image
    rng = np.random.default_rng(0)
    rgb, _ = square_hole_case(1024, 0.0)
    hole = np.zeros((1024, 1024), bool)
    for top, left, side in zip(rng.integers(0, 1000, 100), rng.integers(0, 1000, 100), rng.integers(8, 25, 100)):
        hole[top : top + side, left : left + side] = True
else:
    rgb, hole = square_hole_case(int(size), hole_fraction)
inpainter.fill(rgb, hole)
times = []
for _ in range(runs):
    start = time.perf_counter()
    inpainter.fill(rgb, hole)
    times.append(time.perf_counter() - start)
print(json.dumps(times))
"""


def run_child(src: str, size: str, dtype: str, runs: int, hole_fraction: float) -> list[float]:
    env = {**os.environ, "PYTHONPATH": os.path.abspath(src)}
    out = subprocess.run([sys.executable, "-c", CHILD, size, dtype, str(runs), str(hole_fraction)],
                         check=True, capture_output=True, text=True, env=env)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("before", help="src folder of the first revision")
    parser.add_argument("after", help="src folder of the second revision")
    parser.add_argument("--sizes", default="512", help="square sizes, 'photo' (4000x3000, 300x300 hole) and/or 'holes' (1024x1024, 100 small holes)")
    parser.add_argument("--dtypes", default="bfloat16,float32")
    parser.add_argument("--hole-fraction", type=float, default=0.25, help="of the square cases' area")
    parser.add_argument("--runs", type=int, default=7, help="timed images per child process")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json")
    args = parser.parse_args()
    rows = []
    for dtype in args.dtypes.split(","):
        for size in args.sizes.split(","):
            times = {"before": [], "after": []}
            for _ in range(args.rounds):
                for name in times:
                    times[name] += run_child(getattr(args, name), size, dtype, args.runs, args.hole_fraction)
            row = {"size": size, "dtype": dtype, "hole_fraction": args.hole_fraction, **{f"{name}_median_ms": round(statistics.median(t) * 1000, 1)
                                                     for name, t in times.items()}}
            row["after_over_before"] = round(row["after_median_ms"] / row["before_median_ms"], 3)
            rows.append(row)
            print(json.dumps(row), flush=True)
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"machine": hardware(torch.device("cpu"), 1), "before": args.before, "after": args.after,
                       "runs_per_child": args.runs, "rounds": args.rounds, "results": rows}, fh, indent=2)


if __name__ == "__main__":
    main()
