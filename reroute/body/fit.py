"""Fitting anny's pose, phenotypes and placement to photos (SMPLify-style).

Gradient descent in torch (Bogo et al., ECCV 2016, "Keep it SMPL", with the
body replaced by anny) on:

* a robust 2-D reprojection term between anny's regressed COCO keypoints
  (+ heels and big toes) and BlazePose's landmarks, weighted by visibility;
* a 3-D bone-direction term against BlazePose's metric world landmarks
  (1 - cosine between limb directions; the camera frame and BlazePose's world
  frame share their axes);
* a silhouette term: projected surface points outside the person mask are
  pulled in (distance transform of the mask's outside), and mask points far
  from every projected surface point pull the body out (one-sided chamfer);
* a pose prior: squared rotation angles, heavier on spine, neck, clavicles,
  wrists and feet, so limbs stay human;
* a phenotype prior towards anny's average body (last stage only).

The camera is a centred pinhole with ``focal = 1.5 * max(H, W)`` (OpenCV axes,
see :mod:`reroute.body.raster`).

Initialisation (closed form, :func:`_initialise`): the body's facing is the
Kabsch alignment of anny's shoulders and hips to BlazePose's world landmarks,
the depth comes from the ratio of 3-D to 2-D torso size, and each upper and
lower arm and leg is swung from anny's reference pose onto BlazePose's 3-D
limb direction (inverse kinematics on the world landmarks), so the gradient
descent starts near the answer and stops after far fewer steps: a stage ends
when its loss has stopped falling (:attr:`FitConfig.tol`). By default
(``FitConfig.init="learned"``) that pose is then corrected by a small network
trained on synthetic full-body renders of known pose (:mod:`reroute.body.fit_init`:
twist, spine, neck and head, which the closed form leaves at rest) when the whole
body is in the frame (:func:`~reroute.body.fit_init.in_training_domain`).

Speed: every optimised quantity is linear in the 18 optimised bones'
transforms once the phenotypes are fixed (:class:`_FastSkin`), so a step
evaluates the 23 keypoints exactly from a pre-contracted (23, 18, 4) tensor
and skins only :attr:`FitConfig.surface_points` surface vertices for the
silhouette. :func:`fit_bodies` fits several photos as one batch (one
optimiser step serves all of them; Adam's update is element-wise and each
photo has its own learning-rate schedule and convergence stop, so each photo's
trajectory is the one it would have alone). Concurrent calls from several
threads (an app serving several requests) are merged into one batch
(:class:`~reroute.body.fit_batch.FitBatcher`): the fit's cost is per step, not per
photo.

Pose parameters are anny's ``local-ref`` deltas: per-bone rotations about the
bone's head, expressed in world-aligned axes relative to the parent (identity =
anny's reference A-pose).
"""

from __future__ import annotations

import contextlib
import os
import threading
import warnings
from dataclasses import dataclass, field, replace

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from reroute.body.detect import BLAZEPOSE_NAMES, PersonObservation
from reroute.body.fit_batch import FitBatcher
from reroute.body.posed import FittedBody, axis_angle_to_matrix, posed_vertices
from reroute.body.raster import Camera
from reroute.body.template import load_anny
from reroute.errors import FitError

__all__ = [
    "COMPILE_ENV",
    "DenseTargets",
    "FitConfig",
    "RefitConfig",
    "SHARED_BATCHER",
    "fit_bodies",
    "fit_body",
    "POSE_BONES",
    "refit_body",
]

#: environment variable whose value "1" makes :attr:`FitConfig.compile` default to True
COMPILE_ENV = "REROUTE_COMPILE_FIT"

#: bones whose rotation is optimised, with their prior weight
POSE_BONES: dict[str, float] = {
    "spine04": 4.0, "spine02": 4.0, "neck01": 4.0, "head": 2.0,
    "clavicle.L": 8.0, "clavicle.R": 8.0,
    "upperarm01.L": 0.2, "upperarm01.R": 0.2, "lowerarm01.L": 0.3, "lowerarm01.R": 0.3,
    "wrist.L": 2.0, "wrist.R": 2.0,
    "upperleg01.L": 0.3, "upperleg01.R": 0.3, "lowerleg01.L": 0.3, "lowerleg01.R": 0.3,
    "foot.L": 2.0, "foot.R": 2.0,
}  # fmt: skip

#: phenotypes optimised in the last stage (others stay at anny's default)
FIT_PHENOTYPES = ("gender", "weight", "muscle", "height", "proportions")

# anny COCO-23 keypoint name -> BlazePose name
_KP_MAP = {
    "nose": "nose", "left_eye": "left_eye", "right_eye": "right_eye", "left_ear": "left_ear",
    "right_ear": "right_ear", "left_shoulder": "left_shoulder",
    "right_shoulder": "right_shoulder", "left_elbow": "left_elbow",
    "right_elbow": "right_elbow", "left_wrist": "left_wrist", "right_wrist": "right_wrist",
    "left_hip": "left_hip", "right_hip": "right_hip", "left_knee": "left_knee",
    "right_knee": "right_knee", "left_ankle": "left_ankle", "right_ankle": "right_ankle",
    "left_big_toe": "left_foot_index", "right_big_toe": "right_foot_index",
    "left_heel": "left_heel", "right_heel": "right_heel",
}  # fmt: skip
_KP_WEIGHT = {"nose": 0.5, "left_eye": 0.3, "right_eye": 0.3, "left_ear": 0.3, "right_ear": 0.3}
_LIMBS = [
    ("left_shoulder", "left_elbow"), ("left_elbow", "left_wrist"),
    ("right_shoulder", "right_elbow"), ("right_elbow", "right_wrist"),
    ("left_hip", "left_knee"), ("left_knee", "left_ankle"),
    ("right_hip", "right_knee"), ("right_knee", "right_ankle"),
    ("right_shoulder", "left_shoulder"), ("right_hip", "left_hip"),
    ("left_hip", "left_shoulder"), ("right_hip", "right_shoulder"),
]  # fmt: skip
#: the limb chains the initialisation swings onto BlazePose's world landmarks:
#: (upper bone, lower bone, root, middle and end keypoint)
_IK_CHAINS = [
    ("upperarm01.L", "lowerarm01.L", "left_shoulder", "left_elbow", "left_wrist"),
    ("upperarm01.R", "lowerarm01.R", "right_shoulder", "right_elbow", "right_wrist"),
    ("upperleg01.L", "lowerleg01.L", "left_hip", "left_knee", "left_ankle"),
    ("upperleg01.R", "lowerleg01.R", "right_hip", "right_knee", "right_ankle"),
]  # fmt: skip


@dataclass
class FitConfig:
    """Schedule and weights of :func:`fit_body` / :func:`fit_bodies`.

    Attributes:
        steps_global: at most this many Adam steps on facing and translation only.
        steps_pose: at most this many steps on pose + facing + translation.
        steps_shape: steps that also move phenotypes (0, the default, keeps
            anny's average phenotypes: on the 124 UBC Fashion frames the
            phenotype stage pulled the body towards the clothes' silhouette,
            doubled the keypoint error (1.4 -> 2.8 px), lowered the part IoU
            against DensePose (0.52 -> 0.50) and doubled the fit time).
        lr: Adam learning rate for rotations (radians per step scale).
        lr_final_factor: after ``warmup`` steps rising linearly to ``lr``, each
            stage's learning rate falls linearly to ``lr * lr_final_factor``
            at its last step.
        warmup: steps of linear learning-rate warm-up (Adam's first steps
            are ``lr``-sized whatever the gradient, which would throw a good
            initialisation away).
        tol: convergence: once a stage's loss (summed over the batch) fell by
            less than ``tol`` (relative) over the last ``patience`` steps, its
            learning-rate decay completes over ``patience`` more steps and the
            stage stops; 0 always runs every step.
        patience: steps over which ``tol`` is judged.
        init: ``"ik"`` swings the limbs onto BlazePose's 3-D limb directions
            before the descent; ``"learned"`` (the default) corrects that start with
            the :class:`~reroute.body.fit_init.FitInitNet` (``init_checkpoint``) on
            photos with the whole body in the frame (others keep the closed form);
            ``"rest"`` starts from anny's reference pose.
        init_checkpoint: the ``"learned"`` network's checkpoint (default: the
            committed ``checkpoints/fit_init.pt``).
        surface_points: anny vertices (evenly spread) projected for the
            silhouette term.
        mask_points: person-mask pixels drawn for the silhouette's chamfer.
        threads: torch threads used during the fit (0 keeps the caller's).
        compile: run each step's loss and its gradient through ``torch.compile``
            (TorchInductor; needs a C++ compiler): on the 2-core CPU a two-photo
            fit takes 0.55-0.8 times the eager time, but the first fit of a process
            compiles (about 2 minutes on a new machine, seconds once Inductor's
            on-disk cache holds the kernels), so it pays off in a
            long-running process (the app server turns it on and compiles at
            start-up, :func:`reroute.pipelines.warmup.compile_fit_step`). Results
            equal the eager fit up to float summation order. The phenotype stage
            (``steps_shape``) stays eager. Falls back to the eager loss, with a
            warning, where compiling fails. Off by default; the environment
            variable ``REROUTE_COMPILE_FIT=1`` (:data:`COMPILE_ENV`) turns it on
            for every default config of the process (``launch.py --compile-fit``).
        w_2d, w_3d, w_mask, w_prior, w_shape: loss weights.
        focal_factor: camera focal length as a multiple of ``max(H, W)``.
    """

    steps_global: int = 0
    steps_pose: int = 40
    steps_shape: int = 0
    lr: float = 0.04
    lr_final_factor: float = 0.1
    tol: float = 0.005
    patience: int = 5
    init: str = "learned"
    init_checkpoint: str | None = None
    warmup: int = 8
    surface_points: int = 600
    mask_points: int = 200
    threads: int = 1
    compile: bool = field(default_factory=lambda: os.environ.get(COMPILE_ENV, "") == "1")
    w_2d: float = 1.0
    w_3d: float = 0.05
    w_mask: float = 0.5
    w_prior: float = 0.002
    w_shape: float = 0.01
    focal_factor: float = 1.5

    @classmethod
    def legacy(cls) -> FitConfig:
        """The schedule before the closed-form initialisation (20 + 60 fixed steps
        from the reference pose, no warm-up, 2000 surface points, 400 mask
        points), for comparisons."""
        return cls(steps_global=20, steps_pose=60, tol=0.0, init="rest", warmup=0,
                   surface_points=2000, mask_points=400)  # fmt: skip


class _Body:
    """anny evaluated on a vertex subset, differentiable in pose and phenotypes.

    The subset holds every vertex anny's COCO keypoint regressor reads plus
    ``n_uniform`` evenly spaced surface vertices (``n_uniform_mask``).
    """

    def __init__(self, n_uniform: int = 2000):
        self.model = load_anny()
        m = self.model
        import anny

        kr = anny.KeypointsRegressor.coco(m)
        self.kp_names = list(kr.labels)
        w = kr.regression_weights.float()
        self.kp_w_full = w  # (23, V)
        kp_verts = torch.nonzero(w.abs().sum(0) > 0).squeeze(1)
        uniform = torch.linspace(0, m.template_vertices.shape[0] - 1, n_uniform).long()
        self.subset = torch.unique(torch.cat([kp_verts, uniform]))
        pos = {int(v): i for i, v in enumerate(self.subset.tolist())}
        self.kp_cols = torch.tensor([pos[int(v)] for v in kp_verts])
        self.kp_w = w[:, kp_verts]  # (23, K)
        self.n_uniform_mask = torch.isin(self.subset, uniform)
        self.bone_index = {n: i for i, n in enumerate(m.bone_labels)}
        self.pose_ids = torch.tensor([self.bone_index[b] for b in POSE_BONES])
        self.vb_idx = m.vertex_bone_indices[self.subset]
        self.vb_w = m.vertex_bone_weights[self.subset].float()
        self._fast: _FastSkin | None = None
        self._full: _FastSkin | None = None

    def fast_skin(self) -> _FastSkin:
        """:class:`_FastSkin` of the subset for the default phenotypes (built once)."""
        if self._fast is None:
            with torch.no_grad():
                self._fast = _FastSkin(self, *self.rest(None))
        return self._fast

    def full_skin(self) -> _FastSkin:
        """:class:`_FastSkin` of all 13,718 vertices for the default phenotypes (built once)."""
        if self._full is None:
            with torch.no_grad():
                self._full = _FastSkin(self, *self.rest(None, subset=False), vertices=None)
        return self._full

    def rest(self, pheno: torch.Tensor | None, subset: bool = True):
        """Rest vertices (float32; the subset, or all with ``subset=False``) and rest bone
        poses for phenotypes (5,) in [0, 1] (``None``: anny's defaults)."""
        m = self.model
        kwargs = None
        if pheno is not None:
            kwargs = {n: pheno[i : i + 1].double() for i, n in enumerate(FIT_PHENOTYPES)}
        eye = torch.eye(4, dtype=torch.float64).expand(1, m.bone_count, 4, 4)
        out = m(pose_parameters=eye.clone(), phenotype_kwargs=kwargs)
        verts = out["rest_vertices"][0]
        return (verts[self.subset] if subset else verts).float(), out["rest_bone_poses"]

    def forward(self, rot: torch.Tensor, rest_v, rest_poses):
        """Skinned subset vertices (S, 3) float32 in anny's frame for bone axis-angles rot (J, 3)."""
        m = self.model
        P = torch.eye(4, dtype=torch.float64).repeat(1, m.bone_count, 1, 1)
        P[0, self.pose_ids, :3, :3] = axis_angle_to_matrix(rot).double()
        T, _ = m.get_bone_transforms(P, rest_poses)
        T = T[0].float()  # (104, 4, 4)
        M = torch.einsum("sb,sbij->sij", self.vb_w, T[self.vb_idx][..., :3, :])  # (S, 3, 4)
        return torch.einsum("sij,sj->si", M[..., :3], rest_v) + M[..., 3]

    def keypoints(self, verts: torch.Tensor) -> torch.Tensor:
        """anny's 23 COCO keypoints (..., 23, 3) of skinned subset vertices (..., S, 3)."""
        return self.kp_w @ verts[..., self.kp_cols, :]


class _FastSkin:
    """Skinning through the optimised bones only, for fixed phenotypes.

    Every bone ``c`` that is not optimised keeps its identity delta, so its
    posed pose is ``W_c = W_a W0_a^-1 W0_c`` with ``a`` its nearest optimised
    ancestor and ``W0`` the poses at identity deltas (anny's reference pose);
    an optimised bone's is ``W_a = W_a' W0_a'^-1 W0_a D'_a`` with ``a'`` the
    next optimised ancestor and ``D'_a = U_a^T D_a U_a`` its delta in anny's
    'local-ref' parameterisation (``U`` = reference orientations). Linear
    blend skinning ``sum_b w_vb W_b P_b^-1 v`` then groups by ``a``:
    ``sum_a W_a y_va`` with ``y_va = sum_{b in a} w_vb W0_a^-1 W0_b P_b^-1 v``
    precomputed once, so a step runs 18 small matrix products instead of
    anny's 104-bone chain (same vertices to 1e-6 m). Anything linear in the
    vertices contracts with ``y`` beforehand: the 23 regressed keypoints are
    ``sum_a W_a (R y)_a`` with ``R`` anny's keypoint regressor.

    Args:
        body: the :class:`_Body` (bones, skinning weights, keypoint regressor).
        rest_v: (S, 3) float32 rest vertices of ``body.subset`` (``vertices`` given)
            or of all anny's vertices (``vertices=None``).
        rest_poses: anny's rest bone poses for the same phenotypes.
        vertices: "subset" (the fit's vertex subset) or ``None`` (every vertex).
    """

    def __init__(self, body: _Body, rest_v: torch.Tensor, rest_poses: torch.Tensor,
                 vertices: str | None = "subset"):  # fmt: skip
        m = body.model
        nb = m.bone_count
        if m.pose_parameterization != "local-ref":
            raise RuntimeError(f"unsupported anny pose parameterisation {m.pose_parameterization}")
        eye = torch.eye(4, dtype=torch.float64).expand(1, nb, 4, 4).clone()
        T0, W0 = (x[0] for x in m.get_bone_transforms(eye, rest_poses))
        P = rest_poses.reshape(-1, nb, 4, 4)[0]
        parents = list(m.bone_parents)
        opt = [body.bone_index[n] for n in POSE_BONES]
        optset = set(opt)

        def nearest(c: int) -> int:  # nearest optimised ancestor-or-self, -1 if none
            while c >= 0 and c not in optset:
                c = parents[c]
            return c

        def depth(c: int) -> int:
            return 0 if c < 0 else 1 + depth(parents[c])

        group = [nearest(c) for c in range(nb)]
        self.order = sorted(range(len(opt)), key=lambda i: depth(opt[i]))
        self.anc = [opt.index(nearest(parents[a])) if nearest(parents[a]) >= 0 else -1
                    for a in opt]  # fmt: skip
        W0i = torch.linalg.inv(W0)
        C = [W0[a] if self.anc[i] < 0 else W0i[opt[self.anc[i]]] @ W0[a] for i, a in enumerate(opt)]
        self.C = torch.stack(C).float()
        self.U = m.reference_bone_orientations[opt].float()
        E = torch.stack([T0[c] if group[c] < 0 else W0i[group[c]] @ W0[c] @ torch.linalg.inv(P[c])
                         for c in range(nb)])  # fmt: skip
        if vertices == "subset":
            vb_idx, vb_w = body.vb_idx, body.vb_w
        else:
            vb_idx, vb_w = m.vertex_bone_indices, m.vertex_bone_weights.float()
        vh = torch.cat([rest_v.double(), torch.ones(len(rest_v), 1, dtype=torch.float64)], 1)
        pts = torch.einsum("skij,sj->ski", E[vb_idx], vh) * vb_w.double()[..., None]
        gidx = torch.tensor(group)[vb_idx]  # (S, K)
        y = torch.stack([(pts * (gidx == a)[..., None]).sum(1) for a in opt], 1)  # (S, G, 4)
        const = (pts * (gidx < 0)[..., None]).sum(1)[:, :3]  # (S, 3)
        #: (S, G, 4), (S, 3): every vertex of the set, as above
        self.y, self.const = y.float(), const.float()
        if vertices == "subset":
            kp_w = body.kp_w.double()
            self.y_kp = torch.einsum("ks,sgj->kgj", kp_w, y[body.kp_cols]).float()  # (23, G, 4)
            self.const_kp = (kp_w @ const[body.kp_cols]).float()  # (23, 3)
            self.surface_cols = torch.nonzero(body.n_uniform_mask).squeeze(1)
        self.bottom = torch.tensor([[0.0, 0.0, 0.0, 1.0]])

        # bones by depth below the root: one batched product per level
        def level(i: int) -> int:
            return 0 if self.anc[i] < 0 else 1 + level(self.anc[i])

        levels = sorted({level(i) for i in range(len(opt))})
        self.levels = [torch.tensor([i for i in self.order if level(i) == lv]) for lv in levels]
        done: list[int] = []  # bones in the order their levels are concatenated
        self.level_anc: list[torch.Tensor | None] = []
        for idx in self.levels:
            ids = idx.tolist()
            self.level_anc.append(None if level(ids[0]) == 0
                                  else torch.tensor([done.index(self.anc[i]) for i in ids]))  # fmt: skip
            done += ids
        self.unorder = torch.tensor([done.index(i) for i in range(len(opt))])

    def transforms(self, rot: torch.Tensor, R: torch.Tensor | None = None) -> torch.Tensor:
        """(B, G, 3, 4) float32 posed transforms of the optimised bones for rot (B, J, 3).

        ``R``: the (B, J, 3, 3) rotation matrices of ``rot`` when already computed.
        """
        R = axis_angle_to_matrix(rot) if R is None else R
        D = self.U.transpose(1, 2) @ R @ self.U  # (B, J, 3, 3)
        Dh = torch.cat([F.pad(D, (0, 1)), self.bottom.expand(*D.shape[:2], 1, 4)], 2)
        W = None
        for idx, anc in zip(self.levels, self.level_anc, strict=True):
            base = self.C[idx] if anc is None else W[:, anc] @ self.C[idx]  # type: ignore[index]
            lv = base @ Dh[:, idx]
            W = lv if W is None else torch.cat([W, lv], 1)
        return W[:, self.unorder, :3, :]  # type: ignore[index]

    def surface_columns(self, n: int) -> torch.Tensor:
        """Indices into the subset (and ``y``) of ``n`` evenly spread surface vertices."""
        cols = self.surface_cols
        if n < len(cols):
            cols = cols[torch.linspace(0, len(cols) - 1, n).long()]
        return cols

    @staticmethod
    def apply(Ws: torch.Tensor, y: torch.Tensor, const: torch.Tensor) -> torch.Tensor:
        """Points (B, N, 3) float32 in anny's frame: ``sum_g Ws[b, g] y[n, g] + const[n]``."""
        return torch.einsum("bgij,ngj->bni", Ws, y) + const

    def __call__(self, rot: torch.Tensor) -> torch.Tensor:
        """Skinned vertices (S, 3) float32 of this skin's set for bone axis-angles rot (J, 3)."""
        return self.apply(self.transforms(rot[None]), self.y, self.const)[0]


_BODY: _Body | None = None


def _body() -> _Body:
    global _BODY
    if _BODY is None:
        _BODY = _Body()
    return _BODY


def _kabsch(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Rotation R minimising |R (src - mean) - (dst - mean)|."""
    a = src - src.mean(0)
    b = dst - dst.mean(0)
    u, _, vt = np.linalg.svd(a.T @ b)
    d = np.sign(np.linalg.det(vt.T @ u.T))
    return vt.T @ np.diag([1, 1, d]) @ u.T


def _matrix_to_axis_angle(R: np.ndarray) -> np.ndarray:
    return cv2.Rodrigues(np.asarray(R, np.float64))[0].ravel()


def _swing(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(3, 3) the smallest rotation taking direction ``a`` (3,) onto direction ``b`` (3,)."""
    a = a / max(np.linalg.norm(a), 1e-12)
    b = b / max(np.linalg.norm(b), 1e-12)
    axis = np.cross(a, b)
    s = np.linalg.norm(axis)
    if s < 1e-9:
        return np.eye(3)  # parallel (or opposite, which the descent resolves)
    return cv2.Rodrigues(axis / s * np.arctan2(s, float(a @ b)))[0]


def fit_body(obs: PersonObservation, config: FitConfig | None = None) -> FittedBody:
    """Fit anny's pose, phenotypes and placement to one person's landmarks and mask.

    Args:
        obs: the :class:`~reroute.body.detect.PersonObservation` of the photo
            (landmarks in pixels of an ``H x W`` image).
        config: schedule and weights; defaults to :class:`FitConfig`.
    Returns:
        :class:`FittedBody` in the camera ``Camera.centred(W, H, focal_factor)``.

    Runs with ``config.threads`` torch threads (restored afterwards):
    the fit's tensors are small, and on a 2-core CPU one thread is 4-10x
    faster than the default and makes the result reproducible.

    Raises:
        FitError: when too few landmarks are visible to place the body.
    """
    return fit_bodies([obs], config)[0]


def fit_bodies(observations: list[PersonObservation], config: FitConfig | None = None,
               names: list[str] | None = None, merge: bool = True) -> list[FittedBody]:  # fmt: skip
    """Fit anny to several photos at once (one batch through each optimiser step).

    Calls from several threads at once are merged: the photos of every call queued
    while a batch runs are fitted together in the next batch (:data:`SHARED_BATCHER`,
    a :class:`~reroute.body.fit_batch.FitBatcher`), and each call gets its own
    photos' bodies back (or the error its own photo caused). Each photo has its own
    schedule, so its body does not depend on the other photos in its batch (up to
    float summation order, which Adam can amplify to ~0.03 rad on loosely
    constrained bones; a fitted keypoint moves by well under a pixel).

    Args:
        observations: one :class:`~reroute.body.detect.PersonObservation` per
            photo; image sizes may differ.
        config: schedule and weights, shared; defaults to :class:`FitConfig`.
        names: how to call each photo in errors (``"photo 1"``, ... by default
            when there are several; no prefix for one).
        merge: ``False`` fits these photos at once in the calling thread, alone.
    Returns:
        one :class:`FittedBody` per observation, in order; each in the camera
        ``Camera.centred(W, H, focal_factor)`` of its own image.
    Raises:
        FitError: when too few landmarks are visible to place a body (the
            message names the photo), or a fit diverged.
        ValueError: ``observations`` is empty or ``names`` has another length.
        InputError: ``config.init="learned"`` and its checkpoint cannot be loaded.
    """
    if not observations:
        raise ValueError("fit_bodies needs at least one observation")
    if names is not None and len(names) != len(observations):
        raise ValueError(f"names: expected {len(observations)}, got {len(names)}")
    cfg = config or FitConfig()
    if cfg.init not in ("ik", "learned", "rest"):
        raise ValueError(f"FitConfig.init must be 'ik', 'learned' or 'rest', got {cfg.init!r}")
    if cfg.init == "learned":  # a missing or foreign checkpoint fails here, before any step
        from reroute.body.fit_init import cached_fit_init  # fit_init imports this module

        cached_fit_init(cfg.init_checkpoint)
    if names is None:
        names = [f"photo {i + 1}" for i in range(len(observations))] if len(observations) > 1 \
            else [""]  # fmt: skip
    if not merge:
        return _fit_with_threads(list(observations), cfg, list(names))
    return SHARED_BATCHER(list(observations), cfg, list(names))


@contextlib.contextmanager
def _torch_threads(n: int):
    """Run the block with ``n`` torch threads (``n <= 0``: unchanged); restored afterwards."""
    before = torch.get_num_threads()
    if n > 0:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _fit_with_threads(observations: list[PersonObservation], cfg: FitConfig,
                      names: list[str]) -> list[FittedBody]:  # fmt: skip
    """:func:`_fit_bodies` with ``cfg.threads`` torch threads (restored afterwards)."""
    with _torch_threads(cfg.threads):
        return _fit_bodies(observations, cfg, names)


#: every :func:`fit_bodies` call (unless ``merge=False``) goes through this batcher:
#: concurrent calls share a batch; its ``batches`` and ``largest`` count what it ran
SHARED_BATCHER = FitBatcher(_fit_with_threads)


_BP_INDEX = {n: i for i, n in enumerate(BLAZEPOSE_NAMES)}
_TORSO = ("left_shoulder", "right_shoulder", "left_hip", "right_hip")


def _nearest_distance(points: torch.Tensor, candidates: torch.Tensor) -> torch.Tensor:
    """Euclidean distance from each point to its nearest candidate (one-sided chamfer).

    Args:
        points: (B, M, D) float.
        candidates: (B, N, D) float, N >= 1.
    Returns:
        (B, M) float, at least 1e-5; differentiable in both inputs.

    The nearest candidate is found without autograd, then the distance to it alone is
    differentiated. A minimum's gradient flows to its argmin only, so this is the
    gradient of ``min_n |p - c_n|`` (up to ties) without a backward pass through the
    (B, M, N) distance matrix: with 200 mask points and 600 surface points a photo the
    term takes 3x less time, and a 16-photo fit 0.92 -> 0.72 s, a 2-photo fit 0.31 ->
    0.26 s (one torch thread, alternating in one process, medians of 4). The search
    leaves out |p|^2, the same for every candidate, and adds |c|^2 inside the batched
    matrix product (``baddbmm``: 30% less time than a product and a subtraction).
    """
    with torch.no_grad():
        squares = candidates.pow(2).sum(-1)[:, None]  # (B, 1, N)
        scores = torch.baddbmm(squares, points, candidates.transpose(1, 2), alpha=-2)  # (B, M, N)
        nearest = scores.argmin(2)  # (B, M)
    near = torch.gather(candidates, 1, nearest[..., None].expand(-1, -1, candidates.shape[-1]))
    return (points - near).pow(2).sum(-1).clamp_min(1e-10).sqrt()


@dataclass
class _Targets:
    """The 2-D keypoint targets of one photo, in :data:`_KP_MAP` order (21 entries).

    Attributes:
        target2d: (21, 2) float32 BlazePose landmarks in pixels (x, y).
        weight2d: (21,) float32 per-keypoint weight: visibility (0 when <= 0.5 or
            more than 2 % outside the image) times :data:`_KP_WEIGHT`.
    """

    target2d: torch.Tensor
    weight2d: torch.Tensor


@dataclass
class _Start:
    """The starting parameters of one photo (closed form, :func:`_initialise`).

    Attributes:
        glob: (3,) float64 axis-angle of the camera-from-anny rotation.
        trans: (3,) float64 camera-frame translation in units of ``z``.
        rot: (J, 3) float64 axis-angles of the :data:`POSE_BONES`.
        z: the initial depth z0 in metres.
    """

    glob: np.ndarray
    trans: np.ndarray
    rot: np.ndarray
    z: float


@dataclass
class _Params:
    """The optimised parameters of a batch (leaf tensors with ``requires_grad``).

    Attributes:
        glob: (B, 3) float32 axis-angle of the camera-from-anny rotation.
        trans: (B, 3) float32 camera-frame translation in units of ``z``.
        rot: (B, J, 3) float32 axis-angles of the :data:`POSE_BONES` (``local-ref`` deltas).
        pheno: (B, 5) float32 :data:`FIT_PHENOTYPES`, nominally in [0, 1].
        z: (B,) float32 the initial depth z0 per photo in metres (constant).
    """

    glob: torch.Tensor
    trans: torch.Tensor
    rot: torch.Tensor
    pheno: torch.Tensor
    z: torch.Tensor


def _kp_ids(body: _Body) -> tuple[list[int], list[int]]:
    """Indices into anny's 23 keypoints and the matching BlazePose landmarks (:data:`_KP_MAP`)."""
    return [body.kp_names.index(k) for k in _KP_MAP], [_BP_INDEX[v] for v in _KP_MAP.values()]


def _targets(obs: PersonObservation, body: _Body) -> _Targets:
    """The 2-D targets and weights of ``obs`` (landmarks in pixels of an H x W image).

    Raises:
        FitError: when fewer than two of the shoulders and hips carry weight.
    """
    h, w = obs.image_size
    _, lm_ids = _kp_ids(body)
    target2d = torch.tensor(obs.landmarks[lm_ids], dtype=torch.float32)
    vis = torch.tensor(obs.visibility[lm_ids], dtype=torch.float32)
    inside = (target2d[:, 0] > -0.02 * w) & (target2d[:, 0] < 1.02 * w)
    inside &= (target2d[:, 1] > -0.02 * h) & (target2d[:, 1] < 1.02 * h)
    weight2d = torch.where((vis > 0.5) & inside, vis, torch.zeros_like(vis))
    weight2d = weight2d * torch.tensor([_KP_WEIGHT.get(k, 1.0) for k in _KP_MAP])
    if (weight2d[[list(_KP_MAP).index(k) for k in _TORSO]] > 0).sum() < 2:
        raise FitError("the person's shoulders and hips are not visible enough to fit a body")
    return _Targets(target2d, weight2d)


def _reference_keypoints(body: _Body) -> np.ndarray:
    """(23, 3) float64 anny's keypoints in its reference pose (anny's frame, metres)."""
    fs = body.fast_skin()
    with torch.no_grad():
        Ws = fs.transforms(torch.zeros(1, len(POSE_BONES), 3))
        return fs.apply(Ws, fs.y_kp, fs.const_kp)[0].double().numpy()


def _limb_ik(obs: PersonObservation, body: _Body, R0: np.ndarray, kp0: np.ndarray) -> np.ndarray:
    """(J, 3) float64 pose deltas swinging each arm and leg onto BlazePose's 3-D limbs.

    For a chain upper -> lower (e.g. shoulder -> elbow -> wrist), when its
    first two landmarks are visible (> 0.5) the upper bone's world-frame rotation
    ``G_u`` is the smallest rotation taking anny's reference direction
    (keypoints ``kp0``) onto the observed one (BlazePose world landmarks in
    the camera frame, brought into anny's frame by ``R0^T``), and the lower
    bone's ``G_l = S G_u`` adds the smallest rotation ``S`` taking the swung
    reference lower limb onto its observation (when the third landmark is
    visible too). In anny's ``local-ref``
    parameterisation a bone's delta is its world rotation relative to its
    parent's, ``D_u = G_u`` (parents at rest) and ``D_l = G_u^T G_l``.
    Twist about the limb axis is left at zero.
    """
    rot = np.zeros((len(POSE_BONES), 3))
    names = list(POSE_BONES)
    vis = obs.visibility
    world = obs.world.astype(np.float64) @ R0  # rows: R0^T w, anny's frame
    for upper, lower, a, b, c in _IK_CHAINS:
        ia, ib, ic = (body.kp_names.index(k) for k in (a, b, c))
        wa, wb, wc = (_BP_INDEX[k] for k in (a, b, c))
        if min(vis[wa], vis[wb]) <= 0.5:
            continue
        G_u = _swing(kp0[ib] - kp0[ia], world[wb] - world[wa])
        rot[names.index(upper)] = _matrix_to_axis_angle(G_u)
        if vis[wc] <= 0.5:
            continue
        G_l = _swing(G_u @ (kp0[ic] - kp0[ib]), world[wc] - world[wb]) @ G_u
        rot[names.index(lower)] = _matrix_to_axis_angle(G_u.T @ G_l)
    return rot


def _initialise(obs: PersonObservation, body: _Body, cam: Camera, init: str = "ik",
                checkpoint: str | None = None) -> _Start:  # fmt: skip
    """Starting parameters: facing by Kabsch, depth from the torso's size, limbs by IK.

    The facing is the rotation aligning anny's reference-pose shoulders and hips
    (anny's frame, metres) with BlazePose's world landmarks (camera axes,
    metres); the depth ``z0 = focal * torso3d / torso2d`` (torso = shoulder
    centre to hip centre, the 2-D length at least 5 % of ``max(H, W)``) and the
    translation puts the torso's centre on the landmarks' torso centre (pixels)
    at that depth. With ``init="ik"`` the arms and legs start swung onto
    BlazePose's 3-D limb directions (:func:`_limb_ik`); with ``init="learned"``
    that pose is corrected by :func:`~reroute.body.fit_init.learned_pose` (network at
    ``checkpoint``); else at zero deltas.

    Raises:
        InputError: ``init="learned"`` and its checkpoint cannot be loaded.
    """
    h, w = obs.image_size
    scale = float(max(h, w))
    kp0 = _reference_keypoints(body)
    ti = [body.kp_names.index(k) for k in _TORSO]
    R0 = _facing(obs, body, kp0)
    lm_t = obs.landmarks[[_BP_INDEX[k] for k in _TORSO]].astype(np.float64)
    sh2d = (lm_t[0] + lm_t[1]) / 2
    hip2d = (lm_t[2] + lm_t[3]) / 2
    torso3d = np.linalg.norm((kp0[ti[0]] + kp0[ti[1]]) / 2 - (kp0[ti[2]] + kp0[ti[3]]) / 2)
    torso2d = max(np.linalg.norm(sh2d - hip2d), 0.05 * scale)
    z = cam.focal * torso3d / torso2d
    centre3d = R0 @ kp0[ti].mean(0)
    c2d = lm_t.mean(0)
    t0 = (
        np.array([(c2d[0] - cam.cx) / cam.focal * z, (c2d[1] - cam.cy) / cam.focal * z, z])
        - centre3d
    )
    rot = _limb_ik(obs, body, R0, kp0) if init in ("ik", "learned") else np.zeros((len(POSE_BONES), 3))
    if init == "learned":
        from reroute.body.fit_init import learned_pose  # fit_init imports this module

        rot = learned_pose(obs, R0, rot, checkpoint)
    return _Start(glob=_matrix_to_axis_angle(R0), trans=t0 / z, rot=rot, z=float(z))


def closed_form_pose(obs: PersonObservation) -> tuple[np.ndarray, np.ndarray]:
    """The closed-form start of the fit: the facing and the limbs swung onto BlazePose.

    Args:
        obs: the photo's :class:`~reroute.body.detect.PersonObservation`.
    Returns:
        ``R0`` (3, 3) float64, the rotation taking anny's frame (reference pose,
        metres) to the camera's (Kabsch on the shoulders and hips, as in the fit),
        and ``rot`` (J, 3) float64, the :data:`POSE_BONES` axis-angles with each
        arm and leg swung onto BlazePose's 3-D limb directions (:func:`_limb_ik`).
    """
    body = _body()
    kp0 = _reference_keypoints(body)
    R0 = _facing(obs, body, kp0)
    return R0, _limb_ik(obs, body, R0, kp0)


def _facing(obs: PersonObservation, body: _Body, kp0: np.ndarray) -> np.ndarray:
    """(3, 3) float64 Kabsch rotation taking anny's reference shoulders and hips
    (``kp0``, anny's frame) onto BlazePose's world landmarks (camera axes)."""
    ti = [body.kp_names.index(k) for k in _TORSO]
    return _kabsch(kp0[ti], obs.world[[_BP_INDEX[k] for k in _TORSO]].astype(np.float64))


def pose_keypoints(rot: torch.Tensor) -> torch.Tensor:
    """anny's 23 COCO keypoints (B, 23, 3) float32 (anny's frame, metres, default
    phenotypes, root at the origin) for :data:`POSE_BONES` axis-angles rot (B, J, 3)
    float32; differentiable (the fit's fast skinning)."""
    fs = _body().fast_skin()
    return fs.apply(fs.transforms(rot), fs.y_kp, fs.const_kp)


def _silhouette_targets(obs: PersonObservation, scale: float, n_points: int
                        ) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """Silhouette term inputs from the person mask (H, W).

    Returns:
        outside: (H, W) float32 distance to the mask (pixels / ``scale``; 0
            inside the mask).
        mask_pts: (N, 2) float32 pixel centres (x, y) of up to ``n_points`` mask
            pixels drawn without replacement by ``default_rng(0)``.
    """
    mask = (obs.mask > 0.5).astype(np.uint8)
    outside = cv2.distanceTransform(1 - mask, cv2.DIST_L2, 5).astype(np.float32) / scale
    ys, xs = np.nonzero(mask)
    rng = np.random.default_rng(0)
    pick = rng.choice(len(xs), size=min(n_points, len(xs)), replace=False)
    return outside, (np.stack([xs[pick], ys[pick]], 1) + 0.5).astype(np.float32)


class _FitLoss:
    """The fit's loss terms, per photo, for the current values of a :class:`_Params`.

    Call it with ``with_shape`` (skin through anny with the phenotypes, else
    the fast default-phenotype skinning) for a dict of (B,) float32 tensors
    ``"2d"``, ``"3d"``, ``"mask"``, ``"prior"``, ``"shape"`` (in that order).
    """

    def __init__(self, observations: list[PersonObservation], body: _Body, cams: list[Camera],
                 targets: list[_Targets], params: _Params, cfg: FitConfig):  # fmt: skip
        self.body, self.fast, self.params = body, body.fast_skin(), params
        self.kp_ids, _ = _kp_ids(body)
        self.surf_cols = self.fast.surface_columns(cfg.surface_points)
        # keypoints first, then the surface points
        self.y_all = torch.cat([self.fast.y_kp, self.fast.y[self.surf_cols]])
        self.const_all = torch.cat([self.fast.const_kp, self.fast.const[self.surf_cols]])
        f32 = torch.float32
        self.focal = torch.tensor([c.focal for c in cams], dtype=f32)
        self.centre = torch.tensor([[c.cx, c.cy] for c in cams], dtype=f32)
        self.scale = torch.tensor([float(max(c.width, c.height)) for c in cams], dtype=f32)
        self.target2d = torch.stack([t.target2d for t in targets])
        self.weight2d = torch.stack([t.weight2d for t in targets])
        # silhouette: distance maps padded (edge values) to one size, mask points padded;
        # compiled, to a square of at least _COMPILED_MAP_SIDE and to cfg.mask_points,
        # so that only B changes a shape
        hm = max(c.height for c in cams)
        wm = max(c.width for c in cams)
        if cfg.compile:
            hm = wm = max(hm, wm, _COMPILED_MAP_SIDE)
        self.grid_scale = torch.tensor([2.0 / wm, 2.0 / hm])
        outs, pts = [], []
        for o, s in zip(observations, self.scale.tolist(), strict=True):
            out, p = _silhouette_targets(o, s, cfg.mask_points)
            outs.append(np.pad(out, ((0, hm - out.shape[0]), (0, wm - out.shape[1])), "edge"))
            pts.append(p)
        self.outside = torch.from_numpy(np.stack(outs))[:, None]  # (B, 1, hm, wm)
        n = max(max(len(p) for p in pts), cfg.mask_points if cfg.compile else 1)
        self.mask_pts = torch.zeros(len(pts), n, 2)
        self.mask_w = torch.zeros(len(pts), n)
        for i, p in enumerate(pts):
            self.mask_pts[i, : len(p)] = torch.from_numpy(p) / float(self.scale[i])
            self.mask_w[i, : len(p)] = 1.0
        # 3-D limb directions: BlazePose world landmarks, visible limbs only
        self.la = [body.kp_names.index(a) for a, _ in _LIMBS]
        self.lb = [body.kp_names.index(b) for _, b in _LIMBS]
        wa = [_BP_INDEX[a] for a, _ in _LIMBS]
        wb = [_BP_INDEX[b] for _, b in _LIMBS]
        world = torch.tensor(np.stack([o.world for o in observations]), dtype=f32)
        self.world_dir = F.normalize(world[:, wb] - world[:, wa], dim=-1)  # (B, L, 3)
        vis = torch.tensor(np.stack([o.visibility for o in observations]), dtype=f32)
        self.limb_w = ((vis[:, wa] > 0.5) & (vis[:, wb] > 0.5)).float()  # (B, L)
        self.prior_w = torch.tensor(list(POSE_BONES.values()))
        self.compile = cfg.compile
        if cfg.compile:  # one compiled graph serves every batch size above 1
            for t in self.batch_tensors():
                torch._dynamo.maybe_mark_dynamic(t, 0)

    def camera_points(self, with_shape: bool) -> tuple[torch.Tensor, torch.Tensor]:
        """Keypoints (B, 23, 3) and surface points (B, N, 3) float32 in the camera frame
        (metres, z clamped to >= 0.1)."""
        p, body = self.params, self.body
        R = axis_angle_to_matrix(torch.cat([p.glob[:, None], p.rot], 1))  # (B, 1 + J, 3, 3)
        if not with_shape:
            Ws = self.fast.transforms(p.rot, R[:, 1:])
            pts = self.fast.apply(Ws, self.y_all, self.const_all)
        else:
            pts = []
            for b in range(len(p.rot)):  # anny's own skinning, one photo at a time
                v = body.forward(p.rot[b], *body.rest(p.pheno[b].clamp(0, 1)))
                pts.append(torch.cat([body.keypoints(v), v[self.surf_cols]]))
            pts = torch.stack(pts)
        vc = pts @ R[:, 0].transpose(1, 2) + (p.trans * p.z[:, None])[:, None]
        vc = torch.cat([vc[..., :2], vc[..., 2:].clamp_min(0.1)], -1)
        return vc[:, :23], vc[:, 23:]

    def project(self, vc: torch.Tensor) -> torch.Tensor:
        """Camera-frame points (B, N, 3) -> pixels (B, N, 2) in each photo's camera."""
        return vc[..., :2] / vc[..., 2:] * self.focal[:, None, None] + self.centre[:, None]

    def reprojection(self, kp: torch.Tensor) -> torch.Tensor:
        """(B,) weighted mean 2-D distance (fraction of ``max(H, W)``) of keypoints (B, 23, 3)."""
        proj = self.project(kp)[:, self.kp_ids]
        d2 = ((proj - self.target2d) / self.scale[:, None, None]).pow(2).sum(-1)
        w = self.weight2d
        return (w * (d2 + 1e-6).sqrt()).sum(1) / w.sum(1).clamp_min(1e-6)

    def bone_directions(self, kp: torch.Tensor) -> torch.Tensor:
        """(B,) mean 1 - cosine between the visible limbs of kp (B, 23, 3) and BlazePose's."""
        da = F.normalize(kp[:, self.lb] - kp[:, self.la], dim=-1)
        cos = 1 - (da * self.world_dir).sum(-1)
        return (self.limb_w * cos).sum(1) / self.limb_w.sum(1).clamp_min(1)

    def silhouette(self, vc: torch.Tensor) -> torch.Tensor:
        """(B,) silhouette term of camera-frame surface points vc (B, N, 3): mean distance
        outside the mask of the projected points plus the one-sided chamfer of the mask points."""
        pv = self.project(vc)
        grid = pv * self.grid_scale - 1
        out_d = F.grid_sample(self.outside, grid[:, None], align_corners=False,
                              padding_mode="border")  # fmt: skip
        sil = out_d.flatten(1).mean(1)
        v = pv / self.scale[:, None, None]
        m = self.mask_pts
        dist = _nearest_distance(m, v)  # (B, M)
        return sil + (self.mask_w * dist).sum(1) / self.mask_w.sum(1).clamp_min(1)

    def __call__(self, with_shape: bool) -> dict[str, torch.Tensor]:
        if self.compile and not with_shape:
            compiled = _compiled_terms()
            if compiled is not None:
                try:
                    return compiled(self, False)
                except Exception as e:  # noqa: BLE001 - no C++ compiler, unsupported op, ...
                    _compile_failed(e)
        return self.terms(with_shape)

    def batch_tensors(self) -> list[torch.Tensor]:
        """Every tensor the terms read whose first dimension is the batch B."""
        p = self.params
        return [p.glob, p.trans, p.rot, p.pheno, p.z, self.focal, self.centre, self.scale,
                self.target2d, self.weight2d, self.outside, self.mask_pts, self.mask_w,
                self.world_dir, self.limb_w]  # fmt: skip

    def terms(self, with_shape: bool) -> dict[str, torch.Tensor]:
        """The terms, eagerly (what :meth:`__call__` returns)."""
        p = self.params
        kp, surf = self.camera_points(with_shape)
        out = {"2d": self.reprojection(kp), "3d": self.bone_directions(kp)}
        out["mask"] = self.silhouette(surf)
        out["prior"] = (self.prior_w * p.rot.pow(2).sum(-1)).sum(1)
        out["shape"] = ((p.pheno - 0.5).pow(2).sum(1) if with_shape
                        else torch.zeros(len(p.rot)))  # fmt: skip
        return out


#: with FitConfig.compile, the silhouette's distance maps are padded to at least this
#: side (edge values, which the border sampling returns anyway), so that working
#: sizes up to it share one compiled graph
_COMPILED_MAP_SIDE = 1024

_COMPILED: list = []  # [compiled _FitLoss.terms] once built, [None] once compiling failed
_COMPILE_LOCK = threading.Lock()


def _compiled_terms():
    """``torch.compile(_FitLoss.terms)``, built once; None once compiling has failed."""
    with _COMPILE_LOCK:
        if not _COMPILED:
            _COMPILED.append(torch.compile(_FitLoss.terms))
        return _COMPILED[0]


def _compile_failed(error: Exception) -> None:
    """Turn the compiled fit off for this process and say why (once)."""
    with _COMPILE_LOCK:
        _COMPILED[:] = [None]
    warnings.warn(f"FitConfig(compile=True): torch.compile failed, the fit runs eagerly "
                  f"({type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''})",
                  RuntimeWarning, stacklevel=3)  # fmt: skip


def _run_stage(loss: _FitLoss, weights: dict[str, float], params: list[torch.Tensor],
               steps: int, cfg: FitConfig, with_shape: bool = False, lr: float | None = None
               ) -> tuple[dict[str, torch.Tensor], np.ndarray]:  # fmt: skip
    """One Adam stage over ``params`` (each (B, ...), a row per photo): at most ``steps``
    steps of the weighted sum of ``loss``'s terms, each photo on its own schedule.

    Photo ``i``'s learning rate (``lr``, default ``cfg.lr``) rises linearly over
    ``cfg.warmup`` steps, then falls linearly to ``cfg.lr_final_factor`` times
    itself at the last step. With ``cfg.tol > 0``, once photo ``i``'s loss (after
    the warm-up and ``2 * cfg.patience`` steps) fell by less than ``cfg.tol``
    (relative) over its last ``cfg.patience`` steps, its decay completes over
    ``cfg.patience`` more steps and its parameters then stay where they are; the
    stage ends when every photo has stopped. The update is Adam's (Kingma & Ba
    2015, the defaults of :class:`torch.optim.Adam`) with a learning rate per row,
    so a photo follows the trajectory it would follow alone whatever else is in
    the batch. Returns the terms of the last step ({} when ``steps <= 0``) and
    the steps each photo took ((B,) int).
    """
    n = len(params[0])
    if steps <= 0:
        return {}, np.zeros(n, int)
    base_lr = cfg.lr if lr is None else lr
    beta1, beta2, eps = 0.9, 0.999, 1e-8
    m = [torch.zeros_like(p) for p in params]
    v = [torch.zeros_like(p) for p in params]
    warm, last, end, patience = cfg.warmup, max(steps - 1, 1), cfg.lr_final_factor, cfg.patience
    history = np.zeros((steps, n))
    settled = np.full(n, -1)  # the step at which each photo's loss stopped falling (-1: not yet)
    taken = np.full(n, steps)
    terms: dict[str, torch.Tensor] = {}
    for step in range(steps):
        # linear warm-up, then linear decay to lr_final_factor at the last step; once a
        # photo's loss has settled, its decay finishes over the next `patience` steps
        f = np.full(n, (step + 1) / (warm + 1) if step < warm else 1.0 + (end - 1.0) * step / last)
        on = settled >= 0
        f0 = 1.0 + (end - 1.0) * settled[on] / last
        f[on] = np.maximum(f0 + (end - f0) * (step - settled[on]) / patience, end)
        f[taken <= step] = 0.0  # stopped photos keep their parameters
        for p in params:
            p.grad = None
        terms = loss(with_shape)
        per_photo = sum(weights[k] * v_ for k, v_ in terms.items())
        per_photo.sum().backward()
        history[step] = per_photo.detach().numpy()
        with torch.no_grad():  # torch.optim.Adam's single-tensor update, one step size per row
            bc1, bc2 = 1 - beta1 ** (step + 1), (1 - beta2 ** (step + 1)) ** 0.5
            rates = base_lr * f / bc1
            for p, m_, v_ in zip(params, m, v, strict=True):
                if p.grad is None:  # a parameter this stage's terms do not read
                    continue
                m_.lerp_(p.grad, 1 - beta1)
                v_.mul_(beta2).addcmul_(p.grad, p.grad, value=1 - beta2)
                denom = (v_.sqrt() / bc2).add_(eps)
                for rate in np.unique(rates[rates > 0]):  # rows sharing a rate: one update
                    rows = torch.from_numpy(np.flatnonzero(rates == rate))
                    if len(rows) == n:
                        p.addcdiv_(m_, denom, value=-float(rate))
                    else:
                        p[rows] = p[rows].addcdiv(m_[rows], denom[rows], value=-float(rate))
        done = on & (step - settled >= patience)
        taken[done & (taken > step)] = step + 1
        if (taken <= step + 1).all():
            return terms, taken
        if cfg.tol > 0 and step >= warm + 2 * patience:
            before = history[: step + 1 - patience].min(0)
            recent = history[step + 1 - patience: step + 1].min(0)
            settled[(settled < 0) & (before - recent < cfg.tol * np.abs(before))] = step
    return terms, taken


def _finish(obs: PersonObservation, body: _Body, cam: Camera, kp_targets: _Targets,
            rot: np.ndarray, glob: np.ndarray, trans: np.ndarray, pheno: np.ndarray,
            cfg: FitConfig, terms: dict[str, float], steps: int) -> FittedBody:  # fmt: skip
    """Skin all of anny at one photo's fitted parameters and package the :class:`FittedBody`.

    ``rot`` (J, 3), ``glob`` (3,), ``trans`` (3,) metres, ``pheno`` (5,): the fit's
    result for this photo. The keypoint error is the mean pixel distance of the
    weighted keypoints.

    Raises:
        FitError: when a vertex is not finite or lies behind the camera.
    """
    with torch.no_grad():
        rot_t = torch.as_tensor(rot, dtype=torch.float32)
        P = torch.eye(4).repeat(body.model.bone_count, 1, 1)
        P[body.pose_ids, :3, :3] = axis_angle_to_matrix(rot_t)
        if cfg.steps_shape > 0:
            phen = {n: float(v) for n, v in zip(FIT_PHENOTYPES, np.clip(pheno, 0, 1), strict=True)}
            verts = posed_vertices(P.numpy(), phen)
        else:  # default phenotypes: the exact linear skinning, no 104-bone chain
            phen = {}
            verts = body.full_skin()(rot_t).numpy()
        Rg = axis_angle_to_matrix(torch.as_tensor(glob, dtype=torch.float32)).numpy()
        vc = verts @ Rg.T + trans.astype(np.float32)
        kp = body.kp_w_full.numpy() @ vc
        kp2d = cam.project(kp)
        kp_ids, lm_ids = _kp_ids(body)
        err = np.linalg.norm(kp2d[kp_ids] - obs.landmarks[lm_ids], axis=1)
        sel = kp_targets.weight2d.numpy() > 0
        kerr = float(err[sel].mean()) if sel.any() else float("nan")
    if not np.isfinite(vc).all() or (vc[:, 2] <= 0).any():
        raise FitError("the body fit diverged (the body ended up behind the camera)")
    return FittedBody(
        pose=P.numpy().astype(np.float32),
        phenotypes=phen,
        rotation=Rg.astype(np.float32),
        translation=trans.astype(np.float32),
        camera=cam,
        vertices=vc.astype(np.float32),
        keypoints_2d=kp2d.astype(np.float32),
        keypoint_error_px=kerr,
        losses=terms,
        steps=steps,
    )


def _fit_bodies(observations: list[PersonObservation], cfg: FitConfig,
                names: list[str]) -> list[FittedBody]:  # fmt: skip
    """Body of :func:`fit_bodies` (same arguments, resolved config).

    Stages: facing and translation, then + pose, then (``steps_shape > 0``)
    + phenotypes with learning rate 0.02 and anny's full skinning.
    """
    body = _body()
    cams, targets, starts = [], [], []
    for obs, name in zip(observations, names, strict=True):
        h, w = obs.image_size
        cam = Camera.centred(w, h, cfg.focal_factor)
        try:
            targets.append(_targets(obs, body))
        except FitError as e:
            raise _named(e, name) from None
        cams.append(cam)
        starts.append(_initialise(obs, body, cam, cfg.init, cfg.init_checkpoint))
    f32 = torch.float32

    def leaf(x) -> torch.Tensor:
        return torch.tensor(np.stack(x), dtype=f32).requires_grad_(True)

    params = _Params(
        glob=leaf([s.glob for s in starts]),
        trans=leaf([s.trans for s in starts]),
        rot=leaf([s.rot for s in starts]),
        pheno=torch.full((len(starts), len(FIT_PHENOTYPES)), 0.5, requires_grad=True),
        z=torch.tensor([s.z for s in starts], dtype=f32),
    )
    loss = _FitLoss(observations, body, cams, targets, params, cfg)
    weights = {"2d": cfg.w_2d, "3d": cfg.w_3d, "mask": cfg.w_mask, "prior": cfg.w_prior,
               "shape": cfg.w_shape}  # fmt: skip
    glob, trans, rot, pheno = params.glob, params.trans, params.rot, params.pheno
    _, n1 = _run_stage(loss, weights, [glob, trans], cfg.steps_global, cfg)
    terms, n2 = _run_stage(loss, weights, [glob, trans, rot], cfg.steps_pose, cfg)
    shape_terms, n3 = _run_stage(loss, weights, [glob, trans, rot, pheno], cfg.steps_shape, cfg,
                                 with_shape=cfg.steps_shape > 0, lr=0.02)  # fmt: skip
    terms = shape_terms or terms
    if not terms:
        with torch.no_grad():
            terms = loss(False)
    out = []
    z = params.z.double().numpy()
    for i, obs in enumerate(observations):
        try:
            out.append(_finish(
                obs, body, cams[i], targets[i], rot[i].detach().double().numpy(),
                glob[i].detach().double().numpy(), trans[i].detach().double().numpy() * z[i],
                pheno[i].detach().double().numpy(), cfg,
                {k: float(v[i].detach()) for k, v in terms.items()}, int(n1[i] + n2[i] + n3[i]),
            ))  # fmt: skip
        except FitError as e:
            raise _named(e, names[i]) from None
    return out


def _named(error: FitError, name: str) -> FitError:
    """``error`` with the photo's ``name`` in front of its message (unchanged for "")."""
    return FitError(f"{name}: {error}" if name else str(error))


@dataclass
class DenseTargets:
    """Dense 2-D keypoints of one photo: pixels that show known template vertices
    (the dense correspondences of Rong et al., ICCV 2019, sec. 3.3, eq. 4).

    Attributes:
        pixels: (N, 2) float32 image points (x, y) in pixels of the fitted photo's
            working size, pixel centres at ``+0.5`` (the convention of
            :class:`~reroute.body.raster.Camera`).
        vertices: (N,) int64 anny vertex index (0..13717) each pixel shows.
        weights: (N,) float32 >= 0, e.g. the correspondence confidence.
    """

    pixels: np.ndarray
    vertices: np.ndarray
    weights: np.ndarray

    def __post_init__(self):
        n = len(self.vertices)
        if self.pixels.shape != (n, 2) or self.weights.shape != (n,):
            raise ValueError(f"DenseTargets: expected pixels ({n}, 2) and weights ({n},), "
                             f"got {self.pixels.shape} and {self.weights.shape}")  # fmt: skip


@dataclass
class RefitConfig:
    """Schedule of :func:`refit_body`.

    Attributes:
        steps: at most this many Adam steps on facing, translation and pose (the
            convergence stop of :class:`FitConfig` applies).
        lr: peak learning rate (smaller than the fit's: the start is already close).
        w_dense: weight of the dense term (mean distance, as a fraction of
            ``max(H, W)``, like the keypoint term it sits beside).
        sigma: the dense term is robust: each point's distance ``d`` counts as
            ``d * sigma / (d + sigma)`` (fraction of ``max(H, W)``), so a pixel
            whose vertex is wrong by far pulls with at most ``sigma``.
    """

    steps: int = 30
    lr: float = 0.01
    w_dense: float = 3.0
    sigma: float = 0.05


class _DenseFitLoss(_FitLoss):
    """:class:`_FitLoss` plus the dense term ``"dense"`` (one photo, eager)."""

    def __init__(self, obs: PersonObservation, body: _Body, cam: Camera, targets: _Targets,
                 params: _Params, cfg: FitConfig, dense: DenseTargets, sigma: float):  # fmt: skip
        super().__init__([obs], body, [cam], [targets], params, cfg)
        full = body.full_skin()
        ids = torch.as_tensor(dense.vertices, dtype=torch.long)
        self.dense_y, self.dense_const = full.y[ids], full.const[ids]  # (N, G, 4), (N, 3)
        self.dense_px = torch.as_tensor(dense.pixels, dtype=torch.float32)[None]
        self.dense_w = torch.as_tensor(dense.weights, dtype=torch.float32)[None]
        self.sigma = sigma

    def terms(self, with_shape: bool) -> dict[str, torch.Tensor]:
        out = super().terms(False)
        p = self.params
        R = axis_angle_to_matrix(torch.cat([p.glob[:, None], p.rot], 1))
        pts = self.fast.apply(self.fast.transforms(p.rot, R[:, 1:]), self.dense_y, self.dense_const)
        vc = pts @ R[:, 0].transpose(1, 2) + (p.trans * p.z[:, None])[:, None]
        vc = torch.cat([vc[..., :2], vc[..., 2:].clamp_min(0.1)], -1)
        d = ((self.project(vc) - self.dense_px).pow(2).sum(-1) + 1e-8).sqrt() / self.scale[:, None]
        d = d * self.sigma / (d + self.sigma)
        out["dense"] = (self.dense_w * d).sum(1) / self.dense_w.sum(1).clamp_min(1e-6)
        return out


def refit_body(obs: PersonObservation, body: FittedBody, dense: DenseTargets,
               config: RefitConfig | None = None, fit_config: FitConfig | None = None) -> FittedBody:  # fmt: skip
    """Refit a fitted body to dense correspondences (Rong et al., ICCV 2019, eq. 4).

    Continues the fit from ``body`` with the fit's terms (keypoints, limb
    directions, silhouette, pose prior; ``fit_config``'s weights) plus the dense
    term: each pixel of ``dense`` pulls the projection of the anny vertex it
    shows towards itself (``sum_i w_i rho(|x_i - pi(v_i(theta))|)``, with the
    robust ``rho`` of :attr:`RefitConfig.sigma`). Refined correspondences (e.g.
    the BodyMap network's) thus move the body itself, so novel views of it use a
    better-fitting body.

    Args:
        obs: the photo's :class:`~reroute.body.detect.PersonObservation` at the
            size ``body`` was fitted at.
        body: the :class:`FittedBody` to start from (default phenotypes, i.e. a
            fit with ``steps_shape=0``).
        dense: :class:`DenseTargets` in the same image.
        config: :class:`RefitConfig`.
        fit_config: weights of the fit's own terms (default :class:`FitConfig`).
    Returns:
        a new :class:`FittedBody` in the same camera; ``losses`` includes ``"dense"``
        and ``steps`` adds the refit's steps to the fit's.
    Raises:
        ValueError: ``body`` has fitted phenotypes, or ``dense`` is empty.
        FitError: too few landmarks (as the fit), or the refit diverged.
    """
    rc = config or RefitConfig()
    if body.phenotypes:
        raise ValueError("refit_body: the body has fitted phenotypes; only anny's default "
                         "phenotypes are supported (FitConfig.steps_shape=0)")  # fmt: skip
    if len(dense.vertices) == 0:
        raise ValueError("refit_body: no dense targets")
    cfg = replace(fit_config or FitConfig(), compile=False, steps_shape=0)
    b = _body()
    f32 = torch.float32
    rot0 = np.stack([_matrix_to_axis_angle(R) for R in body.pose[b.pose_ids.numpy(), :3, :3]])
    z = float(body.translation[2])
    params = _Params(
        glob=torch.tensor(_matrix_to_axis_angle(body.rotation)[None], dtype=f32).requires_grad_(True),
        trans=torch.tensor(body.translation[None] / z, dtype=f32).requires_grad_(True),
        rot=torch.tensor(rot0[None], dtype=f32).requires_grad_(True),
        pheno=torch.full((1, len(FIT_PHENOTYPES)), 0.5),
        z=torch.tensor([z], dtype=f32),
    )
    targets = _targets(obs, b)
    loss = _DenseFitLoss(obs, b, body.camera, targets, params, cfg, dense, rc.sigma)
    weights = {"2d": cfg.w_2d, "3d": cfg.w_3d, "mask": cfg.w_mask, "prior": cfg.w_prior,
               "shape": 0.0, "dense": rc.w_dense}  # fmt: skip
    with _torch_threads(cfg.threads):
        terms, taken = _run_stage(loss, weights, [params.glob, params.trans, params.rot],
                                  rc.steps, replace(cfg, warmup=min(cfg.warmup, 4)), lr=rc.lr)  # fmt: skip
        if not terms:
            with torch.no_grad():
                terms = loss(False)
    return _finish(obs, b, body.camera, targets, params.rot[0].detach().double().numpy(),
                   params.glob[0].detach().double().numpy(),
                   params.trans[0].detach().double().numpy() * z, np.full(len(FIT_PHENOTYPES), 0.5),
                   cfg, {k: float(v[0].detach()) for k, v in terms.items()},
                   body.steps + int(taken[0]))  # fmt: skip
