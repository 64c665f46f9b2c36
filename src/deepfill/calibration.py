"""Measuring a model's detail weights: how much of its detail to keep at each distance into a hole.

For every hole pixel the Poisson fill is membrane + detail (:mod:`deepfill.blending`). The weight
w that brings membrane + w·detail closest to the truth, in the least-squares sense, over all
pixels at distances in one band, is Σ (truth − membrane)·detail / Σ detail². It is measured on
photos with holes of the evaluation protocols' kinds (run it on training photos, never on the
photos a model is evaluated on), clipped to [0, 1] and written to the model card, where
``blend="calibrated"`` reads it.

    python -m deepfill.calibration --images data/photos/train.flist --weights W --card W.json
"""

from __future__ import annotations

import argparse
import json
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from scipy import ndimage

from deepfill.blending import DetailWeights, membrane_and_detail
from deepfill.evaluate import get_protocol, load_crop, protocol_mask

# Distance bands in the network's pixels; a band's weight is placed at its geometric middle.
BAND_EDGES = (0.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, math.inf)
PROTOCOLS = ("bbox256", "free256", "free512")
MIN_BAND_SHARE = 0.01  # rarer bands (the deepest) are too noisy to measure
# Image i is calibrated with the protocol's hole number MASK_OFFSET + i: holes of the same kinds
# as the evaluation's, never the same ones.
MASK_OFFSET = 1_000_000


def _band_points() -> tuple[float, ...]:
    lows, highs = BAND_EDGES[:-1], BAND_EDGES[1:]
    return tuple(math.sqrt(max(lo, 1.0) * (hi if math.isfinite(hi) else 2 * lo)) for lo, hi in zip(lows, highs))


def band_sums(truth: torch.Tensor, mask: torch.Tensor, prediction: torch.Tensor) -> np.ndarray:
    """[3, bands] sums over one image's hole pixels in each distance band: (truth − membrane)·detail,
    detail², pixels. ``truth``/``prediction`` [1, 3, H, W], ``mask`` [1, 1, H, W], 1 = hole."""
    hole = mask > 0.5
    membrane, detail = membrane_and_detail(prediction, truth, hole)
    residual = (truth - membrane)[0].permute(1, 2, 0).double().cpu().numpy()
    detail = detail[0].permute(1, 2, 0).double().cpu().numpy()
    hole = hole[0, 0].cpu().numpy()
    distance = ndimage.distance_transform_edt(hole)
    sums = np.zeros((3, len(BAND_EDGES) - 1))
    for band, (lo, hi) in enumerate(zip(BAND_EDGES, BAND_EDGES[1:])):
        selected = hole & (distance > lo) & (distance <= hi)
        sums[:, band] = (residual[selected] * detail[selected]).sum(), np.square(detail[selected]).sum(), selected.sum()
    return sums


def weights_from_sums(sums: np.ndarray) -> DetailWeights:
    """The least-squares weight of each band, clipped to [0, 1]; a band with under
    ``MIN_BAND_SHARE`` of the pixels takes the nearest well-measured band's weight."""
    numerator, denominator, pixels = sums
    measured = [b for b in range(len(pixels))
                if pixels[b] >= MIN_BAND_SHARE * pixels.sum() and pixels[b] and denominator[b] > 0]
    if not measured:
        raise ValueError("no hole pixels to calibrate on")
    weights = []
    for band in range(len(pixels)):
        nearest = min(measured, key=lambda b: abs(b - band))
        weights.append(round(float(np.clip(numerator[nearest] / denominator[nearest], 0.0, 1.0)), 3))
    return DetailWeights(_band_points(), tuple(weights))


def calibrate(inpainter, images: Sequence[str | Path], protocols: Sequence[str] = PROTOCOLS,
              progress: bool = True) -> tuple[DetailWeights, list[int]]:
    """The detail weights of ``inpainter``'s model over ``images`` × ``protocols``, and the number
    of hole pixels behind each band."""
    from tqdm.auto import tqdm

    sums = np.zeros((3, len(BAND_EDGES) - 1))
    work = [(p, i, path) for p in protocols for i, path in enumerate(images)]
    for name, index, path in tqdm(work, desc="calibrate", unit="img", disable=not progress):
        protocol = get_protocol(name)
        truth = torch.from_numpy(load_crop(path, protocol.size)).permute(2, 0, 1)[None].to(inpainter.device)
        mask = torch.from_numpy(protocol_mask(protocol, MASK_OFFSET + index)[0])[None, None].to(inpainter.device)
        prediction, _ = inpainter._predict(truth.contiguous() * (1 - mask), mask, return_flow=False)
        sums += band_sums(truth, mask, prediction)
    return weights_from_sums(sums), [int(n) for n in sums[2]]


def main(argv: Sequence[str] | None = None) -> int:
    from deepfill.datasets import list_images
    from deepfill.inpainter import Inpainter

    p = argparse.ArgumentParser(prog="python -m deepfill.calibration", description=__doc__.split("\n\n")[0])
    p.add_argument("--images", required=True, help="folder or file list of training photos (not evaluation ones)")
    p.add_argument("--weights", help="generator .safetensors (default: the bundled model)")
    p.add_argument("--card", help="model card to write the weights into (default: print them)")
    p.add_argument("--limit", type=int, help="use the first N images")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda (default: auto)")
    args = p.parse_args(argv)
    images = list_images(args.images)[: args.limit]
    inpainter = Inpainter.from_pretrained(args.weights, device=args.device)
    weights, pixels = calibrate(inpainter, images)
    entry = {"distances": [round(d, 2) for d in weights.distances], "weights": list(weights.weights),
             "measured_on": f"{len(images)} images ({args.images}) x {', '.join(PROTOCOLS)} holes", "pixels": pixels}
    if args.card:
        card_path = Path(args.card)
        card = json.loads(card_path.read_text())
        card["detail_weights"] = entry
        card_path.write_text(json.dumps(card, indent=2) + "\n")
        print(f"wrote detail_weights to {card_path}")
    print(json.dumps(entry))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
