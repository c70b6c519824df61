"""Losses of the BodyMap network (Ianina et al., CVPR 2022, sec. 3.5, eq. 2-3).

* :func:`colour_ce_loss` / :class:`ColourCELoss`: cross-entropy of each colour-code
  channel over its 256 levels, with higher pixel weights on hands and head;
* :func:`silhouette_iou_loss` / :class:`SilhouetteIoULoss`: 1 - soft IoU of the
  foreground probability and the true silhouette;
* :func:`geodesic_loss`: expected geodesic distance (metres) between the predicted
  and the true surface point;
* :func:`consistency_loss`: eq. 2 over 100 random anchor pixels: the geodesic
  distances between the predicted points of every two anchors should equal those
  between their true points;
* :func:`colour_l1_loss`: L1 distance of the soft-argmax colour to the true colour code
  (reroute's addition: the expected colour is what decoding reads, and the cross-entropy
  alone rewards broad score distributions whose expectation drifts);
* :func:`part_loss`: negative log-probability of a DensePose part label under the
  predicted surface point (BodyMap sec. 3.6's use of real images with part labels:
  DensePose R-CNN's IUV of real video frames, where no surface point is known);
* :func:`part_ce_loss` / :class:`PartCELoss`: cross-entropy of the part head's scores
  (``BodyMapConfig.part_head``) against the part label, synthetic or DensePose R-CNN's,
  with the same pixel weights as the colour cross-entropy;
* :class:`BodyMapLoss`: the named terms and their weighted sum (eq. 3).

Geodesic terms are differentiable through a soft assignment of each pixel's
predicted point to the :class:`SurfaceLandmarks` of the template: the predicted
colour is the per-channel softmax expectation (soft-argmax), mapped to canonical
metres; its weight on landmark s is ``softmax_s(-|p - L_s|^2 / (2 tau^2))``, and a
distance to a landmark's geodesic row is the weighted sum of that row. With the
default 2,048 landmarks (about 3 cm apart) ``tau = 2 cm``.
"""

from __future__ import annotations

import functools
from dataclasses import asdict, dataclass

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from reroute.body.template import get_template
from reroute.correspondence.bodymap.network import BodyMapOutput
from reroute.metrics.correspondence import geodesic_table

__all__ = [
    "SurfaceLandmarks",
    "surface_landmarks",
    "detail_weights",
    "colour_ce_loss",
    "ColourCELoss",
    "silhouette_iou_loss",
    "SilhouetteIoULoss",
    "soft_argmax_colour",
    "landmark_weights",
    "geodesic_loss",
    "consistency_loss",
    "part_loss",
    "part_ce_loss",
    "PartCELoss",
    "colour_l1_loss",
    "BodyMapLossWeights",
    "BodyMapTargets",
    "BodyMapLoss",
    "sample_pixels",
    "gather_targets",
]

#: DensePose parts weighted up in the cross-entropy: hands (3, 4) and head (23, 24)
DETAIL_PARTS = (3, 4, 23, 24)


@dataclass
class SurfaceLandmarks:
    """Template landmarks for the differentiable geodesic terms.

    Attributes:
        positions: (S, 3) float32 canonical positions (metres) of the landmarks.
        distances: (S, S) float32 geodesic distances between them (metres).
        nearest: (V,) int64 nearest landmark of every template vertex.
        part: (S,) int64 DensePose part (1..24) of each landmark.
        scale: (3,) float32 metres per colour-code unit per axis (``bbox_max - bbox_min``);
            ``offset`` (3,) float32 the canonical position of colour 0.
    """

    positions: torch.Tensor
    distances: torch.Tensor
    nearest: torch.Tensor
    part: torch.Tensor
    scale: torch.Tensor
    offset: torch.Tensor

    def to(self, device) -> SurfaceLandmarks:
        return SurfaceLandmarks(*(getattr(self, k).to(device) for k in asdict(self)))


@functools.lru_cache(maxsize=2)
def surface_landmarks(n: int = 2048) -> SurfaceLandmarks:
    """The template's :class:`SurfaceLandmarks` from
    :func:`reroute.metrics.correspondence.geodesic_table` (built once, then cached)."""
    t, g = get_template(), geodesic_table(n)
    scale = (t.bbox_max - t.bbox_min).astype(np.float32)
    vertex_part = np.zeros(len(t.vertices), np.int64)
    for corner in range(3):  # a vertex on a part border takes one of its faces' parts
        vertex_part[t.faces[:, corner]] = t.face_part
    return SurfaceLandmarks(torch.from_numpy(t.vertices[g.landmarks].astype(np.float32)),
                            torch.from_numpy(g.distances.astype(np.float32)), torch.from_numpy(g.nearest),
                            torch.from_numpy(vertex_part[g.landmarks]),
                            torch.from_numpy(scale), torch.from_numpy(t.bbox_min.astype(np.float32)))  # fmt: skip


def detail_weights(part: torch.Tensor, weight: float) -> torch.Tensor:
    """(B, H, W) float32 pixel weights: ``weight`` on hands and head (:data:`DETAIL_PARTS`), else 1.

    ``part``: (B, H, W) int64 DensePose part index (0 background)."""
    detail = torch.zeros_like(part, dtype=torch.bool)
    for p in DETAIL_PARTS:
        detail |= part == p
    return 1.0 + (weight - 1.0) * detail.float()


def _check_logits(logits: torch.Tensor, name: str = "logits") -> None:
    if logits.ndim != 5 or logits.shape[1] != 3:
        raise ValueError(f"{name}: expected (B, 3, bins, H, W), got {tuple(logits.shape)}")


def colour_ce_loss(logits: torch.Tensor, target: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Weighted per-channel cross-entropy of the colour code.

    Args:
        logits: (B, 3, bins, H, W) float scores.
        target: (B, 3, H, W) int64 levels in [0, bins) (:func:`colour_targets` of the
            true colour code).
        weights: (B, H, W) float32 pixel weights, 0 where there is no true
            correspondence (background).
    Returns:
        scalar: ``sum(w * (CE_0 + CE_1 + CE_2) / 3) / sum(w)`` (0 when all weights are 0).
    Raises:
        ValueError: shapes disagree (expected versus actual).
    """
    _check_logits(logits)
    B, _, _, H, W = logits.shape
    if tuple(target.shape) != (B, 3, H, W):
        raise ValueError(f"target: expected {(B, 3, H, W)}, got {tuple(target.shape)}")
    if tuple(weights.shape) != (B, H, W):
        raise ValueError(f"weights: expected {(B, H, W)}, got {tuple(weights.shape)}")
    ce = F.cross_entropy(logits.transpose(1, 2), target, reduction="none").mean(1)  # (B, H, W)
    return (ce * weights).sum() / weights.sum().clamp_min(1e-8)


class ColourCELoss(nn.Module):
    """Module form of :func:`colour_ce_loss`."""

    def forward(self, logits, target, weights):
        return colour_ce_loss(logits, target, weights)


def silhouette_iou_loss(foreground: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """1 - soft IoU, averaged over the batch.

    Args:
        foreground: (B, 1, H, W) float logits.
        mask: (B, 1, H, W) float {0, 1} true silhouette.
    Returns:
        scalar in [0, 1]; 0 for a perfect, confident prediction.
    """
    if foreground.shape != mask.shape or foreground.ndim != 4:
        raise ValueError(f"foreground and mask: expected equal (B, 1, H, W), got {tuple(foreground.shape)} "
                         f"and {tuple(mask.shape)}")  # fmt: skip
    p = torch.sigmoid(foreground)
    inter = (p * mask).flatten(1).sum(1)
    union = (p + mask - p * mask).flatten(1).sum(1)
    return (1 - inter / union.clamp_min(1e-8)).mean()


class SilhouetteIoULoss(nn.Module):
    """Module form of :func:`silhouette_iou_loss`."""

    def forward(self, foreground, mask):
        return silhouette_iou_loss(foreground, mask)


def soft_argmax_colour(logits: torch.Tensor) -> torch.Tensor:
    """Soft-argmax colour: (N, 3, bins) scores -> (N, 3) float in [0, 1] (level k = (k + 0.5) / bins)."""
    bins = logits.shape[-1]
    levels = (torch.arange(bins, device=logits.device, dtype=torch.float32) + 0.5) / bins
    return (logits.float().softmax(-1) * levels).sum(-1)


def landmark_weights(colour: torch.Tensor, lm: SurfaceLandmarks, tau: float = 0.02) -> torch.Tensor:
    """Soft assignment (N, S) of colours (N, 3) in [0, 1] to the landmarks (rows sum to 1); ``tau`` metres."""
    p = lm.offset + colour * lm.scale
    d2 = torch.cdist(p, lm.positions) ** 2
    return (-d2 / (2 * tau**2)).softmax(-1)


def _sample_body_pixels(logits: torch.Tensor, vertex: torch.Tensor, n: int, generator=None):
    """Up to ``n`` random pixels with a true vertex: their scores (N, 3, bins) and vertices (N,)."""
    b, y, x = torch.nonzero(vertex >= 0, as_tuple=True)
    if len(b) > n:
        keep = torch.randperm(len(b), generator=generator, device="cpu")[:n].to(b.device)
        b, y, x = b[keep], y[keep], x[keep]
    return logits[b, :, :, y, x], vertex[b, y, x]


def geodesic_loss(logits: torch.Tensor, vertex: torch.Tensor, lm: SurfaceLandmarks, n_pixels: int = 4096,
                  tau: float = 0.02, generator=None) -> torch.Tensor:  # fmt: skip
    """Expected geodesic distance (metres) from the predicted to the true surface point.

    Args:
        logits: (B, 3, bins, H, W) scores.
        vertex: (B, H, W) int64 true template vertex (-1 where none).
        lm: :class:`SurfaceLandmarks` (on the logits' device).
        n_pixels: random body pixels used (all when fewer).
    Returns:
        scalar (metres): mean over the pixels of ``sum_s w_s * G[s, nearest(vertex)]``;
        0 when there are no body pixels.
    """
    _check_logits(logits)
    scores, v = _sample_body_pixels(logits, vertex, n_pixels, generator)
    if len(v) == 0:
        return logits.sum() * 0
    w = landmark_weights(soft_argmax_colour(scores), lm, tau)
    rows = lm.distances[lm.nearest[v]]  # (N, S): geodesic from each true point's landmark
    return (w * rows).sum(1).mean()


def consistency_loss(logits: torch.Tensor, vertex: torch.Tensor, lm: SurfaceLandmarks, anchors: int = 100,
                     tau: float = 0.02, generator=None) -> torch.Tensor:  # fmt: skip
    """Eq. 2: |expected geodesic between the predicted points of two anchors - the true one|,
    over every pair of ``anchors`` random body pixels per image (metres; 0 without 2 anchors)."""
    _check_logits(logits)
    losses = []
    for i in range(len(logits)):
        scores, v = _sample_body_pixels(logits[i : i + 1], vertex[i : i + 1], anchors, generator)
        if len(v) < 2:
            continue
        w = landmark_weights(soft_argmax_colour(scores), lm, tau)
        pred = w @ lm.distances @ w.T
        true = lm.distances[lm.nearest[v]][:, lm.nearest[v]]
        off = ~torch.eye(len(v), dtype=torch.bool, device=w.device)
        losses.append((pred - true).abs()[off].mean())
    return torch.stack(losses).mean() if losses else logits.sum() * 0


def colour_l1_loss(logits: torch.Tensor, target: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Weighted L1 distance of the soft-argmax colour to the true colour.

    Args:
        logits: (B, 3, bins, H, W) scores (or (B, 3, bins, N, 1) at N pixels).
        target: (B, 3, H, W) int64 true levels (level k is colour (k + 0.5) / bins).
        weights: (B, H, W) float32 pixel weights, 0 where there is no true correspondence.
    Returns:
        scalar in colour units ([0, 1] per channel, mean over the 3 channels);
        0 when all weights are 0.
    """
    _check_logits(logits)
    B, _, bins, H, W = logits.shape
    if tuple(target.shape) != (B, 3, H, W) or tuple(weights.shape) != (B, H, W):
        raise ValueError(f"target and weights: expected {(B, 3, H, W)} and {(B, H, W)}, "
                         f"got {tuple(target.shape)} and {tuple(weights.shape)}")  # fmt: skip
    colour = soft_argmax_colour(logits.permute(0, 3, 4, 1, 2))  # (B, H, W, 3)
    err = (colour - (target.permute(0, 2, 3, 1).float() + 0.5) / bins).abs().mean(-1)
    return (err * weights).sum() / weights.sum().clamp_min(1e-8)


def part_loss(logits: torch.Tensor, part: torch.Tensor, lm: SurfaceLandmarks, tau: float = 0.02,
              eps: float = 1e-4) -> torch.Tensor:  # fmt: skip
    """Mean ``-log P(part)`` over the pixels with a part label.

    ``P(part)`` is the soft assignment (:func:`landmark_weights`) of the pixel's
    soft-argmax colour to the landmarks, summed over the landmarks of each part.

    Args:
        logits: (B, 3, bins, H, W) scores (or (B, 3, bins, N, 1) at N pixels).
        part: (B, H, W) (or (B, N, 1)) int64 part labels 1..24; 0 = no label (not scored).
        lm: :class:`SurfaceLandmarks` (on the logits' device).
        eps: floor of ``P`` (nats are capped at ``-log eps``).
    Returns:
        scalar (nats); 0 when no pixel has a label.
    Raises:
        ValueError: shapes disagree (expected versus actual).
    """
    _check_logits(logits)
    if part.shape != logits.shape[:1] + logits.shape[3:]:
        raise ValueError(f"part: expected {tuple(logits.shape[:1] + logits.shape[3:])}, got {tuple(part.shape)}")
    b, y, x = torch.nonzero(part > 0, as_tuple=True)
    if len(b) == 0:
        return logits.sum() * 0
    w = landmark_weights(soft_argmax_colour(logits[b, :, :, y, x]), lm, tau)  # (N, S)
    prob = w @ F.one_hot(lm.part - 1, 24).to(w.dtype)  # (N, 24)
    return -prob.gather(1, (part[b, y, x] - 1)[:, None]).clamp_min(eps).log().mean()


def part_ce_loss(parts: torch.Tensor, part: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Weighted cross-entropy of the part scores.

    Args:
        parts: (B, 24, H, W) float scores over DensePose parts 1..24
            (:attr:`BodyMapOutput.parts`; H, W may be N, 1 at scored pixels).
        part: (B, H, W) int64 true part 0..24 (0: no label; such pixels do not count).
        weights: (B, H, W) float32 pixel weights (:func:`detail_weights`).
    Returns:
        scalar ``sum(w * CE) / sum(w)`` over labelled pixels (0 when there are none).
    Raises:
        ValueError: shapes disagree (expected versus actual).
    """
    if parts.ndim != 4 or parts.shape[1] != 24:
        raise ValueError(f"parts: expected (B, 24, H, W), got {tuple(parts.shape)}")
    hw = (parts.shape[0],) + tuple(parts.shape[2:])
    if tuple(part.shape) != hw or tuple(weights.shape) != hw:
        raise ValueError(f"part and weights: expected {hw}, got {tuple(part.shape)} and {tuple(weights.shape)}")
    w = weights * (part > 0).to(weights.dtype)
    ce = F.cross_entropy(parts, (part - 1).clamp_min(0), reduction="none")
    return (ce * w).sum() / w.sum().clamp_min(1e-8)


class PartCELoss(nn.Module):
    """Module form of :func:`part_ce_loss`."""

    def forward(self, parts, part, weights):
        return part_ce_loss(parts, part, weights)


@dataclass
class BodyMapLossWeights:
    """Eq. 3 weights and term settings.

    ``part``: weight of :func:`part_loss` on real images (``BodyMapTargets.real``);
    ``colour_l1``: weight of :func:`colour_l1_loss`; ``part_ce``: weight of
    :func:`part_ce_loss` (networks with a part head; every labelled pixel, synthetic and real);
    ``detail``: cross-entropy pixel weight on hands and head; ``anchors``: pixels
    per image of the consistency term; ``geodesic_pixels``: pixels per batch of the
    geodesic term; ``tau``: soft-assignment width (metres).
    """

    ce: float = 1.0
    silhouette: float = 1.0
    geodesic: float = 1.0
    consistency: float = 1.0
    part: float = 0.0
    colour_l1: float = 0.0
    part_ce: float = 0.0
    detail: float = 3.0
    anchors: int = 100
    geodesic_pixels: int = 4096
    tau: float = 0.02


@dataclass
class BodyMapTargets:
    """Ground truth of a batch.

    Attributes:
        colour: (B, 3, H, W) int64 colour-code levels (:func:`colour_targets`).
        mask: (B, 1, H, W) float32 {0, 1} silhouette (the whole clothed person).
        part: (B, H, W) int64 DensePose part (0 background): the render's on synthetic
            images, DensePose R-CNN's on real ones.
        vertex: (B, H, W) int64 true template vertex (-1 where none, as on real images).
        real: (B,) float32, 1 for a real image (only :func:`part_loss` and the
            silhouette see it), or ``None`` (all synthetic).
    """

    colour: torch.Tensor
    mask: torch.Tensor
    part: torch.Tensor
    vertex: torch.Tensor
    real: torch.Tensor | None = None


def sample_pixels(vertex: torch.Tensor, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """``n`` random pixels per image among those with a true vertex (with replacement
    when fewer; anywhere when none): (B, n) int64 flat indices ``y * W + x``.

    ``vertex``: (B, H, W) int64 (-1 where none), or a (B, H, W) bool map of the pixels
    to draw from (training: a true vertex or a part label). Scoring only these pixels
    (:meth:`BodyMapNet.forward`'s ``pixels``) keeps the cross-entropy unbiased:
    it is a mean over body pixels anyway."""
    flat = (vertex if vertex.dtype == torch.bool else vertex >= 0).flatten(1).float()
    empty = flat.sum(1, keepdim=True) == 0
    weights = torch.where(empty, torch.ones_like(flat), flat)
    return torch.multinomial(weights, n, replacement=True, generator=generator)


def gather_targets(t: BodyMapTargets, pixels: torch.Tensor) -> BodyMapTargets:
    """The targets at ``pixels`` (B, N) as (N, 1) images; the silhouette stays whole."""

    def pick(x: torch.Tensor) -> torch.Tensor:  # (B, [C,] H, W) -> (B, [C,] N, 1)
        if x.ndim == 3:
            return torch.gather(x.flatten(1), 1, pixels)[..., None]
        return torch.gather(x.flatten(2), 2, pixels[:, None].expand(-1, x.shape[1], -1))[..., None]

    return BodyMapTargets(pick(t.colour), t.mask, pick(t.part), pick(t.vertex), t.real)


class BodyMapLoss(nn.Module):
    """The weighted sum of the named terms (eq. 3); geodesic terms only when their weight > 0.

    ``terms(out, targets)`` -> dict of scalar tensors ``ce``, ``silhouette``,
    ``geodesic``, ``consistency``, ``part`` (real images' labels), ``colour_l1`` and
    ``part_ce`` (the last three only when their weight > 0); ``total(terms)`` -> their weighted sum. When
    ``out.logits`` scores only N pixels, ``targets`` must be :func:`gather_targets`
    at those pixels (the silhouette term uses the whole foreground map).
    """

    def __init__(self, weights: BodyMapLossWeights | None = None, landmarks: SurfaceLandmarks | None = None):
        super().__init__()
        self.w = weights or BodyMapLossWeights()
        self.landmarks = landmarks
        if (self.w.geodesic > 0 or self.w.consistency > 0 or self.w.part > 0) and landmarks is None:
            self.landmarks = surface_landmarks()

    def terms(self, out: BodyMapOutput, t: BodyMapTargets) -> dict[str, torch.Tensor]:
        w = self.w
        pix = detail_weights(t.part, w.detail) * (t.vertex >= 0).float()
        terms = {"ce": colour_ce_loss(out.logits, t.colour, pix),
                 "silhouette": silhouette_iou_loss(out.foreground, t.mask)}  # fmt: skip
        if w.colour_l1 > 0:
            terms["colour_l1"] = colour_l1_loss(out.logits, t.colour, pix)
        if w.part_ce > 0:
            if out.parts is None:
                raise ValueError("the part_ce term needs a network with a part head (BodyMapConfig.part_head)")
            terms["part_ce"] = part_ce_loss(out.parts, t.part, detail_weights(t.part, w.detail))
        if w.geodesic > 0 or w.consistency > 0 or w.part > 0:
            lm = self.landmarks.to(out.logits.device)
            if w.geodesic > 0:
                terms["geodesic"] = geodesic_loss(out.logits, t.vertex, lm, w.geodesic_pixels, w.tau)
            if w.consistency > 0:
                terms["consistency"] = consistency_loss(out.logits, t.vertex, lm, w.anchors, w.tau)
            if w.part > 0:
                real = torch.zeros(len(t.part), device=t.part.device) if t.real is None else t.real
                labels = t.part * (real > 0).view(-1, *([1] * (t.part.ndim - 1)))
                terms["part"] = part_loss(out.logits, labels, lm, w.tau)
        return terms

    def total(self, terms: dict[str, torch.Tensor]) -> torch.Tensor:
        return sum(getattr(self.w, k) * v for k, v in terms.items())
