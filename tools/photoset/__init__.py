"""The Debian-package photo set of docs/design.md §3: ``python -m tools.photoset build --out DIR``.

Every source is a Debian package (``packages.toml``) fetched with ``apt-get download`` (no
root needed) and unpacked with ``dpkg-deb -x``; some keep their photos inside containers
(``containers.py``: Enlightenment Eet, Qt ``.rcc``, zip). ``filters.py`` keeps photographs,
``licences.py`` reads each file's licence from the package's DEP-5 copyright file, and
``build.py`` writes the set in the layout ``deepfill.datasets`` reads. Needs the packages
``lz4`` and ``python-debian`` (``pip install -e '.[photoset]'``).
"""


class PhotosetError(Exception):
    """The photo set could not be built (tools, downloads, unreadable containers)."""


class ToolMissingError(PhotosetError):
    """``apt-get`` or ``dpkg-deb`` is not on PATH."""


class PackageDownloadError(PhotosetError):
    """One or more packages could not be downloaded; the others were built (``report``)."""

    report = None  # the BuildReport of what was built


class CatalogueError(PhotosetError, ValueError):
    """A package catalogue that does not describe its sources correctly."""


class FormatError(PhotosetError, ValueError):
    """A container file (Eet, rcc, JPEG stream) that does not follow its format."""
