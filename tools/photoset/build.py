"""Build the training and validation photo set of docs/design.md §3 from Debian packages.

Every source is a Debian package fetched with ``apt-get download`` (no root needed) and
unpacked with ``dpkg-deb -x``. Some keep their photos inside containers, read here by small
readers written from the format descriptions: Enlightenment Eet files (``.edj``), Qt binary
resource bundles (``.rcc``) and zip (``.pk3``). Layout of the output folder::

    DIR/train/photos/<package>/...    DIR/train/textures/<package>/...    DIR/val/photos/<package>/...
    DIR/manifest.csv   DIR/train.flist   DIR/val.flist   DIR/.debs/ (download cache)

Validation packages never feed the training split: the split is a property of the package,
checked before anything is written, and a training image whose content (hash) matches a
validation image is dropped. ``compact_dataset`` writes the short-side-512 JPEG copy.
"""

from __future__ import annotations

import csv
import dataclasses
import fnmatch
import hashlib
import io
import logging
import os
import re
import shutil
import struct
import subprocess
import tempfile
import zipfile
import zlib
from pathlib import Path
from typing import Callable, Iterable, Iterator, Literal, Sequence

import numpy as np
from PIL import Image, ImageOps

from deepfill.errors import DeepfillError

logger = logging.getLogger(__name__)

MANIFEST_FIELDS = (
    "split", "file", "package", "package_version", "source_path", "width", "height", "license",
    "kind", "sha1",
)
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff")


class DataBuildError(DeepfillError):
    """The photo set could not be built (tools, downloads, unreadable containers)."""


class ToolMissingError(DataBuildError):
    """``apt-get`` or ``dpkg-deb`` is not on PATH."""


class PackageDownloadError(DataBuildError):
    """One or more packages could not be downloaded; the others were built (``report``)."""

    report: "BuildReport | None" = None


class FormatError(DataBuildError, ValueError):
    """A container file (Eet, rcc, JPEG stream) that does not follow its format."""


# --------------------------------------------------------------------------------------------
# LZ4 block decoding (Eet's "very fast" compression) and JPEG stream delimiting
# --------------------------------------------------------------------------------------------


def _lz4_length(src: bytes, i: int, length: int) -> tuple[int, int]:
    """A 4-bit length of 15 continues in bytes of 255 up to the first smaller one; returns (length, i)."""
    if length == 15:
        while True:
            b = src[i]
            i += 1
            length += b
            if b != 255:
                break
    return length, i


def lz4_block_decompress(src: bytes, size: int) -> bytes:
    """Decode one raw LZ4 block (no frame header) whose decoded length is ``size``.

    Sequence = token (literal length << 4 | match length - 4), extra length bytes of 255...,
    literals, 2-byte little-endian offset, extra match-length bytes; the last sequence is
    literals only.
    """
    out = bytearray()
    i, n = 0, len(src)
    try:
        while i < n:
            token = src[i]
            i += 1
            length, i = _lz4_length(src, i, token >> 4)
            if i + length > n:
                raise FormatError("LZ4 literals run past the end of the block")
            out += src[i : i + length]
            i += length
            if i >= n:
                break
            offset = src[i] | (src[i + 1] << 8)
            i += 2
            if offset == 0 or offset > len(out):
                raise FormatError(f"LZ4 match offset {offset} outside the {len(out)} bytes decoded")
            length, i = _lz4_length(src, i, token & 15)
            length += 4
            start = len(out) - offset
            if offset >= length:
                out += out[start : start + length]
            else:  # overlapping copy: the last `offset` bytes repeat
                pattern = bytes(out[start:])
                out += (pattern * (length // offset + 1))[:length]
    except IndexError as exc:
        raise FormatError("LZ4 block is truncated") from exc
    if len(out) != size:
        raise FormatError(f"LZ4 block decoded to {len(out)} bytes, expected {size}")
    return bytes(out)


def jpeg_end(data: bytes, start: int = 0) -> int | None:
    """End offset (after EOI) of the JPEG stream whose SOI is at ``start``, or None.

    Walks the marker segments; after each SOS skips the entropy-coded data, where 0xFF is
    followed by a stuffed 0x00, a restart marker or fill bytes until the next real marker.
    """
    n = len(data)
    if data[start : start + 2] != b"\xff\xd8":
        return None
    i = start + 2
    while i + 1 < n:
        if data[i] != 0xFF:
            return None
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker == 0xD9:
            return i + 2
        if 0xD0 <= marker <= 0xD7 or marker == 0x01:  # standalone markers
            i += 2
            continue
        if marker in (0x00, 0xD8) or i + 4 > n:
            return None
        length = (data[i + 2] << 8) | data[i + 3]
        if length < 2:
            return None
        i += 2 + length
        if marker == 0xDA:  # start of scan: skip entropy-coded data
            while True:
                j = data.find(b"\xff", i)
                if j < 0 or j + 1 >= n:
                    return None
                nxt = data[j + 1]
                if nxt == 0x00 or 0xD0 <= nxt <= 0xD7:
                    i = j + 2
                elif nxt == 0xFF:
                    i = j + 1
                else:
                    i = j
                    break
    return None


def find_jpegs(data: bytes) -> list[bytes]:
    """Complete JPEG streams (SOI ... EOI) embedded in ``data``, in order, not nested."""
    found = []
    pos = 0
    while True:
        start = data.find(b"\xff\xd8\xff", pos)
        if start < 0:
            return found
        end = jpeg_end(data, start)
        if end is None:
            pos = start + 1
            continue
        found.append(data[start:end])
        pos = end


# --------------------------------------------------------------------------------------------
# Eet (Enlightenment) files
# --------------------------------------------------------------------------------------------

EET_MAGIC_FILE2 = 0x1EE70F42
EET_FLAG_COMPRESSED, EET_FLAG_CIPHERED, EET_FLAG_ALIAS = 0x1, 0x2, 0x4
EET_LZ4_TYPES = (10, 11)  # EET_COMPRESSION_VERYFAST (LZ4), SUPERFAST (LZ4HC); 1..9 are zlib


@dataclasses.dataclass(frozen=True)
class EetEntry:
    """One directory entry of an Eet file (all integers big-endian on disk)."""

    name: str
    offset: int
    size: int  # bytes on disk
    data_size: int  # bytes once decompressed
    flags: int

    @property
    def compressed(self) -> bool:
        return bool(self.flags & EET_FLAG_COMPRESSED)

    @property
    def compression_type(self) -> int:
        return (self.flags >> 3) & 0xFF


def read_eet_directory(data: bytes) -> list[EetEntry]:
    """Parse the header and directory of an Eet file (format version 2, magic 0x1ee70f42).

    Header: magic, entry count, dictionary count. Entry: data offset, size, decompressed size,
    name offset, name size (with its NUL), flags (bit 0 compressed, 1 ciphered, 2 alias,
    bits 3.. compression type).
    """
    if len(data) < 12:
        raise FormatError("not an Eet file: shorter than its header")
    magic, count, dict_count = struct.unpack_from(">III", data, 0)
    if magic != EET_MAGIC_FILE2:
        raise FormatError(f"not an Eet file (magic {magic:#010x}, expected {EET_MAGIC_FILE2:#010x})")
    if 12 + 24 * count + 20 * dict_count > len(data):
        raise FormatError(f"Eet directory of {count} entries does not fit in {len(data)} bytes")
    entries = []
    for k in range(count):
        offset, size, data_size, name_offset, name_size, flags = struct.unpack_from(">6I", data, 12 + 24 * k)
        if offset + size > len(data) or name_offset + name_size > len(data):
            raise FormatError(f"Eet entry {k} points outside the file")
        name = data[name_offset : name_offset + name_size].split(b"\0", 1)[0].decode("utf-8", "replace")
        entries.append(EetEntry(name, offset, size, data_size, flags))
    return entries


def eet_read_entry(data: bytes, entry: EetEntry) -> bytes:
    """The decompressed payload of one entry (zlib or LZ4); raises FormatError if ciphered."""
    if entry.flags & EET_FLAG_CIPHERED:
        raise FormatError(f"Eet entry {entry.name!r} is ciphered")
    raw = data[entry.offset : entry.offset + entry.size]
    if not entry.compressed:
        return raw
    if entry.compression_type in EET_LZ4_TYPES:
        return lz4_block_decompress(raw, entry.data_size)
    try:
        out = zlib.decompress(raw)
    except zlib.error as exc:
        raise FormatError(f"Eet entry {entry.name!r}: {exc}") from exc
    if len(out) != entry.data_size:
        raise FormatError(f"Eet entry {entry.name!r} decompressed to {len(out)} bytes, not {entry.data_size}")
    return out


def eet_jpegs(data: bytes) -> Iterator[tuple[str, bytes]]:
    """(entry name, JPEG bytes) for every JPEG stored in an Eet file.

    Edje stores lossy images as a bare JPEG (or a small header followed by colour and alpha
    JPEGs); both are found by scanning each entry for complete SOI...EOI streams. Aliases and
    ciphered entries are skipped.
    """
    for entry in read_eet_directory(data):
        if entry.flags & (EET_FLAG_ALIAS | EET_FLAG_CIPHERED):
            continue
        try:
            payload = eet_read_entry(data, entry)
        except FormatError as exc:
            logger.debug("skipping %s", exc)
            continue
        for k, jpeg in enumerate(find_jpegs(payload)):
            yield (entry.name if k == 0 else f"{entry.name}#{k}"), jpeg


# --------------------------------------------------------------------------------------------
# Qt binary resources (.rcc)
# --------------------------------------------------------------------------------------------

RCC_COMPRESSED, RCC_DIRECTORY, RCC_COMPRESSED_ZSTD = 0x1, 0x2, 0x4


def _zstd_decompress(payload: bytes) -> bytes:
    try:
        import zstandard  # optional

        return zstandard.ZstdDecompressor().decompressobj().decompress(payload)
    except ImportError:
        pass
    try:
        from compression import zstd  # Python >= 3.14

        return zstd.decompress(payload)
    except ImportError as exc:
        raise FormatError("zstd-compressed resource: install the 'zstandard' package to read it") from exc


def read_rcc(data: bytes) -> Iterator[tuple[str, bytes]]:
    """(path, payload) for every file in a Qt binary resource bundle, payloads decompressed.

    Header: b"qres", version, tree offset, data offset, names offset (+ flags in version 3),
    all big-endian u32. Tree node: name offset u32, flags u16, then for a directory the child
    count and first child index (u32 each), for a file territory u16, language u16 and data
    offset u32; versions >= 2 append a u64 modification time. Names: u16 length, u32 hash,
    UTF-16BE text. Data: u32 length then bytes; zlib data starts with its u32 decoded length.
    """
    if len(data) < 20 or data[:4] != b"qres":
        raise FormatError("not a Qt resource file (no 'qres' magic)")
    version, tree, data_off, names = struct.unpack_from(">IIII", data, 4)
    if not 1 <= version <= 3:
        raise FormatError(f"unsupported Qt resource version {version}")
    if max(tree, data_off, names) >= len(data):
        raise FormatError("Qt resource offsets point outside the file")
    node_size = 14 if version == 1 else 22

    def name_at(offset: int) -> str:
        (length,) = struct.unpack_from(">H", data, names + offset)
        start = names + offset + 6
        return data[start : start + 2 * length].decode("utf-16-be")

    def node(index: int) -> tuple[int, int, int, int]:
        pos = tree + index * node_size
        if pos + 14 > len(data):
            raise FormatError(f"Qt resource tree node {index} outside the file")
        name_offset, flags = struct.unpack_from(">IH", data, pos)
        a, b = struct.unpack_from(">II", data, pos + 6)  # (count, first) or (locale, data offset)
        return name_offset, flags, a, b

    try:
        stack: list[tuple[int, str]] = [(0, "")]
        seen = set()
        while stack:
            index, path = stack.pop()
            if index in seen:
                raise FormatError("Qt resource tree has a cycle")
            seen.add(index)
            name_offset, flags, a, b = node(index)
            if index:
                path = f"{path}/{name_at(name_offset)}"
            if flags & RCC_DIRECTORY:
                stack.extend((child, path) for child in reversed(range(b, b + a)))
                continue
            start = data_off + b
            (length,) = struct.unpack_from(">I", data, start)
            payload = data[start + 4 : start + 4 + length]
            if len(payload) != length:
                raise FormatError(f"Qt resource {path} runs past the end of the file")
            if flags & RCC_COMPRESSED:
                (expected,) = struct.unpack_from(">I", payload, 0)
                payload = zlib.decompress(payload[4:])
                if len(payload) != expected:
                    raise FormatError(f"Qt resource {path}: {len(payload)} bytes, expected {expected}")
            elif flags & RCC_COMPRESSED_ZSTD:
                payload = _zstd_decompress(payload)
            yield path, payload
    except (struct.error, UnicodeDecodeError, zlib.error) as exc:
        raise FormatError(f"corrupt Qt resource file: {exc}") from exc


# --------------------------------------------------------------------------------------------
# Licences from /usr/share/doc/PKG/copyright
# --------------------------------------------------------------------------------------------


def parse_copyright(text: str) -> list[tuple[list[str], str]]:
    """(Files patterns, short licence name) for each ``Files:`` paragraph of a DEP-5 file."""
    stanzas = []
    for paragraph in re.split(r"\n\s*\n", text):
        fields: dict[str, str] = {}
        current = None
        for line in paragraph.splitlines():
            if line[:1] in (" ", "\t") and current:
                fields[current] += "\n" + line.strip()
                continue
            m = re.match(r"([A-Za-z-]+):\s*(.*)", line)
            if m:
                current = m.group(1).lower()
                fields[current] = m.group(2).strip()
        if "files" in fields and "license" in fields:
            license_name = fields["license"].split("\n", 1)[0].strip()
            stanzas.append((fields["files"].split(), license_name))
    return stanzas


def _pattern_matches(pattern: str, path: str) -> bool:
    path = path.lstrip("/")
    if fnmatch.fnmatchcase(path, pattern) or fnmatch.fnmatchcase(path, "*/" + pattern):
        return True
    base = pattern.rsplit("/", 1)[-1]
    return not any(c in base for c in "*?[") and base == path.rsplit("/", 1)[-1]


def _path_variants(paths: Sequence[str]) -> list[str]:
    """The paths, plus each image path with its other possible image suffixes (packagers
    convert images, e.g. GCompris ships as .webp the .jpg files its copyright names)."""
    out = []
    for path in paths:
        out.append(path)
        stem, dot, suffix = path.rpartition(".")
        if dot and f".{suffix.lower()}" in IMAGE_SUFFIXES + (".svg",):
            out.extend(f"{stem}{s}" for s in (".jpg", ".jpeg", ".png", ".svg", ".webp") if s != f".{suffix}")
    return out


def license_summary(text: str, paths: Sequence[str]) -> str:
    """The licence a copyright file states for ``paths`` (the last matching DEP-5 paragraph).

    Patterns match the whole path, a path suffix, or the file name when the pattern names one
    file; image suffixes are interchangeable. Falls back to ``Files: *``, then to the first
    line mentioning a licence.
    """
    stanzas = parse_copyright(text)
    paths = _path_variants(paths)
    chosen = None
    for patterns, name in stanzas:
        if any(_pattern_matches(p, path) for p in patterns if p != "*" for path in paths):
            chosen = name
        elif chosen is None and "*" in patterns:
            chosen = name
    if chosen:
        return chosen
    for line in text.splitlines():
        m = re.match(r"\s*License:\s*(\S.*)", line)
        if m:
            return m.group(1).strip()
    for line in text.splitlines():
        if "licen" in line.lower():
            return " ".join(line.split())[:100]
    return "unknown"


# --------------------------------------------------------------------------------------------
# Photographic filter
# --------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class ImageStats:
    """What the photographic filter looks at, measured on a copy of ~128-255 px short side."""

    width: int
    height: int
    alpha_fraction: float  # share of (partly) transparent pixels
    colours: int  # distinct RGB values in the reduced copy
    flat_fraction: float  # share of horizontal neighbours with (almost) equal colour


def image_stats(data: bytes) -> ImageStats:
    """Measure an encoded image; raises OSError/ValueError when Pillow cannot decode it."""
    with Image.open(io.BytesIO(data)) as im:
        w, h = im.size
        factor = max(1, min(w, h) // 128)
        small_size = (max(1, w // factor), max(1, h // factor))
        im.draft("RGB", small_size)  # JPEG: decode at a reduced scale
        has_alpha = im.mode in ("RGBA", "LA", "PA", "La", "RGBa") or "transparency" in im.info
        im = im.convert("RGBA" if has_alpha else "RGB")
        small = im.resize(small_size, Image.Resampling.BOX)
    arr = np.asarray(small)
    alpha = float((arr[..., 3] < 250).mean()) if has_alpha else 0.0
    rgb = arr[..., :3].astype(np.int32)
    colours = int(np.unique(rgb[..., 0] << 16 | rgb[..., 1] << 8 | rgb[..., 2]).size)
    flat = float((np.abs(np.diff(rgb, axis=1)).sum(-1) <= 1).mean()) if rgb.shape[1] > 1 else 1.0
    return ImageStats(w, h, alpha, colours, flat)


@dataclasses.dataclass(frozen=True)
class FilterConfig:
    """Thresholds of the photographic filter; ``max_flat`` is per source (see ``Source``)."""

    min_side: int = 256
    max_alpha: float = 0.01
    min_colours: int = 64


def rejection_reason(stats: ImageStats, config: FilterConfig, max_flat: float | None = None) -> str | None:
    """Why an image is not kept as a photo (None when it is kept)."""
    if min(stats.width, stats.height) < config.min_side:
        return f"short side {min(stats.width, stats.height)} < {config.min_side}"
    if stats.alpha_fraction > config.max_alpha:
        return f"transparent ({stats.alpha_fraction:.0%})"
    if stats.colours < config.min_colours:
        return f"{stats.colours} colours"
    if max_flat is not None and stats.flat_fraction > max_flat:
        return f"flat areas ({stats.flat_fraction:.0%})"
    return None


# --------------------------------------------------------------------------------------------
# Sources
# --------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Candidate:
    """One image found in a package: output name, where it came from, its encoded bytes."""

    name: str
    source_path: str  # path inside the package; "container!member" for containers
    data: bytes


Extractor = Callable[[Path], Iterator[Candidate]]


@dataclasses.dataclass(frozen=True)
class Source:
    """A Debian package, the split it feeds, and how to find its photos once unpacked."""

    package: str
    split: Literal["train", "val"]
    kind: Literal["photo", "texture"]
    extract: Extractor
    max_flat: float | None = None  # flat-area limit (textures); None: photos may have smooth sky


def _safe_name(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("_") or "image"


def _files(root: Path, pattern: str) -> Iterator[Candidate]:
    for path in sorted(root.glob(pattern)):
        if path.is_file():
            yield Candidate(path.name, path.relative_to(root).as_posix(), path.read_bytes())


def _files_except(root: Path, pattern: str, exclude: Iterable[str]) -> Iterator[Candidate]:
    skip = set(exclude)
    for candidate in _files(root, pattern):
        if Path(candidate.name).stem not in skip:
            yield candidate


def _named_files(root: Path, folder: str, names: Iterable[str]) -> Iterator[Candidate]:
    for name in names:
        path = root / folder / name
        if path.is_file():
            yield Candidate(path.name, path.relative_to(root).as_posix(), path.read_bytes())
        else:
            logger.warning("%s not found in the package", path.relative_to(root))


PLASMA_PHOTOS = (
    "BytheWater", "ColdRipple", "ColorfulCups", "DarkestHour", "EveningGlow", "FallenLeaf",
    "Grey", "Kite", "OneStandsOut", "Path", "summer_1am",
)


def _plasma(root: Path) -> Iterator[Candidate]:
    """The photographic KDE wallpapers, largest resolution of each (named WxH.ext)."""
    for name in PLASMA_PHOTOS:
        images = [p for p in (root / "usr/share/wallpapers" / name / "contents/images").glob("*") if p.is_file()]
        if not images:
            logger.warning("wallpaper %s not found in the package", name)
            continue

        def pixels(p: Path) -> int:
            m = re.match(r"(\d+)x(\d+)$", p.stem)
            return int(m.group(1)) * int(m.group(2)) if m else 0

        best = max(images, key=pixels)
        yield Candidate(f"{name}{best.suffix.lower()}", best.relative_to(root).as_posix(), best.read_bytes())


LOMIRI_NOT_PHOTOS = (  # abstract or painted wallpapers in the lomiri packages
    "analogpattern_by_Peter_Nerlich", "umang_by_Abhishek_Mudgal", "Fossa_by_Jasper_Roks",
    "Painting-Colors_by__herobrine7gamer", "Infinite-Sea_by_Aury88",
)

ENLIGHTENMENT_PHOTOS = (
    "Bamboo", "Foggy-Trees", "God-Rays", "Green-Maple", "Lichen-Branches", "Mountain", "Peaks",
    "Red-Maple", "Sea-of-Lanterns", "Snow-Trees", "Spruce-Needles", "Sunset-Clouds",
    "White-Flower", "Yellow-Flower",
)


def _jpeg_pixels(jpeg: bytes) -> int:
    try:
        with Image.open(io.BytesIO(jpeg)) as im:
            return im.size[0] * im.size[1]
    except (OSError, ValueError):
        return -1


def _enlightenment(root: Path) -> Iterator[Candidate]:
    """Photo backgrounds: each .edj holds one photo at several sizes; take the largest."""
    folder = root / "usr/share/enlightenment/data/backgrounds"
    for name in ENLIGHTENMENT_PHOTOS:
        path = folder / f"{name}.edj"
        if not path.is_file():
            logger.warning("%s not found in the package", path.relative_to(root))
            continue
        try:
            jpegs = list(eet_jpegs(path.read_bytes()))
        except FormatError as exc:
            logger.warning("%s: %s", path.name, exc)
            continue
        if not jpegs:
            logger.warning("%s: no JPEG inside", path.name)
            continue
        entry, best = max(jpegs, key=lambda item: (_jpeg_pixels(item[1]), len(item[1])))
        yield Candidate(f"{name}.jpg", f"{path.relative_to(root).as_posix()}!{entry}", best)


GCOMPRIS_ACTIVITIES = (
    "explore_monuments", "erase", "explore_world_animals", "explore_farm_animals",
    "explore_world_music", "categorization",
)


def _gcompris(root: Path) -> Iterator[Candidate]:
    """Photos in the resource folders of six GCompris activities (Qt .rcc bundles)."""
    for activity in GCOMPRIS_ACTIVITIES:
        path = root / "usr/share/gcompris-qt/rcc" / f"{activity}.rcc"
        if not path.is_file():
            logger.warning("%s not found in the package", path.relative_to(root))
            continue
        try:
            for member, payload in read_rcc(path.read_bytes()):
                if "/resource/" not in member or not member.lower().endswith((".webp", ".jpg", ".jpeg", ".png")):
                    continue
                rel = member.split("/resource/", 1)[1]
                yield Candidate(
                    _safe_name(f"{activity}__{rel.replace('/', '__')}"),
                    f"{path.relative_to(root).as_posix()}!{member.lstrip('/')}",
                    payload,
                )
        except FormatError as exc:
            logger.warning("%s: %s", path.name, exc)


UFOAI_FOLDERS = (  # photographic material; sci-fi panels, posters, lights and UFOs left out
    "tex_buildings", "tex_buildings_snow", "tex_ctp1", "tex_dirt", "tex_material", "tex_mattn",
    "tex_nature", "tex_streets", "tex_terrain", "tex_trak",
)
UFOAI_MAP_SUFFIXES = (  # normal, height, specular, gloss, glow and other non-colour maps
    "_nm", "_sm", "_gm", "_g", "_h", "_s", "_gloss", "_glow", "_spec", "_bump", "_height",
    "_normal", "_pls", "_mq", "_ow", "_alpha", "_mask",
)


def is_texture_map(member: str) -> bool:
    """True for normal/height/specular/gloss maps (by their file-name suffix)."""
    stem = member.rsplit("/", 1)[-1].rsplit(".", 1)[0].lower()
    return stem.endswith(UFOAI_MAP_SUFFIXES)


def _ufoai(root: Path) -> Iterator[Candidate]:
    """Colour textures from the zip ``0textures.pk3``."""
    path = root / "usr/share/games/ufoai/base/0textures.pk3"
    if not path.is_file():
        logger.warning("%s not found in the package", path.relative_to(root))
        return
    with zipfile.ZipFile(path) as archive:
        for member in sorted(archive.namelist()):
            parts = member.split("/")
            if (
                len(parts) != 3 or parts[0] != "textures" or parts[1] not in UFOAI_FOLDERS
                or not member.lower().endswith((".jpg", ".jpeg", ".png")) or is_texture_map(member)
            ):
                continue
            yield Candidate(
                _safe_name(f"{parts[1]}__{parts[2]}"),
                f"{path.relative_to(root).as_posix()}!{member}",
                archive.read(member),
            )


OPENCV_PHOTOS = (  # examples/data photos; charts, text, chessboards, renders and near-twins left out
    "aero1.jpg", "aero3.jpg", "aloeL.jpg", "apple.jpg", "baboon.jpg", "basketball1.png", "board.jpg",
    "box_in_scene.png", "building.jpg", "butterfly.jpg", "ela_original.jpg",
    "fruits.jpg", "graf1.png", "home.jpg", "left.jpg", "leuvenA.jpg", "leuvenB.jpg", "messi5.jpg",
    "orange.jpg", "rubberwhale1.png", "smarties.png", "squirrel_cls.jpg", "stuff.jpg",
)

SOURCES: tuple[Source, ...] = (
    Source("opencv-doc", "val", "photo",
           lambda r: _named_files(r, "usr/share/doc/opencv-doc/examples/data", OPENCV_PHOTOS)),
    Source("palapeli-data", "val", "photo", lambda r: _files(r, "usr/share/palapeli/collection/*.jpg")),
    Source("mate-backgrounds", "train", "photo", lambda r: _files(r, "usr/share/backgrounds/mate/nature/*.jpg")),
    Source("plasma-workspace-wallpapers", "train", "photo", _plasma),
    Source("lomiri-wallpapers-16.04", "train", "photo",
           lambda r: _files_except(r, "usr/share/backgrounds/*.jpg", LOMIRI_NOT_PHOTOS)),
    Source("lomiri-wallpapers-20.04", "train", "photo",
           lambda r: _files_except(r, "usr/share/backgrounds/*.jpg", LOMIRI_NOT_PHOTOS)),
    Source("sddm-theme-maldives", "train", "photo",
           lambda r: _files(r, "usr/share/sddm/themes/maldives/background.jpg")),
    Source("enlightenment-data", "train", "photo", _enlightenment),
    Source("gcompris-qt-data", "train", "photo", _gcompris),
    Source("ufoai-textures", "train", "texture", _ufoai, max_flat=0.035),
)


def check_sources(sources: Sequence[Source]) -> None:
    """Refuse a source list in which a package feeds more than one split (or appears twice)."""
    seen: dict[str, str] = {}
    for source in sources:
        if source.split not in ("train", "val"):
            raise ValueError(f"{source.package}: split must be 'train' or 'val', got {source.split!r}")
        if source.package in seen:
            raise ValueError(
                f"package {source.package} is listed twice (splits {seen[source.package]} and {source.split})"
            )
        seen[source.package] = source.split


# --------------------------------------------------------------------------------------------
# apt-get / dpkg-deb
# --------------------------------------------------------------------------------------------


def require_tools(tools: Sequence[str]) -> None:
    """Raise ToolMissingError naming every tool of ``tools`` that is not on PATH."""
    missing = [tool for tool in tools if shutil.which(tool) is None]
    if missing:
        raise ToolMissingError(
            f"{' and '.join(missing)} not found on PATH: `deepfill data build` needs a Debian or "
            "Ubuntu system (packages apt and dpkg); no root is needed"
        )


def cached_deb(debs: Path, package: str) -> Path | None:
    """The newest cached ``package_*.deb`` in ``debs``, if any."""
    found = sorted(debs.glob(f"{package}_*.deb"), key=lambda p: p.stat().st_mtime)
    return found[-1] if found else None


def _deb_field(deb: Path, field: str) -> str:
    result = subprocess.run(["dpkg-deb", "-f", str(deb), field], capture_output=True, text=True)
    if result.returncode != 0:
        raise DataBuildError(f"{deb.name} is not a readable .deb: {result.stderr.strip()}")
    return result.stdout.strip()


def download_deb(package: str, debs: Path) -> Path:
    """``apt-get download package`` into ``debs`` (reusing a valid cached file)."""
    deb = cached_deb(debs, package)
    if deb is not None:
        try:
            _deb_field(deb, "Version")
            return deb
        except DataBuildError:
            logger.warning("cached %s is corrupt; downloading it again", deb.name)
            deb.unlink()
    debs.mkdir(parents=True, exist_ok=True)
    result = subprocess.run(["apt-get", "download", package], cwd=debs, capture_output=True, text=True)
    deb = cached_deb(debs, package)
    if result.returncode != 0 or deb is None:
        lines = [ln for ln in (result.stderr or result.stdout).splitlines() if ln.startswith("E:")]
        reason = lines[0][2:].strip() if lines else f"apt-get exited with status {result.returncode}"
        raise PackageDownloadError(f"{package}: {reason}")
    return deb


def extract_deb(deb: Path, dest: Path) -> None:
    """``dpkg-deb -x deb dest`` (unpacks the files, runs no maintainer scripts)."""
    result = subprocess.run(["dpkg-deb", "-x", str(deb), str(dest)], capture_output=True, text=True)
    if result.returncode != 0:
        raise DataBuildError(f"dpkg-deb could not unpack {deb.name}: {result.stderr.strip()}")


# --------------------------------------------------------------------------------------------
# Manifest
# --------------------------------------------------------------------------------------------


def read_manifest(path: str | Path) -> list[dict[str, str]]:
    """Rows of a ``manifest.csv`` (empty list when it does not exist)."""
    path = Path(path)
    if not path.is_file():
        return []
    with path.open(newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def write_manifest(root: Path, rows: list[dict[str, str]]) -> None:
    """Write ``manifest.csv`` and one file list per split (paths relative to ``root``)."""
    for row in rows:
        if row["split"] == "train" and row["file"].split("/", 1)[0] != "train":
            raise DataBuildError(f"manifest row outside train/: {row['file']}")
    rows = sorted(rows, key=lambda r: (r["split"], r["file"]))
    tmp = root / "manifest.csv.tmp"
    with tmp.open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=MANIFEST_FIELDS, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    tmp.replace(root / "manifest.csv")
    for split in ("train", "val"):
        files = [r["file"] for r in rows if r["split"] == split]
        (root / f"{split}.flist").write_text("".join(f"{f}\n" for f in files), encoding="utf-8")


# --------------------------------------------------------------------------------------------
# Build
# --------------------------------------------------------------------------------------------


@dataclasses.dataclass
class BuildReport:
    """What a build wrote: manifest rows, packages built now or skipped, failures."""

    rows: list[dict[str, str]]
    built: list[str]
    skipped: list[str]
    failed: dict[str, str]

    def counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for row in self.rows:
            key = f"{row['split']}/{row['kind']}"
            counts[key] = counts.get(key, 0) + 1
        return counts


def _progress(iterable, progress: bool, **kwargs):
    if not progress:
        return iterable
    from tqdm import tqdm

    return tqdm(iterable, **kwargs)


def _process_package(
    source: Source,
    root: Path,
    pkg_root: Path,
    version: str,
    filters: FilterConfig,
    seen_hashes: dict[str, str],
    val_hashes: set[str],
    progress: bool,
) -> list[dict[str, str]]:
    copyright_file = pkg_root / "usr/share/doc" / source.package / "copyright"
    copyright_text = copyright_file.read_text("utf-8", "replace") if copyright_file.is_file() else ""
    kind_dir = "textures" if source.kind == "texture" else "photos"
    out_dir = root / source.split / kind_dir / source.package
    if out_dir.exists():
        shutil.rmtree(out_dir)  # a partial earlier run
    out_dir.mkdir(parents=True)
    rows = []
    rejected = 0
    for cand in _progress(source.extract(pkg_root), progress, desc=source.package, unit="img", leave=False):
        digest = hashlib.sha1(cand.data).hexdigest()
        if digest in val_hashes and source.split == "train":
            logger.info("%s: %s is also a validation image; left out of train", source.package, cand.name)
            continue
        if digest in seen_hashes and seen_hashes[digest].split("/", 1)[0] == source.split:
            logger.debug("%s: %s duplicates %s", source.package, cand.name, seen_hashes[digest])
            continue
        try:
            stats = image_stats(cand.data)
        except (OSError, ValueError, Image.DecompressionBombError) as exc:
            logger.warning("%s: cannot decode %s (%s)", source.package, cand.source_path, exc)
            continue
        reason = rejection_reason(stats, filters, source.max_flat)
        if reason:
            logger.debug("%s: skip %s: %s", source.package, cand.name, reason)
            rejected += 1
            continue
        name = _safe_name(cand.name)
        target = out_dir / name
        stem, suffix, k = target.stem, target.suffix, 1
        while target.exists():
            target = out_dir / f"{stem}_{k}{suffix}"
            k += 1
        target.write_bytes(cand.data)
        seen_hashes[digest] = target.relative_to(root).as_posix()
        license_paths = [cand.source_path, *cand.source_path.split("!")[1:]]
        rows.append({
            "split": source.split,
            "file": target.relative_to(root).as_posix(),
            "package": source.package,
            "package_version": version,
            "source_path": cand.source_path,
            "width": str(stats.width),
            "height": str(stats.height),
            "license": license_summary(copyright_text, license_paths) if copyright_text else "unknown",
            "kind": source.kind,
            "sha1": digest,
        })
    logger.info("%s %s: kept %d images, filtered out %d", source.package, version, len(rows), rejected)
    return rows


def build_dataset(
    out: str | Path,
    sources: Sequence[Source] = SOURCES,
    packages: Sequence[str] | None = None,
    filters: FilterConfig = FilterConfig(),
    progress: bool = True,
) -> BuildReport:
    """Download, unpack and filter the source packages into ``out`` (see the module doc).

    Idempotent: a package whose rows in ``manifest.csv`` all still exist (and whose build
    finished) is skipped, and .debs are cached in ``out/.debs``. Raises ToolMissingError when
    a needed tool is absent, and PackageDownloadError after building everything else when
    some packages could not be downloaded.
    """
    check_sources(sources)
    if packages is not None:
        unknown = sorted(set(packages) - {s.package for s in sources})
        if unknown:
            raise DataBuildError(f"unknown package(s): {', '.join(unknown)}")
        sources = [s for s in sources if s.package in set(packages)]
    root = Path(out)
    debs, state = root / ".debs", root / ".state"
    root.mkdir(parents=True, exist_ok=True)
    state.mkdir(exist_ok=True)
    previous = read_manifest(root / "manifest.csv")
    by_package: dict[str, list[dict[str, str]]] = {}
    for row in previous:
        by_package.setdefault(row["package"], []).append(row)
    known = {s.package: s for s in sources}

    def is_done(source: Source) -> bool:
        rows = by_package.get(source.package, [])
        return (state / f"{source.package}.done").is_file() and all(
            (root / r["file"]).is_file() and r["split"] == source.split for r in rows
        )

    todo = [s for s in sources if not is_done(s)]
    tools = ["dpkg-deb"] if todo else []
    if any(cached_deb(debs, s.package) is None for s in todo):
        tools.insert(0, "apt-get")
    require_tools(tools)

    # rows of packages not rebuilt now are kept as they are
    rows = [r for r in previous if r["package"] not in known or known[r["package"]] not in todo]
    val_hashes = {r["sha1"] for r in rows if r["split"] == "val"}
    seen_hashes = {r["sha1"]: r["file"] for r in rows}
    report = BuildReport(rows, [], [s.package for s in sources if s not in todo], {})
    for name in report.skipped:
        logger.info("%s: already built, skipped", name)
    # validation packages first, so their content is known before train is written
    todo.sort(key=lambda s: s.split != "val")
    work = root / ".work"
    for source in _progress(todo, progress, desc="packages", unit="pkg"):
        (state / f"{source.package}.done").unlink(missing_ok=True)
        try:
            deb = download_deb(source.package, debs)
        except PackageDownloadError as exc:
            logger.warning("could not download %s", exc)
            report.failed[source.package] = str(exc)
            continue
        version = _deb_field(deb, "Version")
        work.mkdir(exist_ok=True)
        with tempfile.TemporaryDirectory(dir=work, prefix=f"{source.package}-") as tmp:
            extract_deb(deb, Path(tmp))
            new_rows = _process_package(
                source, root, Path(tmp), version, filters, seen_hashes, val_hashes, progress
            )
        if source.split == "val":
            val_hashes.update(r["sha1"] for r in new_rows)
        rows.extend(new_rows)
        write_manifest(root, rows)
        (state / f"{source.package}.done").write_text(f"{version}\n", encoding="utf-8")
        report.built.append(source.package)
    shutil.rmtree(work, ignore_errors=True)
    # a validation package rebuilt after train may bring content train already has: drop it
    val_hashes = {r["sha1"] for r in rows if r["split"] == "val"}
    for row in [r for r in rows if r["split"] == "train" and r["sha1"] in val_hashes]:
        logger.warning("%s is also a validation image; removed from train", row["file"])
        (root / row["file"]).unlink(missing_ok=True)
        rows.remove(row)
    report.rows = rows
    write_manifest(root, rows)
    if report.failed:
        error = PackageDownloadError(
            f"could not download {', '.join(sorted(report.failed))} "
            f"({'; '.join(report.failed[p] for p in sorted(report.failed))}); the other packages "
            "were built; run `apt-get update` (as root) and build again"
        )
        error.report = report
        raise error
    return report


# --------------------------------------------------------------------------------------------
# Compact copy
# --------------------------------------------------------------------------------------------


def _to_rgb(im: Image.Image) -> Image.Image:
    """RGB copy; transparent pixels are composited on white."""
    if im.mode in ("RGBA", "LA", "PA") or "transparency" in im.info:
        rgba = im.convert("RGBA")
        flat = Image.new("RGB", rgba.size, (255, 255, 255))
        flat.paste(rgba, mask=rgba.getchannel("A"))
        return flat
    return im.convert("RGB")


def compact_image(path: str | Path, short_side: int, quality: int = 90) -> tuple[bytes, int, int]:
    """Re-encode an image as an RGB JPEG whose short side is at most ``short_side``.

    Returns (JPEG bytes, width, height). EXIF orientation is applied.
    """
    with Image.open(path) as im:
        w, h = im.size
        if min(w, h) > short_side:  # JPEG: decode at a reduced scale, still >= the target
            s = short_side / min(w, h)
            im.draft("RGB", (round(w * s), round(h * s)))
        im = _to_rgb(ImageOps.exif_transpose(im))
    if min(im.size) > short_side:
        s = short_side / min(im.size)
        im = im.resize((max(1, round(im.width * s)), max(1, round(im.height * s))), Image.Resampling.LANCZOS)
    buf = io.BytesIO()
    im.save(buf, "JPEG", quality=quality, optimize=True)
    return buf.getvalue(), im.width, im.height


def compact_dataset(
    src: str | Path,
    out: str | Path,
    short_side: int = 512,
    quality: int = 90,
    texture_short_side: int | None = 256,
    progress: bool = True,
) -> list[dict[str, str]]:
    """Write a copy of a built set with short side ``short_side`` px, JPEG ``quality``.

    Textures (manifest kind "texture") get ``texture_short_side`` instead (None: the same as
    photos); at 256 the whole set is ~27 MB instead of ~53 MB. Keeps the folder layout and
    writes its own manifest and file lists. Idempotent: images already written are kept.
    """
    src, out = Path(src), Path(out)
    if src.resolve() == out.resolve():
        raise DataBuildError("compact: --out must differ from --src")
    rows = read_manifest(src / "manifest.csv")
    if not rows:
        raise DataBuildError(f"no manifest.csv in {src}: build the set first (deepfill data build)")
    out.mkdir(parents=True, exist_ok=True)
    taken: set[str] = set()
    new_rows = []
    for row in _progress(rows, progress, desc="compact", unit="img"):
        rel = Path(row["file"])
        target_rel = rel.with_suffix(".jpg").as_posix()
        if target_rel in taken:  # e.g. x.png and x.jpg in one folder
            target_rel = rel.with_name(f"{rel.stem}_{rel.suffix.lstrip('.')}.jpg").as_posix()
        taken.add(target_rel)
        target = out / target_rel
        if target.is_file():
            with Image.open(target) as im:
                width, height = im.size
            data = target.read_bytes()
        else:
            side = texture_short_side if row.get("kind") == "texture" and texture_short_side else short_side
            data, width, height = compact_image(src / rel, side, quality)
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp = target.with_suffix(".tmp")
            tmp.write_bytes(data)
            tmp.replace(target)
        new_rows.append({
            **row, "file": target_rel, "width": str(width), "height": str(height),
            "sha1": hashlib.sha1(data).hexdigest(),
        })
    write_manifest(out, new_rows)
    return new_rows


def folder_size(root: str | Path, pattern: str = "*") -> int:
    """Total bytes of the files under ``root`` matching ``pattern`` (hidden folders excluded)."""
    root = Path(root)
    total = 0
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        total += sum(os.path.getsize(os.path.join(dirpath, f)) for f in filenames if fnmatch.fnmatch(f, pattern))
    return total
