"""Reading, converting and writing images and masks: the only place that converts ranges.

Files and the user see uint8/uint16 pixels with white (> 127) = hole masks; the network sees
[-1, 1] images and {0, 1} masks with 1 = hole. Known pixels are always copied back from the
original array so they come back bit-identical.
"""

from __future__ import annotations

import dataclasses
import logging
import warnings
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageOps, UnidentifiedImageError

from deepfill.errors import InputError

log = logging.getLogger(__name__)

DEFAULT_MAX_PIXELS = 100_000_000  # decompression-bomb guard; 100 MP covers real cameras


@dataclasses.dataclass
class Picture:
    """An image split into what the network fills and what must survive untouched.

    ``pixels`` is [H, W, C] (C = 1 or 3) in the file's own integer type; ``alpha`` is [H, W] or
    None; ``peak`` is the value of full intensity (255, 65535). ``mode`` is the Pillow mode to
    write back.
    """

    pixels: np.ndarray
    alpha: np.ndarray | None
    peak: float
    mode: str

    @property
    def size(self) -> tuple[int, int]:
        """(width, height), as Pillow reports sizes."""
        return self.pixels.shape[1], self.pixels.shape[0]

    def rgb(self) -> np.ndarray:
        """float32 [H, W, 3] in [0, 1]."""
        rgb = self.pixels.astype(np.float32) / self.peak
        if rgb.shape[2] == 1:
            rgb = np.repeat(rgb, 3, axis=2)
        return np.clip(rgb, 0.0, 1.0)

    def with_fill(self, filled_rgb: np.ndarray, hole: np.ndarray) -> "Picture":
        """A copy whose hole pixels come from ``filled_rgb`` ([H, W, 3] in [0, 1]); the rest is untouched."""
        values = filled_rgb if self.pixels.shape[2] == 3 else filled_rgb.mean(axis=2, keepdims=True)
        quantized = np.clip(np.rint(values * self.peak), 0, self.peak).astype(self.pixels.dtype)
        pixels = self.pixels.copy()
        pixels[hole] = quantized[hole]
        return dataclasses.replace(self, pixels=pixels)

    def to_image(self) -> Image.Image:
        if self.mode == "I;16":
            image = Image.fromarray(self.pixels[:, :, 0].astype(np.uint16))
            return image if image.mode == "I;16" else image.convert("I;16")
        if self.mode == "I":
            return Image.fromarray(self.pixels[:, :, 0].astype(np.int32), "I")
        channels = self.pixels if self.pixels.shape[2] == 3 else self.pixels[:, :, 0]
        if self.alpha is not None:
            stacked = np.dstack([channels, self.alpha])
            return Image.fromarray(stacked, "RGBA" if channels.ndim == 3 else "LA")
        return Image.fromarray(channels, "RGB" if channels.ndim == 3 else "L")


def picture_from_image(image: Image.Image) -> Picture:
    """Split a Pillow image (any mode) into a :class:`Picture`. EXIF orientation is applied."""
    image = ImageOps.exif_transpose(image)
    mode = image.mode
    if mode in ("I;16", "I;16L", "I;16B", "I;16N"):
        return Picture(np.asarray(image).astype(np.uint16)[:, :, None], None, 65535.0, "I;16")
    if mode == "I":
        array = np.asarray(image)
        peak = 65535.0 if array.max(initial=0) > 255 else 255.0
        return Picture(np.clip(array, 0, 65535).astype(np.int32)[:, :, None], None, peak, "I")
    if mode == "F":
        array = np.clip(np.asarray(image), 0, 255).astype(np.uint8)
        return Picture(array[:, :, None], None, 255.0, "L")
    if mode in ("1", "L"):
        return Picture(np.asarray(image.convert("L"))[:, :, None], None, 255.0, "L")
    if mode in ("LA", "La", "PA") or (mode == "P" and "transparency" in image.info):
        if mode == "LA":
            array = np.asarray(image)
            return Picture(array[:, :, :1].copy(), array[:, :, 1].copy(), 255.0, "LA")
        array = np.asarray(image.convert("RGBA"))
        return Picture(array[:, :, :3].copy(), array[:, :, 3].copy(), 255.0, "RGBA")
    if mode in ("RGBA", "RGBa"):
        array = np.asarray(image.convert("RGBA"))
        return Picture(array[:, :, :3].copy(), array[:, :, 3].copy(), 255.0, "RGBA")
    return Picture(np.asarray(image.convert("RGB")).copy(), None, 255.0, "RGB")


def open_image(path: str | Path, max_pixels: int = DEFAULT_MAX_PIXELS, what: str = "image") -> Image.Image:
    """Open and fully decode an image file, with a one-line error for every way it can fail."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"{what} not found: {path}")
    if not path.is_file():
        raise InputError(f"{what} is not a file: {path}")
    previous = Image.MAX_IMAGE_PIXELS
    try:
        Image.MAX_IMAGE_PIXELS = None  # our own limit below, with our own message
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(path)
            width, height = image.size
            if width * height > max_pixels:
                raise InputError(
                    f"{what} {path} has {width}x{height} = {width * height:,} pixels, above the limit of "
                    f"{max_pixels:,} (raise it with --max-pixels)"
                )
            image.load()
    except UnidentifiedImageError as exc:
        raise InputError(f"{what} {path} is not an image Pillow can read") from exc
    except (OSError, SyntaxError, ValueError) as exc:
        raise InputError(f"{what} {path} is corrupt or truncated: {exc}") from exc
    finally:
        Image.MAX_IMAGE_PIXELS = previous
    return image


def load_picture(path: str | Path, max_pixels: int = DEFAULT_MAX_PIXELS) -> Picture:
    return picture_from_image(open_image(path, max_pixels, "image"))


def mask_from_image(
    mask: Image.Image,
    size: tuple[int, int],
    resize: bool = False,
    from_alpha: bool = False,
) -> np.ndarray:
    """Binarize a user mask (white > 127 = hole, or transparent = hole) to bool [H, W].

    ``size`` is the image's (width, height). A mismatched size is an error unless ``resize``.
    """
    mask = ImageOps.exif_transpose(mask)
    if from_alpha:
        if "A" not in mask.getbands() and "transparency" not in mask.info:
            raise InputError("--mask-from-alpha needs a mask with an alpha channel")
        hole = np.asarray(mask.convert("RGBA"))[:, :, 3] < 128
    elif mask.mode.startswith("I") or mask.mode == "F":
        values = np.asarray(mask, dtype=np.float64)
        hole = values > (127 if values.max(initial=0) <= 255 else 32767)
    else:
        hole = np.asarray(mask.convert("L")) > 127
    if (hole.shape[1], hole.shape[0]) != tuple(size):
        if not resize:
            raise InputError(
                f"mask size {hole.shape[1]}x{hole.shape[0]} differs from image size {size[0]}x{size[1]} "
                "(pass --resize-mask to resize it)"
            )
        resized = Image.fromarray(hole.astype(np.uint8) * 255, "L").resize(tuple(size), Image.NEAREST)
        hole = np.asarray(resized) > 127
    return hole


def load_mask(
    path: str | Path,
    size: tuple[int, int],
    resize: bool = False,
    from_alpha: bool = False,
    max_pixels: int = DEFAULT_MAX_PIXELS,
) -> np.ndarray:
    return mask_from_image(open_image(path, max_pixels, "mask"), size, resize, from_alpha)


def save_image(image: Image.Image, path: str | Path) -> None:
    """Write ``image`` in the format of ``path``'s extension, adapting modes the format lacks."""
    path = Path(path)
    ext = path.suffix.lower()
    try:
        Image.registered_extensions()[ext]
    except KeyError:
        raise InputError(f"cannot write {path}: unknown image extension {ext or '(none)'}") from None
    if ext in (".jpg", ".jpeg"):
        if image.mode in ("RGBA", "LA"):
            log.warning("%s: JPEG has no alpha channel; the alpha is dropped", path)
        if image.mode in ("I", "I;16"):
            image = Image.fromarray((np.asarray(image, dtype=np.float64) / 257).round().astype(np.uint8))
        image = image.convert("RGB" if image.mode in ("RGBA", "RGB", "P") else "L")
        image.save(path, quality=95)
        return
    image.save(path)


# --- tensors -------------------------------------------------------------------------------

def to_model_range(x01: torch.Tensor) -> torch.Tensor:
    return x01 * 2.0 - 1.0


def from_model_range(x: torch.Tensor) -> torch.Tensor:
    return (x + 1.0) / 2.0


def pad_to_multiple(
    images: torch.Tensor, masks: torch.Tensor, multiple: int, min_size: int = 0
) -> tuple[torch.Tensor, torch.Tensor, tuple[int, int]]:
    """Pad at the bottom and right to a multiple of ``multiple`` (and at least ``min_size``).

    Images are edge-replicated, masks padded with 0 (known). Returns the padded pair and the
    original (height, width) for :func:`crop_back`.
    """
    height, width = images.shape[-2:]
    target_h = max(-(-height // multiple) * multiple, min_size)
    target_w = max(-(-width // multiple) * multiple, min_size)
    pad = (0, target_w - width, 0, target_h - height)
    if pad == (0, 0, 0, 0):
        return images, masks, (height, width)
    return F.pad(images, pad, mode="replicate"), F.pad(masks, pad), (height, width)


def crop_back(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    return x[..., : size[0], : size[1]]
