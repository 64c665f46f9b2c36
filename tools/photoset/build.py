"""Build the photo set: download, unpack, filter and record each source package.

Output layout (read by ``deepfill.datasets`` and ``deepfill train``)::

    DIR/train/photos/<package>/...    DIR/train/textures/<package>/...    DIR/val/photos/<package>/...
    DIR/manifest.csv   DIR/train.flist   DIR/val.flist   DIR/.debs/ (download cache)

Validation packages never feed the training split: the split is a property of the package,
checked before anything is written, and a training image whose content (hash) matches a
validation image is dropped.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path

from PIL import Image

from deepfill.datasets import read_manifest, write_manifest
from tools.photoset import PackageDownloadError, PhotosetError, ToolMissingError
from tools.photoset.catalogue import Source, check_sources, load_catalogue, safe_name
from tools.photoset.filters import FilterConfig, image_stats, rejection_reason
from tools.photoset.licences import licence_for

logger = logging.getLogger(__name__)


# --- apt-get / dpkg-deb -------------------------------------------------------------------

def require_tools(tools: Sequence[str]) -> None:
    """Raise ToolMissingError naming every tool of ``tools`` that is not on PATH."""
    missing = [tool for tool in tools if shutil.which(tool) is None]
    if missing:
        raise ToolMissingError(
            f"{' and '.join(missing)} not found on PATH: building the photo set needs a Debian or "
            "Ubuntu system (packages apt and dpkg); no root is needed"
        )


def cached_deb(debs: Path, package: str) -> Path | None:
    """The newest cached ``package_*.deb`` in ``debs``, if any."""
    found = sorted(debs.glob(f"{package}_*.deb"), key=lambda p: p.stat().st_mtime)
    return found[-1] if found else None


def _deb_field(deb: Path, field: str) -> str:
    result = subprocess.run(["dpkg-deb", "-f", str(deb), field], capture_output=True, text=True)
    if result.returncode != 0:
        raise PhotosetError(f"{deb.name} is not a readable .deb: {result.stderr.strip()}")
    return result.stdout.strip()


def download_deb(package: str, debs: Path) -> Path:
    """``apt-get download package`` into ``debs`` (reusing a valid cached file)."""
    deb = cached_deb(debs, package)
    if deb is not None:
        try:
            _deb_field(deb, "Version")
            return deb
        except PhotosetError:
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
        raise PhotosetError(f"dpkg-deb could not unpack {deb.name}: {result.stderr.strip()}")


# --- build --------------------------------------------------------------------------------

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
        name = safe_name(cand.name)
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
            "license": licence_for(copyright_text, license_paths) if copyright_text else "unknown",
            "kind": source.kind,
            "sha1": digest,
        })
    logger.info("%s %s: kept %d images, filtered out %d", source.package, version, len(rows), rejected)
    return rows


def build_photoset(
    out: str | Path,
    sources: Sequence[Source] | None = None,
    packages: Sequence[str] | None = None,
    filters: FilterConfig = FilterConfig(),
    progress: bool = True,
) -> BuildReport:
    """Download, unpack and filter the source packages into ``out`` (see the module doc).

    ``sources`` defaults to the catalogue, ``packages.toml``. Idempotent: a package whose rows
    in ``manifest.csv`` all still exist (and whose build finished) is skipped, and .debs are
    cached in ``out/.debs``. Raises ToolMissingError when a needed tool is absent, and
    PackageDownloadError after building everything else when some packages could not be
    downloaded.
    """
    sources = load_catalogue() if sources is None else sources
    check_sources(sources)
    if packages is not None:
        unknown = sorted(set(packages) - {s.package for s in sources})
        if unknown:
            raise PhotosetError(f"unknown package(s): {', '.join(unknown)}")
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

