"""``deepfill inpaint`` end to end with the bundled model: sizes, masks, modes and bad input."""

import logging

import numpy as np
import pytest
from PIL import Image

from conftest import photo, rect_mask
from deepfill.cli import main
from deepfill.errors import InputError
from deepfill.masks import brush_stroke_mask


HOLE = (30, 40, 66, 90)  # top, left, bottom, right in a 128x96 image


def _free_form(width, height, seed=0):
    hole = brush_stroke_mask(np.random.default_rng(seed), height, width)
    return Image.fromarray((hole * 255).astype(np.uint8), "L")


@pytest.mark.parametrize("size", [(517, 389), (256, 256), (1024, 768)])
@pytest.mark.parametrize("kind", ["rect", "free"])
def test_known_pixels_are_bit_identical(tmp_path, size, kind):
    width, height = size
    image = photo(width, height)
    mask = rect_mask(width, height, (height // 4, width // 3, height // 2, width // 2)) if kind == "rect" \
        else _free_form(width, height)
    image.save(tmp_path / "in.png")
    mask.save(tmp_path / "mask.png")
    assert main(["inpaint", str(tmp_path / "in.png"), "--mask", str(tmp_path / "mask.png"),
                 "--output", str(tmp_path / "out.png"), "--device", "cpu"]) == 0
    out = np.asarray(Image.open(tmp_path / "out.png"))
    src = np.asarray(image)
    hole = np.asarray(mask) > 127
    assert out.shape == src.shape
    assert np.array_equal(out[~hole], src[~hole])
    assert (out[hole] != src[hole]).any(axis=-1).mean() > 0.9
    # What was under the hole is never seen: other pixels there give the same output, bit for bit.
    scrambled = src.copy()
    scrambled[hole] = np.random.default_rng(0).integers(0, 256, (int(hole.sum()), 3), dtype=np.uint8)
    Image.fromarray(scrambled).save(tmp_path / "scrambled.png")
    assert main(["inpaint", str(tmp_path / "scrambled.png"), "--mask", str(tmp_path / "mask.png"),
                 "--output", str(tmp_path / "out2.png"), "--device", "cpu"]) == 0
    assert np.array_equal(np.asarray(Image.open(tmp_path / "out2.png")), out)


def test_attention_map_and_several_holes(tmp_path):
    image = photo(200, 150)
    mask = np.zeros((150, 200), np.uint8)
    mask[10:40, 10:50] = 255
    mask[100:140, 150:190] = 255
    image.save(tmp_path / "in.jpg", quality=95)
    Image.fromarray(mask).save(tmp_path / "m.png")
    assert main(["inpaint", str(tmp_path / "in.jpg"), "--mask", str(tmp_path / "m.png"), "-o",
                 str(tmp_path / "out.png"), "--attention-map", str(tmp_path / "flow.png")]) == 0
    flow = Image.open(tmp_path / "flow.png")
    assert flow.size == (200, 150) and flow.mode == "RGB"
    colours = np.asarray(flow).astype(int)
    white = (colours == 255).all(axis=-1)
    near = np.zeros((150, 200), bool)  # the holes and 16 px around them (the map is made at 1/4 scale)
    near[0:56, 0:66] = near[84:150, 134:200] = True
    assert white[~near].all()  # known pixels copy nothing: no offset
    for rows, cols in ((slice(10, 40), slice(10, 50)), (slice(100, 140), slice(150, 190))):
        inside = colours[rows, cols].reshape(-1, 3)
        assert not white[rows, cols].any() and inside.std(axis=0).max() > 5  # offsets, varying over the hole


def test_modes_alpha_grayscale_16bit_and_exif(tmp_path, inpainter):
    hole = np.zeros((96, 128), bool)
    hole[30:60, 40:90] = True
    rgba = photo(128, 96).convert("RGBA")
    alpha = np.full((96, 128), 200, np.uint8)
    alpha[:10] = 0
    rgba.putalpha(Image.fromarray(alpha))
    out = inpainter.inpaint(rgba, hole)
    assert out.mode == "RGBA" and np.array_equal(np.asarray(out)[:, :, 3], np.where(hole, 255, alpha))

    gray = photo(128, 96).convert("L")
    out = inpainter.inpaint(gray, hole)
    assert out.mode == "L" and np.array_equal(np.asarray(out)[~hole], np.asarray(gray)[~hole])

    deep = Image.fromarray((np.asarray(gray).astype(np.uint16) * 257 + 3))
    path = tmp_path / "deep.png"
    deep.save(path)
    from deepfill.processing import load_picture

    picture = load_picture(path)
    assert picture.peak == 65535
    filled = picture.with_fill(inpainter.fill(picture.rgb(), hole)[0], hole)
    filled.to_image().save(tmp_path / "deep_out.png")
    back = np.asarray(Image.open(tmp_path / "deep_out.png"))
    assert back.dtype.itemsize >= 2 and np.array_equal(back[~hole], np.asarray(deep)[~hole])

    # EXIF orientation 6 (rotate 90° clockwise to display): the output is upright and 96 wide.
    rotated = photo(128, 96)
    exif = Image.Exif()
    exif[0x0112] = 6
    rotated.save(tmp_path / "exif.jpg", exif=exif, quality=95)
    upright_hole = np.zeros((128, 96), np.uint8)
    upright_hole[40:80, 20:60] = 255
    Image.fromarray(upright_hole).save(tmp_path / "exif_mask.png")
    assert main(["inpaint", str(tmp_path / "exif.jpg"), "--mask", str(tmp_path / "exif_mask.png"),
                 "-o", str(tmp_path / "exif_out.png")]) == 0
    assert Image.open(tmp_path / "exif_out.png").size == (96, 128)


def test_empty_mask_returns_image_unchanged(tmp_path, caplog):
    photo(64, 48).save(tmp_path / "in.png")
    Image.new("L", (64, 48), 0).save(tmp_path / "m.png")
    with caplog.at_level(logging.WARNING):
        assert main(["inpaint", str(tmp_path / "in.png"), "--mask", str(tmp_path / "m.png"), "-o", str(tmp_path / "o.png")]) == 0
    assert "no hole" in caplog.text
    assert np.array_equal(np.asarray(Image.open(tmp_path / "o.png")), np.asarray(Image.open(tmp_path / "in.png")))


def test_large_photo_uses_crops(tmp_path, inpainter, monkeypatch):
    image = photo(2600, 1800)
    hole = np.zeros((1800, 2600), bool)
    hole[600:800, 1000:1250] = True
    hole[1500:1560, 100:200] = True
    regions = []
    original = inpainter._fill_region
    monkeypatch.setattr(inpainter, "_fill_region", lambda rgb, *a: regions.append(rgb.shape[:2]) or original(rgb, *a))
    out = np.asarray(inpainter.inpaint(image, hole))
    assert sorted(regions) == [(188, 228), (450, 500)]  # two crops, each hole plus its margin
    src = np.asarray(image)
    assert np.array_equal(out[~hole], src[~hole])
    assert (out[hole] != src[hole]).any(axis=-1).mean() > 0.9


def test_folder_mode(tmp_path, capsys):
    images, masks, out = tmp_path / "images", tmp_path / "masks", tmp_path / "out"
    images.mkdir()
    masks.mkdir()
    for name in ("a", "b", "c"):
        photo(80, 72, seed=len(name)).save(images / f"{name}.png")
    rect_mask(80, 72, (10, 10, 40, 40)).save(masks / "a.png")
    rect_mask(80, 72, (20, 30, 50, 70)).save(masks / "b_mask001.png")
    before = {p: p.read_bytes() for p in images.iterdir()}
    assert main(["inpaint", str(images), "--mask-dir", str(masks), "--output", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["a.png", "b.png"]
    assert "without a mask: c.png" in capsys.readouterr().out
    assert before == {p: p.read_bytes() for p in images.iterdir()}
    assert main(["inpaint", str(images), "--mask-dir", str(masks), "--output", str(images)]) == 2


# --- bad input: one-line error, non-zero exit, nothing written ---------------------------

def _run_bad(tmp_path, capsys, args):
    out = tmp_path / "out.png"
    code = main(["inpaint", *args, "--output", str(out)])
    err = capsys.readouterr().err.strip()
    assert code != 0
    assert err.startswith("deepfill: error:") and "\n" not in err, err
    assert not out.exists()
    return err


# PostScript that loops forever: Pillow would run it through Ghostscript, with no time limit.
LOOPING_EPS = b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 64 64\n{ } loop\n"


@pytest.fixture
def files(tmp_path):
    photo(64, 48).save(tmp_path / "img.png")
    rect_mask(64, 48, (5, 5, 20, 20)).save(tmp_path / "mask.png")
    rect_mask(60, 48, (5, 5, 20, 20)).save(tmp_path / "small_mask.png")
    (tmp_path / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 50)
    (tmp_path / "text.png").write_text("not an image")
    (tmp_path / "loop.eps").write_bytes(LOOPING_EPS)
    full = tmp_path / "truncated.jpg"
    photo(64, 48).save(full, quality=90)
    full.write_bytes(full.read_bytes()[:300])
    return tmp_path


@pytest.mark.parametrize("image,mask,needle", [
    ("missing.png", "mask.png", "not found"),
    ("text.png", "mask.png", "not an image"),
    ("corrupt.png", "mask.png", "corrupt.png"),
    ("truncated.jpg", "mask.png", "corrupt"),
    ("img.png", "missing.png", "mask not found"),
    ("img.png", "text.png", "not an image"),
    ("loop.eps", "mask.png", "not an image in a supported format (PNG, JPEG, WEBP"),
    ("img.png", "loop.eps", "not an image in a supported format"),
    ("img.png", "small_mask.png", "60x48 differs from image size 64x48"),
])
def test_bad_images_and_masks(files, capsys, image, mask, needle):
    err = _run_bad(files, capsys, [str(files / image), "--mask", str(files / mask)])
    assert needle in err


def test_resize_mask_accepts_other_sizes(files):
    assert main(["inpaint", str(files / "img.png"), "--mask", str(files / "small_mask.png"), "--resize-mask",
                 "-o", str(files / "ok.png")]) == 0


def test_pixel_limit(files, capsys):
    err = _run_bad(files, capsys, [str(files / "img.png"), "--mask", str(files / "mask.png"), "--max-pixels", "1000"])
    assert "above the limit of 1,000" in err


def test_bad_weights(files, capsys):
    (files / "junk.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json}      ")
    from safetensors.torch import save_file
    import torch

    save_file({"conv1.conv.weight": torch.zeros(2, 2)}, str(files / "other.safetensors"))
    base = [str(files / "img.png"), "--mask", str(files / "mask.png"), "--weights"]
    assert "weights file not found" in _run_bad(files, capsys, [*base, str(files / "none.safetensors")])
    assert "not a valid .safetensors" in _run_bad(files, capsys, [*base, str(files / "junk.safetensors")])
    assert "not a DeepFill v1 generator" in _run_bad(files, capsys, [*base, str(files / "other.safetensors")])


def _hostile_weights(folder, name: str, config: str | None = None, poison: bool = False):
    """The bundled tensors saved with the metadata ``model_config`` replaced, or one tensor all NaN."""
    import torch
    from safetensors import safe_open
    from safetensors.torch import save_file

    from deepfill.weights.io import BUNDLED_WEIGHTS

    with safe_open(str(BUNDLED_WEIGHTS), "pt") as fh:
        tensors = {key: fh.get_tensor(key) for key in fh.keys()}
        metadata = fh.metadata()
    if config is not None:
        metadata["model_config"] = config
    if poison:
        tensors["conv1.conv.weight"] = torch.full_like(tensors["conv1.conv.weight"], float("nan"))
    path = folder / f"{name}.safetensors"
    save_file(tensors, str(path), metadata=metadata)
    return path


@pytest.mark.parametrize("name,config,poison,needle", [
    ("not_json", "{cnum: 32", False, "unusable model config"),
    ("rate_zero", '{"ca_rate": 0}', False, "ca_rate must be at least 1"),
    ("ksize_zero", '{"ca_ksize": 0}', False, "ca_ksize must be at least 1"),
    ("huge", '{"cnum": 4096}', False, "cnum must be between 2 and 256"),
    ("wide", '{"cnum": 256}', False, "not a DeepFill v1 generator"),  # allowed, but the shapes are not
    ("list", "[1, 2]", False, "unusable model config"),
    ("nan", None, True, "NaN or infinite"),
])
def test_hostile_weights_are_one_line_errors(files, capsys, name, config, poison, needle):
    """Metadata and values are checked before anything is built (cnum 256 allocates nothing)."""
    path = _hostile_weights(files, name, config, poison)
    err = _run_bad(files, capsys, [str(files / "img.png"), "--mask", str(files / "mask.png"), "--weights", str(path)])
    assert needle in err and "Traceback" not in err


def test_output_is_never_overwritten_without_asking(files, capsys):
    out = files / "exists.png"
    out.write_bytes(b"keep")
    code = main(["inpaint", str(files / "img.png"), "--mask", str(files / "mask.png"), "-o", str(out)])
    assert code != 0 and "exists" in capsys.readouterr().err
    assert out.read_bytes() == b"keep"


def test_masks_beside_their_images(tmp_path):
    folder, out = tmp_path / "photos", tmp_path / "out"
    folder.mkdir()
    photo(80, 72).save(folder / "a.png")
    rect_mask(80, 72, (10, 10, 40, 40)).save(folder / "a_mask.png")
    assert main(["inpaint", str(folder), "--mask-dir", str(folder), "--output", str(out)]) == 0
    assert [p.name for p in out.iterdir()] == ["a.png"]


def test_numpy_masks_of_zeros_and_ones(inpainter):
    image = photo(96, 80)
    hole = np.zeros((80, 96), np.uint8)
    hole[20:50, 30:60] = 1
    out = np.asarray(inpainter.inpaint(image, hole))
    assert (out[hole == 1] != np.asarray(image)[hole == 1]).any(axis=-1).mean() > 0.9
    np.testing.assert_array_equal(out[hole == 0], np.asarray(image)[hole == 0])


def test_unwritable_output_is_one_line(files, capsys):
    deep = Image.fromarray(np.full((48, 64), 40000, np.uint16))
    deep.save(files / "deep.png")
    code = main(["inpaint", str(files / "deep.png"), "--mask", str(files / "mask.png"), "-o", str(files / "out.bmp")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.startswith("deepfill: error: cannot write") and "\n" not in err
    assert not list(files.glob("*out.bmp*"))


def test_hole_regions_merge_many_holes_quickly():
    import time

    from deepfill.inpainter import hole_regions

    hole = np.zeros((3000, 4000), bool)
    hole[::40, ::40] = True  # 7,500 specks
    hole[100:130, 200:260] = True
    start = time.perf_counter()
    boxes = hole_regions(hole)
    assert time.perf_counter() - start < 10
    assert len(boxes) == 1 and boxes[0] == (0, 0, 3000, 4000)
    lone = np.zeros((3000, 4000), bool)
    lone[100:200, 100:200] = True
    lone[2000:2100, 3000:3100] = True
    assert sorted(hole_regions(lone)) == [(36, 36, 264, 264), (1936, 2936, 2164, 3164)]


def test_hole_regions_of_one_hole_far_from_the_corner_and_of_none():
    from deepfill.inpainter import hole_regions

    hole = np.zeros((3000, 4000), bool)
    hole[1350:1650, 1850:2150] = True
    assert hole_regions(hole) == [(1200, 1700, 1800, 2300)]
    assert all(type(v) is int for v in hole_regions(hole)[0])
    assert hole_regions(np.zeros((50, 60), bool)) == []


def test_mask_from_alpha_makes_the_filled_pixels_opaque(tmp_path):
    """The transparent pixels are the hole; after filling they are seen, not left transparent."""
    rgba = photo(128, 96).convert("RGBA")
    alpha = np.full((96, 128), 255, np.uint8)
    alpha[30:60, 40:90] = 0
    rgba.putalpha(Image.fromarray(alpha))
    rgba.save(tmp_path / "cut.png")
    assert main(["inpaint", str(tmp_path / "cut.png"), "--mask", str(tmp_path / "cut.png"), "--mask-from-alpha",
                 "-o", str(tmp_path / "out.png")]) == 0
    out = np.asarray(Image.open(tmp_path / "out.png"))
    assert (out[:, :, 3] == 255).all()
    assert np.array_equal(out[alpha == 255], np.asarray(rgba)[alpha == 255])


def test_an_all_white_mask_is_one_line_error(tmp_path, capsys):
    photo(64, 48).save(tmp_path / "in.png")
    Image.new("L", (64, 48), 255).save(tmp_path / "m.png")
    assert main(["inpaint", str(tmp_path / "in.png"), "--mask", str(tmp_path / "m.png"), "-o",
                 str(tmp_path / "out.png")]) != 0
    err = capsys.readouterr().err
    assert "covers the whole image" in err and "Traceback" not in err
    assert not (tmp_path / "out.png").exists()


def test_several_masks_for_one_image_give_one_output_each(tmp_path, capsys):
    images, masks, out = tmp_path / "images", tmp_path / "masks", tmp_path / "out"
    images.mkdir()
    masks.mkdir()
    photo(80, 72).save(images / "x.jpg", quality=95)
    rect_mask(80, 72, (10, 10, 30, 30)).save(masks / "x_mask_free.png")
    rect_mask(80, 72, (40, 40, 70, 70)).save(masks / "x_mask_rect.png")
    assert main(["inpaint", str(images), "--mask-dir", str(masks), "--output", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["x_mask_free.jpg", "x_mask_rect.jpg"]
    assert "wrote 2 image(s)" in capsys.readouterr().out
    free, rect = (np.asarray(Image.open(out / n), np.int16) for n in ("x_mask_free.jpg", "x_mask_rect.jpg"))
    source = np.asarray(Image.open(images / "x.jpg"), np.int16)
    # Each output is filled where its own mask is: far from the source there, close elsewhere.
    assert np.abs(free - source)[10:30, 10:30].mean() > 3 * np.abs(free - source)[40:70, 40:70].mean()
    assert np.abs(rect - source)[40:70, 40:70].mean() > 3 * np.abs(rect - source)[10:30, 10:30].mean()


def test_a_mistyped_folder_is_named(tmp_path, capsys):
    (tmp_path / "masks").mkdir()
    code = main(["inpaint", str(tmp_path / "photoz"), "--mask-dir", str(tmp_path / "masks"), "-o", str(tmp_path / "o")])
    assert code == 2 and f"image not found: {tmp_path / 'photoz'}" in capsys.readouterr().err
    photo(64, 48).save(tmp_path / "a.png")
    code = main(["inpaint", str(tmp_path / "a.png"), "--mask-dir", str(tmp_path / "masks"), "-o", str(tmp_path / "o.png")])
    assert code == 2 and "--mask-dir is for folder mode" in capsys.readouterr().err


def test_exif_and_icc_profile_are_kept_unless_stripped(tmp_path):
    from PIL import ImageCms

    exif = Image.Exif()
    exif[0x010F] = "Camera Maker"  # Make
    exif[0x0132] = "2026:12:06 10:00:00"  # DateTime
    exif[0x0112] = 6  # orientation: applied, so not kept
    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    photo(128, 96).save(tmp_path / "in.jpg", exif=exif, icc_profile=icc, quality=95)
    hole = np.zeros((128, 96), np.uint8)
    hole[40:80, 20:60] = 255
    Image.fromarray(hole).save(tmp_path / "m.png")
    for name in ("out.jpg", "out.png", "out.webp", "out.tif"):
        assert main(["inpaint", str(tmp_path / "in.jpg"), "--mask", str(tmp_path / "m.png"),
                     "-o", str(tmp_path / name)]) == 0
        written = Image.open(tmp_path / name)
        kept = written.getexif()
        assert written.size == (96, 128), name
        assert kept[0x010F] == "Camera Maker" and kept[0x0132] == "2026:12:06 10:00:00", name
        assert kept.get(0x0112, 1) == 1, name
        assert written.info.get("icc_profile") == icc, name
    assert main(["inpaint", str(tmp_path / "in.jpg"), "--mask", str(tmp_path / "m.png"),
                 "-o", str(tmp_path / "bare.jpg"), "--strip-metadata"]) == 0
    bare = Image.open(tmp_path / "bare.jpg")
    assert 0x010F not in bare.getexif() and not bare.info.get("icc_profile")


def test_jpeg_quality_and_the_16_bit_warning(tmp_path, caplog):
    photo(128, 96).save(tmp_path / "in.png")
    rect_mask(128, 96, HOLE).save(tmp_path / "m.png")
    sizes = {}
    for quality in (30, 95):
        out = tmp_path / f"q{quality}.jpg"
        assert main(["inpaint", str(tmp_path / "in.png"), "--mask", str(tmp_path / "m.png"), "-o", str(out),
                     "--quality", str(quality)]) == 0
        sizes[quality] = out.stat().st_size
    assert sizes[30] < 0.7 * sizes[95]
    assert main(["inpaint", str(tmp_path / "in.png"), "--mask", str(tmp_path / "m.png"), "-o",
                 str(tmp_path / "bad.jpg"), "--quality", "0"]) == 2
    deep = Image.fromarray(np.asarray(photo(128, 96).convert("L")).astype(np.uint16) * 257)
    deep.save(tmp_path / "deep.png")
    with caplog.at_level(logging.WARNING):
        assert main(["inpaint", str(tmp_path / "deep.png"), "--mask", str(tmp_path / "m.png"),
                     "-o", str(tmp_path / "deep.jpg")]) == 0
    assert "16-bit image is written as 8-bit" in caplog.text
    back = np.asarray(Image.open(tmp_path / "deep.jpg"), np.int16)
    assert np.abs(back - np.asarray(deep, np.float64) / 257).mean() < 3  # scaled, not clipped


def test_inpaint_accepts_paths(tmp_path, inpainter):
    image = photo(128, 96)
    image.save(tmp_path / "photo.png")
    rect_mask(128, 96, HOLE).save(tmp_path / "mask.png")
    from_paths = inpainter.inpaint(str(tmp_path / "photo.png"), tmp_path / "mask.png")
    assert np.array_equal(np.asarray(from_paths), np.asarray(inpainter.inpaint(image, rect_mask(128, 96, HOLE))))
    with pytest.raises(InputError, match="not found"):
        inpainter.inpaint(tmp_path / "missing.png", tmp_path / "mask.png")


def test_what_the_hole_holds_does_not_reach_a_downscaled_region(inpainter):
    """A large photo's region is downscaled before the network sees it: the hole's old content
    (the object being removed) must not bleed into the known pixels around it."""
    from deepfill.inpainter import Inpainter

    small_limits = Inpainter(inpainter.generator, inpainter.card, max_size=256, crop_size=128)
    image = np.asarray(photo(400, 300), np.uint8).copy()
    rows, cols = np.mgrid[:300, :400]
    hole = (rows - 140) ** 2 + (cols - 205) ** 2 < 47**2  # a disc: its edge meets the downscaling grid anywhere
    bright, dark = image.copy(), image.copy()
    bright[hole], dark[hole] = 255, 0
    filled_bright = np.asarray(small_limits.inpaint(bright, hole))
    filled_dark = np.asarray(small_limits.inpaint(dark, hole))
    assert np.array_equal(filled_bright, filled_dark)


def test_malformed_detail_weights_are_a_one_line_error(files, capsys):
    import json

    from deepfill.weights.io import BUNDLED_WEIGHTS

    path = files / "calibrated.safetensors"
    path.write_bytes(BUNDLED_WEIGHTS.read_bytes())
    card = json.loads(BUNDLED_WEIGHTS.with_suffix(".json").read_text())
    card["detail_weights"] = {"distances": [8, 2], "weights": [0.5, 0.1]}
    path.with_suffix(".json").write_text(json.dumps(card))
    err = _run_bad(files, capsys, [str(files / "img.png"), "--mask", str(files / "mask.png"), "--weights", str(path)])
    assert "detail_weights are malformed" in err and "Traceback" not in err
