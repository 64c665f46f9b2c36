"""Photo-set builder: container readers on files written here to spec, filters, licences,
split safety, and the apt-get/dpkg-deb pipeline against fake packages (no network)."""

from __future__ import annotations

import csv
import io
import os
import shutil
import stat
import struct
import subprocess
import zlib

import numpy as np
import pytest
from PIL import Image

from deepfill import databuild as db
from deepfill.cli import main as cli_main

# --------------------------------------------------------------------------------------------
# helpers: images and writers that follow the formats
# --------------------------------------------------------------------------------------------


def photo_bytes(size=(320, 288), seed=0, fmt="JPEG", **save) -> bytes:
    """A photo-like image: smooth gradients plus noise (many colours, no flat areas)."""
    rng = np.random.default_rng(seed)
    w, h = size
    yy, xx = np.mgrid[0:h, 0:w]
    base = np.stack([xx * 200 / w, yy * 200 / h, (xx + yy) * 100 / (w + h)], -1)
    arr = np.clip(base + rng.normal(0, 25, (h, w, 3)), 0, 255).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, fmt, **save)
    return buf.getvalue()


def drawing_bytes(size=(320, 320)) -> bytes:
    """A flat-colour drawing: two colours."""
    im = Image.new("RGB", size, (255, 255, 255))
    im.paste((200, 30, 30), (40, 40, 200, 200))
    buf = io.BytesIO()
    im.save(buf, "PNG")
    return buf.getvalue()


def lz4_literals(data: bytes) -> bytes:
    """A valid LZ4 block made of one literal-only sequence."""
    n = len(data)
    if n < 15:
        return bytes([n << 4]) + data
    rest, extra = n - 15, bytearray()
    while rest >= 255:
        extra.append(255)
        rest -= 255
    extra.append(rest)
    return bytes([0xF0]) + bytes(extra) + data


def write_eet(entries: list[tuple[str, bytes, int, int]]) -> bytes:
    """Eet v2 file: header (magic, count, 0 dictionary entries), 24-byte directory entries
    (offset, size, data size, name offset, name size, flags), names, then data."""
    header = struct.pack(">III", db.EET_MAGIC_FILE2, len(entries), 0)
    dir_size = 24 * len(entries)
    names = b""
    name_offsets = []
    for name, *_ in entries:
        name_offsets.append(12 + dir_size + len(names))
        names += name.encode() + b"\0"
    data = b""
    directory = b""
    base = 12 + dir_size + len(names)
    for (name, payload, flags, data_size), name_offset in zip(entries, name_offsets):
        directory += struct.pack(">6I", base + len(data), len(payload), data_size, name_offset,
                                 len(name) + 1, flags)
        data += payload
    return header + directory + names + data


def write_rcc(files: dict[str, tuple[bytes, int]], version: int = 3) -> bytes:
    """Qt rcc: 'qres', version, tree/data/names offsets (+flags in v3); directory children are
    contiguous node ranges; names are u16 length + u32 hash + UTF-16BE."""
    # build a nested dict tree
    root: dict = {}
    for path, payload in files.items():
        parts = path.strip("/").split("/")
        node = root
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = payload
    names, name_offsets = bytearray(), {}

    def name_offset(name: str) -> int:
        if name not in name_offsets:
            name_offsets[name] = len(names)
            encoded = name.encode("utf-16-be")
            names.extend(struct.pack(">HI", len(name), zlib.crc32(encoded)) + encoded)
        return name_offsets[name]

    data = bytearray()
    nodes: list[bytes] = [b""]  # node 0 = root, filled below
    queue = [(0, "", root)]
    node_tail = b"" if version == 1 else struct.pack(">Q", 0)
    while queue:
        index, name, children = queue.pop(0)
        first = len(nodes)
        nodes.extend([b""] * len(children))
        offset = name_offset(name) if index else 0
        nodes[index] = struct.pack(">IHII", offset, db.RCC_DIRECTORY, len(children), first) + node_tail
        for k, (child, value) in enumerate(sorted(children.items())):
            if isinstance(value, dict):
                queue.append((first + k, child, value))
            else:
                payload, flags = value
                if flags & db.RCC_COMPRESSED:
                    payload = struct.pack(">I", len(payload)) + zlib.compress(payload)
                nodes[first + k] = struct.pack(">IHHHI", name_offset(child), flags, 0, 0, len(data)) + node_tail
                data.extend(struct.pack(">I", len(payload)) + payload)
    header_size = 24 if version >= 3 else 20
    tree = b"".join(nodes)
    tree_off = header_size
    data_off = tree_off + len(tree)
    names_off = data_off + len(data)
    header = b"qres" + struct.pack(">IIII", version, tree_off, data_off, names_off)
    if version >= 3:
        header += struct.pack(">I", 0)
    return header + tree + bytes(data) + bytes(names)


# --------------------------------------------------------------------------------------------
# container readers
# --------------------------------------------------------------------------------------------


def test_lz4_literals_and_overlapping_match():
    assert db.lz4_block_decompress(lz4_literals(b"x" * 300), 300) == b"x" * 300
    # token: 4 literals, match length 8 (4 + 4); offset 4 -> "abcd" repeated; then last literals
    block = bytes([0x44]) + b"abcd" + bytes([4, 0]) + bytes([0x10]) + b"!"
    assert db.lz4_block_decompress(block, 13) == b"abcdabcdabcd!"
    # offset 1 run-length copy with an extended match length (15 + 5 + 4 = 24)
    block = bytes([0x1F]) + b"z" + bytes([1, 0, 5]) + bytes([0x00])
    assert db.lz4_block_decompress(block, 25) == b"z" * 25
    with pytest.raises(db.FormatError):
        db.lz4_block_decompress(bytes([0x44]) + b"abcd" + bytes([9, 0]), 12)  # offset too far
    with pytest.raises(db.FormatError):
        db.lz4_block_decompress(lz4_literals(b"abc"), 4)  # wrong size


def test_find_jpegs_in_junk_baseline_and_progressive():
    a = photo_bytes((64, 48), 1)
    b = photo_bytes((40, 40), 2, progressive=True, quality=80)
    blob = b"junk\xff\xd8\xff\x00half" + a + b"\x00" * 7 + b + b"tail\xff\xd8"
    found = db.find_jpegs(blob)
    assert found == [a, b]
    assert db.jpeg_end(a) == len(a)
    assert db.find_jpegs(a[: len(a) // 2]) == []  # truncated: no EOI


def test_eet_reader_finds_raw_zlib_and_lz4_jpegs():
    big, small = photo_bytes((300, 260), 3), photo_bytes((64, 64), 4)
    lossless = struct.pack("<I", 0xAC1DFEED) + bytes(64)
    alpha_lossy = struct.pack(">III", 0xBEEFF00D, len(small), 0) + small
    entries = [
        ("edje/images/0", big, 0, len(big)),
        ("edje/images/1", zlib.compress(small), db.EET_FLAG_COMPRESSED | (9 << 3), len(small)),
        ("edje/images/2", lossless, 0, len(lossless)),
        ("edje/images/3", lz4_literals(alpha_lossy), db.EET_FLAG_COMPRESSED | (10 << 3), len(alpha_lossy)),
        ("edje/alias", b"edje/images/0\0", db.EET_FLAG_ALIAS, 14),
        ("edje/file", zlib.compress(b"CHKd" * 10), db.EET_FLAG_COMPRESSED | (9 << 3), 40),
    ]
    blob = write_eet(entries)
    directory = db.read_eet_directory(blob)
    assert [e.name for e in directory] == [e[0] for e in entries]
    assert db.eet_read_entry(blob, directory[5]) == b"CHKd" * 10
    assert list(db.eet_jpegs(blob)) == [("edje/images/0", big), ("edje/images/1", small), ("edje/images/3", small)]


def test_eet_reader_rejects_other_files():
    with pytest.raises(db.FormatError, match="not an Eet"):
        db.read_eet_directory(b"PK\x03\x04" + bytes(20))
    bad = bytearray(write_eet([("x", b"abc", 0, 3)]))
    struct.pack_into(">I", bad, 12, 10_000)  # data offset past the end
    with pytest.raises(db.FormatError, match="outside"):
        db.read_eet_directory(bytes(bad))


@pytest.mark.parametrize("version", [1, 2, 3])
def test_rcc_reader_walks_tree_and_decompresses(version):
    jpg, png = photo_bytes((40, 30), 5), photo_bytes((20, 20), 6, fmt="PNG")
    files = {
        "gcompris/src/activities/erase/resource/gorilla.jpg": (jpg, 0),
        "gcompris/src/activities/erase/resource/sub/bird.png": (png, db.RCC_COMPRESSED),
        "gcompris/src/activities/erase/Erase.qml": (b"import QtQuick 2.12\n", db.RCC_COMPRESSED),
        "README": (b"hello", 0),
    }
    found = dict(db.read_rcc(write_rcc(files, version)))
    assert found == {"/" + p: payload for p, (payload, _) in files.items()}


def test_rcc_reader_rejects_bad_files():
    with pytest.raises(db.FormatError, match="qres"):
        list(db.read_rcc(b"RIFF" + bytes(40)))
    blob = bytearray(write_rcc({"a/b.jpg": (b"x" * 10, 0)}))
    blob[4:8] = struct.pack(">I", 9)
    with pytest.raises(db.FormatError, match="version"):
        list(db.read_rcc(bytes(blob)))


# --------------------------------------------------------------------------------------------
# filters, licences, sources
# --------------------------------------------------------------------------------------------


def test_photographic_filter():
    config = db.FilterConfig()
    photo = db.image_stats(photo_bytes((400, 300)))
    assert db.rejection_reason(photo, config, max_flat=0.035) is None
    drawing = db.image_stats(drawing_bytes())
    assert "colours" in db.rejection_reason(drawing, config)
    small = db.image_stats(photo_bytes((300, 200)))
    assert "short side" in db.rejection_reason(small, config)
    rgba = Image.open(io.BytesIO(photo_bytes((300, 300), fmt="PNG"))).convert("RGBA")
    rgba.putalpha(Image.new("L", rgba.size, 0).resize(rgba.size))
    buf = io.BytesIO()
    rgba.save(buf, "PNG")
    assert "transparent" in db.rejection_reason(db.image_stats(buf.getvalue()), config)


def test_texture_map_names():
    assert db.is_texture_map("textures/tex_nature/rock001_nm.png")
    assert db.is_texture_map("textures/tex_misc/box_gloss.jpg")
    assert db.is_texture_map("textures/tex_misc/wall_h.jpg")
    assert not db.is_texture_map("textures/tex_ctp1/bricks_g_1.jpg")
    assert not db.is_texture_map("textures/tex_nature/grass004.jpg")


COPYRIGHT = """Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/

Files: *
Copyright: someone
License: GPL-2+

Files: nature/Blinds.jpg
       16.04/aitzgorri_by_Aitzol_Berasategi.jpg
Copyright: someone else
License: CC-BY-SA-4.0

Files: src/activities/erase/resource/*
License: CC0-1.0
 Public domain dedication.

License: GPL-2+
 The text of the licence.
"""


def test_license_summary():
    assert db.license_summary(COPYRIGHT, ["usr/share/backgrounds/mate/nature/Blinds.jpg"]) == "CC-BY-SA-4.0"
    assert db.license_summary(COPYRIGHT, ["usr/share/backgrounds/aitzgorri_by_Aitzol_Berasategi.jpg"]) == "CC-BY-SA-4.0"
    assert db.license_summary(COPYRIGHT, ["usr/share/x.rcc!gcompris/src/activities/erase/resource/a.webp"]) == "CC0-1.0"
    assert db.license_summary(COPYRIGHT, ["usr/share/other/Storm.jpg"]) == "GPL-2+"
    legacy = "This package was debianized by X.\n\nLicense: LGPL-2.1\n"
    assert db.license_summary(legacy, ["a.jpg"]) == "LGPL-2.1"
    assert db.license_summary("Licensed under the GNU GPL version 2.\n", ["a.jpg"]).startswith("Licensed under")


def test_sources_keep_validation_packages_out_of_train():
    db.check_sources(db.SOURCES)
    val = {s.package for s in db.SOURCES if s.split == "val"}
    train = {s.package for s in db.SOURCES if s.split == "train"}
    assert val == {"opencv-doc", "palapeli-data"}
    assert not val & train
    twice = [db.Source("p", "train", "photo", lambda r: iter(())), db.Source("p", "val", "photo", lambda r: iter(()))]
    with pytest.raises(ValueError, match="listed twice"):
        db.check_sources(twice)


def test_manifest_refuses_train_rows_outside_train(tmp_path):
    row = dict.fromkeys(db.MANIFEST_FIELDS, "")
    with pytest.raises(db.DataBuildError):
        db.write_manifest(tmp_path, [{**row, "split": "train", "file": "val/photos/x.jpg"}])


# --------------------------------------------------------------------------------------------
# the pipeline, against fake packages and a fake apt-get
# --------------------------------------------------------------------------------------------

needs_dpkg = pytest.mark.skipif(shutil.which("dpkg-deb") is None, reason="needs dpkg-deb")

FAKE_APT = """#!/bin/sh
echo "$@" >> "$FAKE_APT_LOG"
[ "$1" = download ] || exit 100
for f in "$FAKE_DEBS/$2"_*.deb; do
  if [ -e "$f" ]; then cp "$f" .; exit 0; fi
done
echo "E: Unable to locate package $2" >&2
exit 100
"""


def make_deb(dest_dir, package, files: dict[str, bytes], copyright_text=COPYRIGHT):
    root = dest_dir / f"{package}-root"
    (root / "DEBIAN").mkdir(parents=True)
    (root / "DEBIAN" / "control").write_text(
        f"Package: {package}\nVersion: 1.0-1\nArchitecture: all\nMaintainer: t <t@example.org>\n"
        "Description: test package\n"
    )
    for rel, data in {**files, f"usr/share/doc/{package}/copyright": copyright_text.encode()}.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    subprocess.run(["dpkg-deb", "-Zgzip", "--root-owner-group", "--build", str(root),
                    str(dest_dir / f"{package}_1.0-1_all.deb")], check=True, capture_output=True)
    shutil.rmtree(root)


@pytest.fixture
def fake_apt(tmp_path, monkeypatch):
    bin_dir, debs = tmp_path / "bin", tmp_path / "repo"
    bin_dir.mkdir()
    debs.mkdir()
    apt = bin_dir / "apt-get"
    apt.write_text(FAKE_APT)
    apt.chmod(apt.stat().st_mode | stat.S_IEXEC)
    log = tmp_path / "apt.log"
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}")
    monkeypatch.setenv("FAKE_DEBS", str(debs))
    monkeypatch.setenv("FAKE_APT_LOG", str(log))
    return debs, log


def fake_sources():
    def pick(root):
        return db._files(root, "usr/share/pics/*")

    return (
        db.Source("fake-val", "val", "photo", pick),
        db.Source("fake-train", "train", "photo", pick),
        db.Source("fake-missing", "train", "photo", pick),
    )


@needs_dpkg
def test_build_pipeline_split_idempotence_and_failures(tmp_path, fake_apt):
    repo, log = fake_apt
    shared = photo_bytes((300, 280), 10)  # also shipped by the train package: must stay val-only
    make_deb(repo, "fake-val", {
        "usr/share/pics/shared.jpg": shared,
        "usr/share/pics/v.png": photo_bytes((260, 300), 11, "PNG"),
    })
    make_deb(repo, "fake-train", {
        "usr/share/pics/Blinds.jpg": photo_bytes((400, 300), 12),
        "usr/share/pics/copy.jpg": shared,
        "usr/share/pics/icon.png": drawing_bytes(),
        "usr/share/pics/tiny.jpg": photo_bytes((100, 80), 13),
        "usr/share/pics/broken.jpg": b"\xff\xd8\xff\xe0garbage",
    })
    out = tmp_path / "set"
    with pytest.raises(db.PackageDownloadError, match="fake-missing") as info:
        db.build_dataset(out, sources=fake_sources(), progress=False)
    assert info.value.report.built == ["fake-val", "fake-train"]

    rows = list(csv.DictReader((out / "manifest.csv").open()))
    assert {(r["package"], r["split"]) for r in rows} == {("fake-val", "val"), ("fake-train", "train")}
    for r in rows:
        assert r["file"].startswith(f"{r['split']}/photos/{r['package']}/")
        assert (out / r["file"]).is_file()
        assert r["package_version"] == "1.0-1"
    train = {r["file"].rsplit("/", 1)[1]: r for r in rows if r["split"] == "train"}
    assert set(train) == {"Blinds.jpg"}  # shared copy, drawing, tiny and broken files left out
    assert train["Blinds.jpg"]["license"] == "CC-BY-SA-4.0"
    assert (train["Blinds.jpg"]["width"], train["Blinds.jpg"]["height"]) == ("400", "300")
    val_files = {r["file"] for r in rows if r["split"] == "val"}
    assert (out / "val.flist").read_text().split() == sorted(val_files)
    assert (out / "train.flist").read_text().split() == ["train/photos/fake-train/Blinds.jpg"]
    assert not (out / ".work").exists()

    # second run: built packages are skipped without downloading; the missing one still fails
    calls = log.read_text().count("download")
    with pytest.raises(db.PackageDownloadError):
        db.build_dataset(out, sources=fake_sources(), progress=False)
    assert log.read_text().count("download") == calls + 1  # only fake-missing was asked for
    assert list(csv.DictReader((out / "manifest.csv").open())) == rows

    # a deleted output file makes its package build again, from the .deb cache
    (out / "train/photos/fake-train/Blinds.jpg").unlink()
    report = db.build_dataset(out, sources=fake_sources()[:2], progress=False)
    assert report.built == ["fake-train"] and report.skipped == ["fake-val"]
    assert log.read_text().count("download") == calls + 1
    assert (out / "train/photos/fake-train/Blinds.jpg").is_file()


@needs_dpkg
def test_validation_content_built_later_is_removed_from_train(tmp_path, fake_apt):
    repo, _ = fake_apt
    shared = photo_bytes((300, 280), 20)
    make_deb(repo, "fake-train", {"usr/share/pics/a.jpg": shared, "usr/share/pics/b.jpg": photo_bytes((300, 280), 21)})
    make_deb(repo, "fake-val", {"usr/share/pics/same.jpg": shared})
    out = tmp_path / "set"
    val, train, _ = fake_sources()
    db.build_dataset(out, sources=[train], progress=False)
    report = db.build_dataset(out, sources=[val, train], progress=False)
    assert report.skipped == ["fake-train"]
    files = sorted(r["file"] for r in report.rows)
    assert files == ["train/photos/fake-train/b.jpg", "val/photos/fake-val/same.jpg"]
    assert not (out / "train/photos/fake-train/a.jpg").exists()


def test_missing_apt_get_is_a_clear_error(tmp_path, monkeypatch, capsys):
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    with pytest.raises(db.ToolMissingError, match="apt-get"):
        db.build_dataset(tmp_path / "set", sources=fake_sources()[:1], progress=False)
    code = cli_main(["data", "build", "--out", str(tmp_path / "set2"), "--only", "palapeli-data", "--no-progress"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1
    assert "apt-get" in err and "dpkg-deb" in err


def test_compact_copy(tmp_path):
    src = tmp_path / "set"
    photo = src / "train/photos/p/big.png"
    texture = src / "train/textures/t/tex.jpg"
    for path, data in ((photo, photo_bytes((900, 600), 1, "PNG")), (texture, photo_bytes((512, 512), 2))):
        path.parent.mkdir(parents=True)
        path.write_bytes(data)
    base = dict.fromkeys(db.MANIFEST_FIELDS, "x")
    rows = [
        {**base, "split": "train", "file": "train/photos/p/big.png", "kind": "photo"},
        {**base, "split": "train", "file": "train/textures/t/tex.jpg", "kind": "texture"},
    ]
    db.write_manifest(src, rows)
    out = tmp_path / "small"
    new = db.compact_dataset(src, out, short_side=128, texture_short_side=64, progress=False)
    assert [r["file"] for r in new] == ["train/photos/p/big.jpg", "train/textures/t/tex.jpg"]
    with Image.open(out / "train/photos/p/big.jpg") as im:
        assert im.format == "JPEG" and im.size == (192, 128)
    with Image.open(out / "train/textures/t/tex.jpg") as im:
        assert im.size == (64, 64)
    assert (out / "train.flist").read_text().split() == [r["file"] for r in new]
    again = db.compact_dataset(src, out, short_side=128, texture_short_side=64, progress=False)
    assert again == new


@pytest.mark.slow
def test_real_download_of_a_small_package(tmp_path):
    """Needs apt sources and network: builds the 5 palapeli validation photos."""
    report = db.build_dataset(tmp_path / "set", packages=["palapeli-data"], progress=False)
    assert report.counts() == {"val/photo": 5}
    assert all(r["license"] for r in report.rows)
