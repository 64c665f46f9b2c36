"""The source packages (``packages.toml``) and the extractors that find their images once unpacked.

An extractor is ``f(root, **args) -> Iterator[Candidate]``, where ``root`` is the folder the
package was unpacked into and ``args`` come from the package's ``[source.args]`` table.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import io
import logging
import re
import tomllib
import zipfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Literal

from PIL import Image

from tools.photoset import CatalogueError, FormatError
from tools.photoset.containers import eet_jpegs, read_rcc

logger = logging.getLogger(__name__)

CATALOGUE = Path(__file__).with_name("packages.toml")


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


def safe_name(name: str) -> str:
    """A file name of letters, digits, ``.``, ``_`` and ``-`` only."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("_") or "image"


# --- extractors ---------------------------------------------------------------------------

def files(root: Path, pattern: str, exclude: Iterable[str] = ()) -> Iterator[Candidate]:
    """The files matching a glob ``pattern``, sorted, except those whose stem is in ``exclude``."""
    skip = set(exclude)
    for path in sorted(root.glob(pattern)):
        if path.is_file() and path.stem not in skip:
            yield Candidate(path.name, path.relative_to(root).as_posix(), path.read_bytes())


def named_files(root: Path, folder: str, names: Iterable[str]) -> Iterator[Candidate]:
    """The files ``names`` of ``folder``, in that order (a missing one is logged)."""
    for name in names:
        path = root / folder / name
        if path.is_file():
            yield Candidate(path.name, path.relative_to(root).as_posix(), path.read_bytes())
        else:
            logger.warning("%s not found in the package", path.relative_to(root))


def largest_wallpapers(root: Path, folder: str, names: Iterable[str]) -> Iterator[Candidate]:
    """KDE wallpapers ``folder/NAME/contents/images/WxH.ext``: the largest resolution of each."""

    def pixels(p: Path) -> int:
        m = re.match(r"(\d+)x(\d+)$", p.stem)
        return int(m.group(1)) * int(m.group(2)) if m else 0

    for name in names:
        images = [p for p in (root / folder / name / "contents/images").glob("*") if p.is_file()]
        if not images:
            logger.warning("wallpaper %s not found in the package", name)
            continue
        best = max(images, key=pixels)
        yield Candidate(f"{name}{best.suffix.lower()}", best.relative_to(root).as_posix(), best.read_bytes())


def _jpeg_pixels(jpeg: bytes) -> int:
    try:
        with Image.open(io.BytesIO(jpeg)) as im:
            return im.size[0] * im.size[1]
    except (OSError, ValueError):
        return -1


def eet_backgrounds(root: Path, folder: str, names: Iterable[str]) -> Iterator[Candidate]:
    """Enlightenment backgrounds ``folder/NAME.edj``: each holds one photo at several sizes;
    the largest is taken."""
    for name in names:
        path = root / folder / f"{name}.edj"
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


def rcc_resources(root: Path, folder: str, bundles: Iterable[str]) -> Iterator[Candidate]:
    """The images under ``/resource/`` of Qt bundles ``folder/BUNDLE.rcc`` (GCompris activities),
    named ``BUNDLE__path__in__resource``."""
    for bundle in bundles:
        path = root / folder / f"{bundle}.rcc"
        if not path.is_file():
            logger.warning("%s not found in the package", path.relative_to(root))
            continue
        try:
            for member, payload in read_rcc(path.read_bytes()):
                if "/resource/" not in member or not member.lower().endswith((".webp", ".jpg", ".jpeg", ".png")):
                    continue
                rel = member.split("/resource/", 1)[1]
                yield Candidate(
                    safe_name(f"{bundle}__{rel.replace('/', '__')}"),
                    f"{path.relative_to(root).as_posix()}!{member.lstrip('/')}",
                    payload,
                )
        except FormatError as exc:
            logger.warning("%s: %s", path.name, exc)


def is_texture_map(member: str, map_suffixes: Sequence[str]) -> bool:
    """True for normal/height/specular/gloss maps, known by a file-name suffix of ``map_suffixes``."""
    stem = member.rsplit("/", 1)[-1].rsplit(".", 1)[0].lower()
    return stem.endswith(tuple(map_suffixes))


def pk3_textures(root: Path, archive: str, folders: Iterable[str], map_suffixes: Sequence[str]) -> Iterator[Candidate]:
    """Colour textures ``textures/FOLDER/NAME`` of a zip (``.pk3``), non-colour maps left out."""
    path = root / archive
    if not path.is_file():
        logger.warning("%s not found in the package", path.relative_to(root))
        return
    wanted = set(folders)
    with zipfile.ZipFile(path) as pk3:
        for member in sorted(pk3.namelist()):
            parts = member.split("/")
            if (
                len(parts) != 3 or parts[0] != "textures" or parts[1] not in wanted
                or not member.lower().endswith((".jpg", ".jpeg", ".png")) or is_texture_map(member, map_suffixes)
            ):
                continue
            yield Candidate(
                safe_name(f"{parts[1]}__{parts[2]}"),
                f"{path.relative_to(root).as_posix()}!{member}",
                pk3.read(member),
            )


EXTRACTORS: dict[str, Callable[..., Iterator[Candidate]]] = {
    f.__name__: f for f in (files, named_files, largest_wallpapers, eet_backgrounds, rcc_resources, pk3_textures)
}


# --- the catalogue ------------------------------------------------------------------------

def check_sources(sources: Sequence[Source]) -> None:
    """Refuse a source list in which a package feeds more than one split (or appears twice)."""
    seen: dict[str, str] = {}
    for source in sources:
        if source.split not in ("train", "val"):
            raise CatalogueError(f"{source.package}: split must be 'train' or 'val', got {source.split!r}")
        if source.package in seen:
            raise CatalogueError(
                f"package {source.package} is listed twice (splits {seen[source.package]} and {source.split})"
            )
        seen[source.package] = source.split


def _source(entry: dict, where: str) -> Source:
    keys = {"package", "split", "kind", "extract", "args", "max_flat"}
    unknown = sorted(set(entry) - keys)
    missing = sorted({"package", "split", "kind", "extract"} - set(entry))
    if unknown or missing:
        raise CatalogueError(f"{where}: " + "; ".join(
            ([f"unknown keys {', '.join(unknown)}"] if unknown else [])
            + ([f"missing {', '.join(missing)}"] if missing else [])))
    if entry["kind"] not in ("photo", "texture"):
        raise CatalogueError(f"{where}: kind must be 'photo' or 'texture', got {entry['kind']!r}")
    function = EXTRACTORS.get(entry["extract"])
    if function is None:
        raise CatalogueError(f"{where}: unknown extract {entry['extract']!r} (known: {', '.join(EXTRACTORS)})")
    args = entry.get("args", {})
    try:
        inspect.signature(function).bind(Path(), **args)
    except TypeError as exc:
        raise CatalogueError(f"{where}: arguments of {entry['extract']}: {exc}") from None
    return Source(entry["package"], entry["split"], entry["kind"], functools.partial(function, **args),
                  entry.get("max_flat"))


def load_catalogue(path: str | Path = CATALOGUE) -> tuple[Source, ...]:
    """The ``[[source]]`` entries of a catalogue file, checked (CatalogueError names the problem)."""
    path = Path(path)
    try:
        entries = tomllib.loads(path.read_text(encoding="utf-8")).get("source", [])
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise CatalogueError(f"cannot read the package catalogue {path}: {exc}") from None
    sources = tuple(_source(entry, f"{path.name}, source {i + 1} ({entry.get('package', '?')})")
                    for i, entry in enumerate(entries))
    check_sources(sources)
    return sources
