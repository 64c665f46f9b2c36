"""``deepfill train``: train (or resume) a model on a folder or file list of photos."""

from __future__ import annotations

import argparse
import dataclasses
import logging
import sys
from pathlib import Path

from deepfill.errors import InputError

log = logging.getLogger("deepfill")

# What a CPU trains with when no --config says otherwise (the paper's settings are for GPUs).
CPU_BATCH_SIZE = 4
CPU_CRITIC_STEPS = 1


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "train",
        help="train DeepFill v1 on a folder of photos (DDP: torchrun ... -m deepfill train ...)",
        description=(
            "Train the generator and both WGAN-GP critics. Checkpoints (everything needed to resume) go to "
            "RUN_DIR/checkpoint.pt every --checkpoint-every steps and when stopped, together with "
            "RUN_DIR/generator.safetensors. Ctrl-C (or SIGTERM) ends after the running step and saves it; "
            "a second Ctrl-C stops at once, keeping the last checkpoint. Without --config, a CPU trains with "
            f"batches of {CPU_BATCH_SIZE} and {CPU_CRITIC_STEPS} critic step (the paper's 16 and 5 take minutes "
            "a step there). Multi-GPU or multi-node: launch with torchrun."
        ),
    )
    p.add_argument("--data", required=True, help="folder of training images (recursive) or a text file list")
    p.add_argument("--out", required=True, type=Path, help="run folder for checkpoints and logs")
    p.add_argument("--config", type=Path, help="TOML or JSON file overriding TrainConfig fields")
    p.add_argument("--steps", type=int, help="total generator steps to train to")
    p.add_argument("--resume", action="store_true", help="continue from RUN_DIR/checkpoint.pt")
    p.add_argument("--val-data", help="folder of validation images (never trained on)")
    p.add_argument("--batch-size", type=int, help="images per batch (default: 16, the paper's; 4 on a CPU)")
    p.add_argument("--critic-steps", type=int,
                   help="critic updates per generator step, each on its own batch (default: 5; 1 on a CPU)")
    p.add_argument("--image-size", type=int, help="training crop side (default: 256)")
    p.add_argument("--checkpoint-every", type=int, help="steps between checkpoints (default: 500)")
    p.add_argument("--amp", choices=["auto", "none", "bf16", "fp16"],
                   help="mixed precision (default: auto, bf16 where the device runs it fast)")
    p.add_argument("--channels-last", action="store_true", default=None,
                   help="channels-last layout (faster on some CPUs: measure with benchmarks/train_throughput.py)")
    p.add_argument("--init", type=Path, help="start the generator from these .safetensors weights (fresh critics)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import torch

    from deepfill.training import CHECKPOINT, Trainer, TrainConfig, read_checkpoint, setup_distributed

    overrides = {k: v for k, v in (("batch_size", args.batch_size), ("critic_steps", args.critic_steps),
                                   ("image_size", args.image_size), ("checkpoint_every", args.checkpoint_every),
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
    if device.type == "cpu" and not args.resume and not args.config:
        cpu = {"batch_size": CPU_BATCH_SIZE, "critic_steps": CPU_CRITIC_STEPS}
        config = dataclasses.replace(config, **{k: v for k, v in cpu.items() if k not in overrides})
        if info.is_main:
            log.info("on a CPU: batches of %d, %d critic step(s) a generator step (--batch-size, --critic-steps "
                     "or a --config to change)", config.batch_size, config.critic_steps)
    try:
        trainer = Trainer(config, args.data, args.out, resume=args.resume, info=info, device=device, init=args.init,
                          checkpoint=state)
    except ValueError as exc:
        raise InputError(str(exc)) from exc
    try:
        step = trainer.fit(args.steps)
    except KeyboardInterrupt:
        kept = f"its checkpoint at step {read_checkpoint(args.out)['step']}" if checkpoint.exists() else "no checkpoint"
        print(f"stopped at once; {args.out} keeps {kept}", file=sys.stderr)
        return 130
    if info.is_main:
        print(f"stopped at step {step}; checkpoint {checkpoint}, generator {args.out / 'generator.safetensors'}")
    if info.world > 1:
        # Leave together: a rank that tears its process group down while another is still
        # saving the checkpoint can abort inside gloo ("terminate called without an active exception").
        torch.distributed.barrier()
        torch.distributed.destroy_process_group()
    return 0
