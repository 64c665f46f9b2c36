"""Checkpoints and the training history behind a generator.

``RUN_DIR/checkpoint.pt`` holds everything a resume needs (``Trainer.state_dict``), sealed with
its SHA-256 and written atomically (temporary file, fsync, rename); the one before stays as
``checkpoint.prev.pt``, the fallback when the latest is damaged. Both are read with
``weights_only=True``. The history (one record per stretch of training) goes into the
checkpoint and into the model card of every exported generator.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import logging
import os
import time
from pathlib import Path
from typing import Any

import torch

from deepfill.errors import InputError
from deepfill.training.config import TrainConfig

log = logging.getLogger(__name__)

CHECKPOINT = "checkpoint.pt"
PREVIOUS_CHECKPOINT = "checkpoint.prev.pt"  # the one before: the fallback when the latest is damaged
CHECKPOINT_KEYS = ("generator", "local_critic", "global_critic", "opt_g", "opt_d", "step", "images_seen",
                   "torch_rng", "config")


def _sealed(state: dict[str, Any]) -> dict[str, Any]:
    """The state serialised with its SHA-256, so that flipped bytes are found before resuming."""
    buffer = io.BytesIO()
    torch.save(state, buffer)
    payload = buffer.getvalue()
    return {"payload": torch.frombuffer(bytearray(payload), dtype=torch.uint8),
            "sha256": hashlib.sha256(payload).hexdigest()}


def _unseal(path: Path) -> dict[str, Any]:
    """The state in a checkpoint file; ValueError (with the reason) when it is damaged."""
    try:
        outer = torch.load(path, map_location="cpu", weights_only=True)
        if isinstance(outer, dict) and "sha256" in outer:
            payload = outer["payload"].numpy().tobytes()
            if hashlib.sha256(payload).hexdigest() != outer["sha256"]:
                raise ValueError("its checksum does not match")
            state = torch.load(io.BytesIO(payload), map_location="cpu", weights_only=True)
        else:
            state = outer  # written before checkpoints were sealed
    except ValueError:
        raise
    except Exception as exc:  # torch.load fails in many ways on damaged files
        reason = (str(exc).strip().splitlines() or [""])[0].split(". ")[0][:100]
        raise ValueError(f"unreadable ({type(exc).__name__}: {reason})") from None
    if not isinstance(state, dict):
        raise ValueError("not a training checkpoint")
    missing = [key for key in CHECKPOINT_KEYS if key not in state]
    if missing:
        raise ValueError(f"not a training checkpoint (no {', '.join(missing)})")
    return state


def read_checkpoint(run_dir: str | Path) -> dict[str, Any]:
    """The latest intact checkpoint of a run: ``CHECKPOINT``, else ``PREVIOUS_CHECKPOINT`` with a
    one-line warning; InputError when neither can be used."""
    run_dir = Path(run_dir)
    problems = []
    for name in (CHECKPOINT, PREVIOUS_CHECKPOINT):
        path = run_dir / name
        if not path.is_file():
            problems.append(f"{name}: missing")
            continue
        try:
            state = _unseal(path)
        except ValueError as exc:
            problems.append(f"{name}: {exc}")
            continue
        if name != CHECKPOINT:
            log.warning("warning: %s; resuming from %s (step %d)", problems[0], name, state["step"])
        return state
    raise InputError(f"no usable checkpoint in {run_dir}: " + "; ".join(problems))


def _fsync_directory(path: Path) -> None:
    """Make a rename inside ``path`` durable (a no-op where directories cannot be opened)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_checkpoint(run_dir: Path, state: dict[str, Any]) -> Path:
    """Write ``state`` sealed and atomically as ``run_dir/CHECKPOINT``, keeping the previous one
    as ``PREVIOUS_CHECKPOINT``; returns the path."""
    run_dir.mkdir(parents=True, exist_ok=True)
    path = run_dir / CHECKPOINT
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as fh:
        torch.save(_sealed(state), fh)
        fh.flush()
        os.fsync(fh.fileno())
    if path.exists():
        os.replace(path, run_dir / PREVIOUS_CHECKPOINT)
    os.replace(tmp, path)
    _fsync_directory(run_dir)
    return path


def remove_stale_files(run_dir: Path) -> None:
    """Remove the ``*.tmp`` files a process killed while writing left behind."""
    for stale in run_dir.glob("*.tmp"):
        stale.unlink()


# --- training history ---------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Stretch:
    """The stretch of training in progress: what it runs with (``record``) and where it began."""

    record: dict[str, Any]  # run, started, hardware, image_size, batch_size, adversarial, masks, amp
    step: int
    images_seen: int
    started: float  # time.time()

    def so_far(self, step: int, images_seen: int) -> dict[str, Any]:
        """Its history record at ``step``."""
        return {**self.record, "steps": step - self.step, "images_seen": images_seen - self.images_seen,
                "wall_seconds": round(time.time() - self.started)}


def model_card(history: list[dict[str, Any]], config: TrainConfig) -> dict[str, Any]:
    """The card of a generator exported from training: its steps, images and history."""
    return {
        "name": "deepfill-v1",
        "trained": True,
        "steps": sum(s["steps"] for s in history),
        "images_seen": sum(s["images_seen"] for s in history),
        "training_history": history,
        "train_config": {k: v for k, v in config.to_dict().items() if k != "model"},
    }
