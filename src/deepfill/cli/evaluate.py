"""``deepfill evaluate``: score deepfill and classical baselines on a folder of photos."""

from __future__ import annotations

import argparse
import time

DEFAULT_METHODS = "deepfill,deepfill-poisson,deepfill-noblend,telea,ns,harmonic,biharmonic,patchmatch,mean"


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "evaluate",
        help="evaluate inpainting methods on a folder of images with fixed masks",
        description="Evaluate deepfill and classical baselines under a fixed mask protocol; "
        "writes metrics.csv, report.md, grid.png and l1_vs_area.png to the report folder.",
    )
    p.add_argument("--images", required=True, help="folder of ground-truth images (taken sorted by name)")
    p.add_argument("--out", required=True, help="report folder (must be empty or new unless --overwrite)")
    p.add_argument("--protocol", default="bbox256", choices=("bbox256", "free256", "free512"),
                   help="mask protocol (default: bbox256, the paper's)")
    p.add_argument("--methods", default=DEFAULT_METHODS,
                   help=f"comma-separated methods (default: {DEFAULT_METHODS})")
    p.add_argument("--limit", type=int, default=None, help="evaluate only the first N images")
    p.add_argument("--weights", default=None, help="deepfill weights file (default: the bundled model)")
    p.add_argument("--device", default="auto", help="device for deepfill: auto, cpu, cuda, ... (default: auto)")
    p.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"],
                   help="precision of deepfill's inference (default: float32)")
    p.add_argument("--grid", type=int, default=4, metavar="N", help="rows of the results grid (default: 4)")
    p.add_argument("--overwrite", action="store_true", help="write into a non-empty report folder")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from deepfill.evaluate import evaluate, format_table, summarize

    start = time.perf_counter()
    result = evaluate(
        args.images,
        args.out,
        protocol=args.protocol,
        methods=args.methods.split(","),
        limit=args.limit,
        weights=args.weights,
        device=args.device,
        dtype=args.dtype,
        grid_rows=max(0, args.grid),
        overwrite=args.overwrite,
        progress=not args.no_progress,
    )
    n_images = len(result.gt_tv)
    print(f"{result.protocol.name}: {n_images} images, {time.perf_counter() - start:.1f} s")
    print(format_table(summarize(result.rows)))
    print(f"report written to {args.out}/report.md")
    return 0
