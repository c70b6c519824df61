"""Inference pipelines: what a user runs.

* :mod:`reroute.pipelines.pose_transfer`: the source person in the target's
  pose (:class:`~reroute.pipelines.pose_transfer.PoseTransferPipeline`);
* :mod:`reroute.pipelines.dpt`: pose transfer by Dense Pose Transfer
  (:class:`~reroute.pipelines.dpt.DensePoseTransferPipeline`);
* :mod:`reroute.pipelines.tryon`: the wearer in the donor's clothes
  (:class:`~reroute.pipelines.tryon.TryOnPipeline`);
* :mod:`reroute.pipelines.novel_view`: a camera turning around the person
  (:func:`~reroute.pipelines.novel_view.render_novel_views`);
* :mod:`reroute.pipelines.retexture`: a photo's completed UV texture and the
  person re-rendered with an edited one
  (:func:`~reroute.pipelines.retexture.extract_texture`,
  :func:`~reroute.pipelines.retexture.retexture`);
* :mod:`reroute.pipelines.compose`: background inpainting and compositing;
* :mod:`reroute.pipelines.completion`: texture completion by registry name;
* :mod:`reroute.pipelines.rerendering`: neural re-rendering by registry name;
* :mod:`reroute.pipelines.views`: viewable pictures of intermediate results;
* :mod:`reroute.pipelines.warmup`: load the shared models once
  (:func:`~reroute.pipelines.warmup.warm_up`);
* :mod:`reroute.pipelines.examples`: synthetic example photos for demos;
* :mod:`reroute.pipelines.registry`: every method name, once.

Only this package and :mod:`reroute.evaluation` import the trained packages
(:mod:`texture`, :mod:`renderer`).
"""

from reroute.pipelines.completion import (
    DEFAULT_COMPLETION,
    check_completion,
    load_completion,
    run_completion,
)
from reroute.pipelines.dpt import DensePoseTransferPipeline, DPTResult
from reroute.pipelines.novel_view import NovelViewConfig, NovelViewVideo, render_novel_views
from reroute.pipelines.pose_transfer import PoseTransferPipeline, TransferResult
from reroute.pipelines.registry import METHODS, TEXTURE_COMPLETIONS, TRYON_REGIONS
from reroute.pipelines.retexture import TextureExtraction, extract_texture, read_texture, retexture
from reroute.pipelines.tryon import TryOnPipeline, TryOnResult, try_on
from reroute.pipelines.warmup import warm_up

__all__ = [
    "PoseTransferPipeline",
    "TransferResult",
    "DensePoseTransferPipeline",
    "DPTResult",
    "TryOnPipeline",
    "TryOnResult",
    "try_on",
    "NovelViewConfig",
    "NovelViewVideo",
    "render_novel_views",
    "METHODS",
    "TEXTURE_COMPLETIONS",
    "TRYON_REGIONS",
    "TextureExtraction",
    "extract_texture",
    "read_texture",
    "retexture",
    "DEFAULT_COMPLETION",
    "check_completion",
    "load_completion",
    "run_completion",
    "warm_up",
]
