"""Which texels of a body texture show the person's own skin.

Skin is judged against the person's face: a texel is skin when its chroma
(YCrCb's Cr, Cb) lies within :data:`SKIN_CHROMA_DISTANCE` of the median chroma
of the visible face texels (:func:`face_texels`). Used by try-on (the swap
follows the garment, not bare arms) and by the classical completion (unseen
clothes are filled from the garment, not from the bare skin next to it).
"""

from __future__ import annotations

import functools

import cv2
import numpy as np

from reroute.io.images import to_uint8
from reroute.uv.texture import UVTexture, texel_parts, texel_points

__all__ = ["SKIN_CHROMA_DISTANCE", "face_texels", "skin_texels"]

#: skin test: chroma (Cr, Cb of YCrCb, 0..255) within this distance of the
#: person's own face skin
SKIN_CHROMA_DISTANCE = 10.0


@functools.lru_cache(maxsize=4)
def face_texels(size: int) -> np.ndarray:
    """(T, T) bool texels of the face: the front of the head between chin and brows."""
    pts = texel_points(size)
    head = np.isin(texel_parts(size), (23, 24))
    hz = pts[head][:, 2]
    front = pts[..., 1] < np.median(pts[head][:, 1]) - 0.04  # anny faces -y
    band = (pts[..., 2] > hz.min() + 0.25 * np.ptp(hz)) & (pts[..., 2] < hz.min() + 0.6 * np.ptp(hz))
    return head & front & band


def skin_texels(texture: UVTexture, max_distance: float = SKIN_CHROMA_DISTANCE) -> np.ndarray:
    """Texels whose colour is the person's own skin, judged against their face.

    Args:
        texture: a (T, T) :class:`~reroute.uv.texture.UVTexture`, pixels float32
            RGB in [0, 1]; its visibility says which face texels were seen.
        max_distance: chroma distance (YCrCb Cr, Cb in 0..255) to the median of
            the visible face texels that still counts as skin.
    Returns:
        (T, T) bool (every texel judged, seen or not); all False when fewer than
        20 face texels were seen (a back view).
    """
    face = face_texels(texture.size) & (texture.visibility > 0.5)
    if face.sum() < 20:
        return np.zeros((texture.size, texture.size), bool)
    ycc = cv2.cvtColor(to_uint8(texture.pixels), cv2.COLOR_RGB2YCrCb).astype(np.float32)
    ref = np.median(ycc[face][:, 1:], axis=0)
    return np.linalg.norm(ycc[..., 1:] - ref, axis=-1) <= max_distance
