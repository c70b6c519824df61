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
   with several photos of the source person, lift each and fuse them by
   evidence (:func:`~reroute.uv.texture.fuse_textures`);
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
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import cv2
import numpy as np

from renderer import rerender_image, seen_map
from reroute.body.fit import FitConfig
from reroute.correspondence.analyse import PersonAnalysis, analyse_people
from reroute.correspondence.cache import AnalysisCache
from reroute.errors import InputError
from reroute.io.images import load_image, load_photos, to_uint8
from reroute.pipelines.compose import alpha_blend, flow_weight, inpaint_background, soft_mask
from reroute.pipelines.correspondences import DEFAULT_CORRESPONDENCE, load_correspondence
from reroute.pipelines.rerendering import DEFAULT_RERENDERING, load_rerendering
from reroute.uv.texture import UVTexture, fuse_textures
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
        source, target: the two :class:`PersonAnalysis` (``source``: the first
            source photo's).
        partial_texture: the source lifted into UV (T, T) with its visibility
            (with several source photos, their lifted textures fused).
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
        more_sources: the :class:`PersonAnalysis` of the source photos after the
            first (empty with one source photo).
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
    more_sources: tuple[PersonAnalysis, ...] = ()


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

    Call it with two photos (paths, bytes, PIL images or uint8 arrays), or with
    a list of source photos of one person in the same clothes (e.g. front and
    back) and a target photo; see :meth:`__call__`.
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
            source: photo of the person to re-render (appearance), or a list or
                tuple of photos of that person in the same clothes from other
                views (front, side, back): each is lifted into UV and the
                textures are fused by evidence, so the target can show what only
                a later photo saw. The first gives the background.
            target: photo of the person whose pose to take.
            progress: optional ``progress(fraction, stage)`` callable, called
                with fraction in [0, 1] and a stage name before each stage.
        Returns:
            :class:`TransferResult`; ``image`` has the target photo's resolution.
        Raises:
            InputError: an empty source list, a bad image, no person, several
                persons or a failed fit in any photo (the message names it:
                "source photo", "source photo 2", ..., "target photo").
        """

        def report(fraction: float, stage: str) -> None:
            if progress is not None:
                progress(fraction, stage)

        t0 = time.perf_counter()
        # 1. inputs first: every photo is checked before any model runs
        images, names = load_photos(source, name="source photo")
        images.append(load_image(target, name="target photo"))
        names.append("target photo")
        # 2-3. person, fit, correspondences
        report(0.0, f"pose, fit and render: {len(images)} photos")
        how = {"size": self.size, "names": names, "fit_config": self.fit_config,
               "correspondence": self.correspondence,
               "bodymap_checkpoint": self.bodymap_checkpoint}  # fmt: skip
        if self.cache is None:
            analysed = analyse_people(images, **how)
        else:
            analysed = self.cache.get_or_analyse_many(images, **how)
        report(0.9, "warp and complete the texture")
        res = self.transfer(analysed[:-1], analysed[-1])
        res.timings["total"] = time.perf_counter() - t0
        report(1.0, "done")
        return res

    def transfer(self, src: PersonAnalysis | list[PersonAnalysis] | tuple[PersonAnalysis, ...],
                 tgt: PersonAnalysis) -> TransferResult:  # fmt: skip
        """Steps 4-8 on analysed photos (:func:`~reroute.correspondence.analyse.analyse_person`).

        Args:
            src: the source photo's analysis, or a non-empty list of analyses of
                several photos of the source person (fused in step 4; the first
                gives the background; in step 6 each target pixel takes the
                photo pixel of the source with the highest flow weight).
            tgt: the target photo's analysis.
        Returns:
            :class:`TransferResult` (``timings["total"]`` covers these steps only).
        Raises:
            InputError: an empty list of sources.
        """
        t0 = time.perf_counter()
        sources = list(src) if isinstance(src, (list, tuple)) else [src]
        if not sources:
            raise InputError("pose transfer needs at least one source photo")
        src = sources[0]
        everyone = [*sources, tgt]
        refined = ("bodymap",) if any("bodymap" in a.timings for a in everyone) else ()
        stages = ("pose", "fit", "render", *refined)
        timings = {k: sum(a.timings.get(k, 0.0) for a in everyone) for k in stages}
        corr = tgt.correspondence
        h, w = corr.shape
        # step 6's photo pixels and 7's background need neither the texture nor each
        # other: one thread computes them while this one lifts and completes the texture
        # (OpenCV, NumPy and torch release the GIL; transfer_stages at 256 px: warp 0.10 -> 0.06 s)
        with ThreadPoolExecutor(max_workers=1) as pool:
            background = pool.submit(inpaint_background, src.image, src.correspondence.mask)
            direct = pool.submit(self._direct_pixels, sources, corr) if self.direct else None
            # 4. lift the source photo(s) into UV, several fused by evidence
            t = time.perf_counter()
            partial = fuse_textures([image_to_uv(a.image, a.correspondence, self.texture_size)
                                     for a in sources])  # fmt: skip
            timings["warp"] = time.perf_counter() - t
            # 5. complete the texture
            t = time.perf_counter()
            texture = complete_texture(partial, self.texture, self.texture_checkpoint)
            timings["completion"] = time.perf_counter() - t
            # 6. warp to the target's correspondences
            t = time.perf_counter()
            warped = uv_to_image(texture, corr)
            person, keep = warped, None
            if direct is not None:  # a source photo's own pixels wherever the target shows what it shows
                keep, pixels = direct.result()
                person = alpha_blend(pixels, keep, warped)
            # 7. composite over the source background
            bg8 = cv2.resize(background.result(), (w, h), interpolation=cv2.INTER_LINEAR)
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
        notices = [n for a in everyone for n in a.notices]
        return TransferResult(out8, src, tgt, partial, texture, warped8, timings, notices, comp8,
                              bg8, self.rerenderer is not None, tuple(sources[1:]))  # fmt: skip

    def _direct_pixels(self, sources: list[PersonAnalysis], corr) -> tuple[np.ndarray, np.ndarray]:
        """Step 6's photo pixels: for each target pixel, the source photo whose
        correspondence flow weight (:func:`~reroute.pipelines.compose.flow_weight`) is
        highest there. Returns the (h, w) float32 weight in [0, 1] and the (h, w, 3)
        float32 pixels sampled through that photo's flow (0 where no weight)."""
        keep = np.zeros(corr.shape, np.float32)
        pixels = np.zeros(corr.shape + (3,), np.float32)
        for a in sources:
            flow = correspondence_flow(a.correspondence, corr, self.texture_size)
            k = flow_weight(flow, corr)
            better = k > keep
            pixels[better] = sample_image(a.image, flow)[better]
            keep = np.maximum(keep, k)
        return keep, pixels
