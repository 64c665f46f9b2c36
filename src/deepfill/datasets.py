"""Photo folders on disk: image lists, file lists, manifests and compact copies.

A *built set* (the Debian-package photo set of docs/design.md §3, written by the source
checkout's ``tools/photoset``) holds ``manifest.csv``, one row per image (``MANIFEST_FIELDS``),
and one file list per split, ``train.flist`` and ``val.flist``, with paths relative to its
folder. Everything here works on a plain folder of images too (Places2, CelebA-HQ, your own
photos). Nothing here imports torch: ``deepfill.data`` turns the files into training samples.
"""

from __future__ import annotations

import csv
import fnmatch
import hashlib
import io
import logging
import os
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from deepfill.errors import InputError

logger = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff", ".ppm", ".pgm")
MANIFEST = "manifest.csv"
MANIFEST_FIELDS = (
    "split", "file", "package", "package_version", "source_path", "width", "height", "license",
    "kind", "sha1",
)


# --- listing -----------------------------------------------------------------------------

def _manifest_files(root: Path, split: str) -> list[Path] | None:
    """Files of ``split`` listed in the ``manifest.csv`` of a built set, if ``root`` has one."""
    manifest = root / MANIFEST
    if not manifest.is_file():
        return None
    with manifest.open(newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        if not reader.fieldnames or not {"split", "file"} <= set(reader.fieldnames):
            return None
        return [root / row["file"] for row in reader if row["split"] == split]


def _folder_images(root: Path) -> list[Path]:
    """Every image under ``root``, recursively, sorted by relative path; hidden entries skipped."""
    return sorted(
        (p for p in root.rglob("*")
         if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()
         and not any(part.startswith(".") for part in p.relative_to(root).parts)),
        key=lambda p: p.relative_to(root).as_posix(),
    )


def list_images(source: str | Path, split: str = "train") -> list[Path]:
    """Image paths from a folder (recursive, sorted) or a file list (one path per line).

    In a file list, blank lines and ``#`` comments are ignored and relative paths are
    resolved against the list's folder. Hidden files and folders are skipped. A built set
    (it has ``manifest.csv``) yields its ``split`` ("train" or "val") only, so the validation
    photos never leak into training.
    """
    path = Path(source)
    if path.is_dir():
        from_manifest = _manifest_files(path, split)
        if from_manifest is not None:
            logger.info("%s: using the %d %s images of its manifest.csv", path, len(from_manifest), split)
            files = from_manifest
        else:
            files = _folder_images(path)
    elif path.is_file():
        if path.suffix.lower() in IMAGE_SUFFIXES:
            return [path]
        files = []
        for line in path.read_text(encoding="utf-8").splitlines():
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            entry = Path(line).expanduser()
            files.append(entry if entry.is_absolute() else path.parent / entry)
    else:
        raise InputError(f"data source not found: {path} (give a folder of images or a file list)")
    if not files:
        raise InputError(f"no images ({', '.join(IMAGE_SUFFIXES)}) in {path}")
    return files


# --- manifests and file lists -------------------------------------------------------------

def read_manifest(path: str | Path) -> list[dict[str, str]]:
    """Rows of a ``manifest.csv`` (empty list when it does not exist)."""
    path = Path(path)
    if not path.is_file():
        return []
    with path.open(newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def write_flist(path: str | Path, files: Iterable[str]) -> None:
    """A file list: one path per line."""
    Path(path).write_text("".join(f"{f}\n" for f in files), encoding="utf-8")


def write_manifest(root: str | Path, rows: Sequence[dict[str, str]]) -> None:
    """Write ``manifest.csv`` (rows sorted by split and file) and ``train.flist``/``val.flist``.

    File paths are relative to ``root``; a train row outside ``train/`` is a ValueError.
    """
    root = Path(root)
    for row in rows:
        if row["split"] == "train" and row["file"].split("/", 1)[0] != "train":
            raise ValueError(f"manifest row outside train/: {row['file']}")
    rows = sorted(rows, key=lambda r: (r["split"], r["file"]))
    tmp = root / f"{MANIFEST}.tmp"
    with tmp.open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=MANIFEST_FIELDS, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    tmp.replace(root / MANIFEST)
    for split in ("train", "val"):
        write_flist(root / f"{split}.flist", (r["file"] for r in rows if r["split"] == split))


def make_flist(
    source: str | Path,
    out: str | Path,
    split: str = "train",
    kind: str | None = None,
    val_count: int = 0,
    val_out: str | Path | None = None,
    seed: int = 0,
) -> tuple[list[Path], list[Path]]:
    """Write a file list of the images of a folder; returns (listed, held out).

    A built set gives its ``split``, only the images of ``kind`` ("photo", "texture") if
    given; a plain folder gives every image under it. ``val_count`` images, drawn with
    ``seed``, go to ``val_out`` (default: ``val.flist`` beside ``out``) instead, for folders
    without a validation split of their own (CelebA-HQ). Paths are written relative to the
    list's folder, so the list and the photos move together.
    """
    source, out = Path(source), Path(out)
    if not source.is_dir():
        raise InputError(f"not a folder: {source}")
    rows = read_manifest(source / MANIFEST)
    if rows:
        files = [source / r["file"] for r in rows if r["split"] == split and kind in (None, r.get("kind"))]
        what = f"{split} {kind or 'image'}s of {source / MANIFEST}"
    elif kind is not None:
        raise InputError(f"--kind needs a built set, and {source} has no {MANIFEST}")
    else:
        files = _folder_images(source)
        what = f"images ({', '.join(IMAGE_SUFFIXES)}) in {source}"
    if not files:
        raise InputError(f"no {what}")
    held_out: list[Path] = []
    if val_count:
        val_out = Path(val_out) if val_out is not None else out.with_name("val.flist")
        if val_out.resolve() == out.resolve():
            raise InputError(f"the held-out list would overwrite {out}: give another --val-out")
        if not 0 < val_count < len(files):
            raise InputError(f"cannot hold out {val_count} of {len(files)} images")
        chosen = set(np.random.default_rng(seed).choice(len(files), val_count, replace=False).tolist())
        held_out = [f for i, f in enumerate(files) if i in chosen]
        files = [f for i, f in enumerate(files) if i not in chosen]
    for path, listed in ((out, files), (val_out, held_out)):
        if listed:
            path.parent.mkdir(parents=True, exist_ok=True)
            write_flist(path, (Path(os.path.relpath(f.absolute(), path.parent.absolute())).as_posix()
                               for f in listed))
    return files, held_out


# --- compact copies -----------------------------------------------------------------------

def _progress(iterable, progress: bool, **kwargs):
    if not progress:
        return iterable
    from tqdm import tqdm

    return tqdm(iterable, **kwargs)


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
    """Write a copy of a photo folder with short side ``short_side`` px, JPEG ``quality``.

    Keeps the folder layout (every image becomes ``.jpg``). A built set's copy gets its own
    manifest and file lists, and its textures (kind "texture") ``texture_short_side`` instead
    (None: as photos): the photo set's copy is ~32 MB. Idempotent: images already written are kept.
    Returns the copy's rows (``file``, ``width``, ``height``, ``sha1``, and the source's fields).
    """
    src, out = Path(src), Path(out)
    if src.resolve() == out.resolve() or src.resolve() in out.resolve().parents:
        raise InputError(f"compact: --out must be outside --src ({src})")
    rows = read_manifest(src / MANIFEST)
    built = bool(rows)
    if not built:
        rows = [{"file": p.relative_to(src).as_posix(), "kind": "photo"} for p in list_images(src)]
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
    if built:
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


def summary(root: str | Path, rows: Sequence[dict[str, str]]) -> str:
    """Images and megabytes per split and kind of a built set (a plain folder: the total), as text."""
    root = Path(root)
    lines = []
    if any("split" in r for r in rows):
        for split, kind in (("train", "photo"), ("train", "texture"), ("val", "photo")):
            n = sum(1 for r in rows if r["split"] == split and r["kind"] == kind)
            folder = root / split / f"{kind}s"
            size = folder_size(folder) if folder.is_dir() else 0
            lines.append(f"  {split:5s} {kind + 's':8s} {n:5d} images  {size / 1e6:8.1f} MB")
    lines.append(f"  total          {len(rows):5d} images  {folder_size(root) / 1e6:8.1f} MB  ({root})")
    return "\n".join(lines)
