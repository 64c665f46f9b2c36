"""``python -m tools.photoset build --out DIR [--compact]``, from the root of a source checkout."""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

from deepfill.errors import DeepfillError
from tools.photoset import PackageDownloadError, PhotosetError

NEEDS = "the photo-set tool needs the packages lz4 and python-debian: pip install -e '.[photoset]'"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m tools.photoset",
        description="The training/validation photo set of docs/design.md §3, from Debian packages "
        "(apt-get download + dpkg-deb -x, no root).",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="show debug logging")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    b = sub.add_parser(
        "build",
        help="download and filter the source packages into a folder",
        description="Writes DIR/train/, DIR/val/, DIR/manifest.csv and DIR/{train,val}.flist; "
        "downloaded packages are cached in DIR/.debs and finished packages are skipped on re-runs. "
        "The packages and what is taken from each: tools/photoset/packages.toml.",
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
    return parser


def build(args: argparse.Namespace) -> int:
    from deepfill.datasets import compact_dataset, summary
    from tools.photoset.build import build_photoset
    from tools.photoset.filters import FilterConfig

    start = time.perf_counter()
    only = [p.strip() for p in args.only.split(",") if p.strip()] if args.only else None
    try:
        report = build_photoset(args.out, packages=only, filters=FilterConfig(min_side=args.min_side),
                                progress=not args.no_progress)
    except PackageDownloadError as exc:
        if exc.report is not None:
            print(summary(Path(args.out), exc.report.rows))
        raise
    built = ", ".join(report.built) or "none"
    print(f"photo set built in {time.perf_counter() - start:.1f} s (packages built now: {built}; "
          f"already present: {len(report.skipped)}):")
    print(summary(Path(args.out), report.rows))
    if args.compact:
        out = Path(args.compact_out) if args.compact_out else Path(f"{str(args.out).rstrip('/')}512")
        start = time.perf_counter()
        rows = compact_dataset(args.out, out, args.short_side, texture_short_side=args.texture_short_side or None,
                               progress=not args.no_progress)
        print(f"compact copy written in {time.perf_counter() - start:.1f} s:")
        print(summary(out, rows))
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(levelname)s: %(message)s" if args.verbose else "%(message)s")
    logging.getLogger("debian").setLevel(logging.ERROR)  # python-debian's notes on copyright formats
    try:
        return build(args)
    except ModuleNotFoundError as exc:
        if exc.name and exc.name.split(".")[0] in ("lz4", "debian"):
            print(f"photoset: error: {NEEDS}", file=sys.stderr)
            return 2
        raise
    except (PhotosetError, DeepfillError) as exc:
        print(f"photoset: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"photoset: error: {exc.strerror or exc}: {exc.filename}" if exc.filename else f"photoset: error: {exc}",
              file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("photoset: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
