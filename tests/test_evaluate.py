"""Evaluation harness: pinned mask protocols, scoring conventions, the CLI end to end."""

from __future__ import annotations

import csv
import hashlib
import importlib.util
import math

import numpy as np
import pytest
from PIL import Image

from deepfill import cli
from deepfill.errors import InputError
from deepfill.data import list_images
from deepfill.evaluate import (
    PROTOCOLS,
    area_bin,
    build_methods,
    format_table,
    load_crop,
    protocol_mask,
    run_evaluation,
    summarize,
)

# sha256 over the first three masks (uint8 0/1, C order) of each protocol. A change here means
# published numbers stop being comparable: change it only on purpose (and say so in the report).
MASK_HASHES = {
    "bbox256": "afb7e797be58bffa4331051a365bcb0baeece360c6c28d4eed4874dd9073c059",
    "free256": "1ea6230ccfd47f3e0f7734d209e2426220800e0d25f58dab509632873d650fe4",
    "free512": "a5c26029b008b5b74e5d960011be853cd78b89db3a04642e990767a901c6f89b",
}


@pytest.mark.parametrize("name", sorted(PROTOCOLS))
def test_mask_hash_is_pinned(name):
    digest = hashlib.sha256()
    for index in range(3):
        mask, _ = protocol_mask(name, index)
        digest.update((mask > 0.5).astype(np.uint8).tobytes())
    assert digest.hexdigest() == MASK_HASHES[name]


def test_bbox_masks_follow_the_paper():
    for index in range(20):
        mask, kind = protocol_mask("bbox256", index)
        assert kind == "rect" and mask.shape == (256, 256) and mask.dtype == np.float32
        rows, cols = np.nonzero(mask)
        h, w = rows.max() - rows.min() + 1, cols.max() - cols.min() + 1
        assert 112 <= h <= 128 and 112 <= w <= 128
        assert mask.sum() == h * w  # one solid rectangle
    positions = {tuple(np.argwhere(protocol_mask("bbox256", i)[0])[0]) for i in range(10)}
    assert len(positions) > 5  # placed at random, not centred


def test_free_form_masks_cycle_kinds_and_are_deterministic():
    kinds = [protocol_mask("free256", i)[1] for i in range(6)]
    assert kinds == ["thin", "medium", "thick"] * 2
    a, _ = protocol_mask("free512", 4)
    b, _ = protocol_mask("free512", 4)
    assert a.shape == (512, 512)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(protocol_mask("free256", 0)[0], protocol_mask("free256", 3)[0])


def test_area_bins():
    assert [area_bin(a) for a in (0.0, 9.99, 10.0, 35.0, 49.9, 50.0, 80.0)] == [
        "0-10%", "0-10%", "10-20%", "30-40%", "40-50%", "50%+", "50%+"
    ]


def save_images(folder, n=3):
    """Three small photos-to-be: a smooth gradient (PNG), noise (JPEG), a flat colour (PNG)."""
    folder.mkdir()
    y, x = np.mgrid[0:90, 0:120] / 120.0
    gradient = np.stack([x, y, 0.5 * (x + y)], -1)
    noise = np.random.default_rng(0).random((120, 100, 3))
    images = [("b_gradient.png", gradient), ("a_noise.jpg", noise), ("c_flat.png", np.full((70, 70, 3), 0.4))]
    for name, array in images[:n]:
        Image.fromarray((array * 255).astype(np.uint8)).save(folder / name)
    return folder


def test_list_images_sorted_and_empty_folder(tmp_path):
    folder = save_images(tmp_path / "imgs")
    (folder / "notes.txt").write_text("not an image")
    assert [p.name for p in list_images(folder)] == ["a_noise.jpg", "b_gradient.png", "c_flat.png"]
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="no images"):
        list_images(tmp_path / "empty")


def test_load_crop_resizes_short_side_and_centre_crops(tmp_path):
    array = np.zeros((100, 300, 3), np.uint8)
    array[:, 100:200] = 255  # white middle third: exactly the centre crop after resizing
    Image.fromarray(array).save(tmp_path / "wide.png")
    crop = load_crop(tmp_path / "wide.png", 64)
    assert crop.shape == (64, 64, 3) and crop.dtype == np.float32
    assert crop[:, 2:-2].min() > 0.95  # centre crop sees only the white band


def test_harness_hides_the_hole_and_pastes_known_pixels(tmp_path):
    folder = save_images(tmp_path / "imgs", n=2)
    seen = []

    def black(image, mask):
        seen.append(np.abs(image[mask > 0.5]).max())  # the method must not see the truth
        return np.zeros_like(image)

    result = run_evaluation(list_images(folder), PROTOCOLS["bbox256"], {"black": black}, progress=False)
    assert seen == [0.0, 0.0]
    for row, index in zip(result.rows, range(2)):
        mask, _ = protocol_mask("bbox256", index)
        # known pixels are pasted back, so the whole-image error is the hole error × hole share
        assert row["l1"] == pytest.approx(row["l1_hole"] * mask.mean(), rel=1e-6)
        assert row["seconds"] >= 0 and row["hole_area"] == pytest.approx(mask.mean() * 100)
    assert len(result.grid) == 2 and set(result.grid[0]) == {"input", "truth", "black"}


def test_infinite_psnr_prints_as_inf():
    rows = [
        {"method": "m", "psnr": math.inf, "hole_area": 5.0, "seconds": 0.1,
         **{k: 0.0 for k in ("l1", "l2", "tv", "l1_hole", "l2_hole")}, "ssim": 1.0, "psnr_hole": math.inf},
        {"method": "m", "psnr": 20.0, "hole_area": 5.0, "seconds": 0.1,
         **{k: 1.0 for k in ("l1", "l2", "tv", "l1_hole", "l2_hole")}, "ssim": 0.9, "psnr_hole": 15.0},
    ]
    (entry,) = summarize(rows)
    assert entry["psnr"] == math.inf and entry["l1"] == 0.5 and entry["n"] == 2
    assert "| m | 2 | 0.50 | 0.50 | inf |" in format_table([entry])


def test_unknown_method_is_an_input_error():
    with pytest.raises(InputError, match="unknown method"):
        build_methods(["telea", "magic"])


def read_csv(path):
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


@pytest.mark.skipif(importlib.util.find_spec("cv2") is None, reason="needs OpenCV")
def test_cli_end_to_end(tmp_path, capsys):
    folder = save_images(tmp_path / "imgs")
    out = tmp_path / "report"
    argv = ["evaluate", "--images", str(folder), "--out", str(out), "--methods", "telea,ns,mean",
            "--grid", "2", "--no-progress"]
    assert cli.main(argv) == 0
    printed = capsys.readouterr().out
    assert "| telea | 3 |" in printed and "| mean | 3 |" in printed

    rows = read_csv(out / "metrics.csv")
    assert len(rows) == 9 and {r["method"] for r in rows} == {"telea", "ns", "mean"}
    assert [r["image"] for r in rows[::3]] == ["a_noise.jpg", "b_gradient.png", "c_flat.png"]
    flat_mean = next(r for r in rows if r["image"] == "c_flat.png" and r["method"] == "mean")
    assert float(flat_mean["l1"]) == 0.0 and flat_mean["psnr"] == "inf"  # a flat image is filled exactly
    gradient = {r["method"]: float(r["l1_hole"]) for r in rows if r["image"] == "b_gradient.png"}
    assert gradient["telea"] < gradient["mean"] and gradient["ns"] < gradient["mean"]

    report = (out / "report.md").read_text()
    assert "## Mean per method" in report and "Places2" in report and "| DeepFill v1 | 8.6 | 2.1 | 18.91 |" in report
    assert "| mean | 3 |" in report and " inf |" in report
    bands = report[report.index("## Hole ℓ1 % by distance"):]
    assert "| method | 1-4 px | 5-8 px | 9-16 px | 17-32 px | 33+ px |" in bands
    flat_bands = next(line for line in bands.splitlines() if line.startswith("| mean |"))
    assert float(flat_mean["l1_band_1-4"]) == 0.0 and float(rows[1]["l1_band_1-4"]) > 0  # noise image
    assert flat_bands.count("|") == 7
    with Image.open(out / "grid.png") as grid:
        assert grid.width > 5 * 256 and grid.height > 2 * 256  # input, 3 methods, truth; 2 rows
    if importlib.util.find_spec("matplotlib"):
        assert (out / "l1_vs_area.png").stat().st_size > 1000

    # a second run must not silently overwrite the report
    assert cli.main(argv) == 2
    assert "not empty" in capsys.readouterr().err
    assert cli.main([*argv, "--overwrite", "--limit", "1", "--methods", "mean"]) == 0
    assert len(read_csv(out / "metrics.csv")) == 1


def test_cli_free_form_protocol_reports_area_bins(tmp_path, capsys):
    folder = save_images(tmp_path / "imgs", n=2)
    out = tmp_path / "report"
    argv = ["evaluate", "--images", str(folder), "--out", str(out), "--protocol", "free256",
            "--methods", "mean", "--grid", "0", "--no-progress"]
    assert cli.main(argv) == 0
    report = (out / "report.md").read_text()
    assert "## Per mask-area bin" in report and "| thin | mean | 1 |" in report
    assert "Places2" not in report
    assert {r["mask_kind"] for r in read_csv(out / "metrics.csv")} == {"thin", "medium"}
    assert not (out / "grid.png").exists()


def test_cli_empty_folder_is_a_one_line_error(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    code = cli.main(["evaluate", "--images", str(tmp_path / "empty"), "--out", str(tmp_path / "r"),
                     "--methods", "mean"])
    assert code == 2
    assert capsys.readouterr().err.strip().startswith("deepfill: error: no images")


def test_missing_dependency_skips_method(tmp_path, monkeypatch, caplog):
    import sys

    monkeypatch.setitem(sys.modules, "cv2", None)
    methods, notes = build_methods(["telea", "mean"])
    assert list(methods) == ["mean"] and "skipped telea" in notes[0]
    assert "skipped telea" in caplog.text


@pytest.mark.skipif(importlib.util.find_spec("deepfill.inpainter") is None, reason="no inpainter in this build")
def test_cli_with_deepfill(tmp_path, capsys):
    folder = save_images(tmp_path / "imgs", n=1)
    out = tmp_path / "report"
    argv = ["evaluate", "--images", str(folder), "--out", str(out), "--methods", "deepfill,mean",
            "--device", "cpu", "--grid", "1", "--no-progress"]
    assert cli.main(argv) == 0
    rows = read_csv(out / "metrics.csv")
    assert [r["method"] for r in rows] == ["deepfill", "mean"]
    assert all(math.isfinite(float(r["l1"])) and float(r["seconds"]) > 0 for r in rows)
    assert "deepfill weights:" in (out / "report.md").read_text()


def test_images_in_subfolders_are_named_by_relative_path(tmp_path):
    folder = save_images(tmp_path / "imgs", n=1)
    (folder / "sub").mkdir()
    Image.new("RGB", (40, 30), (10, 20, 30)).save(folder / "sub" / "a_noise.jpg")
    files = list_images(folder)
    result = run_evaluation(files, PROTOCOLS["bbox256"], {"mean": lambda i, m: i}, grid_rows=0, progress=False)
    assert [r["image"] for r in result.rows] == ["b_gradient.png", "sub/a_noise.jpg"]
