"""Synthetic video sequences: one anny person walking while the camera turns around them.

A :class:`SyntheticVideo` is ``frames`` images of identity ``identity`` of
:class:`~reroute.synth.engine.SyntheticEngine` (same phenotypes, outfit and
texture as the still-image engine gives for that seed, identity index and
:class:`~reroute.synth.engine.SynthConfig`), with continuous motion:

* **pose**: the gait cycle of :func:`reroute.synth.pose.walk_pose` (walking in
  place, as on a treadmill) at phase ``phase0 + t / walk_period`` for frame ``t``,
  stride and arm swing drawn once per sequence;
* **camera**: an orbit about the vertical axis through the body's horizontal
  centroid (mean over all frames' vertices), ``turn_deg_per_frame`` degrees per
  frame from a start yaw drawn in ``yaw0_range_deg``; pitch, focal length,
  light, ambient term, background and sensor noise are drawn once per sequence
  and kept, and the distance is fixed so that the union over all frames of the
  body's bounding box fills ``fill`` of the image (no per-frame re-framing, so
  the only image motion is the body's and the camera's).

Every frame is a :class:`~reroute.synth.engine.SyntheticSample` with the same
ground truth as the still-image engine (RGB, mask, IUV, continuous UV, nearest
template vertex per pixel, depth, keypoints, posed vertices and camera).
Deterministic given ``(seed, identity)``: the sequence parameters come from
``np.random.default_rng([seed, identity, 0x51DE0])``. Frames are rendered on
access (:meth:`SyntheticVideo.frame`), so long sequences need no memory beyond
the skinned vertices (N x 13,718 x 3 float32, 165 kB a frame).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from reroute.body.posed import CAMERA_FROM_ANNY, rotation_x, rotation_z
from reroute.synth.engine import (
    Identity,
    SynthConfig,
    SyntheticEngine,
    SyntheticSample,
    pose_batch,
)
from reroute.synth.pose import walk_pose

__all__ = ["VideoConfig", "SyntheticVideo"]

_SEQ_TAG = 0x51DE0


@dataclass
class VideoConfig:
    """Parameters of a synthetic sequence.

    Attributes:
        frames: N, number of frames (>= 1).
        size: image side in pixels (128..1024).
        texture_size: the identity's UV texture side.
        walk_period: frames per gait cycle (30 = one cycle a second at 30 fps).
        turn_deg_per_frame: camera orbit speed (degrees a frame, anticlockwise
            seen from above); 0 = a static camera.
        yaw0_range_deg: (low, high) start yaw (0 = the person faces the camera).
        fill: the union bounding box's extent as a fraction of the image side.
        cluttered_prob: probability of a cluttered background (drawn once).
        noise_max: largest sensor-noise sigma (fraction of full scale); the noise
            pattern is the same in every frame.
    """

    frames: int = 13
    size: int = 256
    texture_size: int = 512
    walk_period: float = 30.0
    turn_deg_per_frame: float = 1.0
    yaw0_range_deg: tuple[float, float] = (-40.0, 40.0)
    fill: float = 0.8
    cluttered_prob: float = 0.5
    noise_max: float = 0.01

    def validate(self) -> VideoConfig:
        """Return self; raise ``ValueError`` naming the bad field otherwise."""
        if self.frames < 1:
            raise ValueError(f"frames must be >= 1, got {self.frames}")
        if not 128 <= self.size <= 1024:
            raise ValueError(f"size must be in 128..1024 px, got {self.size}")
        if self.walk_period <= 0:
            raise ValueError(f"walk_period must be > 0 frames, got {self.walk_period}")
        if not 0.1 <= self.fill <= 1.0:
            raise ValueError(f"fill must be in [0.1, 1], got {self.fill}")
        return self


class _OrbitEngine(SyntheticEngine):
    """The still-image engine with a fixed, sequence-wide camera placement (see module doc)."""

    def __init__(self, config: SynthConfig, seed: int, centre: np.ndarray, translation: np.ndarray):
        super().__init__(config, seed)
        self._centre = centre
        self._translation = translation

    def _place(self, verts, spec, cam):  # noqa: ARG002 - same signature as the base class
        R = rotation_x(-spec.pitch_deg) @ CAMERA_FROM_ANNY @ rotation_z(spec.yaw_deg)
        return R, self._translation - R @ self._centre


class SyntheticVideo:
    """A deterministic synthetic sequence (see the module docstring).

    Args:
        config: :class:`VideoConfig` (validated).
        seed: master seed; ``identity``: identity index (as in the still engine).

    Attributes:
        yaws_deg: (N,) float64 camera yaw per frame; ``phases``: (N,) gait phase in [0, 1).
        vertices: (N, V, 3) float32 posed anny-frame vertices (metres) per frame.
    Raises:
        ValueError: for a bad config.
    """

    def __init__(self, config: VideoConfig | None = None, seed: int = 0, identity: int = 0):
        c = self.config = (config or VideoConfig()).validate()
        self.seed, self.identity_index = int(seed), int(identity)
        still = SynthConfig(size=c.size, texture_size=c.texture_size, views_per_identity=1,
                            pose_kinds=("walking",), multi_person_prob=0.0,
                            cluttered_prob=c.cluttered_prob, noise_max=c.noise_max).validate()  # fmt: skip
        base_ident = SyntheticEngine(still, seed).identity(identity)
        rng = np.random.default_rng([self.seed, self.identity_index, _SEQ_TAG])
        phase0 = float(rng.random())
        stride, arm = float(rng.uniform(0.6, 1.1)), float(rng.uniform(0.4, 1.1))
        yaw0 = float(rng.uniform(*c.yaw0_range_deg))
        t = np.arange(c.frames, dtype=np.float64)
        self.phases = (phase0 + t / c.walk_period) % 1.0
        self.yaws_deg = yaw0 + c.turn_deg_per_frame * t
        spec0 = base_ident.views[0]
        poses = [walk_pose(float(p), stride=stride, arm_swing=arm) for p in self.phases]
        specs = [replace(spec0, pose=p, pose_kind="walking", yaw_deg=float(y), framing="full",
                         fill=c.fill, offset=np.zeros(2), extras=[])
                 for p, y in zip(poses, self.yaws_deg, strict=True)]  # fmt: skip
        chunks = [pose_batch(poses[i : i + 16], [base_ident.phenotypes] * len(poses[i : i + 16]))
                  for i in range(0, len(poses), 16)]  # fmt: skip
        self.vertices = np.concatenate(chunks)
        self._ident = Identity(identity, base_ident.phenotypes, base_ident.outfit,
                               base_ident.texture, specs, self.vertices)  # fmt: skip
        # sequence-wide placement: orbit about the centroid's vertical axis, fixed distance
        v = self.vertices.astype(np.float64)
        centre = v.reshape(-1, 3).mean(0)
        centre[2] = 0.0
        lo, hi = np.full(3, np.inf), np.full(3, -np.inf)
        for k in range(c.frames):
            R = rotation_x(-spec0.pitch_deg) @ CAMERA_FROM_ANNY @ rotation_z(self.yaws_deg[k])
            vk = (v[k] - centre) @ R.T
            lo, hi = np.minimum(lo, vk.min(0)), np.maximum(hi, vk.max(0))
        focal = spec0.focal_factor * c.size
        depth = focal * max(hi[0] - lo[0], hi[1] - lo[1]) / (c.fill * c.size)
        tr = np.array([-(lo[0] + hi[0]) / 2, -(lo[1] + hi[1]) / 2, depth - (lo[2] + hi[2]) / 2])
        self._engine = _OrbitEngine(still, seed, centre, tr)

    def __len__(self) -> int:
        return self.config.frames

    def frame(self, t: int) -> SyntheticSample:
        """Frame ``t`` (0 <= t < N) with all ground truth; ``sample.view`` is ``t``.

        Raises:
            IndexError: for t outside 0..N-1.
        """
        if not 0 <= t < len(self):
            raise IndexError(f"frame {t} out of range for {len(self)} frames")
        return self._engine.render(self._ident, int(t))

    def __iter__(self):
        for t in range(len(self)):
            yield self.frame(t)
