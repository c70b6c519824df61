"""Inference pipelines: photo analysis and pose transfer (BodyMap-style re-rendering).

Pose transfer (Ianina et al., CVPR 2022, sec. 5; the neural re-renderer is
not trained yet, so the warped texture is the output):

1. check and load both photos, resize them to the working size;
2. find the one person in each (BlazePose landmarks + mask) and fit anny;
3. render each fitted body's correspondences, extended to the person mask;
4. lift the source photo into the continuous UV texture (partial + visibility);
5. complete the texture (classical: mirror fill + push-pull; or the texture
   completion network of :mod:`texture`);
6. warp the texture to the target's correspondences (``grid_sample``);
7. composite over the source's background with the person inpainted away,
   and resize to the target photo's resolution.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import cv2
import numpy as np

from .completion import complete_classical
from .correspondence import Correspondence, render_correspondence
from .errors import FitError, InputError
from .fit import FitConfig, FittedBody, fit_body
from .frontend import PersonObservation, detect_person
from .imageio import LoadedImage, load_image
from .warp import UVTexture, image_to_uv, uv_to_image

__all__ = ["PersonAnalysis", "TransferResult", "analyse_person", "PoseTransferPipeline"]


@dataclass
class PersonAnalysis:
    """One photo, analysed at the working size.

    Attributes:
        image: (h, w, 3) uint8 RGB at the working size.
        original_size: (H, W) of the photo as loaded (after any downscale notice).
        observation: mediapipe's :class:`~reroute.frontend.PersonObservation` (working size).
        body: the fitted :class:`~reroute.fit.FittedBody` (working size camera).
        correspondence: :class:`~reroute.correspondence.Correspondence` (h, w).
        notices: messages for the user, e.g. that the photo was downscaled.
        timings: seconds per stage (``pose``, ``fit``, ``render``).
    """

    image: np.ndarray
    original_size: tuple[int, int]
    observation: PersonObservation
    body: FittedBody
    correspondence: Correspondence
    notices: list[str] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)


def _working_size(h: int, w: int, size: int) -> tuple[int, int]:
    s = size / max(h, w)
    return max(1, round(h * s)), max(1, round(w * s))


def analyse_person(photo, *, size: int | None = 256, name: str = "photo",
                   fit_config: FitConfig | None = None) -> PersonAnalysis:  # fmt: skip
    """Load a photo, detect its person, fit anny and render the correspondences.

    Args:
        photo: a path, bytes, PIL image or (H, W, 3) uint8 array (see
            :func:`reroute.imageio.load_image`).
        size: working size (longer side, pixels); ``None`` keeps the photo's size.
        name: how to call the photo in messages.
        fit_config: the fit's schedule; defaults to :class:`~reroute.fit.FitConfig`.
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


@dataclass
class TransferResult:
    """Output of :class:`PoseTransferPipeline`.

    Attributes:
        image: (H_t, W_t, 3) uint8 RGB at the target photo's resolution: the
            source person in the target person's pose.
        source, target: the two :class:`PersonAnalysis`.
        partial_texture: the source lifted into UV (T, T) with its visibility.
        texture: the completed texture (T, T).
        warped: (h, w, 3) uint8, the completed texture warped to the target's
            correspondences, at the working size (white background).
        timings: seconds per stage: pose, fit, render (both photos summed),
            warp (lift + warp back + composite), completion, total.
        notices: messages for the user.
    """

    image: np.ndarray
    source: PersonAnalysis
    target: PersonAnalysis
    partial_texture: UVTexture
    texture: UVTexture
    warped: np.ndarray
    timings: dict[str, float]
    notices: list[str]


def _background(image: np.ndarray, person: np.ndarray) -> np.ndarray:
    """The photo with its person inpainted away (OpenCV Telea), (h, w, 3) uint8."""
    hole = cv2.dilate(person.astype(np.uint8), np.ones((7, 7), np.uint8), iterations=2)
    return cv2.inpaint(image, hole, 5, cv2.INPAINT_TELEA)


class PoseTransferPipeline:
    """Pose transfer: the source photo's person re-rendered in the target photo's pose.

    Args:
        size: working size (longer side) for both photos, pixels (>= 64).
        texture_size: side T of the continuous UV texture.
        fit_config: schedule of the body fit.
        texture: texture completion, "classical" (mirror fill + push-pull) or
            "network" (the texture completion U-Net, :mod:`texture`).
        texture_checkpoint: network checkpoint (default: the committed one).

    Call it with two photos (paths, bytes, PIL images or uint8 arrays); see
    :meth:`__call__`.
    """

    def __init__(self, size: int = 256, texture_size: int = 256,
                 fit_config: FitConfig | None = None, texture: str = "classical",
                 texture_checkpoint: str | None = None):  # fmt: skip
        if size < 64:
            raise InputError(f"--size must be at least 64 px, got {size}")
        if texture not in ("classical", "network"):
            raise InputError(f"--texture must be classical or network, got {texture!r}")
        self.texture = texture
        self.texture_checkpoint = texture_checkpoint
        if texture == "network":  # a missing checkpoint fails here, before any fit
            from texture import load_default_network

            load_default_network(str(texture_checkpoint) if texture_checkpoint else None)
        self.size = size
        self.texture_size = texture_size
        self.fit_config = fit_config

    def __call__(self, source, target, progress=None) -> TransferResult:
        """Run pose transfer.

        Args:
            source: photo of the person to re-render (appearance).
            target: photo of the person whose pose to take.
            progress: optional ``progress(fraction, stage)`` callable, called
                with fraction in [0, 1] and a stage name before each stage.
        Returns:
            :class:`TransferResult`; ``image`` has the target photo's resolution.
        Raises:
            InputError: bad image, no person, several persons or failed fit in either photo.
        """

        def report(fraction: float, stage: str) -> None:
            if progress is not None:
                progress(fraction, stage)

        t0 = time.perf_counter()
        # 1. inputs first: both photos are checked before any model runs
        src_img = load_image(source, name="source photo")
        tgt_img = load_image(target, name="target photo")
        # 2-3. person, fit, correspondences
        report(0.0, "pose, fit and render: source photo")
        src = analyse_person(src_img, size=self.size, name="source photo",
                             fit_config=self.fit_config)  # fmt: skip
        report(0.45, "pose, fit and render: target photo")
        tgt = analyse_person(tgt_img, size=self.size, name="target photo",
                             fit_config=self.fit_config)  # fmt: skip
        report(0.9, "warp and complete the texture")
        timings = {k: src.timings[k] + tgt.timings[k] for k in ("pose", "fit", "render")}
        # 4. lift the source into UV
        t = time.perf_counter()
        partial = image_to_uv(src.image, src.correspondence, self.texture_size)
        timings["warp"] = time.perf_counter() - t
        # 5. complete the texture
        t = time.perf_counter()
        if self.texture == "network":
            from texture import complete_texture

            texture = complete_texture(partial, "network", self.texture_checkpoint)
        else:
            texture = complete_classical(partial)
        timings["completion"] = time.perf_counter() - t
        # 6. warp to the target's correspondences
        t = time.perf_counter()
        corr = tgt.correspondence
        warped = uv_to_image(texture, corr)
        # 7. composite over the source background, resize to the target photo
        h, w = corr.shape
        bg = _background(src.image, src.correspondence.mask)
        bg = cv2.resize(bg, (w, h), interpolation=cv2.INTER_LINEAR).astype(np.float32) / 255.0
        alpha = cv2.GaussianBlur(corr.mask.astype(np.float32), (3, 3), 0)[..., None]
        out = alpha * warped + (1 - alpha) * bg
        out8 = np.clip(np.rint(out * 255), 0, 255).astype(np.uint8)
        H, W = tgt.original_size
        if (H, W) != (h, w):
            out8 = cv2.resize(out8, (W, H), interpolation=cv2.INTER_CUBIC)
        warped8 = np.clip(np.rint((warped + (1 - corr.mask[..., None])) * 255), 0, 255)
        timings["warp"] += time.perf_counter() - t
        timings["total"] = time.perf_counter() - t0
        report(1.0, "done")
        return TransferResult(out8, src, tgt, partial, texture, warped8.astype(np.uint8),
                              timings, src.notices + tgt.notices)  # fmt: skip
