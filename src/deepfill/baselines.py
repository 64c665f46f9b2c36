"""Classical inpainting baselines behind one callable signature.

A method is ``method(image, mask) -> output``: ``image`` float32 (H, W, 3) in [0, 1], ``mask``
float32 (H, W) with 1 = hole; the output is float32 (H, W, 3) in [0, 1]. Known pixels of the
output may differ from the input (the evaluation harness pastes them back). Methods whose
optional dependency (OpenCV, scikit-image, pypatchmatch) is missing raise
``MethodUnavailable`` when built, so a harness can skip them.
"""

from __future__ import annotations

import functools
import logging
from typing import Callable

import numpy as np

logger = logging.getLogger(__name__)

Method = Callable[[np.ndarray, np.ndarray], np.ndarray]

__all__ = ["BASELINES", "Method", "MethodUnavailable", "harmonic_fill", "make_baseline", "mean_fill"]


class MethodUnavailable(RuntimeError):
    """A method that cannot run here, e.g. because an optional package is not installed."""


def _check(image: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    image = np.asarray(image, dtype=np.float32)
    hole = np.asarray(mask) > 0.5
    if image.ndim != 3 or image.shape[2] != 3 or hole.shape != image.shape[:2]:
        raise ValueError(f"expected image (H, W, 3) and mask (H, W), got {image.shape} and {hole.shape}")
    return image, hole


def _to_uint8(image: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(np.clip(np.rint(image * 255.0), 0, 255).astype(np.uint8))


def mean_fill(image: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Fill the hole with the mean colour of the known pixels (grey if nothing is known)."""
    image, hole = _check(image, mask)
    known = image[~hole]
    colour = known.mean(axis=0, dtype=np.float64) if known.size else np.full(3, 0.5)
    out = image.copy()
    out[hole] = colour
    return out


def _opencv(image: np.ndarray, mask: np.ndarray, *, flags: int, radius: float) -> np.ndarray:
    import cv2

    image, hole = _check(image, mask)
    out = cv2.inpaint(_to_uint8(image), hole.astype(np.uint8) * 255, radius, flags)
    return out.astype(np.float32) / 255.0


def _biharmonic(image: np.ndarray, mask: np.ndarray) -> np.ndarray:
    from skimage.restoration import inpaint_biharmonic

    image, hole = _check(image, mask)
    out = inpaint_biharmonic(image.astype(np.float64), hole, channel_axis=-1)
    return np.clip(out, 0.0, 1.0).astype(np.float32)


def harmonic_fill(image: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """The membrane (Laplace) fill: the smoothest surface through the hole's known ring, solved by
    the compositing's own solver (:func:`deepfill.blending.harmonic_correction`)."""
    import torch

    from deepfill.blending import harmonic_correction

    image, hole = _check(image, mask)
    known = torch.from_numpy(np.ascontiguousarray(image * ~hole[..., None], dtype=np.float32)).permute(2, 0, 1)[None]
    out = harmonic_correction(known, torch.from_numpy(hole)[None, None])[0].permute(1, 2, 0).numpy()
    return np.clip(np.where(hole[..., None], out, image), 0.0, 1.0).astype(np.float32)


def _patchmatch(image: np.ndarray, mask: np.ndarray, *, patch_size: int, seed: int) -> np.ndarray:
    from patchmatch import patch_match

    image, hole = _check(image, mask)
    patch_match.set_random_seed(seed)  # same seed per call: the output depends only on the input
    out = patch_match.inpaint(_to_uint8(image), hole.astype(np.uint8) * 255, patch_size=patch_size)
    return out.astype(np.float32) / 255.0


def _make_opencv(flag_name: str, radius: float = 3.0) -> Method:
    try:
        import cv2
    except ImportError as exc:
        raise MethodUnavailable(f"needs OpenCV (pip install opencv-python-headless): {exc}") from exc
    return functools.partial(_opencv, flags=getattr(cv2, flag_name), radius=radius)


def _make_biharmonic() -> Method:
    try:
        from skimage.restoration import inpaint_biharmonic  # noqa: F401
    except ImportError as exc:
        raise MethodUnavailable(f"needs scikit-image (pip install scikit-image): {exc}") from exc
    return _biharmonic


def _make_patchmatch(patch_size: int = 3, seed: int = 0) -> Method:
    try:
        from patchmatch import patch_match
    except Exception as exc:  # ImportError, or the native library failing to build/load
        raise MethodUnavailable(f"needs pypatchmatch (pip install pypatchmatch): {exc}") from exc
    if not getattr(patch_match, "patchmatch_available", False):
        raise MethodUnavailable("pypatchmatch is installed but its native library did not load")
    return functools.partial(_patchmatch, patch_size=patch_size, seed=seed)


# name -> factory; a factory raises MethodUnavailable when its dependency is missing
BASELINES: dict[str, Callable[[], Method]] = {
    "telea": functools.partial(_make_opencv, "INPAINT_TELEA", 3.0),
    "ns": functools.partial(_make_opencv, "INPAINT_NS", 3.0),
    "harmonic": lambda: harmonic_fill,
    "biharmonic": _make_biharmonic,
    "patchmatch": _make_patchmatch,
    "mean": lambda: mean_fill,
}


def make_baseline(name: str) -> Method:
    """Build the baseline ``name`` (one of ``BASELINES``); raises ``MethodUnavailable``."""
    if name not in BASELINES:
        raise ValueError(f"unknown baseline {name!r}; choose from {', '.join(BASELINES)}")
    return BASELINES[name]()
