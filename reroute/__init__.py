"""reroute: re-render people from photos through dense body-surface correspondences.

Stages, one module each: :mod:`reroute.body` (anny template and its coordinate
systems), :mod:`reroute.frontend` (mediapipe landmarks and mask),
:mod:`reroute.fit` (anny fit), :mod:`reroute.render` (rasteriser),
:mod:`reroute.correspondence` (IUV / UV / colour-code maps), :mod:`reroute.warp`
(image <-> UV <-> atlas), :mod:`reroute.completion` (classical texture fill),
:mod:`reroute.pipeline` (pose transfer), :mod:`reroute.cli` (command line).
"""

__version__ = "0.1.0"
