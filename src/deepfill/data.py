"""Training data: random rescale-crop-flip samples and a fixed validation set.

Images come out as float32 tensors [3, H, W] in [0, 1] (STYLE.md: only ``processing.py``
maps to [-1, 1]). Every random choice of ``InpaintDataset`` is drawn from a generator seeded
with (seed, epoch, index), so a sample depends on nothing else: not on worker count, order
or earlier samples. Masks come from ``deepfill.masks``; image lists from ``deepfill.datasets``
(``list_images`` is importable from here too).
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from PIL import Image, ImageOps

from deepfill.config import IMAGE_FORMATS
from deepfill.datasets import list_images
from deepfill.errors import InputError
from deepfill.masks import MaskSampler

logger = logging.getLogger(__name__)

_READ_ERRORS = (OSError, ValueError, SyntaxError, Image.DecompressionBombError)


@dataclasses.dataclass(frozen=True)
class DataConfig:
    """How training samples are cut from the photos.

    The short side is rescaled to a length drawn uniformly from
    [rescale[0] * crop_size, rescale[1] * crop_size], capped at the image's own short side
    (no upsampling beyond need) and never below ``crop_size`` (small images are upscaled);
    then a random ``crop_size`` square is cut and flipped left-right with p = 0.5.
    """

    crop_size: int = 256
    rescale: tuple[float, float] = (1.0, 4.0)
    flip: bool = True
    seed: int = 0

    def __post_init__(self) -> None:
        if self.crop_size < 1:
            raise ValueError(f"crop_size must be positive, got {self.crop_size}")
        lo, hi = self.rescale
        if not 0 < lo <= hi:
            raise ValueError(f"rescale must be (low, high) with 0 < low <= high, got {self.rescale}")
        object.__setattr__(self, "rescale", (float(lo), float(hi)))


def _oriented_size(im: Image.Image) -> tuple[int, int]:
    """(width, height) after the EXIF orientation is applied, read from the header only."""
    w, h = im.size
    try:
        orientation = im.getexif().get(0x0112, 1)
    except Exception:  # a broken EXIF block must not lose the image
        orientation = 1
    return (h, w) if orientation in (5, 6, 7, 8) else (w, h)


def random_crop(
    path: str | Path,
    rng: np.random.Generator,
    crop_size: int,
    rescale: tuple[float, float] = (1.0, 4.0),
    flip: bool = True,
) -> np.ndarray:
    """One random rescaled crop of an image file: uint8 array (crop_size, crop_size, 3).

    See ``DataConfig`` for the distribution. JPEGs are decoded at a reduced scale when the
    target is much smaller (``Image.draft``) and only the crop window is resampled.
    Raises Pillow's error when the file is unreadable.
    """
    with Image.open(path, formats=IMAGE_FORMATS) as im:
        w, h = _oriented_size(im)
        short = min(w, h)
        high = max(crop_size, min(short, rescale[1] * crop_size))
        low = max(crop_size, min(high, rescale[0] * crop_size))
        target_short = float(rng.uniform(low, high)) if high > low else float(low)
        scale = target_short / short
        tw, th = max(crop_size, round(w * scale)), max(crop_size, round(h * scale))
        x0 = int(rng.integers(0, tw - crop_size + 1))
        y0 = int(rng.integers(0, th - crop_size + 1))
        do_flip = flip and bool(rng.random() < 0.5)
        im.draft("RGB", (tw, th) if im.size == (w, h) else (th, tw))  # draft sees raw orientation
        im = ImageOps.exif_transpose(im).convert("RGB")
    sx, sy = im.width / tw, im.height / th  # source pixels per target pixel
    box = (x0 * sx, y0 * sy, (x0 + crop_size) * sx, (y0 + crop_size) * sy)
    im = im.resize((crop_size, crop_size), Image.Resampling.BICUBIC, box=box, reducing_gap=3.0)
    if do_flip:
        im = im.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    return np.asarray(im, dtype=np.uint8)


def to_tensor(image: np.ndarray) -> torch.Tensor:
    """uint8 (H, W, 3) -> float32 tensor [3, H, W] in [0, 1]."""
    return torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1))).float().div_(255.0)


class InpaintDataset(torch.utils.data.Dataset):
    """Random ``crop_size`` crops of photos as float32 [3, H, W] in [0, 1].

    ``InpaintDataset(source, config)`` or with field overrides, e.g.
    ``InpaintDataset(files, crop_size=128, seed=3)``. Item ``index`` in epoch ``e`` is drawn
    with ``np.random.default_rng([seed, 0, e, index])``; call ``set_epoch`` before each epoch's
    DataLoader iterator is created. ``sample(position)`` serves step-based loops. An
    unreadable file is logged once and replaced by another image from the same generator.
    """

    def __init__(self, source: str | Path | Sequence[str | Path], config: DataConfig | None = None, **overrides):
        if isinstance(source, (str, Path)):
            self.files = list_images(source)
        else:
            self.files = [Path(p) for p in source]
            if not self.files:
                raise InputError("InpaintDataset needs at least one image")
        self.config = dataclasses.replace(config or DataConfig(), **overrides)
        self.epoch = 0
        self._bad: set[int] = set()
        self._order: tuple[int, np.ndarray] | None = None

    def __len__(self) -> int:
        return len(self.files)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __getitem__(self, index: int) -> torch.Tensor:
        if not 0 <= index < len(self.files):
            raise IndexError(f"index {index} out of range for {len(self.files)} images")
        return self.load(index, self.epoch)

    def sample(self, position: int) -> torch.Tensor:
        """The sample at a global stream position: epoch ``position // N`` visits all N images
        in an order shuffled by (seed, epoch); a pure function of (seed, position)."""
        epoch, offset = divmod(int(position), len(self.files))
        if self._order is None or self._order[0] != epoch:
            perm = np.random.default_rng([self.config.seed, 1, epoch]).permutation(len(self.files))
            self._order = (epoch, perm)
        return self.load(int(self._order[1][offset]), epoch)

    def load(self, index: int, epoch: int) -> torch.Tensor:
        """Image ``index`` as cut in ``epoch`` (falls back to another image if unreadable)."""
        cfg = self.config
        rng = np.random.default_rng([cfg.seed, 0, epoch, index])
        current = index
        for _ in range(min(len(self.files), 100) + 1):
            if current not in self._bad:
                try:
                    crop = random_crop(self.files[current], rng, cfg.crop_size, cfg.rescale, cfg.flip)
                    return to_tensor(crop)
                except _READ_ERRORS as exc:
                    self._bad.add(current)
                    logger.warning("skipping unreadable image %s: %s", self.files[current], exc)
            if len(self._bad) >= len(self.files):
                break
            current = int(rng.integers(len(self.files)))
        raise InputError(f"no readable image found (from index {index}; {len(self._bad)} unreadable files)")


def center_crop(path: str | Path, size: int) -> np.ndarray:
    """Short side resized to ``size``, centre ``size``x``size`` crop: uint8 (size, size, 3)."""
    with Image.open(path, formats=IMAGE_FORMATS) as im:
        im.draft("RGB", (size, size))
        im = ImageOps.exif_transpose(im).convert("RGB")
    scale = size / min(im.size)
    w, h = max(size, round(im.width * scale)), max(size, round(im.height * scale))
    left, top = (w - size) // 2, (h - size) // 2
    sx, sy = im.width / w, im.height / h
    box = (left * sx, top * sy, (left + size) * sx, (top + size) * sy)
    return np.asarray(im.resize((size, size), Image.Resampling.BICUBIC, box=box, reducing_gap=3.0), dtype=np.uint8)


class ValidationSet:
    """A fixed list of validation images with fixed masks, as two tensors.

    ``images``: [N, 3, S, S] in [0, 1] (centre crops); ``masks``: [N, 1, S, S] with 1 = hole,
    mask i being ``sampler.sample(seed=seed + i)``. Unreadable files are skipped (logged).
    """

    def __init__(
        self,
        source: str | Path | Sequence[str | Path],
        crop_size: int = 256,
        limit: int | None = None,
        sampler: MaskSampler | None = None,
        seed: int = 0,
    ):
        files = list_images(source) if isinstance(source, (str, Path)) else [Path(p) for p in source]
        if limit is not None:
            files = files[:limit]
        sampler = sampler or MaskSampler(height=crop_size, width=crop_size)
        if (sampler.height, sampler.width) != (crop_size, crop_size):
            raise ValueError(f"mask sampler size {sampler.height}x{sampler.width} != crop size {crop_size}")
        images, masks, kept = [], [], []
        for path in files:
            try:
                images.append(center_crop(path, crop_size))
            except _READ_ERRORS as exc:
                logger.warning("skipping unreadable validation image %s: %s", path, exc)
                continue
            mask, _ = sampler.sample(seed=seed + len(kept))
            masks.append(mask)
            kept.append(path)
        if not kept:
            raise InputError(f"no readable validation images in {source}")
        self.files = kept
        self.images = torch.stack([to_tensor(im) for im in images])
        self.masks = torch.from_numpy(np.stack(masks)[:, None].astype(np.float32))

    def __len__(self) -> int:
        return len(self.files)

    def tensors(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(images [N,3,H,W] in [0,1], masks [N,1,H,W] with 1 = hole)."""
        return self.images, self.masks

    def batches(self, batch_size: int):
        """Yield (images, masks) in batches of ``batch_size``, in order."""
        for start in range(0, len(self), batch_size):
            yield self.images[start : start + batch_size], self.masks[start : start + batch_size]
