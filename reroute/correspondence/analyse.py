"""Analyse one photo: detect its person, fit anny and render the correspondences.

:func:`analyse_person` is the front end every pipeline shares: load and check
the photo (:mod:`reroute.io.images`), find its one person with BlazePose
(:mod:`reroute.body.detect`), resize to the working size, fit anny
(:mod:`reroute.body.fit`) and render the fitted body's correspondences
(:mod:`reroute.correspondence.fitted`). The result is a
:class:`PersonAnalysis`.

Correspondence methods (:data:`CORRESPONDENCES`, chosen by ``correspondence=``):
``fit`` keeps the fitted body's rendered correspondences; ``bodymap`` refines them
with the BodyMap network (:mod:`reroute.correspondence.bodymap`, the fit's map as
its initialisation, :func:`~reroute.correspondence.bodymap.predict.refine_correspondence`),
which needs a checkpoint (default ``checkpoints/bodymap_cpu256.pt``,
:func:`load_correspondence_model`).
"""

from __future__ import annotations

import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import cv2
import numpy as np

from reroute.body.detect import POSE_GRAPHS, PersonObservation, detect_person
from reroute.body.fit import FitConfig, RefitConfig, fit_bodies, refit_body
from reroute.body.posed import FittedBody
from reroute.correspondence.bodymap.network import BodyMapNet
from reroute.correspondence.bodymap.predict import (
    dense_targets,
    load_default_bodymap,
    refine_correspondence,
)
from reroute.correspondence.fitted import render_correspondence
from reroute.correspondence.maps import Correspondence
from reroute.errors import InputError
from reroute.io.images import LoadedImage, load_image

__all__ = [
    "CORRESPONDENCES",
    "DEFAULT_CORRESPONDENCE",
    "LEARNED_CORRESPONDENCES",
    "PersonAnalysis",
    "analyse_people",
    "analyse_person",
    "check_correspondence",
    "load_correspondence_model",
]

#: correspondence method name -> one line (the CLI's ``--correspondence`` choices)
CORRESPONDENCES: dict[str, str] = {
    "fit": "the fitted anny body's rendered correspondences, extended to the person mask",
    "bodymap": "the fit's correspondences refined by the BodyMap network "
    "(Ianina et al. CVPR 2022; checkpoints/bodymap_cpu256.pt)",
}
#: the correspondence method used when none is asked for
DEFAULT_CORRESPONDENCE = "fit"
#: methods that run a trained network, so need a loadable checkpoint
LEARNED_CORRESPONDENCES: tuple[str, ...] = ("bodymap",)


def check_correspondence(method: object) -> str:
    """``method`` if it names a correspondence method of :data:`CORRESPONDENCES`.

    Raises:
        InputError: unknown name (one sentence naming the choices).
    """
    if method not in tuple(CORRESPONDENCES):
        raise InputError(f"unknown correspondence method {method!r}; "
                         f"choose {' or '.join(CORRESPONDENCES)}")  # fmt: skip
    return str(method)


def load_correspondence_model(method: str,
                              checkpoint: str | os.PathLike | None = None) -> BodyMapNet | None:  # fmt: skip
    """Check ``method`` and, for a learned one, load its network now (cached per path).

    Args:
        method: a name of :data:`CORRESPONDENCES`.
        checkpoint: the BodyMap checkpoint (``.pt``, kind ``"bodymap"``); ``None`` for
            :data:`~reroute.correspondence.bodymap.predict.DEFAULT_CHECKPOINT`. Ignored for ``fit``.
    Returns:
        The :class:`~reroute.correspondence.bodymap.network.BodyMapNet` in eval mode (CPU),
        shared by every caller with the same path; ``None`` for ``fit``.
    Raises:
        InputError: unknown method, or the checkpoint is missing or not a ``bodymap``
            one (one line naming the file).
    """
    check_correspondence(method)
    if method not in LEARNED_CORRESPONDENCES:
        return None
    return load_default_bodymap(str(checkpoint) if checkpoint else None)


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
        timings: seconds per stage (``pose``, ``fit``, ``render``, and ``bodymap`` for
            BodyMap correspondences); served from an
            :class:`~reroute.correspondence.cache.AnalysisCache`, those are 0 and
            ``cache`` is the seconds spent finding it.
        cached: whether it was served from an
            :class:`~reroute.correspondence.cache.AnalysisCache` (False when analysed now).
        correspondence_method: how ``correspondence`` was made, a name of
            :data:`CORRESPONDENCES` (``bodymap``: refined by the network; its
            ``mask`` and ``body_mask`` are then the network's predicted foreground,
            and ``timings["bodymap"]`` its seconds).
    """

    image: np.ndarray
    original_size: tuple[int, int]
    observation: PersonObservation
    body: FittedBody
    correspondence: Correspondence
    notices: list[str] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    cached: bool = False
    correspondence_method: str = DEFAULT_CORRESPONDENCE


def _working_size(h: int, w: int, size: int) -> tuple[int, int]:
    s = size / max(h, w)
    return max(1, round(h * s)), max(1, round(w * s))


def analyse_person(photo, *, size: int | None = 256, name: str = "photo",
                   fit_config: FitConfig | None = None, correspondence: str = DEFAULT_CORRESPONDENCE,
                   bodymap_checkpoint: str | os.PathLike | None = None,
                   refit: RefitConfig | None = None) -> PersonAnalysis:  # fmt: skip
    """Load a photo, detect its person, fit anny and render the correspondences.

    Args:
        photo: a path, bytes, PIL image or (H, W, 3) uint8 array (see
            :func:`reroute.io.images.load_image`).
        size: working size (longer side, pixels); ``None`` keeps the photo's size.
        name: how to call the photo in messages.
        fit_config: the fit's schedule; defaults to :class:`~reroute.body.fit.FitConfig`.
        correspondence: ``fit`` (the rendered fit) or ``bodymap`` (the fit refined by
            the BodyMap network at the working size; see :data:`CORRESPONDENCES`).
        bodymap_checkpoint: the BodyMap checkpoint for ``bodymap`` (``None``: the
            committed ``checkpoints/bodymap_cpu256.pt``).
        refit: refit the body to the refined correspondences (see :func:`analyse_people`).
    Returns:
        :class:`PersonAnalysis`.
    Raises:
        InputError: unknown ``correspondence``, a missing or foreign BodyMap checkpoint
            (checked before the photo is read), not an image, too small, no person,
            several persons, failed fit.
    """
    return analyse_people([photo], size=size, names=[name], fit_config=fit_config,
                          correspondence=correspondence,
                          bodymap_checkpoint=bodymap_checkpoint, refit=refit)[0]  # fmt: skip


def _refine(model: BodyMapNet, images: list[np.ndarray], corrs: list[Correspondence],
            timings: list[dict[str, float]], observations: list[PersonObservation],
            bodies: list[FittedBody], refit: RefitConfig | None,
            fit_config: FitConfig | None) -> tuple[list[Correspondence], list[FittedBody]]:  # fmt: skip
    """Each photo's fitted correspondences refined by the BodyMap network (``timings["bodymap"]``)
    and, with ``refit``, its body refitted to them (``timings["refit"]``)."""
    out, refitted = [], []
    for img, corr, tm, obs, body in zip(images, corrs, timings, observations, bodies, strict=True):
        t = time.perf_counter()
        decoded = refine_correspondence(model, img, corr)
        out.append(decoded.correspondence)
        tm["bodymap"] = time.perf_counter() - t
        if refit is not None:
            t = time.perf_counter()
            body = refit_body(obs, body, dense_targets(decoded), refit, fit_config)
            tm["refit"] = time.perf_counter() - t
        refitted.append(body)
    return out, refitted


def _detect_one(photo: LoadedImage, name: str, size: int | None) -> tuple[np.ndarray, PersonObservation]:
    """The photo's person (:func:`~reroute.body.detect.detect_person`) and the photo
    resized to the working size, the observation with it."""
    img = photo.pixels
    h0, w0 = img.shape[:2]
    obs = detect_person(img, name=name)
    if size is not None and max(h0, w0) != size:
        h, w = _working_size(h0, w0, size)
        interp = cv2.INTER_AREA if max(h0, w0) > size else cv2.INTER_CUBIC
        img = cv2.resize(img, (w, h), interpolation=interp)
        obs = obs.scaled(h, w)
    return img, obs


def _detect_people(loaded: list[LoadedImage], names: list[str],
                   size: int | None) -> list[tuple[np.ndarray, PersonObservation]]:  # fmt: skip
    """:func:`_detect_one` for every photo, up to :data:`~reroute.body.detect.POSE_GRAPHS`
    at once (mediapipe runs each graph on one core and releases the GIL). Raises the
    error of the first photo, in order, that has one."""
    if len(loaded) <= 1:
        return [_detect_one(p, n, size) for p, n in zip(loaded, names, strict=True)]
    with ThreadPoolExecutor(max_workers=min(len(loaded), POSE_GRAPHS)) as pool:
        return list(pool.map(_detect_one, loaded, names, [size] * len(loaded)))


def analyse_people(photos: list, *, size: int | None = 256, names: list[str] | None = None,
                   fit_config: FitConfig | None = None, correspondence: str = DEFAULT_CORRESPONDENCE,
                   bodymap_checkpoint: str | os.PathLike | None = None,
                   refit: RefitConfig | None = None) -> list[PersonAnalysis]:  # fmt: skip
    """:func:`analyse_person` for several photos, their bodies fitted as one batch.

    Each photo is loaded in turn and its person detected, up to
    :data:`~reroute.body.detect.POSE_GRAPHS` photos at once (the first bad photo,
    in order, is the one reported), then every body is fitted at once
    (:func:`~reroute.body.fit.fit_bodies`: one optimiser step serves all), then
    the correspondence maps are rendered (one thread per photo) and, with
    ``correspondence="bodymap"``, refined by the network one photo at a time. Each
    analysis's ``timings["pose"]``, ``timings["fit"]`` and ``timings["render"]`` are
    its share of the batch's time; ``timings["bodymap"]`` (bodymap only) its own network time.

    Args:
        photos: paths, bytes, PIL images, (H, W, 3) uint8 arrays or
            :class:`~reroute.io.images.LoadedImage`.
        size, fit_config, correspondence, bodymap_checkpoint: as for :func:`analyse_person`.
        names: how to call each photo in messages (default ``"photo 1"``, ...).
        refit: with a learned ``correspondence``, a :class:`~reroute.body.fit.RefitConfig`
            refits each body to its refined correspondences (Rong et al. ICCV 2019, eq. 4;
            :func:`~reroute.body.fit.refit_body` on
            :func:`~reroute.correspondence.bodymap.predict.dense_targets`), so ``body`` and
            everything drawn from it (novel views) follow the network; ``None`` (the
            default) keeps the fit's body. Ignored for ``fit``. With the committed
            network the refitted body's own rendered part IoU against DensePose R-CNN
            rises by 0.003 (UBC frames 222-369: 0.534 -> 0.537; Tai-Chi 200-323 every
            4th: 0.4695 -> 0.4726) for about 0.5 s a photo, so it is off by default.
    Returns:
        one :class:`PersonAnalysis` per photo, in order.
    Raises:
        InputError: unknown ``correspondence`` or an unloadable BodyMap checkpoint
            (before any photo is read), not an image, too small, no person, several
            persons, failed fit (the message names the photo).
        ValueError: ``names`` has another length than ``photos``.
    """
    model = load_correspondence_model(correspondence, bodymap_checkpoint)
    names = list(names) if names is not None else [f"photo {i + 1}" for i in range(len(photos))]
    if len(names) != len(photos):
        raise ValueError(f"names: expected {len(photos)}, got {len(names)}")
    loaded = [p if isinstance(p, LoadedImage) else load_image(p, name=n)
              for p, n in zip(photos, names, strict=True)]  # fmt: skip
    t = time.perf_counter()
    detected = _detect_people(loaded, names, size)  # InputError names the first bad photo
    images, observations = [img for img, _ in detected], [obs for _, obs in detected]
    timings = [{"pose": (time.perf_counter() - t) / len(detected)} for _ in detected]  # [] for []
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
    for tm in timings:
        tm["render"] = share
    if model is not None:
        corrs, bodies = _refine(model, images, corrs, timings, observations, bodies, refit, fit_config)
    out = []
    for photo, name, img, obs, body, corr, tm in zip(loaded, names, images, observations, bodies,
                                                     corrs, timings, strict=True):  # fmt: skip
        notices = [f"{name}: {photo.notice}"] if photo.notice else []
        out.append(PersonAnalysis(img, photo.pixels.shape[:2], obs, body, corr, notices, tm,
                                  correspondence_method=correspondence))  # fmt: skip
    return out
