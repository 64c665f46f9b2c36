"""A quality floor for the bundled model on the example photos, against classical methods.

The examples' masks are drawn over real content, so the photo itself is the ground truth. The
floor is relative: the bundled model with its default settings must fill the holes better than
the mean colour by a wide margin, and at least about as well as OpenCV's Telea.
"""

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from deepfill.baselines import MethodUnavailable, make_baseline, mean_fill

EXAMPLES = Path(__file__).parents[1] / "examples"
CASES = sorted(EXAMPLES.glob("*_mask_*.png"))


def _hole_l1(filled: np.ndarray, truth: np.ndarray, hole: np.ndarray) -> float:
    return float(np.abs(filled.astype(np.float64) - truth.astype(np.float64))[hole].mean() / 255)


@pytest.fixture(scope="module")
def scores(inpainter):
    """Hole ℓ1 of deepfill, mean fill and (when OpenCV is installed) Telea, per example and mask."""
    try:
        telea = make_baseline("telea")
    except MethodUnavailable:
        telea = None
    rows = []
    for mask_path in CASES:
        image_path = EXAMPLES / f"{mask_path.name.split('_mask_')[0]}.jpg"
        truth = np.asarray(Image.open(image_path).convert("RGB"))
        hole = np.asarray(Image.open(mask_path).convert("L")) > 127
        as01, hole01 = truth.astype(np.float32) / 255, hole.astype(np.float32)
        row = {"deepfill": _hole_l1(np.asarray(inpainter.inpaint(truth, hole)), truth, hole),
               "mean": _hole_l1(mean_fill(as01, hole01) * 255, truth, hole)}
        if telea is not None:
            row["telea"] = _hole_l1(telea(as01 * (1 - hole01[..., None]), hole01) * 255, truth, hole)
        rows.append(row)
    return rows


def test_the_examples_are_filled_far_better_than_by_their_mean_colour(scores):
    assert len(scores) == 8
    for row in scores:
        assert row["deepfill"] < row["mean"], row
    assert np.mean([row["deepfill"] for row in scores]) < 0.7 * np.mean([row["mean"] for row in scores])


def test_the_examples_are_filled_about_as_well_as_by_telea(scores):
    if "telea" not in scores[0]:
        pytest.skip("OpenCV is not installed (pip install 'deepfill[eval]')")
    deepfill = np.mean([row["deepfill"] for row in scores])
    telea = np.mean([row["telea"] for row in scores])
    assert deepfill < 1.05 * telea, (deepfill, telea)
