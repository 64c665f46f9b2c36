"""``deepfill data build|compact``: the training photo set from Debian packages (docs/design.md §3)."""

from __future__ import annotations

import argparse
import time
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "data",
        help="build the training/validation photo set from Debian packages",
        description="Build the photo set of docs/design.md §3 (apt-get download + dpkg-deb -x, no root), "
        "or a compact copy of it for carrying to another machine.",
    )
    sub = p.add_subparsers(dest="data_command", metavar="ACTION", required=True)

    b = sub.add_parser(
        "build",
        help="download and filter the source packages into a folder",
        description="Writes DIR/train/, DIR/val/, DIR/manifest.csv and DIR/{train,val}.flist; "
        "downloaded packages are cached in DIR/.debs and finished packages are skipped on re-runs.",
    )
    b.add_argument("--out", required=True, help="output folder, e.g. data/photos")
    b.add_argument("--only", default=None, metavar="PKG[,PKG]", help="build only these source packages")
    b.add_argument("--min-side", type=int, default=256, help="smallest short side kept, px (default: 256)")
    b.add_argument("--compact", action="store_true",
                   help="also write the compact copy (short side 512, JPEG q90) to --compact-out")
    b.add_argument("--compact-out", default=None, help="folder of the compact copy (default: <out>512)")
    b.add_argument("--short-side", type=int, default=512, help="short side of the compact copy (default: 512)")
    b.add_argument("--texture-short-side", type=int, default=256,
                   help="short side of the textures in the compact copy; 0: as --short-side (default: 256)")
    b.add_argument("--no-progress", action="store_true", help="hide the progress bars")
    b.set_defaults(func=run)

    c = sub.add_parser(
        "compact",
        help="copy a built set with a smaller short side as JPEG",
        description="Re-encode every image of a built set as JPEG with its short side at most "
        "--short-side px (never upscaled); keeps the layout and writes a manifest.",
    )
    c.add_argument("--src", required=True, help="folder written by `deepfill data build`")
    c.add_argument("--out", required=True, help="folder of the compact copy")
    c.add_argument("--short-side", type=int, default=512, help="short side in px (default: 512)")
    c.add_argument("--texture-short-side", type=int, default=256,
                   help="short side of the textures; 0: as --short-side (default: 256)")
    c.add_argument("--quality", type=int, default=90, help="JPEG quality (default: 90)")
    c.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    c.set_defaults(func=run)


def _megabytes(n: int) -> str:
    return f"{n / 1e6:.1f} MB"


def _summary(root: Path, rows: list[dict[str, str]]) -> str:
    from deepfill.databuild import folder_size

    lines = []
    for split, kind in (("train", "photo"), ("train", "texture"), ("val", "photo")):
        n = sum(1 for r in rows if r["split"] == split and r["kind"] == kind)
        folder = root / split / f"{kind}s"
        size = folder_size(folder) if folder.is_dir() else 0
        lines.append(f"  {split:5s} {kind + 's':8s} {n:5d} images  {_megabytes(size):>10s}")
    lines.append(f"  total          {len(rows):5d} images  {_megabytes(folder_size(root)):>10s}  ({root})")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    from deepfill.databuild import FilterConfig, PackageDownloadError, build_dataset, compact_dataset

    start = time.perf_counter()
    if args.data_command == "compact":
        rows = compact_dataset(args.src, args.out, args.short_side, args.quality,
                               texture_short_side=args.texture_short_side or None, progress=not args.no_progress)
        print(f"compact copy written in {time.perf_counter() - start:.1f} s:")
        print(_summary(Path(args.out), rows))
        return 0

    only = [p.strip() for p in args.only.split(",") if p.strip()] if args.only else None
    try:
        report = build_dataset(
            args.out, packages=only, filters=FilterConfig(min_side=args.min_side), progress=not args.no_progress
        )
    except PackageDownloadError as exc:
        if exc.report is not None:
            print(_summary(Path(args.out), exc.report.rows))
        raise
    built = ", ".join(report.built) or "none"
    print(f"photo set built in {time.perf_counter() - start:.1f} s (packages built now: {built}; "
          f"already present: {len(report.skipped)}):")
    print(_summary(Path(args.out), report.rows))
    if args.compact:
        out = Path(args.compact_out) if args.compact_out else Path(f"{str(args.out).rstrip('/')}512")
        t = time.perf_counter()
        rows = compact_dataset(args.out, out, args.short_side, texture_short_side=args.texture_short_side or None,
                               progress=not args.no_progress)
        print(f"compact copy written in {time.perf_counter() - t:.1f} s:")
        print(_summary(out, rows))
    return 0
