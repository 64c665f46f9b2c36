"""The Python API: ``Inpainter.from_pretrained().inpaint(image, mask)``.

Strategy: images whose long side is at most ``max_size`` go through the network whole (padded
to a multiple of 8, then cropped back). Larger images are handled region by region: each hole's
bounding box plus a context margin is cut out, downscaled to ``crop_size`` when larger, filled,
scaled back, and only its hole pixels are pasted, so memory and time depend on the holes, not
on the photo.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from scipy import ndimage

from deepfill.blending import BLENDS, Blend, DetailWeights, composite
from deepfill.errors import InputError
from deepfill.geometry import Box
from deepfill.model.contextual_attention import flow_to_image
from deepfill.model.generator import Generator
from deepfill.processing import (
    Picture,
    crop_back,
    from_model_range,
    mask_from_image,
    open_image,
    pad_to_multiple,
    picture_from_image,
    to_model_range,
)
from deepfill.runtime import flush_denormals, has_fast_kernels
from deepfill.weights.io import load_generator

log = logging.getLogger(__name__)

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
ImageInput = Image.Image | np.ndarray | str | Path


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``auto`` picks CUDA when available, else CPU; asking for CUDA without one is an error."""
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(device)
    except RuntimeError:
        raise InputError(f"unknown device {device!r} (use auto, cpu or cuda)") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise InputError("--device cuda was requested but no CUDA GPU is available")
    return device


def hole_regions(hole: np.ndarray, margin_fraction: float = 0.5, min_margin: int = 64) -> list[Box]:
    """Boxes around groups of hole pixels, each grown by a context margin, overlapping ones merged.

    Each connected hole gets its bounding box plus ``max(min_margin, margin_fraction * side)``;
    boxes that overlap are merged by drawing them on a coarse grid and labelling that, until
    no two overlap (linear in the image size per round, whatever the number of holes).
    """
    height, width = hole.shape
    boxes = []
    # Label only the extent of the holes: a 300 x 300 hole in a 12-megapixel photo took 118 ms
    # to label whole, most of the time outside the network.
    hole_rows, hole_cols = np.flatnonzero(hole.any(axis=1)), np.flatnonzero(hole.any(axis=0))
    if hole_rows.size == 0:
        return []
    y0, x0 = int(hole_rows[0]), int(hole_cols[0])
    extent = hole[y0 : hole_rows[-1] + 1, x0 : hole_cols[-1] + 1]
    for rows, cols in ndimage.find_objects(ndimage.label(extent)[0]):
        top, left, bottom, right = rows.start + y0, cols.start + x0, rows.stop + y0, cols.stop + x0
        m = max(min_margin, int(max(bottom - top, right - left) * margin_fraction))
        boxes.append(Box(max(0, top - m), max(0, left - m), min(height, bottom + m), min(width, right + m)))
    cell = 8
    while len(boxes) > 1:
        grid = np.zeros((-(-height // cell), -(-width // cell)), bool)
        for top, left, bottom, right in boxes:
            grid[top // cell : -(-bottom // cell), left // cell : -(-right // cell)] = True
        groups = ndimage.find_objects(ndimage.label(grid)[0])
        if len(groups) == len(boxes):
            break
        merged = []
        for rows, cols in groups:
            inside = [b for b in boxes if rows.start <= b.top // cell < rows.stop and cols.start <= b.left // cell < cols.stop]
            merged.append(Box(min(b.top for b in inside), min(b.left for b in inside),
                              max(b.bottom for b in inside), max(b.right for b in inside)))
        boxes = merged
    return boxes


class Inpainter:
    """Fills holes in images with a DeepFill v1 generator.

    Args:
        generator: the network; the Inpainter takes it over (moves and casts it in place).
        card: the model card of the weights, kept for reporting.
        device: ``"auto"``, ``"cpu"``, ``"cuda"`` or a torch device.
        dtype: ``"float32"``, or ``"bfloat16"``/``"float16"``: weights and activations in that
            type (the attention softmax stays in float32). The weights are channels-last in
            every type: the convolutions then run ~10 % faster on CPUs.
        max_size: long side up to which an image is processed whole.
        crop_size: long side to which the regions of larger images are downscaled when larger.
        blend: how the prediction meets the known pixels (:mod:`deepfill.blending`):
            ``"calibrated"`` (gradient-domain, no seam, the network's detail weighted by the
            model card's ``detail_weights``; Poisson for a model without them), ``"poisson"``
            (gradient-domain with all of the detail) or ``"none"`` (pasted as predicted).

    Creating one flushes float32 denormals to zero (:mod:`deepfill.runtime`) in the creating
    thread and the threads started after it; call ``deepfill.runtime.tune_process()`` before any
    other torch work to have it in torch's worker threads for certain.
    """

    def __init__(
        self,
        generator: Generator,
        card: dict[str, Any] | None = None,
        device: str | torch.device = "auto",
        dtype: str = "float32",
        max_size: int = 1024,
        crop_size: int = 512,
        blend: Blend = "calibrated",
    ) -> None:
        if dtype not in DTYPES:
            raise ValueError(f"dtype must be one of {', '.join(DTYPES)}, got {dtype!r}")
        if blend not in BLENDS:
            raise ValueError(f"blend must be one of {', '.join(BLENDS)}, got {blend!r}")
        self.blend = blend
        self.device = resolve_device(device)
        self.dtype = DTYPES[dtype]
        if not has_fast_kernels(self.dtype, self.device):
            log.warning("warning: this %s has no fast %s kernels (it emulates them): expect it to be 10-100x "
                        "slower than float32", "CPU" if self.device.type == "cpu" else "GPU", dtype)
        flush_denormals()  # 3x at 512 x 512 float32 on photos (benchmarks/results/runtime_settings.json)
        self.generator = generator.to(self.device).eval()
        self.generator.to(self.dtype, memory_format=torch.channels_last)
        self.card = card or {}
        self.detail_weights = DetailWeights.from_card(self.card)
        if self.detail_weights is None and blend == "calibrated":
            log.info("these weights have no detail_weights in their card (python -m deepfill.calibration "
                     "measures them): calibrated blending is Poisson blending for them")
        self.max_size = max_size
        self.crop_size = crop_size

    @classmethod
    def from_pretrained(cls, weights: str | Path | None = None, **kwargs: Any) -> "Inpainter":
        """Load ``weights`` (a .safetensors file), or the weights bundled with the package."""
        generator, card = load_generator(weights)
        return cls(generator, card, **kwargs)

    @property
    def is_trained(self) -> bool:
        """False for the placeholder weights shipped before a trained model exists."""
        return bool(self.card.get("trained", True))

    def inpaint_tensor(self, images: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
        """Fill a batch: images [B, 3, H, W] in [0, 1], masks [B, 1, H, W] with 1 = hole.

        Returns the composited result in [0, 1] on the input's device.
        """
        # Contiguous like the masks: mixed layouts (an HWC array's view) make every blend slow.
        x = images.to(self.device, torch.float32).contiguous()
        m = (masks.to(self.device, torch.float32) > 0.5).float()
        prediction, _ = self._predict(x, m, return_flow=False)
        return composite(prediction, x, m, self.blend, self.detail_weights).clamp(0, 1).to(images.device)

    @torch.inference_mode()
    def _predict(
        self, images: torch.Tensor, masks: torch.Tensor, return_flow: bool
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The network's prediction in [0, 1] (exact in the holes and on their ring only) and, if
        asked, the colour-coded attention map [B, 3, H, W]. ``images`` float32 and ``masks``
        {0, 1} float32, both on the Inpainter's device."""
        if images.dim() != 4 or images.shape[1] != 3 or masks.shape != (images.shape[0], 1, *images.shape[2:]):
            raise ValueError(f"expected images [B, 3, H, W] and masks [B, 1, H, W], got {tuple(images.shape)} and {tuple(masks.shape)}")
        g = self.generator
        xp, mp, size = pad_to_multiple(to_model_range(images), masks, g.pad_multiple, g.min_size)
        if self.dtype != torch.float32:
            xp, mp = xp.to(self.dtype), mp.to(self.dtype)  # 3 channels: the layout matters little
        _, refined, flow = g(xp, mp, return_flow=return_flow, hole_only=True)
        prediction = crop_back(from_model_range(refined.float()), size).clamp(0, 1)
        if not return_flow:
            return prediction, None
        flow_image = flow_to_image(flow)
        flow_image = F.interpolate(flow_image, size=xp.shape[-2:], mode="nearest")
        return prediction, crop_back(flow_image, size)

    @torch.inference_mode()
    def _fill_region(
        self, rgb: np.ndarray, hole: np.ndarray, return_flow: bool, limit: int, blend: Blend
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """Fill one region, the network run on it downscaled when its long side exceeds ``limit``;
        the prediction is composited at the region's own resolution."""
        x = torch.from_numpy(np.ascontiguousarray(rgb)).permute(2, 0, 1)[None].to(self.device, torch.float32).contiguous()
        m = torch.from_numpy(hole)[None, None].to(self.device, torch.float32)
        height, width = hole.shape
        scale = min(1.0, limit / max(height, width))
        if scale < 1.0:
            small = (max(1, round(height * scale)), max(1, round(width * scale)))
            # Known pixels are averaged from known pixels only: whatever the hole holds (the
            # photo's old content, or black) must not bleed into the context the network sees.
            down = lambda t: F.interpolate(t, size=small, mode="bilinear", antialias=True, align_corners=False)  # noqa: E731
            known = 1.0 - m
            x_small = (down(x * known) / down(known).clamp_min(1e-6)).clamp(0, 1)
            m_small = (F.interpolate(m, size=small, mode="area") > 0).float()  # keep thin holes
            prediction, flow = self._predict(x_small, m_small, return_flow)
            prediction = F.interpolate(prediction, size=(height, width), mode="bilinear", align_corners=False)
            if flow is not None:
                flow = F.interpolate(flow, size=(height, width), mode="nearest")
        else:
            prediction, flow = self._predict(x, m, return_flow)
        out = composite(prediction, x, m, blend, self.detail_weights, distance_scale=scale)
        to_numpy = lambda t: t[0].permute(1, 2, 0).clamp(0, 1).float().cpu().numpy()  # noqa: E731
        return to_numpy(out), (to_numpy(flow) if flow is not None else None)

    def _regions(
        self, rgb_of: Callable[[Box], np.ndarray], hole: np.ndarray, return_flow: bool, blend: Blend | None
    ) -> Iterator[tuple[Box, np.ndarray, np.ndarray | None]]:
        """Yield (box, filled rgb, flow) for the whole image, or per hole region when it is large.

        ``rgb_of(box)`` gives float [h, w, 3] of a box, so a large photo is converted only there.
        ``blend`` None is the Inpainter's own.
        """
        blend = blend or self.blend
        if blend not in BLENDS:
            raise InputError(f"blend must be one of {', '.join(BLENDS)}, got {blend!r}")
        height, width = hole.shape
        if hole.all():
            # The network would return one flat colour: nothing tells it what the image shows.
            raise InputError("the mask covers the whole image: there are no known pixels to fill from "
                             "(paint only the part to replace)")
        if max(height, width) <= self.max_size:
            boxes, limit = [Box(0, 0, height, width)], self.max_size
        else:
            boxes, limit = hole_regions(hole), self.crop_size
        for box in boxes:
            top, left, bottom, right = box
            out, flow = self._fill_region(rgb_of(box), hole[top:bottom, left:right], return_flow, limit, blend)
            yield box, out, flow

    def fill(
        self, rgb: np.ndarray, hole: np.ndarray, return_flow: bool = False, blend: Blend | None = None
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """Fill float [H, W, 3] ``rgb`` in [0, 1] where bool [H, W] ``hole``; returns (rgb, flow image or None).

        Only hole pixels change; the flow image is white where no attention was computed.
        """
        filled = rgb.copy()
        flow = np.ones_like(rgb) if return_flow else None
        for (top, left, bottom, right), out, region_flow in self._regions(
            lambda b: rgb[b.top : b.bottom, b.left : b.right], hole, return_flow, blend
        ):
            region_hole = hole[top:bottom, left:right]
            filled[top:bottom, left:right][region_hole] = out[region_hole]
            if flow is not None:
                flow[top:bottom, left:right] = region_flow
        return filled, flow

    def inpaint_picture(
        self, picture: Picture, hole: np.ndarray, return_attention: bool = False, blend: Blend | None = None
    ) -> tuple[Picture, Image.Image | None]:
        """Fill ``hole`` (bool [H, W]) of a decoded picture; known pixels are kept exactly.

        Returns the filled picture and, if asked, the attention map (white where nothing was filled).
        """
        flow = np.full((*hole.shape, 3), 255, np.uint8) if return_attention else None
        if not hole.any():
            log.warning("the mask has no hole pixels; the image is returned unchanged")
        else:
            for (top, left, bottom, right), out, region_flow in self._regions(
                lambda b: picture.crop(b).rgb(), hole, return_attention, blend
            ):
                picture = picture.with_fill(out, hole[top:bottom, left:right], offset=(top, left))
                if flow is not None:
                    flow[top:bottom, left:right] = np.rint(region_flow * 255).astype(np.uint8)
        return picture, (Image.fromarray(flow, "RGB") if flow is not None else None)

    def _prepare(self, image: ImageInput, mask: ImageInput, resize_mask: bool,
                 mask_from_alpha: bool) -> tuple[Picture, np.ndarray]:
        if isinstance(image, (str, Path)):
            image = open_image(image, what="image")
        elif isinstance(image, np.ndarray):
            image = Image.fromarray(image)
        picture = picture_from_image(image)
        if isinstance(mask, (str, Path)):
            mask = open_image(mask, what="mask")
        elif isinstance(mask, np.ndarray):
            if mask.dtype == bool or mask.max(initial=0) <= 1:  # {0, 1} or boolean: 1 = hole
                mask = (mask > 0.5).astype(np.uint8) * 255
            mask = Image.fromarray(mask)
        return picture, mask_from_image(mask, picture.size, resize_mask, mask_from_alpha)

    def inpaint_with_attention(
        self,
        image: ImageInput,
        mask: ImageInput,
        resize_mask: bool = False,
        mask_from_alpha: bool = False,
        blend: Blend | None = None,
    ) -> tuple[Image.Image, Image.Image]:
        """Like :meth:`inpaint`, and also the colour-coded attention map (white = no hole)."""
        picture, hole = self._prepare(image, mask, resize_mask, mask_from_alpha)
        filled, attention = self.inpaint_picture(picture, hole, return_attention=True, blend=blend)
        return filled.to_image(), attention

    def inpaint(
        self,
        image: ImageInput,
        mask: ImageInput,
        resize_mask: bool = False,
        mask_from_alpha: bool = False,
        blend: Blend | None = None,
    ) -> Image.Image:
        """Fill the white (> 127) pixels of ``mask`` in ``image``; every other pixel is kept exactly.

        ``image`` and ``mask`` are Pillow images, NumPy arrays or paths to image files. Any Pillow mode works (grayscale, 16-bit, alpha kept; filled pixels become opaque); EXIF
        orientation is applied. A NumPy mask may also be boolean or {0, 1}. ``blend`` overrides
        the Inpainter's compositing for this call.
        """
        picture, hole = self._prepare(image, mask, resize_mask, mask_from_alpha)
        return self.inpaint_picture(picture, hole, blend=blend)[0].to_image()
