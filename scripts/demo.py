"""`make demo`: inpaint the bundled example photos with the bundled model.

Writes each result and a side-by-side overview (masked input | result | original) to --out.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from deepfill.inpainter import Inpainter
from deepfill.processing import load_mask, load_picture

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
ROW_HEIGHT = 240


def masked_view(image: Image.Image, hole: np.ndarray) -> Image.Image:
    pixels = np.asarray(image.convert("RGB")).copy()
    pixels[hole] = (255, 255, 255)
    return Image.fromarray(pixels)


def side_by_side(rows: list[tuple[str, list[Image.Image]]]) -> Image.Image:
    labels = ["masked input", "deepfill", "original"]
    scaled = [[im.resize((round(im.width * ROW_HEIGHT / im.height), ROW_HEIGHT)) for im in ims] for _, ims in rows]
    width = max(sum(im.width for im in ims) for ims in scaled) + 10 * 4
    sheet = Image.new("RGB", (width, 24 + len(rows) * (ROW_HEIGHT + 10)), "white")
    draw = ImageDraw.Draw(sheet)
    x = 10
    for label, im in zip(labels, scaled[0]):
        draw.text((x, 6), label, fill="black")
        x += im.width + 10
    for r, ims in enumerate(scaled):
        x, y = 10, 24 + r * (ROW_HEIGHT + 10)
        for im in ims:
            sheet.paste(im, (x, y))
            x += im.width + 10
    return sheet


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=Path("demo-output"))
    parser.add_argument("--weights", type=Path, help="generator weights (default: bundled)")
    args = parser.parse_args()

    inpainter = Inpainter.from_pretrained(args.weights, device="auto")
    card = inpainter.card
    if not inpainter.is_trained:
        print("NOTE: the bundled model is an UNTRAINED placeholder (random weights). The fills below show "
              "that the pipeline runs end to end; they are not meaningful inpainting.")
    else:
        print(f"model: {card.get('name', 'deepfill-v1')}, trained {card.get('steps', '?')} steps on "
              f"{card.get('images_seen', '?')} images")
        if card.get("status"):
            print(f"NOTE: {card['status']}")
    args.out.mkdir(parents=True, exist_ok=True)
    rows = []
    for mask_path in sorted(EXAMPLES.glob("*_mask_*.png")):
        stem, kind = mask_path.stem.split("_mask_")
        picture = load_picture(EXAMPLES / f"{stem}.jpg")
        hole = load_mask(mask_path, picture.size)
        filled, _ = inpainter.fill(picture.rgb(), hole)
        result = picture.with_fill(filled, hole).to_image()
        out_path = args.out / f"{stem}_{kind}.png"
        result.save(out_path)
        original = picture.to_image()
        rows.append((out_path.name, [masked_view(original, hole), result, original]))
        print(f"  {out_path}")
    overview = args.out / "side_by_side.jpg"
    side_by_side(rows).save(overview, quality=90)
    print(f"wrote {len(rows)} results and the overview {overview}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
