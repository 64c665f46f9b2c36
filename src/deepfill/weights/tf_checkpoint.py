"""Read TensorFlow "V2" checkpoints (``PREFIX.index`` + ``PREFIX.data-*``) without TensorFlow.

Mirrors ``tensorflow/core/util/tensor_bundle``. The ``.index`` file is a LevelDB-format table
(``tensorflow/core/lib/io/table``): prefix-compressed key/value blocks with restart points, an
index block of block handles, and a 48-byte footer ending in a magic number. The value of the
empty key is a ``BundleHeaderProto``; every other key is a tensor name whose value is a
``BundleEntryProto`` locating raw little-endian bytes in a ``.data-NNNNN-of-MMMMM`` shard.
Protobuf messages are decoded from the wire format directly; no protobuf dependency.
"""

from __future__ import annotations

import dataclasses
import re
from functools import reduce
from operator import mul
from pathlib import Path
from typing import Iterator

import numpy as np

from deepfill.errors import WeightsError

TABLE_MAGIC = 0xDB4775248B80FB57
FOOTER_SIZE = 48
BLOCK_TRAILER_SIZE = 5  # compression type (1 byte) + masked crc32c (4 bytes)

# tensorflow/core/framework/types.proto: DataType -> numpy little-endian dtype.
DTYPES: dict[int, tuple[str, str]] = {
    1: ("float32", "<f4"),
    2: ("float64", "<f8"),
    3: ("int32", "<i4"),
    4: ("uint8", "u1"),
    5: ("int16", "<i2"),
    6: ("int8", "i1"),
    9: ("int64", "<i8"),
    10: ("bool", "?"),
    14: ("bfloat16", "<u2"),  # widened to float32 on read
    17: ("uint16", "<u2"),
    19: ("float16", "<f2"),
    22: ("uint32", "<u4"),
    23: ("uint64", "<u8"),
}
_NUMPY_CODES = dict(DTYPES.values())
FLOAT_DTYPES = {"float32", "float64", "float16", "bfloat16"}


# --- crc32c (Castagnoli), as LevelDB and TensorFlow use it -----------------------------------

def _crc32c_table() -> list[int]:
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0x82F63B78 if crc & 1 else crc >> 1
        table.append(crc)
    return table


_CRC_TABLE = _crc32c_table()


def crc32c(data: bytes | memoryview) -> int:
    """CRC-32C of ``data`` (pure Python, ~10 MB/s)."""
    crc = 0xFFFFFFFF
    table = _CRC_TABLE
    for byte in bytes(data):
        crc = table[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def mask_crc(crc: int) -> int:
    """LevelDB's ``crc32c::Mask``: rotate right by 15 and add a constant."""
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


# --- protobuf wire format -------------------------------------------------------------------

def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        byte = buf[pos]  # IndexError on truncation; callers turn it into WeightsError
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise ValueError("varint longer than 10 bytes")


def proto_fields(buf: bytes) -> Iterator[tuple[int, int, int | bytes]]:
    """Yield (field number, wire type, value) of a protobuf message; value is int or bytes."""
    pos = 0
    while pos < len(buf):
        tag, pos = _varint(buf, pos)
        number, wire = tag >> 3, tag & 7
        if wire == 0:
            value, pos = _varint(buf, pos)
        elif wire == 1:
            value, pos = int.from_bytes(buf[pos:pos + 8], "little"), pos + 8
        elif wire == 2:
            length, pos = _varint(buf, pos)
            value, pos = bytes(buf[pos:pos + length]), pos + length
        elif wire == 5:
            value, pos = int.from_bytes(buf[pos:pos + 4], "little"), pos + 4
        else:
            raise ValueError(f"unsupported protobuf wire type {wire}")
        if pos > len(buf):
            raise ValueError("truncated protobuf message")
        yield number, wire, value


def _int64(value: int) -> int:
    """A varint-encoded int64 (negative numbers arrive as 64-bit two's complement)."""
    return value - (1 << 64) if value >= 1 << 63 else value


@dataclasses.dataclass(frozen=True)
class TensorEntry:
    """One ``BundleEntryProto``: where a tensor's bytes live and what they are."""

    name: str
    dtype: str
    shape: tuple[int, ...]
    shard_id: int
    offset: int
    size: int
    crc32c: int | None
    sliced: bool

    @property
    def is_float(self) -> bool:
        return self.dtype in FLOAT_DTYPES


def _parse_shape(buf: bytes) -> tuple[int, ...]:
    """``TensorShapeProto``: repeated Dim dim = 2 (Dim: int64 size = 1); unknown_rank = 3."""
    dims = []
    for number, _, value in proto_fields(buf):
        if number == 2:
            size = 0
            for dnum, _, dval in proto_fields(value):
                if dnum == 1:
                    size = _int64(dval)
            dims.append(size)
        elif number == 3 and value:
            raise ValueError("tensor of unknown rank")
    return tuple(dims)


def _parse_entry(name: str, buf: bytes) -> TensorEntry:
    """``BundleEntryProto``: dtype 1, shape 2, shard_id 3, offset 4, size 5, crc32c 6, slices 7."""
    dtype_code, shape, shard, offset, size, crc, sliced = 0, (), 0, 0, 0, None, False
    for number, _, value in proto_fields(buf):
        if number == 1:
            dtype_code = value
        elif number == 2:
            shape = _parse_shape(value)
        elif number == 3:
            shard = value
        elif number == 4:
            offset = _int64(value)
        elif number == 5:
            size = _int64(value)
        elif number == 6:
            crc = value
        elif number == 7:
            sliced = True
    dtype = DTYPES.get(dtype_code, (f"dtype{dtype_code}", ""))[0]
    return TensorEntry(name, dtype, shape, shard, offset, size, crc, sliced)


# --- LevelDB table --------------------------------------------------------------------------

def _block_handle(buf: bytes, pos: int = 0) -> tuple[int, int, int]:
    offset, pos = _varint(buf, pos)
    size, pos = _varint(buf, pos)
    return offset, size, pos


def _read_block(table: bytes, offset: int, size: int) -> bytes:
    if offset + size + BLOCK_TRAILER_SIZE > len(table):
        raise ValueError(f"block at {offset} (+{size}) runs past the end of the file")
    block = table[offset:offset + size]
    compression = table[offset + size]
    stored = int.from_bytes(table[offset + size + 1:offset + size + 5], "little")
    if mask_crc(crc32c(table[offset:offset + size + 1])) != stored:
        raise ValueError(f"checksum mismatch in the block at byte {offset}")
    if compression != 0:
        raise ValueError(f"block at byte {offset} is compressed (type {compression}); only uncompressed is supported")
    return block


def _block_entries(block: bytes) -> Iterator[tuple[bytes, bytes]]:
    """Entries of one block: shared/non-shared key lengths, value length, key suffix, value."""
    if len(block) < 4:
        raise ValueError("block shorter than its restart count")
    num_restarts = int.from_bytes(block[-4:], "little")
    end = len(block) - 4 - 4 * num_restarts
    if end < 0:
        raise ValueError("bad restart count in block")
    pos, key = 0, b""
    while pos < end:
        shared, pos = _varint(block, pos)
        non_shared, pos = _varint(block, pos)
        value_len, pos = _varint(block, pos)
        if shared > len(key) or pos + non_shared + value_len > end:
            raise ValueError("corrupt block entry")
        key = key[:shared] + block[pos:pos + non_shared]
        pos += non_shared
        yield key, block[pos:pos + value_len]
        pos += value_len


def read_table(table: bytes) -> list[tuple[bytes, bytes]]:
    """All (key, value) pairs of a LevelDB-format table held in memory, in key order."""
    if len(table) < FOOTER_SIZE:
        raise ValueError("file is shorter than a table footer")
    footer = table[-FOOTER_SIZE:]
    if int.from_bytes(footer[-8:], "little") != TABLE_MAGIC:
        raise ValueError("bad magic number (not a LevelDB/TensorFlow table)")
    _, _, pos = _block_handle(footer)  # metaindex block: unused by tensor bundles
    index_offset, index_size, _ = _block_handle(footer, pos)
    entries = []
    for _, handle in _block_entries(_read_block(table, index_offset, index_size)):
        offset, size, _ = _block_handle(handle)
        entries.extend(_block_entries(_read_block(table, offset, size)))
    return entries


# --- checkpoint -----------------------------------------------------------------------------

def resolve_prefix(path: str | Path) -> Path:
    """The checkpoint prefix for a prefix, one of its files, or a folder of ``snap-*`` files.

    A folder uses its ``checkpoint`` state file when it names an existing checkpoint, else
    the ``snap-N`` (or any prefix) with the highest N.
    """
    path = Path(path)
    if path.is_dir():
        return _latest_in_folder(path)
    match = re.fullmatch(r"(.+)\.(index|meta|data-\d{5}-of-\d{5})", path.name)
    if match and path.is_file():
        path = path.with_name(match.group(1))
    if not path.with_name(path.name + ".index").is_file():
        if path.is_file():
            raise WeightsError(f"{path} is not a TensorFlow checkpoint (expected PREFIX.index and PREFIX.data-* files)")
        raise WeightsError(f"TensorFlow checkpoint not found: {path}.index does not exist")
    return path


def _latest_in_folder(folder: Path) -> Path:
    state = folder / "checkpoint"
    if state.is_file():
        match = re.search(r'^model_checkpoint_path:\s*"(.*)"', state.read_text(errors="replace"), re.M)
        if match:
            # Text-proto string: C escapes (non-ASCII bytes as octal) around UTF-8.
            text = match.group(1).encode().decode("unicode_escape").encode("latin-1").decode("utf-8", "replace")
            named = Path(text)
            # Absolute paths from the training machine rarely exist here: fall back to the name.
            for candidate in (named if named.is_absolute() else folder / named, folder / named.name):
                if candidate.with_name(candidate.name + ".index").is_file():
                    return candidate
    prefixes = [p.with_suffix("") for p in folder.glob("*.index")]
    if not prefixes:
        raise WeightsError(f"no TensorFlow checkpoint (*.index) in folder {folder}")

    def step(prefix: Path) -> tuple[int, str]:
        number = re.search(r"-(\d+)$", prefix.name)
        return (int(number.group(1)) if number else -1, prefix.name)

    return max(prefixes, key=step)


class TFCheckpoint:
    """The tensors of a TF V2 checkpoint: ``entries`` (name -> ``TensorEntry``) and ``read``."""

    def __init__(self, path: str | Path, verify_checksums: bool = True) -> None:
        self.prefix = resolve_prefix(path)
        self.verify_checksums = verify_checksums
        index = self.prefix.with_name(self.prefix.name + ".index")
        try:
            table = index.read_bytes()
        except OSError as exc:
            raise WeightsError(f"cannot read {index}: {exc}") from exc
        try:
            records = read_table(table)
            if not records or records[0][0] != b"":
                raise ValueError("no bundle header")
            header = {number: value for number, _, value in proto_fields(records[0][1])}
            names = [(k.decode("utf-8", "replace"), v) for k, v in records[1:]]
            entries = {name: _parse_entry(name, v) for name, v in names}
        except (ValueError, IndexError) as exc:
            raise WeightsError(f"{index} is not a TensorFlow checkpoint index: {exc}") from exc
        # BundleHeaderProto: num_shards 1, endianness 2 (0 little, 1 big), version 3.
        self.num_shards = int(header.get(1, 1))
        self.big_endian = header.get(2, 0) == 1
        self.entries = entries
        for shard in sorted({e.shard_id for e in entries.values() if e.size}):
            if not self.data_path(shard).is_file():
                raise WeightsError(f"checkpoint data file missing: {self.data_path(shard)}")

    def __contains__(self, name: str) -> bool:
        return name in self.entries

    def names(self) -> list[str]:
        return sorted(self.entries)

    def shape(self, name: str) -> tuple[int, ...]:
        return self._entry(name).shape

    def _entry(self, name: str) -> TensorEntry:
        try:
            return self.entries[name]
        except KeyError:
            raise WeightsError(f"{self.prefix} has no tensor named {name!r}") from None

    def data_path(self, shard_id: int) -> Path:
        return self.prefix.with_name(f"{self.prefix.name}.data-{shard_id:05d}-of-{self.num_shards:05d}")

    def read(self, name: str) -> np.ndarray:
        """The tensor ``name`` as a numpy array (bfloat16 widened to float32)."""
        entry = self._entry(name)
        if entry.sliced:
            raise WeightsError(f"{name} in {self.prefix} is a partitioned variable; that is not supported")
        if entry.dtype not in _NUMPY_CODES:
            raise WeightsError(f"{name} in {self.prefix} has an unsupported dtype ({entry.dtype})")
        dtype = np.dtype(_NUMPY_CODES[entry.dtype]).newbyteorder(">" if self.big_endian else "<")
        count = reduce(mul, entry.shape, 1)
        if count * dtype.itemsize != entry.size:
            raise WeightsError(f"{name} in {self.prefix}: {entry.size} bytes do not hold {entry.dtype} {entry.shape}")
        data_file = self.data_path(entry.shard_id)
        try:
            with open(data_file, "rb") as fh:
                fh.seek(entry.offset)
                raw = fh.read(entry.size)
        except FileNotFoundError:
            raise WeightsError(f"checkpoint data file missing: {data_file}") from None
        except OSError as exc:
            raise WeightsError(f"cannot read {data_file}: {exc}") from exc
        if len(raw) != entry.size:
            raise WeightsError(f"{data_file} is truncated: {name} needs bytes {entry.offset}..{entry.offset + entry.size}")
        if self.verify_checksums and entry.crc32c is not None and mask_crc(crc32c(raw)) != entry.crc32c:
            raise WeightsError(f"checksum mismatch for {name} in {data_file}: the file is corrupt")
        array = np.frombuffer(raw, dtype=dtype).reshape(entry.shape)
        if entry.dtype == "bfloat16":
            array = (array.astype(np.uint32) << 16).view(np.float32)
        return array.astype(array.dtype.newbyteorder("="))
