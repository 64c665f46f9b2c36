"""``deepfill convert-tf``: turn a released DeepFill v1 TensorFlow checkpoint into deepfill weights."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

log = logging.getLogger("deepfill")


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "convert-tf",
        help="convert an official DeepFill v1 TensorFlow checkpoint to .safetensors",
        description=(
            "Read a DeepFill v1 TensorFlow checkpoint (no TensorFlow needed) and write deepfill weights "
            "plus their model card (OUT.json). CHECKPOINT is a prefix such as model_logs/places2/snap-0, "
            "one of its files, or a folder (the latest snap-* is used). The converted model takes RGB "
            "images and uses zero padding, as the TF model did."
        ),
    )
    p.add_argument("checkpoint", type=Path, help="checkpoint prefix, one of its files, or its folder")
    p.add_argument("--output", "-o", type=Path, required=True, help="output weights, ending in .safetensors")
    p.add_argument("--critics", action="store_true",
                   help="also convert the WGAN critics to OUT.critics.safetensors (for fine-tuning)")
    p.add_argument("--dtype", default="float32", choices=["float32", "float16"],
                   help="precision of the saved generator (default: float32)")
    p.add_argument("--no-verify", action="store_true", help="skip the crc32c checks of the tensor data (faster)")
    p.add_argument("--overwrite", action="store_true", help="replace existing output files")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import torch

    from deepfill.weights.convert_tf import convert_checkpoint

    result = convert_checkpoint(
        args.checkpoint,
        args.output,
        critics=args.critics,
        overwrite=args.overwrite,
        dtype=getattr(torch, args.dtype),
        verify_checksums=not args.no_verify,
    )
    log.info("converted %s (cnum %d, %s generator parameters)", result.source, result.cnum, f"{result.parameters:,}")
    log.info("wrote %s and %s", result.weights, result.weights.with_suffix(".json"))
    if result.critics is not None:
        log.info("wrote %s", result.critics)
    if result.skipped:
        log.info("skipped %d training-only or unused variables", len(result.skipped))
    return 0
