"""A photo's person as an editable UV texture, and the person re-rendered with an edited one.

* :func:`extract_texture`: photo (or its :class:`~reroute.correspondence.analyse.PersonAnalysis`)
  -> pixels lifted into the continuous UV layout (:func:`~reroute.uv.warp.image_to_uv`)
  -> completed (``classical`` or ``network``, :mod:`reroute.pipelines.completion`)
  -> DensePose atlas picture; the result is a :class:`TextureExtraction`.
* :func:`read_texture`: an (edited) texture image, either a square continuous UV
  texture or a DensePose atlas of 6 x 4 tiles, as a continuous UV texture.
* :func:`retexture`: the analysed person re-rendered with a texture and blended
  over the photo (:func:`reroute.pipelines.compose.texture_over_photo`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from reroute.body.fit import FitConfig
from reroute.correspondence.analyse import PersonAnalysis, analyse_person
from reroute.errors import InputError
from reroute.io.images import LoadedImage, load_image
from reroute.pipelines.completion import DEFAULT_COMPLETION, check_completion, run_completion
from reroute.pipelines.compose import texture_over_photo
from reroute.pipelines.views import ATLAS_TILE, atlas_image
from reroute.uv.atlas import atlas_to_continuous
from reroute.uv.texture import UVTexture, fuse_textures
from reroute.uv.warp import image_to_uv

__all__ = ["TextureExtraction", "extract_texture", "read_texture", "retexture"]


@dataclass
class TextureExtraction:
    """Output of :func:`extract_texture`.

    Attributes:
        texture: the completed texture, (T, T): pixels float32 RGB in [0, 1],
            visibility float32 1 on the UV islands.
        partial: the photo's pixels lifted into UV before completion, (T, T):
            pixels float32 RGB in [0, 1], visibility float32 in [0, 1] (0 where
            the photo does not see the surface).
        atlas: the completed texture as a DensePose atlas, (4 * tile, 6 * tile, 3)
            uint8 RGB, or ``None`` when no atlas was asked for.
        analysis: the photo's :class:`~reroute.correspondence.analyse.PersonAnalysis`.
        completion: the completion used (a name of
            :data:`~reroute.pipelines.registry.TEXTURE_COMPLETIONS`).
        timings: seconds per stage: ``lift``, ``completion``, ``atlas`` (when
            made), ``total``; plus ``pose``, ``fit``, ``render`` when the photo
            was analysed here.
        notices: messages for the user (e.g. the photo was downscaled).
    """

    texture: UVTexture
    partial: UVTexture
    atlas: np.ndarray | None
    analysis: PersonAnalysis
    completion: str
    timings: dict[str, float] = field(default_factory=dict)
    notices: list[str] = field(default_factory=list)


def extract_texture(photo: Any, size: int = 256, completion: str = DEFAULT_COMPLETION, *,
                    texture_size: int = 256, checkpoint: str | Path | None = None,
                    atlas_tile: int | None = ATLAS_TILE, name: str = "photo",
                    fit_config: FitConfig | None = None,
                    progress: Callable[[float, str], None] | None = None,
                    more: Sequence[PersonAnalysis] = ()) -> TextureExtraction:  # fmt: skip
    """The completed UV texture of the one person in a photo.

    Args:
        photo: a :class:`~reroute.correspondence.analyse.PersonAnalysis` (used
            as it is, e.g. from a cache), or a photo to analyse (path, bytes,
            PIL image, (H, W, 3) uint8 array or :class:`~reroute.io.images.LoadedImage`).
        size: working size (longer side, pixels, >= 64) when the photo is analysed here.
        completion: ``classical`` or ``network`` (see :mod:`reroute.pipelines.completion`).
        texture_size: side T of the UV texture (the network needs a multiple of 64).
        checkpoint: the network checkpoint (``None``: the committed default).
        atlas_tile: tile side of the DensePose atlas, px; ``None``: no atlas.
        name: how messages refer to the photo.
        fit_config: the body fit's schedule when the photo is analysed here.
        progress: ``progress(fraction, stage)``, called before each stage with
            the fraction of the whole photo -> texture run (0.8 for the
            completion, 0.9 for the atlas, 1.0 when done).
        more: analyses of further photos of the same person in the same clothes
            (e.g. the back); their lifted textures are fused with the photo's
            (:func:`~reroute.uv.texture.fuse_textures`) before completion.
    Returns:
        :class:`TextureExtraction`.
    Raises:
        InputError: unknown completion, a size under 64, bad image, no person,
            several persons, failed fit, or a texture size the network cannot take.
    """

    def report(fraction: float, stage: str) -> None:
        if progress is not None:
            progress(fraction, stage)

    check_completion(completion)
    t0 = time.perf_counter()
    timings: dict[str, float] = {}
    if isinstance(photo, PersonAnalysis):
        analysis = photo
    else:
        if size < 64:
            raise InputError(f"size must be at least 64 px, got {size}")
        report(0.0, "checking the photo")
        loaded = photo if isinstance(photo, LoadedImage) else load_image(photo, name=name)
        report(0.05, "pose, fit and render: finding the person and fitting the body model")
        analysis = analyse_person(loaded, size=size, name=name, fit_config=fit_config)
        timings.update(analysis.timings)
    report(0.8, "completing the texture")
    t = time.perf_counter()
    partial = fuse_textures([image_to_uv(a.image, a.correspondence, texture_size)
                             for a in (analysis, *more)])  # fmt: skip
    timings["lift"] = time.perf_counter() - t
    t = time.perf_counter()
    texture = run_completion(partial, completion, checkpoint)
    timings["completion"] = time.perf_counter() - t
    atlas = None
    if atlas_tile is not None:
        report(0.9, "building the DensePose atlas")
        t = time.perf_counter()
        atlas = atlas_image(texture, atlas_tile)
        timings["atlas"] = time.perf_counter() - t
    timings["total"] = time.perf_counter() - t0
    report(1.0, "done")
    return TextureExtraction(texture, partial, atlas, analysis, completion, timings,
                             [n for a in (analysis, *more) for n in a.notices])  # fmt: skip


def read_texture(source: Any, size: int = 256) -> tuple[np.ndarray, str]:
    """An (edited) texture image as a continuous UV texture.

    Args:
        source: the image (path, bytes, PIL image or uint8 array, see
            :func:`~reroute.io.images.load_image`): a square continuous UV
            texture (any side; resized to ``size``) or a DensePose atlas of
            6 x 4 square tiles (width 1.5 x height, within a few pixels), e.g.
            :attr:`TextureExtraction.atlas` after editing.
        size: side T of the returned texture.
    Returns:
        ``(pixels, kind)``: (T, T, 3) float32 RGB in [0, 1] in the continuous
        UV layout, and ``"continuous UV texture"`` or ``"DensePose atlas"``.
    Raises:
        InputError: not a readable image, or neither square nor 6 x 4 tiles.
    """
    tex = load_image(source, name="texture").pixels.astype(np.float32) / 255.0
    h, w = tex.shape[:2]
    if h == w:
        if h != size:
            tex = cv2.resize(tex, (size, size), interpolation=cv2.INTER_AREA)
        return tex, "continuous UV texture"
    if abs(w * 4 - h * 6) <= 6:  # 6 x 4 tiles
        if (w, h) != (6 * (h // 4), 4 * (h // 4)):
            h4 = h // 4
            tex = cv2.resize(tex, (6 * h4, 4 * h4), interpolation=cv2.INTER_AREA)
        return atlas_to_continuous(tex, size), "DensePose atlas"
    raise InputError(
        f"the texture is {w}x{h} px; upload a square continuous UV texture or a DensePose "
        "atlas of 6 x 4 tiles (width 1.5 x height), e.g. one downloaded from this tab"
    )


def retexture(analysis: PersonAnalysis, texture: UVTexture | np.ndarray,
              photo: np.ndarray | LoadedImage | None = None) -> np.ndarray:  # fmt: skip
    """The analysed person re-rendered with ``texture``, blended over the photo.

    Args:
        analysis: the photo's :class:`~reroute.correspondence.analyse.PersonAnalysis`.
        texture: a :class:`~reroute.uv.texture.UVTexture` or (T, T, 3) float RGB
            in [0, 1] in the continuous UV layout (e.g. from :func:`read_texture`).
        photo: the photo at full resolution, (H, W, 3) uint8 RGB or a
            :class:`~reroute.io.images.LoadedImage`; default ``analysis.image``
            (the working size).
    Returns:
        (H, W, 3) uint8 RGB: the person's pixels (soft-edged person mask) drawn
        from the texture, every other pixel the photo's
        (:func:`~reroute.pipelines.compose.texture_over_photo`).
    """
    if photo is None:
        pixels = analysis.image
    else:
        pixels = photo.pixels if isinstance(photo, LoadedImage) else photo
    return texture_over_photo(texture, analysis.correspondence, pixels)
