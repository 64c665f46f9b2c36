"""Classical baselines: one callable signature, sensible fills, skip when a dependency is missing."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from deepfill.baselines import BASELINES, MethodUnavailable, make_baseline, mean_fill
from deepfill.metrics import l1_error


def gradient_image(size: int = 48) -> np.ndarray:
    """A smooth image that diffusion-style methods should reconstruct closely."""
    y, x = np.mgrid[0:size, 0:size] / (size - 1)
    return np.stack([x, y, 0.5 * (x + y)], axis=-1).astype(np.float32)


def centre_hole(size: int = 48, hole: int = 12) -> np.ndarray:
    mask = np.zeros((size, size), np.float32)
    lo = (size - hole) // 2
    mask[lo : lo + hole, lo : lo + hole] = 1
    return mask


def build_or_skip(name: str):
    try:
        return make_baseline(name)
    except MethodUnavailable as exc:
        pytest.skip(str(exc))


def test_mean_fill_uses_known_pixels_only():
    image = np.zeros((4, 4, 3), np.float32)
    image[:, :2] = (1.0, 0.5, 0.0)
    image[:, 2:] = (0.0, 0.5, 1.0)
    mask = np.zeros((4, 4), np.float32)
    mask[0, 0] = mask[1, 0] = 1  # both holes on the left half
    image[0, 0] = image[1, 0] = (9.0, 9.0, 9.0)  # hole content must be ignored
    image_before = image.copy()
    out = mean_fill(image, mask)
    np.testing.assert_array_equal(image, image_before)  # input untouched
    # 14 known pixels: 6 of the left colour, 8 of the right
    expected = (np.array([1.0, 0.5, 0.0]) * 6 + np.array([0.0, 0.5, 1.0]) * 8) / 14
    np.testing.assert_allclose(out[0, 0], expected, rtol=1e-6)
    np.testing.assert_allclose(out[1, 0], expected, rtol=1e-6)
    np.testing.assert_array_equal(out[mask == 0], image[mask == 0])


@pytest.mark.parametrize("name", sorted(BASELINES))
def test_baseline_contract(name):
    method = build_or_skip(name)
    image, mask = gradient_image(), centre_hole()
    hidden = image * (1 - mask[..., None])
    out = method(hidden, mask)
    assert out.shape == image.shape and out.dtype == np.float32
    assert np.isfinite(out).all() and out.min() >= 0 and out.max() <= 1
    known = mask == 0
    assert np.abs(out[known] - image[known]).max() <= 1 / 255 + 1e-6  # uint8 round trip at most
    if name != "mean":  # every real method beats a flat fill on a smooth gradient
        assert l1_error(out, image, mask) < l1_error(mean_fill(hidden, mask), image, mask)
    np.testing.assert_array_equal(out, method(hidden, mask))  # deterministic


@pytest.mark.parametrize("name, limit", [("telea", 3.5), ("ns", 3.5), ("harmonic", 0.1), ("biharmonic", 0.1)])
def test_diffusion_methods_reconstruct_a_gradient(name, limit):
    method = build_or_skip(name)
    image, mask = gradient_image(), centre_hole()
    out = method(image * (1 - mask[..., None]), mask)
    # mean fill is ≈ 5.7 % here; Telea/NS ≈ 2–3 %; harmonic and biharmonic solve a linear ramp exactly
    assert l1_error(out, image, mask) < limit


def test_missing_dependency_is_reported_not_crashed(monkeypatch):
    monkeypatch.setitem(sys.modules, "cv2", None)  # import cv2 -> ImportError
    monkeypatch.setitem(sys.modules, "patchmatch", None)
    with pytest.raises(MethodUnavailable, match="OpenCV"):
        make_baseline("telea")
    with pytest.raises(MethodUnavailable, match="pypatchmatch"):
        make_baseline("patchmatch")


def test_unknown_baseline():
    with pytest.raises(ValueError, match="unknown baseline"):
        make_baseline("photoshop")
