"""The photographic filter: keep photos, leave drawings, icons, cut-outs and flat textures out."""

from __future__ import annotations

import dataclasses
import io

import numpy as np
from PIL import Image


@dataclasses.dataclass(frozen=True)
class ImageStats:
    """What the photographic filter looks at, measured on a copy of ~128-255 px short side."""

    width: int
    height: int
    alpha_fraction: float  # share of (partly) transparent pixels
    colours: int  # distinct RGB values in the reduced copy
    flat_fraction: float  # share of horizontal neighbours with (almost) equal colour


def image_stats(data: bytes) -> ImageStats:
    """Measure an encoded image; raises OSError/ValueError when Pillow cannot decode it."""
    with Image.open(io.BytesIO(data)) as im:
        w, h = im.size
        factor = max(1, min(w, h) // 128)
        small_size = (max(1, w // factor), max(1, h // factor))
        im.draft("RGB", small_size)  # JPEG: decode at a reduced scale
        has_alpha = im.mode in ("RGBA", "LA", "PA", "La", "RGBa") or "transparency" in im.info
        im = im.convert("RGBA" if has_alpha else "RGB")
        small = im.resize(small_size, Image.Resampling.BOX)
    arr = np.asarray(small)
    alpha = float((arr[..., 3] < 250).mean()) if has_alpha else 0.0
    rgb = arr[..., :3].astype(np.int32)
    colours = int(np.unique(rgb[..., 0] << 16 | rgb[..., 1] << 8 | rgb[..., 2]).size)
    flat = float((np.abs(np.diff(rgb, axis=1)).sum(-1) <= 1).mean()) if rgb.shape[1] > 1 else 1.0
    return ImageStats(w, h, alpha, colours, flat)


@dataclasses.dataclass(frozen=True)
class FilterConfig:
    """Thresholds of the photographic filter; ``max_flat`` is per source (see ``Source``)."""

    min_side: int = 256
    max_alpha: float = 0.01
    min_colours: int = 64


def rejection_reason(stats: ImageStats, config: FilterConfig, max_flat: float | None = None) -> str | None:
    """Why an image is not kept as a photo (None when it is kept)."""
    if min(stats.width, stats.height) < config.min_side:
        return f"short side {min(stats.width, stats.height)} < {config.min_side}"
    if stats.alpha_fraction > config.max_alpha:
        return f"transparent ({stats.alpha_fraction:.0%})"
    if stats.colours < config.min_colours:
        return f"{stats.colours} colours"
    if max_flat is not None and stats.flat_fraction > max_flat:
        return f"flat areas ({stats.flat_fraction:.0%})"
    return None
