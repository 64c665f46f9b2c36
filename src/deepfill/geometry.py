"""``Box``: the one convention for a rectangle of pixels, in images, masks and feature maps."""

from __future__ import annotations

from typing import NamedTuple


class Box(NamedTuple):
    """Rows ``top`` to ``bottom`` and columns ``left`` to ``right`` of a map, ends exclusive.

    ``x[..., box.top : box.bottom, box.left : box.right]`` is the box's part of a map ``x``.
    """

    top: int
    left: int
    bottom: int
    right: int

    @property
    def height(self) -> int:
        return self.bottom - self.top

    @property
    def width(self) -> int:
        return self.right - self.left
