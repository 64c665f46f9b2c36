"""Photo folders: file lists, manifests, compact copies, and the `deepfill data` command."""

from __future__ import annotations

import pytest
from PIL import Image

from conftest import photo
from deepfill.cli import main as deepfill_main
from deepfill.datasets import MANIFEST_FIELDS, compact_dataset, list_images, make_flist, write_manifest
from deepfill.errors import InputError


def built_set(root, files):
    """A built set: {relative path: (split, kind, (width, height))} written with its manifest."""
    base = dict.fromkeys(MANIFEST_FIELDS, "x")
    rows = []
    for i, (rel, (split, kind, size)) in enumerate(files.items()):
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        photo(*size, seed=i).save(root / rel)
        rows.append({**base, "split": split, "file": rel, "kind": kind})
    write_manifest(root, rows)
    return root


@pytest.fixture
def photos(tmp_path):
    return built_set(tmp_path / "set", {
        "train/photos/p/b.png": ("train", "photo", (90, 60)),
        "train/photos/p/a.jpg": ("train", "photo", (60, 90)),
        "train/textures/t/tex.jpg": ("train", "texture", (64, 64)),
        "val/photos/v/c.jpg": ("val", "photo", (64, 48)),
    })


def test_manifest_and_file_lists_of_a_built_set(photos):
    assert (photos / "train.flist").read_text().split() == [
        "train/photos/p/a.jpg", "train/photos/p/b.png", "train/textures/t/tex.jpg"]
    assert (photos / "val.flist").read_text() == "val/photos/v/c.jpg\n"
    with pytest.raises(ValueError, match="outside train/"):
        write_manifest(photos, [{**dict.fromkeys(MANIFEST_FIELDS, ""), "split": "train", "file": "val/photos/x.jpg"}])


def test_flist_of_a_built_set_by_split_and_kind(photos, tmp_path):
    listed, held_out = make_flist(photos, photos / "train_photos.flist", kind="photo")
    assert (photos / "train_photos.flist").read_text() == "train/photos/p/a.jpg\ntrain/photos/p/b.png\n"
    assert held_out == [] and list_images(photos / "train_photos.flist") == listed
    # a list elsewhere holds paths relative to itself
    make_flist(photos, tmp_path / "lists" / "val.flist", split="val")
    assert (tmp_path / "lists" / "val.flist").read_text() == "../set/val/photos/v/c.jpg\n"
    assert list_images(tmp_path / "lists" / "val.flist")[0].resolve() == (photos / "val/photos/v/c.jpg").resolve()


def test_flist_of_a_plain_folder_with_held_out_images(tmp_path):
    folder = tmp_path / "celeba_hq"
    folder.mkdir()
    for i in range(10):
        photo(32, 32, seed=i).save(folder / f"{i:05d}.jpg")
    (folder / ".cache").mkdir()
    photo(32, 32).save(folder / ".cache" / "x.jpg")
    listed, held_out = make_flist(folder, folder / "train.flist", val_count=3, seed=1)
    assert len(listed) == 7 and len(held_out) == 3 and not set(listed) & set(held_out)
    assert sorted(listed + held_out) == sorted(folder.glob("*.jpg"))
    assert (folder / "val.flist").read_text().split() == [p.name for p in held_out]
    assert (folder / "train.flist").read_text().split() == [p.name for p in listed]
    assert make_flist(folder, tmp_path / "again.flist", val_count=3, seed=1)[1] == held_out  # seeded
    assert make_flist(folder, tmp_path / "other.flist", val_count=3, seed=2)[1] != held_out


@pytest.mark.parametrize("args, message", [
    ({"val_count": 10}, "cannot hold out 10 of 10"),
    ({"val_count": 2, "val_out": "train.flist"}, "would overwrite"),
    ({"kind": "photo"}, "--kind needs a built set"),
])
def test_flist_errors(tmp_path, args, message):
    for i in range(10):
        photo(32, 32, seed=i).save(tmp_path / f"{i}.png")
    if "val_out" in args:
        args["val_out"] = tmp_path / args["val_out"]
    with pytest.raises(InputError, match=message):
        make_flist(tmp_path, tmp_path / "train.flist", **args)
    with pytest.raises(InputError, match="not a folder"):
        make_flist(tmp_path / "missing", tmp_path / "train.flist")


def test_compact_copy_of_a_built_set(tmp_path):
    src = built_set(tmp_path / "set", {
        "train/photos/p/big.png": ("train", "photo", (900, 600)),
        "train/textures/t/tex.jpg": ("train", "texture", (512, 512)),
    })
    out = tmp_path / "small"
    new = compact_dataset(src, out, short_side=128, texture_short_side=64, progress=False)
    assert [r["file"] for r in new] == ["train/photos/p/big.jpg", "train/textures/t/tex.jpg"]
    with Image.open(out / "train/photos/p/big.jpg") as im:
        assert im.format == "JPEG" and im.size == (192, 128)
    with Image.open(out / "train/textures/t/tex.jpg") as im:
        assert im.size == (64, 64)
    assert (out / "train.flist").read_text().split() == [r["file"] for r in new]
    assert list_images(out) == [out / r["file"] for r in new]
    again = compact_dataset(src, out, short_side=128, texture_short_side=64, progress=False)
    assert again == new


def test_compact_copy_of_a_plain_folder(tmp_path):
    src = tmp_path / "places"
    (src / "a" / "airfield").mkdir(parents=True)
    photo(300, 200).save(src / "a" / "airfield" / "1.png")
    photo(100, 80, seed=1).save(src / "2.jpg")
    new = compact_dataset(src, tmp_path / "places128", short_side=128, progress=False)
    assert [(r["file"], r["width"], r["height"]) for r in new] == [("2.jpg", "100", "80"),
                                                                   ("a/airfield/1.jpg", "192", "128")]
    assert not (tmp_path / "places128" / "manifest.csv").exists()
    with pytest.raises(InputError, match="outside --src"):
        compact_dataset(src, src / "small", progress=False)


def test_data_command(photos, tmp_path, capsys):
    assert deepfill_main(["data", "flist", str(photos), "--kind", "texture", "--out", str(tmp_path / "t.flist")]) == 0
    assert capsys.readouterr().out == f"{tmp_path / 't.flist'}: 1 images\n"
    assert deepfill_main(["data", "compact", "--src", str(photos), "--out", str(tmp_path / "small"),
                          "--short-side", "32", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "compact copy written" in out and "train photos       2 images" in out
    # a plain folder: an error in one line
    assert deepfill_main(["data", "flist", str(tmp_path / "missing"), "--out", str(tmp_path / "x.flist")]) == 2
    assert capsys.readouterr().err.strip() == f"deepfill: error: not a folder: {tmp_path / 'missing'}"


def test_data_build_points_to_the_photoset_tool(tmp_path, capsys):
    code = deepfill_main(["data", "build", "--out", str(tmp_path / "set"), "--compact"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1
    assert "python -m tools.photoset build --out DIR" in err
    assert not (tmp_path / "set").exists()
