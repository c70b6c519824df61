"""Losses of Dense Pose Transfer (Neverova et al., ECCV 2018, sec. 3.4 and Appendix eq. 6).

Named terms, weighted and summed in one place (:class:`DPTLoss`):

* ``l1``: L1 between output and real target;
* ``perceptual``: L2 between VGG19 activations at five layers
  (:func:`perceptual_l2`), only with VGG19 weights found locally;
* ``style``: squared Frobenius distance between Gram matrices of the same
  activations (:func:`style_loss`, Gatys et al. / Johnson et al.), same condition;
* ``adv``: LSGAN (Mao et al. 2017) with a PatchGAN on (image, source image,
  target IUV): :func:`lsgan_g_loss`, :func:`lsgan_d_loss`;
* for the inpainting autoencoder: the masked multi-view L1 of Appendix eq. 6
  (:func:`multiview_l1`).

The paper's weights: lambda_l1 = 1, lambda_p = 0.5, lambda_style = 5e5, lambda_gan = 0.1.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

__all__ = [
    "gram_matrix",
    "style_loss",
    "StyleLoss",
    "perceptual_l2",
    "lsgan_d_loss",
    "lsgan_g_loss",
    "multiview_l1",
    "DPTLossWeights",
    "DPTLoss",
]


def gram_matrix(features: torch.Tensor) -> torch.Tensor:
    """Gram matrix of activations: (B, C, H, W) -> (B, C, C) = F F^T / (C H W)."""
    if features.ndim != 4:
        raise ValueError(f"gram_matrix: expected (B, C, H, W), got {tuple(features.shape)}")
    B, C, H, W = features.shape
    f = features.reshape(B, C, H * W).float()
    return f @ f.transpose(1, 2) / (C * H * W)


def style_loss(pred_feats: list[torch.Tensor], target_feats: list[torch.Tensor]) -> torch.Tensor:
    """Style loss: ``sum over layers of mean((G(pred) - G(target))^2)`` (target detached).

    Args:
        pred_feats, target_feats: per layer (B, C_l, H_l, W_l) activations.
    Returns:
        scalar float32 >= 0; 0 for identical features.
    Raises:
        ValueError: different numbers of layers.
    """
    if len(pred_feats) != len(target_feats):
        raise ValueError(f"style_loss: {len(pred_feats)} vs {len(target_feats)} layers")
    return sum(F.mse_loss(gram_matrix(a), gram_matrix(b.detach())) for a, b in zip(pred_feats, target_feats, strict=True))


class StyleLoss(nn.Module):
    """Module form of :func:`style_loss` on images: ``forward(pred, target)`` with
    (B, 3, H, W) images in [-1, 1] and a feature network (e.g.
    :class:`reroute.training.vgg.VGG19Features`) returning a list of activations."""

    def __init__(self, features: nn.Module):
        super().__init__()
        self.features = features

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            ft = self.features(target)
        return style_loss(self.features(pred), ft)


def perceptual_l2(pred_feats: list[torch.Tensor], target_feats: list[torch.Tensor]) -> torch.Tensor:
    """Mean over layers of the mean squared activation difference (target detached); 0 when equal."""
    if len(pred_feats) != len(target_feats):
        raise ValueError(f"perceptual_l2: {len(pred_feats)} vs {len(target_feats)} layers")
    return torch.stack([F.mse_loss(a, b.detach()) for a, b in zip(pred_feats, target_feats, strict=True)]).mean()


def _logits(out) -> list[torch.Tensor]:
    """Patch logits of each scale from a :class:`texture.discriminator.MultiScaleDiscriminator` output."""
    return [s[-1] if isinstance(s, (list, tuple)) else s for s in out]


def lsgan_d_loss(real, fake) -> torch.Tensor:
    """LSGAN discriminator loss ``0.5 * (mean (D(real) - 1)^2 + mean D(fake)^2)``, averaged over scales."""
    r, f = _logits(real), _logits(fake)
    return torch.stack([0.5 * ((a - 1) ** 2).mean() + 0.5 * (b**2).mean() for a, b in zip(r, f, strict=True)]).mean()


def lsgan_g_loss(fake) -> torch.Tensor:
    """LSGAN generator loss ``mean (D(fake) - 1)^2``, averaged over scales."""
    return torch.stack([((a - 1) ** 2).mean() for a in _logits(fake)]).mean()


def multiview_l1(pred: torch.Tensor, views: list[tuple[torch.Tensor, torch.Tensor]]) -> torch.Tensor:
    """Masked multi-view L1 (Appendix eq. 6) of a predicted (completed) atlas.

    Args:
        pred: (B, 3, 4N, 6N) the autoencoder's atlas.
        views: (atlas, visibility) of each view of the same person, (B, 3, 4N, 6N)
            and (B, 1, 4N, 6N) in {0, 1}: the input view itself and the other views.
    Returns:
        scalar ``sum_k sum |pred - atlas_k| * vis_k / sum_k (3 * sum vis_k)``: the mean
        absolute error over every texel some view shows; 0 when nothing is visible.
    """
    num = pred.new_zeros(())
    den = pred.new_zeros(())
    for atlas, vis in views:
        if atlas.shape != pred.shape or vis.shape != pred[:, :1].shape:
            raise ValueError(f"multiview_l1: view {tuple(atlas.shape)}/{tuple(vis.shape)} vs pred {tuple(pred.shape)}")
        num = num + ((pred - atlas).abs() * vis).sum()
        den = den + 3 * vis.sum()
    return num / den.clamp_min(1.0)


@dataclass
class DPTLossWeights:
    """Weights of the named terms (0 disables a term); the paper's values by default."""

    l1: float = 1.0
    perceptual: float = 0.5
    style: float = 5e5
    adv: float = 0.1


class DPTLoss(nn.Module):
    """The generator's terms, weighted in one place.

    Args:
        weights: :class:`DPTLossWeights`.
        features: VGG19 features (:func:`reroute.training.vgg.load_vgg19_features`);
            required when ``perceptual`` or ``style`` > 0.
    """

    def __init__(self, weights: DPTLossWeights, features: nn.Module | None = None):
        super().__init__()
        if (weights.perceptual > 0 or weights.style > 0) and features is None:
            raise ValueError("perceptual or style weight > 0 needs a feature network (reroute.training.vgg)")
        self.weights = weights
        self.features = features

    def generator_terms(self, fake, target, d_fake=None) -> dict[str, torch.Tensor]:
        """Unweighted terms; ``adv`` only when the discriminator's output on ``fake`` is given."""
        w = self.weights
        t = {"l1": F.l1_loss(fake, target)}
        if self.features is not None and (w.perceptual > 0 or w.style > 0):
            fp = self.features(fake)
            with torch.no_grad():
                ft = self.features(target)
            if w.perceptual > 0:
                t["perceptual"] = perceptual_l2(fp, ft)
            if w.style > 0:
                t["style"] = style_loss(fp, ft)
        if d_fake is not None and w.adv > 0:
            t["adv"] = lsgan_g_loss(d_fake)
        return t

    def total(self, terms: dict[str, torch.Tensor]) -> torch.Tensor:
        """``sum(weight[name] * term)`` (the single weighting point)."""
        return sum(getattr(self.weights, k) * v for k, v in terms.items())
