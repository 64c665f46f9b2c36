"""``deepfill benchmark``: inference latency (median of several runs, warm-up excluded)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from deepfill.errors import InputError


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "benchmark",
        help="measure inference latency at 256/512/1024 (and a large photo) on this machine",
        description="Latency of Inpainter.fill end to end, median of --runs after --warmup runs.",
    )
    p.add_argument("--sizes", default="256,512,1024", help="square input sizes (default: 256,512,1024)")
    p.add_argument("--dtypes", default="float32,bfloat16", help="float32, bfloat16, float16 (those without fast kernels on the device are skipped)")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda")
    p.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice)")
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--photo", action="store_true", help="also a 4000x3000 photo with a 300x300 hole (crop strategy)")
    p.add_argument("--weights", type=Path, help="generator weights (default: bundled)")
    p.add_argument("--json", type=Path, help="also write the measurements as JSON to this file")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import torch

    from deepfill.benchmark import bench_photo, bench_square, describe_machine, format_table
    from deepfill.inpainter import DTYPES, Inpainter, resolve_device
    from deepfill.runtime import has_fast_kernels

    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        sizes = [int(s) for s in args.sizes.split(",") if s]
    except ValueError:
        raise InputError(f"--sizes must be integers separated by commas, got {args.sizes!r}") from None
    dtypes = [d for d in args.dtypes.split(",") if d]
    unknown = sorted(set(dtypes) - {"float32", "bfloat16", "float16"})
    if unknown:
        raise InputError(f"unknown --dtypes {', '.join(unknown)} (use float32, bfloat16, float16)")
    device = resolve_device(args.device)
    rows = []
    for dtype in dtypes:
        if not has_fast_kernels(DTYPES[dtype], device):
            print(f"skipping {dtype}: this {device.type.upper()} has no fast {dtype} kernels")
            continue
        inpainter = Inpainter.from_pretrained(args.weights, device=device, dtype=dtype)
        for size in sizes:
            rows.append(bench_square(inpainter, size, args.runs, args.warmup))
            print(format_table(rows[-1:]).splitlines()[-1], flush=True)
        if args.photo:
            rows.append(bench_photo(inpainter, 4000, 3000, 300, args.runs, args.warmup))
            print(format_table(rows[-1:]).splitlines()[-1], flush=True)
    print()
    print(format_table(rows))
    machine = describe_machine()
    print(f"\nmachine: {machine['processor']} ({machine['cpu_capability']}), {machine['threads']} threads, "
          f"torch {machine['torch']}")
    if args.json:
        payload = {"machine": machine, "results": [r.__dict__ for r in rows]}
        args.json.write_text(json.dumps(payload, indent=2) + "\n")
        print(f"wrote {args.json}")
    return 0
