"""Training samples of the BodyMap network: synthetic people with a realistic initialisation.

Each sample is one render of :class:`reroute.synth.engine.SyntheticEngine` (exact
colour code, part, vertex and silhouette of every person in the frame) and an
*initial* correspondence map in the role of the paper's CSE input: the
primary person's true pose, shape, facing and placement perturbed
(:class:`InitPerturbation`), skinned again, rendered and extended to a slightly
eroded or dilated true silhouette by
:func:`reroute.correspondence.fitted.render_correspondence`, exactly as the
template fit's correspondences are made on photos. The perturbation sizes are
chosen so that the initial maps' errors match the real fit's on synthetic
renders (``benchmarks/bodymap_init_error.py`` measures both).

BodyMap's augmentations: upper-body framings and several people come from the
engine (``SynthConfig.upper_body_prob``, ``multi_person_prob``); in-plane
rotations and hue / saturation jitter are applied here (:class:`Augment`).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import kornia
import numpy as np
import torch
from torch.nn import functional as F

from reroute.body.fit import POSE_BONES
from reroute.body.posed import CAMERA_FROM_ANNY, FittedBody, rotation_x, rotation_z
from reroute.correspondence.bodymap.decode import colour_targets
from reroute.correspondence.bodymap.network import init_tensor
from reroute.correspondence.fitted import render_correspondence
from reroute.correspondence.maps import Correspondence
from reroute.synth.engine import SynthConfig, SyntheticEngine, SyntheticSample, pose_batch
from reroute.synth.pose import pose_to_matrices

__all__ = ["InitPerturbation", "perturbed_init", "Augment", "augment_sample", "BodyMapDataset", "sample_tensors",
           "default_synth_config"]


@dataclass
class InitPerturbation:
    """How far the initial correspondences are from the truth.

    Attributes:
        pose_deg: standard deviation (degrees) of the rotation noise added to each
            axis of every bone the fit optimises (:data:`reroute.body.fit.POSE_BONES`).
        yaw_deg: standard deviation of the facing error (degrees, about the body's up axis).
        flip_prob: chance that the facing is turned by 180 degrees (a front/back mistake).
        phenotype: standard deviation of the phenotype noise (values clipped to [0, 1]).
        shift: standard deviation of the sideways and vertical placement error, as a
            fraction of the camera distance; ``depth``: of the relative distance error.
        mask_px: the silhouette the map is extended to is eroded or dilated by
            ``round(N(0, mask_px))`` pixels at 256 px (scaled with the image side),
            as mediapipe's masks err.

    The defaults match the real fit's errors on held-out synthetic renders
    (``python benchmarks/bodymap_init_error.py``; the model card of a trained
    network records the measured rows).
    """

    pose_deg: float = 1.5
    yaw_deg: float = 3.0
    flip_prob: float = 0.03
    phenotype: float = 0.05
    shift: float = 0.003
    depth: float = 0.01
    mask_px: float = 0.6


def _perturbed_body(sample: SyntheticSample, p: InitPerturbation, rng: np.random.Generator) -> FittedBody:
    spec, body = sample.spec, sample.body
    pose = {k: np.asarray(v, np.float64).copy() for k, v in spec.pose.items()}
    for bone in POSE_BONES:
        pose[bone] = pose.get(bone, np.zeros(3)) + np.deg2rad(p.pose_deg) * rng.standard_normal(3)
    phen = {k: float(np.clip(v + p.phenotype * rng.standard_normal(), 0, 1)) for k, v in body.phenotypes.items()}
    yaw = spec.yaw_deg + p.yaw_deg * rng.standard_normal() + (180.0 if rng.random() < p.flip_prob else 0.0)
    R = rotation_x(-spec.pitch_deg) @ CAMERA_FROM_ANNY @ rotation_z(yaw)
    verts = pose_batch([pose], [phen])[0].astype(np.float64)
    t = np.asarray(body.translation, np.float64).copy()
    # keep the body's centre where the truth has it, then move it by the placement error
    centre_true = (body.vertices.astype(np.float64)).mean(0)
    t += centre_true - (verts @ R.T + t).mean(0)
    t[:2] += p.shift * t[2] * rng.standard_normal(2)
    t[2] *= 1 + p.depth * rng.standard_normal()
    v = (verts @ R.T + t).astype(np.float32)
    return FittedBody(pose_to_matrices(pose).astype(np.float32), phen, R.astype(np.float32),
                      t.astype(np.float32), body.camera, v, body.keypoints_2d, 0.0)  # fmt: skip


def perturbed_init(sample: SyntheticSample, p: InitPerturbation, rng: np.random.Generator) -> Correspondence:
    """The initial correspondences of ``sample``'s primary person (see the module docstring).

    Returns a :class:`Correspondence` of the image's size; needs ``sample.spec``.
    """
    if sample.spec is None:
        raise ValueError("the sample has no ViewSpec (render it with SyntheticEngine)")
    body = _perturbed_body(sample, p, rng)
    mask = sample.mask.astype(np.uint8)
    k = int(round(p.mask_px * rng.standard_normal() * mask.shape[0] / 256))
    if k:
        kernel = np.ones((2 * abs(k) + 1,) * 2, np.uint8)
        mask = (cv2.dilate if k > 0 else cv2.erode)(mask, kernel)
    return render_correspondence(body, mask.astype(bool))


@dataclass
class Augment:
    """In-plane rotation (uniform in +-``rotate_deg``, with probability ``rotate_prob``) of
    all maps alike, and hue (+-``hue`` radians) / saturation (x(1 +- ``saturation``))
    jitter of the image."""

    rotate_deg: float = 20.0
    rotate_prob: float = 0.5
    hue: float = 0.08
    saturation: float = 0.3


def sample_tensors(sample: SyntheticSample, init: Correspondence) -> dict[str, torch.Tensor]:
    """A sample and its initial map as training tensors.

    Returns ``image`` (3, H, W) float32 in [-1, 1]; ``init`` (4, H, W) float32
    (:func:`reroute.correspondence.bodymap.network.init_tensor`); ``colour`` (3, H, W)
    int64 levels (:func:`colour_targets`); ``mask`` (1, H, W) float32 {0, 1} (every
    person); ``part`` (H, W) int64; ``vertex`` (H, W) int64 (-1 background).
    """
    c = sample.correspondence
    colour = torch.from_numpy(np.ascontiguousarray(c.colour.transpose(2, 0, 1)))[None]
    return {
        "image": torch.from_numpy(np.ascontiguousarray(sample.image.transpose(2, 0, 1))).float() / 127.5 - 1,
        "init": init_tensor(init)[0],
        "colour": colour_targets(colour)[0],
        "mask": torch.from_numpy(c.mask.astype(np.float32))[None],
        "part": torch.from_numpy(c.part.astype(np.int64)),
        "vertex": torch.from_numpy(sample.vertex_index.astype(np.int64)),
    }


def _rotate(t: dict[str, torch.Tensor], deg: float) -> dict[str, torch.Tensor]:
    angle = torch.tensor([deg], dtype=torch.float32)
    out = {}
    for k, v in t.items():
        x = v[None].float() if v.ndim == 3 else v[None, None].float()
        if k == "vertex":
            x = x + 1  # background -1 -> 0, the rotation's fill value
        mode = "bilinear" if k == "image" else "nearest"
        y = kornia.geometry.transform.rotate(x, angle, mode=mode, padding_mode="zeros", align_corners=False)
        if k == "vertex":
            y = y - 1
        y = y[0] if v.ndim == 3 else y[0, 0]
        out[k] = y.round().to(v.dtype) if not v.dtype.is_floating_point else y
    return out


def augment_sample(t: dict[str, torch.Tensor], a: Augment, g: np.random.Generator) -> dict[str, torch.Tensor]:
    """:func:`sample_tensors` ``t`` augmented by ``a`` with the random generator ``g``:
    every map rotated alike (nearest neighbour; the image bilinearly) with probability
    ``a.rotate_prob``, then the image's hue and saturation jittered."""
    if g.random() < a.rotate_prob:
        t = _rotate(t, float(g.uniform(-a.rotate_deg, a.rotate_deg)))
    return {**t, "image": _jitter(t["image"], a, g)}


def _jitter(image: torch.Tensor, a: Augment, g: np.random.Generator) -> torch.Tensor:
    x = (image[None] + 1) / 2
    x = kornia.enhance.adjust_hue(x, float(g.uniform(-a.hue, a.hue)))
    x = kornia.enhance.adjust_saturation(x, float(g.uniform(1 - a.saturation, 1 + a.saturation)))
    return x[0].clamp(0, 1) * 2 - 1


class BodyMapDataset(torch.utils.data.Dataset):
    """Synthetic training samples, rendered on the fly, deterministic per (seed, index, epoch).

    Item ``i`` is view ``i % views_per_identity`` of identity ``i // views_per_identity``
    of a :class:`SyntheticEngine` with ``config`` and ``seed``; its tensors are
    :func:`sample_tensors` (``augment``: :class:`Augment` applied, different each epoch),
    at ``size`` pixels when given (rendered at 128, the engine's smallest, and reduced:
    the image by area, every map by nearest neighbour).
    """

    def __init__(self, length: int, config: SynthConfig | None = None, seed: int = 0,
                 perturbation: InitPerturbation | None = None, augment: Augment | None = None,
                 size: int | None = None):  # fmt: skip
        self.length, self.seed = int(length), seed
        self.config = config or default_synth_config(max(128, size or 256))
        self.size = size
        self.perturbation = perturbation or InitPerturbation()
        self.augment = augment
        self.epoch = 0
        self._engine: SyntheticEngine | None = None

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.length

    @property
    def engine(self) -> SyntheticEngine:
        if self._engine is None:  # built lazily: one per DataLoader worker
            self._engine = SyntheticEngine(self.config, seed=self.seed)
        return self._engine

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        k = self.config.views_per_identity
        s = self.engine.sample(i // k, i % k)
        rng = np.random.default_rng([self.seed, i, 7])
        t = sample_tensors(s, perturbed_init(s, self.perturbation, rng))
        if self.augment is not None:
            t = augment_sample(t, self.augment, np.random.default_rng([self.seed, i, self.epoch, 11]))
        if self.size is not None and self.size != t["image"].shape[-1]:
            t = {k: _reduced(v, self.size, area=k == "image") for k, v in t.items()}
        return t


def _reduced(t: torch.Tensor, size: int, area: bool) -> torch.Tensor:
    x = t[None].float() if t.ndim == 3 else t[None, None].float()
    y = F.interpolate(x, size=(size, size), mode="area" if area else "nearest")
    y = y[0] if t.ndim == 3 else y[0, 0]
    return y if t.dtype.is_floating_point else y.round().to(t.dtype)


def default_synth_config(size: int) -> SynthConfig:
    """The engine settings of training: BodyMap's upper-body crops and extra people."""
    return SynthConfig(size=size, texture_size=256, upper_body_prob=0.25, multi_person_prob=0.2)
