"""The DeepFill v1 generator: coarse network, then a two-branch refinement network.

Submodule names copy the TF variable scopes of ``build_inpaint_net`` so weight conversion is a
mechanical key map. Inputs and outputs are in [-1, 1]; masks are [B, 1, H, W] with 1 = hole.
"""

from __future__ import annotations

import torch
from torch import nn

from deepfill.config import ModelConfig
from deepfill.model.contextual_attention import ContextualAttention, downscale_nearest
from deepfill.model.layers import GenConv, GenUpConv


# With ``hole_only``, the outputs are exact on the holes' bounding box grown by this many pixels:
# gradient-domain compositing reads the prediction on the 1-pixel ring around the hole, also
# after a downscaled region is scaled back up (bilinear, one more pixel).
EXACT_MARGIN = 2


class Generator(nn.Module):
    """Coarse-to-fine inpainting network with contextual attention (docs/design.md §1).

    ``forward`` returns (coarse, refined, flow); the caller composites
    ``refined * mask + image * (1 - mask)``. Height and width must be multiples of
    ``pad_multiple`` (two stride-2 convs times the attention rate of 2).
    """

    pad_multiple = 8
    # Reflect padding of the rate-16 dilated convs at 1/4 resolution needs > 16 pixels there.
    min_size = 72
    # With ``hole_only``, the layers after the last wide-reaching one (coarse conv11 on,
    # refinement pmconv9 on: the "tails") run only on the box of their input that the hole's
    # pixels read (:meth:`tail_box`), which gives the same hole pixels for a fraction of the
    # work. The dilated stacks and the encoders before them (not the attention branch's, whose
    # background is the whole image) compute only what that box reads (:func:`_run_toward`).

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

    @staticmethod
    def _input(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        ones = torch.ones_like(mask)
        return torch.cat([x, ones, mask], dim=1)

    def coarse(self, x: torch.Tensor, mask: torch.Tensor, hole_only: bool = False) -> torch.Tensor:
        """Stage 1: the coarse prediction of the whole image, clamped to [-1, 1].

        With ``hole_only`` the decoder runs only around the hole (:meth:`tail_box`) and the
        layers before it only where the decoder reads; the result is exact inside the hole and
        its ring (``EXACT_MARGIN``) and zero far from it.
        """
        box = self.tail_box(mask, self._coarse_tail) if hole_only else None
        h = _run_toward((self.conv1, self.conv2_downsample, self.conv3, self.conv4_downsample, self.conv5,
                         self.conv6, self.conv7_atrous, self.conv8_atrous, self.conv9_atrous, self.conv10_atrous),
                        self._input(x * (1 - mask), mask), box)
        for layer in self._coarse_tail:
            h = layer(h)
        return _uncrop(h.clamp(-1, 1), box, x)

    @property
    def _coarse_tail(self) -> tuple[nn.Module, ...]:
        return (self.conv11, self.conv12, self.conv13_upsample, self.conv14, self.conv15_upsample, self.conv16,
                self.conv17)

    @property
    def _refine_tail(self) -> tuple[nn.Module, ...]:
        """From the attention's output on; the hallucination branch joins at allconv11."""
        return (self.pmconv9, self.pmconv10, self.allconv11, self.allconv12, self.allconv13_upsample,
                self.allconv14, self.allconv15_upsample, self.allconv16, self.allconv17)

    def tail_box(self, mask: torch.Tensor, tail: tuple[nn.Module, ...]) -> tuple[int, int, int, int] | None:
        """(top, bottom, left, right): the box of ``tail``'s 1/4-resolution input that the batch's
        hole pixels read. None when that is the whole map (or there is no hole).
        """
        box = _read_box(tail, mask)
        size = (mask.shape[-2] // 4, mask.shape[-1] // 4)
        return None if box is None or box == (0, size[0], 0, size[1]) else box

    def attention_region(self, mask: torch.Tensor) -> tuple[int, int, int, int]:
        """The box of attention positions that can influence any hole pixel of the batch.

        The layers after the attention read, for the hole's pixels, a box of its output
        (:func:`_read_box`); a position pastes its 2*rate x 2*rate patch from
        rate * position - rate / 2 on. Outside this box the refined output differs only at known
        pixels, which compositing replaces, so attending from this box alone gives the same
        inpainted image.
        """
        box = _read_box(self._refine_tail, mask)
        if box is None:
            return 0, 0, 0, 0
        top, bottom, left, right = box
        rate = self.config.ca_rate
        first = lambda start: -((rate + rate // 2 - 1 - start) // rate)  # noqa: E731  ceil((start - 3r/2 + 1) / r)
        last = lambda stop: (stop - 1 + rate // 2) // rate + 1  # noqa: E731
        return first(top), last(bottom), first(left), last(right)

    def refine(
        self, x: torch.Tensor, coarse: torch.Tensor, mask: torch.Tensor, return_flow: bool = False,
        hole_only: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Stage 2: refine the pasted coarse result; returns (refined, attention flow or None).

        ``hole_only`` computes the attention, the hallucination branch and the decoder only where
        they can change hole pixels and their ring (inference); the output is exact there only.
        """
        h_in = self._input(coarse * mask + x * (1 - mask), mask)
        box = self.tail_box(mask, self._refine_tail) if hole_only else None
        hallucinated = _run_toward((self.xconv1, self.xconv2_downsample, self.xconv3, self.xconv4_downsample,
                                    self.xconv5, self.xconv6, self.xconv7_atrous, self.xconv8_atrous,
                                    self.xconv9_atrous, self.xconv10_atrous), h_in, box)

        h = h_in
        for layer in (self.pmconv1, self.pmconv2_downsample, self.pmconv3, self.pmconv4_downsample,
                      self.pmconv5, self.pmconv6):
            h = layer(h)
        flow = None
        if self.config.attention == "contextual":
            mask_small = downscale_nearest(mask, h.shape[-2:], self.config.resize == "align_corners")
            region = self.attention_region(mask) if hole_only else None
            h, flow = self.contextual_attention(h, mask_small, return_flow=return_flow, region=region)
        pm9, pm10, *merge = self._refine_tail
        h = torch.cat([hallucinated, pm10(pm9(_crop(h, box)))], dim=1)
        for layer in merge:
            h = layer(h)
        return _uncrop(h.clamp(-1, 1), box, x), flow

    def forward(
        self, x: torch.Tensor, mask: torch.Tensor, return_flow: bool = False, hole_only: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """x: [B, 3, H, W] in [-1, 1]; mask: [B, 1, H, W], 1 = hole. Returns (coarse, refined, flow).

        With ``hole_only`` both outputs are exact only inside the hole and on the ring of
        ``EXACT_MARGIN`` pixels around its bounding box (see :meth:`attention_region` and
        :meth:`tail_box`); use it when the result is composited, as at inference.
        """
        if x.dim() != 4 or x.shape[1] != 3 or mask.shape != (x.shape[0], 1, *x.shape[2:]):
            raise ValueError(f"expected x [B, 3, H, W] and mask [B, 1, H, W], got {tuple(x.shape)} and {tuple(mask.shape)}")
        height, width = x.shape[-2:]
        if height % self.pad_multiple or width % self.pad_multiple:
            raise ValueError(f"height and width must be multiples of {self.pad_multiple}, got {height}x{width}")
        coarse = self.coarse(x, mask, hole_only)
        refined, flow = self.refine(x, coarse, mask, return_flow, hole_only)
        return coarse, refined, flow


def _hole_extent(mask: torch.Tensor) -> tuple[int, int, int, int] | None:
    """(top, bottom, left, right), ends exclusive, of the hole pixels of the whole batch grown by
    ``EXACT_MARGIN`` inside the image; None if there is no hole."""
    rows = torch.nonzero(mask.amax(dim=(0, 1, 3)) > 0.5)
    cols = torch.nonzero(mask.amax(dim=(0, 1, 2)) > 0.5)
    if rows.numel() == 0:
        return None
    height, width = mask.shape[-2:]
    return (max(0, int(rows[0]) - EXACT_MARGIN), min(height, int(rows[-1]) + 1 + EXACT_MARGIN),
            max(0, int(cols[0]) - EXACT_MARGIN), min(width, int(cols[-1]) + 1 + EXACT_MARGIN))


def _read_box(layers: tuple[nn.Module, ...], mask: torch.Tensor) -> tuple[int, int, int, int] | None:
    """The box of the 1/4-resolution input of ``layers`` (ending at full resolution) that the
    hole pixels of ``mask`` read. None when there is no hole."""
    extent = _hole_extent(mask)
    if extent is None:
        return None
    return _boxes_read(layers, extent, (mask.shape[-2] // 4, mask.shape[-1] // 4))[1][0]


def _boxes_read(
    layers: tuple[nn.Module, ...], box: tuple[int, int, int, int], size: tuple[int, int]
) -> tuple[list[tuple[int, int]], list[tuple[int, int, int, int]]]:
    """Each layer's input size (the first's is ``size``) and the box of each layer's input that
    ``box`` of the last layer's output reads, carried back through every ``input_box``; the
    last entry of the boxes is ``box`` itself."""
    sizes = [size]
    for layer in layers[:-1]:
        sizes.append(layer.output_size(sizes[-1]))
    boxes = [box]
    for layer, layer_size in zip(reversed(layers), reversed(sizes)):
        boxes.append(layer.input_box(boxes[-1], layer_size))
    return sizes, boxes[::-1]


def _run_toward(layers: tuple[GenConv, ...], h: torch.Tensor, box: tuple[int, int, int, int] | None) -> torch.Tensor:
    """Run ``layers`` on the map ``h``; with a ``box``, return the last output inside it only.

    Each layer then computes just what the layers after it read (:meth:`GenConv.input_box`: the
    next one's box grown by its reach, 16 for the rate-16 conv, and scaled back through the
    stride-2 ones), clipped to the map. The values inside ``box`` are those of the whole-map
    computation.
    """
    if box is None:
        for layer in layers:
            h = layer(h)
        return h
    sizes, boxes = _boxes_read(layers, box, tuple(h.shape[-2:]))
    have = (0, sizes[0][0], 0, sizes[0][1])
    for layer, want, size in zip(layers, boxes[1:], sizes):
        h = layer.forward_region(h, have, want, size)
        have = want
    return h


def _crop(h: torch.Tensor, box: tuple[int, int, int, int] | None) -> torch.Tensor:
    """``h`` (a 1/4-resolution map) inside ``box``, or all of it for None."""
    if box is None:
        return h
    top, bottom, left, right = box
    return h[..., top:bottom, left:right]


def _uncrop(h: torch.Tensor, box: tuple[int, int, int, int] | None, like: torch.Tensor) -> torch.Tensor:
    """Place the full-resolution output of a ``box`` crop in zeros shaped like the input image."""
    if box is None:
        return h
    top, bottom, left, right = box
    full = torch.zeros_like(like)
    full[..., 4 * top : 4 * bottom, 4 * left : 4 * right] = h
    return full
