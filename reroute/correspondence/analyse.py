"""Analyse one photo: detect its person, fit anny and render the correspondences.

:func:`analyse_person` is the front end every pipeline shares: load and check
the photo (:mod:`reroute.io.images`), find its one person with BlazePose
(:mod:`reroute.body.detect`), resize to the working size, fit anny
(:mod:`reroute.body.fit`) and render the fitted body's correspondences
(:mod:`reroute.correspondence.fitted`). The result is a
:class:`PersonAnalysis`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import cv2
import numpy as np

from reroute.body.detect import PersonObservation, detect_person
from reroute.body.fit import FitConfig, fit_body
from reroute.body.posed import FittedBody
from reroute.correspondence.fitted import render_correspondence
from reroute.correspondence.maps import Correspondence
from reroute.errors import FitError
from reroute.io.images import LoadedImage, load_image

__all__ = ["PersonAnalysis", "analyse_person"]


@dataclass
class PersonAnalysis:
    """One photo, analysed at the working size.

    Attributes:
        image: (h, w, 3) uint8 RGB at the working size.
        original_size: (H, W) of the photo as loaded (after any downscale notice).
        observation: mediapipe's :class:`~reroute.body.detect.PersonObservation` (working size).
        body: the fitted :class:`~reroute.body.posed.FittedBody` (working size camera).
        correspondence: :class:`~reroute.correspondence.maps.Correspondence` (h, w).
        notices: messages for the user, e.g. that the photo was downscaled.
        timings: seconds per stage (``pose``, ``fit``, ``render``); served from an
            :class:`~reroute.correspondence.cache.AnalysisCache`, those are 0 and
            ``cache`` is the seconds spent finding it.
        cached: whether it was served from an
            :class:`~reroute.correspondence.cache.AnalysisCache` (False when analysed now).
    """

    image: np.ndarray
    original_size: tuple[int, int]
    observation: PersonObservation
    body: FittedBody
    correspondence: Correspondence
    notices: list[str] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    cached: bool = False


def _working_size(h: int, w: int, size: int) -> tuple[int, int]:
    s = size / max(h, w)
    return max(1, round(h * s)), max(1, round(w * s))


def analyse_person(photo, *, size: int | None = 256, name: str = "photo",
                   fit_config: FitConfig | None = None) -> PersonAnalysis:  # fmt: skip
    """Load a photo, detect its person, fit anny and render the correspondences.

    Args:
        photo: a path, bytes, PIL image or (H, W, 3) uint8 array (see
            :func:`reroute.io.images.load_image`).
        size: working size (longer side, pixels); ``None`` keeps the photo's size.
        name: how to call the photo in messages.
        fit_config: the fit's schedule; defaults to :class:`~reroute.body.fit.FitConfig`.
    Returns:
        :class:`PersonAnalysis`.
    Raises:
        InputError: not an image, too small, no person, several persons, failed fit.
    """
    loaded: LoadedImage = photo if isinstance(photo, LoadedImage) else load_image(photo, name=name)
    img = loaded.pixels
    notices = [f"{name}: {loaded.notice}"] if loaded.notice else []
    h0, w0 = img.shape[:2]
    timings: dict[str, float] = {}
    t = time.perf_counter()
    obs = detect_person(img, name=name)
    timings["pose"] = time.perf_counter() - t
    if size is not None and max(h0, w0) != size:
        h, w = _working_size(h0, w0, size)
        interp = cv2.INTER_AREA if max(h0, w0) > size else cv2.INTER_CUBIC
        img = cv2.resize(img, (w, h), interpolation=interp)
        obs = obs.scaled(h, w)
    t = time.perf_counter()
    try:
        body = fit_body(obs, fit_config)
    except FitError as e:  # say which photo failed
        raise FitError(f"{name}: {e}") from None
    timings["fit"] = time.perf_counter() - t
    t = time.perf_counter()
    corr = render_correspondence(body, obs.mask > 0.5)
    timings["render"] = time.perf_counter() - t
    return PersonAnalysis(img, (h0, w0), obs, body, corr, notices, timings)
