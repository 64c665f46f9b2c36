"""Measuring the detail weights: the least-squares estimator on known answers, and the command on
real photos with the real model."""

import json

import numpy as np
import torch

from conftest import photo
from deepfill.blending import harmonic_correction
from deepfill.calibration import BAND_EDGES, band_sums, main, weights_from_sums


def _truth_and_hole():
    truth = torch.from_numpy(np.asarray(photo(128, 96, seed=5), np.float32) / 255).permute(2, 0, 1)[None]
    mask = torch.zeros(1, 1, 96, 128)
    mask[..., 8:88, 10:100] = 1  # 40 px deep: bands up to (32, 64]
    return truth, mask


def test_a_perfect_prediction_gets_weight_one_and_a_doubled_detail_one_half():
    truth, mask = _truth_and_hole()
    membrane = truth * (1 - mask) + harmonic_correction(truth * (1 - mask), mask > 0.5)  # truth outside the hole
    perfect = weights_from_sums(band_sums(truth, mask, truth))
    doubled = weights_from_sums(band_sums(truth, mask, membrane + 2 * (truth - membrane)))
    noisy = weights_from_sums(band_sums(truth, mask, truth + torch.randn(truth.shape, generator=torch.Generator().manual_seed(0))))
    np.testing.assert_allclose(perfect.weights, 1.0, atol=0.01)
    np.testing.assert_allclose(doubled.weights, 0.5, atol=0.01)
    assert max(noisy.weights) < 0.2  # unit noise on detail of ~0.05: almost none of it is kept


def test_empty_and_rare_bands_take_the_nearest_measured_weight():
    sums = np.zeros((3, len(BAND_EDGES) - 1))
    sums[:, 1] = 0.3, 1.0, 1000  # the (2, 4] band
    sums[:, 3] = 0.7, 1.0, 1000  # the (8, 16] band
    sums[:, -1] = 0.9, 1.0, 5  # 0.25 % of the pixels: too few to trust
    assert weights_from_sums(sums).weights == (0.3, 0.3, 0.3, 0.7, 0.7, 0.7, 0.7, 0.7)


def test_calibrating_the_bundled_model_writes_its_card(tmp_path, capsys):
    images = tmp_path / "photos"
    images.mkdir()
    for seed in range(2):
        photo(600, 520, seed=seed).save(images / f"{seed}.png")
    card = tmp_path / "card.json"
    card.write_text(json.dumps({"name": "test"}))
    assert main(["--images", str(images), "--card", str(card)]) == 0
    entry = json.loads(card.read_text())["detail_weights"]
    assert len(entry["distances"]) == len(entry["weights"]) == len(BAND_EDGES) - 1
    assert all(0 <= w <= 1 for w in entry["weights"]) and entry["pixels"][0] > 0
    assert json.loads(card.read_text())["name"] == "test"
