"""Reading, converting and writing images and masks: the only place that converts ranges.

Files and the user see uint8/uint16 pixels with white (> 127) = hole masks; the network sees
[-1, 1] images and {0, 1} masks with 1 = hole. Known pixels are always copied back from the
original array so they come back bit-identical.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
from pathlib import Path
from typing import BinaryIO

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageOps, UnidentifiedImageError

from deepfill.config import DEFAULT_MAX_PIXELS, IMAGE_FORMATS
from deepfill.errors import InputError, NotAnImageError, SizeMismatchError, TooLargeError
from deepfill.geometry import Box

log = logging.getLogger(__name__)



@dataclasses.dataclass
class Picture:
    """An image split into what the network fills and what must survive untouched.

    ``pixels`` is [H, W, C] (C = 1 or 3) in the file's own integer type; ``alpha`` is [H, W] or
    None; ``peak`` is the value of full intensity (255, 65535). ``mode`` is the Pillow mode to
    write back; ``metadata`` the file's EXIF block (orientation already applied) and ICC profile,
    written back by :func:`save_image` where the format holds them.
    """

    pixels: np.ndarray
    alpha: np.ndarray | None
    peak: float
    mode: str
    metadata: dict[str, bytes] = dataclasses.field(default_factory=dict)

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

    def crop(self, box: Box) -> "Picture":
        """A view of the pixels inside ``box``."""
        top, left, bottom, right = box
        alpha = self.alpha[top:bottom, left:right] if self.alpha is not None else None
        return dataclasses.replace(self, pixels=self.pixels[top:bottom, left:right], alpha=alpha)

    def with_fill(self, filled_rgb: np.ndarray, hole: np.ndarray, offset: tuple[int, int] = (0, 0)) -> "Picture":
        """A copy whose hole pixels come from ``filled_rgb`` ([h, w, 3] in [0, 1]) and are opaque;
        the rest is untouched.

        ``filled_rgb`` and ``hole`` may cover a box of the picture starting at ``offset`` (top, left).
        """
        values = filled_rgb[hole]
        if self.pixels.shape[2] == 1:
            values = values.mean(axis=1, keepdims=True)
        top, left = offset
        rows, cols = np.nonzero(hole)
        pixels = self.pixels.copy()
        pixels[rows + top, cols + left] = np.clip(np.rint(values * self.peak), 0, self.peak).astype(self.pixels.dtype)
        alpha = self.alpha
        if alpha is not None:  # a filled pixel is seen: transparent ones (--mask-from-alpha) would hide the fill
            alpha = alpha.copy()
            alpha[rows + top, cols + left] = np.iinfo(alpha.dtype).max
        return dataclasses.replace(self, pixels=pixels, alpha=alpha)

    def to_image(self) -> Image.Image:
        image = self._image()
        image.info.update(self.metadata)
        return image

    def _image(self) -> Image.Image:
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


def upright(image: Image.Image) -> Image.Image:
    """Apply the EXIF orientation; an unreadable EXIF block leaves the image as stored."""
    try:
        return ImageOps.exif_transpose(image)
    except Exception as exc:  # noqa: BLE001 - Pillow raises many types on malformed EXIF
        log.warning("ignoring unreadable EXIF data: %s", exc)
        return image


# What of a file's metadata survives inpainting (Pillow's ``info`` keys).
METADATA_KEYS = ("exif", "icc_profile")


def picture_from_image(image: Image.Image) -> Picture:
    """Split a Pillow image (any mode) into a :class:`Picture`. EXIF orientation is applied; the
    EXIF block (without the orientation) and the ICC profile are kept in ``metadata``.

    The arrays are read-only views of fresh copies; a filled picture is a new one.
    """
    image = upright(image)
    picture = _split(image)
    picture.metadata = {key: image.info[key] for key in METADATA_KEYS if isinstance(image.info.get(key), bytes)
                        and image.info[key]}
    return picture


def _split(image: Image.Image) -> Picture:
    mode = image.mode
    if mode in ("I;16", "I;16L", "I;16B", "I;16N"):
        return Picture(pixel_array(image).astype(np.uint16, copy=False)[:, :, None], None, 65535.0, "I;16")
    if mode == "I":
        array = pixel_array(image)
        peak = 65535.0 if array.max(initial=0) > 255 else 255.0
        return Picture(np.clip(array, 0, 65535).astype(np.int32)[:, :, None], None, peak, "I")
    if mode == "F":
        array = np.clip(pixel_array(image), 0, 255).astype(np.uint8)
        return Picture(array[:, :, None], None, 255.0, "L")
    if mode in ("1", "L"):
        return Picture(pixel_array(image, "L")[:, :, None], None, 255.0, "L")
    if mode == "LA":
        array = pixel_array(image)
        return Picture(array[:, :, :1], array[:, :, 1], 255.0, "LA")
    if mode in ("La", "PA", "RGBA", "RGBa") or (mode == "P" and "transparency" in image.info):
        array = pixel_array(image, "RGBA")
        return Picture(array[:, :, :3], array[:, :, 3], 255.0, "RGBA")
    return Picture(pixel_array(image, "RGB"), None, 255.0, "RGB")


# Rows converted at a time by pixel_array: a large image is never held twice over in full.
STRIP_PIXELS = 1 << 20


def pixel_array(image: Image.Image, mode: str | None = None) -> np.ndarray:
    """The image's pixels as a new array, converted to ``mode`` (default: its own), strip by strip
    so the transient memory is one strip rather than whole-image copies."""
    width, height = image.size
    rows = max(1, STRIP_PIXELS // max(1, width))
    if height <= rows:
        return np.asarray(image if mode in (None, image.mode) else image.convert(mode))
    array = None
    for top in range(0, height, rows):
        strip = image.crop((0, top, width, min(height, top + rows)))
        values = np.asarray(strip if mode in (None, strip.mode) else strip.convert(mode))
        if array is None:
            array = np.empty((height, *values.shape[1:]), values.dtype)
        array[top : top + values.shape[0]] = values
    array.flags.writeable = False
    return array


def open_image(
    source: str | Path | BinaryIO, max_pixels: int = DEFAULT_MAX_PIXELS, what: str = "image", decode: bool = True
) -> Image.Image:
    """Open and fully decode an image (a path or a binary file object), with a one-line error
    for every way it can fail: missing, not an image, above ``max_pixels``, corrupt or truncated.

    ``decode=False`` reads only the header: format and size are checked, no pixel is decoded.
    """
    name = what
    if isinstance(source, (str, Path)):
        path = Path(source)
        name = f"{what} {path}"
        if not path.exists():
            raise InputError(f"{what} not found: {path}")
        if not path.is_file():
            raise InputError(f"{what} is not a file: {path}")
    try:
        try:
            image = Image.open(source, formats=IMAGE_FORMATS)
        except Image.DecompressionBombError:
            if max_pixels <= 2 * (Image.MAX_IMAGE_PIXELS or 0):
                raise TooLargeError(f"{name} has more than {2 * Image.MAX_IMAGE_PIXELS:,} pixels, above the limit "
                                    f"of {max_pixels:,}") from None
            image = _open_without_pillow_limit(source)
        width, height = image.size
        if width * height > max_pixels:
            raise TooLargeError(f"{name} has {width}x{height} = {width * height:,} pixels, above the limit of "
                                f"{max_pixels:,}")
        if decode:
            image.load()
    except UnidentifiedImageError:
        raise NotAnImageError(f"{name} is not an image in a supported format "
                              f"({', '.join(IMAGE_FORMATS)})") from None
    except (OSError, SyntaxError, ValueError) as exc:
        if isinstance(exc, InputError):
            raise
        raise InputError(f"{name} is corrupt or truncated: {exc}") from exc
    return image


_PILLOW_LIMIT_LOCK = threading.Lock()


def _open_without_pillow_limit(source: str | Path | BinaryIO) -> Image.Image:
    """Open an image above Pillow's own bomb limit, for callers that raised ``max_pixels`` past it.

    Pillow keeps that limit in a process-wide variable; it is lifted only for this one call.
    """
    if not isinstance(source, (str, Path)):
        source.seek(0)
    with _PILLOW_LIMIT_LOCK:
        previous, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, None
        try:
            return Image.open(source, formats=IMAGE_FORMATS)
        finally:
            Image.MAX_IMAGE_PIXELS = previous


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
    mask = upright(mask)
    if from_alpha:
        if "A" not in mask.getbands() and "transparency" not in mask.info:
            raise InputError("--mask-from-alpha needs a mask with an alpha channel")
        hole = pixel_array(mask, "RGBA")[:, :, 3] < 128
    elif mask.mode.startswith("I") or mask.mode == "F":
        values = np.asarray(mask, dtype=np.float64)
        hole = values > (127 if values.max(initial=0) <= 255 else 32767)
    else:
        hole = pixel_array(mask, "L") > 127
    if (hole.shape[1], hole.shape[0]) != tuple(size):
        if not resize:
            raise SizeMismatchError(
                f"mask size {hole.shape[1]}x{hole.shape[0]} differs from image size {size[0]}x{size[1]}"
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


# Formats whose Pillow writers take ``exif=`` and ``icc_profile=``.
METADATA_FORMATS = ("JPEG", "PNG", "WEBP", "TIFF")
DEFAULT_JPEG_QUALITY = 95


def save_image(
    image: Image.Image,
    target: str | Path | BinaryIO,
    format: str | None = None,
    quality: int = DEFAULT_JPEG_QUALITY,
    keep_metadata: bool = True,
) -> None:
    """Write ``image`` to a path (format from its extension) or a file object (``format`` given),
    adapting modes the format lacks (JPEG has no alpha and 8 bits only, both with a warning).
    WebP is written lossless so known pixels survive; JPEG at ``quality`` (1-100), which changes
    every pixel a little. The image's EXIF block and ICC profile (``image.info``) are written
    where the format holds them, unless ``keep_metadata`` is false. A path is written through a
    temporary file, never half-written.
    """
    path = None
    if format is None:
        path = Path(target)
        format = Image.registered_extensions().get(path.suffix.lower())
        if format is None:
            raise InputError(f"cannot write {path}: unknown image extension {path.suffix or '(none)'}")
    options: dict = {}
    if keep_metadata and format in METADATA_FORMATS:
        options.update({key: image.info[key] for key in METADATA_KEYS if image.info.get(key)})
    if format == "JPEG":
        if not 1 <= quality <= 100:
            raise InputError(f"JPEG quality must be 1-100, got {quality}")
        if image.mode in ("RGBA", "LA"):
            log.warning("JPEG has no alpha channel; the alpha is dropped")
        if image.mode in ("I", "I;16"):
            values = np.asarray(image, dtype=np.float64)
            if image.mode == "I;16" or values.max(initial=0) > 255:
                log.warning("JPEG holds 8 bits per channel; the 16-bit image is written as 8-bit "
                            "(write PNG or TIFF to keep 16 bits)")
                values = values / 257
            image = Image.fromarray(np.clip(values.round(), 0, 255).astype(np.uint8))
        image = image.convert("RGB" if image.mode in ("RGBA", "RGB", "P") else "L")
        options["quality"] = quality
    elif format == "WEBP":
        options["lossless"] = True
    if path is None:
        image.save(target, format=format, **options)
        return
    tmp = path.with_name(f".{path.name}.partial")
    try:
        image.save(tmp, format=format, **options)
        tmp.replace(path)
    except (OSError, ValueError) as exc:
        tmp.unlink(missing_ok=True)
        raise InputError(f"cannot write {path} as {format}: {exc}") from exc


# --- tensors -------------------------------------------------------------------------------

def to_model_range(x01: torch.Tensor) -> torch.Tensor:
    return x01 * 2.0 - 1.0


def from_model_range(x: torch.Tensor) -> torch.Tensor:
    return (x + 1.0) / 2.0


def pad_to_multiple(
    images: torch.Tensor, masks: torch.Tensor, multiple: int, min_size: int = 0
) -> tuple[torch.Tensor, torch.Tensor, tuple[int, int]]:
    """Pad at the bottom and right to a multiple of ``multiple`` (and at least ``min_size``).

    Both are edge-replicated: a pad pixel beside a hole is hole too, so the hole's pixels never
    reach the network as known ones. Returns the padded pair and the original (height, width)
    for :func:`crop_back`.
    """
    height, width = images.shape[-2:]
    target_h = max(-(-height // multiple) * multiple, min_size)
    target_w = max(-(-width // multiple) * multiple, min_size)
    pad = (0, target_w - width, 0, target_h - height)
    if pad == (0, 0, 0, 0):
        return images, masks, (height, width)
    return F.pad(images, pad, mode="replicate"), F.pad(masks, pad, mode="replicate"), (height, width)


def crop_back(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    return x[..., : size[0], : size[1]]
