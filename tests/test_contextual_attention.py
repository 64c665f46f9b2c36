"""Contextual attention against a deliberately slow reference with explicit loops, and the
optimised version against the plain one."""

import itertools

import pytest
import torch

from deepfill.geometry import Box
from deepfill.model.contextual_attention import contextual_attention, contextual_attention_fast, flow_to_image

BOTH = pytest.mark.parametrize("attend", [contextual_attention, contextual_attention_fast], ids=["plain", "fast"])


def _patch(t: torch.Tensor, y: int, x: int, k: int) -> torch.Tensor:
    """The k x k patch of t [C, H, W] centred at (y, x), zero outside the map."""
    c, h, w = t.shape
    out = t.new_zeros(c, k, k)
    r = k // 2
    for i, j in itertools.product(range(k), range(k)):
        yy, xx = y + i - r, x + j - r
        if 0 <= yy < h and 0 <= xx < w:
            out[:, i, j] = t[:, yy, xx]
    return out


def reference(f, b, mask, ksize=3, rate=2, fuse_k=3, scale=10.0, fuse=True):
    batch, channels, height, width = f.shape
    out = torch.zeros_like(f)
    flows = []
    for n in range(batch):
        fd, bd = f[n, :, ::rate, ::rate], b[n, :, ::rate, ::rate]
        md = mask[n, :, ::rate, ::rate] if mask is not None else torch.zeros(1, *fd.shape[1:], dtype=f.dtype)
        hd, wd = fd.shape[1:]
        positions = list(itertools.product(range(hd), range(wd)))
        scores = torch.zeros(hd, wd, hd, wd, dtype=f.dtype)
        for (y, x), (yb, xb) in itertools.product(positions, positions):
            w = _patch(bd, yb, xb, ksize)
            scores[y, x, yb, xb] = (_patch(fd, y, x, ksize) * w).sum() / max(w.norm().item(), 1e-4)
        if fuse:
            fused = torch.zeros_like(scores)
            r = fuse_k // 2
            for (y, x), (yb, xb) in itertools.product(positions, positions):
                for i, j in itertools.product(range(-r, r + 1), range(-r, r + 1)):
                    if 0 <= y + i < hd and 0 <= x + j < wd and 0 <= yb + i < hd and 0 <= xb + j < wd:
                        fused[y, x, yb, xb] += scores[y + i, x + j, yb + i, xb + j]
            scores = fused
        valid = torch.zeros(hd, wd, dtype=f.dtype)
        for yb, xb in positions:
            valid[yb, xb] = float(_patch(md, yb, xb, ksize).sum() == 0)
        flow = torch.zeros(2, hd, wd, dtype=torch.long)
        for y, x in positions:
            s = (scores[y, x] * valid).flatten()
            attention = torch.softmax(s * scale, 0) * valid.flatten()
            flow[:, y, x] = torch.tensor([attention.argmax() // wd - y, attention.argmax() % wd - x])
            for idx, (yb, xb) in enumerate(positions):
                # Raw (2*rate)^2 patch of b around (rate*yb, rate*xb), pasted around (rate*y, rate*x).
                for i, j in itertools.product(range(2 * rate), range(2 * rate)):
                    sy, sx = rate * yb + i - rate // 2, rate * xb + j - rate // 2
                    ty, tx = rate * y + i - rate // 2, rate * x + j - rate // 2
                    if 0 <= sy < height and 0 <= sx < width and 0 <= ty < height and 0 <= tx < width:
                        out[n, :, ty, tx] += attention[idx] * b[n, :, sy, sx]
        flows.append(flow)
    return out / 4.0, torch.stack(flows)


def _inputs(seed, batch=2, channels=3, size=(8, 10), dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    f = torch.randn(batch, channels, *size, generator=g, dtype=dtype)
    b = torch.randn(batch, channels, *size, generator=g, dtype=dtype)
    mask = torch.zeros(batch, 1, *size, dtype=dtype)
    mask[0, :, 2:6, 2:5] = 1  # a different hole per sample
    if batch > 1:
        mask[1, :, 4:8, 6:10] = 1
    return f, b, mask


@pytest.mark.parametrize("fuse", [True, False])
@pytest.mark.parametrize("with_hole", [True, False])
@pytest.mark.parametrize("attend, subset", [(contextual_attention, None),
                                            # match / paste back with a subset of patches: never, always
                                            (contextual_attention_fast, 0.0), (contextual_attention_fast, 1.0)],
                         ids=["plain", "fast", "fast-subsets"])
@pytest.mark.parametrize("batch", [1, 2])
def test_matches_slow_reference(fuse, with_hole, attend, subset, batch, monkeypatch):
    if subset is not None:
        monkeypatch.setattr("deepfill.model.contextual_attention.SUBSET_FRACTION", subset)
    f, b, mask = _inputs(0, batch=batch)
    mask = mask if with_hole else None
    y, flow = attend(f, b, mask, fuse=fuse, return_flow=True)
    y_ref, flow_ref = reference(f.double(), b.double(), mask.double() if mask is not None else None, fuse=fuse)
    assert y.shape == f.shape
    assert torch.allclose(y.double(), y_ref, atol=1e-5), (y.double() - y_ref).abs().max()
    assert torch.equal(flow, flow_ref)


def _pasted_only_from(start: int, stop: int, n: int, rate: int) -> slice:
    """The pixels that only positions start..stop (of n, at stride ``rate``) paste onto: position
    p covers pixels rate * p - rate / 2 to rate * p + 3 * rate / 2 (exclusive), clipped to the map."""
    if stop <= start:
        return slice(0, 0)
    return slice(rate * start + rate // 2 if start > 0 else 0, rate * stop - rate // 2 if stop < n else rate * n)


@pytest.mark.parametrize("seed", range(24))
def test_fast_version_equals_the_plain_one(seed, monkeypatch):
    """Random sizes, rates, patch and fuse sizes, per-sample holes (none, small, most or all of the
    map), self- or cross-attention, patch subsets, bands and regions: the optimised version gives
    the plain one's output (float64, to 1e-10) and flow wherever its region alone pastes, and a
    zero flow outside the region."""
    g = torch.Generator().manual_seed(seed)
    pick = lambda options: options[int(torch.randint(len(options), (), generator=g))]  # noqa: E731
    number = lambda low, high: int(torch.randint(low, high, (), generator=g))  # noqa: E731
    rate, batch, channels = pick([2, 4]), pick([1, 2, 3]), pick([1, 3, 4])
    hd, wd = number(3, 10), number(3, 10)
    f = torch.randn(batch, channels, rate * hd, rate * wd, generator=g, dtype=torch.float64)
    b = f if pick([True, False]) else torch.randn(f.shape, generator=g, dtype=torch.float64)
    mask = torch.zeros(batch, 1, rate * hd, rate * wd, dtype=torch.float64)
    for sample in range(batch):
        kind = pick(["none", "small", "large", "all"])
        if kind == "all":
            mask[sample] = 1
        elif kind != "none":
            side = 3 if kind == "small" else rate * min(hd, wd) - 2
            top, left = number(0, rate * hd - side + 1), number(0, rate * wd - side + 1)
            mask[sample, :, top : top + side, left : left + side] = 1
    monkeypatch.setattr("deepfill.model.contextual_attention.SUBSET_FRACTION", pick([0.0, 0.9, 1.0]))
    settings = dict(ksize=pick([1, 3, 5]), rate=rate, fuse_k=pick([3, 5]), fuse=pick([True, False]),
                    softmax_scale=10.0, return_flow=True, align_corners=pick([False, True]))
    mask = pick([mask, mask, None])
    region = pick([None, Box(number(-2, hd), number(-2, wd), number(0, hd + 3), number(0, wd + 3))])

    plain, plain_flow = contextual_attention(f, b, mask, **settings)
    fast, fast_flow = contextual_attention_fast(f, b, mask, region=region, max_chunk_elements=pick([None, 1, 500]),
                                                **settings)
    top, left, bottom, right = region or Box(0, 0, hd, wd)
    top, left, bottom, right = max(0, top), max(0, left), min(hd, bottom), min(wd, right)
    rows, cols = _pasted_only_from(top, bottom, hd, rate), _pasted_only_from(left, right, wd, rate)
    assert torch.allclose(fast[..., rows, cols], plain[..., rows, cols], rtol=0, atol=1e-10)
    assert torch.equal(fast_flow[..., top:bottom, left:right], plain_flow[..., top:bottom, left:right])
    outside = torch.ones(hd, wd, dtype=torch.bool)
    outside[top:bottom, left:right] = False
    assert not fast_flow[..., outside].any()


def test_a_large_hole_leaves_its_inner_patches_out_of_both_gemms(monkeypatch):
    """Guards the test above: the GEMMs' background side really shrinks (fuse radius kept)."""
    shapes = []
    original = torch.bmm
    monkeypatch.setattr(torch, "bmm", lambda a, b: shapes.append(b.shape) or original(a, b))
    f, _, _ = _inputs(5, batch=1, channels=2, size=(32, 32))
    mask = torch.zeros(1, 1, 32, 32)
    mask[..., 4:28, 4:28] = 1  # 12 x 12 positions at rate 2; patches touching it: 14 x 14
    contextual_attention_fast(f, f, mask)
    matching, paste = shapes  # [B, C*3*3, patches], [B, patches, C*4*4]
    assert matching[-1] == 16 * 16 - 12 * 12  # not matched: farther than the fuse radius from a valid patch
    assert paste[-2] == 16 * 16 - 14 * 14  # not pasted: every invalid patch


def test_chunked_equals_unchunked():
    f, b, mask = _inputs(1, size=(16, 12))
    whole, flow_whole = contextual_attention_fast(f, b, mask, return_flow=True)
    chunked, flow_chunked = contextual_attention_fast(f, b, mask, return_flow=True, max_chunk_elements=1)
    assert torch.allclose(whole, chunked, atol=1e-6)
    assert torch.equal(flow_whole, flow_chunked)


@BOTH
def test_self_attention_shortcut_equals_separate_inputs(attend):
    """With f is b the foreground patches are reused from the background's: same result."""
    f, _, mask = _inputs(4, size=(12, 16))
    shared, flow_shared = attend(f, f, mask, return_flow=True)
    separate, flow_separate = attend(f, f.clone(), mask, return_flow=True)
    assert torch.equal(shared, separate)
    assert torch.equal(flow_shared, flow_separate)


@BOTH
def test_hole_patches_never_attended(attend):
    f, b, mask = _inputs(2, batch=1, size=(12, 12))
    # Make the hole content huge: if any attention reached it, the output would explode.
    b = b + mask * 1e4
    y, _ = attend(f, b, mask)
    assert y.abs().max() < 100


@BOTH
def test_gradcheck_float64(attend):
    f, b, mask = _inputs(3, batch=1, channels=2, size=(6, 6), dtype=torch.float64)
    f.requires_grad_(True)
    b.requires_grad_(True)
    fn = lambda f, b: attend(f, b, mask, softmax_scale=2.0)[0]  # noqa: E731
    assert torch.autograd.gradcheck(fn, (f, b), eps=1e-6, atol=1e-5, fast_mode=True)


@BOTH
def test_rejects_bad_shapes(attend):
    f = torch.zeros(1, 3, 7, 8)
    with pytest.raises(ValueError, match="rate"):
        attend(f, f)
    with pytest.raises(ValueError, match="mask"):
        attend(torch.zeros(1, 3, 8, 8), torch.zeros(1, 3, 8, 8), torch.zeros(1, 1, 4, 4))


def test_flow_colours():
    flow = torch.zeros(1, 2, 2, 2)
    flow[0, :, 0, 1] = torch.tensor([0.0, 3.0])  # points right
    image = flow_to_image(flow)
    assert image.shape == (1, 3, 2, 2)
    assert torch.allclose(image[0, :, 0, 0], torch.ones(3))  # zero offset is white
    red, green, blue = image[0, :, 0, 1]
    assert red > 0.9 and green < 0.2 and blue < 0.3  # rightwards is red on the Middlebury wheel
    flow[0, :, 1, 0] = torch.tensor([-3.0, 0.0])  # upwards
    up = flow_to_image(flow)[0, :, 1, 0]
    assert not torch.allclose(up, image[0, :, 0, 1], atol=0.2)


def test_align_corners_downscale_matches_tf_indices():
    from deepfill.model.contextual_attention import downscale_nearest

    x = torch.arange(64.0).view(1, 1, 1, 64).expand(1, 1, 2, 64)
    picked = downscale_nearest(x, (1, 32), align_corners=True)[0, 0, 0].long().tolist()
    # round(i * 63 / 31): every other pixel for the first half, then shifted by one.
    assert picked[:16] == list(range(0, 32, 2)) and picked[16] == 33 and picked[-1] == 63
    assert downscale_nearest(x, (1, 32))[0, 0, 0].long().tolist() == list(range(0, 64, 2))


def test_column_runs_take_and_place_like_indexing():
    from deepfill.model.contextual_attention import _place_columns, _runs, _take_columns

    x = torch.randn(2, 3, 12)
    for picked in ([0, 1, 2, 5, 6, 11], [3], [], list(range(12)), [1, 3, 5, 7]):
        index = torch.tensor(picked, dtype=torch.long)
        runs = _runs(index)
        assert sum(stop - start for start, stop in runs) == len(picked)
        assert torch.equal(_take_columns(x, runs), x[..., index])
        placed = torch.zeros(2, 3, 12).index_copy_(2, index, x[..., : len(picked)])
        assert torch.equal(_place_columns(x[..., : len(picked)], runs, 12), placed)
