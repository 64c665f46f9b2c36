"""tools/photoset, the photo-set builder: container readers on files written here to spec,
filters, licences, the package catalogue, split safety, and the apt-get/dpkg-deb pipeline
against fake packages (no network)."""

from __future__ import annotations

import csv
import io
import os
import shutil
import stat
import struct
import subprocess
import sys
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

lz4_block = pytest.importorskip("lz4.block")
pytest.importorskip("debian.copyright")

from tools.photoset import CatalogueError, FormatError, PackageDownloadError, ToolMissingError  # noqa: E402
from tools.photoset import catalogue, containers, filters  # noqa: E402
from tools.photoset.__main__ import main as photoset_main  # noqa: E402
from tools.photoset.build import build_photoset  # noqa: E402
from tools.photoset.licences import licence_for  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]

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


def write_eet(entries: list[tuple[str, bytes, int, int]]) -> bytes:
    """Eet v2 file: header (magic, count, 0 dictionary entries), 24-byte directory entries
    (offset, size, data size, name offset, name size, flags), names, then data."""
    header = struct.pack(">III", containers.EET_MAGIC_FILE2, len(entries), 0)
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
        nodes[index] = struct.pack(">IHII", offset, containers.RCC_DIRECTORY, len(children), first) + node_tail
        for k, (child, value) in enumerate(sorted(children.items())):
            if isinstance(value, dict):
                queue.append((first + k, child, value))
            else:
                payload, flags = value
                if flags & containers.RCC_COMPRESSED:
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


def test_find_jpegs_in_junk_baseline_and_progressive():
    a = photo_bytes((64, 48), 1)
    b = photo_bytes((40, 40), 2, progressive=True, quality=80)
    blob = b"junk\xff\xd8\xff\x00half" + a + b"\x00" * 7 + b + b"tail\xff\xd8"
    found = containers.find_jpegs(blob)
    assert found == [a, b]
    assert containers.jpeg_end(a) == len(a)
    assert containers.find_jpegs(a[: len(a) // 2]) == []  # truncated: no EOI


def lz4(data: bytes) -> bytes:
    """A raw LZ4 block (no size header), as Eet stores it."""
    return lz4_block.compress(data, store_size=False)


COMPRESSED = containers.EET_FLAG_COMPRESSED


def test_eet_reader_finds_raw_zlib_and_lz4_jpegs():
    big, small = photo_bytes((300, 260), 3), photo_bytes((64, 64), 4)
    lossless = struct.pack("<I", 0xAC1DFEED) + bytes(64)
    alpha_lossy = struct.pack(">III", 0xBEEFF00D, len(small), 0) + small
    entries = [
        ("edje/images/0", big, 0, len(big)),
        ("edje/images/1", zlib.compress(small), COMPRESSED | (9 << 3), len(small)),
        ("edje/images/2", lossless, 0, len(lossless)),
        ("edje/images/3", lz4(alpha_lossy), COMPRESSED | (10 << 3), len(alpha_lossy)),
        ("edje/images/4", lz4(small), COMPRESSED | (11 << 3), len(small)),  # LZ4HC: the same block format
        ("edje/alias", b"edje/images/0\0", containers.EET_FLAG_ALIAS, 14),
        ("edje/file", zlib.compress(b"CHKd" * 10), COMPRESSED | (9 << 3), 40),
    ]
    blob = write_eet(entries)
    directory = containers.read_eet_directory(blob)
    assert [e.name for e in directory] == [e[0] for e in entries]
    assert containers.eet_read_entry(blob, directory[6]) == b"CHKd" * 10
    assert containers.eet_read_entry(blob, directory[3]) == alpha_lossy
    assert list(containers.eet_jpegs(blob)) == [
        ("edje/images/0", big), ("edje/images/1", small), ("edje/images/3", small), ("edje/images/4", small),
    ]


def test_eet_entries_that_do_not_decompress_are_format_errors_and_skipped():
    good = photo_bytes((64, 64), 5)
    text = b"abcdefgh" * 40
    entries = [
        ("lz4/short", lz4(text), COMPRESSED | (10 << 3), len(text) + 1),  # decodes to fewer bytes
        ("lz4/garbage", b"\xff" * 20, COMPRESSED | (10 << 3), 100),
        ("zlib/garbage", b"not zlib", COMPRESSED | (9 << 3), 8),
        ("ciphered", good, containers.EET_FLAG_CIPHERED, len(good)),
        ("image", good, 0, len(good)),
    ]
    blob = write_eet(entries)
    directory = containers.read_eet_directory(blob)
    for entry, match in zip(directory, ("decompressed to", "Eet entry 'lz4/garbage'", "Eet entry 'zlib/garbage'",
                                        "ciphered")):
        with pytest.raises(FormatError, match=match):
            containers.eet_read_entry(blob, entry)
    assert list(containers.eet_jpegs(blob)) == [("image", good)]


def test_eet_reader_rejects_other_files():
    with pytest.raises(FormatError, match="not an Eet"):
        containers.read_eet_directory(b"PK\x03\x04" + bytes(20))
    bad = bytearray(write_eet([("x", b"abc", 0, 3)]))
    struct.pack_into(">I", bad, 12, 10_000)  # data offset past the end
    with pytest.raises(FormatError, match="outside"):
        containers.read_eet_directory(bytes(bad))


@pytest.mark.parametrize("version", [1, 2, 3])
def test_rcc_reader_walks_tree_and_decompresses(version):
    jpg, png = photo_bytes((40, 30), 5), photo_bytes((20, 20), 6, fmt="PNG")
    files = {
        "gcompris/src/activities/erase/resource/gorilla.jpg": (jpg, 0),
        "gcompris/src/activities/erase/resource/sub/bird.png": (png, containers.RCC_COMPRESSED),
        "gcompris/src/activities/erase/Erase.qml": (b"import QtQuick 2.12\n", containers.RCC_COMPRESSED),
        "README": (b"hello", 0),
    }
    found = dict(containers.read_rcc(write_rcc(files, version)))
    assert found == {"/" + p: payload for p, (payload, _) in files.items()}


def test_rcc_reader_rejects_bad_files():
    with pytest.raises(FormatError, match="qres"):
        list(containers.read_rcc(b"RIFF" + bytes(40)))
    blob = bytearray(write_rcc({"a/b.jpg": (b"x" * 10, 0)}))
    blob[4:8] = struct.pack(">I", 9)
    with pytest.raises(FormatError, match="version"):
        list(containers.read_rcc(bytes(blob)))


# --------------------------------------------------------------------------------------------
# filters, licences, sources
# --------------------------------------------------------------------------------------------


def test_photographic_filter():
    config = filters.FilterConfig()
    photo = filters.image_stats(photo_bytes((400, 300)))
    assert filters.rejection_reason(photo, config, max_flat=0.035) is None
    drawing = filters.image_stats(drawing_bytes())
    assert "colours" in filters.rejection_reason(drawing, config)
    small = filters.image_stats(photo_bytes((300, 200)))
    assert "short side" in filters.rejection_reason(small, config)
    rgba = Image.open(io.BytesIO(photo_bytes((300, 300), fmt="PNG"))).convert("RGBA")
    rgba.putalpha(Image.new("L", rgba.size, 0).resize(rgba.size))
    buf = io.BytesIO()
    rgba.save(buf, "PNG")
    assert "transparent" in filters.rejection_reason(filters.image_stats(buf.getvalue()), config)


def test_texture_map_names():
    ufoai = next(s for s in catalogue.load_catalogue() if s.package == "ufoai-textures")
    suffixes = ufoai.extract.keywords["map_suffixes"]
    assert catalogue.is_texture_map("textures/tex_nature/rock001_nm.png", suffixes)
    assert catalogue.is_texture_map("textures/tex_misc/box_gloss.jpg", suffixes)
    assert catalogue.is_texture_map("textures/tex_misc/wall_h.jpg", suffixes)
    assert not catalogue.is_texture_map("textures/tex_ctp1/bricks_g_1.jpg", suffixes)
    assert not catalogue.is_texture_map("textures/tex_nature/grass004.jpg", suffixes)


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
    assert licence_for(COPYRIGHT, ["usr/share/backgrounds/mate/nature/Blinds.jpg"]) == "CC-BY-SA-4.0"
    assert licence_for(COPYRIGHT, ["usr/share/backgrounds/aitzgorri_by_Aitzol_Berasategi.jpg"]) == "CC-BY-SA-4.0"
    assert licence_for(COPYRIGHT, ["usr/share/x.rcc!gcompris/src/activities/erase/resource/a.webp"]) == "CC0-1.0"
    assert licence_for(COPYRIGHT, ["usr/share/other/Storm.jpg"]) == "GPL-2+"
    legacy = "This package was debianized by X.\n\nLicense: LGPL-2.1\n"
    assert licence_for(legacy, ["a.jpg"]) == "LGPL-2.1"
    assert licence_for("Licensed under the GNU GPL version 2.\n", ["a.jpg"]).startswith("Licensed under")


def test_catalogue_keeps_validation_packages_out_of_train():
    sources = catalogue.load_catalogue()
    val = {s.package for s in sources if s.split == "val"}
    train = {s.package for s in sources if s.split == "train"}
    assert val == {"opencv-doc", "palapeli-data"}
    assert not val & train and len(sources) == 10
    assert [s.package for s in sources if s.kind == "texture"] == ["ufoai-textures"]
    twice = [catalogue.Source("p", "train", "photo", lambda r: iter(())),
             catalogue.Source("p", "val", "photo", lambda r: iter(()))]
    with pytest.raises(CatalogueError, match="listed twice"):
        catalogue.check_sources(twice)


@pytest.mark.parametrize("entry, message", [
    ('package = "p"\nsplit = "val"\nkind = "photo"\nextract = "unzip"', "unknown extract 'unzip'"),
    ('package = "p"\nsplit = "val"\nkind = "photo"\nextract = "files"\n[source.args]\npatern = "*.jpg"',
     "arguments of files"),
    ('package = "p"\nsplit = "test"\nkind = "photo"\nextract = "files"\n[source.args]\npattern = "*.jpg"',
     "split must be"),
    ('package = "p"\nsplit = "val"\nextract = "files"\ncolour = 1', "unknown keys colour; missing kind"),
])
def test_a_wrong_catalogue_entry_is_named(tmp_path, entry, message):
    path = tmp_path / "packages.toml"
    path.write_text(f"[[source]]\n{entry}\n")
    with pytest.raises(CatalogueError, match=message) as info:
        catalogue.load_catalogue(path)
    assert "source 1 (p)" in str(info.value) or "split must be" in message


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
        return catalogue.files(root, "usr/share/pics/*")

    return (
        catalogue.Source("fake-val", "val", "photo", pick),
        catalogue.Source("fake-train", "train", "photo", pick),
        catalogue.Source("fake-missing", "train", "photo", pick),
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
    with pytest.raises(PackageDownloadError, match="fake-missing") as info:
        build_photoset(out, sources=fake_sources(), progress=False)
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
    with pytest.raises(PackageDownloadError):
        build_photoset(out, sources=fake_sources(), progress=False)
    assert log.read_text().count("download") == calls + 1  # only fake-missing was asked for
    assert list(csv.DictReader((out / "manifest.csv").open())) == rows

    # a deleted output file makes its package build again, from the .deb cache
    (out / "train/photos/fake-train/Blinds.jpg").unlink()
    report = build_photoset(out, sources=fake_sources()[:2], progress=False)
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
    build_photoset(out, sources=[train], progress=False)
    report = build_photoset(out, sources=[val, train], progress=False)
    assert report.skipped == ["fake-train"]
    files = sorted(r["file"] for r in report.rows)
    assert files == ["train/photos/fake-train/b.jpg", "val/photos/fake-val/same.jpg"]
    assert not (out / "train/photos/fake-train/a.jpg").exists()


def test_missing_apt_get_is_a_clear_error(tmp_path, monkeypatch, capsys):
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    with pytest.raises(ToolMissingError, match="apt-get"):
        build_photoset(tmp_path / "set", sources=fake_sources()[:1], progress=False)
    code = photoset_main(["build", "--out", str(tmp_path / "set2"), "--only", "palapeli-data", "--no-progress"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1
    assert "apt-get" in err and "dpkg-deb" in err
    # the same from the command line of a source checkout
    result = subprocess.run([sys.executable, "-m", "tools.photoset", "build", "--out", str(tmp_path / "set3"),
                             "--no-progress"], cwd=ROOT, capture_output=True, text=True, timeout=120,
                            env={**os.environ, "PATH": str(empty)})
    assert result.returncode == 2 and result.stderr.startswith("photoset: error: apt-get and dpkg-deb not found")
    assert "Traceback" not in result.stderr


@pytest.mark.slow
def test_real_download_of_a_small_package(tmp_path):
    """Needs apt sources and network: builds the 5 palapeli validation photos."""
    report = build_photoset(tmp_path / "set", packages=["palapeli-data"], progress=False)
    assert report.counts() == {"val/photo": 5}
    assert all(r["license"] for r in report.rows)


def test_catalogue_extractors_on_unpacked_packages(tmp_path):
    """Each package's extractor, with its arguments from packages.toml, on a tree laid out as
    the package installs it."""
    sources = {s.package: s for s in catalogue.load_catalogue()}
    small, large = photo_bytes((320, 288), 30), photo_bytes((400, 360), 31)
    tree = {
        "usr/share/wallpapers/Kite/contents/images/1920x1080.jpg": small,
        "usr/share/wallpapers/Kite/contents/images/3840x2160.jpg": large,
        "usr/share/backgrounds/Fossa_by_Jasper_Roks.jpg": small,  # painted: left out
        "usr/share/backgrounds/aitzgorri_by_Aitzol_Berasategi.jpg": large,
        "usr/share/enlightenment/data/backgrounds/Bamboo.edj": write_eet([
            ("images/0", small, 0, len(small)),
            ("images/1", lz4(large), COMPRESSED | (10 << 3), len(large)),
        ]),
        "usr/share/gcompris-qt/rcc/erase.rcc": write_rcc({
            "gcompris/src/activities/erase/resource/back/gorilla.jpg": (small, 0),
            "gcompris/src/activities/erase/Erase.qml": (b"import QtQuick 2.12\n", 0),
        }),
    }
    for rel, data in tree.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(data)
    pk3 = tmp_path / "usr/share/games/ufoai/base/0textures.pk3"
    pk3.parent.mkdir(parents=True)
    with zipfile.ZipFile(pk3, "w") as archive:
        for member in ("textures/tex_nature/grass.jpg", "textures/tex_nature/grass_nm.jpg",
                       "textures/tex_ufo/hull.jpg", "textures/tex_nature/sub/deep.jpg"):
            archive.writestr(member, small)

    def found(package):
        return [(c.name, c.source_path, c.data) for c in sources[package].extract(tmp_path)]

    assert found("plasma-workspace-wallpapers") == [
        ("Kite.jpg", "usr/share/wallpapers/Kite/contents/images/3840x2160.jpg", large)]
    assert [name for name, *_ in found("lomiri-wallpapers-20.04")] == ["aitzgorri_by_Aitzol_Berasategi.jpg"]
    assert found("enlightenment-data") == [
        ("Bamboo.jpg", "usr/share/enlightenment/data/backgrounds/Bamboo.edj!images/1", large)]
    assert found("gcompris-qt-data") == [(
        "erase__back__gorilla.jpg",
        "usr/share/gcompris-qt/rcc/erase.rcc!gcompris/src/activities/erase/resource/back/gorilla.jpg", small)]
    assert found("ufoai-textures") == [
        ("tex_nature__grass.jpg", "usr/share/games/ufoai/base/0textures.pk3!textures/tex_nature/grass.jpg", small)]
