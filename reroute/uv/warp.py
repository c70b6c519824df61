"""Warps between image space and the continuous UV texture.

* :func:`image_to_uv` lifts a photo into the continuous UV texture by splatting
  each body pixel's colour, with bilinear weights times the pixel's
  :func:`lifting_confidence` (low at grazing angles and at part and silhouette
  borders), onto the texels around its UV; visibility = where any bilinear
  weight landed.
* :func:`uv_to_image` samples a texture at a correspondence map's UVs with
  ``torch.nn.functional.grid_sample`` (``align_corners=False``: texel ``i`` of
  ``T`` has its centre at ``(i + 0.5) / T``).

The texture itself is :class:`~reroute.uv.texture.UVTexture`; conversions to and
from DensePose's 24-tile atlas are in :mod:`reroute.uv.atlas`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import cv2
import numpy as np
import torch

from reroute.correspondence.maps import Correspondence
from reroute.uv.texture import UVTexture, sample_masked, uv_layout_mask

__all__ = [
    "image_to_uv",
    "lifting_confidence",
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


def image_to_uv(image: np.ndarray, corr: Correspondence, size: int = 256,
                confidence: np.ndarray | Literal[True] | None = True) -> UVTexture:  # fmt: skip
    """Lift a photo into the continuous UV texture (bilinear splatting, weighted by confidence).

    Args:
        image: (H, W, 3) uint8 RGB, or float in [0, 1].
        corr: the photo's :class:`Correspondence`, same H, W; only ``body_mask``
            pixels are splatted (pixels filled from a neighbour would smear).
        size: texture size T.
        confidence: (H, W) float32 per-pixel weight > 0; True (default) for
            :func:`lifting_confidence`, None for equal weights.
    Returns:
        :class:`UVTexture` (T, T): the confidence-weighted mean colour of what
        landed on each texel, 0 elsewhere; visibility 1 where any bilinear weight
        landed (the same texels whatever the confidence); ``weight`` the
        evidence behind each visible texel (mean confidence of what landed,
        times the bilinear coverage where under one pixel's worth landed), by
        which :func:`~reroute.uv.texture.fuse_textures` fuses several photos.
    Raises:
        ValueError: when the image, correspondence or confidence sizes differ.
    """
    img = _as_float_image(image)
    if img.shape[:2] != corr.shape:
        raise ValueError(f"image is {img.shape[:2]} but the correspondence is {corr.shape}")
    if confidence is True:
        confidence = lifting_confidence(corr)
    if confidence is not None and confidence.shape != corr.shape:
        raise ValueError(f"confidence is {confidence.shape} but the correspondence is {corr.shape}")
    sel = corr.body_mask & corr.mask
    weights = None if confidence is None else confidence[sel]
    pix, seen, evidence = _splat(img[sel], corr.uv[sel], size, weights)
    vis = seen & uv_layout_mask(size)
    return UVTexture(pix, vis.astype(np.float32), np.where(vis, evidence, 0.0).astype(np.float32))


#: the least weight :func:`lifting_confidence` gives a body pixel
LIFT_MIN_WEIGHT = 0.05

#: pixels this far (at 256 px; scaled with the image's shorter side) from a part
#: border or the silhouette have full border weight
LIFT_BORDER_PX = 3.0


def lifting_confidence(corr: Correspondence) -> np.ndarray:
    """How much each pixel's colour should count when it is lifted into UV.

    The product of two terms, clipped to [:data:`LIFT_MIN_WEIGHT`, 1]:

    * foreshortening: the UV area a pixel covers, ``|det d(u, v)/d(x, y)|``
      (central differences), grows as ``1 / cos`` of the angle between the
      surface and the view ray; the term is the part's median area over the
      pixel's (1 for the half of the part seen most frontally), so texels seen
      at grazing angles take their colour from frontal views of them first;
    * borders: ``min(1, (d + 0.5) / r)`` with ``d`` the pixel distance to the
      nearest pixel of another part or outside the body, ``r`` =
      :data:`LIFT_BORDER_PX` scaled to the image (colours blend there, and a
      misfitted border puts an arm's skin on the torso).

    Args:
        corr: :class:`Correspondence` (H, W).
    Returns:
        (H, W) float32 in [LIFT_MIN_WEIGHT, 1] on ``body_mask``, 0 elsewhere.
    """
    body = corr.body_mask & corr.mask
    part = np.where(body, corr.part, 0).astype(np.int32)
    out = np.zeros(corr.shape, np.float32)
    if not body.any():
        return out
    # foreshortening: UV area per pixel, from neighbours of the same part only
    uv = corr.uv.astype(np.float32)
    du_dx = np.zeros_like(uv)
    du_dy = np.zeros_like(uv)
    same_x = (part[:, 2:] == part[:, :-2]) & (part[:, 1:-1] == part[:, 2:])
    same_y = (part[2:] == part[:-2]) & (part[1:-1] == part[2:])
    du_dx[:, 1:-1] = np.where(same_x[..., None], (uv[:, 2:] - uv[:, :-2]) / 2, np.nan)
    du_dy[1:-1] = np.where(same_y[..., None], (uv[2:] - uv[:-2]) / 2, np.nan)
    du_dx[:, [0, -1]] = np.nan
    du_dy[[0, -1]] = np.nan
    area = np.abs(du_dx[..., 0] * du_dy[..., 1] - du_dx[..., 1] * du_dy[..., 0])
    fore = np.ones(corr.shape, np.float32)
    for p in np.unique(part[body]):
        sel = (part == p) & np.isfinite(area) & (area > 0)
        if sel.sum() >= 8:
            ref = np.median(area[sel])
            fore[sel] = np.minimum(ref / area[sel], 1.0)
    # borders: distance to a pixel with a 4-neighbour of another part (or the outside)
    p8, cross = part.astype(np.uint8), cv2.getStructuringElement(cv2.MORPH_CROSS, (3, 3))
    edge = cv2.dilate(p8, cross) != cv2.erode(p8, cross)
    dist = cv2.distanceTransform((~edge).astype(np.uint8), cv2.DIST_L2, 3)
    r = LIFT_BORDER_PX * min(corr.shape) / 256.0
    border = np.minimum(dist + 0.5, r) / r  # no edge at all: dist is ~FLT_MAX, clip before dividing
    out[body] = np.clip(fore[body] * border[body], LIFT_MIN_WEIGHT, 1.0)
    return out


def _splat(values: np.ndarray, uv: np.ndarray, size: int,
           weights: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """Bilinear splat of per-pixel values into a (T, T) texture.

    Args:
        values: (n, C) float32; uv: (n, 2) float32 in [0, 1]; weights: (n,)
            float32 > 0 per value, or None for 1.
    Returns:
        (T, T, C) float32 weighted mean of what landed on each texel (0 where
        nothing did); (T, T) bool, where any bilinear weight (> 1e-3) landed
        (whatever ``weights``); (T, T) float32 evidence, the summed weight
        (bilinear times ``weights``) over ``max(1, summed bilinear weight)``:
        the mean weight where a pixel or more landed, less where less did.
    """
    cols = torch.from_numpy(np.ascontiguousarray(values, np.float32))  # (n, C)
    conf = None if weights is None else torch.from_numpy(np.ascontiguousarray(weights, np.float32))
    uv = torch.from_numpy(uv) * size - 0.5  # texel-centre coordinates
    x0 = torch.floor(uv[:, 0])
    y0 = torch.floor(uv[:, 1])
    fx = uv[:, 0] - x0
    fy = uv[:, 1] - y0
    acc = torch.zeros(size * size, cols.shape[1])
    wsum = torch.zeros(size * size)
    csum = torch.zeros(size * size)  # bilinear weight times confidence
    for dx, dy, wgt in ((0, 0, (1 - fx) * (1 - fy)), (1, 0, fx * (1 - fy)),
                        (0, 1, (1 - fx) * fy), (1, 1, fx * fy)):  # fmt: skip
        xi = (x0 + dx).long()
        yi = (y0 + dy).long()
        ok = (xi >= 0) & (xi < size) & (yi >= 0) & (yi < size) & (wgt > 0)
        idx = yi[ok] * size + xi[ok]
        cw = wgt[ok] if conf is None else wgt[ok] * conf[ok]
        acc.index_add_(0, idx, cols[ok] * cw[:, None])
        wsum.index_add_(0, idx, wgt[ok])
        csum.index_add_(0, idx, cw)
    seen = wsum > 1e-3
    pix = torch.where(seen[:, None], acc / csum.clamp_min(1e-12)[:, None], torch.zeros(()))
    evidence = torch.where(seen, csum / wsum.clamp_min(1.0), torch.zeros(()))
    return (pix.reshape(size, size, -1).numpy(), seen.reshape(size, size).numpy(),
            evidence.reshape(size, size).numpy())  # fmt: skip


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
    ctex, seen, _ = _splat(coords, source.uv[sel], size)
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
