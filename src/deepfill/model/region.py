"""Hole-only inference: the generator's own layers, run only where the hole's pixels need them.

docs/design.md §1, "Hole-only inference". Each stage ends in a "tail" (coarse: conv11 on;
refinement: pmconv9 on) that runs only on the box of its 1/4-resolution input that the hole's
pixels read (:func:`tail_box`). The encoders and dilated stacks before a tail compute only what
that box reads (:func:`run_toward`): the box is carried back layer by layer (:func:`input_box`),
grown by each layer's reach and scaled through the stride-2 convs. The attention branch's
encoder runs whole (the attention's background is the whole image), and the attention runs only
from the positions whose pasted patches the tail reads (:func:`attention_region`).

The outputs equal the whole-image ones on the holes' bounding box grown by ``EXACT_MARGIN``;
elsewhere they are zero or differ, and compositing never reads them. Boxes are
:class:`deepfill.geometry.Box` (top, left, bottom, right; ends exclusive).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import nn

from deepfill.geometry import Box
from deepfill.model.layers import GenConv, GenUpConv

if TYPE_CHECKING:
    from deepfill.model.generator import Generator

# The outputs are exact on the holes' bounding box grown by this many pixels: gradient-domain
# compositing reads the prediction on the 1-pixel ring around the hole, also after a downscaled
# region is scaled back up (bilinear, one more pixel).
EXACT_MARGIN = 2

# The tails' inputs are at 1/4 of the image's resolution (two stride-2 convs).
TAIL_SCALE = 4


def forward_hole_only(
    generator: Generator, x: torch.Tensor, mask: torch.Tensor, return_flow: bool = False
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """``generator(x, mask, return_flow)``, exact on the holes and their ring only (``hole_only=True``)."""
    coarse = coarse_hole_only(generator, x, mask)
    refined, flow = refine_hole_only(generator, x, coarse, mask, return_flow)
    return coarse, refined, flow


def coarse_hole_only(generator: Generator, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """:meth:`Generator.coarse` computed around the hole only: zero far from it."""
    g = generator
    box = tail_box(mask, g.coarse_decoder)
    h = run_toward(g.coarse_encoder, g.network_input(x * (1 - mask), mask), box)
    for layer in g.coarse_decoder:
        h = layer(h)
    return uncrop(h.clamp(-1, 1), box, x)


def refine_hole_only(
    generator: Generator, x: torch.Tensor, coarse: torch.Tensor, mask: torch.Tensor, return_flow: bool = False
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """:meth:`Generator.refine` computed around the hole only; the flow covers the attended positions."""
    g = generator
    h_in = g.network_input(coarse * mask + x * (1 - mask), mask)
    box = tail_box(mask, g.attention_decoder + g.merge_decoder)
    hallucinated = run_toward(g.hallucination_branch, h_in, box)
    h = h_in
    for layer in g.attention_encoder:
        h = layer(h)
    h, flow = g.attend(h, mask, return_flow, region=attention_region(g, mask))
    h = crop(h, box)
    for layer in g.attention_decoder:
        h = layer(h)
    h = torch.cat([hallucinated, h], dim=1)
    for layer in g.merge_decoder:
        h = layer(h)
    return uncrop(h.clamp(-1, 1), box, x), flow


def tail_box(mask: torch.Tensor, tail: tuple[nn.Module, ...]) -> Box | None:
    """The box of ``tail``'s 1/4-resolution input that the batch's hole pixels read; None when
    that is the whole map (or there is no hole)."""
    box = read_box(tail, mask)
    size = (mask.shape[-2] // TAIL_SCALE, mask.shape[-1] // TAIL_SCALE)
    return None if box is None or box == Box(0, 0, *size) else box


def attention_region(generator: Generator, mask: torch.Tensor) -> Box:
    """The box of attention positions (at 1/rate of the attention's map) that can influence any
    hole pixel of the batch.

    The layers after the attention read, for the hole's pixels, a box of its output
    (:func:`read_box`); a position pastes its 2*rate x 2*rate patch from
    rate * position - rate / 2 on. Outside this box the refined output differs only at known
    pixels, which compositing replaces, so attending from this box alone gives the same
    inpainted image. Empty when there is no hole.
    """
    box = read_box(generator.attention_decoder + generator.merge_decoder, mask)
    if box is None:
        return Box(0, 0, 0, 0)
    rate = generator.config.ca_rate
    first = lambda start: -((rate + rate // 2 - 1 - start) // rate)  # noqa: E731  ceil((start - 3r/2 + 1) / r)
    last = lambda stop: (stop - 1 + rate // 2) // rate + 1  # noqa: E731
    return Box(first(box.top), first(box.left), last(box.bottom), last(box.right))


def hole_extent(mask: torch.Tensor) -> Box | None:
    """The box of the hole pixels of the whole batch grown by ``EXACT_MARGIN`` inside the image;
    None if there is no hole."""
    rows = torch.nonzero(mask.amax(dim=(0, 1, 3)) > 0.5)
    cols = torch.nonzero(mask.amax(dim=(0, 1, 2)) > 0.5)
    if rows.numel() == 0:
        return None
    height, width = mask.shape[-2:]
    return Box(max(0, int(rows[0]) - EXACT_MARGIN), max(0, int(cols[0]) - EXACT_MARGIN),
               min(height, int(rows[-1]) + 1 + EXACT_MARGIN), min(width, int(cols[-1]) + 1 + EXACT_MARGIN))


def read_box(layers: tuple[nn.Module, ...], mask: torch.Tensor) -> Box | None:
    """The box of the 1/4-resolution input of ``layers`` (ending at full resolution) that the
    hole pixels of ``mask`` read. None when there is no hole."""
    extent = hole_extent(mask)
    if extent is None:
        return None
    return boxes_read(layers, extent, (mask.shape[-2] // TAIL_SCALE, mask.shape[-1] // TAIL_SCALE))[1][0]


def boxes_read(
    layers: tuple[nn.Module, ...], box: Box, size: tuple[int, int]
) -> tuple[list[tuple[int, int]], list[Box]]:
    """Each layer's input size (the first's is ``size``) and the box of each layer's input that
    ``box`` of the last layer's output reads, carried back through every :func:`input_box`; the
    last entry of the boxes is ``box`` itself."""
    sizes = [size]
    for layer in layers[:-1]:
        sizes.append(output_size(layer, sizes[-1]))
    boxes = [box]
    for layer, layer_size in zip(reversed(layers), reversed(sizes)):
        boxes.append(input_box(layer, boxes[-1], layer_size))
    return sizes, boxes[::-1]


def run_toward(layers: tuple[GenConv, ...], h: torch.Tensor, box: Box | None) -> torch.Tensor:
    """Run ``layers`` on the map ``h``; with a ``box``, return the last output inside it only.

    Each layer then computes just what the layers after it read (:func:`input_box`: the next
    one's box grown by its reach, 16 for the rate-16 conv, and scaled back through the stride-2
    ones), clipped to the map. The values inside ``box`` are those of the whole-map computation.
    """
    if box is None:
        for layer in layers:
            h = layer(h)
        return h
    sizes, boxes = boxes_read(layers, box, tuple(h.shape[-2:]))
    have = Box(0, 0, *sizes[0])
    for layer, want, size in zip(layers, boxes[1:], sizes):
        h = forward_box(layer, h, have, want, size)
        have = want
    return h


def _span(layer: GenConv) -> int:
    """How many more input pixels than one an output pixel of ``layer`` reads, along each axis."""
    return layer.conv.dilation[0] * (layer.conv.kernel_size[0] - 1)


def output_size(layer: nn.Module, size: tuple[int, int]) -> tuple[int, int]:
    """(height, width) of the output of a :class:`GenConv` or :class:`GenUpConv` for an input of ``size``."""
    if isinstance(layer, GenUpConv):
        return 2 * size[0], 2 * size[1]
    left, right, top, bottom = layer.pads(*size)
    stride, span = layer.conv.stride[0], _span(layer)
    return ((size[0] + top + bottom - span - 1) // stride + 1,
            (size[1] + left + right - span - 1) // stride + 1)


def input_box(layer: nn.Module, want: Box, size: tuple[int, int]) -> Box:
    """The box of an input of ``size`` that the output pixels inside ``want`` read, clipped to it.

    :class:`GenConv`: output pixel i reads the padded input from ``stride * i`` on, ``span + 1``
    pixels. :class:`GenUpConv`: output pixel v reads upsampled pixels v - 1 to v + 1, original
    (v - 1) // 2 to (v + 1) // 2.
    """
    if isinstance(layer, GenUpConv):
        return Box(max(0, (want.top - 1) // 2), max(0, (want.left - 1) // 2),
                   min(size[0], want.bottom // 2 + 1), min(size[1], want.right // 2 + 1))
    left, _, top, _ = layer.pads(*size)
    stride, span = layer.conv.stride[0], _span(layer)
    return Box(max(0, stride * want.top - top), max(0, stride * want.left - left),
               min(size[0], stride * (want.bottom - 1) - top + span + 1),
               min(size[1], stride * (want.right - 1) - left + span + 1))


def forward_box(layer: GenConv, x: torch.Tensor, have: Box, want: Box, size: tuple[int, int]) -> torch.Tensor:
    """The output of ``layer`` inside the box ``want``, equal to ``layer(whole input)`` there.

    ``x`` is the part inside ``have`` of an input of ``size``; ``have`` holds :func:`input_box`
    of ``want``. Only the sides where ``have`` meets the input's border are padded, as the layer
    pads the whole input there.
    """
    left, right, top, bottom = layer.pads(*size)
    pads = (left * (have.left == 0), right * (have.right == size[1]),
            top * (have.top == 0), bottom * (have.bottom == size[0]))
    x = layer.pad(x, pads)
    y0, x0 = have.top - pads[2], have.left - pads[0]  # input position of x[..., 0, 0]
    stride, span = layer.conv.stride[0], _span(layer)
    x = x[..., stride * want.top - top - y0 : stride * (want.bottom - 1) - top + span + 1 - y0,
          stride * want.left - left - x0 : stride * (want.right - 1) - left + span + 1 - x0]
    return layer.activate(layer.conv(x))


def crop(h: torch.Tensor, box: Box | None) -> torch.Tensor:
    """``h`` (a 1/4-resolution map) inside ``box``, or all of it for None."""
    if box is None:
        return h
    return h[..., box.top : box.bottom, box.left : box.right]


def uncrop(h: torch.Tensor, box: Box | None, like: torch.Tensor) -> torch.Tensor:
    """Place the full-resolution output of a ``box`` crop of the 1/4-resolution map in zeros
    shaped like the input image ``like``."""
    if box is None:
        return h
    full = torch.zeros_like(like)
    s = TAIL_SCALE
    full[..., s * box.top : s * box.bottom, s * box.left : s * box.right] = h
    return full
