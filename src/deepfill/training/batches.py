"""Batches as a pure function of (seed, step, pass, rank), made in DataLoader workers.

A step reads one batch per critic update, the last shared with the generator. Every sample
position has its image crop (``InpaintDataset``), its mask and local-critic box
(``MaskSampler``) and its spatial-discount weights, so a resumed run sees the data an
uninterrupted one would.
"""

from __future__ import annotations

import signal
from collections.abc import Iterator
from typing import NamedTuple

import torch

from deepfill import losses
from deepfill.data import InpaintDataset
from deepfill.masks import MaskSampler
from deepfill.training.config import TrainConfig
from deepfill.training.distributed import Dist


class Batch(NamedTuple):
    """One batch as the trainer reads it; every field is a pure function of the sample positions."""

    images: torch.Tensor  # [B, 3, S, S] in [0, 1]
    masks: torch.Tensor  # [B, 1, S, S], 1 = hole
    boxes: torch.Tensor  # [B, 4] local-critic windows (masks.Window: top, left, height, width)
    discount: torch.Tensor  # [B, 1, S, S] spatial discount weights of the holes


class StepBatches:
    """Batches as a pure function of (seed, step, pass, rank): images, masks, boxes, discounts.

    A step reads ``passes(step)`` batches (one per critic update, the last shared with the
    generator); sample positions are numbered as if every step read ``max_passes``, so the
    data a step sees never depends on where a run was interrupted. :meth:`sample` is what the
    DataLoader's workers run, so decoding, masks and discounts stay off the training process.
    """

    def __init__(self, dataset: InpaintDataset, config: TrainConfig, info: Dist) -> None:
        self.dataset, self.config, self.info = dataset, config, info
        self.sampler = MaskSampler(config.image_size, config.image_size, config.mask_kind, config.max_rectangles)
        self.max_passes = max(1, config.critic_steps)

    def passes(self, step: int) -> int:
        """One batch per critic update and the generator's; one when the critics idle."""
        cfg = self.config
        if step < cfg.pretrain_coarse_steps or cfg.gan_loss_alpha == 0:
            return 1
        return self.max_passes

    def positions(self, step: int, index: int) -> range:
        b = self.config.batch_size
        start = ((step * self.max_passes + index) * self.info.world + self.info.rank) * b
        return range(start, start + b)

    def sample(self, position: int) -> tuple[torch.Tensor, ...]:
        """The image, mask [1, S, S], box [4] and discount [1, S, S] of one sample position."""
        mask, box = self.sampler.sample([self.config.seed, 1, position])
        mask = torch.from_numpy(mask)[None]
        discount = losses.spatial_discount(mask[None], self.config.gamma)[0]
        return self.dataset.sample(position), mask, torch.tensor(box), discount

    def batch(self, step: int, index: int) -> Batch:
        """Pass ``index`` of ``step``, read in this process (the loop reads it through a DataLoader)."""
        return collate([self.sample(p) for p in self.positions(step, index)])


def collate(samples: list[tuple[torch.Tensor, ...]]) -> Batch:
    return Batch(*(torch.stack(field) for field in zip(*samples)))


class _StepDataset(torch.utils.data.Dataset):
    """Maps a global sample position to its sample; used through a DataLoader for parallel work."""

    def __init__(self, batches: StepBatches) -> None:
        self.batches = batches

    def __len__(self) -> int:
        return 1 << 62

    def __getitem__(self, position: int) -> tuple[torch.Tensor, ...]:
        return self.batches.sample(position)


class _PositionSampler(torch.utils.data.Sampler):
    """The sample positions of every step from ``start_step`` on, pass after pass."""

    def __init__(self, batches: StepBatches, start_step: int) -> None:
        self.batches, self.start_step = batches, start_step

    def __iter__(self) -> Iterator[int]:
        step = self.start_step
        while True:
            for index in range(self.batches.passes(step)):
                yield from self.batches.positions(step, index)
            step += 1


def _ignore_stop_signals(_worker_id: int) -> None:
    """DataLoader workers leave SIGINT/SIGTERM to the main process, which checkpoints and stops
    them; otherwise Ctrl-C (sent to the whole process group) would kill them mid-batch."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)


def batch_loader(batches: StepBatches, start_step: int, num_workers: int,
                 pin_memory: bool = False) -> torch.utils.data.DataLoader:
    """An endless DataLoader of the batches of every pass of every step from ``start_step`` on.

    Its workers ignore SIGTERM: drop the iterator (``del``) when the loop ends, even on an
    error, so that they are shut down rather than waited for at the interpreter's exit.
    """
    return torch.utils.data.DataLoader(
        _StepDataset(batches), batch_size=batches.config.batch_size, collate_fn=collate,
        sampler=_PositionSampler(batches, start_step), num_workers=num_workers,
        pin_memory=pin_memory, worker_init_fn=_ignore_stop_signals,
    )
