"""WGAN-GP critics of DeepFill v1 (``build_wgan_local_discriminator`` / ``..._global_...``).

Both see only RGB images in [-1, 1], never the mask. The local critic takes the crop around the
hole box (128 x 128 for 256 x 256 training); the global critic the whole image.
"""

from __future__ import annotations

import torch
from torch import nn

from deepfill.model.layers import DisConv

INPUT_MULTIPLE = 16  # four stride-2 convolutions


class Critic(nn.Module):
    """Four 5x5 stride-2 convs with leaky ReLU, flattened, then a linear layer to one score."""

    def __init__(self, channels: tuple[int, int, int, int], input_size: int) -> None:
        super().__init__()
        if input_size % INPUT_MULTIPLE:
            raise ValueError(f"critic input size must be a multiple of {INPUT_MULTIPLE}, got {input_size}")
        self.input_size = input_size
        c1, c2, c3, c4 = channels
        self.conv1 = DisConv(3, c1)
        self.conv2 = DisConv(c1, c2)
        self.conv3 = DisConv(c2, c3)
        self.conv4 = DisConv(c3, c4)
        self.dout = nn.Linear(c4 * (input_size // 16) ** 2, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-2:] != (self.input_size, self.input_size):
            raise ValueError(f"critic expects {self.input_size}x{self.input_size} inputs, got {tuple(x.shape)}")
        h = self.conv4(self.conv3(self.conv2(self.conv1(x))))
        # Flatten in TF's NHWC order so converted dense weights line up.
        return self.dout(h.permute(0, 2, 3, 1).flatten(1))


def local_critic(input_size: int = 128, cnum: int = 64) -> Critic:
    return Critic((cnum, 2 * cnum, 4 * cnum, 8 * cnum), input_size)


def global_critic(input_size: int = 256, cnum: int = 64) -> Critic:
    return Critic((cnum, 2 * cnum, 4 * cnum, 4 * cnum), input_size)
