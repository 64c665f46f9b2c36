"""``deepfill train``: train (or resume) a model on a folder or file list of photos."""

from __future__ import annotations

import argparse
from pathlib import Path

from deepfill.errors import InputError


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "train",
        help="train DeepFill v1 on a folder of photos (DDP: torchrun ... -m deepfill train ...)",
        description=(
            "Train the generator and both WGAN-GP critics. Checkpoints (everything needed to resume) go to "
            "RUN_DIR/checkpoint.pt every --checkpoint-every steps and on Ctrl-C/SIGTERM, together with "
            "RUN_DIR/generator.safetensors. Multi-GPU or multi-node: launch with torchrun."
        ),
    )
    p.add_argument("--data", required=True, help="folder of training images (recursive) or a text file list")
    p.add_argument("--out", required=True, type=Path, help="run folder for checkpoints and logs")
    p.add_argument("--config", type=Path, help="TOML or JSON file overriding TrainConfig fields")
    p.add_argument("--steps", type=int, help="total generator steps to train to")
    p.add_argument("--resume", action="store_true", help="continue from RUN_DIR/checkpoint.pt")
    p.add_argument("--val-data", help="folder of validation images (never trained on)")
    p.add_argument("--batch-size", type=int)
    p.add_argument("--image-size", type=int)
    p.add_argument("--amp", choices=["auto", "none", "bf16", "fp16"])
    p.add_argument("--channels-last", action="store_true", default=None,
                   help="channels-last layout (faster on some CPUs: measure with benchmarks/train_throughput.py)")
    p.add_argument("--init", type=Path, help="start the generator from these .safetensors weights (fresh critics)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import torch

    from deepfill.train import CHECKPOINT, Trainer, TrainConfig, read_checkpoint, setup_distributed

    overrides = {k: v for k, v in (("batch_size", args.batch_size), ("image_size", args.image_size),
                                   ("amp", args.amp), ("val_data", args.val_data),
                                   ("channels_last", args.channels_last)) if v is not None}
    checkpoint = args.out / CHECKPOINT
    state = None
    if args.resume:
        state = read_checkpoint(args.out)
        try:
            config = TrainConfig.from_dict({**state["config"], **overrides})
        except (TypeError, ValueError) as exc:
            raise InputError(f"--resume: {exc}") from None
    else:
        if checkpoint.exists():
            raise InputError(f"{checkpoint} exists: pass --resume to continue it, or choose another --out")
        try:
            config = TrainConfig.from_file(args.config, **overrides) if args.config else TrainConfig.from_dict(overrides)
        except (OSError, ValueError) as exc:
            raise InputError(f"bad training config: {exc}") from exc
    info, device = setup_distributed()
    if args.init and args.resume:
        raise InputError("--init starts a new run; it cannot be combined with --resume")
    try:
        trainer = Trainer(config, args.data, args.out, resume=args.resume, info=info, device=device, init=args.init,
                          checkpoint=state)
    except ValueError as exc:
        raise InputError(str(exc)) from exc
    step = trainer.fit(args.steps)
    if info.is_main:
        print(f"stopped at step {step}; checkpoint {checkpoint}, generator {args.out / 'generator.safetensors'}")
    if info.world > 1:
        torch.distributed.destroy_process_group()
    return 0
