"""The licence of each photo, from its package's ``/usr/share/doc/PKG/copyright``.

Machine-readable (DEP-5) files are parsed by python-debian's ``debian.copyright``. Their
``Files:`` patterns name paths of the source tree, while a photo is known by its installed
path, so a pattern matches the whole path, a path suffix, or the file name when it names one
file (``licence_for``).
"""

from __future__ import annotations

import fnmatch
import logging
import re
from collections.abc import Sequence

import debian.copyright

logger = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff")


def files_paragraphs(text: str) -> list[tuple[tuple[str, ...], str]]:
    """(Files patterns, short licence name) of each ``Files:`` paragraph with a licence, in
    order; empty when the text is not a machine-readable copyright file."""
    try:
        parsed = debian.copyright.Copyright(text.splitlines(), strict=False)
    except (debian.copyright.Error, ValueError) as exc:
        logger.debug("copyright file is not machine-readable: %s", exc)
        return []
    return [(tuple(p.files), p.license.synopsis.strip()) for p in parsed.all_files_paragraphs()
            if p.license is not None and p.license.synopsis]


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


def licence_for(text: str, paths: Sequence[str]) -> str:
    """The licence a copyright file states for ``paths`` (the last matching ``Files:`` paragraph).

    Image suffixes are interchangeable. Falls back to ``Files: *``, then (for files that are
    not machine-readable) to the first ``License:`` line, then to the first line mentioning a
    licence; "unknown" without any.
    """
    paths = _path_variants(paths)
    chosen = None
    for patterns, name in files_paragraphs(text):
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
