"""``deepfill data flist|compact``: file lists and compact copies of photo folders.

The Debian-package photo set of docs/design.md §3 is built by the source checkout's tool,
``python -m tools.photoset build``; ``deepfill data build`` only says so.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from deepfill.errors import InputError

BUILD_MOVED = (
    "`deepfill data build` has moved out of the package: from a source checkout, run "
    "`python -m tools.photoset build --out DIR [--compact]` (after pip install -e '.[photoset]'; "
    "docs/design.md §3)"
)


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "data",
        help="file lists and compact copies of photo folders",
        description="Write the file list of a photo folder (a built set's split, or any folder such as "
        "Places2 or CelebA-HQ, optionally holding out validation images), or a compact copy of it for "
        "carrying to another machine.",
    )
    sub = p.add_subparsers(dest="data_command", metavar="ACTION", required=True)

    f = sub.add_parser(
        "flist",
        help="write the file list of a photo folder",
        description="List the images of a folder (recursive, sorted; a built set's --split from its "
        "manifest.csv) into a text file, paths relative to the file, for --data and --images.",
    )
    f.add_argument("src", help="folder of images, or a built set (it has manifest.csv)")
    f.add_argument("--out", required=True, type=Path, help="file list to write, e.g. DIR/train.flist")
    f.add_argument("--split", choices=["train", "val"], default="train",
                   help="split of a built set to list (default: train)")
    f.add_argument("--kind", choices=["photo", "texture"], help="a built set's images of this kind only")
    f.add_argument("--val-count", type=int, default=0, metavar="N",
                   help="hold out N images drawn at random (by --seed) for validation, e.g. 2000 for CelebA-HQ")
    f.add_argument("--val-out", type=Path, help="file list of the held-out images (default: val.flist beside --out)")
    f.add_argument("--seed", type=int, default=0, help="seed of the held-out draw (default: 0)")
    f.set_defaults(func=run)

    c = sub.add_parser(
        "compact",
        help="copy a photo folder with a smaller short side as JPEG",
        description="Re-encode every image of a folder as JPEG with its short side at most "
        "--short-side px (never upscaled); keeps the layout, and a built set's copy gets its own "
        "manifest and file lists.",
    )
    c.add_argument("--src", required=True, help="folder of images, or a built set (it has manifest.csv)")
    c.add_argument("--out", required=True, help="folder of the compact copy")
    c.add_argument("--short-side", type=int, default=512, help="short side in px (default: 512)")
    c.add_argument("--texture-short-side", type=int, default=256,
                   help="short side of a built set's textures; 0: as --short-side (default: 256)")
    c.add_argument("--quality", type=int, default=90, help="JPEG quality (default: 90)")
    c.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    c.set_defaults(func=run)

    # Whatever follows `build` is taken as it is (no option is parsed), to answer with BUILD_MOVED.
    b = sub.add_parser("build", help="moved: python -m tools.photoset build (source checkout)",
                       prefix_chars="\0", add_help=False)
    b.add_argument("rest", nargs="*", help=argparse.SUPPRESS)
    b.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from deepfill.datasets import compact_dataset, make_flist, summary

    if args.data_command == "build":
        raise InputError(BUILD_MOVED)
    if args.data_command == "flist":
        listed, held_out = make_flist(args.src, args.out, args.split, args.kind, args.val_count, args.val_out,
                                      args.seed)
        print(f"{args.out}: {len(listed)} images")
        if held_out:
            print(f"{args.val_out or args.out.with_name('val.flist')}: {len(held_out)} held-out images")
        return 0
    start = time.perf_counter()
    rows = compact_dataset(args.src, args.out, args.short_side, args.quality,
                           texture_short_side=args.texture_short_side or None, progress=not args.no_progress)
    print(f"compact copy written in {time.perf_counter() - start:.1f} s:")
    print(summary(Path(args.out), rows))
    return 0
