"""Viewable pictures of what the pipelines compute, for a UI or a debug folder.

Each function turns one intermediate result (correspondences, a partial or
completed texture, a photo's landmarks) into a uint8 RGB picture or the data
to draw one, so that callers above the pipelines (the app) need not reach
into the lower packages.
"""

from __future__ import annotations

import numpy as np

from reroute.body.detect import PersonObservation, detect_person
from reroute.correspondence.maps import Correspondence, iuv_to_rgb
from reroute.io.images import to_uint8
from reroute.uv.atlas import continuous_to_atlas
from reroute.uv.texture import UVTexture

__all__ = ["ATLAS_TILE", "iuv_image", "partial_texture_image", "atlas_image", "find_landmarks"]

#: Default tile side (px) of the DensePose atlas pictures.
ATLAS_TILE = 128


def iuv_image(corr: Correspondence) -> np.ndarray:
    """The correspondences as a picture: (h, w, 3) uint8, hue by part, brightness by (U, V).

    Background pixels are white (:func:`~reroute.correspondence.maps.iuv_to_rgb`).
    """
    return iuv_to_rgb(corr.to_iuv())


def partial_texture_image(texture: UVTexture, background: float = 0.85) -> np.ndarray:
    """A partial texture as (T, T, 3) uint8 RGB; unobserved texels light gray.

    Args:
        texture: pixels (T, T, 3) float32 in [0, 1], visibility (T, T) in [0, 1].
        background: gray level in [0, 1] shown where the visibility is 0
            (blended linearly by the visibility in between).
    """
    vis = np.clip(texture.visibility, 0.0, 1.0)[..., None]
    return to_uint8(texture.pixels * vis + background * (1.0 - vis))


def atlas_image(texture: UVTexture | np.ndarray, tile: int = ATLAS_TILE) -> np.ndarray:
    """A continuous-UV texture as its DensePose atlas picture.

    Args:
        texture: a :class:`~reroute.uv.texture.UVTexture` or (T, T, 3) float
            RGB in [0, 1].
        tile: side of each of the 6 x 4 part tiles, px.
    Returns:
        (4 * tile, 6 * tile, 3) uint8 RGB; space no part covers is black.
    """
    pixels = texture.pixels if isinstance(texture, UVTexture) else texture
    return to_uint8(continuous_to_atlas(pixels, tile=tile))


def find_landmarks(image: np.ndarray, *, name: str = "photo") -> PersonObservation:
    """mediapipe's BlazePose landmarks and person mask of the one person in ``image``.

    Args:
        image: (H, W, 3) uint8 RGB.
        name: how messages refer to the photo.
    Returns:
        :class:`~reroute.body.detect.PersonObservation`: ``landmarks`` (33, 2)
        float32 pixels (x, y), ``visibility`` (33,) float32 in [0, 1], ``mask``
        (H, W) float32 person probability in [0, 1].
    Raises:
        NoPersonError, SeveralPersonsError: no person, or more than one.
    """
    return detect_person(image, name=name)
