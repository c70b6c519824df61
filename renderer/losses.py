"""Losses of the neural re-renderer (BodyMap supplementary C.1.2).

Named terms, weighted and summed in one place (:class:`RerenderLoss`):

* ``adv``: hinge GAN with the multi-scale discriminator
  (:func:`texture.losses.hinge_g_loss`; the D side is :func:`texture.losses.hinge_d_loss`);
* ``fm``: feature matching over the discriminator's first 3 layers
  (pix2pixHD, Wang et al. CVPR 2018, eq. 4): :func:`feature_matching_loss`;
* ``l1``: L1 between output and real photo, over the whole image;
* ``ssim``: structural term ``1 - MS-SSIM`` (Wang et al. 2003, 5 scales,
  pytorch-msssim) on [0, 1] images, so training crops are >= 161 px; below
  that (the ``tiny`` preset) single-scale ``1 - SSIM``: :func:`ms_ssim_loss`;
* ``ssim_gray``: ``1 - SSIM`` exactly as the benchmarks measure it
  (scikit-image ``structural_similarity`` of ``rgb2gray`` images: 7-px uniform
  window, sample covariance, borders cropped): :func:`gray_ssim_loss`;
* ``tv``: total variation of the output (:func:`texture.losses.total_variation`);
* ``face``: extra L1 inside the face region (the template's head parts,
  :data:`renderer.data.FACE_PARTS`): :func:`face_l1`;
* ``perceptual``: VGG19 L1 at five layers (:func:`texture.losses.perceptual_l1`),
  only with ImageNet VGG19 weights found locally.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from texture.losses import hinge_g_loss, masked_l1, perceptual_l1, total_variation

__all__ = [
    "feature_matching_loss",
    "FeatureMatchingLoss",
    "face_l1",
    "ms_ssim_loss",
    "gray_ssim",
    "gray_ssim_loss",
    "GraySSIMLoss",
    "MSSSIM_MIN_SIDE",
    "RerenderLossWeights",
    "RerenderLoss",
]

#: smallest image side MS-SSIM accepts (11-px window after 4 halvings: pytorch-msssim's check)
MSSSIM_MIN_SIDE = 161


def feature_matching_loss(fake: list[list[torch.Tensor]], real: list[list[torch.Tensor]],
                          num_layers: int = 3) -> torch.Tensor:  # fmt: skip
    """Discriminator feature matching (pix2pixHD eq. 4).

    Args:
        fake, real: per scale, the discriminator's per-layer outputs (the last is
            the logits, never matched); ``real`` is detached here.
        num_layers: how many leading layers to match (BodyMap: 3).
    Returns:
        scalar ``mean over scales and layers of mean|D_l(fake) - D_l(real)|``;
        0 for identical inputs.
    Raises:
        ValueError: different numbers of scales, or fewer than ``num_layers`` + 1 outputs.
    """
    if len(fake) != len(real):
        raise ValueError(f"feature_matching_loss: {len(fake)} fake scales vs {len(real)} real")
    terms = []
    for f, r in zip(fake, real, strict=True):
        if len(f) < num_layers + 1:
            raise ValueError(f"feature_matching_loss: need {num_layers + 1} outputs per scale, got {len(f)}")
        terms += [F.l1_loss(a, b.detach()) for a, b in zip(f[:num_layers], r[:num_layers], strict=True)]
    return torch.stack(terms).mean()


class FeatureMatchingLoss(nn.Module):
    """Module form of :func:`feature_matching_loss`."""

    def __init__(self, num_layers: int = 3):
        super().__init__()
        self.num_layers = num_layers

    def forward(self, fake, real) -> torch.Tensor:
        return feature_matching_loss(fake, real, self.num_layers)


def face_l1(pred: torch.Tensor, target: torch.Tensor, face: torch.Tensor) -> torch.Tensor:
    """L1 inside the face region only.

    pred, target: (B, 3, H, W); face: (B, 1, H, W) {0, 1}. Returns the mean
    absolute error over face pixels and channels (0 when no pixel is face);
    pixels outside ``face`` never contribute.
    """
    return masked_l1(pred, target, face)


def ms_ssim_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """``1 - MS-SSIM`` of (B, 3, H, W) images in [-1, 1], compared in [0, 1].

    MS-SSIM (5 scales, 11-px Gaussian window, sigma 1.5) when both sides are at
    least :data:`MSSSIM_MIN_SIDE`; single-scale SSIM for smaller images (at
    least 11 px). Values outside [-1, 1] are clamped for this term only.
    Returns a scalar in [0, 2]; 0 for identical images.
    """
    from pytorch_msssim import ms_ssim, ssim

    a = ((pred.clamp(-1, 1) + 1) * 0.5).float()
    b = ((target + 1) * 0.5).float()
    if min(pred.shape[-2:]) >= MSSSIM_MIN_SIDE:
        return 1 - ms_ssim(a, b, data_range=1.0)
    if min(pred.shape[-2:]) < 11:
        raise ValueError(f"ms_ssim_loss needs sides >= 11 px, got {tuple(pred.shape[-2:])}")
    return 1 - ssim(a, b, data_range=1.0)


#: scikit-image's ``rgb2gray`` weights (ITU-R BT.709 luma), applied to linear values as given
GRAY_WEIGHTS = (0.2125, 0.7154, 0.0721)


def gray_ssim(pred: torch.Tensor, target: torch.Tensor, win_size: int = 7) -> torch.Tensor:
    """Per-image grayscale SSIM of (B, 3, H, W) images in [-1, 1], as scikit-image computes it.

    Both images are mapped to [0, 1] (``pred`` clamped), turned to gray with
    :data:`GRAY_WEIGHTS` (``skimage.color.rgb2gray``) and compared with
    ``structural_similarity(..., data_range=1)``'s defaults: a uniform
    ``win_size`` window, variances scaled by N / (N - 1) (N = win_size^2),
    C1 = 0.01^2, C2 = 0.03^2 (Wang et al. 2004, eq. 13), the map averaged over
    the valid window positions (skimage crops ``(win_size - 1) / 2`` pixels at
    each border). Returns (B,) float32 in [-1, 1]; 1 for identical images.
    Raises ValueError for a side smaller than ``win_size`` or not 3 channels.
    """
    if pred.shape != target.shape or pred.ndim != 4 or pred.shape[1] != 3:
        raise ValueError(f"gray_ssim expects two (B, 3, H, W) tensors, got {tuple(pred.shape)} "
                         f"and {tuple(target.shape)}")  # fmt: skip
    if min(pred.shape[-2:]) < win_size:
        raise ValueError(f"gray_ssim needs sides >= {win_size} px, got {tuple(pred.shape[-2:])}")
    w = pred.new_tensor(GRAY_WEIGHTS).view(1, 3, 1, 1)
    x = (((pred.clamp(-1, 1) + 1) * 0.5).float() * w).sum(1, keepdim=True)
    y = (((target + 1) * 0.5).float() * w).sum(1, keepdim=True)
    n = win_size * win_size
    ux, uy, uxx, uyy, uxy = F.avg_pool2d(torch.cat([x, y, x * x, y * y, x * y], 1), win_size, stride=1).unbind(1)
    cov = n / (n - 1)
    vx, vy, vxy = cov * (uxx - ux * ux), cov * (uyy - uy * uy), cov * (uxy - ux * uy)
    c1, c2 = 0.01**2, 0.03**2
    s = (2 * ux * uy + c1) * (2 * vxy + c2) / ((ux * ux + uy * uy + c1) * (vx + vy + c2))
    return s.mean(dim=(1, 2))


def gray_ssim_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """``1 - mean(gray_ssim(pred, target))``: scalar in [0, 2], 0 for identical images (see :func:`gray_ssim`)."""
    return 1 - gray_ssim(pred, target).mean()


class GraySSIMLoss(nn.Module):
    """Module form of :func:`gray_ssim_loss`."""

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return gray_ssim_loss(pred, target)


@dataclass
class RerenderLossWeights:
    """Weights of the named terms (0 disables a term); see the module docstring."""

    l1: float = 1.0
    ssim: float = 1.0
    ssim_gray: float = 0.0
    face: float = 1.0
    fm: float = 1.0
    adv: float = 0.05
    tv: float = 1e-4
    perceptual: float = 0.0


class RerenderLoss(nn.Module):
    """All generator terms, weighted in one place.

    Args:
        weights: :class:`RerenderLossWeights`.
        features: VGG19 features when ``weights.perceptual`` > 0.
    """

    def __init__(self, weights: RerenderLossWeights, features: nn.Module | None = None):
        super().__init__()
        if weights.perceptual > 0 and features is None:
            raise ValueError("perceptual weight > 0 needs a feature network (reroute.training.vgg)")
        self.weights = weights
        self.features = features

    def generator_terms(self, fake, target, face, d_fake=None, d_real=None) -> dict[str, torch.Tensor]:
        """Unweighted terms; ``adv``/``fm`` only when the discriminator outputs are given."""
        w = self.weights
        t = {"l1": F.l1_loss(fake, target)}
        if w.ssim > 0:
            t["ssim"] = ms_ssim_loss(fake, target)
        if w.ssim_gray > 0:
            t["ssim_gray"] = gray_ssim_loss(fake, target)
        if w.face > 0:
            t["face"] = face_l1(fake, target, face)
        if w.tv > 0:
            t["tv"] = total_variation(fake)
        if w.perceptual > 0:
            t["perceptual"] = perceptual_l1(self.features, fake, target)
        if d_fake is not None and w.adv > 0:
            t["adv"] = hinge_g_loss(d_fake)
        if d_fake is not None and d_real is not None and w.fm > 0:
            t["fm"] = feature_matching_loss(d_fake, d_real)
        return t

    def total(self, terms: dict[str, torch.Tensor]) -> torch.Tensor:
        """``sum(weight[name] * term)`` (the single weighting point)."""
        return sum(getattr(self.weights, k) * v for k, v in terms.items())
