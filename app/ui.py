"""The Gradio app: pose transfer with its intermediate maps.

:func:`build_app` makes the :class:`gradio.Blocks`. One pipeline is created when
the app is built and shared by every request (mediapipe and anny load once per
process; the pipeline's models guard themselves with locks). Problems caused by
the input (not an image, no person, several persons, a failed fit) come back as
one sentence in the status line, as data, so that browser users and
``gradio_client`` callers both see them and the app stays up.

API (``gradio_client``)::

    client.predict(handle_file(source), handle_file(target), api_name="/transfer")

returns ``(result, status, source_iuv, target_iuv, partial_texture,
completed_texture, atlas, warped)``: image file paths (``None`` on error)
and the status text, which starts with ``ok:`` or ``error:``.
"""

from __future__ import annotations

import atexit
import inspect
import logging
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gradio as gr
import numpy as np

from reroute.correspondence import iuv_to_rgb
from reroute.errors import InputError
from reroute.pipeline import PoseTransferPipeline, TransferResult
from reroute.warp import UVTexture, continuous_to_atlas

__all__ = ["build_app", "run_transfer", "example_images", "N_OUTPUTS"]

log = logging.getLogger(__name__)

EXAMPLES_DIR = Path(__file__).resolve().parent / "examples"
"""Bundled example photos (``synthetic_*.png``: anny renders), if any."""

ATLAS_TILE = 128
"""Tile size of the DensePose atlas shown among the intermediate maps."""

N_OUTPUTS = 8
"""Outputs of :func:`run_transfer`: result, status and six intermediate maps."""

_STAGES = (
    (0.0, "checking the photos"),
    (0.05, "finding the people and fitting the body model"),
    (0.9, "warping the texture"),
    (1.0, "done"),
)


def _to_uint8(x: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(np.asarray(x, np.float32) * 255.0), 0, 255).astype(np.uint8)


def _partial_view(tex: UVTexture, background: float = 0.85) -> np.ndarray:
    """A partial texture as uint8 RGB, unobserved texels light gray."""
    vis = np.clip(tex.visibility, 0.0, 1.0)[..., None]
    return _to_uint8(tex.pixels * vis + background * (1.0 - vis))


def intermediate_maps(res: TransferResult) -> list[np.ndarray]:
    """The six viewable maps of a transfer, in the order of the app's outputs.

    Source IUV, target IUV (both :func:`~reroute.correspondence.iuv_to_rgb`),
    partial texture, completed texture, DensePose atlas of the completed
    texture, and the warped image; each ``(h, w, 3)`` uint8 RGB.
    """
    return [
        iuv_to_rgb(res.source.correspondence.to_iuv()),
        iuv_to_rgb(res.target.correspondence.to_iuv()),
        _partial_view(res.partial_texture),
        res.texture.to_uint8(),
        _to_uint8(continuous_to_atlas(res.texture.pixels, tile=ATLAS_TILE)),
        res.warped,
    ]


def _sentence(text: str) -> str:
    text = " ".join(str(text).split())
    return text if text.endswith((".", "!", "?")) else text + "."


def run_transfer(pipeline: Callable[..., TransferResult], source: Any, target: Any,
                 progress: Callable[..., Any] | None = None) -> tuple:  # fmt: skip
    """The app's callback: run ``pipeline(source, target)`` and format its outputs.

    Args:
        pipeline: a :class:`~reroute.pipeline.PoseTransferPipeline` (or anything
            called the same way). If its ``__call__`` takes a ``progress``
            keyword, it is passed a callable ``progress(fraction, stage)``.
        source, target: (H, W, 3) uint8 arrays from ``gr.Image`` or ``None``.
        progress: a :class:`gradio.Progress` (or ``None``).
    Returns:
        ``N_OUTPUTS`` values: the result image (``None`` on error), the status
        line (``"ok: ..."`` or ``"error: <one sentence>"``) and the six maps of
        :func:`intermediate_maps` (``None`` on error).
    """
    empty = (None,) * (N_OUTPUTS - 2)

    def step(fraction: float, stage: str) -> None:
        if progress is not None:
            progress(fraction, desc=stage)

    if source is None or target is None:
        which = "a source photo" if source is None else "a target photo"
        if source is None and target is None:
            which = "a source and a target photo"
        return (None, f"error: upload {which}.", *empty)
    step(*_STAGES[0])
    kwargs: dict[str, Any] = {}
    if _takes_progress(pipeline):
        kwargs["progress"] = lambda fraction, stage: step(0.05 + 0.9 * fraction, stage)
    else:
        step(*_STAGES[1])
    try:
        res = pipeline(source, target, **kwargs)
    except InputError as exc:
        log.info("transfer refused: %s", exc)
        return (None, f"error: {_sentence(exc)}", *empty)
    step(*_STAGES[2])
    maps = intermediate_maps(res)
    step(*_STAGES[3])
    t = res.timings
    parts = ", ".join(f"{k} {t[k]:.1f} s" for k in ("pose", "fit", "completion") if k in t)
    status = f"ok: pose transferred in {t.get('total', 0.0):.1f} s ({parts})."
    if res.notices:
        status += " Note: " + "; ".join(res.notices) + "."
    return (res.image, status, *maps)


def _takes_progress(pipeline: Callable[..., Any]) -> bool:
    try:
        return "progress" in inspect.signature(pipeline).parameters
    except (TypeError, ValueError):
        return False


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


def build_app(pipeline_factory: Callable[[], Any] = PoseTransferPipeline, *,
              device: str = "cpu", examples: bool = True) -> gr.Blocks:  # fmt: skip
    """Build the Gradio app.

    Args:
        pipeline_factory: called once, with no arguments, to make the pose
            transfer pipeline that every request shares.
        device: shown in the page footer (the pipeline runs where its factory put it).
        examples: add the example photos (see :func:`example_images`).
    Returns:
        The :class:`gradio.Blocks`, its queue enabled (two requests at a time).
        The endpoint is ``/transfer``.
    """
    pipeline = pipeline_factory()

    def transfer(source, target, progress=gr.Progress()):  # noqa: B008 (Gradio's idiom)
        return run_transfer(pipeline, source, target, progress)

    with gr.Blocks(title="reroute") as demo:
        gr.Markdown(
            "# reroute\nRe-render a person from one photo: pose transfer through "
            "dense body correspondences (anny body model, fitted to mediapipe landmarks)."
        )
        with gr.Tab("Pose transfer"):
            with gr.Row():
                source = gr.Image(type="numpy", label="Source photo (the person)")
                target = gr.Image(type="numpy", label="Target photo (the pose)")
                result = gr.Image(type="numpy", format="png", label="Result", interactive=False)
            button = gr.Button("Transfer", variant="primary")
            status = gr.Markdown("Upload a source and a target photo, then press Transfer.")
            with gr.Accordion("Intermediate maps", open=False):
                with gr.Row():
                    src_iuv = gr.Image(format="png", label="Source IUV", interactive=False)
                    tgt_iuv = gr.Image(format="png", label="Target IUV", interactive=False)
                    warped = gr.Image(format="png", label="Warped texture", interactive=False)
                with gr.Row():
                    partial = gr.Image(format="png", label="Partial UV texture", interactive=False)
                    completed = gr.Image(
                        format="png", label="Completed UV texture", interactive=False
                    )
                    atlas = gr.Image(
                        format="png", label="DensePose atlas (completed)", interactive=False
                    )
            if examples:
                pairs = example_images()
                if pairs:
                    gr.Examples(pairs, inputs=[source, target], cache_examples=False)
        gr.Markdown(f"<small>device: {device}</small>")
        button.click(
            transfer,
            inputs=[source, target],
            outputs=[result, status, src_iuv, tgt_iuv, partial, completed, atlas, warped],
            api_name="transfer",
        )
    demo.queue(default_concurrency_limit=2)
    return demo
