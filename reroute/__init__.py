"""reroute: re-render people from photos through dense body-surface correspondences.

Pose transfer, virtual try-on and novel-view video from one photo, after
BodyMap (Ianina et al., CVPR 2022) and Dense Pose Transfer (Neverova et al.,
ECCV 2018). The packages follow the data flow; lower ones never import higher
ones (the README's "Layout" section states the rule, ``tests/test_layout.py``
checks it):

* :mod:`reroute.io`: images, DensePose IUV files, the atomic writer, video;
* :mod:`reroute.body`: anny template and coordinate systems, posed body, ray
  casting, mediapipe detection, the fit;
* :mod:`reroute.correspondence`: correspondence maps, the fitted predictor,
  photo analysis;
* :mod:`reroute.uv`: UV textures, image <-> UV warps, the DensePose atlas;
* :mod:`reroute.synth`: synthetic people with full ground truth;
* :mod:`reroute.metrics`: image, correspondence and temporal metrics;
* :mod:`reroute.training`: the shared GAN trainer, checkpoints, VGG features;
* :mod:`reroute.pipelines`: pose transfer, try-on, novel view, compositing and
  the method registry;
* :mod:`reroute.evaluation`: batch evaluation (DeepFashion, MVC, folders);
* :mod:`reroute.cli` (``python -m reroute``) and :mod:`reroute.errors`.

Trained networks live beside this package: :mod:`texture` (texture
completion) and :mod:`renderer` (neural re-renderer); the Gradio UI is
:mod:`app`.

Everything below is importable from ``reroute`` directly, e.g.
``from reroute import PoseTransferPipeline, InputError``.
"""

from __future__ import annotations

import importlib

from reroute.errors import (
    FitError,
    ImageTooSmallError,
    InputError,
    NoPersonError,
    NotAnImageError,
    SeveralPersonsError,
)

__version__ = "0.1.0"

# Public name -> module. Loaded on first use (PEP 562) so that ``import reroute``
# and the CLI's argument and input checks do not pay for torch, anny and mediapipe.
_LAZY = {
    # pipelines
    "PoseTransferPipeline": "reroute.pipelines.pose_transfer",
    "TransferResult": "reroute.pipelines.pose_transfer",
    "TryOnPipeline": "reroute.pipelines.tryon",
    "TryOnResult": "reroute.pipelines.tryon",
    "try_on": "reroute.pipelines.tryon",
    "NovelViewConfig": "reroute.pipelines.novel_view",
    "NovelViewVideo": "reroute.pipelines.novel_view",
    "render_novel_views": "reroute.pipelines.novel_view",
    "analyse_person": "reroute.correspondence.analyse",
    "AnalysisCache": "reroute.correspondence.cache",
    # the dataclasses passed between stages
    "LoadedImage": "reroute.io.images",
    "PersonObservation": "reroute.body.detect",
    "FittedBody": "reroute.body.posed",
    "Correspondence": "reroute.correspondence.maps",
    "PersonAnalysis": "reroute.correspondence.analyse",
    "UVTexture": "reroute.uv.texture",
    # loading and saving
    "load_image": "reroute.io.images",
    "save_image_atomic": "reroute.io.images",
    "read_iuv": "reroute.io.iuv",
    "write_iuv": "reroute.io.iuv",
}

__all__ = [
    "InputError",
    "NotAnImageError",
    "ImageTooSmallError",
    "NoPersonError",
    "SeveralPersonsError",
    "FitError",
    *_LAZY,
]


def __getattr__(name: str):
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'reroute' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
