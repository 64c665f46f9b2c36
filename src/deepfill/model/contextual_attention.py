"""Contextual attention (Yu et al. 2018, §3.2; ``contextual_attention`` in the released v1 code).

Every foreground position is matched against every 3x3 background patch by a normalized inner
product; neighbouring scores are propagated (fuse); patches that touch the hole are excluded;
a scaled softmax gives attention weights, and the output is pasted back from the raw
full-resolution 4x4 background patches by a transposed convolution.

:func:`contextual_attention` is the algorithm as docs/design.md §1 states it, step by step; it is
the training path. :func:`contextual_attention_fast` computes the same values for inference:
in bands of foreground rows (bounded memory), with the GEMMs restricted to the background
patches that can matter, and from a region of foreground positions only (hole-only inference,
:mod:`deepfill.model.region`). :class:`ContextualAttention` picks one of the two.

Matching and paste-back are written as two batched GEMMs over unfolded patches, which is both
the fast formulation and the one that handles a batch with a different mask per sample.

Deliberate differences from the released TF code (both are documented quirks there):
  * the valid-patch indicator is computed per sample, not from batch element 0 only;
  * propagation sums over a true 2-D neighbourhood with zeros outside the map, instead of
    over a flattened index that wraps around at row ends.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from deepfill.geometry import Box


def contextual_attention(
    f: torch.Tensor,
    b: torch.Tensor,
    mask: torch.Tensor | None = None,
    *,
    ksize: int = 3,
    rate: int = 2,
    fuse_k: int = 3,
    softmax_scale: float = 10.0,
    fuse: bool = True,
    return_flow: bool = False,
    align_corners: bool = False,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Fill ``f`` with patches of ``b``: the plain algorithm, docs/design.md §1 steps 1-8.

    Args:
        f: foreground features [B, C, H, W]; b: background features [B, C, H, W].
        mask: [B, 1, H, W], 1 = hole, at the feature resolution; background patches that touch
            the hole are never attended to. ``None`` means no hole.
        align_corners: downscale as TF's ``align_corners=True`` nearest (see :func:`downscale_nearest`).
    Returns:
        y: [B, C, H, W]. flow: [B, 2, H/rate, W/rate] integer (dy, dx) offset from each
        downscaled foreground position to the background patch it attends to most, or None.
    """
    batch, _, height, width = _check_inputs(f, b, mask, rate)
    hd, wd = height // rate, width // rate
    # 1. Raw (2*rate)x(2*rate) background patches at stride rate, one row per position: the
    # paste-back filters.
    raw = _patch_rows(b, 2 * rate, rate, rate // 2)  # [B, L, (2*rate)^2*C]
    # 2. Downscale by nearest neighbour; matching patches are ksize x ksize, stride 1, zero padding.
    background = _patch_rows(downscale_nearest(b, (hd, wd), align_corners), ksize, 1, ksize // 2)  # [B, L, k*k*C]
    foreground = background if f is b else _patch_rows(downscale_nearest(f, (hd, wd), align_corners), ksize, 1, ksize // 2)
    # 3. Valid background patches: the whole ksize x ksize mask patch is known.
    valid = _valid_patches(mask, b, (hd, wd), ksize, align_corners)[:, None]  # [B, 1, L]
    # 4. Score every (foreground position, background patch) pair against the unit-length patch.
    w = background / background.norm(dim=-1, keepdim=True).clamp_min(1e-4)
    scores = torch.bmm(foreground, w.transpose(1, 2)).float()  # [B, L foreground, L background]
    # 5. Propagation: add the scores of the co-shifted neighbouring pairs.
    if fuse:
        scores = _propagate(scores.view(batch, hd, wd, hd, wd), fuse_k).reshape(batch, hd * wd, hd * wd)
    # 6. Invalid patches score 0 (they still count in the softmax's normalization, as released);
    # softmax over background patches with scale λ; invalid patches then weigh 0.
    attention = torch.softmax(scores * (valid * softmax_scale), dim=-1) * valid
    # 7. Paste back: each position's weighted sum of raw patches, overlap-added at stride rate;
    # each pixel is covered by 2x2 patches.
    pasted = torch.bmm(attention.to(raw.dtype), raw)  # [B, L, (2*rate)^2*C]
    y = _overlap_add(pasted.view(batch, hd, wd, -1), (0, 0), (height, width), rate) / 4.0
    # 8. Flow: the offset to the most attended patch.
    flow = _offsets(attention.argmax(-1).view(batch, hd, wd)) if return_flow else None
    return y, flow


class ContextualAttention(nn.Module):
    """Self-attention of a feature map (background = foreground), docs/design.md §1.

    Under autograd (training) it runs the plain :func:`contextual_attention`; otherwise, or from
    a ``region``, :func:`contextual_attention_fast`, which gives the same values in bounded memory.
    """

    def __init__(
        self, ksize: int = 3, rate: int = 2, fuse_k: int = 3, softmax_scale: float = 10.0, fuse: bool = True,
        align_corners: bool = False,
    ) -> None:
        super().__init__()
        self.ksize, self.rate, self.fuse_k = ksize, rate, fuse_k
        self.softmax_scale, self.fuse, self.align_corners = softmax_scale, fuse, align_corners

    def forward(
        self,
        x: torch.Tensor,
        mask: torch.Tensor | None,
        return_flow: bool = False,
        region: Box | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        settings = dict(ksize=self.ksize, rate=self.rate, fuse_k=self.fuse_k, softmax_scale=self.softmax_scale,
                        fuse=self.fuse, return_flow=return_flow, align_corners=self.align_corners)
        if region is None and x.requires_grad:
            return contextual_attention(x, x, mask, **settings)
        return contextual_attention_fast(x, x, mask, region=region, **settings)


# The steps' building blocks, shared by both versions.


def _check_inputs(f: torch.Tensor, b: torch.Tensor, mask: torch.Tensor | None, rate: int) -> tuple[int, ...]:
    """[B, C, H, W] of ``b``, after checking that the shapes and the rate fit together."""
    if f.dim() != 4 or b.shape != f.shape:
        raise ValueError(f"f and b must be [B, C, H, W] of one shape, got {tuple(f.shape)} and {tuple(b.shape)}")
    batch, channels, height, width = b.shape
    if rate < 2 or rate % 2 or height % rate or width % rate:
        raise ValueError(f"rate must be even and divide the feature size, got rate {rate} for {height}x{width}")
    if mask is not None and mask.shape != (batch, 1, height, width):
        raise ValueError(f"mask must be {(batch, 1, height, width)}, got {tuple(mask.shape)}")
    return batch, channels, height, width


def downscale_nearest(x: torch.Tensor, size: tuple[int, int], align_corners: bool = False) -> torch.Tensor:
    """Nearest-neighbour resize of [B, C, H, W] to ``size``.

    ``align_corners=False`` samples index floor(i * in / out) (every k-th pixel for a factor k);
    ``True`` samples round(i * (in - 1) / (out - 1)), as TF's ``resize_nearest_neighbor`` with
    ``align_corners=True`` in the released DeepFill code.
    """
    if not align_corners:
        return F.interpolate(x, size=size, mode="nearest")
    indices = []
    for n_in, n_out in zip(x.shape[-2:], size):
        scale = (n_in - 1) / (n_out - 1) if n_out > 1 else 0.0
        positions = torch.arange(n_out, dtype=torch.float64) * scale
        # std::round (half away from zero) on non-negative values, clamped like TF.
        indices.append(torch.floor(positions + 0.5).long().clamp_max(n_in - 1).to(x.device))
    return x.index_select(-2, indices[0]).index_select(-1, indices[1])


def _patch_rows(x: torch.Tensor, k: int, stride: int, pad: int) -> torch.Tensor:
    """The k x k patches of ``x`` [B, C, H, W], zero-padded by ``pad``, as rows [B, L, k*k*C].

    Within a row the values are ordered (ky, kx, channel): on a channels-last map (as the
    generator's are) that copies runs of C contiguous values, ~10x faster than channel-major.
    """
    batch, channels = x.shape[:2]
    patches = F.pad(x, (pad,) * 4).unfold(2, k, stride).unfold(3, k, stride)  # [B, C, Lh, Lw, k, k]
    return patches.permute(0, 2, 3, 4, 5, 1).reshape(batch, -1, k * k * channels)


def _valid_patches(
    mask: torch.Tensor | None, like: torch.Tensor, size: tuple[int, int], ksize: int, align_corners: bool
) -> torch.Tensor:
    """Step 3: float [B, L], 1 where the ksize x ksize patch of the mask downscaled to ``size``
    is all known (zero padding counts as known)."""
    if mask is None:
        return like.new_ones(like.shape[0], size[0] * size[1], dtype=torch.float32)
    md = downscale_nearest(mask.float(), size, align_corners)
    return (F.unfold(md, ksize, padding=ksize // 2).sum(1) == 0).float()


def _propagate(
    scores: torch.Tensor, fuse_k: int, rows: tuple[int, int] | None = None, cols: tuple[int, int] | None = None
) -> torch.Tensor:
    """ŝ(y,x,y',x') = Σ_{i,j} s(y+i, x+j, y'+i, x'+j) over a fuse_k x fuse_k window.

    ``scores`` is [B, Hf, Wf, Hb, Wb]; the sum is separable into a vertical and a horizontal
    pass of co-shifted pairs (the released code's two identity-kernel convolutions). The result
    holds the foreground rows ``rows`` and columns ``cols`` only ((start, stop); default all).
    """
    radius = fuse_k // 2
    for f_dim, b_dim, keep in ((1, 3, rows), (2, 4, cols)):
        n_f, n_b = scores.shape[f_dim], scores.shape[b_dim]
        start, stop = keep if keep is not None else (0, n_f)
        out = scores.narrow(f_dim, start, stop - start).clone()
        for d in range(1, min(radius + 1, n_b)):
            end = min(stop, n_f - d)  # out[i] += s[i + d] (background shifted by +d)
            if end > start:
                out.narrow(f_dim, 0, end - start).narrow(b_dim, 0, n_b - d).add_(
                    scores.narrow(f_dim, start + d, end - start).narrow(b_dim, d, n_b - d))
            begin = max(start, d)  # out[i] += s[i - d]
            if stop > begin:
                out.narrow(f_dim, begin - start, stop - begin).narrow(b_dim, d, n_b - d).add_(
                    scores.narrow(f_dim, begin - d, stop - begin).narrow(b_dim, 0, n_b - d))
        scores = out
    return scores


def _overlap_add(pasted: torch.Tensor, origin: tuple[int, int], size: tuple[int, int], rate: int) -> torch.Tensor:
    """Overlap-add the (2*rate)^2 patches of a block of positions into a zero [B, C, *size] map.

    ``pasted`` is [B, n, m, (2*rate)^2*C] in :func:`_patch_rows` order, for positions
    origin..origin+(n, m) at stride ``rate``; position (i, j) covers pixels from
    (i*rate - rate/2, j*rate - rate/2), clipped to the map. The result is channels-last in memory.

    With r = rate, pixel (r*I + a, r*J + b) of the block (0 <= a, b < r) sums the patch values at
    (a + r*dy, b + r*dx) of positions (I - dy, J - dx), dy, dx in {0, 1}: each of the r*r output
    phases is four shifted taps, interleaved by stacking. No in-place writes, so autograd's
    backward is slicing, not the zero-filled copies that slice assignments cost (6x faster
    forward and backward in training than 16 strided in-place adds).
    """
    batch, n, m, depth = pasted.shape
    kraw = 2 * rate
    channels = depth // (kraw * kraw)
    taps = [row.unbind(3) for row in pasted.view(batch, n, m, kraw, kraw, channels).unbind(3)]  # [ky][kx]

    def shifted(ky: int, kx: int, dy: int, dx: int) -> torch.Tensor:  # [B, n+1, m+1, C]
        return F.pad(taps[ky][kx], (0, 0, dx, 1 - dx, dy, 1 - dy))

    phases = [
        torch.stack([shifted(a, b, 0, 0) + shifted(a, b + rate, 0, 1) + shifted(a + rate, b, 1, 0)
                     + shifted(a + rate, b + rate, 1, 1) for b in range(rate)], dim=3)
        for a in range(rate)
    ]  # each [B, n+1, m+1, rate, C]
    block = torch.stack(phases, dim=2).reshape(batch, (n + 1) * rate, (m + 1) * rate, channels)
    # Into the map: pad to its size, or crop (negative padding) where the block sticks out.
    top, left = origin[0] * rate - rate // 2, origin[1] * rate - rate // 2
    bottom, right = size[0] - top - block.shape[1], size[1] - left - block.shape[2]
    return F.pad(block, (0, 0, left, right, top, bottom)).permute(0, 3, 1, 2)


def _offsets(index: torch.Tensor) -> torch.Tensor:
    """Step 8: the flat patch index [B, Hd, Wd] chosen at each position as (dy, dx) offsets [B, 2, Hd, Wd]."""
    hd, wd = index.shape[-2:]
    ys = torch.arange(hd, device=index.device).view(1, hd, 1)
    xs = torch.arange(wd, device=index.device).view(1, 1, wd)
    return torch.stack([index // wd - ys, index % wd - xs], dim=1)


# The optimised version: the same values, for inference.

# Upper bound on the elements of one chunk of the score matrix (fp32: 128 MiB). Larger inputs
# are processed a band of foreground rows at a time, so 1024 x 1024 fits in bounded memory.
MAX_CHUNK_ELEMENTS = 2**25

# Match against / paste back from a subset of the background patches only when it is at most
# this fraction of all (the gather and scatter around the GEMM cost more than a few columns).
SUBSET_FRACTION = 0.9


def contextual_attention_fast(
    f: torch.Tensor,
    b: torch.Tensor,
    mask: torch.Tensor | None = None,
    *,
    ksize: int = 3,
    rate: int = 2,
    fuse_k: int = 3,
    softmax_scale: float = 10.0,
    fuse: bool = True,
    return_flow: bool = False,
    region: Box | None = None,
    align_corners: bool = False,
    max_chunk_elements: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """:func:`contextual_attention` in bands of foreground rows, with the GEMMs restricted to
    the background patches that can matter, optionally from a ``region`` only.

    Args (beyond :func:`contextual_attention`'s):
        region: the box of downscaled (H/rate, W/rate) foreground positions to attend from. The
            output outside what those positions paste back to is zero and the flow there is 0.
            ``None`` means everywhere.
        max_chunk_elements: bound on one band of the score matrix (default ``MAX_CHUNK_ELEMENTS``).
    """
    batch, _, height, width = _check_inputs(f, b, mask, rate)

    # 1. Raw (2*rate)x(2*rate) background patches with stride rate, one row per position: the
    # paste-back matrix.
    kraw = 2 * rate
    raw = _patch_rows(b, kraw, rate, rate // 2)  # [B, Lb, C*kraw*kraw]

    # 2. Downscale by nearest neighbour.
    hd, wd = height // rate, width // rate
    bd = downscale_nearest(b, (hd, wd), align_corners)
    locations = hd * wd
    pad = ksize // 2
    top, left, bottom, right = region if region is not None else (0, 0, hd, wd)
    top, left, bottom, right = max(0, top), max(0, left), min(hd, bottom), min(wd, right)

    # 3. Valid background patches: the whole ksize x ksize mask patch is known.
    valid = _valid_patches(mask, b, (hd, wd), ksize, align_corners)  # [B, Lb]

    # 4. Matching filters: background patches, each normalized to unit length; the foreground
    # patches are the same rows when f is b (self-attention, as in the generator).
    patches = _patch_rows(bd, ksize, 1, pad)  # [B, Lb, C*k*k]
    w = patches / patches.norm(dim=-1, keepdim=True).clamp_min(1e-4)
    if f is not b:
        patches = _patch_rows(downscale_nearest(f, (hd, wd), align_corners), ksize, 1, pad)
    fg = patches.view(batch, hd, wd, -1)  # [B, Hf, Wf, C*k*k]

    # Patches invalid in every sample get attention weight 0 everywhere: leave them out of the
    # paste-back GEMM when that makes it notably smaller (a large hole).
    valid_anywhere = valid.amax(0)  # [Lb]: valid in some sample
    attendable = torch.nonzero(valid_anywhere > 0).squeeze(1)
    if attendable.numel() > SUBSET_FRACTION * locations:
        attendable = None
    else:
        raw = raw[:, attendable]
    kept_valid = valid if attendable is None else valid[:, attendable]
    attendable_runs = None if attendable is None else _runs(attendable)
    paste_mask = None if bool(kept_valid.all()) else kept_valid[:, None]  # None: all kept are valid (one sample)

    radius = fuse_k // 2 if fuse else 0
    # Likewise the matching GEMM: a patch's raw score matters only where propagation carries it
    # to a valid patch (within the fuse radius); deep inside a large hole it is never read.
    matched = _within(valid_anywhere.view(1, 1, hd, wd), radius)
    if matched.numel() > SUBSET_FRACTION * locations:
        matched = None
    else:
        w, matched_runs = w[:, matched], _runs(matched)
    if top >= bottom or left >= right:
        bottom, right = top, left  # an empty region: nothing attends, the output is zero
    c0, c1 = max(0, left - radius), min(wd, right + radius)  # columns plus the fuse halo
    chunk_elements = max_chunk_elements or MAX_CHUNK_ELEMENTS
    rows_per_chunk = max(1, chunk_elements // (batch * max(1, c1 - c0) * locations) - 2 * radius)
    pasted = raw.new_zeros(batch, bottom - top, right - left, raw.shape[-1])  # per region position
    flow_index = None
    if return_flow:
        here = torch.arange(locations, device=f.device).view(1, hd, wd)
        flow_index = here.expand(batch, hd, wd).clone()  # positions outside the region: no offset

    for r0 in range(top, bottom, rows_per_chunk):
        r1 = min(bottom, r0 + rows_per_chunk)
        h0, h1 = max(0, r0 - radius), min(hd, r1 + radius)  # rows plus the fuse halo
        # 4-5. Scores of the band's positions (and its halo's) and their propagation.
        queries = fg[:, h0:h1, c0:c1].reshape(batch, -1, fg.shape[-1])
        scores = torch.bmm(queries, w.transpose(1, 2)).float()  # [B, rows*cols, Lb or matched]
        if matched is not None:
            scores = _place_columns(scores, matched_runs, locations)
        keep_rows, keep_cols = (r0 - h0, r1 - h0), (left - c0, right - c0)
        if fuse:
            scores = _propagate(scores.view(batch, h1 - h0, c1 - c0, hd, wd), fuse_k, keep_rows, keep_cols)
        else:
            scores = scores.view(batch, h1 - h0, c1 - c0, locations)[:, slice(*keep_rows), slice(*keep_cols)]
        scores = scores.reshape(batch, -1, locations)
        # 5-6. Exclude invalid patches (score 0, as released: they still count in the softmax's
        # normalization), softmax over background patches, exclude them again.
        attention = torch.softmax(scores * (valid[:, None] * softmax_scale), dim=-1)
        if flow_index is not None:
            best = (attention * valid[:, None]).argmax(-1)
            flow_index[:, r0:r1, left:right] = best.view(batch, r1 - r0, right - left)
        # 7. Paste back: each foreground position is a weighted sum of raw patches.
        weights = attention if attendable is None else _take_columns(attention, attendable_runs)
        if paste_mask is not None:
            weights = weights * paste_mask
        rows = torch.bmm(weights.to(raw.dtype), raw)  # [B, rows*cols, kraw*kraw*C]
        pasted[:, r0 - top : r1 - top] = rows.view(batch, r1 - r0, right - left, -1)

    y = _overlap_add(pasted, (top, left), (height, width), rate) / 4.0
    return y, (_offsets(flow_index) if flow_index is not None else None)


def _runs(index: torch.Tensor) -> list[tuple[int, int]]:
    """Sorted distinct indices as (start, stop) ranges of consecutive values.

    Patch subsets are rows of the patch grid cut by a hole: a few dozen runs, which copy 2-4x
    faster as slices than an indexed gather or scatter along the last dimension.
    """
    if index.numel() == 0:
        return []
    cuts = (torch.nonzero(index[1:] - index[:-1] != 1).squeeze(1) + 1).tolist()
    bounds, values = [0, *cuts, index.numel()], index.tolist()
    return [(values[a], values[b - 1] + 1) for a, b in zip(bounds[:-1], bounds[1:])]


def _take_columns(x: torch.Tensor, runs: list[tuple[int, int]]) -> torch.Tensor:
    """``x[..., index]`` for the index given as :func:`_runs`."""
    return torch.cat([x[..., start:stop] for start, stop in runs], dim=-1) if runs else x[..., :0]


def _place_columns(x: torch.Tensor, runs: list[tuple[int, int]], width: int) -> torch.Tensor:
    """Zeros [..., width] holding the columns of ``x`` at the index given as :func:`_runs`."""
    zeros = x.new_zeros(()).expand(*x.shape[:-1], width)
    pieces, taken, end = [], 0, 0
    for start, stop in runs:
        pieces += [zeros[..., : start - end], x[..., taken : taken + stop - start]]
        taken, end = taken + stop - start, stop
    return torch.cat(pieces + [zeros[..., : width - end]], dim=-1)


def _within(grid: torch.Tensor, radius: int) -> torch.Tensor:
    """Flat indices of the cells of ``grid`` [1, 1, H, W] within ``radius`` (Chebyshev) of a nonzero one."""
    if radius:
        grid = F.max_pool2d(grid, 2 * radius + 1, stride=1, padding=radius)
    return torch.nonzero(grid.flatten() > 0).squeeze(1)


def _color_wheel() -> torch.Tensor:
    """The Middlebury optical-flow colour wheel: 55 hues, red→yellow→green→cyan→blue→magenta."""
    segments = [(15, (255, 0, 0), (255, 255, 0)), (6, (255, 255, 0), (0, 255, 0)),
                (4, (0, 255, 0), (0, 255, 255)), (11, (0, 255, 255), (0, 0, 255)),
                (13, (0, 0, 255), (255, 0, 255)), (6, (255, 0, 255), (255, 0, 0))]
    colors = []
    for n, start, end in segments:
        t = torch.arange(n, dtype=torch.float32).unsqueeze(1) / n
        colors.append(torch.tensor(start, dtype=torch.float32) * (1 - t) + torch.tensor(end, dtype=torch.float32) * t)
    return torch.cat(colors) / 255.0  # [55, 3]


def flow_to_image(flow: torch.Tensor) -> torch.Tensor:
    """Colour-code a flow [B, 2, H, W] (dy, dx): hue = direction, saturation = length.

    Zero offsets are white. Lengths are normalized by the largest in each image.
    Returns float [B, 3, H, W] in [0, 1].
    """
    flow = flow.float()
    dy, dx = flow[:, 0], flow[:, 1]
    radius = torch.sqrt(dx**2 + dy**2)
    max_radius = radius.flatten(1).amax(1).clamp_min(1e-6).view(-1, 1, 1)
    radius = radius / max_radius
    wheel = _color_wheel().to(flow.device)
    n = wheel.shape[0]
    angle = torch.atan2(-dy, -dx) / math.pi  # [-1, 1]
    position = (angle + 1) / 2 * (n - 1)
    k0 = position.floor().long().clamp(0, n - 1)
    k1 = (k0 + 1) % n
    frac = (position - k0.float()).unsqueeze(-1)
    color = wheel[k0] * (1 - frac) + wheel[k1] * frac  # [B, H, W, 3]
    saturation = radius.clamp(max=1).unsqueeze(-1)
    color = 1 - saturation * (1 - color)
    return color.permute(0, 3, 1, 2).contiguous()
