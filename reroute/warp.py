"""Warps between image space and the body's texture spaces.

* :func:`image_to_uv` lifts a photo into the continuous UV texture by splatting
  each body pixel's colour, with bilinear weights, onto the texels around its
  UV; visibility = where any weight landed.
* :func:`uv_to_image` samples a texture at a correspondence map's UVs with
  ``torch.nn.functional.grid_sample`` (``align_corners=False``: texel ``i`` of
  ``T`` has its centre at ``(i + 0.5) / T``).
* :func:`continuous_to_atlas` / :func:`atlas_to_continuous` convert between the
  continuous UV texture and DensePose's 24-tile atlas (6 columns x 4 rows of
  N x N tiles; part ``i`` at row ``(i-1)//6``, column ``(i-1)%6``; U along x,
  V along y reversed, as in detectron2's DensePose texture visualizer).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from .body import get_template
from .correspondence import Correspondence
from .render import rasterize_layout

__all__ = [
    "UVTexture",
    "image_to_uv",
    "uv_to_image",
    "uv_layout_mask",
    "continuous_to_atlas",
    "atlas_to_continuous",
    "atlas_coordinates",
]


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
        return np.clip(np.rint(self.pixels * 255.0), 0, 255).astype(np.uint8)


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


@functools.lru_cache(maxsize=8)
def _layout(size: int):
    t = get_template()
    r = rasterize_layout(t.face_uv, size)
    return r


def uv_layout_mask(size: int) -> np.ndarray:
    """(T, T) bool, True on texels covered by the template's UV islands."""
    return _layout(size).mask


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


def _sample(image: np.ndarray, xy01: np.ndarray, valid: np.ndarray | None = None) -> np.ndarray:
    """Bilinear sample of ``image`` at ``xy01`` in [0, 1]; with ``valid`` (H, W) bool, only
    valid texels contribute (weights renormalised), so values do not bleed in from
    the empty space around UV islands or atlas tiles."""
    t = torch.from_numpy(np.ascontiguousarray(image, np.float32)).permute(2, 0, 1)[None]
    g = torch.from_numpy(xy01 * 2.0 - 1.0).float()[None]
    out = F.grid_sample(t, g, mode="bilinear", padding_mode="border", align_corners=False)
    if valid is not None:
        m = torch.from_numpy(np.ascontiguousarray(valid, np.float32))[None, None]
        num = F.grid_sample(t * m, g, mode="bilinear", padding_mode="border", align_corners=False)
        den = F.grid_sample(m, g, mode="bilinear", padding_mode="border", align_corners=False)
        out = torch.where(den > 1e-6, num / den.clamp_min(1e-6), out)
    return out[0].permute(1, 2, 0).numpy()


def continuous_to_atlas(texture: np.ndarray, tile: int = 200) -> np.ndarray:
    """Continuous UV texture (T, T, C) -> DensePose atlas (4*tile, 6*tile, C), float32.

    Texels of the atlas that no part covers are 0.
    """
    t = get_template()
    lay = _atlas_layout(tile)
    uv = lay.interpolate(t.face_uv)
    h, w = texture.shape[:2]
    out = _sample(texture, uv, uv_layout_mask(h) if h == w else None)  # islands only
    return np.where(lay.mask[..., None], out, 0.0).astype(np.float32)


def atlas_to_continuous(atlas: np.ndarray, size: int = 256) -> np.ndarray:
    """DensePose atlas (4N, 6N, C) -> continuous UV texture (size, size, C), float32.

    Texels outside the template's UV islands are 0.
    """
    h, w = atlas.shape[:2]
    if h * 6 != w * 4:
        raise ValueError(f"atlas: expected a 6x4-tile layout (W = 1.5 H), got {w}x{h}")
    coords, _ = atlas_coordinates(h // 4)
    lay = _layout(size)
    xy = lay.interpolate(coords)
    out = _sample(atlas, xy, _atlas_layout(h // 4).mask if h % 4 == 0 else None)  # tiles only
    return np.where(lay.mask[..., None], out, 0.0).astype(np.float32)
