"""Convolution blocks of the v1 generator and critics (``gen_conv``, ``gen_deconv``, ``dis_conv``)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


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

    def _pad(self, x: torch.Tensor) -> torch.Tensor:
        k = self.conv.kernel_size[0]
        d = self.conv.dilation[0]
        s = self.conv.stride[0]
        if self.padding == "reflect":
            p = d * (k - 1) // 2
            return F.pad(x, (p, p, p, p), mode="reflect")
        # TF "SAME": total padding so that out = ceil(in / stride), the extra pixel after.
        pads = []
        for size in (x.shape[-1], x.shape[-2]):
            effective = d * (k - 1) + 1
            total = max((-(-size // s) - 1) * s + effective - size, 0)
            pads += [total // 2, total - total // 2]
        return F.pad(x, pads)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv(self._pad(x))
        if self.activation == "elu":
            return F.elu(x)
        if self.activation == "relu":
            return F.relu(x)
        return x


class GenUpConv(nn.Module):
    """Nearest x2 upsampling then a 3x3 ``GenConv`` (``gen_deconv``; no transposed conv)."""

    def __init__(self, in_channels: int, out_channels: int, padding: str = "reflect") -> None:
        super().__init__()
        self.conv = GenConv(in_channels, out_channels, 3, padding=padding)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.interpolate(x, scale_factor=2, mode="nearest"))


class DisConv(nn.Module):
    """5x5 stride-2 conv + leaky ReLU(0.2), TF "SAME" padding, as ``dis_conv``."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv = GenConv(in_channels, out_channels, 5, stride=2, padding="zeros", activation=None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.leaky_relu(self.conv(x), 0.2)
