"""The app's callbacks: Gradio values in, pipeline results out, one status line.

Each ``*_callback`` takes the shared :class:`~app.services.Services` first and
the endpoint's parameters after it (see :mod:`app.ui` for the API); it checks
the inputs, runs a :mod:`reroute.pipelines` pipeline and formats what comes
back: images as uint8 arrays, files as paths, and a status that starts with
``ok:`` or ``error:``. Problems caused by the input come back as one sentence
(:func:`error_status`), never as an exception, so the app stays up.
"""

from __future__ import annotations

import inspect
import logging
import time
from collections.abc import Callable
from typing import Any

import cv2
import numpy as np

from app.services import RERENDERER, TEXTURE_SIZE, Deadline, Services, sentence
from reroute import LoadedImage, PersonAnalysis, TransferResult, load_image
from reroute.errors import FitError, InputError
from reroute.io.images import load_photos, save_image_atomic
from reroute.io.video import write_mp4
from reroute.pipelines.completion import DEFAULT_COMPLETION
from reroute.pipelines.dpt import DPTResult
from reroute.pipelines.novel_view import NovelViewConfig, frame_strip, render_novel_views
from reroute.pipelines.registry import APP_CORRESPONDENCES, APP_METHODS, TRYON_REGIONS
from reroute.pipelines.retexture import extract_texture, read_texture, retexture
from reroute.pipelines.tryon import TryOnPipeline
from reroute.pipelines.views import (
    atlas_image,
    find_landmarks,
    iuv_image,
    partial_texture_image,
)

__all__ = [
    "N_OUTPUTS",
    "DEFAULT_METHOD",
    "DEFAULT_CORRESPONDENCES",
    "DEFAULT_REGION",
    "intermediate_maps",
    "draw_landmarks",
    "draw_fit",
    "error_status",
    "run_transfer",
    "transfer_callback",
    "try_on_callback",
    "novel_view_callback",
    "texture_callback",
    "retexture_callback",
]

log = logging.getLogger(__name__)

N_OUTPUTS = 10
"""Outputs of :func:`run_transfer`: result, status, six intermediate maps, two fit overlays."""

DEFAULT_METHOD = next(iter(APP_METHODS))
"""The pose-transfer method offered first (``BodyMap re-rendering``)."""

DEFAULT_CORRESPONDENCES = next(iter(APP_CORRESPONDENCES))
"""The correspondences offered first (``fit``: the rendered template fit)."""

DEFAULT_REGION = TRYON_REGIONS[0]
"""The try-on region offered first (``top``)."""

_STAGES = (
    (0.0, "checking the photos"),
    (0.05, "pose, fit and render: finding the people and fitting the body model"),
    (0.9, "warping the texture"),
    (1.0, "done"),
)

_FIT_HINT = " (the landmarks found are drawn under 'Fitted bodies')."


def intermediate_maps(res: TransferResult | DPTResult) -> list[np.ndarray | None]:
    """The six viewable maps of a transfer, in the order of the app's outputs.

    Source IUV, target IUV (both :func:`reroute.pipelines.views.iuv_image`),
    partial texture, completed texture, DensePose atlas of the completed
    texture, and the warped image; each ``(h, w, 3)`` uint8 RGB. For a Dense Pose
    Transfer result (no continuous UV texture) the two texture maps are ``None``,
    the atlas is its warping stream's inpainted 24-part atlas and the warped image
    its warping stream's output.
    """
    if isinstance(res, DPTResult):
        return [iuv_image(res.source.correspondence), iuv_image(res.target.correspondence), None, None,
                res.atlas, res.warped]  # fmt: skip
    return [
        iuv_image(res.source.correspondence),
        iuv_image(res.target.correspondence),
        partial_texture_image(res.partial_texture),
        res.texture.to_uint8(),
        atlas_image(res.texture),
        res.warped,
    ]


# ------------------------------------------------------------------ drawings

#: BlazePose landmark pairs drawn as a skeleton.
_SKELETON = (
    (11, 12), (11, 13), (13, 15), (12, 14), (14, 16), (11, 23), (12, 24), (23, 24),
    (23, 25), (25, 27), (24, 26), (26, 28), (27, 31), (28, 32), (0, 11), (0, 12),
)  # fmt: skip


def draw_landmarks(image: np.ndarray, landmarks: np.ndarray, visibility: np.ndarray,
                   colour=(0, 200, 0)) -> np.ndarray:  # fmt: skip
    """BlazePose landmarks (33, 2) px drawn on a copy of ``image`` (H, W, 3) uint8.

    Landmarks with visibility <= 0.5 are drawn hollow; lines join the skeleton.
    """
    out = np.ascontiguousarray(image.copy())
    r = max(2, round(max(out.shape[:2]) / 160))
    pts = np.rint(landmarks).astype(int)
    for a, b in _SKELETON:
        if visibility[a] > 0.5 and visibility[b] > 0.5:
            cv2.line(out, tuple(pts[a]), tuple(pts[b]), colour, max(1, r // 2), cv2.LINE_AA)
    for p, v in zip(pts, visibility, strict=True):
        cv2.circle(out, tuple(p), r, colour, -1 if v > 0.5 else 1, cv2.LINE_AA)
    return out


def draw_fit(analysis: PersonAnalysis) -> np.ndarray:
    """The fitted body drawn over its photo (working size), (h, w, 3) uint8.

    The body's IUV colours are blended over the pixels the rendered body
    covers; BlazePose's landmarks are green, the fitted body's keypoints red.
    """
    img = analysis.image.astype(np.float32)
    corr = analysis.correspondence
    colours = iuv_image(corr).astype(np.float32)
    m = corr.body_mask[..., None]
    out = np.where(m, 0.45 * img + 0.55 * colours, img).astype(np.uint8)
    obs = analysis.observation
    out = draw_landmarks(out, obs.landmarks, obs.visibility)
    r = max(2, round(max(out.shape[:2]) / 200))
    for p in np.rint(analysis.body.keypoints_2d).astype(int):
        cv2.circle(out, tuple(p), r, (220, 0, 0), -1, cv2.LINE_AA)
    return out


def _landmarks_of(photo: Any, name: str) -> np.ndarray | None:
    """The photo with mediapipe's landmarks drawn, or ``None`` when none are found."""
    try:
        img = (
            photo.pixels if isinstance(photo, LoadedImage) else load_image(photo, name=name).pixels
        )
        obs = find_landmarks(img, name=name)
    except Exception:
        return None
    return draw_landmarks(img, obs.landmarks, obs.visibility)


# ------------------------------------------------------------------ status lines


def error_status(exc: BaseException) -> str:
    """The status line of a failed request: ``error:`` and one sentence.

    Input problems (:class:`~reroute.errors.InputError`, ``ValueError``) are
    shown as they are (server paths shortened to file names); anything else is
    logged with its traceback and reported as an internal error.
    """
    if isinstance(exc, (InputError, ValueError)):
        return f"error: {sentence(exc)}"
    log.exception("request failed", exc_info=exc)
    return (
        f"error: internal error ({type(exc).__name__}) while processing the request; "
        "the app is still running, and the log has the details."
    )


def _missing(**photos: Any) -> str | None:
    """``"error: upload ..."`` naming the photos that are ``None``, else ``None``."""
    names = [name.replace("_", " ") for name, value in photos.items() if value is None]
    if not names:
        return None
    if len(names) == 1:
        which = f"a {names[0]}"
    else:
        which = "a " + ", a ".join(names[:-1]) + f" and a {names[-1]}"
    return f"error: upload {which}."


def _stepper(progress: Callable[..., Any] | None, deadline: Deadline | None = None):
    """``step(fraction, stage)``: check the deadline, then report to Gradio's progress."""

    def step(fraction: float, stage: str) -> None:
        if deadline is not None:
            deadline.check(stage)
        if progress is not None:
            progress(fraction, desc=stage)

    return step


def _takes_progress(pipeline: Callable[..., Any]) -> bool:
    try:
        return "progress" in inspect.signature(pipeline).parameters
    except (TypeError, ValueError):
        return False


def _notices(status: str, notices: list[str]) -> str:
    return status + (" Note: " + "; ".join(notices) + "." if notices else "")


# ------------------------------------------------------------------ pose transfer


def run_transfer(pipeline: Callable[..., TransferResult], source: Any, target: Any,
                 progress: Callable[..., Any] | None = None, *,
                 deadline: Deadline | None = None, maps: bool = True) -> tuple:  # fmt: skip
    """The pose-transfer callback: run ``pipeline(source, target)`` and format its outputs.

    Args:
        pipeline: a :class:`~reroute.pipelines.pose_transfer.PoseTransferPipeline` (or anything
            called the same way). If its ``__call__`` takes a ``progress``
            keyword, it is passed a callable ``progress(fraction, stage)``.
        source, target: photo file paths or (H, W, 3) uint8 arrays, or ``None``.
        progress: a :class:`gradio.Progress` (or ``None``).
        deadline: checked between stages (see :class:`~app.services.AppLimits`).
        maps: draw the intermediate maps and fits; ``False`` returns ``None`` for
            them (under load the eight extra images cost more than half a second a
            request: drawing, encoding, sending).
    Returns:
        ``N_OUTPUTS`` values: the result image (``None`` on error), the status
        line (``"ok: ..."``, naming the pipeline's ``texture`` completion when
        it has that attribute and the neural re-renderer's time when the result
        was re-rendered, or ``"error: <one sentence>"``), the six maps of
        :func:`intermediate_maps` and the two fitted bodies drawn over their
        photos (:func:`draw_fit`), or eight ``None`` with ``maps=False``.
        On error all are ``None`` except the status,
        and, when the body fit failed, the two overlays show the landmarks
        mediapipe found.
    """
    empty = [None] * (N_OUTPUTS - 2)
    missing = _missing(source_photo=source, target_photo=target)
    if missing:
        return (None, missing, *empty)
    step = _stepper(progress, deadline)
    kwargs: dict[str, Any] = {}
    try:
        step(*_STAGES[0])
        if _takes_progress(pipeline):
            kwargs["progress"] = lambda fraction, stage: step(0.05 + 0.85 * fraction, stage)
        else:
            step(*_STAGES[1])
        res = pipeline(source, target, **kwargs)
        step(*_STAGES[2])
        drawn = (intermediate_maps(res) + [draw_fit(res.source), draw_fit(res.target)]
                 if maps else empty)  # fmt: skip
    except Exception as exc:  # noqa: BLE001 - every failure becomes one status sentence
        if isinstance(exc, InputError):
            log.info("transfer refused: %s", exc)
        status = error_status(exc)
        if isinstance(exc, FitError):
            empty[-2] = _landmarks_of(source, "source photo")
            empty[-1] = _landmarks_of(target, "target photo")
            status = status[:-1] + _FIT_HINT
        return (None, status, *empty)
    step(*_STAGES[3])
    return (res.image, _transfer_status(res, getattr(pipeline, "texture", None)), *drawn)


def _transfer_status(res: TransferResult, completion: Any) -> str:
    t = res.timings
    names = {"completion": f"{completion} completion"} if isinstance(completion, str) else {}
    names["rerender"] = "neural re-renderer"
    names["dpt"] = "Dense Pose Transfer network"
    names["bodymap"] = "BodyMap network"
    stages = ("pose", "fit", "render", "bodymap", "completion", "warp", "dpt")
    if getattr(res, "rerendered", False):
        stages += ("rerender",)
    parts = ", ".join(f"{names.get(k, k)} {t[k]:.1f} s" for k in stages if k in t)
    return _notices(f"ok: pose transferred in {t.get('total', 0.0):.1f} s ({parts}).", res.notices)


def _check_transfer_options(services: Services, method: Any, completion: Any, rerenderer: Any,
                            resolution: Any, seed: Any, correspondences: Any) -> tuple[int, str]:  # fmt: skip
    """The working size and correspondence method (a name of
    :data:`~reroute.pipelines.registry.CORRESPONDENCES`) of a valid ``/transfer`` request,
    else InputError (or ValueError)."""
    if method not in tuple(APP_METHODS):
        raise InputError(f"unknown method {method!r}; choose one of {', '.join(APP_METHODS)}")
    if services.networks.get(method):
        raise InputError(f"{method} is unavailable: {services.networks[method]}")
    services.check_completion(completion)
    if rerenderer and services.networks[RERENDERER]:
        raise InputError(f"the neural re-renderer is unavailable: {services.networks[RERENDERER]}")
    if correspondences not in tuple(APP_CORRESPONDENCES):
        raise InputError(f"unknown correspondences {correspondences!r}; "
                         f"choose {' or '.join(APP_CORRESPONDENCES)}")  # fmt: skip
    correspondence = services.check_correspondence(APP_CORRESPONDENCES[correspondences])
    size = services.check_resolution(resolution)
    int(seed)  # every path is deterministic so far; the seed is for sampling networks
    return size, correspondence


def _file_paths(files: Any) -> list:
    """Paths of a ``gr.File(file_count="multiple")`` value (``None``: no files)."""
    return [f if isinstance(f, str) else getattr(f, "name", f) for f in (files or [])]


def _more_photos(services: Services, files: Any) -> list:
    """The further photos of one person (:func:`_file_paths`), at most
    :attr:`~app.services.AppLimits.max_more_photos`.

    Raises:
        InputError: too many photos.
    """
    more = _file_paths(files)
    if len(more) > services.limits.max_more_photos:
        raise InputError(f"at most {services.limits.max_more_photos} more photos of the person, "
                         f"got {len(more)}")  # fmt: skip
    return more


def transfer_callback(services: Services, source, target, method=DEFAULT_METHOD,
                      resolution=256, completion=DEFAULT_COMPLETION, rerenderer=False, seed=0,
                      correspondences=DEFAULT_CORRESPONDENCES, maps=False, more_sources=None,
                      progress=None) -> tuple:  # fmt: skip
    """``/transfer``: options checked, then :func:`run_transfer` at the chosen resolution,
    with the neural re-renderer when ``rerenderer`` is true (and its checkpoint loaded);
    method ``Dense Pose Transfer`` runs its own pipeline (completion and re-renderer
    options do not apply to it). ``correspondences`` (a label of
    :data:`~reroute.pipelines.registry.APP_CORRESPONDENCES`): ``fit``, or ``BodyMap
    network`` to refine both photos' fitted correspondences with the BodyMap network
    (when its checkpoint loaded; the ``ok:`` status then gives its time). ``maps``
    (default off, as the app's "Compute the intermediate maps" box) returns the
    intermediate maps and fits too. ``more_sources`` (files, optional): further photos
    of the source person in the same clothes (back, side), lifted and fused with the
    source photo's texture (:func:`~reroute.uv.texture.fuse_textures`; BodyMap
    re-rendering only).

    Returns:
        :data:`N_OUTPUTS` values (see :func:`run_transfer`); an unknown or
        unavailable option gives ``None`` images and an ``error:`` status.
    """
    empty = (None,) * (N_OUTPUTS - 2)
    try:
        size, how = _check_transfer_options(services, method, completion, rerenderer, resolution,
                                            seed, correspondences)  # fmt: skip
        more = _more_photos(services, more_sources)
        if more and APP_METHODS[method] == "dpt":
            raise InputError("Dense Pose Transfer takes one source photo; "
                             "more photos of the person are fused by BodyMap re-rendering")  # fmt: skip
        if APP_METHODS[method] == "dpt":
            pipeline = services.dpt_pipeline_for(size, how)
        else:
            pipeline = services.pipeline_for(size, completion, bool(rerenderer), how)
    except (InputError, TypeError, ValueError) as exc:
        err = exc if isinstance(exc, InputError) else InputError(str(exc))
        return (None, error_status(err), *empty)
    if more and source is not None:
        source = [source, *more]
    return run_transfer(pipeline, source, target, progress, deadline=services.deadline(),
                        maps=bool(maps))  # fmt: skip


# ------------------------------------------------------------------ try-on


def try_on_callback(services: Services, donor, wearer, region=DEFAULT_REGION, resolution=256,
                    pose_photos=None, completion=DEFAULT_COMPLETION,
                    progress=None) -> tuple:  # fmt: skip
    """``/try_on``: the wearer in the donor's garments (region), plus extra poses.

    ``completion`` ("classical" or "network") completes both textures before mixing.

    Returns:
        (result, status, mixed texture, donor fit, wearer fit, region mask,
        gallery of ``(image, caption)``); ``None`` images on error.
    """
    empty = [None] * 5
    missing = _missing(garment_donor_photo=donor, wearer_photo=wearer)
    if missing:
        return (None, missing, *empty)
    step = _stepper(progress, services.deadline())
    poses = _file_paths(pose_photos)
    try:
        if region not in TRYON_REGIONS:
            raise InputError(f"unknown region {region!r}; choose one of {', '.join(TRYON_REGIONS)}")
        size = services.check_resolution(resolution)
        if len(poses) > services.limits.max_pose_photos:
            raise InputError(
                f"at most {services.limits.max_pose_photos} pose photos, got {len(poses)}"
            )
        services.check_completion(completion)
        pipe = TryOnPipeline(size=size, texture_size=TEXTURE_SIZE,
                             complete=lambda partial: services.complete(partial, completion))  # fmt: skip

        def analyse(img, name):
            return services.analyse(img, size=size, name=name)

        res = pipe(donor, wearer, region, extra_poses=poses, analyse=analyse, progress=step)
    except Exception as exc:  # noqa: BLE001
        status = error_status(exc)
        if isinstance(exc, FitError):
            empty[1] = _landmarks_of(donor, "garment donor photo")
            empty[2] = _landmarks_of(wearer, "wearer photo")
            status = status[:-1] + _FIT_HINT
        return (None, status, *empty)
    mask = (res.mask[..., None] * np.float32([255, 80, 0]) * 0.6
            + res.wearer.image * (1 - 0.6 * res.mask[..., None])).astype(np.uint8)  # fmt: skip
    gallery = [(img, f"pose photo {i + 1}") for i, img in enumerate(res.poses)]
    t = res.timings
    status = _notices(
        f"ok: {region} swapped in {t['total']:.1f} s (pose {t['pose']:.1f} s, fit {t['fit']:.1f} s, "
        f"{completion} completion {t['completion']:.1f} s); the wearer keeps face, hair and hands.",
        res.notices,
    )
    return (res.image, status, res.texture.to_uint8(), draw_fit(res.donor), draw_fit(res.wearer),
            mask, gallery or None)  # fmt: skip


# ------------------------------------------------------------------ novel view


def _novel_view_config(services: Services, frames, turn, elevation, fps, resolution,
                       completion) -> NovelViewConfig:  # fmt: skip
    """The checked video request, else InputError (or ValueError for non-numbers)."""
    lim = services.limits
    n = int(frames)
    if not 1 <= n <= lim.max_frames:
        raise InputError(f"frames must be between 1 and {lim.max_frames}, got {n}")
    if not 1 <= float(fps) <= 60:
        raise InputError(f"fps must be between 1 and 60, got {float(fps):g}")
    size = services.check_resolution(resolution)
    services.check_completion(completion)
    cfg = NovelViewConfig(frames=n, turn_deg=float(turn), elevation_deg=float(elevation),
                          size=size)  # fmt: skip
    try:
        cfg.check()
    except ValueError as exc:
        raise InputError(str(exc)) from None
    return cfg


def novel_view_callback(services: Services, photo, frames=24, turn=360.0, elevation=0.0,
                        fps=24, resolution=256, completion=DEFAULT_COMPLETION, more_photos=None,
                        progress=None) -> tuple:  # fmt: skip
    """``/novel_view``: an H.264 MP4 of the camera turning around the person, and a strip.

    ``completion`` ("classical" or "network") completes the photo's texture;
    ``more_photos`` (files, optional): further photos of the person in the same clothes
    (e.g. the back), fused into the texture; the first photo's body turns.

    Returns:
        (mp4 path, frame strip, status); ``None`` files on error.
    """
    missing = _missing(photo=photo)
    if missing:
        return (None, None, missing)
    step = _stepper(progress, services.deadline())
    t0 = time.perf_counter()
    try:
        cfg = _novel_view_config(services, frames, turn, elevation, fps, resolution, completion)
        more = _more_photos(services, more_photos)
        step(0.0, "checking the photo")
        imgs, names = load_photos([photo, *more], name="photo")
        step(0.02, "pose, fit and render: finding the person and fitting the body model")
        reused = services.is_cached(imgs[0], cfg.size)
        a, *others = [services.analyse(i, size=cfg.size, name=n)
                      for i, n in zip(imgs, names, strict=True)]  # fmt: skip
        step(0.35, "completing the texture")
        ext = extract_texture(a, completion=completion, texture_size=TEXTURE_SIZE,
                              checkpoint=services.checkpoint_for(completion), atlas_tile=None,
                              more=others)  # fmt: skip
        step(0.4, "re-rendering the views")
        video = render_novel_views(a.body, ext.texture, cfg,
                                   progress=lambda f, s: step(0.4 + 0.5 * f, s))  # fmt: skip
        step(0.9, "encoding the video (H.264)")
        out = services.new_dir() / "novel_view.mp4"
        write_mp4(video.frames, out, fps=float(fps))
        strip = frame_strip(video.frames, count=8, height=min(160, video.frames.shape[1]))
    except Exception as exc:  # noqa: BLE001
        return (None, None, error_status(exc))
    step(1.0, "done")
    h, w = video.frames.shape[1:3]
    tc = ext.timings["lift"] + ext.timings["completion"]
    status = (
        f"ok: {cfg.frames} frames, {w}x{h} px, {float(turn):g} degrees at {float(fps):g} fps in "
        f"{time.perf_counter() - t0:.1f} s ("
        + ("body fit reused" if reused else f"fit {a.timings.get('fit', 0.0):.1f} s")
        + f", {completion} completion {tc:.1f} s, render {video.timings['render']:.1f} s); "
        "only the fitted body is drawn, not hair or loose clothes."
    )
    return (str(out), strip, status)


# ------------------------------------------------------------------ textures


def texture_callback(services: Services, photo, resolution=256, completion=DEFAULT_COMPLETION,
                     progress=None) -> tuple:  # fmt: skip
    """``/texture``: the completed UV texture and its DensePose atlas, as images and PNG files.

    ``completion``: "classical" (mirror fill + push-pull) or "network" (the U-Net).

    Returns:
        (texture (T, T, 3) uint8, atlas (4N, 6N, 3) uint8, texture PNG path,
        atlas PNG path, status); ``None`` for all but the status on error.
    """
    missing = _missing(photo=photo)
    if missing:
        return (None, None, None, None, missing)
    step = _stepper(progress, services.deadline())
    try:
        size = services.check_resolution(resolution)
        services.check_completion(completion)
        step(0.0, "checking the photo")
        img = load_image(photo, name="photo")
        step(0.05, "pose, fit and render: finding the person and fitting the body model")
        a = services.analyse(img, size=size, name="photo")
        ext = extract_texture(a, completion=completion, texture_size=TEXTURE_SIZE,
                              checkpoint=services.checkpoint_for(completion), progress=step)  # fmt: skip
        tex8, atlas8 = ext.texture.to_uint8(), ext.atlas
        d = services.new_dir()
        save_image_atomic(d / "texture_uv.png", tex8)
        save_image_atomic(d / "texture_atlas.png", atlas8)
    except Exception as exc:  # noqa: BLE001
        return (None, None, None, None, error_status(exc))
    step(1.0, "done")
    status = (
        f"ok: completed {TEXTURE_SIZE}x{TEXTURE_SIZE} UV texture and {atlas8.shape[1]}x"
        f"{atlas8.shape[0]} DensePose atlas ({completion} completion)."
    )
    return (tex8, atlas8, str(d / "texture_uv.png"), str(d / "texture_atlas.png"), status)


def retexture_callback(services: Services, photo, texture, resolution=256,
                       progress=None) -> tuple:  # fmt: skip
    """``/retexture``: the photo's person re-rendered with an uploaded (edited) texture.

    Returns:
        (result (H, W, 3) uint8 at the photo's resolution, status); ``None``
        result on error.
    """
    missing = _missing(photo=photo, texture=texture)
    if missing:
        return (None, missing)
    step = _stepper(progress, services.deadline())
    try:
        size = services.check_resolution(resolution)
        step(0.0, "checking the photo and the texture")
        img = load_image(photo, name="photo")
        tex, kind = read_texture(texture, TEXTURE_SIZE)
        step(0.05, "pose, fit and render: finding the person and fitting the body model")
        a = services.analyse(img, size=size, name="photo")
        step(0.85, "re-rendering with the texture")
        out = retexture(a, tex, img)
    except Exception as exc:  # noqa: BLE001
        return (None, error_status(exc))
    step(1.0, "done")
    return (out, f"ok: re-rendered with the uploaded {kind}.")
