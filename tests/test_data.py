"""Training data loading: image lists, random crops, determinism, corrupt files, validation set."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch
from PIL import Image

from deepfill.data import (
    DataConfig,
    InpaintDataset,
    ValidationSet,
    center_crop,
    list_images,
    random_crop,
)
from deepfill.errors import InputError
from deepfill.masks import MaskSampler


def noise_image(path, size=(96, 80), seed=0, mode="RGB", fmt=None):
    rng = np.random.default_rng(seed)
    arr = rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    im = Image.fromarray(arr).convert(mode)
    path.parent.mkdir(parents=True, exist_ok=True)
    im.save(path, fmt)
    return path


@pytest.fixture
def photo_dir(tmp_path):
    root = tmp_path / "photos"
    noise_image(root / "a.jpg", (120, 90), 1)
    noise_image(root / "sub" / "b.png", (90, 130), 2)
    noise_image(root / "sub" / "deeper" / "c.webp", (100, 100), 3)
    noise_image(root / ".hidden" / "d.jpg", (100, 100), 4)
    (root / "notes.txt").write_text("not an image")
    return root


def test_list_images_folder_is_recursive_sorted_and_skips_hidden(photo_dir):
    files = list_images(photo_dir)
    assert [p.relative_to(photo_dir).as_posix() for p in files] == ["a.jpg", "sub/b.png", "sub/deeper/c.webp"]


def test_list_images_file_list_resolves_relative_paths(photo_dir, tmp_path):
    lists = tmp_path / "lists"
    lists.mkdir()
    flist = lists / "train.flist"
    absolute = photo_dir / "sub" / "b.png"
    flist.write_text(f"# comment\n../photos/a.jpg\n\n{absolute}\n")
    files = list_images(flist)
    assert files == [lists / "../photos/a.jpg", absolute]
    assert all(p.is_file() for p in files)


def test_list_images_uses_train_split_of_a_built_set(photo_dir):
    (photo_dir / "manifest.csv").write_text("split,file\ntrain,a.jpg\nval,sub/b.png\n")
    assert list_images(photo_dir) == [photo_dir / "a.jpg"]


def test_list_images_errors(tmp_path):
    with pytest.raises(InputError, match="not found"):
        list_images(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="no images"):
        list_images(tmp_path / "empty")


@pytest.mark.parametrize("crop", [32, 64])
def test_dataset_sample_shape_range_dtype(photo_dir, crop):
    ds = InpaintDataset(photo_dir, crop_size=crop)
    assert len(ds) == 3
    for i in range(len(ds)):
        x = ds[i]
        assert x.shape == (3, crop, crop) and x.dtype == torch.float32
        assert 0.0 <= float(x.min()) and float(x.max()) <= 1.0


def test_small_image_is_upscaled_to_the_crop(tmp_path):
    path = noise_image(tmp_path / "tiny.png", (20, 12))
    x = InpaintDataset([path], crop_size=48)[0]
    assert x.shape == (3, 48, 48)
    assert float(x.std()) > 0.05  # real content, not padding


def test_scale_one_crop_is_an_exact_window(tmp_path):
    path = noise_image(tmp_path / "img.png", (80, 64), seed=5)
    original = np.asarray(Image.open(path))
    crop = random_crop(path, np.random.default_rng(0), 64, rescale=(1.0, 1.0), flip=False)
    windows = [original[:, x : x + 64] for x in range(80 - 64 + 1)]
    assert any(np.abs(w.astype(int) - crop.astype(int)).max() <= 1 for w in windows)


def test_rescale_is_clamped_to_crop_and_image_size(tmp_path):
    # short side == crop: whatever the range, the scale must be exactly 1 (noise shows any blur)
    path = noise_image(tmp_path / "img.png", (64, 64), seed=6)
    original = np.asarray(Image.open(path)).astype(int)
    for seed in range(5):
        crop = random_crop(path, np.random.default_rng(seed), 64, rescale=(0.5, 8.0), flip=False)
        assert np.abs(crop.astype(int) - original).max() <= 1


def test_determinism_from_seed_epoch_index(photo_dir):
    a = InpaintDataset(photo_dir, DataConfig(crop_size=32, seed=7))
    b = InpaintDataset(photo_dir, DataConfig(crop_size=32, seed=7))
    assert torch.equal(a[1], b[1])
    assert torch.equal(a.sample(5), b.sample(5))
    first = a[1]
    a.set_epoch(1)
    assert not torch.equal(a[1], first)
    c = InpaintDataset(photo_dir, DataConfig(crop_size=32, seed=8))
    assert not torch.equal(c[1], first)
    # order of access does not matter
    d = InpaintDataset(photo_dir, DataConfig(crop_size=32, seed=7))
    d[2], d[0]
    assert torch.equal(d[1], first)


def test_sample_positions_visit_every_image_once_per_epoch(photo_dir, monkeypatch):
    ds = InpaintDataset(photo_dir, crop_size=16, seed=3)
    seen = []
    monkeypatch.setattr(ds, "load", lambda index, epoch: seen.append((epoch, index)))
    for position in range(6):
        ds.sample(position)
    assert sorted(i for e, i in seen if e == 0) == [0, 1, 2]
    assert sorted(i for e, i in seen if e == 1) == [0, 1, 2]


def test_corrupt_file_is_skipped_with_one_warning(photo_dir, caplog):
    bad = photo_dir / "bad.jpg"
    bad.write_bytes(b"\xff\xd8\xff\xe0 this is not a jpeg")
    files = [bad, *list_images(photo_dir)]
    ds = InpaintDataset(files, crop_size=32)
    with caplog.at_level(logging.WARNING, logger="deepfill.data"):
        x = ds[0]
        ds.set_epoch(1)
        y = ds[0]
    assert x.shape == y.shape == (3, 32, 32)
    warnings = [r for r in caplog.records if "bad.jpg" in r.getMessage()]
    assert len(warnings) == 1


def test_all_files_unreadable_raises(tmp_path):
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"nope")
    with pytest.raises(InputError, match="no readable image"):
        InpaintDataset([bad], crop_size=16)[0]


def test_exif_orientation_is_applied(tmp_path):
    arr = np.zeros((20, 40, 3), np.uint8)
    arr[:, :20] = (255, 0, 0)  # left half red
    arr[:, 20:] = (0, 0, 255)  # right half blue
    exif = Image.Exif()
    exif[0x0112] = 6  # display = raw rotated 90 degrees clockwise: left becomes top
    path = tmp_path / "rotated.jpg"
    Image.fromarray(arr).save(path, exif=exif, quality=95)
    crop = center_crop(path, 20)
    assert crop.shape == (20, 20, 3)
    top, bottom = crop[:8].mean((0, 1)), crop[-8:].mean((0, 1))
    assert top[0] > 200 and top[2] < 60 and bottom[2] > 200 and bottom[0] < 60


def test_invalid_config():
    with pytest.raises(ValueError):
        DataConfig(crop_size=0)
    with pytest.raises(ValueError):
        DataConfig(rescale=(2.0, 1.0))


def test_validation_set_fixed_crops_and_masks(photo_dir):
    sampler = MaskSampler(height=32, width=32)
    val = ValidationSet(photo_dir, crop_size=32, sampler=sampler, seed=10)
    images, masks = val.tensors()
    assert images.shape == (3, 3, 32, 32) and masks.shape == (3, 1, 32, 32)
    assert images.dtype == masks.dtype == torch.float32
    for i in range(3):
        expected, _ = sampler.sample(seed=10 + i)
        assert np.array_equal(masks[i, 0].numpy(), expected)
    again = ValidationSet(photo_dir, crop_size=32, sampler=sampler, seed=10)
    assert torch.equal(again.images, images) and torch.equal(again.masks, masks)
    batches = list(val.batches(2))
    assert [b[0].shape[0] for b in batches] == [2, 1]


def test_validation_set_skips_corrupt_and_limits(photo_dir, caplog):
    bad = photo_dir / "zz_bad.png"
    bad.write_bytes(b"broken")
    files = [bad, *list_images(photo_dir)]
    with caplog.at_level(logging.WARNING, logger="deepfill.data"):
        val = ValidationSet(files, crop_size=24, limit=3)
    assert len(val) == 2 and val.images.shape == (2, 3, 24, 24)
    assert any("zz_bad.png" in r.getMessage() for r in caplog.records)
