"""Dense Pose Transfer (Neverova, Güler, Kokkinos, ECCV 2018): the full model and inference.

:class:`DensePoseTransfer` joins the predictive stream
(:mod:`renderer.dpt.predictive`), the warping stream with its inpainting
autoencoder (:mod:`renderer.dpt.warping`) and the blending module
(:mod:`renderer.dpt.blending`). ``variant`` selects a row of the paper's Table 4:

* ``predictive``: the predictive stream alone;
* ``predictive+blending``: blending with no warped input (self-refinement);
* ``predictive+warping+blending``: the warped source atlas without inpainting;
* ``full``: predictive + warping with inpainting + blending.

:func:`dpt_transfer_image` runs it on one analysed photo pair (a uint8 photo and two
:class:`~reroute.correspondence.maps.Correspondence` maps in, a :class:`DPTOutput` out).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
from torch.nn import functional as F

from renderer.dpt.blending import BlendingConfig, BlendingModule
from renderer.dpt.predictive import PredictiveConfig, PredictiveStream, check_inputs
from renderer.dpt.warping import (
    Atlas,
    InpaintingAutoencoder,
    InpaintingConfig,
    atlas_to_image,
    image_to_atlas,
)
from renderer.network import image_tensor
from reroute.correspondence.maps import Correspondence
from reroute.training.checkpoint import load_checkpoint

__all__ = ["VARIANTS", "DPTConfig", "DPTOutput", "DensePoseTransfer", "PRESETS", "load_dpt",
           "iuv_tensor", "dpt_transfer_image"]  # fmt: skip

#: the paper's Table 4 rows
VARIANTS = ("predictive", "predictive+blending", "predictive+warping+blending", "full")


@dataclass
class DPTConfig:
    """The full model: the three streams' configs and the Table 4 variant."""

    predictive: PredictiveConfig = field(default_factory=PredictiveConfig)
    inpainting: InpaintingConfig = field(default_factory=InpaintingConfig)
    blending: BlendingConfig = field(default_factory=BlendingConfig)
    variant: str = "full"

    def validate(self) -> DPTConfig:
        if self.variant not in VARIANTS:
            raise ValueError(f"variant must be one of {VARIANTS}, got {self.variant!r}")
        self.predictive.validate()
        self.inpainting.validate()
        return self

    @classmethod
    def from_dict(cls, d: dict) -> DPTConfig:
        return cls(PredictiveConfig.from_dict(d.get("predictive", {})),
                   InpaintingConfig.from_dict(d.get("inpainting", {})),
                   BlendingConfig.from_dict(d.get("blending", {})), d.get("variant", "full")).validate()  # fmt: skip

    def to_dict(self) -> dict:
        return {"predictive": self.predictive.to_dict(), "inpainting": self.inpainting.to_dict(),
                "blending": self.blending.to_dict(), "variant": self.variant}  # fmt: skip

    @property
    def uses_warping(self) -> bool:
        return self.variant in ("predictive+warping+blending", "full")


#: ``tiny`` (tests, 32 px), ``cpu`` (the committed checkpoints, 256 px), ``paper`` (the paper's sizes)
PRESETS: dict[str, DPTConfig] = {
    "tiny": DPTConfig(PredictiveConfig((8, 8, 16), 1), InpaintingConfig(16, (4, 8, 8), 16),
                      BlendingConfig(8, 1)),
    "cpu": DPTConfig(PredictiveConfig((16, 32, 64), 6), InpaintingConfig(64, (16, 16, 32, 48), 64),
                     BlendingConfig(16, 3)),
    "paper": DPTConfig(),
}  # fmt: skip


@dataclass
class DPTOutput:
    """What :meth:`DensePoseTransfer.run` returns (all (B, C, H, W) float32).

    Attributes:
        image: the output, in [-1, 1].
        predicted: the predictive stream's output, in [-1, 1].
        warped: the warping stream's output in [-1, 1] (zeros without warping).
        coverage: (B, 1, H, W) in [0, 1], where ``warped`` is defined.
        atlas: the source atlas fed to the target warp (inpainted for ``full``), or None.
    """

    image: torch.Tensor
    predicted: torch.Tensor
    warped: torch.Tensor
    coverage: torch.Tensor
    atlas: Atlas | None = None


class DensePoseTransfer(torch.nn.Module):
    """Predictive + warping streams + blending (the paper's Fig. 2).

    ``forward(source, source_iuv, target_iuv, source_keypoints=None, target_keypoints=None)``
    -> (B, 3, H, W) image in [-1, 1]; :meth:`run` returns every stream's output
    (:class:`DPTOutput`). Inputs: source (B, 3, H, W) float32 in [-1, 1]; IUV maps
    (B, 3, H, W) float32 (I / 24, U, V in [0, 1]); H, W divisible by 4; keypoints
    (B, 18, 3) float32 (x, y pixels, confidence; OpenPose COCO-18), needed only by
    the predictive stream's ``keypoints`` conditioning (the warping stream always
    uses the IUV maps; :attr:`needs_keypoints`). Modules a variant does not use
    are not built (``inpainting`` only for ``full``, ``blending`` except for
    ``predictive``).
    """

    def __init__(self, config: DPTConfig | None = None):
        super().__init__()
        self.config = c = (config or DPTConfig()).validate()
        self.predictive = PredictiveStream(c.predictive)
        self.inpainting = InpaintingAutoencoder(c.inpainting) if c.variant == "full" else None
        self.blending = BlendingModule(c.blending) if c.variant != "predictive" else None

    @property
    def needs_keypoints(self) -> bool:
        """Whether :meth:`run` needs keypoints (the ``keypoints`` conditioning)."""
        return self.config.predictive.conditioning == "keypoints"

    def run(self, source, source_iuv, target_iuv, source_keypoints=None, target_keypoints=None) -> DPTOutput:
        """All streams; see the class docstring."""
        check_inputs(source, source_iuv, target_iuv, step=4)
        c = self.config
        pred = self.predictive(source, source_iuv, target_iuv, source_keypoints, target_keypoints)
        warped = torch.zeros_like(source)
        coverage = torch.zeros_like(source[:, :1])
        atlas = None
        if c.uses_warping:
            atlas = image_to_atlas(source, source_iuv, c.inpainting.tile)
            if self.inpainting is not None:
                atlas = self.inpainting(atlas)
            warped, coverage = atlas_to_image(atlas, target_iuv)
        image = pred if self.blending is None else self.blending(pred, warped, coverage, target_iuv)
        return DPTOutput(image, pred, warped, coverage, atlas)

    def forward(self, source, source_iuv, target_iuv, source_keypoints=None, target_keypoints=None):
        return self.run(source, source_iuv, target_iuv, source_keypoints, target_keypoints).image


def load_dpt(path, map_location="cpu") -> DensePoseTransfer:
    """A trained :class:`DensePoseTransfer` from a reroute checkpoint of kind ``dpt``
    (``weights_only=True``; EMA weights when present), in eval mode.

    Raises :class:`reroute.errors.InputError` for a missing or foreign file.
    """
    ck = load_checkpoint(path, kind="dpt", map_location=map_location)
    model = DensePoseTransfer(DPTConfig.from_dict(ck["config"]["model"]))
    model.load_state_dict(ck.get("ema") or ck["generator"])
    return model.eval()


def iuv_tensor(corr: Correspondence) -> torch.Tensor:
    """A :class:`Correspondence` as a (1, 3, H, W) float32 IUV tensor (I / 24, U, V), through
    the 8-bit IUV of :meth:`Correspondence.to_iuv` (as training items store it)."""
    iuv = torch.from_numpy(np.ascontiguousarray(corr.to_iuv().transpose(2, 0, 1))).float()
    return torch.cat([iuv[:1] / 24, iuv[1:] / 255])[None]


@torch.no_grad()
def dpt_transfer_image(model: DensePoseTransfer, source: np.ndarray, source_corr: Correspondence,
                       target_corr: Correspondence, source_keypoints: np.ndarray | None = None,
                       target_keypoints: np.ndarray | None = None) -> DPTOutput:  # fmt: skip
    """Pose transfer of one photo with Dense Pose Transfer (numpy photo in, streams out).

    Args:
        model: a :class:`DensePoseTransfer` (put in eval mode here).
        source: (h, w, 3) uint8 RGB at the source's working size.
        source_corr: the source's :class:`Correspondence` (h, w).
        target_corr: the target's :class:`Correspondence` (H, W): the output's size.
        source_keypoints, target_keypoints: (18, 3) float32 (x, y pixels of each
            view's working size, confidence in [0, 1]) OpenPose COCO-18
            (:func:`reroute.body.detect.coco18_keypoints`); needed when
            ``model.needs_keypoints``, ignored otherwise.
    Returns:
        :class:`DPTOutput` with batch 1, its images cropped to (H, W) (the atlas
        whole). Both views are padded bottom/right (image edge replicated, IUV 0)
        to one square side divisible by 4, as training items are (256 x 256).
    Raises:
        ValueError: the source image and its correspondences differ in size, or
            keypoints are needed and missing.
    """
    model.eval()
    if source.shape[:2] != source_corr.shape:
        raise ValueError(f"source image {source.shape[:2]} and its correspondences {source_corr.shape} differ")
    H, W = target_corr.shape
    side = max(*source_corr.shape, H, W)
    side += -side % 4
    img = image_tensor(source)

    def pad(t, mode):
        return F.pad(t, (0, side - t.shape[-1], 0, side - t.shape[-2]), mode=mode)

    kps = [None if k is None else torch.as_tensor(np.asarray(k, np.float32))[None]
           for k in (source_keypoints, target_keypoints)]  # fmt: skip
    out = model.run(pad(img, "replicate"), pad(iuv_tensor(source_corr), "constant"),
                    pad(iuv_tensor(target_corr), "constant"), *kps)  # fmt: skip
    crop = [t[..., :H, :W] for t in (out.image, out.predicted, out.warped, out.coverage)]
    return DPTOutput(*crop, out.atlas)
