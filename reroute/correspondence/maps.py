"""Dense body-surface correspondences of a photo, and their IUV form.

A :class:`Correspondence` says, for every person pixel, which point of the
body template it shows, in all of reroute's coordinate systems (see
:mod:`reroute.body`). It is rendered from a fitted body and then extended to
the whole person mask (hair, loose clothes) by copying the nearest rendered
pixel's correspondence, the way BodyMap builds dense pseudo ground truth.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from reroute.io.images import to_uint8

__all__ = [
    "Correspondence",
    "iuv_to_rgb",
    "soft_mask",
]


@dataclass
class Correspondence:
    """Per-pixel body-surface coordinates of one person in one image.

    Attributes:
        part: (H, W) uint8 DensePose part index, 0 = background, 1..24 = body parts.
        part_uv: (H, W, 2) float32 per-part chart (U, V) in [0, 1]; 0 on background.
        uv: (H, W, 2) float32 continuous UV in [0, 1] (u along the texture's x,
            v along its y, row 0 at the top); 0 on background.
        colour: (H, W, 3) float32 BodyMap colour code in [0, 1]; 0 on background.
        mask: (H, W) bool, person foreground (where the fields above are defined).
        body_mask: (H, W) bool, pixels where the rendered body itself lies
            (``mask`` minus the pixels filled from their nearest body pixel).
    """

    part: np.ndarray
    part_uv: np.ndarray
    uv: np.ndarray
    colour: np.ndarray
    mask: np.ndarray
    body_mask: np.ndarray

    def soft_mask(self) -> np.ndarray:
        """(H, W) float32 alpha in [0, 1]: ``mask`` with a soft edge (:func:`soft_mask`)."""
        return soft_mask(self.mask)

    @property
    def shape(self) -> tuple[int, int]:
        return self.part.shape  # type: ignore[return-value]

    def to_iuv(self) -> np.ndarray:
        """(H, W, 3) uint8 IUV in DensePose's convention: I 0..24, U and V scaled by 255."""
        iuv = np.zeros(self.part.shape + (3,), np.uint8)
        iuv[..., 0] = self.part
        uv = to_uint8(self.part_uv)
        iuv[..., 1:] = np.where(self.mask[..., None], uv, 0)
        return iuv

    def resized(self, height: int, width: int) -> Correspondence:
        """Nearest-neighbour resize to ``height x width`` (no blending across parts)."""
        ys = np.minimum(((np.arange(height) + 0.5) * self.part.shape[0] / height).astype(int),
                        self.part.shape[0] - 1)  # fmt: skip
        xs = np.minimum(((np.arange(width) + 0.5) * self.part.shape[1] / width).astype(int),
                        self.part.shape[1] - 1)  # fmt: skip
        pick = np.ix_(ys, xs)
        return Correspondence(self.part[pick], self.part_uv[pick], self.uv[pick],
                              self.colour[pick], self.mask[pick], self.body_mask[pick])  # fmt: skip


def iuv_to_rgb(iuv: np.ndarray) -> np.ndarray:
    """A viewable picture of an IUV map (H, W, 3) uint8: hue by part, brightness by U, V."""
    rng = np.random.default_rng(7)
    lut = rng.integers(60, 256, (25, 3)).astype(np.float32)
    lut[0] = 255.0
    part = iuv[..., 0].astype(int)
    base = lut[np.clip(part, 0, 24)]
    shade = 0.55 + 0.45 * (iuv[..., 1:].astype(np.float32).mean(-1, keepdims=True) / 255.0)
    rgb = np.where(part[..., None] > 0, base * shade, 255.0)
    return np.clip(rgb, 0, 255).astype(np.uint8)


def soft_mask(mask: np.ndarray) -> np.ndarray:
    """(h, w) bool person mask -> (h, w) float32 alpha in [0, 1] (3x3 Gaussian edge)."""
    return cv2.GaussianBlur(mask.astype(np.float32), (3, 3), 0)
