"""The Gradio app: pose transfer, virtual try-on, novel-view video and UV textures.

:func:`build_app` makes the :class:`gradio.Blocks`. The models (mediapipe,
anny, the warp kernel, the UV layouts) are loaded once when the app is built
and shared by every request; the queue runs ``concurrency`` requests at a time.
Problems caused by the input (not an image, no person, several persons, a
failed fit, a value out of range, a request over the time limit) come back as
one sentence in the status line, as data, so browser users and
``gradio_client`` callers both see them and the app stays up. Learned networks
(texture completion, neural re-renderer, Dense Pose Transfer) are offered only
when their checkpoint exists and loads; otherwise the choices say why they
are absent and the classical path runs. The texture-completion network (a
``texture*.pt`` checkpoint in ``--checkpoints``, :mod:`texture`) is loaded once
at start-up and offered in every tab that completes a texture; the neural
re-renderer and Dense Pose Transfer have no code yet and stay unavailable.

API (``gradio_client``; photos as ``handle_file(path)``; every status starts
with ``ok:`` or ``error:``, and image outputs are ``None`` on error)::

    /transfer    (source, target, method="BodyMap re-rendering", resolution=256,
                  completion="classical", rerenderer=False, seed=0)
                 -> (result, status, source_iuv, target_iuv, partial_texture,
                     completed_texture, atlas, warped, source_fit, target_fit)
    /try_on      (donor, wearer, region="top", resolution=256, pose_photos=None,
                  completion="classical")
                 -> (result, status, mixed_texture, donor_fit, wearer_fit, region_mask, poses)
    /novel_view  (photo, frames=24, turn=360, elevation=0, fps=24, resolution=256,
                  completion="classical")
                 -> (video, strip, status)
    /texture     (photo, resolution=256, completion="classical")
                 -> (completed_texture, atlas, texture_png, atlas_png, status)
    /retexture   (photo, texture, resolution=256) -> (result, status)

``completion`` is ``classical`` (mirror fill + push-pull) or ``network`` (the
texture-completion U-Net; refused with its reason when no checkpoint loads);
the ``ok:`` status names the completion used (``network completion ...``).
``region`` is one of ``top``, ``bottom``, ``shoes``, ``full outfit``;
``poses`` is a list of ``(image, caption)`` gallery items; ``video`` is an
H.264 MP4; ``texture`` is a continuous-UV texture (square) or a DensePose atlas
(6 x 4 tiles, width = 1.5 x height), e.g. an edited ``/texture`` output.
"""

from __future__ import annotations

import atexit
import hashlib
import inspect
import logging
import re
import shutil
import tempfile
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import gradio as gr
import numpy as np

from reroute.correspondence.analyse import PersonAnalysis, analyse_person
from reroute.correspondence.maps import iuv_to_rgb
from reroute.errors import FitError, InputError
from reroute.io.images import LoadedImage, load_image, save_image_atomic, to_uint8
from reroute.pipelines.pose_transfer import PoseTransferPipeline, TransferResult
from reroute.uv.atlas import atlas_to_continuous, continuous_to_atlas
from reroute.uv.texture import UVTexture
from reroute.uv.warp import image_to_uv
from texture import complete_texture, load_default_network

__all__ = [
    "build_app",
    "run_transfer",
    "example_images",
    "N_OUTPUTS",
    "AppLimits",
    "Services",
    "network_status",
    "find_texture_checkpoint",
    "METHODS",
    "COMPLETIONS",
]

log = logging.getLogger(__name__)

EXAMPLES_DIR = Path(__file__).resolve().parent / "examples"
"""Bundled example photos (``synthetic_*.png``: anny renders), if any."""

ATLAS_TILE = 128
"""Tile size of the DensePose atlas shown among the intermediate maps."""

N_OUTPUTS = 10
"""Outputs of :func:`run_transfer`: result, status, six intermediate maps, two fit overlays."""

TEXTURE_SIZE = 256
"""Side of the continuous UV textures the app works with."""

METHODS = ("BodyMap re-rendering", "Dense Pose Transfer")
"""Pose-transfer methods; only those whose networks are available can be chosen."""

COMPLETIONS = ("classical", "network")
"""Texture completion: classical (mirror + push-pull) or the learned network."""

RESOLUTIONS = (128, 192, 256, 384, 512)
"""Working sizes (longer side, pixels) offered in the UI."""

_STAGES = (
    (0.0, "checking the photos"),
    (0.05, "pose, fit and render: finding the people and fitting the body model"),
    (0.9, "warping the texture"),
    (1.0, "done"),
)


@dataclass(frozen=True)
class AppLimits:
    """Limits that keep one request from taking the app down.

    Attributes:
        max_upload_mb: largest uploaded file, MB (enforced by Gradio at upload).
        max_side: photos larger than this (px, longer side) are downscaled with
            a notice by :func:`reroute.io.images.load_image` (fixed at 4096 there).
        max_frames: most frames of a novel-view video.
        max_resolution: largest working size / video resolution, px.
        max_pose_photos: most extra pose photos of a try-on request.
        timeout_s: a request is stopped (between stages) once it has run this long.
    """

    max_upload_mb: int = 20
    max_side: int = 4096
    max_frames: int = 240
    max_resolution: int = 512
    max_pose_photos: int = 4
    timeout_s: float = 300.0


class RequestTimeout(InputError):
    """The request ran past :attr:`AppLimits.timeout_s`."""


class _Deadline:
    def __init__(self, seconds: float):
        self.seconds = seconds
        self.end = time.monotonic() + seconds

    def check(self, stage: str) -> None:
        if time.monotonic() > self.end:
            raise RequestTimeout(
                f"the request was stopped before {stage} because it ran longer than the "
                f"{self.seconds:g} s limit; try a smaller resolution or fewer frames"
            )



def _partial_view(tex: UVTexture, background: float = 0.85) -> np.ndarray:
    """A partial texture as uint8 RGB, unobserved texels light gray."""
    vis = np.clip(tex.visibility, 0.0, 1.0)[..., None]
    return to_uint8(tex.pixels * vis + background * (1.0 - vis))


def _atlas_view(tex: UVTexture) -> np.ndarray:
    return to_uint8(continuous_to_atlas(tex.pixels, tile=ATLAS_TILE))


def intermediate_maps(res: TransferResult) -> list[np.ndarray]:
    """The six viewable maps of a transfer, in the order of the app's outputs.

    Source IUV, target IUV (both :func:`~reroute.correspondence.maps.iuv_to_rgb`),
    partial texture, completed texture, DensePose atlas of the completed
    texture, and the warped image; each ``(h, w, 3)`` uint8 RGB.
    """
    return [
        iuv_to_rgb(res.source.correspondence.to_iuv()),
        iuv_to_rgb(res.target.correspondence.to_iuv()),
        _partial_view(res.partial_texture),
        res.texture.to_uint8(),
        _atlas_view(res.texture),
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
    colours = iuv_to_rgb(corr.to_iuv()).astype(np.float32)
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
    from reroute.body.detect import detect_person

    try:
        img = (
            photo.pixels if isinstance(photo, LoadedImage) else load_image(photo, name=name).pixels
        )
        obs = detect_person(img, name=name)
    except Exception:
        return None
    return draw_landmarks(img, obs.landmarks, obs.visibility)


_PATH = re.compile(r"(?:/[^/\s'\"]+)+/([^/\s'\"]+)")


def _sentence(text: str) -> str:
    """One line ending in a full stop; server file paths shortened to their file names."""
    text = _PATH.sub(r"\1", " ".join(str(text).split()))
    return text if text.endswith((".", "!", "?")) else text + "."


def _error(exc: BaseException) -> str:
    """The status line of a failed request: one sentence."""
    if isinstance(exc, (InputError, ValueError)):
        return f"error: {_sentence(exc)}"
    log.exception("request failed", exc_info=exc)
    return (
        f"error: internal error ({type(exc).__name__}) while processing the request; "
        "the app is still running, and the log has the details."
    )


# ------------------------------------------------------------------ networks


def find_texture_checkpoint(checkpoints: Path | str) -> tuple[Path | None, str | None]:
    """The texture-completion checkpoint of a checkpoints folder, loaded once.

    Tries ``texture*.pt`` then ``texture*.safetensors`` in name order and loads
    the first that is a texture-completion checkpoint
    (:func:`texture.load_default_network`, cached per path, so the app's
    requests share the one network).

    Args:
        checkpoints: the checkpoints folder (``--checkpoints DIR``).
    Returns:
        ``(path, None)`` when one loads, else ``(None, reason)``: one sentence
        fragment (no checkpoint there, or the first one's load error).
    """
    folder = Path(checkpoints)
    found = [p for ext in (".pt", ".safetensors") for p in sorted(folder.glob("texture*" + ext))]
    if not found:
        return None, f"no checkpoint in {folder}/ yet"
    first_error = ""
    for path in found:
        try:
            load_default_network(str(path))
        except Exception as exc:  # noqa: BLE001 - any load failure makes it unusable
            first_error = first_error or _sentence(exc).split(". ")[0].rstrip(".")[:200]
            continue
        return path, None
    return None, f"{found[0].name} is there, but reroute cannot load it ({first_error})"


def network_status(checkpoints: Path | str) -> dict[str, str | None]:
    """Which learned networks can be used, and why not.

    Args:
        checkpoints: the checkpoints folder (``--checkpoints DIR``).
    Returns:
        ``{"texture completion": reason, "re-renderer": reason,
        "Dense Pose Transfer": reason}``: ``None`` when usable, else one
        sentence fragment saying why not. Texture completion is usable when a
        checkpoint loads (:func:`find_texture_checkpoint`); the re-renderer and
        Dense Pose Transfer have no code yet, so a checkpoint file of theirs is
        reported, never loaded.
    """
    folder = Path(checkpoints)
    out: dict[str, str | None] = {"texture completion": find_texture_checkpoint(folder)[1]}
    for key, pat in (("re-renderer", "renderer*"), ("Dense Pose Transfer", "dpt*")):
        found = sorted(p.name for ext in (".safetensors", ".pt") for p in folder.glob(pat + ext))
        if not found:
            out[key] = f"no checkpoint in {folder}/ yet"
        else:
            out[key] = f"{found[0]} is there, but this version of reroute cannot load it yet"
    return out


# ------------------------------------------------------------------ shared services


class Services:
    """What every request shares: pipelines, a cache of analysed photos, limits.

    Args:
        pipeline_factory: makes the pose-transfer pipeline; called once with no
            arguments for the default resolution (256) and classical completion,
            with ``size=`` for other resolutions when it accepts that keyword,
            and with ``texture="network", texture_checkpoint=PATH`` for the
            network completion. Pipelines are cached per (size, completion).
        checkpoints: folder of trained weights.
        limits: :class:`AppLimits`.
        workdir: where output files (videos, PNGs) are written; a temporary
            folder removed at exit when ``None``.
    """

    def __init__(self, pipeline_factory: Callable[..., Any] = PoseTransferPipeline, *,
                 checkpoints: Path | str = "checkpoints", limits: AppLimits | None = None,
                 workdir: Path | None = None, cache_size: int = 16):  # fmt: skip
        self.pipeline_factory = pipeline_factory
        self.pipeline = pipeline_factory()
        self._pipelines: dict[tuple[int, str], Any] = {
            (getattr(self.pipeline, "size", 256), "classical"): self.pipeline
        }
        self.checkpoints = Path(checkpoints)
        self.texture_checkpoint, _ = find_texture_checkpoint(self.checkpoints)
        self.networks = network_status(self.checkpoints)
        self.limits = limits or AppLimits()
        if workdir is None:
            workdir = Path(tempfile.mkdtemp(prefix="reroute-app-"))
            atexit.register(shutil.rmtree, workdir, ignore_errors=True)
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._cache: OrderedDict[tuple[str, int], PersonAnalysis] = OrderedDict()
        self._cache_size = cache_size

    def pipeline_for(self, size: int, completion: str = "classical") -> Any:
        """The pose-transfer pipeline at ``size`` px with ``completion`` (made once per pair).

        Raises:
            InputError: ``completion`` is ``"network"`` and no texture checkpoint loads.
        """
        if completion == "network":
            self.check_completion(completion)
            kwargs: dict[str, Any] = {
                "size": size, "texture": "network",
                "texture_checkpoint": str(self.texture_checkpoint),
            }  # fmt: skip
        else:
            kwargs = {"size": size}
        key = (size, completion)
        with self._lock:
            if key not in self._pipelines:
                try:
                    self._pipelines[key] = self.pipeline_factory(**kwargs)
                except TypeError:  # a factory without these keywords: its own size, classical
                    if completion == "network":
                        raise InputError(
                            "network texture completion is unavailable: this pipeline cannot use it"
                        ) from None
                    return self.pipeline
            return self._pipelines[key]

    def check_completion(self, completion: Any) -> str:
        """``completion`` if it is a known and usable texture completion, else InputError."""
        if completion not in COMPLETIONS:
            raise InputError(
                f"unknown texture completion {completion!r}; choose classical or network"
            )
        if completion == "network" and self.networks["texture completion"]:
            raise InputError(
                "network texture completion is unavailable: " + self.networks["texture completion"]
            )
        return completion

    def complete(self, partial: UVTexture, completion: str = "classical") -> UVTexture:
        """:func:`texture.complete_texture` with this app's checkpoint (shared network)."""
        self.check_completion(completion)
        ckpt = str(self.texture_checkpoint) if completion == "network" else None
        return complete_texture(partial, completion, ckpt)

    @staticmethod
    def _key(photo: LoadedImage, size: int) -> tuple[str, int]:
        return (hashlib.sha1(photo.pixels.tobytes()).hexdigest() + str(photo.pixels.shape), size)

    def is_cached(self, photo: LoadedImage, size: int) -> bool:
        """Whether :meth:`analyse` has this photo at this size already."""
        with self._lock:
            return self._key(photo, size) in self._cache

    def analyse(self, photo: LoadedImage, *, size: int, name: str) -> PersonAnalysis:
        """:func:`~reroute.correspondence.analyse.analyse_person`, cached by pixel content and size."""
        key = self._key(photo, size)
        with self._lock:
            hit = self._cache.get(key)
            if hit is not None:
                self._cache.move_to_end(key)
                return hit
        res = analyse_person(photo, size=size, name=name)
        with self._lock:
            self._cache[key] = res
            while len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        return res

    def new_dir(self) -> Path:
        """A fresh folder for one request's output files; folders over an hour old are removed."""
        now = time.time()
        for old in self.workdir.glob("req-*"):
            try:
                if now - old.stat().st_mtime > 3600:
                    shutil.rmtree(old, ignore_errors=True)
            except OSError:
                pass
        return Path(tempfile.mkdtemp(prefix="req-", dir=self.workdir))

    def deadline(self) -> _Deadline:
        return _Deadline(self.limits.timeout_s)


def warm_up() -> None:
    """Load the shared models once: anny + template, mediapipe, the warp kernel, UV layouts."""
    from reroute.body.detect import count_persons
    from reroute.body.raster import Camera, rasterize
    from reroute.body.template import get_template
    from reroute.pipelines.tryon import texel_parts
    from reroute.uv.texture import uv_layout_mask
    from texture.classical import mirror_texels

    t = time.perf_counter()
    get_template()
    count_persons(np.zeros((64, 64, 3), np.uint8))  # builds mediapipe's three models
    rasterize(np.array([[0, 0, 1.0], [1, 0, 1], [0, 1, 1]]), np.array([[0, 1, 2]]),
              Camera(8, 4, 4, 8, 8))  # fmt: skip
    uv_layout_mask(TEXTURE_SIZE)
    mirror_texels(TEXTURE_SIZE)
    texel_parts(TEXTURE_SIZE)
    _atlas_view(UVTexture(np.zeros((TEXTURE_SIZE, TEXTURE_SIZE, 3), np.float32),
                          np.zeros((TEXTURE_SIZE, TEXTURE_SIZE), np.float32)))  # fmt: skip
    log.info("models loaded in %.1f s", time.perf_counter() - t)


# ------------------------------------------------------------------ callbacks


def _stepper(progress: Callable[..., Any] | None, deadline: _Deadline | None = None):
    def step(fraction: float, stage: str) -> None:
        if deadline is not None:
            deadline.check(stage)
        if progress is not None:
            progress(fraction, desc=stage)

    return step


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


def run_transfer(pipeline: Callable[..., TransferResult], source: Any, target: Any,
                 progress: Callable[..., Any] | None = None, *,
                 deadline: _Deadline | None = None) -> tuple:  # fmt: skip
    """The pose-transfer callback: run ``pipeline(source, target)`` and format its outputs.

    Args:
        pipeline: a :class:`~reroute.pipelines.pose_transfer.PoseTransferPipeline` (or anything
            called the same way). If its ``__call__`` takes a ``progress``
            keyword, it is passed a callable ``progress(fraction, stage)``.
        source, target: photo file paths or (H, W, 3) uint8 arrays, or ``None``.
        progress: a :class:`gradio.Progress` (or ``None``).
        deadline: checked between stages (see :class:`AppLimits`).
    Returns:
        ``N_OUTPUTS`` values: the result image (``None`` on error), the status
        line (``"ok: ..."``, naming the pipeline's ``texture`` completion when
        it has that attribute, or ``"error: <one sentence>"``), the six maps of
        :func:`intermediate_maps` and the two fitted bodies drawn over their
        photos (:func:`draw_fit`). On error all are ``None`` except the status,
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
        maps = intermediate_maps(res) + [draw_fit(res.source), draw_fit(res.target)]
    except Exception as exc:  # noqa: BLE001 - every failure becomes one status sentence
        if isinstance(exc, InputError):
            log.info("transfer refused: %s", exc)
        status = _error(exc)
        if isinstance(exc, FitError):
            empty[-2] = _landmarks_of(source, "source photo")
            empty[-1] = _landmarks_of(target, "target photo")
            status = status[:-1] + " (the landmarks found are drawn under 'Fitted bodies')."
        return (None, status, *empty)
    step(*_STAGES[3])
    t = res.timings
    how = getattr(pipeline, "texture", None)
    names = {"completion": f"{how} completion"} if isinstance(how, str) else {}
    parts = ", ".join(
        f"{names.get(k, k)} {t[k]:.1f} s"
        for k in ("pose", "fit", "render", "completion", "warp")
        if k in t
    )
    status = f"ok: pose transferred in {t.get('total', 0.0):.1f} s ({parts})."
    if res.notices:
        status += " Note: " + "; ".join(res.notices) + "."
    return (res.image, status, *maps)


def _takes_progress(pipeline: Callable[..., Any]) -> bool:
    try:
        return "progress" in inspect.signature(pipeline).parameters
    except (TypeError, ValueError):
        return False


def _check_resolution(services: Services, resolution: Any) -> int:
    try:
        size = int(resolution)
    except (TypeError, ValueError):
        raise InputError(f"resolution must be a number of pixels, got {resolution!r}") from None
    hi = services.limits.max_resolution
    if not 64 <= size <= hi:
        raise InputError(f"resolution must be between 64 and {hi} px, got {size}")
    return size


def transfer_callback(services: Services, source, target, method="BodyMap re-rendering",
                      resolution=256, completion="classical", rerenderer=False, seed=0,
                      progress=None) -> tuple:  # fmt: skip
    """``/transfer``: options checked, then :func:`run_transfer` at the chosen resolution."""
    empty = (None,) * (N_OUTPUTS - 2)
    try:
        if method not in METHODS:
            raise InputError(f"unknown method {method!r}; choose one of {', '.join(METHODS)}")
        if method == "Dense Pose Transfer" and services.networks["Dense Pose Transfer"]:
            raise InputError(
                f"Dense Pose Transfer is unavailable: {services.networks['Dense Pose Transfer']}"
            )
        services.check_completion(completion)
        if rerenderer and services.networks["re-renderer"]:
            raise InputError(
                f"the neural re-renderer is unavailable: {services.networks['re-renderer']}"
            )
        size = _check_resolution(services, resolution)
        int(seed)  # every path is deterministic so far; the seed is for sampling networks
        pipeline = services.pipeline_for(size, completion)
    except (InputError, TypeError, ValueError) as exc:
        return (None, _error(exc if isinstance(exc, InputError) else InputError(str(exc))), *empty)
    return run_transfer(pipeline, source, target, progress,
                        deadline=services.deadline())  # fmt: skip


def try_on_callback(services: Services, donor, wearer, region="top", resolution=256,
                    pose_photos=None, completion="classical", progress=None) -> tuple:  # fmt: skip
    """``/try_on``: the wearer in the donor's garments (region), plus extra poses.

    ``completion`` ("classical" or "network") completes both textures before mixing.

    Returns:
        (result, status, mixed texture, donor fit, wearer fit, region mask,
        gallery of ``(image, caption)``); ``None`` images on error.
    """
    from reroute.pipelines.tryon import REGIONS, TryOnPipeline

    empty = [None] * 5
    missing = _missing(garment_donor_photo=donor, wearer_photo=wearer)
    if missing:
        return (None, missing, *empty)
    deadline = services.deadline()
    step = _stepper(progress, deadline)
    poses = [p if isinstance(p, str) else getattr(p, "name", p) for p in (pose_photos or [])]
    try:
        if region not in REGIONS:
            raise InputError(f"unknown region {region!r}; choose one of {', '.join(REGIONS)}")
        size = _check_resolution(services, resolution)
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
        status = _error(exc)
        if isinstance(exc, FitError):
            empty[1] = _landmarks_of(donor, "garment donor photo")
            empty[2] = _landmarks_of(wearer, "wearer photo")
            status = status[:-1] + " (the landmarks found are drawn under 'Fitted bodies')."
        return (None, status, *empty)
    mask = (res.mask[..., None] * np.float32([255, 80, 0]) * 0.6
            + res.wearer.image * (1 - 0.6 * res.mask[..., None])).astype(np.uint8)  # fmt: skip
    gallery = [(img, f"pose photo {i + 1}") for i, img in enumerate(res.poses)]
    t = res.timings
    status = (
        f"ok: {region} swapped in {t['total']:.1f} s (pose {t['pose']:.1f} s, fit {t['fit']:.1f} s, "
        f"{completion} completion {t['completion']:.1f} s); the wearer keeps face, hair and hands."
    )
    if res.notices:
        status += " Note: " + "; ".join(res.notices) + "."
    return (res.image, status, res.texture.to_uint8(), draw_fit(res.donor), draw_fit(res.wearer),
            mask, gallery or None)  # fmt: skip


def novel_view_callback(services: Services, photo, frames=24, turn=360.0, elevation=0.0,
                        fps=24, resolution=256, completion="classical",
                        progress=None) -> tuple:  # fmt: skip
    """``/novel_view``: an H.264 MP4 of the camera turning around the person, and a strip.

    ``completion`` ("classical" or "network") completes the photo's texture.

    Returns:
        (mp4 path, frame strip, status); ``None`` files on error.
    """
    from reroute.io.video import write_mp4
    from reroute.pipelines.novel_view import NovelViewConfig, frame_strip, render_novel_views

    missing = _missing(photo=photo)
    if missing:
        return (None, None, missing)
    deadline = services.deadline()
    step = _stepper(progress, deadline)
    t0 = time.perf_counter()
    try:
        lim = services.limits
        n = int(frames)
        if not 1 <= n <= lim.max_frames:
            raise InputError(f"frames must be between 1 and {lim.max_frames}, got {n}")
        if not 1 <= float(fps) <= 60:
            raise InputError(f"fps must be between 1 and 60, got {float(fps):g}")
        size = _check_resolution(services, resolution)
        services.check_completion(completion)
        cfg = NovelViewConfig(frames=n, turn_deg=float(turn), elevation_deg=float(elevation),
                              size=size)  # fmt: skip
        try:
            cfg.check()
        except ValueError as exc:
            raise InputError(str(exc)) from None
        step(0.0, "checking the photo")
        img = load_image(photo, name="photo")
        step(0.02, "pose, fit and render: finding the person and fitting the body model")
        reused = services.is_cached(img, size)
        a = services.analyse(img, size=size, name="photo")
        step(0.35, "completing the texture")
        tc = time.perf_counter()
        tex = services.complete(image_to_uv(a.image, a.correspondence, TEXTURE_SIZE), completion)
        tc = time.perf_counter() - tc
        step(0.4, "re-rendering the views")
        video = render_novel_views(a.body, tex, cfg,
                                   progress=lambda f, s: step(0.4 + 0.5 * f, s))  # fmt: skip
        step(0.9, "encoding the video (H.264)")
        out = services.new_dir() / "novel_view.mp4"
        write_mp4(video.frames, out, fps=float(fps))
        strip = frame_strip(video.frames, count=8, height=min(160, video.frames.shape[1]))
    except Exception as exc:  # noqa: BLE001
        return (None, None, _error(exc))
    step(1.0, "done")
    h, w = video.frames.shape[1:3]
    status = (
        f"ok: {n} frames, {w}x{h} px, {float(turn):g} degrees at {float(fps):g} fps in "
        f"{time.perf_counter() - t0:.1f} s ("
        + ("body fit reused" if reused else f"fit {a.timings.get('fit', 0.0):.1f} s")
        + f", {completion} completion {tc:.1f} s, render {video.timings['render']:.1f} s); only the fitted body is drawn, not hair "
        "or loose clothes."
    )
    return (str(out), strip, status)


def texture_callback(services: Services, photo, resolution=256, completion="classical",
                     progress=None) -> tuple:  # fmt: skip
    """``/texture``: the completed UV texture and its DensePose atlas, as images and PNG files.

    ``completion``: "classical" (mirror fill + push-pull) or "network" (the U-Net).
    """
    missing = _missing(photo=photo)
    if missing:
        return (None, None, None, None, missing)
    step = _stepper(progress, services.deadline())
    try:
        size = _check_resolution(services, resolution)
        services.check_completion(completion)
        step(0.0, "checking the photo")
        img = load_image(photo, name="photo")
        step(0.05, "pose, fit and render: finding the person and fitting the body model")
        a = services.analyse(img, size=size, name="photo")
        step(0.8, "completing the texture")
        tex = services.complete(image_to_uv(a.image, a.correspondence, TEXTURE_SIZE), completion)
        step(0.9, "building the DensePose atlas")
        tex8, atlas8 = tex.to_uint8(), _atlas_view(tex)
        d = services.new_dir()
        save_image_atomic(d / "texture_uv.png", tex8)
        save_image_atomic(d / "texture_atlas.png", atlas8)
    except Exception as exc:  # noqa: BLE001
        return (None, None, None, None, _error(exc))
    step(1.0, "done")
    status = (
        f"ok: completed {TEXTURE_SIZE}x{TEXTURE_SIZE} UV texture and {atlas8.shape[1]}x"
        f"{atlas8.shape[0]} DensePose atlas ({completion} completion)."
    )
    return (tex8, atlas8, str(d / "texture_uv.png"), str(d / "texture_atlas.png"), status)


def _texture_from_upload(texture: Any) -> tuple[np.ndarray, str]:
    """An uploaded texture as a continuous-UV (T, T, 3) float32 in [0, 1], and its kind."""
    tex = load_image(texture, name="texture").pixels.astype(np.float32) / 255.0
    h, w = tex.shape[:2]
    if h == w:
        if h != TEXTURE_SIZE:
            tex = cv2.resize(tex, (TEXTURE_SIZE, TEXTURE_SIZE), interpolation=cv2.INTER_AREA)
        return tex, "continuous UV texture"
    if abs(w * 4 - h * 6) <= 6:  # 6 x 4 tiles
        if (w, h) != (6 * (h // 4), 4 * (h // 4)):
            h4 = h // 4
            tex = cv2.resize(tex, (6 * h4, 4 * h4), interpolation=cv2.INTER_AREA)
        return atlas_to_continuous(tex, TEXTURE_SIZE), "DensePose atlas"
    raise InputError(
        f"the texture is {w}x{h} px; upload a square continuous UV texture or a DensePose "
        "atlas of 6 x 4 tiles (width 1.5 x height), e.g. one downloaded from this tab"
    )


def retexture_callback(services: Services, photo, texture, resolution=256,
                       progress=None) -> tuple:  # fmt: skip
    """``/retexture``: the photo's person re-rendered with an uploaded (edited) texture."""
    from reroute.uv.warp import uv_to_image

    missing = _missing(photo=photo, texture=texture)
    if missing:
        return (None, missing)
    step = _stepper(progress, services.deadline())
    try:
        size = _check_resolution(services, resolution)
        step(0.0, "checking the photo and the texture")
        img = load_image(photo, name="photo")
        tex, kind = _texture_from_upload(texture)
        step(0.05, "pose, fit and render: finding the person and fitting the body model")
        a = services.analyse(img, size=size, name="photo")
        step(0.85, "re-rendering with the texture")
        corr = a.correspondence
        warped = uv_to_image(tex, corr)
        alpha = cv2.GaussianBlur(corr.mask.astype(np.float32), (3, 3), 0)
        H, W = img.pixels.shape[:2]
        if (H, W) != corr.shape:
            warped = cv2.resize(warped, (W, H), interpolation=cv2.INTER_LINEAR)
            alpha = cv2.resize(alpha, (W, H), interpolation=cv2.INTER_LINEAR)
        out = alpha[..., None] * warped + (1 - alpha[..., None]) * (img.pixels / 255.0)
    except Exception as exc:  # noqa: BLE001
        return (None, _error(exc))
    step(1.0, "done")
    return (to_uint8(out), f"ok: re-rendered with the uploaded {kind}.")


# ------------------------------------------------------------------ examples


def _write_builtin_examples(folder: Path) -> list[Path]:
    """Photos shipped inside installed packages, written as PNG to ``folder``."""
    from PIL import Image

    out: list[Path] = []
    try:
        import skimage.data

        p = folder / "astronaut.png"
        Image.fromarray(skimage.data.astronaut()).save(p)
        out.append(p)
    except Exception as exc:  # an example is a convenience, never a start-up failure
        log.warning("astronaut example unavailable: %s", exc)
    try:
        import matplotlib.cbook

        with matplotlib.cbook.get_sample_data("grace_hopper.jpg") as f:
            img = Image.open(f).convert("RGB")
        p = folder / "grace_hopper.png"
        img.save(p)
        out.append(p)
    except Exception as exc:
        log.warning("grace_hopper example unavailable: %s", exc)
    return out


def example_images(folder: Path | None = None, bundled: Path = EXAMPLES_DIR) -> list[list[str]]:
    """(source, target) example pairs.

    The package photos (astronaut, Grace Hopper) are written to ``folder`` (a
    fresh temporary directory removed at exit when ``None``); the bundled
    ``bundled/*.png`` files (e.g. synthetic anny renders) are used where they
    are. Pairs: Grace Hopper in the astronaut's pose, consecutive bundled
    ``synthetic_*`` renders with each other, then each photo with itself.
    """
    if folder is None:
        folder = Path(tempfile.mkdtemp(prefix="reroute-examples-"))
        atexit.register(shutil.rmtree, folder, ignore_errors=True)
    folder.mkdir(parents=True, exist_ok=True)
    builtin = _write_builtin_examples(folder)
    pairs: list[list[str]] = []
    if len(builtin) >= 2:  # Grace Hopper in the astronaut's pose
        pairs.append([str(builtin[1]), str(builtin[0])])
    own = sorted(bundled.glob("*.png")) if bundled.is_dir() else []
    synthetic = [p for p in own if p.name.startswith("synthetic_")]
    others = [p for p in own if not p.name.startswith("synthetic_")]
    for a, b in zip(synthetic, synthetic[1:] + synthetic[:1], strict=True):
        if a != b:
            pairs.append([str(a), str(b)])
    pairs.extend([str(p), str(p)] for p in builtin + others)
    return pairs


# ------------------------------------------------------------------ the app


def PhotoInput(**kwargs) -> gr.Image:  # noqa: N802 (reads like the component it makes)
    """A ``gr.Image`` input that hands the callback the uploaded file's path undecoded.

    Gradio's own ``Image.preprocess`` opens every upload with PIL and fails
    with a generic error on a file that is not an image; passing the path on
    lets :func:`reroute.io.images.load_image` say what is wrong in one sentence.
    The instance keeps class ``gr.Image`` (the browser's component is chosen by
    class name); only its ``preprocess`` is replaced.
    """
    kwargs.setdefault("type", "filepath")
    kwargs.setdefault("sources", ["upload", "webcam", "clipboard"])
    comp = gr.Image(**kwargs)
    original = comp.preprocess

    def preprocess(payload):
        if payload is not None and payload.path and not (payload.url or "").startswith("data:"):
            return str(payload.path)
        return original(payload)

    comp.preprocess = preprocess  # type: ignore[method-assign]
    return comp


def _bundled(name: str) -> str | None:
    p = EXAMPLES_DIR / name
    return str(p) if p.is_file() else None


def _out_image(label: str, elem_id: str | None = None) -> gr.Image:
    return gr.Image(type="numpy", format="png", label=label, interactive=False, elem_id=elem_id)


def build_app(pipeline_factory: Callable[..., Any] = PoseTransferPipeline, *,
              device: str = "cpu", examples: bool = True, checkpoints: Path | str = "checkpoints",
              limits: AppLimits | None = None, concurrency: int = 2,
              load_models: bool = True) -> gr.Blocks:  # fmt: skip
    """Build the Gradio app.

    Args:
        pipeline_factory: makes the pose-transfer pipeline every request shares
            (see :class:`Services`).
        device: shown in the page footer (the pipelines run on the CPU until
            the learned networks land).
        examples: add example photos (package photos and synthetic renders).
        checkpoints: folder of trained weights; decides which learned options exist.
        limits: :class:`AppLimits`.
        concurrency: requests run at the same time (the queue holds the rest).
        load_models: load the shared models now (see :func:`warm_up`).
    Returns:
        The :class:`gradio.Blocks`, its queue enabled. Endpoints: ``/transfer``,
        ``/try_on``, ``/novel_view``, ``/texture``, ``/retexture`` (see the module doc).
    """
    services = Services(pipeline_factory, checkpoints=checkpoints, limits=limits)
    lim = services.limits
    net = services.networks
    if load_models:
        warm_up()
    from reroute.pipelines.tryon import REGIONS

    # Gradio reads the callbacks' signatures: progress must be a gr.Progress default.
    def transfer(source, target, method, resolution, completion, rerenderer, seed,
                 progress=gr.Progress()):  # noqa: B008  # fmt: skip
        return transfer_callback(services, source, target, method, resolution, completion,
                                 rerenderer, seed, progress)  # fmt: skip

    def try_on(donor, wearer, region, resolution, pose_photos=None, completion="classical",
               progress=gr.Progress()):  # noqa: B008  # fmt: skip
        return try_on_callback(services, donor, wearer, region, resolution, pose_photos,
                               completion, progress)  # fmt: skip

    def novel_view(photo, frames, turn, elevation, fps, resolution, completion="classical",
                   progress=gr.Progress()):  # noqa: B008  # fmt: skip
        return novel_view_callback(services, photo, frames, turn, elevation, fps, resolution,
                                   completion, progress)  # fmt: skip

    def texture(photo, resolution, completion="classical", progress=gr.Progress()):  # noqa: B008
        return texture_callback(services, photo, resolution, completion, progress)

    def retexture(photo, tex, resolution, progress=gr.Progress()):  # noqa: B008
        return retexture_callback(services, photo, tex, resolution, progress)

    def resolution_input(value: int = 256, label: str = "Working resolution (px, longer side)"):
        choices = [r for r in RESOLUTIONS if r <= lim.max_resolution]
        return gr.Dropdown(choices, value=value, label=label)

    def completion_input():
        """Texture completion: network offered only when its checkpoint loaded."""
        reason = net["texture completion"]
        ckpt = services.texture_checkpoint
        return gr.Radio(
            ["classical"] + ([] if reason else ["network"]),
            value="classical", label="Texture completion",
            info="classical = mirror fill + push-pull; network: "
            + (f"unavailable: {reason}" if reason else f"U-Net from {ckpt.name if ckpt else ''}"),
        )  # fmt: skip

    with gr.Blocks(title="reroute", delete_cache=(3600, 3600)) as demo:
        gr.Markdown(
            "# reroute\nRe-render a person from one photo through dense body correspondences "
            "(anny body model fitted to mediapipe landmarks): pose transfer, try-on, "
            "novel-view video and UV textures. Every result says how it was made; "
            f"uploads up to {lim.max_upload_mb} MB, photos over {lim.max_side} px are "
            f"downscaled, requests stop after {lim.timeout_s:g} s."
        )
        # ---------------------------------------------------------- pose transfer
        with gr.Tab("Pose transfer", id="transfer"):
            with gr.Row():
                source = PhotoInput(label="Source photo (the person)", elem_id="pt-source")
                target = PhotoInput(label="Target photo (the pose)", elem_id="pt-target")
                result = _out_image("Result", "pt-result")
            with gr.Accordion("Options", open=False):
                method = gr.Radio(
                    [METHODS[0]] + ([METHODS[1]] if not net["Dense Pose Transfer"] else []),
                    value=METHODS[0], label="Method",
                    info=("Dense Pose Transfer: " + net["Dense Pose Transfer"]
                          if net["Dense Pose Transfer"] else None),
                )  # fmt: skip
                with gr.Row():
                    pt_res = resolution_input()
                    completion = completion_input()
                    rerenderer = gr.Checkbox(
                        value=False, label="Neural re-renderer",
                        interactive=not net["re-renderer"],
                        info=net["re-renderer"] and f"unavailable: {net['re-renderer']}",
                    )  # fmt: skip
                    seed = gr.Number(
                        value=0, precision=0, label="Seed",
                        info="for the learned networks; the classical path is deterministic",
                    )  # fmt: skip
            pt_button = gr.Button("Transfer", variant="primary", elem_id="pt-run")
            pt_status = gr.Markdown(
                "Upload a source and a target photo, then press Transfer.", elem_id="pt-status"
            )
            with gr.Accordion("Intermediate maps", open=False):
                with gr.Row():
                    src_iuv = _out_image("Source IUV")
                    tgt_iuv = _out_image("Target IUV")
                    warped = _out_image("Warped texture")
                with gr.Row():
                    partial = _out_image("Partial UV texture")
                    completed = _out_image("Completed UV texture")
                    atlas = _out_image("DensePose atlas (completed)")
                gr.Markdown(
                    "Fitted bodies: IUV over the photo, landmarks green, fitted keypoints red."
                )
                with gr.Row():
                    src_fit = _out_image("Fitted body: source")
                    tgt_fit = _out_image("Fitted body: target")
            if examples:
                pairs = example_images()
                if pairs:
                    gr.Examples(pairs, inputs=[source, target], cache_examples=False)
        pt_button.click(
            transfer,
            inputs=[source, target, method, pt_res, completion, rerenderer, seed],
            outputs=[
                result,
                pt_status,
                src_iuv,
                tgt_iuv,
                partial,
                completed,
                atlas,
                warped,
                src_fit,
                tgt_fit,
            ],  # fmt: skip
            api_name="transfer",
        )
        # ---------------------------------------------------------- try-on
        with gr.Tab("Try-on", id="try_on"):
            with gr.Row():
                donor = PhotoInput(label="Garment donor photo", elem_id="to-donor")
                wearer = PhotoInput(label="Wearer photo", elem_id="to-wearer")
                to_result = _out_image("Result (wearer's pose)", "to-result")
            with gr.Row():
                region = gr.Radio(
                    list(REGIONS), value="top", label="What to swap",
                    info="UV regions of the body template; the wearer keeps face, hair and hands",
                )  # fmt: skip
                to_res = resolution_input()
                to_completion = completion_input()
            pose_photos = gr.File(
                file_count="multiple", file_types=["image"],
                label=f"Optional: up to {lim.max_pose_photos} more photos whose poses to show "
                "the new outfit in (BodyMap supp. fig. 5)",
            )  # fmt: skip
            to_button = gr.Button("Swap", variant="primary", elem_id="to-run")
            to_status = gr.Markdown(
                "Upload a garment donor and a wearer photo, then press Swap.", elem_id="to-status"
            )
            to_gallery = gr.Gallery(label="The new outfit in further poses", columns=4)
            with gr.Accordion("Intermediate maps", open=False):
                with gr.Row():
                    mixed = _out_image("Mixed UV texture")
                    region_mask = _out_image("Replaced pixels")
                    donor_fit = _out_image("Fitted body: donor")
                    wearer_fit = _out_image("Fitted body: wearer")
            if examples:
                ex = [_bundled("synthetic_turned.png"), _bundled("synthetic_arms_down.png")]
                if all(ex):
                    gr.Examples([[ex[0], ex[1], "top"], [ex[0], ex[1], "full outfit"]],
                                inputs=[donor, wearer, region], cache_examples=False)  # fmt: skip
        to_button.click(
            try_on,
            inputs=[donor, wearer, region, to_res, pose_photos, to_completion],
            outputs=[to_result, to_status, mixed, donor_fit, wearer_fit, region_mask, to_gallery],
            api_name="try_on",
        )
        # ---------------------------------------------------------- novel view
        with gr.Tab("Novel view", id="novel_view"):
            with gr.Row():
                nv_photo = PhotoInput(label="Photo", elem_id="nv-photo")
                nv_video = gr.Video(label="Novel-view video (H.264 MP4)", elem_id="nv-video",
                                   interactive=False)  # fmt: skip
            with gr.Row():
                nv_frames = gr.Slider(2, lim.max_frames, value=24, step=1, label="Frames")
                nv_turn = gr.Slider(-360, 360, value=360, step=5, label="Turn angle (degrees)")
                nv_elev = gr.Slider(-45, 45, value=0, step=5, label="Elevation (degrees)")
                nv_fps = gr.Slider(1, 60, value=24, step=1, label="Frames per second")
                nv_res = resolution_input(256, "Resolution (px, longer side)")
                nv_completion = completion_input()
            gr.Markdown(
                "<small>Re-posing along a motion (anny's walk cycle, a target video's poses) "
                "is not available yet: anny's walk cycle is an IK rig that reroute cannot "
                "retarget so far.</small>"
            )
            nv_button = gr.Button("Render video", variant="primary", elem_id="nv-run")
            nv_status = gr.Markdown("Upload a photo, then press Render video.", elem_id="nv-status")
            nv_strip = _out_image("Frame strip", "nv-strip")
            if examples:
                ex = [p for p in (_bundled("synthetic_arms_down.png"),
                                  _bundled("synthetic_turned.png")) if p]  # fmt: skip
                if ex:
                    gr.Examples([[p] for p in ex], inputs=[nv_photo], cache_examples=False)
        nv_button.click(
            novel_view,
            inputs=[nv_photo, nv_frames, nv_turn, nv_elev, nv_fps, nv_res, nv_completion],
            outputs=[nv_video, nv_strip, nv_status],
            api_name="novel_view",
        )
        # ---------------------------------------------------------- texture
        with gr.Tab("Texture", id="texture"):
            with gr.Row():
                tx_photo = PhotoInput(label="Photo", elem_id="tx-photo")
                tx_tex = _out_image("Completed UV texture", "tx-texture")
                tx_atlas = _out_image("DensePose atlas", "tx-atlas")
            with gr.Row():
                tx_res = resolution_input()
                tx_completion = completion_input()
            tx_button = gr.Button("Extract texture", variant="primary", elem_id="tx-run")
            tx_status = gr.Markdown(
                "Upload a photo, then press Extract texture.", elem_id="tx-status"
            )
            with gr.Row():
                tx_tex_file = gr.File(label="UV texture (PNG)", interactive=False)
                tx_atlas_file = gr.File(label="DensePose atlas (PNG)", interactive=False)
            gr.Markdown("### Re-render with an edited texture (UV texture or atlas PNG)")
            with gr.Row():
                rt_tex = PhotoInput(
                    label="Edited texture", sources=["upload"], elem_id="rt-texture"
                )
                rt_result = _out_image("Re-rendered", "rt-result")
            rt_button = gr.Button("Re-render", elem_id="rt-run")
            rt_status = gr.Markdown("", elem_id="rt-status")
            if examples:
                ex = _bundled("synthetic_arms_down.png")
                if ex:
                    gr.Examples([[ex]], inputs=[tx_photo], cache_examples=False)
        tx_button.click(
            texture,
            inputs=[tx_photo, tx_res, tx_completion],
            outputs=[tx_tex, tx_atlas, tx_tex_file, tx_atlas_file, tx_status],
            api_name="texture",
        )
        rt_button.click(
            retexture,
            inputs=[tx_photo, rt_tex, tx_res],
            outputs=[rt_result, rt_status],
            api_name="retexture",
        )
        gr.Markdown(
            f"<small>device: {device} · checkpoints: {services.checkpoints} · "
            f"{concurrency} requests at a time</small>"
        )
    demo.queue(default_concurrency_limit=concurrency, max_size=64)
    return demo
