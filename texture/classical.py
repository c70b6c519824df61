"""Classical texture completion: the baseline and fallback of the learned network.

1. **Mirror fill**: a texel not observed takes the colour of its left/right
   mirror texel when that one was observed (the body is close to symmetric:
   the mirror of canonical point (x, y, z) is (-x, y, z), looked up at the
   nearest template vertex).
2. **Push-pull fill** (Gortler et al., "The Lumigraph", 1996): what is still
   empty is filled from a pyramid of weighted averages, coarse levels filling
   fine holes. Only texels inside the UV islands are written.
"""

from __future__ import annotations

import functools

import numpy as np
import torch
import torch.nn.functional as F

from reroute.body.template import get_template
from reroute.uv.texture import UVTexture, uv_layout

__all__ = ["complete_classical", "mirror_texels", "push_pull"]


@functools.lru_cache(maxsize=4)
def mirror_texels(size: int) -> np.ndarray:
    """(T, T) int64 flat index of each texel's mirror texel (-1 outside the islands)."""
    from scipy.spatial import cKDTree

    t = get_template()
    lay = uv_layout(size)
    pts = lay.interpolate(t.vertices[t.faces])  # canonical 3-D point per texel
    mirrored = pts * np.float32([-1.0, 1.0, 1.0])
    # UV of each vertex (first corner that uses it)
    vuv = np.zeros((len(t.vertices), 2), np.float32)
    vuv[t.faces.ravel()] = t.face_uv.reshape(-1, 2)
    _, nn = cKDTree(t.vertices).query(mirrored[lay.mask])
    uv = vuv[nn]
    xi = np.clip((uv[:, 0] * size).astype(int), 0, size - 1)
    yi = np.clip((uv[:, 1] * size).astype(int), 0, size - 1)
    out = np.full((size, size), -1, np.int64)
    out[lay.mask] = yi * size + xi
    return out


def push_pull(pixels: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Fill zero-weight texels from a pyramid of weighted averages.

    Args:
        pixels: (H, W, C) float32 values; weights: (H, W) float32 >= 0.
    Returns:
        (H, W, C) float32 where every texel has a value (known texels unchanged).
    """
    x = torch.from_numpy(np.ascontiguousarray(pixels, np.float32)).permute(2, 0, 1)[None]
    w = torch.from_numpy(np.ascontiguousarray(weights, np.float32))[None, None]
    levels = []
    cur_x, cur_w = x * w, w
    while min(cur_w.shape[-2:]) > 1:
        levels.append((cur_x, cur_w))
        cur_x = F.avg_pool2d(cur_x, 2, ceil_mode=True)
        cur_w = F.avg_pool2d(cur_w, 2, ceil_mode=True)
    filled = cur_x / cur_w.clamp_min(1e-8)
    for lx, lw in reversed(levels):
        up = F.interpolate(filled, size=lx.shape[-2:], mode="bilinear", align_corners=False)
        a = lw.clamp(0, 1)  # partly covered coarse texels blend with the level above
        filled = a * (lx / lw.clamp_min(1e-8)) + (1 - a) * up
    return filled[0].permute(1, 2, 0).numpy()


def complete_classical(texture: UVTexture) -> UVTexture:
    """Mirror fill, then push-pull, inside the template's UV islands.

    Args:
        texture: partial :class:`~reroute.uv.texture.UVTexture` (T, T) with its visibility.
    Returns:
        a completed :class:`UVTexture`; visibility is 1 on every island texel.
    """
    size = texture.size
    lay = uv_layout(size)
    pix = texture.pixels.reshape(-1, 3).copy()
    vis = (texture.visibility.ravel() > 0.5) & lay.mask.ravel()
    mirror = mirror_texels(size).ravel()
    take = (~vis) & (mirror >= 0)
    take[take] &= vis[mirror[take]]
    pix[take] = pix[mirror[take]]
    known = vis | take
    filled = push_pull(pix.reshape(size, size, 3), known.reshape(size, size).astype(np.float32))
    filled = np.where(lay.mask[..., None], filled, 0.0).astype(np.float32)
    return UVTexture(filled, lay.mask.astype(np.float32))
