"""The ``deepfill`` command. Each subcommand lives in its own module of this package.

A subcommand module defines ``register(subparsers)`` which adds its parser and sets
``func=run``; ``run(args) -> int`` does the work. Modules import heavy dependencies inside
``run`` so that ``deepfill --help`` stays fast. This package is the only place that prints
for the user or chooses an exit code.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from deepfill.errors import DeepfillError

SUBCOMMANDS = ("inpaint", "benchmark", "train", "evaluate", "serve", "data", "convert_tf")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="deepfill",
        description="Fill holes in photos with DeepFill v1 (generative inpainting with contextual attention).",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="show debug logging")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in SUBCOMMANDS:
        try:
            module = importlib.import_module(f"deepfill.cli.{name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"deepfill.cli.{name}":
                continue  # subcommand not part of this build
            raise
        module.register(subparsers)
    return parser


def fail(message: str, code: int = 2) -> int:
    print(f"deepfill: error: {message}", file=sys.stderr)
    return code


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(levelname)s: %(message)s" if args.verbose else "%(message)s",
    )
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    from deepfill.runtime import tune_process

    tune_process()  # imports torch: after the parser, so `deepfill --help` stays fast
    try:
        return int(args.func(args) or 0)
    except DeepfillError as exc:
        return fail(str(exc))
    except OSError as exc:  # a full disk, a read-only folder, a format that cannot hold the image
        return fail(str(exc) if not exc.filename else f"{exc.strerror or exc}: {exc.filename}")
    except KeyboardInterrupt:
        return fail("interrupted", 130)


def warn_if_untrained(inpainter) -> None:
    """Say plainly when the weights in use are the untrained placeholder."""
    if not inpainter.is_trained:
        logging.getLogger("deepfill").warning(
            "warning: the model in use is an UNTRAINED placeholder; its fills are not meaningful "
            "(pass --weights with trained weights)")


if __name__ == "__main__":
    sys.exit(main())
