"""Metrics against hand-computed values on tiny arrays, and SSIM against scikit-image."""

from __future__ import annotations

import math

import numpy as np
import pytest

from deepfill.metrics import (BORDER_BANDS, hole_area, image_metrics, l1_by_border_distance, l1_error, l2_error, psnr,
                              ssim, total_variation)

# 2x2 grey output against an all-zero target: errors 0.1, 0.2, 0.3, 0.4
OUT = np.array([[0.1, 0.2], [0.3, 0.4]])
ZERO = np.zeros((2, 2))
DIAG = np.array([[1.0, 0.0], [0.0, 1.0]])  # hole = the 0.1 and 0.4 pixels


def test_l1_l2_psnr_whole_image_by_hand():
    assert l1_error(OUT, ZERO) == pytest.approx(25.0)  # (0.1+0.2+0.3+0.4)/4 ×100
    assert l2_error(OUT, ZERO) == pytest.approx(7.5)  # (0.01+0.04+0.09+0.16)/4 ×100
    assert psnr(OUT, ZERO) == pytest.approx(10 * math.log10(1 / 0.075))  # 11.249 dB
    assert psnr(OUT, ZERO) == pytest.approx(11.2494, abs=1e-4)


def test_l1_l2_psnr_inside_hole_by_hand():
    assert l1_error(OUT, ZERO, DIAG) == pytest.approx(25.0)  # (0.1+0.4)/2
    assert l2_error(OUT, ZERO, DIAG) == pytest.approx(8.5)  # (0.01+0.16)/2
    assert psnr(OUT, ZERO, DIAG) == pytest.approx(10 * math.log10(1 / 0.085))
    off = 1 - DIAG
    assert l1_error(OUT, ZERO, off) == pytest.approx(25.0)  # (0.2+0.3)/2
    assert l2_error(OUT, ZERO, off) == pytest.approx(6.5)  # (0.04+0.09)/2


def test_colour_channels_all_count():
    target = np.zeros((2, 2, 3))
    output = target.copy()
    output[0, 0] = (0.3, 0.6, 0.9)  # one pixel wrong in every channel
    assert l1_error(output, target) == pytest.approx((0.3 + 0.6 + 0.9) / 12 * 100)
    mask = np.zeros((2, 2))
    mask[0, 0] = 1
    assert l1_error(output, target, mask) == pytest.approx(60.0)
    assert l2_error(output, target, mask) == pytest.approx((0.09 + 0.36 + 0.81) / 3 * 100)


def test_total_variation_by_hand():
    img = np.array([[0.0, 1.0], [1.0, 1.0]])
    # vertical pairs |1-0|, |1-1|; horizontal pairs |1-0|, |1-1| -> 2 / 4 pairs
    assert total_variation(img) == pytest.approx(50.0)
    assert total_variation(np.full((4, 5, 3), 0.7)) == 0.0
    stripes = np.tile([0.0, 0.5], (3, 2))  # 3x4: horizontal steps of 0.5, no vertical change
    assert total_variation(stripes) == pytest.approx(0.5 * 9 / (9 + 8) * 100)


def test_identical_images_give_zero_error_and_infinite_psnr():
    rng = np.random.default_rng(0)
    img = rng.random((16, 16, 3))
    assert l1_error(img, img) == 0.0
    assert l2_error(img, img) == 0.0
    assert psnr(img, img) == math.inf
    assert ssim(img, img) == pytest.approx(1.0)
    scores = image_metrics(img, img, np.ones((16, 16)))
    assert scores["l1"] == 0.0 and scores["psnr"] == math.inf and scores["psnr_hole"] == math.inf


def test_ssim_of_constant_images_by_hand():
    a, b = np.full((12, 12, 3), 0.2), np.full((12, 12, 3), 0.4)
    c1 = 0.01**2  # no variance: SSIM reduces to the luminance term
    assert ssim(a, b) == pytest.approx((2 * 0.2 * 0.4 + c1) / (0.2**2 + 0.4**2 + c1))


def test_ssim_decreases_with_noise_and_is_symmetric():
    rng = np.random.default_rng(1)
    img = rng.random((32, 32, 3))
    noisy = np.clip(img + rng.normal(0, 0.05, img.shape), 0, 1)
    noisier = np.clip(img + rng.normal(0, 0.2, img.shape), 0, 1)
    assert 1.0 > ssim(noisy, img) > ssim(noisier, img)
    assert ssim(noisy, img) == pytest.approx(ssim(img, noisy))


def test_ssim_matches_skimage():
    metrics = pytest.importorskip("skimage.metrics")
    rng = np.random.default_rng(2)
    img = rng.random((40, 37, 3))
    for other in (np.clip(img + rng.normal(0, 0.1, img.shape), 0, 1), rng.random(img.shape), img[::-1]):
        expected = metrics.structural_similarity(
            other, img, gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=1, channel_axis=-1
        )
        assert ssim(other, img) == pytest.approx(expected, abs=1e-10)


def test_shape_errors():
    with pytest.raises(ValueError, match="shapes differ"):
        l1_error(np.zeros((2, 2)), np.zeros((2, 3)))
    with pytest.raises(ValueError, match="mask shape"):
        l1_error(np.zeros((2, 2)), np.zeros((2, 2)), np.zeros((3, 3)))
    with pytest.raises(ValueError, match="at least 11x11"):
        ssim(np.zeros((8, 8, 3)), np.zeros((8, 8, 3)))


def test_hole_area_and_empty_hole():
    assert hole_area(DIAG) == 50.0
    assert math.isnan(l1_error(OUT, ZERO, np.zeros((2, 2))))
    assert math.isnan(psnr(OUT, ZERO, np.zeros((2, 2))))


def test_l1_by_border_distance_against_brute_force_distances():
    """A 50x60 hole in a 60x70 image, an error that depends only on each pixel's band (its
    distance to the nearest known pixel, found here by brute force): each band's ℓ1 is its error."""
    mask = np.zeros((60, 70))
    mask[4:54, 3:63] = 1
    known = np.argwhere(mask == 0)
    target = np.full((60, 70, 3), 0.5)
    output = target.copy()
    error = [(index + 1) * 0.05 for index in range(len(BORDER_BANDS))]  # per band
    for y, x in np.argwhere(mask == 1):
        distance = np.sqrt(((known - (y, x)) ** 2).sum(1)).min()
        index = next(i for i, (_, low, high) in enumerate(BORDER_BANDS) if low < distance <= high)
        output[y, x] += error[index] * (-1) ** (y + x)  # sign alternates: |error| is what counts
    scores = l1_by_border_distance(output, target, mask)
    assert math.isnan(scores["l1_band_33+"])  # the hole is 25 px from its border at most
    for (name, _, _), value in zip(BORDER_BANDS[:-1], error):
        assert scores[f"l1_band_{name}"] == pytest.approx(value * 100), name
    assert image_metrics(output, target, mask)["l1_band_1-4"] == pytest.approx(error[0] * 100)


def test_l1_by_border_distance_without_known_pixels_is_nan():
    img = np.zeros((8, 8, 3))
    assert all(math.isnan(v) for v in l1_by_border_distance(img, img + 0.1, np.ones((8, 8))).values())
