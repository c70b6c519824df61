"""Dense correspondences between image pixels and the body surface.

* :mod:`reroute.correspondence.maps`:
  :class:`~reroute.correspondence.maps.Correspondence` (IUV, continuous UV,
  BodyMap colour code, mask per pixel) and its visualisation;
* :mod:`reroute.correspondence.fitted`: the "fit" predictor, the fitted
  template's correspondences extended to the person mask; the learned BodyMap
  predictor plugs in beside it and returns the same dataclass;
* :mod:`reroute.correspondence.analyse`: one photo -> person, fitted body and
  correspondences (:class:`~reroute.correspondence.analyse.PersonAnalysis`);
* :mod:`reroute.correspondence.cache`: those analyses cached by pixel content
  (:class:`~reroute.correspondence.cache.AnalysisCache`, in memory and optionally on disk).
"""

from reroute.correspondence.analyse import PersonAnalysis, analyse_person
from reroute.correspondence.cache import AnalysisCache
from reroute.correspondence.fitted import render_correspondence
from reroute.correspondence.maps import Correspondence, iuv_to_rgb

__all__ = [
    "Correspondence",
    "iuv_to_rgb",
    "render_correspondence",
    "PersonAnalysis",
    "analyse_person",
    "AnalysisCache",
]
