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

from dataclasses import dataclass

import cv2
import numpy as np
import torch

from reroute.correspondence.maps import Correspondence
from reroute.uv.texture import UVTexture, sample_masked, uv_layout_mask

__all__ = [
    "image_to_uv",
    "uv_to_image",
    "CorrespondenceFlow",
    "correspondence_flow",
    "sample_image",
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
    pix, seen = _splat(img[sel], corr.uv[sel], size)
    vis = seen & uv_layout_mask(size)
    return UVTexture(pix, vis.astype(np.float32))


def _splat(values: np.ndarray, uv: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Bilinear splat of per-pixel values into a (T, T) texture.

    Args:
        values: (n, C) float32; uv: (n, 2) float32 in [0, 1].
    Returns:
        (T, T, C) float32 mean of what landed on each texel (0 where nothing did)
        and (T, T) bool, where any weight (> 1e-3) landed.
    """
    cols = torch.from_numpy(np.ascontiguousarray(values, np.float32))  # (n, C)
    uv = torch.from_numpy(uv) * size - 0.5  # texel-centre coordinates
    x0 = torch.floor(uv[:, 0])
    y0 = torch.floor(uv[:, 1])
    fx = uv[:, 0] - x0
    fy = uv[:, 1] - y0
    acc = torch.zeros(size * size, cols.shape[1])
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
    return pix.reshape(size, size, -1).numpy(), seen.reshape(size, size).numpy()


def uv_to_image(texture: np.ndarray | UVTexture, corr: Correspondence) -> np.ndarray:
    """Sample a texture at each foreground pixel's UV (bilinear, ``align_corners=False``).

    Sampling contract (seam-free): only texels inside the template's UV islands
    contribute (:func:`~reroute.uv.texture.sample_masked`), so a pixel whose UV
    lies at an island border never mixes in the empty (black) space around it.

    Args:
        texture: (T, T, C) float32 texture (or a :class:`UVTexture`).
        corr: the target :class:`Correspondence` (H, W).
    Returns:
        (H, W, C) float32; 0 outside ``corr.mask``.
    """
    tex = texture.pixels if isinstance(texture, UVTexture) else texture
    h, w = tex.shape[:2]
    valid = uv_layout_mask(h) if h == w else None  # never sample the empty space between islands
    out = np.zeros(corr.shape + (tex.shape[2],), np.float32)
    out[corr.mask] = sample_masked(tex, corr.uv[corr.mask], valid)
    return out


@dataclass
class CorrespondenceFlow:
    """Where each target pixel's surface point is seen in the source image.

    Attributes:
        xy: (H_t, W_t, 2) float32 source-image coordinates (x, y) in pixels,
            pixel ``(i, j)`` spanning ``[j, j + 1) x [i, i + 1)`` (centre at +0.5);
            meaningful where ``valid``.
        valid: (H_t, W_t) bool, target pixels whose surface point the source
            shows (checked: the source pixel found has the target pixel's UV
            within the tolerance), or person pixels outside the body carried
            along with their nearest valid body pixel and landing on the source person.
    """

    xy: np.ndarray
    valid: np.ndarray


def correspondence_flow(source: Correspondence, target: Correspondence, size: int = 256,
                        tolerance_texels: float = 2.0) -> CorrespondenceFlow:  # fmt: skip
    """Dense flow from the target to the source image through the body surface.

    1. Each source body pixel splats its own coordinates (x, y) into a (T, T)
       UV texture (:func:`image_to_uv`'s splat): where each texel is seen.
    2. Each target body pixel samples that texture at its UV (masked bilinear,
       only seen texels) and keeps the result when the source pixel found has
       the same UV within ``tolerance_texels / T`` (max norm), so self-occlusion
       and UV seams, where one texel mixes distant pixels, fall back.
    3. Person pixels off the body (hair, loose clothes: ``mask & ~body_mask``)
       take their nearest body pixel's displacement, valid where that one is
       and where they land on the source person's mask.

    Sampling the source photo along this flow keeps its full resolution where
    the target shows what the source shows; an identity transfer returns the
    photo itself.

    Args:
        source, target: the two :class:`~reroute.correspondence.maps.Correspondence`
            maps (sizes may differ).
        size: side T of the intermediate UV texture.
        tolerance_texels: accepted UV disagreement, texels of a T texture.
    Returns:
        :class:`CorrespondenceFlow` at the target's size.
    """
    from scipy import ndimage as ndi  # scipy.ndimage: only when a transfer runs

    hs, ws = source.shape
    sel = source.body_mask & source.mask
    ys, xs = np.nonzero(sel)
    coords = np.stack([xs + 0.5, ys + 0.5], 1).astype(np.float32)
    ctex, seen = _splat(coords, source.uv[sel], size)
    body = target.body_mask & target.mask
    xy = np.zeros(target.shape + (2,), np.float32)
    valid = np.zeros(target.shape, bool)
    uv_t = target.uv[body]
    if len(uv_t) and seen.any():
        found = sample_masked(ctex, uv_t, seen)
        cover = sample_masked(seen[..., None].astype(np.float32), uv_t)[:, 0]
        ix = np.clip(np.floor(found[:, 0]).astype(int), 0, ws - 1)
        iy = np.clip(np.floor(found[:, 1]).astype(int), 0, hs - 1)
        err = np.abs(source.uv[iy, ix] - uv_t).max(1)
        ok = (cover > 0.5) & sel[iy, ix] & (err <= tolerance_texels / size)
        xy[body] = found
        valid[body] = ok
    # body pixels that failed (thin parts, splat noise): their nearest valid pixel's
    # displacement, kept where it lands on the same surface point (looser tolerance)
    if (body & ~valid).any() and valid.any():
        _, (qy, qx) = ndi.distance_transform_edt(~valid, return_indices=True)
        py, px = np.nonzero(body & ~valid)
        moved = _carry(xy, qy[py, px], qx[py, px], py, px)
        jx = np.clip(np.floor(moved[:, 0]).astype(int), 0, ws - 1)
        jy = np.clip(np.floor(moved[:, 1]).astype(int), 0, hs - 1)
        err = np.abs(source.uv[jy, jx] - target.uv[py, px]).max(1)
        ok = sel[jy, jx] & (err <= 2 * tolerance_texels / size)
        xy[py[ok], px[ok]] = moved[ok]
        valid[py[ok], px[ok]] = True
    off = target.mask & ~body
    if off.any() and valid.any():
        _, (qy, qx) = ndi.distance_transform_edt(~valid, return_indices=True)
        py, px = np.nonzero(off)
        ny, nx = qy[py, px], qx[py, px]
        moved = _carry(xy, ny, nx, py, px)
        jx = np.floor(moved[:, 0]).astype(int)
        jy = np.floor(moved[:, 1]).astype(int)
        inside = (jx >= 0) & (jx < ws) & (jy >= 0) & (jy < hs)
        land = np.zeros(len(py), bool)
        land[inside] = source.mask[jy[inside], jx[inside]]
        xy[py, px] = moved
        valid[py, px] = land
    return CorrespondenceFlow(xy, valid)


def _carry(xy: np.ndarray, ny, nx, py, px) -> np.ndarray:
    """(n, 2) source positions of pixels (py, px) moved like their neighbours (ny, nx)."""
    return xy[ny, nx] - np.stack([nx, ny], 1) + np.stack([px, py], 1)


def sample_image(image: np.ndarray, flow: CorrespondenceFlow) -> np.ndarray:
    """Sample ``image`` (H_s, W_s, 3) uint8 or float along a flow (bilinear, border).

    Returns:
        (H_t, W_t, 3) float32 RGB in [0, 1]; 0 where the flow is not valid.
    """
    img = _as_float_image(image)
    out = cv2.remap(img, flow.xy[..., 0] - 0.5, flow.xy[..., 1] - 0.5, cv2.INTER_LINEAR,
                    borderMode=cv2.BORDER_REPLICATE)  # fmt: skip
    return np.where(flow.valid[..., None], out, 0.0).astype(np.float32)
