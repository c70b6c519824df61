"""Pose transfer: the source person in the target person's pose (BodyMap-style re-rendering).

Pose transfer (Ianina et al., CVPR 2022, sec. 5):

1. check and load both photos, resize them to the working size;
2. find the one person in each (BlazePose landmarks + mask) and fit anny;
3. render each fitted body's correspondences, extended to the person mask
   (steps 2-3: :func:`reroute.correspondence.analyse.analyse_people`, both
   bodies fitted in one batch, or an
   :class:`~reroute.correspondence.cache.AnalysisCache` that analyses each photo once);
   with ``correspondence="bodymap"`` the BodyMap network refines both maps;
4. lift the source photo into the continuous UV texture (partial + visibility);
5. complete the texture (classical: mirror fill + push-pull; or the texture
   completion network of :mod:`texture`);
6. warp the texture to the target's correspondences (seam-free masked
   bilinear sampling), and where the target shows what the source photo
   shows, take the photo's own pixels through the correspondence flow;
7. composite over the source's background with the person inpainted away
   (:mod:`reroute.pipelines.compose`);
8. optionally re-render the composite with the neural re-renderer
   (:mod:`renderer`: closes seams, fixes colour and silhouette), keeping the
   photo's own pixels of step 6 over its output, and resize to the target
   photo's resolution.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import cv2
import numpy as np

from renderer import rerender_image, seen_map
from reroute.body.fit import FitConfig
from reroute.correspondence.analyse import PersonAnalysis, analyse_people
from reroute.correspondence.cache import AnalysisCache
from reroute.errors import InputError
from reroute.io.images import load_image, to_uint8
from reroute.pipelines.compose import alpha_blend, flow_weight, inpaint_background, soft_mask
from reroute.pipelines.correspondences import DEFAULT_CORRESPONDENCE, load_correspondence
from reroute.pipelines.rerendering import DEFAULT_RERENDERING, load_rerendering
from reroute.uv.texture import UVTexture
from reroute.uv.warp import correspondence_flow, image_to_uv, sample_image, uv_to_image
from texture import TEXTURE_METHODS, complete_texture, load_default_network

__all__ = [
    "TransferResult",
    "PoseTransferPipeline",
]


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
        timings: seconds per stage: pose, fit, render, and bodymap with BodyMap
            correspondences (both photos summed; 0 for a photo served from an
            analysis cache, see ``source.cached``),
            warp (lift + warp back + composite), completion, rerender (0 when
            off), total.
        notices: messages for the user.
        composite: (h, w, 3) uint8, the warp-only result at the working size
            (person over the background, before any re-rendering).
        background: (h, w, 3) uint8, the source photo with its person
            inpainted away, resized to the target's working size.
        rerendered: whether ``image`` comes from the neural re-renderer.
    """

    image: np.ndarray
    source: PersonAnalysis
    target: PersonAnalysis
    partial_texture: UVTexture
    texture: UVTexture
    warped: np.ndarray
    timings: dict[str, float]
    notices: list[str]
    composite: np.ndarray | None = None
    background: np.ndarray | None = None
    rerendered: bool = False


class PoseTransferPipeline:
    """Pose transfer: the source photo's person re-rendered in the target photo's pose.

    Args:
        size: working size (longer side) for both photos, pixels (>= 64).
        texture_size: side T of the continuous UV texture.
        fit_config: schedule of the body fit.
        texture: texture completion, "classical" (mirror fill + push-pull) or
            "network" (the texture completion U-Net, :mod:`texture`).
        texture_checkpoint: network checkpoint (default: the committed one).
        direct: where the target shows a surface point the source photo shows
            at about the same place (a body part that did not move), take the
            photo's own pixel through the correspondence flow
            (:func:`~reroute.uv.warp.correspondence_flow`,
            :func:`~reroute.pipelines.compose.flow_weight`) instead of the
            T-texel texture; the texture fills the rest, with a feathered edge.
            With the re-renderer on, the same weight keeps those photo pixels
            over its output (it re-renders the rest): an identity transfer
            returns the photo (32 dev photos: mean SSIM 0.985 with it, 0.915
            without) at a cost of 0.0008 SSIM on the held-out pg2 pairs.
        cache: an :class:`~reroute.correspondence.cache.AnalysisCache` for steps 2-3
            (a photo seen before, as source or target, is not analysed again);
            ``None`` analyses both photos on every call.
        correspondence: ``fit`` (the rendered fit) or ``bodymap`` (both photos' fitted
            correspondences refined by the BodyMap network at the working size;
            ``timings["bodymap"]`` gives its seconds).
        bodymap_checkpoint: the BodyMap checkpoint (default: the committed
            ``checkpoints/bodymap_cpu256.pt``); loaded now, so a missing file fails
            before any photo is read.

    Raises:
        InputError: size under 64, unknown texture, re-rendering or correspondence
            method, or a missing or foreign checkpoint of a chosen network.

    Call it with two photos (paths, bytes, PIL images or uint8 arrays); see
    :meth:`__call__`.
    """

    def __init__(self, size: int = 256, texture_size: int = 256,
                 fit_config: FitConfig | None = None, texture: str = "classical",
                 texture_checkpoint: str | None = None, direct: bool = True,
                 rerender: str = DEFAULT_RERENDERING, rerender_checkpoint: str | None = None,
                 cache: AnalysisCache | None = None,
                 correspondence: str = DEFAULT_CORRESPONDENCE,
                 bodymap_checkpoint: str | None = None):  # fmt: skip
        if size < 64:
            raise InputError(f"--size must be at least 64 px, got {size}")
        if texture not in TEXTURE_METHODS:
            raise InputError(f"--texture must be {' or '.join(TEXTURE_METHODS)}, got {texture!r}")
        self.texture = texture
        self.texture_checkpoint = texture_checkpoint
        self.direct = direct
        if texture == "network":  # a missing checkpoint fails here, before any fit
            load_default_network(str(texture_checkpoint) if texture_checkpoint else None)
        self.rerender = rerender
        # an unknown name or a missing re-renderer checkpoint fails here, before any fit
        self.rerenderer = load_rerendering(rerender, rerender_checkpoint)
        # likewise an unknown correspondence method or a missing BodyMap checkpoint
        load_correspondence(correspondence, bodymap_checkpoint)
        self.correspondence = correspondence
        self.bodymap_checkpoint = bodymap_checkpoint
        self.size = size
        self.texture_size = texture_size
        self.fit_config = fit_config
        self.cache = cache

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
        report(0.0, "pose, fit and render: both photos")
        names = ["source photo", "target photo"]
        how = {"size": self.size, "names": names, "fit_config": self.fit_config,
               "correspondence": self.correspondence,
               "bodymap_checkpoint": self.bodymap_checkpoint}  # fmt: skip
        if self.cache is None:
            src, tgt = analyse_people([src_img, tgt_img], **how)
        else:
            src, tgt = self.cache.get_or_analyse_many([src_img, tgt_img], **how)
        report(0.9, "warp and complete the texture")
        res = self.transfer(src, tgt)
        res.timings["total"] = time.perf_counter() - t0
        report(1.0, "done")
        return res

    def transfer(self, src: PersonAnalysis, tgt: PersonAnalysis) -> TransferResult:
        """Steps 4-8 on two analysed photos (:func:`~reroute.correspondence.analyse.analyse_person`).

        Returns:
            :class:`TransferResult` (``timings["total"]`` covers these steps only).
        """
        t0 = time.perf_counter()
        refined = ("bodymap",) if "bodymap" in src.timings | tgt.timings else ()
        stages = ("pose", "fit", "render", *refined)
        timings = {k: src.timings.get(k, 0.0) + tgt.timings.get(k, 0.0) for k in stages}
        # 4. lift the source into UV
        t = time.perf_counter()
        partial = image_to_uv(src.image, src.correspondence, self.texture_size)
        timings["warp"] = time.perf_counter() - t
        # 5. complete the texture
        t = time.perf_counter()
        texture = complete_texture(partial, self.texture, self.texture_checkpoint)
        timings["completion"] = time.perf_counter() - t
        # 6. warp to the target's correspondences
        t = time.perf_counter()
        corr = tgt.correspondence
        warped = uv_to_image(texture, corr)
        person, keep = warped, None
        if self.direct:  # the source photo's own pixels wherever the target shows what it shows
            flow = correspondence_flow(src.correspondence, corr, self.texture_size)
            keep = flow_weight(flow, corr)
            person = alpha_blend(sample_image(src.image, flow), keep, warped)
        # 7. composite over the source background
        h, w = corr.shape
        bg8 = inpaint_background(src.image, src.correspondence.mask)
        bg8 = cv2.resize(bg8, (w, h), interpolation=cv2.INTER_LINEAR)
        comp8 = to_uint8(alpha_blend(person, soft_mask(corr.mask), bg8.astype(np.float32) / 255.0))
        timings["warp"] += time.perf_counter() - t
        # 8. neural re-rendering (optional), then resize to the target photo
        t = time.perf_counter()
        out8 = comp8
        if self.rerenderer is not None:
            seen = seen_map(partial, corr) if self.rerenderer.config.seen_input else None
            out8 = rerender_image(self.rerenderer, comp8, bg8, corr, texture, seen)
            if keep is not None:  # the photo's own pixels stay: the network re-renders the rest
                out8 = to_uint8(alpha_blend(comp8 / 255.0, keep * corr.mask, out8 / 255.0))
        timings["rerender"] = time.perf_counter() - t
        H, W = tgt.original_size
        if (H, W) != (h, w):
            out8 = cv2.resize(out8, (W, H), interpolation=cv2.INTER_CUBIC)
        warped8 = to_uint8(warped + (1 - corr.mask[..., None]))
        timings["total"] = time.perf_counter() - t0
        return TransferResult(out8, src, tgt, partial, texture, warped8, timings,
                              src.notices + tgt.notices, comp8, bg8,
                              self.rerenderer is not None)  # fmt: skip
