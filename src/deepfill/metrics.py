"""Image-quality metrics of DeepFill v1's Table 1 (and SSIM) on [0, 1] images.

Every function takes float images of shape (H, W, 3) or (H, W) in [0, 1] and computes in
float64. Percentages follow the paper: mean ℓ1 ×100, mean ℓ2 (mean squared error) ×100,
total variation ×100. ``mask`` (H, W), 1 = hole, restricts ℓ1/ℓ2/PSNR to hole pixels.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["image_metrics", "l1_error", "l2_error", "psnr", "ssim", "total_variation", "hole_area",
           "l1_by_border_distance", "BORDER_BANDS"]

# Bands of a hole pixel's distance (px, Euclidean) to the nearest known pixel: (name, low, high],
# the first band the hole's outermost pixels. A seam or colour shift at the hole border shows as
# a high ℓ1 in the first bands; a method that only continues the border does worse deep inside.
BORDER_BANDS = (("1-4", 0, 4), ("5-8", 4, 8), ("9-16", 8, 16), ("17-32", 16, 32), ("33+", 32, math.inf))


def _pair(output: np.ndarray, target: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    a = np.asarray(output, dtype=np.float64)
    b = np.asarray(target, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"output and target shapes differ: {a.shape} vs {b.shape}")
    if a.ndim not in (2, 3):
        raise ValueError(f"images must be (H, W) or (H, W, C), got shape {a.shape}")
    return a, b


def _masked_values(diff: np.ndarray, mask: np.ndarray | None) -> np.ndarray:
    """The entries of ``diff`` (H, W[, C]) at hole pixels, or all of them without a mask."""
    if mask is None:
        return diff
    m = np.asarray(mask) > 0.5
    if m.shape != diff.shape[:2]:
        raise ValueError(f"mask shape {m.shape} does not match image shape {diff.shape[:2]}")
    return diff[m]  # (N,) or (N, C): all channels of the hole pixels


def l1_error(output: np.ndarray, target: np.ndarray, mask: np.ndarray | None = None) -> float:
    """Mean absolute error in percent of the data range; ``nan`` for an empty mask."""
    a, b = _pair(output, target)
    values = _masked_values(np.abs(a - b), mask)
    return float(values.mean() * 100.0) if values.size else math.nan


def l2_error(output: np.ndarray, target: np.ndarray, mask: np.ndarray | None = None) -> float:
    """Mean squared error ×100 (the paper's "ℓ2 loss"); ``nan`` for an empty mask."""
    a, b = _pair(output, target)
    values = _masked_values(np.square(a - b), mask)
    return float(values.mean() * 100.0) if values.size else math.nan


def psnr(output: np.ndarray, target: np.ndarray, mask: np.ndarray | None = None, data_range: float = 1.0) -> float:
    """Peak signal-to-noise ratio in dB: 10·log10(range² / MSE); ``inf`` when MSE is 0."""
    a, b = _pair(output, target)
    values = _masked_values(np.square(a - b), mask)
    if not values.size:
        return math.nan
    mse = float(values.mean())
    if mse == 0.0:
        return math.inf
    return 10.0 * math.log10(data_range**2 / mse)


def total_variation(image: np.ndarray) -> float:
    """Mean absolute difference of horizontally and vertically neighbouring pixels, ×100.

    All neighbour pairs (both directions, every channel) weigh the same; the paper's "TV loss".
    """
    x = np.asarray(image, dtype=np.float64)
    dy = np.abs(x[1:, :] - x[:-1, :])
    dx = np.abs(x[:, 1:] - x[:, :-1])
    count = dy.size + dx.size
    if count == 0:
        return 0.0
    return float((dy.sum() + dx.sum()) / count * 100.0)


def _gaussian_window(size: int, sigma: float) -> np.ndarray:
    r = size // 2
    x = np.arange(-r, r + 1, dtype=np.float64)
    w = np.exp(-0.5 * (x / sigma) ** 2)
    return w / w.sum()


def _filter_valid(x: np.ndarray, window: np.ndarray) -> np.ndarray:
    """Separable 'valid' correlation of (H, W, C) with a 1-D window along H, then W."""
    k = window.size
    h, w = x.shape[0] - k + 1, x.shape[1] - k + 1
    rows = sum(window[i] * x[i : i + h] for i in range(k))  # (h, W, C)
    return sum(window[i] * rows[:, i : i + w] for i in range(k))  # (h, w, C)


def ssim(
    output: np.ndarray,
    target: np.ndarray,
    data_range: float = 1.0,
    win_size: int = 11,
    sigma: float = 1.5,
    k1: float = 0.01,
    k2: float = 0.03,
) -> float:
    """Structural similarity (Wang et al. 2004), Gaussian 11×11 window σ=1.5, channel mean.

    Statistics use population (biased) covariances, and only windows fully inside the image
    are averaged, which equals skimage's ``structural_similarity(..., gaussian_weights=True,
    sigma=1.5, use_sample_covariance=False, data_range=1, channel_axis=-1)``.
    """
    a, b = _pair(output, target)
    if a.ndim == 2:
        a, b = a[..., None], b[..., None]
    if min(a.shape[:2]) < win_size:
        raise ValueError(f"SSIM needs images of at least {win_size}x{win_size}, got {a.shape[:2]}")
    w = _gaussian_window(win_size, sigma)
    mu_a, mu_b = _filter_valid(a, w), _filter_valid(b, w)
    var_a = _filter_valid(a * a, w) - mu_a**2
    var_b = _filter_valid(b * b, w) - mu_b**2
    cov = _filter_valid(a * b, w) - mu_a * mu_b
    c1, c2 = (k1 * data_range) ** 2, (k2 * data_range) ** 2
    s = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2))
    return float(s.mean(axis=(0, 1)).mean())


def hole_area(mask: np.ndarray) -> float:
    """Share of hole pixels in percent."""
    m = np.asarray(mask) > 0.5
    return float(m.mean() * 100.0) if m.size else 0.0


def l1_by_border_distance(output: np.ndarray, target: np.ndarray, mask: np.ndarray) -> dict[str, float]:
    """Hole ℓ1 (%) per band of :data:`BORDER_BANDS`, keyed ``l1_band_<name>``; NaN for an empty band."""
    from scipy import ndimage

    a, b = _pair(output, target)
    hole = np.asarray(mask) > 0.5
    if hole.shape != a.shape[:2]:
        raise ValueError(f"mask shape {hole.shape} does not match image shape {a.shape[:2]}")
    if hole.all():  # no known pixel to measure from
        return {f"l1_band_{name}": math.nan for name, _, _ in BORDER_BANDS}
    distance = ndimage.distance_transform_edt(hole)  # 0 on known pixels, 1 next to them
    diff = np.abs(a - b)
    scores = {}
    for name, low, high in BORDER_BANDS:
        band = hole & (distance > low) & (distance <= high)
        scores[f"l1_band_{name}"] = float(diff[band].mean() * 100) if band.any() else math.nan
    return scores


def image_metrics(output: np.ndarray, target: np.ndarray, mask: np.ndarray) -> dict[str, float]:
    """All metrics of one composited output against its ground truth.

    Whole-image ℓ1/ℓ2/PSNR/TV/SSIM (the paper's convention) plus ℓ1/ℓ2/PSNR over hole pixels
    (``*_hole``), hole ℓ1 by distance to the known region (``l1_band_*``) and the hole area
    in percent. TV is the output's own total variation.
    """
    return {
        "l1": l1_error(output, target),
        "l2": l2_error(output, target),
        "psnr": psnr(output, target),
        "tv": total_variation(output),
        "ssim": ssim(output, target),
        "l1_hole": l1_error(output, target, mask),
        "l2_hole": l2_error(output, target, mask),
        "psnr_hole": psnr(output, target, mask),
        **l1_by_border_distance(output, target, mask),
        "hole_area": hole_area(mask),
    }
