"""The losses of DeepFill v1 on hand-made tensors whose values can be worked out by hand."""

import pytest
import torch

from deepfill import losses


def test_spatial_discount_follows_the_distance_to_known_pixels():
    masks = torch.zeros(2, 1, 9, 12)
    masks[0, :, 2:7, 2:7] = 1  # a 5 x 5 square: border pixels at distance 1, centre at 3
    masks[1, :, 4, 1:11] = 1  # a thin line: every pixel next to a known one
    w = losses.spatial_discount(masks, 0.9)
    assert w[0, 0, 2, 2] == pytest.approx(0.9) and w[0, 0, 4, 4] == pytest.approx(0.9**3)
    assert torch.all(w[masks == 0] == 0)
    assert torch.allclose(w[1, 0, 4, 1:11], torch.full((10,), 0.9))


def test_discounted_l1_weighs_each_error_by_its_discount():
    target = torch.zeros(1, 3, 4, 4)
    pred = target.clone()
    pred[0, :, 1, 1] = 0.5  # an error of 0.5 in 3 channels at one pixel
    pred[0, :, 3, 3] = 2.0  # a larger one where the weight is 0 (a known pixel)
    weights = torch.zeros(1, 1, 4, 4)
    weights[0, 0, 1, 1] = 0.8
    # Σ |err| · w = 3 · 0.5 · 0.8 = 1.2, over a quarter of the 48 values.
    assert losses.discounted_l1(pred, target, weights).item() == pytest.approx(1.2 / 12)
    assert losses.discounted_l1(target, target, weights).item() == 0


def test_known_region_l1_ignores_the_hole_and_is_a_mean_over_known_pixels():
    target = torch.zeros(1, 3, 4, 4)
    mask = torch.zeros(1, 1, 4, 4)
    mask[..., :2, :] = 1  # the top half is the hole
    pred = target.clone()
    pred[..., :2, :] = 5.0  # any error in the hole is not this loss's business
    assert losses.known_region_l1(pred, target, mask).item() == 0
    pred[..., 2:, :] = 0.25  # a uniform error of 0.25 on every known pixel
    assert losses.known_region_l1(pred, target, mask).item() == pytest.approx(0.25)


def test_wgan_terms_have_the_signs_of_the_paper():
    real, fake = torch.tensor([[2.0], [4.0]]), torch.tensor([[-1.0], [1.0]])
    # The critic minimises D(fake) − D(real): scoring real images higher lowers its loss.
    assert losses.wgan_critic_loss(real, fake).item() == pytest.approx(0.0 - 3.0)
    assert losses.wgan_critic_loss(real + 1, fake) < losses.wgan_critic_loss(real, fake)
    # The generator minimises −D(fake): fakes the critic scores higher lower its loss.
    assert losses.wgan_generator_loss(fake).item() == pytest.approx(0.0)
    assert losses.wgan_generator_loss(fake + 1) < losses.wgan_generator_loss(fake)


def test_gradient_penalty_ignores_gradients_outside_the_hole():
    weight = torch.randn(1, 3, 8, 8)
    critic = lambda x: (x * weight).flatten(1).sum(1, keepdim=True)  # noqa: E731  ∇D = weight
    mask = torch.zeros(2, 1, 8, 8)
    mask[:, :, 2:5, 3:7] = 1
    x = torch.randn(2, 3, 8, 8, requires_grad=True)
    gp = losses.gradient_penalty(critic(x), x, mask, weight=10.0)
    expected = 10.0 * ((weight * mask[:1]).norm() - 1) ** 2
    assert torch.allclose(gp, expected, rtol=1e-5)
    # Changing the critic outside the hole does not change the penalty.
    weight2 = weight + (1 - mask[:1]) * 100
    critic2 = lambda x: (x * weight2).flatten(1).sum(1, keepdim=True)  # noqa: E731
    assert torch.allclose(losses.gradient_penalty(critic2(x), x, mask), gp, rtol=1e-5)


def test_gradient_penalty_is_zero_for_a_unit_gradient():
    weight = torch.zeros(1, 3, 4, 4)
    weight[0, 0, 0, 0] = 1.0  # ‖∇D‖ = 1 everywhere
    x = torch.randn(3, 3, 4, 4, requires_grad=True)
    scores = (x * weight).flatten(1).sum(1, keepdim=True)
    assert losses.gradient_penalty(scores, x, None).item() == pytest.approx(0.0, abs=1e-6)
    scores = (x * 3 * weight).flatten(1).sum(1, keepdim=True)  # ‖∇D‖ = 3: λ (3 − 1)² = 40
    assert losses.gradient_penalty(scores, x, None).item() == pytest.approx(40.0)


def test_gradient_penalty_under_a_loss_scale_is_the_same_penalty():
    weight = torch.randn(1, 3, 8, 8)
    x = torch.randn(2, 3, 8, 8, requires_grad=True)
    scores = (x * weight).flatten(1).sum(1, keepdim=True)
    plain = losses.gradient_penalty(scores, x, None)
    assert torch.allclose(losses.gradient_penalty(scores, x, None, loss_scale=65536.0), plain, rtol=1e-6)
