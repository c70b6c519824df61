"""Warps between image space and the continuous UV texture.

* :func:`image_to_uv` lifts a photo into the continuous UV texture by splatting
  each body pixel's colour, with bilinear weights, onto the texels around its
  UV; visibility = where any weight landed.
* :func:`uv_to_image` samples a texture at a correspondence map's UVs with
  ``torch.nn.functional.grid_sample`` (``align_corners=False``: texel ``i`` of
  ``T`` has its centre at ``(i + 0.5) / T``).

The texture itself is :class:`~reroute.uv.texture.UVTexture`; conversions to and
from DensePose's 24-tile atlas are in :mod:`reroute.uv.atlas`.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from reroute.correspondence.maps import Correspondence
from reroute.uv.texture import UVTexture, uv_layout_mask

__all__ = [
    "image_to_uv",
    "uv_to_image",
]


def _as_float_image(image: np.ndarray) -> np.ndarray:
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"image: expected shape (H, W, 3), got {tuple(image.shape)}")
    if image.dtype == np.uint8:
        return image.astype(np.float32) / 255.0
    return image.astype(np.float32)


def image_to_uv(image: np.ndarray, corr: Correspondence, size: int = 256) -> UVTexture:
    """Lift a photo into the continuous UV texture (bilinear splatting).

    Args:
        image: (H, W, 3) uint8 RGB, or float in [0, 1].
        corr: the photo's :class:`Correspondence`, same H, W; only ``body_mask``
            pixels are splatted (pixels filled from a neighbour would smear).
        size: texture size T.
    Returns:
        :class:`UVTexture` (T, T): the mean colour of what landed on each texel,
        0 elsewhere; visibility 1 where any weight landed.
    Raises:
        ValueError: when the image and correspondence sizes differ.
    """
    img = _as_float_image(image)
    if img.shape[:2] != corr.shape:
        raise ValueError(f"image is {img.shape[:2]} but the correspondence is {corr.shape}")
    sel = corr.body_mask & corr.mask
    cols = torch.from_numpy(img[sel])  # (n, 3)
    uv = torch.from_numpy(corr.uv[sel]) * size - 0.5  # texel-centre coordinates
    x0 = torch.floor(uv[:, 0])
    y0 = torch.floor(uv[:, 1])
    fx = uv[:, 0] - x0
    fy = uv[:, 1] - y0
    acc = torch.zeros(size * size, 3)
    wsum = torch.zeros(size * size)
    for dx, dy, wgt in ((0, 0, (1 - fx) * (1 - fy)), (1, 0, fx * (1 - fy)),
                        (0, 1, (1 - fx) * fy), (1, 1, fx * fy)):  # fmt: skip
        xi = (x0 + dx).long()
        yi = (y0 + dy).long()
        ok = (xi >= 0) & (xi < size) & (yi >= 0) & (yi < size) & (wgt > 0)
        idx = yi[ok] * size + xi[ok]
        acc.index_add_(0, idx, cols[ok] * wgt[ok, None])
        wsum.index_add_(0, idx, wgt[ok])
    seen = wsum > 1e-3
    pix = torch.where(seen[:, None], acc / wsum.clamp_min(1e-8)[:, None], torch.zeros(()))
    vis = seen & torch.from_numpy(uv_layout_mask(size).ravel())
    return UVTexture(pix.reshape(size, size, 3).numpy(), vis.reshape(size, size).float().numpy())


def uv_to_image(texture: np.ndarray | UVTexture, corr: Correspondence) -> np.ndarray:
    """Sample a texture at each foreground pixel's UV (bilinear, ``align_corners=False``).

    Args:
        texture: (T, T, C) float32 texture (or a :class:`UVTexture`).
        corr: the target :class:`Correspondence` (H, W).
    Returns:
        (H, W, C) float32; 0 outside ``corr.mask``.
    """
    tex = texture.pixels if isinstance(texture, UVTexture) else texture
    t = torch.from_numpy(np.ascontiguousarray(tex, np.float32)).permute(2, 0, 1)[None]
    grid = torch.from_numpy(corr.uv * 2.0 - 1.0)[None].float()
    out = F.grid_sample(t, grid, mode="bilinear", padding_mode="border", align_corners=False)
    img = out[0].permute(1, 2, 0).numpy()
    return np.where(corr.mask[..., None], img, 0.0).astype(np.float32)
