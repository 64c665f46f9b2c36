"""Gradient-domain compositing: the multigrid solver against a direct sparse solve, calibrated
blending's detail weights, and the Inpainter's use of them (the prediction on the hole's ring,
known pixels kept exactly, distances in the network's pixels)."""

import numpy as np
import pytest
import scipy.sparse
import scipy.sparse.linalg
import torch
from PIL import Image

from conftest import photo, rect_mask
from deepfill.baselines import harmonic_fill
from deepfill.blending import DetailWeights, composite, harmonic_correction
from deepfill.errors import InputError, WeightsError
from deepfill.masks import brush_stroke_mask, free_form_mask, rectangle_mask
from deepfill.processing import from_model_range, pad_to_multiple, to_model_range


def direct_harmonic(boundary: np.ndarray, hole: np.ndarray) -> np.ndarray:
    """The harmonic correction by a sparse direct solve: 5-point Laplacian, image borders free."""
    height, width = hole.shape
    index = -np.ones(hole.shape, int)
    ys, xs = np.nonzero(hole)
    index[ys, xs] = np.arange(len(ys))
    rows, cols, values = [], [], []
    rhs = np.zeros((len(ys), boundary.shape[0]))
    for k, (y, x) in enumerate(zip(ys, xs)):
        neighbours = 0
        for yy, xx in ((y - 1, x), (y + 1, x), (y, x - 1), (y, x + 1)):
            if 0 <= yy < height and 0 <= xx < width:
                neighbours += 1
                if hole[yy, xx]:
                    rows.append(k), cols.append(index[yy, xx]), values.append(-1.0)
                else:
                    rhs[k] += boundary[:, yy, xx]
        rows.append(k), cols.append(k), values.append(float(neighbours))
    matrix = scipy.sparse.csc_matrix((values, (rows, cols)), shape=(len(ys), len(ys)))
    out = np.zeros_like(boundary)
    out[:, ys, xs] = scipy.sparse.linalg.spsolve(matrix, rhs).T
    return out


def _holes():
    rng = np.random.default_rng(3)
    on_border = np.zeros((96, 112), bool)
    on_border[:96, :40] = True  # touches three image borders
    two = np.zeros((80, 80), bool)
    two[5:20, 10:60] = two[40:75, 30:45] = True
    return {
        "rectangle": rectangle_mask(rng, 128, 128, (64, 64))[0] > 0,
        "three borders": on_border,
        "two holes": two,
        "thin strokes": free_form_mask(rng, 128, 128, "thin") > 0,
        "thick strokes": free_form_mask(rng, 128, 128, "thick") > 0,
        "brush": brush_stroke_mask(rng, 128, 128) > 0,
    }


@pytest.mark.parametrize("name", list(_holes()))
def test_multigrid_matches_a_direct_solve(name):
    """Within 2.5e-3 on noisy boundary values of range ~0.4: below the 8-bit step (3.9e-3)."""
    hole = _holes()[name]
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[: hole.shape[0], : hole.shape[1]]
    boundary = np.stack([np.sin(xx / 17) * 0.1 + rng.normal(0, 0.05, hole.shape), np.cos(yy / 9) * 0.2,
                         rng.normal(0, 0.1, hole.shape)])
    expected = direct_harmonic(boundary, hole)
    got = harmonic_correction(torch.from_numpy(boundary).float()[None], torch.from_numpy(hole)[None, None])[0]
    assert np.abs(got.numpy() - expected)[:, hole].max() < 2.5e-3
    assert not got.numpy()[:, ~hole].any()


def test_poisson_removes_a_colour_offset_and_keeps_known_pixels():
    """A prediction that is the truth plus a constant has the truth's gradients: blending recovers
    the truth, pasting keeps the offset; known pixels are the image's, bit for bit."""
    truth = torch.from_numpy(np.asarray(photo(96, 80), np.float32) / 255).permute(2, 0, 1)[None]
    mask = torch.zeros(1, 1, 80, 96)
    mask[..., 20:60, 30:70] = 1
    image = truth * (1 - mask) + 0.5 * mask  # what the user has: grey in the hole
    prediction = truth + torch.tensor([0.1, -0.05, 0.08])[None, :, None, None]
    blended = composite(prediction, image, mask, "poisson")
    pasted = composite(prediction, image, mask, "none")
    hole = mask.expand_as(truth) > 0
    assert (blended - truth)[hole].abs().max() < 1e-3
    assert (pasted - truth)[hole].abs().mean() > 0.07
    assert torch.equal(blended[~hole], image[~hole]) and torch.equal(pasted[~hole], image[~hole])


def test_a_sample_without_known_pixels_gets_no_correction():
    boundary = torch.rand(2, 3, 32, 32)
    hole = torch.zeros(2, 1, 32, 32, dtype=torch.bool)
    hole[0] = True
    hole[1, :, 8:16, 8:16] = True
    correction = harmonic_correction(boundary, hole)
    assert not correction[0].any() and correction[1, :, 8:16, 8:16].abs().sum() > 0


def test_inpainter_blends_the_full_networks_prediction(inpainter):
    """The hole-only inference gives the ring's prediction too: the Inpainter's blended fill equals
    Poisson compositing of the whole network's output (not restricted to the hole)."""
    image = np.asarray(photo(160, 136, seed=2), np.float32) / 255
    hole = np.zeros((136, 160), bool)
    hole[30:90, 50:130] = True
    hole[100:120, 10:30] = True
    filled = inpainter.fill(image, hole, blend="poisson")[0]
    x = torch.from_numpy(image).permute(2, 0, 1)[None]
    m = torch.from_numpy(hole)[None, None].float()
    generator = inpainter.generator
    xp, mp, _ = pad_to_multiple(to_model_range(x), m, generator.pad_multiple, generator.min_size)
    with torch.no_grad():
        _, refined, _ = generator(xp, mp)
    prediction = from_model_range(refined[..., :136, :160]).clamp(0, 1)
    expected = composite(prediction, x, m, "poisson")[0].permute(1, 2, 0).clamp(0, 1).numpy()
    assert np.abs(filled - expected)[hole].max() < 1e-4
    assert np.array_equal(filled[~hole], image[~hole])
    pasted = inpainter.fill(image, hole, blend="none")[0]
    assert np.abs(filled - pasted)[hole].mean() > 1e-3  # blending did change the fill


def test_large_photo_regions_are_blended_at_full_resolution(inpainter):
    """A region downscaled for the network is composited at the photo's resolution: no step at
    the hole's border beyond what the photo itself has."""
    image = np.asarray(photo(1400, 1000, seed=4), np.float32) / 255
    hole = np.zeros((1000, 1400), bool)
    hole[300:700, 400:900] = True  # region larger than crop_size: downscaled
    blended = inpainter.fill(image, hole, blend="poisson")[0]
    pasted = inpainter.fill(image, hole, blend="none")[0]
    assert np.array_equal(blended[~hole], image[~hole])
    inner, outer = blended[300, 400:900], image[299, 400:900]  # first hole row against the row above
    seam_blended = np.abs(inner - outer).mean()
    seam_pasted = np.abs(pasted[300, 400:900] - outer).mean()
    assert seam_blended < seam_pasted


def test_an_all_hole_mask_is_refused(inpainter):
    image = photo(64, 64)
    with pytest.raises(InputError, match="whole image"):
        inpainter.inpaint(image, Image.new("L", (64, 64), 255))


def test_unknown_blend_is_refused(inpainter):
    with pytest.raises(InputError, match="blend"):
        inpainter.inpaint(photo(64, 64), rect_mask(64, 64, (10, 10, 30, 30)), blend="laplace")


def _scene():
    truth = torch.from_numpy(np.asarray(photo(96, 80), np.float32) / 255).permute(2, 0, 1)[None]
    mask = torch.zeros(1, 1, 80, 96)
    mask[..., 10:70, 20:80] = 1
    prediction = torch.rand(truth.shape, generator=torch.Generator().manual_seed(1))
    return truth * (1 - mask), mask, prediction


def test_calibrated_spans_membrane_to_poisson():
    """Weight 1 everywhere is Poisson blending, weight 0 the membrane fill (the prediction ignored);
    known pixels are the image's, bit for bit."""
    image, mask, prediction = _scene()
    hole = mask.expand_as(image) > 0
    full = composite(prediction, image, mask, "calibrated", DetailWeights((1.0,), (1.0,)))
    assert (full - composite(prediction, image, mask, "poisson"))[hole].abs().max() < 2.5e-3
    membrane = composite(prediction, image, mask, "calibrated", DetailWeights((1.0,), (0.0,)))
    assert torch.equal(membrane, composite(torch.zeros_like(prediction), image, mask, "poisson"))
    half = composite(prediction, image, mask, "calibrated", DetailWeights((1.0,), (0.5,)))
    assert (half - (full + membrane) / 2)[hole].abs().max() < 1e-5
    for out in (full, membrane, half):
        assert torch.equal(out[~hole], image[~hole])
    # Without a calibration, "calibrated" is Poisson blending.
    assert torch.equal(composite(prediction, image, mask, "calibrated"), composite(prediction, image, mask, "poisson"))


def test_detail_weight_follows_the_distance_in_network_pixels():
    """A step from weight 1 to 0 at 4 px keeps the prediction's detail near the known pixels only;
    at two network pixels per image pixel (distance_scale 2) the step comes at 2 image pixels."""
    image, mask, prediction = _scene()
    weights = DetailWeights((3.9, 4.0), (1.0, 0.0))
    poisson = composite(prediction, image, mask, "poisson")
    membrane = composite(torch.zeros_like(prediction), image, mask, "poisson")
    for distance_scale, last_kept in ((1.0, 12), (2.0, 10)):  # hole row 10 + k is k + 1 px deep
        out = composite(prediction, image, mask, "calibrated", weights, distance_scale=distance_scale)
        assert (out - poisson)[..., 10 : last_kept + 1, 30:70].abs().max() < 2.5e-3
        assert torch.equal(out[..., last_kept + 1 : 40, 30:70], membrane[..., last_kept + 1 : 40, 30:70])


def test_detail_weights_are_checked():
    assert DetailWeights.from_card({}) is None
    weights = DetailWeights.from_card({"detail_weights": {"distances": [2, 8], "weights": [0.5, 0.1]}})
    np.testing.assert_allclose(weights.at(np.array([1.0, 2.0, 4.0, 8.0, 100.0])), [0.5, 0.5, 0.3, 0.1, 0.1])
    for bad in ({"distances": [2, 8], "weights": [0.5]}, {"distances": [8, 2], "weights": [0.5, 0.1]},
                {"distances": [2], "weights": [1.5]}, {"weights": [0.5]}, {"distances": [2, 2], "weights": [0.5, 0.1]},
                {"distances": [2, float("inf")], "weights": [0.5, 0.1]}, {"distances": [2], "weights": [float("nan")]}):
        with pytest.raises(WeightsError, match="detail"):
            DetailWeights.from_card({"detail_weights": bad})


def test_the_bundled_model_is_calibrated(inpainter):
    """The default blend uses the bundled card's weights: its fill lies between the membrane fill
    and Poisson blending, and differs from both."""
    assert inpainter.blend == "calibrated" and inpainter.detail_weights is not None
    image = np.asarray(photo(160, 136, seed=2), np.float32) / 255
    hole = np.zeros((136, 160), bool)
    hole[30:100, 40:130] = True
    calibrated = inpainter.fill(image, hole)[0]
    poisson = inpainter.fill(image, hole, blend="poisson")[0]
    membrane = harmonic_fill(image, hole.astype(np.float32))
    assert np.array_equal(calibrated[~hole], image[~hole])
    assert np.abs(calibrated - poisson)[hole].mean() > 1e-3
    assert np.abs(calibrated - membrane)[hole].mean() > 1e-3
    # Every weight is below 1: the fill is nearer the membrane than Poisson's is, pixel by pixel.
    assert (np.abs(calibrated - membrane) <= np.abs(poisson - membrane) + 1e-3).all()


def test_a_batch_mixes_whole_image_holes_empty_masks_and_holes():
    """A sample without known pixels keeps the prediction, one without a hole is the image, and
    the others are blended each with its own distances."""
    image, mask, prediction = _scene()
    images, predictions = image.repeat(3, 1, 1, 1), prediction.repeat(3, 1, 1, 1)
    masks = torch.cat([torch.ones_like(mask), torch.zeros_like(mask), mask])
    weights = DetailWeights((1.0, 64.0), (0.8, 0.1))
    out = composite(predictions, images, masks, "calibrated", weights)
    assert torch.equal(out[0], prediction[0]) and torch.equal(out[1], image[0])
    assert torch.equal(out[2:], composite(prediction, image, mask, "calibrated", weights))


def test_downscaled_regions_count_distances_in_network_pixels(inpainter):
    """A region the network fills at a third of its size: a weight step at 4 network pixels falls
    about 12 image pixels into the hole, not 4."""
    from deepfill.inpainter import Inpainter

    image = np.asarray(photo(640, 640, seed=6), np.float32) / 255
    hole = np.zeros((640, 640), bool)
    hole[200:440, 200:440] = True  # its region (hole + 120 px margins) is 480 px: scaled by 128/480
    card = {"detail_weights": {"distances": [3.9, 4.0], "weights": [1.0, 0.0]}}
    stepped = Inpainter(inpainter.generator, card, device="cpu", max_size=256, crop_size=128).fill(image, hole)[0]
    card = {"detail_weights": {"distances": [1.0], "weights": [0.0]}}
    membrane = Inpainter(inpainter.generator, card, device="cpu", max_size=256, crop_size=128).fill(image, hole)[0]
    differs = np.abs(stepped - membrane).max(axis=2)[200:320, 320]  # down the middle column from the top edge
    depth = int(np.flatnonzero(differs > 1e-6)[-1]) + 1  # deepest row still holding some detail
    assert 12 <= depth <= 16
