"""The body: anny's template and its coordinate systems, posing, ray casting, detection, fitting.

Data flow: photo --:mod:`~reroute.body.detect` (mediapipe BlazePose: 33
landmarks + person mask)--> :class:`~reroute.body.detect.PersonObservation`
--:mod:`~reroute.body.fit` (SMPLify-style gradient descent)-->
:class:`~reroute.body.posed.FittedBody` --:mod:`~reroute.body.raster`
(warp-lang ray casting)--> per-pixel face id and barycentrics.

* :mod:`reroute.body.template`: anny and every coordinate system derived
  from it (continuous UV, DensePose IUV parts and charts, BodyMap colour code);
* :mod:`reroute.body.posed`: :class:`~reroute.body.posed.FittedBody` and posing helpers;
* :mod:`reroute.body.raster`: :class:`~reroute.body.raster.Camera` and rasterisation;
* :mod:`reroute.body.detect`: mediapipe landmarks and person mask;
* :mod:`reroute.body.fit`: the fit of anny's pose and placement to photos (batched);
* :mod:`reroute.body.fit_batch`: :class:`~reroute.body.fit_batch.FitBatcher`, which
  merges concurrent fits (several app requests at once) into one batch.
"""

from reroute.body.detect import PersonObservation, detect_person
from reroute.body.fit import FitConfig, fit_bodies, fit_body
from reroute.body.fit_batch import FitBatcher
from reroute.body.posed import FittedBody
from reroute.body.raster import Camera, rasterize
from reroute.body.template import PART_NAMES, BodyTemplate, get_template, load_anny

__all__ = [
    "BodyTemplate",
    "PART_NAMES",
    "get_template",
    "load_anny",
    "FittedBody",
    "Camera",
    "rasterize",
    "PersonObservation",
    "detect_person",
    "FitConfig",
    "fit_body",
    "fit_bodies",
    "FitBatcher",
]
