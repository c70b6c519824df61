"""The Gradio app's layout: pose transfer, virtual try-on, novel-view video and UV textures.

:func:`build_app` makes the :class:`gradio.Blocks`, one tab per workflow
(each built by its own ``_*_tab`` function), and wires every button to its
callback in :mod:`app.callbacks`; what requests share (models loaded once,
the analysis cache, limits, the checkpoint registry) is in :mod:`app.services`.
The queue runs ``concurrency`` requests at a time.
Problems caused by the input (not an image, no person, several persons, a
failed fit, a value out of range, a request over the time limit) come back as
one sentence in the status line, as data, so browser users and
``gradio_client`` callers both see them and the app stays up. Learned networks
(texture completion, neural re-renderer, Dense Pose Transfer) are offered only
when their checkpoint exists and loads; otherwise the choices say why they
are absent and the classical path runs. The texture-completion network (a
``texture*.pt`` checkpoint in ``--checkpoints``, :mod:`texture`) is loaded once
at start-up and offered in every tab that completes a texture; the neural
re-renderer (a ``rerenderer*.pt`` checkpoint, :mod:`renderer`) is loaded once at
start-up and offered in the pose-transfer tab (``rerenderer=True``; the ``ok:``
status then gives its time); Dense Pose Transfer (a ``dpt*.pt`` checkpoint,
:mod:`reroute.pipelines.dpt`) is offered as the pose-transfer tab's second method
(``method="Dense Pose Transfer"``; completion and re-renderer do not apply; its
``partial_texture`` and ``completed_texture`` outputs are ``None``, ``atlas`` is its
inpainted 24-part atlas and ``warped`` its warping stream's output); the BodyMap
correspondence network (a ``bodymap*.pt`` checkpoint, :mod:`reroute.correspondence.bodymap`)
is offered in the pose-transfer tab as ``correspondences="BodyMap network"``: both
photos' fitted correspondences are refined by it before either method runs (the
``ok:`` status then gives its time as ``BodyMap network ... s``).

API (``gradio_client``; photos as ``handle_file(path)``; every status starts
with ``ok:`` or ``error:``, and image outputs are ``None`` on error)::

    /transfer    (source, target, method="BodyMap re-rendering", resolution=256,
                  completion="classical", rerenderer=False, seed=0, correspondences="fit",
                  maps=False)
                 -> (result, status, source_iuv, target_iuv, partial_texture,
                     completed_texture, atlas, warped, source_fit, target_fit)
                 (the eight maps are None unless maps=True: drawing and sending them
                 cost about half a second a request under load)
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
``correspondences`` is ``fit`` or ``BodyMap network`` (refused with its reason
when no BodyMap checkpoint loads).
The names come from :mod:`reroute.pipelines.registry` (``APP_METHODS``,
``APP_CORRESPONDENCES``, ``TEXTURE_COMPLETIONS``, ``TRYON_REGIONS``).
"""

from __future__ import annotations

import atexit
import hashlib
import logging
import os
import shutil
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import gradio as gr
import numpy as np
from PIL import Image

from app.callbacks import (
    DEFAULT_CORRESPONDENCES,
    DEFAULT_METHOD,
    DEFAULT_REGION,
    novel_view_callback,
    retexture_callback,
    texture_callback,
    transfer_callback,
    try_on_callback,
)
from app.services import BODYMAP, RERENDERER, TEXTURE_NETWORK, AppLimits, Services, warm_up
from reroute.pipelines.completion import DEFAULT_COMPLETION, needs_checkpoint
from reroute.pipelines.pose_transfer import PoseTransferPipeline
from reroute.pipelines.registry import (
    APP_CORRESPONDENCES,
    APP_METHODS,
    TEXTURE_COMPLETIONS,
    TRYON_REGIONS,
)

__all__ = ["build_app", "PhotoInput", "example_images", "EXAMPLES_DIR", "RESOLUTIONS"]

log = logging.getLogger(__name__)

EXAMPLES_DIR = Path(__file__).resolve().parent / "examples"
"""Bundled example photos (``synthetic_*.png``: anny renders), if any."""

RESOLUTIONS = (128, 192, 256, 384, 512)
"""Working sizes (longer side, pixels) offered in the UI."""


# ------------------------------------------------------------------ examples


def _write_builtin_examples(folder: Path) -> list[Path]:
    """Photos shipped inside installed packages, written as PNG to ``folder``."""
    out: list[Path] = []
    try:
        import skimage.data  # only here: scikit-image is slow to import and only an example

        p = folder / "astronaut.png"
        Image.fromarray(skimage.data.astronaut()).save(p)
        out.append(p)
    except Exception as exc:  # an example is a convenience, never a start-up failure
        log.warning("astronaut example unavailable: %s", exc)
    try:
        import matplotlib.cbook  # only here: matplotlib is slow to import and only an example

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


def _bundled(name: str) -> str | None:
    p = EXAMPLES_DIR / name
    return str(p) if p.is_file() else None


# ------------------------------------------------------------------ components


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


#: zlib level of the PNGs the app sends (1: fastest; gradio's PIL default 6 took
#: 0.27 s for a transfer's 8 small maps on 2 cores, level 1 with OpenCV 0.05 s)
PNG_COMPRESSION = 1


def _out_image(label: str, elem_id: str | None = None) -> gr.Image:
    """An output ``gr.Image`` whose (H, W, 3) uint8 results are written as fast PNGs.

    Callbacks return numpy arrays; this component's ``postprocess`` encodes
    them with OpenCV at :data:`PNG_COMPRESSION` into gradio's cache folder
    (one sub-folder per content hash, as gradio names its own) and hands
    gradio the file, instead of gradio's slower PIL encoding. Anything else
    goes to gradio's own ``postprocess``.
    """
    comp = gr.Image(type="numpy", format="png", label=label, interactive=False, elem_id=elem_id)
    original = comp.postprocess

    def postprocess(value):
        if (isinstance(value, np.ndarray) and value.dtype == np.uint8 and value.ndim == 3
                and value.shape[2] == 3):  # fmt: skip
            ok, buf = cv2.imencode(".png", np.ascontiguousarray(value[..., ::-1]),
                                   [cv2.IMWRITE_PNG_COMPRESSION, PNG_COMPRESSION])  # fmt: skip
            if ok:
                data = buf.tobytes()
                folder = Path(comp.GRADIO_CACHE) / hashlib.sha256(data).hexdigest()
                folder.mkdir(parents=True, exist_ok=True)
                path = folder / "image.png"
                if not path.exists():
                    tmp = folder / f".image-{threading.get_ident()}.png"
                    tmp.write_bytes(data)
                    os.replace(tmp, path)
                return original(str(path))
        return original(value)

    comp.postprocess = postprocess  # type: ignore[method-assign]
    return comp


def _resolution_input(services: Services, value: int = 256,
                      label: str = "Working resolution (px, longer side)") -> gr.Dropdown:  # fmt: skip
    choices = [r for r in RESOLUTIONS if r <= services.limits.max_resolution]
    return gr.Dropdown(choices, value=value, label=label)


def _completion_input(services: Services) -> gr.Radio:
    """Texture completion: the learned one offered only when its checkpoint loaded."""
    reason = services.networks[TEXTURE_NETWORK]
    ckpt = services.texture_checkpoint
    how = f"unavailable: {reason}" if reason else f"U-Net from {ckpt.name if ckpt else ''}"
    learned = "; ".join(f"{m}: {how}" for m in TEXTURE_COMPLETIONS if needs_checkpoint(m))
    return gr.Radio(
        [m for m in TEXTURE_COMPLETIONS if not (reason and needs_checkpoint(m))],
        value=DEFAULT_COMPLETION, label="Texture completion",
        info=f"{DEFAULT_COMPLETION} = mirror fill + push-pull; {learned}",
    )  # fmt: skip


def _method_input(services: Services) -> gr.Radio:
    """Pose-transfer method: those whose networks are unavailable are listed with the reason."""
    unavailable = {m: services.networks[m] for m in APP_METHODS if services.networks.get(m)}
    return gr.Radio(
        [m for m in APP_METHODS if m not in unavailable], value=DEFAULT_METHOD, label="Method",
        info="; ".join(f"{m}: {why}" for m, why in unavailable.items()) or None,
    )  # fmt: skip


def _correspondence_input(services: Services) -> gr.Radio:
    """Correspondences: the fit, and the BodyMap network only when its checkpoint loaded
    (else listed with the reason)."""
    reason = services.networks[BODYMAP]
    ckpt = services.bodymap_checkpoint
    learned = [label for label in APP_CORRESPONDENCES if label != DEFAULT_CORRESPONDENCES]
    how = f"unavailable: {reason}" if reason else f"refines the fit; from {ckpt.name if ckpt else ''}"
    return gr.Radio(
        [label for label in APP_CORRESPONDENCES if not (reason and label in learned)],
        value=DEFAULT_CORRESPONDENCES, label="Correspondences",
        info=f"{DEFAULT_CORRESPONDENCES} = the template fit rendered; "
        + "; ".join(f"{label}: {how}" for label in learned),
    )  # fmt: skip


# ------------------------------------------------------------------ tabs
# Gradio reads the callbacks' signatures (parameter names and defaults become
# the API's); progress must be a gr.Progress default.


def _transfer_options(services: Services) -> list[gr.components.Component]:
    """The pose-transfer options: method, resolution, completion, re-renderer, seed,
    correspondences."""
    net = services.networks
    with gr.Accordion("Options", open=False):
        with gr.Row():
            method = _method_input(services)
            correspondences = _correspondence_input(services)
        with gr.Row():
            resolution = _resolution_input(services)
            completion = _completion_input(services)
            ckpt = services.rerender_checkpoint
            rerenderer = gr.Checkbox(
                value=not net[RERENDERER], label="Neural re-renderer", interactive=not net[RERENDERER],
                info=f"unavailable: {net[RERENDERER]}" if net[RERENDERER]
                else f"BodyMap re-renderer from {ckpt.name if ckpt else ''}",
            )  # fmt: skip
            seed = gr.Number(
                value=0, precision=0, label="Seed",
                info="for the learned networks; the classical path is deterministic",
            )  # fmt: skip
    return [method, resolution, completion, rerenderer, seed, correspondences]


def _transfer_maps() -> tuple[gr.Checkbox, list[gr.Image]]:
    """The accordion of intermediate maps: the box that asks for them (the ``maps``
    input of ``/transfer``) and the maps, in the order of the ``/transfer`` outputs."""
    with gr.Accordion("Intermediate maps", open=False):
        wanted = gr.Checkbox(
            value=False, label="Compute the intermediate maps", elem_id="pt-maps",
            info="with each transfer; off, a transfer under load answers about half a second sooner",
        )  # fmt: skip
        with gr.Row():
            src_iuv = _out_image("Source IUV")
            tgt_iuv = _out_image("Target IUV")
            warped = _out_image("Warped texture")
        with gr.Row():
            partial = _out_image("Partial UV texture")
            completed = _out_image("Completed UV texture")
            atlas = _out_image("DensePose atlas (completed)")
        gr.Markdown("Fitted bodies: IUV over the photo, landmarks green, fitted keypoints red.")
        with gr.Row():
            src_fit = _out_image("Fitted body: source")
            tgt_fit = _out_image("Fitted body: target")
    return wanted, [src_iuv, tgt_iuv, partial, completed, atlas, warped, src_fit, tgt_fit]


def _more_photos_input(services: Services, who: str, elem_id: str) -> gr.File:
    """An optional upload of further photos of one person (fused with the first photo's
    texture, :func:`~reroute.uv.texture.fuse_textures`)."""
    return gr.File(
        file_count="multiple", file_types=["image"], elem_id=elem_id, height=150,
        label=f"Optional: up to {services.limits.max_more_photos} more photos of {who} in the "
        "same clothes (e.g. from the back), to show what the first photo does not",
    )  # fmt: skip


def _transfer_tab(services: Services, examples: bool) -> None:
    """The "Pose transfer" tab and its ``/transfer`` endpoint."""

    def transfer(source, target, method, resolution, completion, rerenderer, seed,
                 correspondences=DEFAULT_CORRESPONDENCES, maps=False, more_sources=None,
                 progress=gr.Progress()):  # noqa: B008  # fmt: skip
        return transfer_callback(services, source, target, method, resolution, completion,
                                 rerenderer, seed, correspondences, maps, more_sources,
                                 progress=progress)  # fmt: skip

    with gr.Tab("Pose transfer", id="transfer"):
        with gr.Row():
            with gr.Column():
                source = PhotoInput(label="Source photo (the person)", elem_id="pt-source")
                more_sources = _more_photos_input(services, "the source person", "pt-more")
            target = PhotoInput(label="Target photo (the pose)", elem_id="pt-target")
            result = _out_image("Result", "pt-result")
        options = _transfer_options(services)
        button = gr.Button("Transfer", variant="primary", elem_id="pt-run")
        status = gr.Markdown(
            "Upload a source and a target photo, then press Transfer.", elem_id="pt-status"
        )
        wanted, maps = _transfer_maps()
        if examples:
            pairs = example_images()
            if pairs:
                gr.Examples(pairs, inputs=[source, target], cache_examples=False)
    button.click(transfer, inputs=[source, target, *options, wanted, more_sources],
                 outputs=[result, status, *maps], api_name="transfer")  # fmt: skip


def _try_on_tab(services: Services, examples: bool) -> None:
    """The "Try-on" tab and its ``/try_on`` endpoint."""

    def try_on(donor, wearer, region, resolution, pose_photos=None,
               completion=DEFAULT_COMPLETION, progress=gr.Progress()):  # noqa: B008  # fmt: skip
        return try_on_callback(services, donor, wearer, region, resolution, pose_photos,
                               completion, progress)  # fmt: skip

    with gr.Tab("Try-on", id="try_on"):
        with gr.Row():
            donor = PhotoInput(label="Garment donor photo", elem_id="to-donor")
            wearer = PhotoInput(label="Wearer photo", elem_id="to-wearer")
            result = _out_image("Result (wearer's pose)", "to-result")
        with gr.Row():
            region = gr.Radio(
                list(TRYON_REGIONS), value=DEFAULT_REGION, label="What to swap",
                info="UV regions of the body template; the wearer keeps face, hair and hands",
            )  # fmt: skip
            resolution = _resolution_input(services)
            completion = _completion_input(services)
        pose_photos = gr.File(
            file_count="multiple", file_types=["image"],
            label=f"Optional: up to {services.limits.max_pose_photos} more photos whose poses "
            "to show the new outfit in (BodyMap supp. fig. 5)",
        )  # fmt: skip
        button = gr.Button("Swap", variant="primary", elem_id="to-run")
        status = gr.Markdown(
            "Upload a garment donor and a wearer photo, then press Swap.", elem_id="to-status"
        )
        gallery = gr.Gallery(label="The new outfit in further poses", columns=4)
        with gr.Accordion("Intermediate maps", open=False):
            with gr.Row():
                mixed = _out_image("Mixed UV texture")
                region_mask = _out_image("Replaced pixels")
                donor_fit = _out_image("Fitted body: donor")
                wearer_fit = _out_image("Fitted body: wearer")
        if examples:
            ex = [_bundled("synthetic_turned.png"), _bundled("synthetic_arms_down.png")]
            if all(ex):
                gr.Examples([[ex[0], ex[1], TRYON_REGIONS[0]], [ex[0], ex[1], TRYON_REGIONS[-1]]],
                            inputs=[donor, wearer, region], cache_examples=False)  # fmt: skip
    button.click(
        try_on,
        inputs=[donor, wearer, region, resolution, pose_photos, completion],
        outputs=[result, status, mixed, donor_fit, wearer_fit, region_mask, gallery],
        api_name="try_on",
    )


def _novel_view_tab(services: Services, examples: bool) -> None:
    """The "Novel view" tab and its ``/novel_view`` endpoint."""

    def novel_view(photo, frames, turn, elevation, fps, resolution,
                   completion=DEFAULT_COMPLETION, more_photos=None,
                   progress=gr.Progress()):  # noqa: B008  # fmt: skip
        return novel_view_callback(services, photo, frames, turn, elevation, fps, resolution,
                                   completion, more_photos, progress)  # fmt: skip

    with gr.Tab("Novel view", id="novel_view"):
        with gr.Row():
            with gr.Column():
                photo = PhotoInput(label="Photo", elem_id="nv-photo")
                more_photos = _more_photos_input(services, "the person", "nv-more")
            video = gr.Video(label="Novel-view video (H.264 MP4)", elem_id="nv-video",
                             interactive=False)  # fmt: skip
        with gr.Row():
            frames = gr.Slider(2, services.limits.max_frames, value=24, step=1, label="Frames")
            turn = gr.Slider(-360, 360, value=360, step=5, label="Turn angle (degrees)")
            elevation = gr.Slider(-45, 45, value=0, step=5, label="Elevation (degrees)")
            fps = gr.Slider(1, 60, value=24, step=1, label="Frames per second")
            resolution = _resolution_input(services, 256, "Resolution (px, longer side)")
            completion = _completion_input(services)
        gr.Markdown(
            "<small>Re-posing along a motion (anny's walk cycle, a target video's poses) "
            "is not available yet: anny's walk cycle is an IK rig that reroute cannot "
            "retarget so far.</small>"
        )
        button = gr.Button("Render video", variant="primary", elem_id="nv-run")
        status = gr.Markdown("Upload a photo, then press Render video.", elem_id="nv-status")
        strip = _out_image("Frame strip", "nv-strip")
        if examples:
            ex = [p for p in (_bundled("synthetic_arms_down.png"),
                              _bundled("synthetic_turned.png")) if p]  # fmt: skip
            if ex:
                gr.Examples([[p] for p in ex], inputs=[photo], cache_examples=False)
    button.click(
        novel_view,
        inputs=[photo, frames, turn, elevation, fps, resolution, completion, more_photos],
        outputs=[video, strip, status],
        api_name="novel_view",
    )


def _texture_tab(services: Services, examples: bool) -> None:
    """The "Texture" tab and its ``/texture`` and ``/retexture`` endpoints."""

    def texture(photo, resolution, completion=DEFAULT_COMPLETION,
                progress=gr.Progress()):  # noqa: B008  # fmt: skip
        return texture_callback(services, photo, resolution, completion, progress)

    def retexture(photo, tex, resolution, progress=gr.Progress()):  # noqa: B008
        return retexture_callback(services, photo, tex, resolution, progress)

    with gr.Tab("Texture", id="texture"):
        with gr.Row():
            photo = PhotoInput(label="Photo", elem_id="tx-photo")
            tex = _out_image("Completed UV texture", "tx-texture")
            atlas = _out_image("DensePose atlas", "tx-atlas")
        with gr.Row():
            resolution = _resolution_input(services)
            completion = _completion_input(services)
        button = gr.Button("Extract texture", variant="primary", elem_id="tx-run")
        status = gr.Markdown("Upload a photo, then press Extract texture.", elem_id="tx-status")
        with gr.Row():
            tex_file = gr.File(label="UV texture (PNG)", interactive=False)
            atlas_file = gr.File(label="DensePose atlas (PNG)", interactive=False)
        gr.Markdown("### Re-render with an edited texture (UV texture or atlas PNG)")
        with gr.Row():
            edited = PhotoInput(label="Edited texture", sources=["upload"], elem_id="rt-texture")
            rt_result = _out_image("Re-rendered", "rt-result")
        rt_button = gr.Button("Re-render", elem_id="rt-run")
        rt_status = gr.Markdown("", elem_id="rt-status")
        if examples:
            ex = _bundled("synthetic_arms_down.png")
            if ex:
                gr.Examples([[ex]], inputs=[photo], cache_examples=False)
    button.click(
        texture,
        inputs=[photo, resolution, completion],
        outputs=[tex, atlas, tex_file, atlas_file, status],
        api_name="texture",
    )
    rt_button.click(retexture, inputs=[photo, edited, resolution], outputs=[rt_result, rt_status],
                    api_name="retexture")  # fmt: skip


# ------------------------------------------------------------------ the app


def build_app(pipeline_factory: Callable[..., Any] = PoseTransferPipeline, *,
              device: str = "cpu", examples: bool = True, checkpoints: Path | str = "checkpoints",
              limits: AppLimits | None = None, concurrency: int = 8,
              load_models: bool = True) -> gr.Blocks:  # fmt: skip
    """Build the Gradio app.

    Args:
        pipeline_factory: makes the pose-transfer pipeline every request shares
            (see :class:`~app.services.Services`).
        device: shown in the page footer (the pipelines run on the CPU until
            the learned networks land).
        examples: add example photos (package photos and synthetic renders).
        checkpoints: folder of trained weights; decides which learned options exist.
        limits: :class:`~app.services.AppLimits`.
        concurrency: requests run at the same time (the queue holds the rest). Their
            body fits are merged into shared batches (:class:`reroute.body.FitBatcher`),
            so 8 simultaneous transfers finish sooner at 8 than at 2 (p95 3.5-4.3 s
            against 5.2-5.7 s, ``benchmarks/app_load.py``).
        load_models: load the shared models now (see :func:`~app.services.warm_up`).
    Returns:
        The :class:`gradio.Blocks`, its queue enabled. Endpoints: ``/transfer``,
        ``/try_on``, ``/novel_view``, ``/texture``, ``/retexture`` (see the module doc).
    """
    services = Services(pipeline_factory, checkpoints=checkpoints, limits=limits)
    lim = services.limits
    if load_models:
        warm_up()
    with gr.Blocks(title="reroute", delete_cache=(3600, 3600)) as demo:
        gr.Markdown(
            "# reroute\nRe-render a person from one photo through dense body correspondences "
            "(anny body model fitted to mediapipe landmarks): pose transfer, try-on, "
            "novel-view video and UV textures. Every result says how it was made; "
            f"uploads up to {lim.max_upload_mb} MB, photos over {lim.max_side} px are "
            f"downscaled, requests stop after {lim.timeout_s:g} s."
        )
        for tab in (_transfer_tab, _try_on_tab, _novel_view_tab, _texture_tab):
            tab(services, examples)
        gr.Markdown(
            f"<small>device: {device} · checkpoints: {services.checkpoints} · "
            f"{concurrency} requests at a time</small>"
        )
    demo.queue(default_concurrency_limit=concurrency, max_size=64)
    return demo
