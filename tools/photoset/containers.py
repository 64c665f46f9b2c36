"""Readers for the containers some packages keep their photos in, written from the format
descriptions: JPEG streams inside other data, Enlightenment Eet files (``.edj``; LZ4 blocks
decoded by ``lz4.block``) and Qt binary resource bundles (``.rcc``). Zip (``.pk3``) is read
by ``zipfile``.
"""

from __future__ import annotations

import dataclasses
import logging
import struct
import zlib
from collections.abc import Iterator

import lz4.block

from tools.photoset import FormatError

logger = logging.getLogger(__name__)


# --- JPEG streams ---------------------------------------------------------------------------

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


# --- Eet (Enlightenment) files -------------------------------------------------------------

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
        try:
            out = lz4.block.decompress(raw, uncompressed_size=entry.data_size)
        except lz4.block.LZ4BlockError as exc:
            raise FormatError(f"Eet entry {entry.name!r}: {exc}") from exc
    else:
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


# --- Qt binary resources (.rcc) ----------------------------------------------------------

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
