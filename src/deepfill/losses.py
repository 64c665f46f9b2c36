"""Losses of DeepFill v1: spatially discounted L1, known-region L1, WGAN-GP with a masked penalty.

All images are in [-1, 1]; masks are [B, 1, H, W] with 1 = hole.
"""

from __future__ import annotations

import functools

import torch


@functools.lru_cache(maxsize=8)
def _discount(height: int, width: int, gamma: float) -> torch.Tensor:
    rows = torch.arange(height, dtype=torch.float64)
    cols = torch.arange(width, dtype=torch.float64)
    di = torch.minimum(rows, height - rows)  # as ``spatial_discounting_mask``: min(i, H - i)
    dj = torch.minimum(cols, width - cols)
    weight = torch.maximum(gamma ** di[:, None], gamma ** dj[None, :])
    return weight.float()[None, None]


def spatial_discount(height: int, width: int, gamma: float, device: torch.device | None = None) -> torch.Tensor:
    """Box-based discount weights [1, 1, H, W]: max(γ^min(i, H−i), γ^min(j, W−j)).

    Pixels near the box border (near known pixels) weigh ~1; the centre of the box weighs less,
    because its ground truth is the least determined by the context (paper §3.1).
    """
    return _discount(height, width, float(gamma)).to(device)


def discounted_l1(pred: torch.Tensor, target: torch.Tensor, gamma: float) -> torch.Tensor:
    """Mean |pred − target| weighted by :func:`spatial_discount` over the (local box) crop."""
    weight = spatial_discount(pred.shape[-2], pred.shape[-1], gamma, pred.device)
    return ((pred - target).abs() * weight).mean()


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
    interpolate_scores: torch.Tensor, interpolates: torch.Tensor, mask: torch.Tensor | None, weight: float = 10.0
) -> torch.Tensor:
    """λ · E[(‖∇D(x̂) ⊙ m‖₂ − 1)²] with the gradient masked to the hole (``gradients_penalty``).

    ``interpolate_scores`` = D(``interpolates``), computed by the caller (in one critic pass with
    the real and fake batch, which DDP needs); ``interpolates`` requires grad.
    """
    (grad,) = torch.autograd.grad(interpolate_scores.sum(), interpolates, create_graph=True)
    grad = grad.float()
    if mask is not None:
        grad = grad * mask
    slopes = grad.pow(2).flatten(1).sum(1).add(1e-12).sqrt()
    return weight * (slopes - 1.0).pow(2).mean()
