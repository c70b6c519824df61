"""DensePose's 24-part texture atlas.

The atlas is 6 columns x 4 rows of N x N tiles; part ``i`` (1..24, DensePose
numbering) sits at tile row ``(i-1) // 6``, column ``(i-1) % 6``; inside a
tile U runs along x and V along y reversed (``1 - V``), as in detectron2's
DensePose texture visualizer. :func:`continuous_to_atlas` and
:func:`atlas_to_continuous` convert textures between the continuous UV layout
(:mod:`reroute.uv.texture`) and the atlas, sampling only texels inside
islands or tiles so that empty space never bleeds in.
"""

from __future__ import annotations

import functools

import numpy as np

from reroute.body.raster import rasterize_layout
from reroute.body.template import get_template
from reroute.uv.texture import sample_masked, uv_layout, uv_layout_mask

__all__ = ["atlas_coordinates", "continuous_to_atlas", "atlas_to_continuous"]


def atlas_coordinates(tile: int) -> tuple[np.ndarray, np.ndarray]:
    """Per face corner, where the DensePose atlas puts it.

    Returns:
        coords: (F, 3, 2) float32 atlas coordinates in [0, 1] (x over 6 tiles, y over 4).
        size: (2,) the atlas size (H, W) = (4 * tile, 6 * tile).
    """
    t = get_template()
    col = ((t.face_part - 1) % 6).astype(np.float32)[:, None]
    row = ((t.face_part - 1) // 6).astype(np.float32)[:, None]
    x = (col + t.face_part_uv[..., 0]) / 6.0
    y = (row + 1.0 - t.face_part_uv[..., 1]) / 4.0
    return np.stack([x, y], -1).astype(np.float32), np.array([4 * tile, 6 * tile])


@functools.lru_cache(maxsize=8)
def _atlas_layout(tile: int):
    coords, (h, w) = atlas_coordinates(tile)
    return rasterize_layout(coords, (int(h), int(w)))



def continuous_to_atlas(texture: np.ndarray, tile: int = 200) -> np.ndarray:
    """Continuous UV texture (T, T, C) -> DensePose atlas (4*tile, 6*tile, C), float32.

    Texels of the atlas that no part covers are 0.
    """
    t = get_template()
    lay = _atlas_layout(tile)
    uv = lay.interpolate(t.face_uv)
    h, w = texture.shape[:2]
    out = sample_masked(texture, uv, uv_layout_mask(h) if h == w else None)  # islands only
    return np.where(lay.mask[..., None], out, 0.0).astype(np.float32)


def atlas_to_continuous(atlas: np.ndarray, size: int = 256) -> np.ndarray:
    """DensePose atlas (4N, 6N, C) -> continuous UV texture (size, size, C), float32.

    Texels outside the template's UV islands are 0.
    """
    h, w = atlas.shape[:2]
    if h * 6 != w * 4:
        raise ValueError(f"atlas: expected a 6x4-tile layout (W = 1.5 H), got {w}x{h}")
    coords, _ = atlas_coordinates(h // 4)
    lay = uv_layout(size)
    xy = lay.interpolate(coords)
    out = sample_masked(atlas, xy, _atlas_layout(h // 4).mask if h % 4 == 0 else None)  # tiles only
    return np.where(lay.mask[..., None], out, 0.0).astype(np.float32)
