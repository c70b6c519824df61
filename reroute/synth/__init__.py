"""Synthetic people with full ground truth, for training and testing.

* :mod:`reroute.synth.engine`: :class:`~reroute.synth.engine.SyntheticEngine`
  (anny people with sampled phenotypes, outfits, poses, cameras and
  backgrounds, rendered with every ground-truth map) and
  :func:`~reroute.synth.engine.render_synthetic_person`, a single posed
  person with known pose used as test fixture and app example;
* :mod:`reroute.synth.appearance`: procedural outfits and skin, backgrounds;
* :mod:`reroute.synth.pose`: pose sampling within joint limits, walk cycles,
  example poses;
* :mod:`reroute.synth.video`: synthetic walking videos with an orbiting camera;
* :mod:`reroute.synth.writer`: writing and reading a synthetic set on disk in
  DeepFashion's layout.
"""

from reroute.synth.engine import (
    SynthConfig,
    SyntheticEngine,
    SyntheticRender,
    SyntheticSample,
    render_synthetic_person,
)
from reroute.synth.pose import EXAMPLE_POSES
from reroute.synth.video import SyntheticVideo, VideoConfig
from reroute.synth.writer import read_synthetic_set, write_synthetic_set

__all__ = [
    "SynthConfig",
    "SyntheticEngine",
    "SyntheticSample",
    "SyntheticRender",
    "render_synthetic_person",
    "EXAMPLE_POSES",
    "SyntheticVideo",
    "VideoConfig",
    "write_synthetic_set",
    "read_synthetic_set",
]
