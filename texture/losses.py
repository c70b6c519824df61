"""Losses of the texture completion network (BodyMap supplementary C.1.1).

Named terms, weighted and summed in one place (:class:`TextureLoss`):

* ``adv``: hinge adversarial loss (supp. eq. 1-2): the discriminator minimises
  ``E[relu(1 - D(real))] + E[relu(1 + D(fake))]``, the generator ``-E[D(fake)]``,
  averaged over the discriminator's scales;
* ``perceptual``: L1 between VGG19 activations (relu1_1 .. relu5_1, weights
  1/32, 1/16, 1/8, 1/4, 1 as in pix2pixHD) of the output and the target;
* ``tv``: total variation (supp. eq. 3), mean absolute difference of
  horizontally and vertically adjacent texels, with a small weight;
* ``l1``: L1 restricted to what is observed in the target (``target_mask``:
  the UV islands for synthetic pairs, what other views saw for real data).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

__all__ = [
    "LossWeights",
    "TextureLoss",
    "hinge_d_loss",
    "hinge_g_loss",
    "masked_l1",
    "total_variation",
    "perceptual_l1",
    "VGG_LAYER_WEIGHTS",
]

#: pix2pixHD's weights of the five VGG19 layers (relu1_1 .. relu5_1).
VGG_LAYER_WEIGHTS = (1 / 32, 1 / 16, 1 / 8, 1 / 4, 1.0)


def _logits(feats: list[list[torch.Tensor]] | list[torch.Tensor]) -> list[torch.Tensor]:
    return [f[-1] if isinstance(f, (list, tuple)) else f for f in feats]


def hinge_d_loss(real: list, fake: list) -> torch.Tensor:
    """Discriminator hinge loss (supp. eq. 1), mean over scales.

    real, fake: per-scale logits (B, 1, h, w), or per-scale feature lists whose last
    entry is the logits. Returns a scalar tensor (0 when every real logit >= 1 and
    every fake logit <= -1).
    """
    r, f = _logits(real), _logits(fake)
    terms = [F.relu(1 - a).mean() + F.relu(1 + b).mean() for a, b in zip(r, f, strict=True)]
    return torch.stack(terms).mean()


def hinge_g_loss(fake: list) -> torch.Tensor:
    """Generator hinge loss (supp. eq. 2): ``-mean(D(fake))``, averaged over scales."""
    return torch.stack([-x.mean() for x in _logits(fake)]).mean()


def masked_l1(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean absolute error over masked texels.

    pred, target: (B, C, H, W); mask: (B, 1, H, W) weights in [0, 1].
    Returns ``sum(|pred - target| * mask) / (C * sum(mask))`` (0 if the mask is empty).
    """
    if pred.shape != target.shape or mask.shape != (pred.shape[0], 1, *pred.shape[2:]):
        raise ValueError(
            f"masked_l1: pred {tuple(pred.shape)}, target {tuple(target.shape)}, "
            f"mask {tuple(mask.shape)} (expected (B, 1, H, W))"
        )
    num = ((pred - target).abs() * mask).sum()
    return num / (mask.sum() * pred.shape[1]).clamp_min(1e-8)


def total_variation(x: torch.Tensor) -> torch.Tensor:
    """Total variation (supp. eq. 3): ``mean|x[:, :, i+1, j] - x[:, :, i, j]| + mean|x[:, :, i, j+1] - x[:, :, i, j]|``.

    x: (B, C, H, W). Returns a scalar.
    """
    if x.ndim != 4:
        raise ValueError(f"total_variation: expected (B, C, H, W), got {tuple(x.shape)}")
    dy = (x[:, :, 1:] - x[:, :, :-1]).abs().mean()
    dx = (x[:, :, :, 1:] - x[:, :, :, :-1]).abs().mean()
    return dx + dy


def perceptual_l1(features: nn.Module, pred: torch.Tensor, target: torch.Tensor,
                  layer_weights=VGG_LAYER_WEIGHTS) -> torch.Tensor:  # fmt: skip
    """Weighted L1 between feature activations (target features detached).

    features: a module mapping (B, 3, H, W) in [-1, 1] to a list of activations
    (:class:`reroute.training.vgg.VGG19Features`).
    """
    fp = features(pred)
    with torch.no_grad():
        ft = features(target)
    if len(fp) != len(layer_weights):
        raise ValueError(
            f"perceptual_l1: {len(fp)} feature layers but {len(layer_weights)} weights"
        )
    return sum(w * F.l1_loss(a, b.detach()) for w, a, b in zip(layer_weights, fp, ft, strict=True))


@dataclass
class LossWeights:
    """Weights of the named terms (0 disables a term).

    perceptual > 0 needs a feature network (ImageNet VGG19 or an explicitly chosen
    untrained one); see :func:`reroute.training.vgg.load_vgg19_features`.
    """

    l1: float = 10.0
    adv: float = 1.0
    perceptual: float = 10.0
    tv: float = 1e-3


class TextureLoss(nn.Module):
    """All terms of the generator and discriminator objectives, weighted in one place.

    Args:
        weights: :class:`LossWeights`.
        features: feature network for the perceptual term (None when its weight is 0).
    """

    def __init__(self, weights: LossWeights, features: nn.Module | None = None):
        super().__init__()
        if weights.perceptual > 0 and features is None:
            raise ValueError("perceptual weight > 0 needs a feature network (reroute.training.vgg)")
        self.weights = weights
        self.features = features

    def generator_terms(self, fake, target, target_mask, d_fake=None) -> dict[str, torch.Tensor]:
        """Unweighted terms: l1, tv, perceptual (if weighted), adv (if ``d_fake`` given)."""
        t = {"l1": masked_l1(fake, target, target_mask), "tv": total_variation(fake)}
        if self.weights.perceptual > 0:
            # compare on the islands only: outside them the target is 0 by convention
            t["perceptual"] = perceptual_l1(self.features, fake * target_mask, target * target_mask)
        if d_fake is not None and self.weights.adv > 0:
            t["adv"] = hinge_g_loss(d_fake)
        return t

    def total(self, terms: dict[str, torch.Tensor]) -> torch.Tensor:
        """``sum(weight[name] * term)`` over the named terms (the single weighting point)."""
        return sum(getattr(self.weights, k) * v for k, v in terms.items())
