"""Training throughput (images/s) of full steps, fp32 against mixed precision, side by side.

One step = the generator update plus one critic update per batch (critic_steps batches).
Data loading is excluded: the batches are made in memory from one photo folder sample. The
process is tuned as the ``deepfill`` command tunes it (``deepfill.runtime.tune_process``).

    python benchmarks/train_throughput.py --data data/photos512/train --size 256 --batch 16
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import tempfile
import time

import torch

from deepfill.runtime import tune_process
from deepfill.training import Trainer, TrainConfig, setup_distributed

tune_process()  # as the `deepfill` command does before training


def measure(data: str, size: int, batch: int, amp: str, steps: int, critic_steps: int, gan: bool,
            channels_last: bool = False) -> dict:
    config = TrainConfig(image_size=size, batch_size=batch, amp=amp, critic_steps=critic_steps, num_workers=0,
                         gan_loss_alpha=0.001 if gan else 0.0, channels_last=channels_last)
    with tempfile.TemporaryDirectory() as run_dir:
        _, device = setup_distributed()
        trainer = Trainer(config, data, run_dir, device=device)
        passes = trainer.batches.passes(1)
        batches = [trainer.batches.batch(0, i) for i in range(passes)]
        trainer.train_step(0, batches)  # warm-up
        times = []
        for step in range(1, steps + 1):
            start = time.perf_counter()
            trainer.train_step(step, batches)
            if device.type == "cuda":
                torch.cuda.synchronize()
            times.append(time.perf_counter() - start)
    seconds = statistics.median(times)
    return {"size": size, "batch": batch, "amp": amp, "channels_last": channels_last, "gan": gan,
            "critic_steps": critic_steps if gan else 0,
            "median_step_s": round(seconds, 3), "images_per_s": round(batch * passes / seconds, 2),
            "device": str(trainer.device), "amp_dtype": str(trainer.amp)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--critic-steps", type=int, default=1)
    parser.add_argument("--amp", default="none,bf16", help="comma-separated; a '+cl' suffix (none+cl) adds channels-last")
    parser.add_argument("--no-gan", action="store_true", help="reconstruction losses only (critics idle)")
    parser.add_argument("--json")
    args = parser.parse_args()
    rows = [measure(args.data, args.size, args.batch, amp.removesuffix("+cl"), args.steps, args.critic_steps,
                    not args.no_gan, amp.endswith("+cl"))
            for amp in args.amp.split(",")]
    for row in rows:
        print(json.dumps(row))
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"machine": platform.processor() or platform.machine(), "threads": torch.get_num_threads(),
                       "results": rows}, fh, indent=2)


if __name__ == "__main__":
    main()
