"""Frozen configuration dataclasses shared by the model, training and inference."""

from __future__ import annotations

import dataclasses
from typing import Any, Literal, TypeVar

T = TypeVar("T")

# Decompression-bomb guard for decoded images: Pillow's own default (~89 MP), which covers
# real cameras. Commands take --max-pixels to change it.
DEFAULT_MAX_PIXELS = 89_478_485

# The only formats any image or mask is decoded from (Pillow format names). An allow-list:
# Pillow would otherwise hand EPS/PostScript to Ghostscript, which runs the file as a program
# (a 58-byte loop hangs it), and try every other plugin it has.
IMAGE_FORMATS = ("PNG", "JPEG", "WEBP", "TIFF", "BMP", "GIF", "PPM", "TGA")  # JPEG includes MPO (phone photos)


def config_from_dict(cls: type[T], values: dict[str, Any]) -> T:
    """Build a config dataclass from a dict, rejecting keys it does not know."""
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ValueError(f"unknown {cls.__name__} keys: {', '.join(unknown)}")
    return cls(**values)


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """Generator architecture (docs/design.md §1). The defaults are the paper's v1 model."""

    cnum: int = 32
    padding: Literal["reflect", "zeros"] = "reflect"
    attention: Literal["contextual", "none"] = "contextual"
    # Nearest-neighbour downscaling of the mask and of the attention inputs: "floor" takes every
    # k-th pixel; "align_corners" reproduces the released TF code (converted official weights).
    resize: Literal["floor", "align_corners"] = "floor"
    ca_ksize: int = 3
    ca_rate: int = 2
    ca_fuse_k: int = 3
    ca_softmax_scale: float = 10.0
    ca_fuse: bool = True

    def __post_init__(self) -> None:
        if self.padding not in ("reflect", "zeros"):
            raise ValueError(f"padding must be 'reflect' or 'zeros', got {self.padding!r}")
        if self.attention not in ("contextual", "none"):
            raise ValueError(f"attention must be 'contextual' or 'none', got {self.attention!r}")
        if self.resize not in ("floor", "align_corners"):
            raise ValueError(f"resize must be 'floor' or 'align_corners', got {self.resize!r}")
        if not 2 <= self.cnum <= 256:
            raise ValueError(f"cnum must be between 2 and 256 (the paper's is 32), got {self.cnum}")
        for name in ("ca_ksize", "ca_rate", "ca_fuse_k"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if not self.ca_softmax_scale > 0:
            raise ValueError(f"ca_softmax_scale must be positive, got {self.ca_softmax_scale}")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> "ModelConfig":
        return config_from_dict(cls, values)
