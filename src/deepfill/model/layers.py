"""Convolution blocks of the v1 generator and critics (``gen_conv``, ``gen_deconv``, ``dis_conv``)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

def elu(x: torch.Tensor) -> torch.Tensor:
    """``F.elu``. Without autograd, bf16/fp16 take max(x, exp(min(x, 0)) − 1), the same function.

    PyTorch's ELU computes expm1 in float32 for reduced types, which makes it ~1.5x slower there
    than these four passes (an exp and three memory-bound ones); the difference is one bf16
    rounding of exp(x) before the subtraction.
    """
    if x.requires_grad or x.dtype not in (torch.bfloat16, torch.float16):
        return F.elu(x)
    negative = x.clamp(max=0).exp_().sub_(1)
    return torch.maximum(x, negative, out=negative)


class GenConv(nn.Module):
    """Conv + ELU with mirror or TF-"SAME" zero padding, as ``gen_conv`` in the released code.

    ``activation`` is ``"elu"``, ``"relu"`` or ``None`` (linear). Reflect padding pads
    ``dilation*(k-1)/2`` on every side; zero padding reproduces TF "SAME", which for stride 2
    pads 0 before and 1 after on even sizes.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int = 3,
        stride: int = 1,
        dilation: int = 1,
        padding: str = "reflect",
        activation: str | None = "elu",
    ) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, stride, padding=0, dilation=dilation)
        self.padding = padding
        self.activation = activation

    def pads(self, height: int, width: int) -> tuple[int, int, int, int]:
        """(left, right, top, bottom) padding of a ``height`` x ``width`` input, in ``F.pad``'s order."""
        k, d, s = self.conv.kernel_size[0], self.conv.dilation[0], self.conv.stride[0]
        if self.padding == "reflect":
            p = d * (k - 1) // 2
            return p, p, p, p
        # TF "SAME": total padding so that out = ceil(in / stride), the extra pixel after.
        pads = []
        for size in (width, height):
            total = max((-(-size // s) - 1) * s + d * (k - 1) + 1 - size, 0)
            pads += [total // 2, total - total // 2]
        return pads[0], pads[1], pads[2], pads[3]

    def pad(self, x: torch.Tensor, pads: tuple[int, int, int, int] | None = None) -> torch.Tensor:
        """``x`` padded in this layer's mode by ``pads`` (left, right, top, bottom), by default
        as a whole input is."""
        pads = self.pads(*x.shape[-2:]) if pads is None else pads
        return pad_in_own_dtype(x, pads, "reflect" if self.padding == "reflect" else "constant")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.activate(self.conv(self.pad(x)))

    def activate(self, x: torch.Tensor) -> torch.Tensor:
        """The layer's activation: ELU, ReLU or none."""
        if self.activation == "elu":
            return elu(x)
        if self.activation == "relu":
            return F.relu(x)
        return x


def pad_in_own_dtype(x: torch.Tensor, pads: tuple[int, ...], mode: str) -> torch.Tensor:
    """``F.pad`` in ``x``'s dtype, also under autocast.

    CPU autocast runs reflect and replicate padding in float32: in a bf16 training step every
    layer's input was cast up, padded, cast back by the conv, and its gradient went the same
    way back (a fifth of a 256x256 step on a 2-core Xeon). Padding copies values, so doing it in
    bf16 changes nothing in the forward pass.
    """
    if mode == "constant" or not torch.is_autocast_enabled(x.device.type):
        return F.pad(x, pads, mode=mode)
    with torch.autocast(x.device.type, enabled=False):
        return F.pad(x, pads, mode=mode)


class GenUpConv(nn.Module):
    """Nearest x2 upsampling then a 3x3 ``GenConv`` (``gen_deconv``: the released model learns no deconvolution).

    Computed without the upsampled map, as one stride-2 transposed convolution with 4x4 kernels
    (:func:`upsample_conv_kernels`): each output pixel then takes 2x2 input pixels instead of
    3x3, 4/9 of the multiply-adds, for the same function. Reflect padding of the upsampled map
    is edge padding of the original one; zero padding stays zero padding.
    """

    def __init__(self, in_channels: int, out_channels: int, padding: str = "reflect") -> None:
        super().__init__()
        self.conv = GenConv(in_channels, out_channels, 3, padding=padding)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        conv = self.conv.conv
        x = pad_in_own_dtype(x, (1, 1, 1, 1), "replicate" if self.conv.padding == "reflect" else "constant")
        # On the padded map, output 2i + a reads padded pixels i + a and i + a + 1: padding 3.
        y = F.conv_transpose2d(x, upsample_conv_kernels(conv.weight), conv.bias, stride=2, padding=3)
        return self.conv.activate(y)


def upsample_conv_kernels(weight: torch.Tensor) -> torch.Tensor:
    """3x3 kernels [O, I, 3, 3] of a conv after nearest x2 upsampling → the 4x4 kernels [I, O, 4, 4]
    of the stride-2 transposed convolution that computes the same on the original map.

    Along one axis, output 2i reads upsampled pixels 2i-1, 2i, 2i+1 = original i-1, i, i (taps
    k0, k1 + k2) and output 2i+1 reads original i, i, i+1 (taps k0 + k1, k2). With stride 2 and
    padding 3, tap t adds pixel j of the map padded by 1 (original j - 1) to output 2j - 3 + t,
    so the taps 0..3 are (k2, k1 + k2, k0 + k1, k0).
    """
    taps = weight.new_tensor([[0, 0, 1], [0, 1, 1], [1, 1, 0], [1, 0, 0]])
    return torch.einsum("yu,xv,oiuv->ioyx", taps, taps, weight)


class DisConv(nn.Module):
    """5x5 stride-2 conv + leaky ReLU(0.2), TF "SAME" padding, as ``dis_conv``."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv = GenConv(in_channels, out_channels, 5, stride=2, padding="zeros", activation=None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.leaky_relu(self.conv(x), 0.2)
