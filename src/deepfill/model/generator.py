"""The DeepFill v1 generator: coarse network, then a two-branch refinement network.

Submodule names copy the TF variable scopes of ``build_inpaint_net`` so weight conversion is a
mechanical key map. Inputs and outputs are in [-1, 1]; masks are [B, 1, H, W] with 1 = hole.
Hole-only inference, which runs these layers only where the hole needs them, is
:mod:`deepfill.model.region`.
"""

from __future__ import annotations

import torch
from torch import nn

from deepfill.config import ModelConfig
from deepfill.geometry import Box
from deepfill.model.contextual_attention import ContextualAttention, downscale_nearest
from deepfill.model.layers import GenConv, GenUpConv
from deepfill.model.region import forward_hole_only


class Generator(nn.Module):
    """Coarse-to-fine inpainting network with contextual attention (docs/design.md §1).

    ``forward`` returns (coarse, refined, flow); the caller composites
    ``refined * mask + image * (1 - mask)``. Height and width must be multiples of
    ``pad_multiple`` (two stride-2 convs times the attention rate of 2).
    """

    pad_multiple = 8
    # Reflect padding of the rate-16 dilated convs at 1/4 resolution needs > 16 pixels there.
    min_size = 72

    def __init__(self, config: ModelConfig = ModelConfig()) -> None:
        super().__init__()
        self.config = config
        c, p = config.cnum, config.padding

        def conv(cin: int, cout: int, k: int = 3, stride: int = 1, dilation: int = 1, activation: str | None = "elu") -> GenConv:
            return GenConv(cin, cout, k, stride, dilation, padding=p, activation=activation)

        # Coarse network.
        self.conv1 = conv(5, c, 5)
        self.conv2_downsample = conv(c, 2 * c, 3, 2)
        self.conv3 = conv(2 * c, 2 * c)
        self.conv4_downsample = conv(2 * c, 4 * c, 3, 2)
        self.conv5 = conv(4 * c, 4 * c)
        self.conv6 = conv(4 * c, 4 * c)
        self.conv7_atrous = conv(4 * c, 4 * c, dilation=2)
        self.conv8_atrous = conv(4 * c, 4 * c, dilation=4)
        self.conv9_atrous = conv(4 * c, 4 * c, dilation=8)
        self.conv10_atrous = conv(4 * c, 4 * c, dilation=16)
        self.conv11 = conv(4 * c, 4 * c)
        self.conv12 = conv(4 * c, 4 * c)
        self.conv13_upsample = GenUpConv(4 * c, 2 * c, p)
        self.conv14 = conv(2 * c, 2 * c)
        self.conv15_upsample = GenUpConv(2 * c, c, p)
        self.conv16 = conv(c, c // 2)
        self.conv17 = conv(c // 2, 3, activation=None)

        # Refinement, hallucination branch.
        self.xconv1 = conv(5, c, 5)
        self.xconv2_downsample = conv(c, c, 3, 2)
        self.xconv3 = conv(c, 2 * c)
        self.xconv4_downsample = conv(2 * c, 2 * c, 3, 2)
        self.xconv5 = conv(2 * c, 4 * c)
        self.xconv6 = conv(4 * c, 4 * c)
        self.xconv7_atrous = conv(4 * c, 4 * c, dilation=2)
        self.xconv8_atrous = conv(4 * c, 4 * c, dilation=4)
        self.xconv9_atrous = conv(4 * c, 4 * c, dilation=8)
        self.xconv10_atrous = conv(4 * c, 4 * c, dilation=16)

        # Refinement, attention branch.
        self.pmconv1 = conv(5, c, 5)
        self.pmconv2_downsample = conv(c, c, 3, 2)
        self.pmconv3 = conv(c, 2 * c)
        self.pmconv4_downsample = conv(2 * c, 4 * c, 3, 2)
        self.pmconv5 = conv(4 * c, 4 * c)
        self.pmconv6 = conv(4 * c, 4 * c, activation="relu")
        self.contextual_attention = ContextualAttention(
            config.ca_ksize, config.ca_rate, config.ca_fuse_k, config.ca_softmax_scale, config.ca_fuse,
            align_corners=config.resize == "align_corners",
        )
        self.pmconv9 = conv(4 * c, 4 * c)
        self.pmconv10 = conv(4 * c, 4 * c)

        # Merge decoder.
        self.allconv11 = conv(8 * c, 4 * c)
        self.allconv12 = conv(4 * c, 4 * c)
        self.allconv13_upsample = GenUpConv(4 * c, 2 * c, p)
        self.allconv14 = conv(2 * c, 2 * c)
        self.allconv15_upsample = GenUpConv(2 * c, c, p)
        self.allconv16 = conv(c, c // 2)
        self.allconv17 = conv(c // 2, 3, activation=None)

    def forward(
        self, x: torch.Tensor, mask: torch.Tensor, return_flow: bool = False, hole_only: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """x: [B, 3, H, W] in [-1, 1]; mask: [B, 1, H, W], 1 = hole. Returns (coarse, refined, flow).

        ``hole_only`` computes only what the hole's pixels need (:mod:`deepfill.model.region`):
        both outputs are then exact only inside the hole and on the ring of ``EXACT_MARGIN``
        pixels around its bounding box; use it when the result is composited, as at inference.
        """
        if x.dim() != 4 or x.shape[1] != 3 or mask.shape != (x.shape[0], 1, *x.shape[2:]):
            raise ValueError(f"expected x [B, 3, H, W] and mask [B, 1, H, W], got {tuple(x.shape)} and {tuple(mask.shape)}")
        height, width = x.shape[-2:]
        if height % self.pad_multiple or width % self.pad_multiple:
            raise ValueError(f"height and width must be multiples of {self.pad_multiple}, got {height}x{width}")
        if hole_only:
            return forward_hole_only(self, x, mask, return_flow)
        coarse = self.coarse(x, mask)
        refined, flow = self.refine(x, coarse, mask, return_flow)
        return coarse, refined, flow

    def coarse(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Stage 1: the coarse prediction of the whole image, clamped to [-1, 1]."""
        h = self.network_input(x * (1 - mask), mask)
        h = run(self.coarse_encoder, h)
        h = run(self.coarse_decoder, h)
        return h.clamp(-1, 1)

    def refine(
        self, x: torch.Tensor, coarse: torch.Tensor, mask: torch.Tensor, return_flow: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Stage 2: refine the pasted coarse result; returns (refined, attention flow or None)."""
        h = self.network_input(coarse * mask + x * (1 - mask), mask)
        hallucinated = run(self.hallucination_branch, h)
        attended, flow = self.attend(run(self.attention_encoder, h), mask, return_flow)
        h = torch.cat([hallucinated, run(self.attention_decoder, attended)], dim=1)
        h = run(self.merge_decoder, h)
        return h.clamp(-1, 1), flow

    @staticmethod
    def network_input(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """The 5 channels either stage takes: the image (3), a constant-ones channel, the mask."""
        return torch.cat([x, torch.ones_like(mask), mask], dim=1)

    def attend(
        self, h: torch.Tensor, mask: torch.Tensor, return_flow: bool = False, region: Box | None = None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Contextual attention of the feature map ``h`` on itself, the mask resized to it by nearest
        (docs/design.md §1); ``h`` unchanged and no flow with ``attention = "none"``. ``region``:
        the positions to attend from (:func:`deepfill.model.region.attention_region`), or all."""
        if self.config.attention != "contextual":
            return h, None
        mask_small = downscale_nearest(mask, h.shape[-2:], self.config.resize == "align_corners")
        return self.contextual_attention(h, mask_small, return_flow=return_flow, region=region)

    # The network's stages in order, as ``forward`` runs them and hole-only inference walks them.

    @property
    def coarse_encoder(self) -> tuple[GenConv, ...]:
        """conv1 to conv10_atrous: down to 1/4 resolution, then the dilated convs."""
        return (self.conv1, self.conv2_downsample, self.conv3, self.conv4_downsample, self.conv5, self.conv6,
                self.conv7_atrous, self.conv8_atrous, self.conv9_atrous, self.conv10_atrous)

    @property
    def coarse_decoder(self) -> tuple[nn.Module, ...]:
        """conv11 to conv17: back up to full resolution, 3 channels."""
        return (self.conv11, self.conv12, self.conv13_upsample, self.conv14, self.conv15_upsample, self.conv16,
                self.conv17)

    @property
    def hallucination_branch(self) -> tuple[GenConv, ...]:
        """xconv1 to xconv10_atrous: the refinement's dilated branch, at 1/4 resolution."""
        return (self.xconv1, self.xconv2_downsample, self.xconv3, self.xconv4_downsample, self.xconv5,
                self.xconv6, self.xconv7_atrous, self.xconv8_atrous, self.xconv9_atrous, self.xconv10_atrous)

    @property
    def attention_encoder(self) -> tuple[GenConv, ...]:
        """pmconv1 to pmconv6: the features the contextual attention matches and pastes."""
        return (self.pmconv1, self.pmconv2_downsample, self.pmconv3, self.pmconv4_downsample, self.pmconv5,
                self.pmconv6)

    @property
    def attention_decoder(self) -> tuple[GenConv, ...]:
        """pmconv9, pmconv10: after the attention, before the branches merge."""
        return self.pmconv9, self.pmconv10

    @property
    def merge_decoder(self) -> tuple[nn.Module, ...]:
        """allconv11 to allconv17: both branches concatenated, back up to full resolution."""
        return (self.allconv11, self.allconv12, self.allconv13_upsample, self.allconv14, self.allconv15_upsample,
                self.allconv16, self.allconv17)


def run(layers: tuple[nn.Module, ...], h: torch.Tensor) -> torch.Tensor:
    """``layers`` applied one after the other."""
    for layer in layers:
        h = layer(h)
    return h
