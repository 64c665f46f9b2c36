"""The generator and critics: architecture facts, shapes, ranges, gradients, padding modes."""

import pytest
import torch
import torch.nn.functional as F

from deepfill.config import ModelConfig
from deepfill.geometry import Box
from deepfill.model.critics import global_critic, local_critic
from deepfill.model.generator import Generator
from deepfill.model.layers import GenConv, GenUpConv, elu, pad_in_own_dtype
from deepfill.model.region import EXACT_MARGIN, attention_region, forward_box, input_box, output_size


def count(module):
    return sum(p.numel() for p in module.parameters())


def test_parameter_counts_match_the_released_model():
    assert count(Generator()) == 3_601_542
    assert count(local_critic()) == 4_339_329
    assert count(global_critic()) == 2_733_441


def _batch(size=72, batch=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(batch, 3, size, size, generator=g) * 2 - 1
    mask = torch.zeros(batch, 1, size, size)
    mask[0, :, 8:40, 16:48] = 1
    mask[1, :, 30:60, 5:20] = 1
    return x, mask


@pytest.mark.parametrize("padding", ["reflect", "zeros"])
@pytest.mark.parametrize("attention", ["contextual", "none"])
def test_forward_shapes_range_and_gradients(padding, attention):
    torch.manual_seed(0)
    model = Generator(ModelConfig(cnum=8, padding=padding, attention=attention))
    x, mask = _batch()
    coarse, refined, flow = model(x, mask, return_flow=True)
    assert coarse.shape == refined.shape == x.shape
    assert refined.min() >= -1 and refined.max() <= 1
    assert torch.isfinite(refined).all()
    assert (flow is None) == (attention == "none")
    (coarse.mean() + refined.mean()).backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not torch.isfinite(p.grad).all()]
    assert not missing


def test_rejects_sizes_not_multiple_of_8():
    model = Generator(ModelConfig(cnum=4))
    with pytest.raises(ValueError, match="multiples of 8"):
        model(torch.zeros(1, 3, 76, 80), torch.zeros(1, 1, 76, 80))


def test_zero_padding_is_tf_same():
    torch.manual_seed(0)
    layer = GenConv(2, 3, 3, stride=2, padding="zeros", activation=None)
    x = torch.randn(1, 2, 8, 8)
    expected = F.conv2d(F.pad(x, (0, 1, 0, 1)), layer.conv.weight, layer.conv.bias, stride=2)
    assert torch.allclose(layer(x), expected)
    dilated = GenConv(2, 3, 3, dilation=4, padding="zeros", activation=None)
    expected = F.conv2d(F.pad(x, (4, 4, 4, 4)), dilated.conv.weight, dilated.conv.bias, dilation=4)
    assert torch.allclose(dilated(x), expected, atol=1e-6)


@pytest.mark.parametrize("padding", ["reflect", "zeros"])
@pytest.mark.parametrize("kernel, stride, dilation", [(3, 1, 1), (3, 1, 4), (3, 2, 1), (5, 1, 1), (5, 2, 1)])
def test_forward_region_equals_the_whole_map_inside_any_box(padding, kernel, stride, dilation):
    """Through :func:`region.input_box` and back, at corners, edges and inside; even and odd sizes."""
    torch.manual_seed(0)
    layer = GenConv(2, 3, kernel, stride, dilation, padding=padding)
    g = torch.Generator().manual_seed(1)
    for size in [(24, 30), (23, 29)]:
        x = torch.randn(1, 2, *size)
        whole = layer(x)
        assert tuple(whole.shape[-2:]) == output_size(layer, size)
        height, width = whole.shape[-2:]
        for _ in range(30):
            top, left = (int(torch.randint(0, n, (), generator=g)) for n in (height, width))
            bottom = int(torch.randint(top + 1, height + 1, (), generator=g))
            right = int(torch.randint(left + 1, width + 1, (), generator=g))
            want = Box(top, left, bottom, right)
            have = input_box(layer, want, size)
            region = forward_box(layer, x[..., have.top : have.bottom, have.left : have.right], have, want, size)
            assert torch.allclose(region, whole[..., top:bottom, left:right], atol=1e-6), (size, want, have)


@pytest.mark.parametrize("padding", ["reflect", "zeros"])
def test_upsampling_conv_reads_only_its_input_box(padding):
    """Changing the input outside :func:`region.input_box` changes no output inside the box."""
    torch.manual_seed(0)
    layer = GenUpConv(2, 3, padding)
    x = torch.randn(1, 2, 11, 13)
    out = layer(x)
    assert tuple(out.shape[-2:]) == output_size(layer, (11, 13))
    for want in [Box(0, 0, 3, 2), Box(5, 7, 9, 26), Box(19, 24, 22, 26), Box(0, 0, 22, 26)]:
        top, left, bottom, right = input_box(layer, want, (11, 13))
        outside = torch.ones_like(x, dtype=torch.bool)
        outside[..., top:bottom, left:right] = False
        changed = layer(torch.where(outside, x + 5, x))
        inside = (..., slice(want.top, want.bottom), slice(want.left, want.right))
        assert torch.equal(changed[inside], out[inside])
        for row in (top, bottom - 1):  # and no larger than needed: its edge rows are read
            edge = x.clone()
            edge[..., row, left:right] += 5
            assert not torch.equal(layer(edge)[inside], out[inside])


def test_attention_region_is_what_the_layers_after_it_read():
    """Worked by hand for rows 230-280 of 512: the decoder reads attention pixels 51-75 at 1/4,
    which positions 25-38 paste onto (position p covers 2p - 1 to 2p + 2)."""
    mask = torch.zeros(1, 1, 512, 512)
    mask[..., 230:281, 100:101] = 1
    box = attention_region(Generator(ModelConfig(cnum=4)), mask)
    assert (box.top, box.bottom) == (25, 39)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_reduced_precision_elu_is_elu(dtype):
    """The exp-based ELU for bf16/fp16 is within one rounding of the type of the exact ELU."""
    x = torch.linspace(-12, 12, 100_001).to(dtype)
    exact = F.elu(x.double())
    fast = elu(x)
    assert fast.dtype == dtype
    eps = torch.finfo(dtype).eps
    assert ((fast.double() - exact).abs() <= eps * (1 + exact.abs())).all()
    assert torch.equal(fast[x >= 0], x[x >= 0])  # the positive side passes through exactly
    leaf = x.clone().requires_grad_()  # with autograd: PyTorch's own ELU and its gradient
    elu(leaf).sum().backward()
    expected = torch.where(x > 0, 1.0, x.double().exp())
    assert torch.allclose(leaf.grad.double(), expected, rtol=2 * eps, atol=eps)


@pytest.mark.parametrize("mode", ["reflect", "replicate", "constant"])
def test_padding_keeps_bfloat16_under_autocast(mode):
    """CPU autocast would pad reflect/replicate in float32; the layers pad in the input's dtype,
    with the same values, and the gradient comes back in it too."""
    x = torch.randn(2, 3, 5, 6).to(torch.bfloat16).requires_grad_()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        padded = pad_in_own_dtype(x, (1, 2, 2, 1), mode)
    assert padded.dtype == torch.bfloat16
    assert torch.equal(padded, F.pad(x.detach().float(), (1, 2, 2, 1), mode=mode).to(torch.bfloat16))
    padded.float().sum().backward()
    assert x.grad.dtype == torch.bfloat16 and x.grad.min() >= 1  # every input pixel reached the sum


@pytest.mark.parametrize("padding", ["reflect", "zeros"])
def test_upsampling_conv_equals_conv_of_the_upsampled_map(padding):
    """The transposed-convolution form gives the 3x3 conv of the nearest-upsampled map, and its gradients."""
    torch.manual_seed(0)
    layer = GenUpConv(6, 5, padding).double()
    x = torch.randn(2, 6, 7, 10, dtype=torch.float64, requires_grad=True)
    reference = layer.conv(F.interpolate(x, scale_factor=2, mode="nearest"))
    out = layer(x)
    assert out.shape == (2, 5, 14, 20)
    assert torch.allclose(out, reference, atol=1e-12)
    grads = torch.autograd.grad((out * reference.detach()).sum(), [x, layer.conv.conv.weight])
    expected = torch.autograd.grad((reference * reference.detach()).sum(), [x, layer.conv.conv.weight])
    for got, want in zip(grads, expected):
        assert torch.allclose(got, want, atol=1e-10)
    channels_last = layer(x.detach().contiguous(memory_format=torch.channels_last))
    assert channels_last.is_contiguous(memory_format=torch.channels_last)
    assert torch.allclose(channels_last, reference, atol=1e-12)


def test_critics_score_batches():
    x = torch.rand(2, 3, 64, 64) * 2 - 1
    assert local_critic(64, cnum=4)(x).shape == (2, 1)
    assert global_critic(64, cnum=4)(x).shape == (2, 1)


@pytest.mark.parametrize("padding", ["reflect", "zeros"])
@pytest.mark.parametrize("box", [Box(40, 100, 80, 150), Box(0, 0, 20, 30), Box(150, 180, 160, 200), Box(60, 4, 68, 196),
                                 Box(181, 165, 203, 190)])
def test_hole_only_is_exact_inside_the_hole_and_its_ring(box, padding):
    """Encoders, dilated stacks, attention and decoders restricted to the hole's surroundings
    change no pixel of the hole's box grown by EXACT_MARGIN, which compositing reads (the last
    box is far enough from every border for the encoders to be cut)."""
    torch.manual_seed(0)
    model = Generator(ModelConfig(cnum=8, padding=padding)).eval()
    for p in model.parameters():  # weights large enough for differences to show
        p.data.mul_(2)
    x = torch.rand(1, 3, 384, 352) * 2 - 1
    mask = torch.zeros(1, 1, 384, 352)
    top, left, bottom, right = box
    mask[..., top:bottom, left:right] = 1
    with torch.no_grad():
        coarse, full, _ = model(x, mask)
        coarse_fast, fast, _ = model(x, mask, hole_only=True)
    exact = torch.zeros_like(full, dtype=torch.bool)
    exact[..., max(0, top - EXACT_MARGIN) : bottom + EXACT_MARGIN, max(0, left - EXACT_MARGIN) : right + EXACT_MARGIN] = True
    assert torch.allclose(coarse[exact], coarse_fast[exact], atol=1e-5)
    assert torch.allclose(full[exact], fast[exact], atol=1e-5)
    assert not torch.allclose(full[~exact], fast[~exact], atol=1e-3)  # the restriction did restrict


def test_a_small_hole_cuts_the_encoders_but_not_the_attention_branchs():
    """Guards the test above: the last box there does reach the encoders."""
    model = Generator(ModelConfig(cnum=8)).eval()
    seen = {}
    for name in ("conv1", "xconv1", "pmconv1"):
        getattr(model, name).conv.register_forward_pre_hook(lambda m, args, name=name: seen.update({name: args[0].shape}))
    mask = torch.zeros(1, 1, 384, 352)
    mask[..., 181:203, 165:190] = 1
    with torch.no_grad():
        model(torch.zeros(1, 3, 384, 352), mask, hole_only=True)
    assert seen["pmconv1"][-2:] == (388, 356)  # the whole image, reflect-padded by 2
    for name in ("conv1", "xconv1"):
        assert seen[name][-2] < 388 - 40 and seen[name][-1] < 356 - 10, (name, seen[name])  # 339 x 343
