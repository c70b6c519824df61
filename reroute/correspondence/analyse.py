"""Analyse one photo: detect its person, fit anny and render the correspondences.

:func:`analyse_person` is the front end every pipeline shares: load and check
the photo (:mod:`reroute.io.images`), find its one person with BlazePose
(:mod:`reroute.body.detect`), resize to the working size, fit anny
(:mod:`reroute.body.fit`) and render the fitted body's correspondences
(:mod:`reroute.correspondence.fitted`). The result is a
:class:`PersonAnalysis`.
"""

from __future__ import annotations

import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import cv2
import numpy as np

from reroute.body.detect import PersonObservation, detect_person
from reroute.body.fit import FitConfig, fit_bodies
from reroute.body.posed import FittedBody
from reroute.correspondence.fitted import render_correspondence
from reroute.correspondence.maps import Correspondence
from reroute.io.images import LoadedImage, load_image

__all__ = ["PersonAnalysis", "analyse_people", "analyse_person"]


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
    return analyse_people([photo], size=size, names=[name], fit_config=fit_config)[0]


def analyse_people(photos: list, *, size: int | None = 256, names: list[str] | None = None,
                   fit_config: FitConfig | None = None) -> list[PersonAnalysis]:  # fmt: skip
    """:func:`analyse_person` for several photos, their bodies fitted as one batch.

    Each photo is loaded and its person detected in turn (so the first bad
    photo is the one reported), then every body is fitted at once
    (:func:`~reroute.body.fit.fit_bodies`: one optimiser step serves all), then
    the correspondence maps are rendered (one thread per photo). Each analysis's
    ``timings["fit"]`` and ``timings["render"]`` are its share of the batch's time.

    Args:
        photos: paths, bytes, PIL images, (H, W, 3) uint8 arrays or
            :class:`~reroute.io.images.LoadedImage`.
        size, fit_config: as for :func:`analyse_person`.
        names: how to call each photo in messages (default ``"photo 1"``, ...).
    Returns:
        one :class:`PersonAnalysis` per photo, in order.
    Raises:
        InputError: not an image, too small, no person, several persons, failed
            fit (the message names the photo).
        ValueError: ``names`` has another length than ``photos``.
    """
    names = list(names) if names is not None else [f"photo {i + 1}" for i in range(len(photos))]
    if len(names) != len(photos):
        raise ValueError(f"names: expected {len(photos)}, got {len(names)}")
    loaded = [p if isinstance(p, LoadedImage) else load_image(p, name=n)
              for p, n in zip(photos, names, strict=True)]  # fmt: skip
    images, observations, timings = [], [], []
    for photo, name in zip(loaded, names, strict=True):
        img = photo.pixels
        h0, w0 = img.shape[:2]
        t = time.perf_counter()
        obs = detect_person(img, name=name)
        timings.append({"pose": time.perf_counter() - t})
        if size is not None and max(h0, w0) != size:
            h, w = _working_size(h0, w0, size)
            interp = cv2.INTER_AREA if max(h0, w0) > size else cv2.INTER_CUBIC
            img = cv2.resize(img, (w, h), interpolation=interp)
            obs = obs.scaled(h, w)
        images.append(img)
        observations.append(obs)
    t = time.perf_counter()
    bodies = fit_bodies(observations, fit_config, names=names)  # FitError names the photo
    fit_share = (time.perf_counter() - t) / len(bodies)
    for tm in timings:
        tm["fit"] = fit_share
    t = time.perf_counter()
    if len(bodies) == 1:
        corrs = [render_correspondence(bodies[0], observations[0].mask > 0.5)]
    else:  # NumPy, SciPy and the ray cast release the GIL: one thread per photo
        with ThreadPoolExecutor(max_workers=min(len(bodies), os.cpu_count() or 1)) as pool:
            corrs = list(pool.map(lambda bo: render_correspondence(bo[0], bo[1].mask > 0.5),
                                  zip(bodies, observations, strict=True)))  # fmt: skip
    share = (time.perf_counter() - t) / len(bodies)
    out = []
    for photo, name, img, obs, body, corr, tm in zip(loaded, names, images, observations, bodies,
                                                     corrs, timings, strict=True):  # fmt: skip
        tm["render"] = share
        notices = [f"{name}: {photo.notice}"] if photo.notice else []
        out.append(PersonAnalysis(img, photo.pixels.shape[:2], obs, body, corr, notices, tm))
    return out
