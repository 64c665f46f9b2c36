"""``deepfill inpaint``: fill one image, or every image of a folder that has a mask."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from deepfill.cli import warn_if_untrained
from deepfill.config import DEFAULT_MAX_PIXELS
from deepfill.errors import InputError, SizeMismatchError
from deepfill.processing import DEFAULT_JPEG_QUALITY

log = logging.getLogger("deepfill")

IMAGE_EXTENSIONS = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp"}


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "inpaint",
        help="fill the holes of an image (or a folder of images) given a mask",
        description=(
            "Fill the white pixels of MASK in IMAGE. Every pixel outside the hole is kept exactly in lossless "
            "formats (PNG, WebP, TIFF, BMP); JPEG output is re-encoded (--quality), which changes every pixel "
            "slightly. EXIF data and the colour profile are kept. "
            "Folder mode: IMAGE is a folder, --mask-dir holds masks named STEM.png or STEM_mask*.png "
            "(several masks for one image give one output each, named after the mask), "
            "--output is a folder (created; inputs are never overwritten)."
        ),
    )
    p.add_argument("image", type=Path, help="image file, or a folder of images")
    p.add_argument("--mask", type=Path, help="mask file: white (> 127) = hole")
    p.add_argument("--mask-dir", type=Path, help="folder of masks (folder mode)")
    p.add_argument("--output", "-o", type=Path, required=True, help="output file (format from its extension) or folder")
    p.add_argument("--weights", type=Path, help="generator .safetensors (default: the bundled model)")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda (default: auto)")
    p.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"], help="inference precision (default: float32; bfloat16 is ~2x faster on CPUs with AVX-512 or AMX and on GPUs, emulated and very slow on other CPUs)")
    p.add_argument("--attention-map", type=Path, help="also write the colour-coded attention flow image here")
    p.add_argument("--resize-mask", action="store_true", help="resize a mask whose size differs from the image")
    p.add_argument("--mask-from-alpha", action="store_true", help="take the mask's transparent pixels as the hole")
    p.add_argument("--max-pixels", type=int, default=DEFAULT_MAX_PIXELS,
                   help=f"refuse images with more pixels, a decompression-bomb guard (default: {DEFAULT_MAX_PIXELS:,})")
    p.add_argument("--blend", default="calibrated", choices=["calibrated", "poisson", "none"],
                   help="how the fill meets the known pixels: calibrated (default; gradient-domain compositing, no "
                        "seam or colour shift, the network's detail weighted by how far the model is reliable, "
                        "smoother deep inside large holes), poisson (the same with all of the network's detail: "
                        "sharper, with its artefacts) or none (the prediction pasted as it is)")
    p.add_argument("--max-size", type=int, default=1024,
                   help="images up to this long side run whole; larger ones are filled region by region (default: 1024)")
    p.add_argument("--quality", type=int, default=DEFAULT_JPEG_QUALITY,
                   help=f"JPEG output quality, 1-100 (default: {DEFAULT_JPEG_QUALITY})")
    p.add_argument("--strip-metadata", action="store_true",
                   help="do not copy the input's EXIF data (camera, date, GPS) and colour profile to the output")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output file")
    p.set_defaults(func=run)


def find_masks(image: Path, mask_dir: Path) -> list[Path]:
    """The masks of ``image`` in ``mask_dir``: ``STEM.png`` and every ``STEM_mask*.png`` (never the image)."""
    candidates = [mask_dir / f"{image.stem}.png", *sorted(mask_dir.glob(f"{image.stem}_mask*.png"))]
    return [c for c in candidates if c.is_file() and c.resolve() != image.resolve()]


def output_name(image: Path, mask: Path, masks_of_image: int) -> str:
    """``IMAGE.ext`` for an image's only mask; ``STEM_maskX.ext`` (the mask's name) when it has several."""
    return image.name if masks_of_image == 1 else f"{mask.stem}{image.suffix}"


def _load_inpainter(args: argparse.Namespace):
    from deepfill.inpainter import Inpainter

    inpainter = Inpainter.from_pretrained(args.weights, device=args.device, dtype=args.dtype, max_size=args.max_size,
                                          blend=args.blend)
    warn_if_untrained(inpainter)
    return inpainter


def _load(image_path: Path, mask_path: Path, args: argparse.Namespace):
    from deepfill.processing import load_mask, load_picture

    picture = load_picture(image_path, args.max_pixels)
    try:
        hole = load_mask(mask_path, picture.size, args.resize_mask, args.mask_from_alpha, args.max_pixels)
    except SizeMismatchError as exc:
        raise SizeMismatchError(f"{exc} (pass --resize-mask to resize it)") from None
    return picture, hole


def _inpaint_one(inpainter, picture, hole, output: Path, attention_map: Path | None, args: argparse.Namespace) -> None:
    from deepfill.processing import save_image

    filled, attention = inpainter.inpaint_picture(picture, hole, return_attention=attention_map is not None)
    save_image(filled.to_image(), output, quality=args.quality, keep_metadata=not args.strip_metadata)
    if attention_map is not None:
        save_image(attention, attention_map)


def _check_writable(path: Path, overwrite: bool, inputs: tuple[Path, ...]) -> None:
    from PIL import Image

    if path.suffix.lower() not in Image.registered_extensions():
        raise InputError(f"cannot write {path}: unknown image extension {path.suffix or '(none)'}")
    if any(path.resolve() == p.resolve() for p in inputs):
        raise InputError(f"refusing to overwrite the input {path}")
    if path.exists() and not overwrite:
        raise InputError(f"{path} exists (pass --overwrite to replace it)")
    if not path.parent.is_dir():
        raise InputError(f"output folder does not exist: {path.parent}")


def run(args: argparse.Namespace) -> int:
    if not 1 <= args.quality <= 100:
        raise InputError(f"--quality must be 1-100, got {args.quality}")
    if args.image.is_dir():
        return _run_folder(args)
    if not args.image.exists():
        raise InputError(f"image not found: {args.image}")
    if args.mask_dir is not None:
        raise InputError(f"--mask-dir is for folder mode, but {args.image} is a file (pass --mask for one image)")
    if args.mask is None:
        raise InputError("--mask is required for a single image (or pass a folder and --mask-dir)")
    _check_writable(args.output, args.overwrite, (args.image, args.mask))
    if args.attention_map is not None:
        _check_writable(args.attention_map, args.overwrite, (args.image, args.mask, args.output))
    picture, hole = _load(args.image, args.mask, args)  # bad input fails before the model loads
    inpainter = _load_inpainter(args)
    _inpaint_one(inpainter, picture, hole, args.output, args.attention_map, args)
    print(f"wrote {args.output}" + (f" and {args.attention_map}" if args.attention_map else ""))
    return 0


def _run_folder(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from deepfill.errors import DeepfillError

    if args.mask_dir is None or not args.mask_dir.is_dir():
        raise InputError("folder mode needs --mask-dir pointing to a folder of masks")
    if args.attention_map is not None:
        raise InputError("--attention-map takes a file; it is not available in folder mode")
    images = sorted(p for p in args.image.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS
                    and "_mask" not in p.stem)  # masks kept beside their images are not images to fill
    if not images:
        raise InputError(f"no images in {args.image}")
    out_dir: Path = args.output
    if out_dir.resolve() in (args.image.resolve(), args.mask_dir.resolve()):
        raise InputError("--output must be a folder other than the inputs, which are never overwritten")
    pairs, unmatched = [], []  # (image, mask, output name)
    for image in images:
        masks = find_masks(image, args.mask_dir)
        pairs.extend((image, mask, output_name(image, mask, len(masks))) for mask in masks)
        if not masks:
            unmatched.append(image.name)
    if not pairs:
        raise InputError(f"no image in {args.image} has a mask in {args.mask_dir}")
    out_dir.mkdir(parents=True, exist_ok=True)
    inpainter = _load_inpainter(args)
    failed = skipped = 0
    for image, mask, name in tqdm(pairs, desc="inpainting", unit="image"):
        output = out_dir / name
        if output.exists() and not args.overwrite:
            skipped += 1
            tqdm.write(f"skipped {name}: {output} exists (pass --overwrite)")
            continue
        try:
            _inpaint_one(inpainter, *_load(image, mask, args), output, None, args)
        except DeepfillError as exc:
            failed += 1
            tqdm.write(f"failed {name}: {exc}")
    done = len(pairs) - failed - skipped
    print(f"wrote {done} image(s) to {out_dir}" + (f", {skipped} skipped" if skipped else "")
          + (f", {failed} failed" if failed else ""))
    if unmatched:
        print(f"{len(unmatched)} image(s) without a mask: {', '.join(unmatched)}")
    return 1 if failed else 0
