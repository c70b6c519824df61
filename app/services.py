"""The app's service layer: limits, deadlines, the checkpoint registry and shared state.

* :class:`AppLimits` and :class:`Deadline` keep one request from taking the app down;
* :func:`find_texture_checkpoint`, :func:`find_rerenderer_checkpoint`,
  :func:`find_dpt_checkpoint`, :func:`find_bodymap_checkpoint` and :func:`network_status`
  are the app's small checkpoint/model registry: which
  learned networks a ``--checkpoints`` folder makes available, and why the
  others are not;
* :class:`Services` is what every request shares: the pose-transfer pipelines
  (made once per resolution, completion, re-rendering and correspondence method), one cache of analysed
  photos (:class:`~reroute.correspondence.cache.AnalysisCache`, used by every tab
  and by those pipelines), the output folder;
* :func:`warm_up` loads the shared models once at start-up
  (:func:`reroute.pipelines.warm_up`).

Method names come from :mod:`reroute.pipelines.registry`; nothing here runs a
pipeline step itself.
"""

from __future__ import annotations

import atexit
import logging
import re
import shutil
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from reroute import AnalysisCache, LoadedImage, PersonAnalysis, UVTexture
from reroute.errors import InputError
from reroute.pipelines import warm_up as load_shared_models
from reroute.pipelines.completion import (
    DEFAULT_COMPLETION,
    LEARNED_COMPLETIONS,
    check_completion,
    load_completion,
    needs_checkpoint,
    run_completion,
)
from reroute.pipelines.correspondences import (
    DEFAULT_CORRESPONDENCE,
    LEARNED_CORRESPONDENCES,
    check_correspondence,
    load_correspondence,
)
from reroute.pipelines.dpt import DensePoseTransferPipeline
from reroute.pipelines.pose_transfer import PoseTransferPipeline
from reroute.pipelines.rerendering import LEARNED_RERENDERINGS, load_rerendering
from reroute.pipelines.views import ATLAS_TILE

__all__ = [
    "AppLimits",
    "RequestTimeout",
    "Deadline",
    "TEXTURE_SIZE",
    "TEXTURE_NETWORK",
    "RERENDERER",
    "sentence",
    "find_texture_checkpoint",
    "find_rerenderer_checkpoint",
    "find_dpt_checkpoint",
    "find_bodymap_checkpoint",
    "network_status",
    "Services",
    "warm_up",
]

log = logging.getLogger(__name__)

TEXTURE_SIZE = 256
"""Side of the continuous UV textures the app works with."""

TEXTURE_NETWORK = "texture completion"
"""Key of :func:`network_status` for the texture-completion network."""

RERENDERER = "re-renderer"
"""Key of :func:`network_status` for the neural re-renderer."""

DPT = "Dense Pose Transfer"
"""Key of :func:`network_status` for Dense Pose Transfer (also its app method label)."""

BODYMAP = "BodyMap network"
"""Key of :func:`network_status` for the BodyMap correspondence network (also its app label)."""


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
        max_more_photos: most further photos of one person fused with the first
            (the pose-transfer source, the novel-view photo).
        timeout_s: a request is stopped (between stages) once it has run this long.
    """

    max_upload_mb: int = 20
    max_side: int = 4096
    max_frames: int = 240
    max_resolution: int = 512
    max_pose_photos: int = 4
    max_more_photos: int = 4
    timeout_s: float = 300.0


class RequestTimeout(InputError):
    """The request ran past :attr:`AppLimits.timeout_s`."""


class Deadline:
    """The end of one request's time: ``seconds`` from now (monotonic clock)."""

    def __init__(self, seconds: float):
        self.seconds = seconds
        self.end = time.monotonic() + seconds

    def check(self, stage: str) -> None:
        """Raise :class:`RequestTimeout` (naming ``stage``) once the time is up."""
        if time.monotonic() > self.end:
            raise RequestTimeout(
                f"the request was stopped before {stage} because it ran longer than the "
                f"{self.seconds:g} s limit; try a smaller resolution or fewer frames"
            )


_PATH = re.compile(r"(?:/[^/\s'\"]+)+/([^/\s'\"]+)")


def sentence(text: Any) -> str:
    """One line ending in a full stop; server file paths shortened to their file names."""
    text = _PATH.sub(r"\1", " ".join(str(text).split()))
    return text if text.endswith((".", "!", "?")) else text + "."


# ------------------------------------------------------------------ checkpoint registry


def _first_loading(found: list[Path], load: Callable[[Path], Any],
                   folder: Path) -> tuple[Path | None, str | None]:  # fmt: skip
    """``(path, None)`` for the first of ``found`` that ``load`` accepts, else ``(None, reason)``."""
    if not found:
        return None, f"no checkpoint in {folder}/ yet"
    first_error = ""
    for path in found:
        try:
            load(path)
        except Exception as exc:  # noqa: BLE001 - any load failure makes it unusable
            first_error = first_error or sentence(exc).split(". ")[0].rstrip(".")[:200]
            continue
        return path, None
    return None, f"{found[0].name} is there, but reroute cannot load it ({first_error})"


def find_texture_checkpoint(checkpoints: Path | str) -> tuple[Path | None, str | None]:
    """The texture-completion checkpoint of a checkpoints folder, loaded once.

    Tries ``texture*.pt`` then ``texture*.safetensors`` in name order and loads
    the first that is a texture-completion checkpoint
    (:func:`reroute.pipelines.completion.load_completion`, cached per path, so
    the app's requests share the one network).

    Args:
        checkpoints: the checkpoints folder (``--checkpoints DIR``).
    Returns:
        ``(path, None)`` when one loads, else ``(None, reason)``: one sentence
        fragment (no checkpoint there, or the first one's load error).
    """
    folder = Path(checkpoints)
    found = [p for ext in (".pt", ".safetensors") for p in sorted(folder.glob("texture*" + ext))]

    def load(path: Path) -> None:
        for method in LEARNED_COMPLETIONS:
            load_completion(method, path)

    return _first_loading(found, load, folder)


def find_rerenderer_checkpoint(checkpoints: Path | str) -> tuple[Path | None, str | None]:
    """The neural re-renderer checkpoint of a checkpoints folder, loaded once.

    Tries ``rerenderer*.pt`` in name order and loads the first that is a
    re-renderer checkpoint (:func:`reroute.pipelines.rerendering.load_rerendering`,
    cached per path, so the app's requests share the one network).

    Args:
        checkpoints: the checkpoints folder (``--checkpoints DIR``).
    Returns:
        ``(path, None)`` when one loads, else ``(None, reason)``: one sentence
        fragment (no checkpoint there, or the first one's load error).
    """
    folder = Path(checkpoints)

    def load(path: Path) -> None:
        for method in LEARNED_RERENDERINGS:
            load_rerendering(method, str(path))

    return _first_loading(sorted(folder.glob("rerenderer*.pt")), load, folder)


def find_dpt_checkpoint(checkpoints: Path | str) -> tuple[Path | None, str | None]:
    """The Dense Pose Transfer checkpoint of a checkpoints folder, loaded once.

    Tries ``dpt*.pt`` in name order and loads the first that is a ``dpt``
    checkpoint (:class:`~reroute.pipelines.dpt.DensePoseTransferPipeline`, whose
    network is cached per path).

    Returns:
        ``(path, None)`` when one loads, else ``(None, reason)`` (one sentence fragment).
    """
    folder = Path(checkpoints)

    def load(path: Path) -> None:
        DensePoseTransferPipeline(checkpoint=str(path))

    return _first_loading(sorted(folder.glob("dpt*.pt")), load, folder)


def find_bodymap_checkpoint(checkpoints: Path | str) -> tuple[Path | None, str | None]:
    """The BodyMap correspondence network's checkpoint of a checkpoints folder, loaded once.

    Tries ``bodymap*.pt`` in name order and loads the first that is a ``bodymap``
    checkpoint (:func:`reroute.pipelines.correspondences.load_correspondence`, cached
    per path, so the app's requests share the one network).

    Returns:
        ``(path, None)`` when one loads, else ``(None, reason)`` (one sentence fragment).
    """
    folder = Path(checkpoints)

    def load(path: Path) -> None:
        for method in LEARNED_CORRESPONDENCES:
            load_correspondence(method, str(path))

    return _first_loading(sorted(folder.glob("bodymap*.pt")), load, folder)


def network_status(checkpoints: Path | str) -> dict[str, str | None]:
    """Which learned networks can be used, and why not.

    Args:
        checkpoints: the checkpoints folder (``--checkpoints DIR``).
    Returns:
        ``{"texture completion": reason, "re-renderer": reason,
        "Dense Pose Transfer": reason, "BodyMap network": reason}``: ``None`` when
        usable (a checkpoint of that network loads: :func:`find_texture_checkpoint`,
        :func:`find_rerenderer_checkpoint`, :func:`find_dpt_checkpoint`,
        :func:`find_bodymap_checkpoint`), else one sentence fragment saying why not.
    """
    folder = Path(checkpoints)
    return {TEXTURE_NETWORK: find_texture_checkpoint(folder)[1],
            RERENDERER: find_rerenderer_checkpoint(folder)[1], DPT: find_dpt_checkpoint(folder)[1],
            BODYMAP: find_bodymap_checkpoint(folder)[1]}  # fmt: skip


# ------------------------------------------------------------------ shared services


class Services:
    """What every request shares: pipelines, a cache of analysed photos, limits.

    Args:
        pipeline_factory: makes the pose-transfer pipeline; called once with no
            arguments for the default resolution (256) and classical completion,
            with ``size=`` for other resolutions when it accepts that keyword,
            with ``texture="network", texture_checkpoint=PATH`` for the
            network completion and with ``rerender="network",
            rerender_checkpoint=PATH`` for the neural re-renderer and with
            ``correspondence="bodymap", bodymap_checkpoint=PATH`` for BodyMap
            correspondences (only the keywords of what differs from the defaults); each call also
            passes ``cache=`` (:attr:`analysis_cache`) when the factory takes it
            (a factory that raises TypeError for it is called without it).
            Pipelines are cached per (size, completion, re-renderer on, correspondence method).
            Dense Pose Transfer has its own pipeline (:meth:`dpt_pipeline_for`).
        checkpoints: folder of trained weights.
        limits: :class:`AppLimits`.
        workdir: where output files (videos, PNGs) are written; a temporary
            folder removed at exit when ``None``.
        cache_size: analysed photos kept (least recently used dropped first).

    Attributes:
        analysis_cache: the :class:`~reroute.correspondence.cache.AnalysisCache` (in
            memory) shared by every tab and pose-transfer pipeline.
    """

    def __init__(self, pipeline_factory: Callable[..., Any] = PoseTransferPipeline, *,
                 checkpoints: Path | str = "checkpoints", limits: AppLimits | None = None,
                 workdir: Path | None = None, cache_size: int = 16):  # fmt: skip
        self.pipeline_factory = pipeline_factory
        self.analysis_cache = AnalysisCache(max_items=cache_size)
        self.pipeline = self._make_pipeline()
        self._pipelines: dict[tuple[int, str, bool, str], Any] = {
            (getattr(self.pipeline, "size", 256), DEFAULT_COMPLETION, False,
             DEFAULT_CORRESPONDENCE): self.pipeline
        }  # fmt: skip
        self.checkpoints = Path(checkpoints)
        self.texture_checkpoint, _ = find_texture_checkpoint(self.checkpoints)
        self.rerender_checkpoint, _ = find_rerenderer_checkpoint(self.checkpoints)
        self.dpt_checkpoint, _ = find_dpt_checkpoint(self.checkpoints)
        self.bodymap_checkpoint, _ = find_bodymap_checkpoint(self.checkpoints)
        self.networks = network_status(self.checkpoints)
        self.limits = limits or AppLimits()
        if workdir is None:
            workdir = Path(tempfile.mkdtemp(prefix="reroute-app-"))
            atexit.register(shutil.rmtree, workdir, ignore_errors=True)
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()

    def _make_pipeline(self, **kwargs: Any) -> Any:
        """``pipeline_factory(**kwargs, cache=analysis_cache)``, or without ``cache`` when the
        factory does not take it (raises TypeError)."""
        try:
            return self.pipeline_factory(**kwargs, cache=self.analysis_cache)
        except TypeError:  # a factory without the keyword, e.g. a stand-in
            return self.pipeline_factory(**kwargs)

    def pipeline_for(self, size: int, completion: str = DEFAULT_COMPLETION, rerender: bool = False,
                     correspondence: str = DEFAULT_CORRESPONDENCE) -> Any:  # fmt: skip
        """The pose-transfer pipeline at ``size`` px with ``completion``, re-rendered by the
        neural re-renderer when ``rerender``, on ``correspondence`` (``fit`` or ``bodymap``)
        correspondences (made once per combination).

        Raises:
            InputError: ``completion`` is unknown, or learned and no texture checkpoint
                loads; ``rerender`` and no re-renderer checkpoint loads; ``correspondence``
                is unknown, or learned and no BodyMap checkpoint loads (the reason).
        """
        self.check_completion(completion)
        self.check_rerenderer(rerender)
        kwargs: dict[str, Any] = {"size": size, **self._correspondence_kwargs(correspondence)}
        if needs_checkpoint(completion):
            kwargs.update(texture=completion, texture_checkpoint=str(self.texture_checkpoint))
        if rerender:
            kwargs.update(rerender="network", rerender_checkpoint=str(self.rerender_checkpoint))
        key = (size, completion, bool(rerender), correspondence)
        with self._lock:
            if key not in self._pipelines:
                try:
                    self._pipelines[key] = self._make_pipeline(**kwargs)
                except TypeError:  # a factory without these keywords: its own size, classical
                    wanted = [what for what, on in (
                        ("the neural re-renderer", rerender),
                        (f"{completion} texture completion", needs_checkpoint(completion)),
                        (f"{correspondence} correspondences", correspondence != DEFAULT_CORRESPONDENCE),
                    ) if on]  # fmt: skip
                    if wanted:
                        msg = f"{wanted[0]} is unavailable: this pipeline cannot use it"
                        raise InputError(msg) from None
                    return self.pipeline
            return self._pipelines[key]

    def dpt_pipeline_for(self, size: int,
                         correspondence: str = DEFAULT_CORRESPONDENCE) -> DensePoseTransferPipeline:  # fmt: skip
        """The Dense Pose Transfer pipeline at ``size`` px on ``correspondence``
        correspondences (made once per size and method; it shares :attr:`analysis_cache`
        with the other pipelines).

        Raises:
            InputError: no Dense Pose Transfer checkpoint loads; ``correspondence`` is
                unknown, or learned and no BodyMap checkpoint loads (the reason).
        """
        if self.networks[DPT]:
            raise InputError(f"{DPT} is unavailable: {self.networks[DPT]}")
        how = self._correspondence_kwargs(correspondence)
        key = (size, "dpt", False, correspondence)
        with self._lock:
            if key not in self._pipelines:
                self._pipelines[key] = DensePoseTransferPipeline(
                    size=size, checkpoint=str(self.dpt_checkpoint), cache=self.analysis_cache, **how)
            return self._pipelines[key]

    def check_correspondence(self, correspondence: Any) -> str:
        """``correspondence`` if it is a known and usable correspondence method
        (``fit``, or ``bodymap`` when its checkpoint loaded).

        Raises:
            InputError: unknown, or learned and no BodyMap checkpoint loads (the reason).
        """
        check_correspondence(correspondence)
        reason = self.networks[BODYMAP]
        if correspondence in LEARNED_CORRESPONDENCES and reason:
            raise InputError(f"the {BODYMAP} is unavailable: {reason}")
        return correspondence

    def _correspondence_kwargs(self, correspondence: str) -> dict[str, Any]:
        """The pipeline keywords of ``correspondence`` (none for the default ``fit``)."""
        self.check_correspondence(correspondence)
        if correspondence == DEFAULT_CORRESPONDENCE:
            return {}
        return {"correspondence": correspondence, "bodymap_checkpoint": str(self.bodymap_checkpoint)}

    def check_rerenderer(self, rerender: Any) -> bool:
        """``bool(rerender)`` if the neural re-renderer is off or usable.

        Raises:
            InputError: asked for, and no re-renderer checkpoint loads (the reason).
        """
        reason = self.networks[RERENDERER]
        if rerender and reason:
            raise InputError(f"the neural re-renderer is unavailable: {reason}")
        return bool(rerender)

    def check_completion(self, completion: Any) -> str:
        """``completion`` if it is a known and usable texture completion.

        Raises:
            InputError: unknown, or learned and no texture checkpoint loads (the reason).
        """
        check_completion(completion)
        reason = self.networks[TEXTURE_NETWORK]
        if needs_checkpoint(completion) and reason:
            raise InputError(f"{completion} texture completion is unavailable: {reason}")
        return completion

    def checkpoint_for(self, completion: str) -> str | None:
        """The checkpoint ``completion`` runs with: this app's texture checkpoint, or ``None``."""
        if needs_checkpoint(completion) and self.texture_checkpoint is not None:
            return str(self.texture_checkpoint)
        return None

    def complete(self, partial: UVTexture, completion: str = DEFAULT_COMPLETION) -> UVTexture:
        """A (T, T) partial texture completed with ``completion`` and this app's checkpoint.

        Raises:
            InputError: see :meth:`check_completion`.
        """
        self.check_completion(completion)
        return run_completion(partial, completion, self.checkpoint_for(completion))

    def check_resolution(self, resolution: Any) -> int:
        """``resolution`` as int pixels in 64..:attr:`AppLimits.max_resolution`, else InputError."""
        try:
            size = int(resolution)
        except (TypeError, ValueError):
            raise InputError(f"resolution must be a number of pixels, got {resolution!r}") from None
        hi = self.limits.max_resolution
        if not 64 <= size <= hi:
            raise InputError(f"resolution must be between 64 and {hi} px, got {size}")
        return size

    def is_cached(self, photo: LoadedImage, size: int) -> bool:
        """Whether :meth:`analyse` has this photo at this size already."""
        return self.analysis_cache.contains(photo, size)

    def analyse(self, photo: LoadedImage, *, size: int, name: str) -> PersonAnalysis:
        """:func:`reroute.analyse_person`, cached by pixel content and size
        (:meth:`~reroute.correspondence.cache.AnalysisCache.get_or_analyse`).

        Raises:
            InputError: no person, several persons, failed fit (not cached).
        """
        return self.analysis_cache.get_or_analyse(photo, size=size, name=name)

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

    def deadline(self) -> Deadline:
        """A :class:`Deadline` :attr:`AppLimits.timeout_s` from now."""
        return Deadline(self.limits.timeout_s)


def warm_up() -> None:
    """Load the shared models once: anny + template, mediapipe, the warp kernel, UV layouts;
    and compile the body fit when ``REROUTE_COMPILE_FIT=1`` (``launch.py --compile-fit``)."""
    seconds = load_shared_models(TEXTURE_SIZE, ATLAS_TILE)
    log.info("models loaded in %.1f s", seconds)
