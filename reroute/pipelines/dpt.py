"""Pose transfer with Dense Pose Transfer (Neverova et al., ECCV 2018).

1. check and load both photos (before any model runs);
2. find the one person in each, fit anny and render the correspondences
   (:func:`reroute.correspondence.analyse.analyse_people`, or an
   :class:`~reroute.correspondence.cache.AnalysisCache`; refined by the BodyMap
   network with ``correspondence="bodymap"``): reroute's IUV takes the place of
   DensePose R-CNN's;
3. run the network (:func:`renderer.dpt.model.dpt_transfer_image`): predictive
   stream on (source photo, source IUV, target IUV; or both views' BlazePose
   keypoints as COCO-18 for a ``keypoints``-conditioned network), warping stream through the
   24-part atlas and its inpainting autoencoder, blending;
4. resize to the target photo's resolution.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import cv2
import numpy as np
import torch

from renderer.dpt import dpt_transfer_image, load_default_dpt
from reroute.body.detect import coco18_keypoints
from reroute.body.fit import FitConfig
from reroute.correspondence.analyse import PersonAnalysis, analyse_people
from reroute.correspondence.cache import AnalysisCache
from reroute.errors import InputError
from reroute.io.images import load_image, to_uint8
from reroute.pipelines.correspondences import DEFAULT_CORRESPONDENCE, load_correspondence

__all__ = ["DPTResult", "DensePoseTransferPipeline"]


@dataclass
class DPTResult:
    """What :class:`DensePoseTransferPipeline` returns.

    Attributes:
        image: (H, W, 3) uint8 RGB at the target photo's resolution.
        source, target: the two :class:`~reroute.correspondence.analyse.PersonAnalysis`.
        predicted: (h, w, 3) uint8, the predictive stream's output (working size).
        warped: (h, w, 3) uint8, the warping stream's output (mid-grey 127, i.e. 0 in
            [-1, 1], on background, where no visible texel is near, and everywhere for
            variants without warping).
        atlas: (4N, 6N, 3) uint8, the (inpainted) source atlas, or None.
        timings: seconds per stage (``pose``, ``fit``, ``render``, ``bodymap`` with BodyMap
            correspondences, ``dpt``, ``total``).
        notices: messages for the user (e.g. a photo was downscaled).
    """

    image: np.ndarray
    source: PersonAnalysis
    target: PersonAnalysis
    predicted: np.ndarray
    warped: np.ndarray
    atlas: np.ndarray | None
    timings: dict[str, float]
    notices: list[str] = field(default_factory=list)


def _u8(t: torch.Tensor) -> np.ndarray:
    return to_uint8(((t.clamp(-1, 1) + 1) * 0.5).permute(1, 2, 0).numpy())


class DensePoseTransferPipeline:
    """Pose transfer by Dense Pose Transfer: the source person in the target photo's pose.

    Args:
        size: working size (longer side, pixels, >= 64; the committed network is
            trained at 256).
        checkpoint: a ``dpt`` checkpoint (default: the committed
            :data:`renderer.dpt.DEFAULT_CHECKPOINT`); loaded now, so a missing
            file fails before any photo is read.
        fit_config: schedule of the body fit.
        cache: an :class:`~reroute.correspondence.cache.AnalysisCache` for step 2.
        correspondence: ``fit`` or ``bodymap`` (both photos' correspondences refined by
            the BodyMap network before the DPT network sees them).
        bodymap_checkpoint: the BodyMap checkpoint (default: the committed one); loaded now.
    Raises:
        InputError: size below 64, the checkpoint is missing or not a ``dpt`` one, an
            unknown correspondence method, or a missing or foreign BodyMap checkpoint.
    """

    texture = None  # no UV texture completion in this method (the app's status reads it)

    def __init__(self, size: int = 256, checkpoint: str | None = None, fit_config: FitConfig | None = None,
                 cache: AnalysisCache | None = None, correspondence: str = DEFAULT_CORRESPONDENCE,
                 bodymap_checkpoint: str | None = None):  # fmt: skip
        if size < 64:
            raise InputError(f"--size must be at least 64 px, got {size}")
        self.size, self.fit_config, self.cache = size, fit_config, cache
        self.model = load_default_dpt(str(checkpoint) if checkpoint else None)
        load_correspondence(correspondence, bodymap_checkpoint)  # before any photo is read
        self.correspondence, self.bodymap_checkpoint = correspondence, bodymap_checkpoint

    def __call__(self, source, target, progress=None) -> DPTResult:
        """Run pose transfer on two photos (paths, bytes, PIL images or uint8 arrays).

        Args:
            progress: optional ``progress(fraction, stage)``.
        Raises:
            InputError: bad image, no person, several persons or failed fit in either photo.
        """
        t0 = time.perf_counter()
        # 1. inputs first
        src_img = load_image(source, name="source photo")
        tgt_img = load_image(target, name="target photo")
        # 2. person, fit, correspondences
        if progress:
            progress(0.0, "pose, fit and render: both photos")
        names = ["source photo", "target photo"]
        how = {"size": self.size, "names": names, "fit_config": self.fit_config,
               "correspondence": self.correspondence, "bodymap_checkpoint": self.bodymap_checkpoint}
        if self.cache is None:
            src, tgt = analyse_people([src_img, tgt_img], **how)
        else:
            src, tgt = self.cache.get_or_analyse_many([src_img, tgt_img], **how)
        if progress:
            progress(0.9, "Dense Pose Transfer network")
        res = self.transfer(src, tgt)
        res.timings["total"] = time.perf_counter() - t0
        return res

    def transfer(self, src: PersonAnalysis, tgt: PersonAnalysis) -> DPTResult:
        """Steps 3-4 on two analysed photos."""
        t = time.perf_counter()
        refined = ("bodymap",) if "bodymap" in src.timings | tgt.timings else ()
        stages = ("pose", "fit", "render", *refined)
        timings = {k: src.timings.get(k, 0.0) + tgt.timings.get(k, 0.0) for k in stages}
        # 3. the network (both views padded to one square side, cropped back to the target's)
        kps = [coco18_keypoints(a.observation.landmarks, a.observation.visibility) for a in (src, tgt)]
        out = dpt_transfer_image(self.model, src.image, src.correspondence, tgt.correspondence, *kps)
        image = _u8(out.image[0])
        atlas = _u8(out.atlas.pixels[0]) if out.atlas is not None else None
        timings["dpt"] = time.perf_counter() - t
        # 4. the target photo's resolution
        H, W = tgt.original_size
        if (H, W) != tgt.correspondence.shape:
            image = cv2.resize(image, (W, H), interpolation=cv2.INTER_CUBIC)
        return DPTResult(image, src, tgt, _u8(out.predicted[0]), _u8(out.warped[0]),
                         atlas, timings, src.notices + tgt.notices)  # fmt: skip
