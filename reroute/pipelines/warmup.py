"""Load every shared model and cached layout once, before the first request needs it.

A server (the app) calls :func:`warm_up` at start-up so that its first
request does not pay for anny's template, mediapipe's graphs, the warp
ray-casting kernel and the UV layouts of the texture size it works with, nor,
with ``REROUTE_COMPILE_FIT=1``, for compiling the body fit (:func:`compile_fit_step`).
"""

from __future__ import annotations

import time

import numpy as np

from reroute.body.detect import detect_person, load_detectors
from reroute.body.fit import FitConfig, fit_bodies
from reroute.body.raster import Camera, rasterize
from reroute.body.template import get_template
from reroute.pipelines.tryon import texel_parts
from reroute.pipelines.views import ATLAS_TILE, atlas_image
from reroute.synth.engine import render_synthetic_person
from reroute.uv.texture import uv_layout_mask
from texture.classical import mirror_texels

__all__ = ["compile_fit_step", "warm_up"]


def warm_up(texture_size: int = 256, atlas_tile: int = ATLAS_TILE,
            compile_fit: bool | None = None, fit_size: int = 256) -> float:  # fmt: skip
    """Load the shared models: anny + template, mediapipe, the warp kernel, UV layouts,
    and, with a compiled fit, compile it.

    Args:
        texture_size: side T of the continuous UV textures that will be used
            (its layout, mirror map and texel parts are built and cached).
        atlas_tile: tile side of the DensePose atlas pictures that will be made.
        compile_fit: compile the body fit's step (:attr:`~reroute.body.fit.FitConfig.compile`)
            for one photo and for batches (:func:`compile_fit_step`); ``None``: when the
            default :class:`~reroute.body.fit.FitConfig` compiles (``REROUTE_COMPILE_FIT=1``).
        fit_size: working size (longer side, px) the compiled fit is first run at.
    Returns:
        Seconds it took (the first call in a process: several; later ones: ~0).
    """
    t = time.perf_counter()
    get_template()
    load_detectors()  # mediapipe's graphs: BlazePose (one per core, up to 2), selfie, faces
    rasterize(np.array([[0, 0, 1.0], [1, 0, 1], [0, 1, 1]]), np.array([[0, 1, 2]]),
              Camera(8, 4, 4, 8, 8))  # fmt: skip
    uv_layout_mask(texture_size)
    mirror_texels(texture_size)
    texel_parts(texture_size)
    atlas_image(np.zeros((texture_size, texture_size, 3), np.float32), atlas_tile)
    if FitConfig().compile if compile_fit is None else compile_fit:
        compile_fit_step(fit_size)
    return time.perf_counter() - t


def compile_fit_step(size: int = 256) -> float:
    """Compile the body fit's step (``FitConfig(compile=True)``) by fitting a synthetic
    render alone and as a batch of two, so that later fits of any batch size at
    ``size`` px find it compiled (on the 2-core CPU 100-117 s the first time on a
    machine; 10 s in a new process once TorchInductor's on-disk cache holds the
    kernels, model loading included).

    Returns:
        Seconds it took.
    """
    t = time.perf_counter()
    obs = detect_person(render_synthetic_person(None, size=size, seed=0).image)
    cfg = FitConfig(compile=True)
    fit_bodies([obs], cfg, merge=False)
    fit_bodies([obs, obs], cfg, merge=False)
    return time.perf_counter() - t
