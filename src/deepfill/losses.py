"""Losses of DeepFill v1: spatially discounted L1, known-region L1, WGAN-GP with a masked penalty.

All images are in [-1, 1]; masks are [B, 1, H, W] with 1 = hole.
"""

from __future__ import annotations

import numpy as np
import torch
from scipy import ndimage


def spatial_discount(masks: torch.Tensor, gamma: float) -> torch.Tensor:
    """Per-pixel weights γ^l in the hole, l = distance to the nearest known pixel; 0 elsewhere.

    The paper's definition (§3.1): pixels near the hole border are well determined by the
    context and weigh ~1, the hole centre less. The released code approximates l by the
    distance to the border of the hole's bounding box, which fits only one rectangle; the
    distance transform weights free-form and multi-rectangle holes correctly too.
    Computed on the CPU (masks [B, 1, H, W], 1 = hole); returns float32 on the CPU.
    """
    holes = masks.detach().cpu().numpy() > 0.5
    weights = np.zeros(holes.shape, np.float32)
    for i, hole in enumerate(holes[:, 0]):
        if hole.any():
            weights[i, 0] = np.where(hole, gamma ** ndimage.distance_transform_edt(hole), 0.0)
    return torch.from_numpy(weights)


def discounted_l1(pred: torch.Tensor, target: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Σ |pred − target| · w over the image, divided by a quarter of its size.

    The quarter (the local box, 128 x 128 of 256 x 256) keeps the scale of the released code,
    which averaged the discounted error over that box.
    """
    return ((pred - target).abs() * weights).sum() / (pred.numel() / 4)


def known_region_l1(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """The "ae loss": mean |pred − target| over known pixels, normalized by mean(1 − m)."""
    known = 1.0 - mask
    return ((pred - target).abs() * known).mean() / known.mean().clamp_min(1e-8)


def wgan_critic_loss(real_scores: torch.Tensor, fake_scores: torch.Tensor) -> torch.Tensor:
    """D(fake) − D(real), averaged over the batch."""
    return fake_scores.mean() - real_scores.mean()


def wgan_generator_loss(fake_scores: torch.Tensor) -> torch.Tensor:
    return -fake_scores.mean()


def gradient_penalty(
    interpolate_scores: torch.Tensor,
    interpolates: torch.Tensor,
    mask: torch.Tensor | None,
    weight: float = 10.0,
    loss_scale: float = 1.0,
) -> torch.Tensor:
    """λ · E[(‖∇D(x̂) ⊙ m‖₂ − 1)²] with the gradient masked to the hole (``gradients_penalty``).

    ``interpolate_scores`` = D(``interpolates``), computed by the caller (in one critic pass with
    the real and fake batch, which DDP needs); ``interpolates`` requires grad. Under fp16 the
    gradient is taken of the scores times ``loss_scale`` (the GradScaler's scale) and divided
    back, so that small gradients do not underflow; an overflow gives inf, which the scaler skips.
    """
    (grad,) = torch.autograd.grad(interpolate_scores.sum() * loss_scale, interpolates, create_graph=True)
    grad = grad.float() / loss_scale
    if mask is not None:
        grad = grad * mask
    slopes = grad.pow(2).flatten(1).sum(1).add(1e-12).sqrt()
    return weight * (slopes - 1.0).pow(2).mean()
