"""Fitting anny's pose, phenotypes and placement to a photo (SMPLify-style).

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
see :mod:`reroute.body.raster`). The body's facing is initialised by Kabsch
alignment of anny's shoulders and hips to BlazePose's world landmarks; depth
from the ratio of 3-D to 2-D torso size. During the optimisation only ~2,500
of anny's 13,718 vertices are skinned (keypoint supports + a uniform subset);
the final body is skinned in full.

Pose parameters are anny's ``local-ref`` deltas: per-bone rotations about the
bone's head, expressed in world-aligned axes relative to the parent (identity =
anny's reference A-pose).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from reroute.body.detect import BLAZEPOSE_NAMES, PersonObservation
from reroute.body.posed import FittedBody, axis_angle_to_matrix, posed_vertices
from reroute.body.raster import Camera
from reroute.body.template import load_anny
from reroute.errors import FitError

__all__ = [
    "FitConfig",
    "fit_body",
]

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


@dataclass
class FitConfig:
    """Schedule and weights of :func:`fit_body`.

    Attributes:
        steps_global: Adam steps on facing and translation only.
        steps_pose: steps on pose + facing + translation.
        steps_shape: steps that also move phenotypes (0, the default, keeps
            anny's average phenotypes: on the 124 UBC Fashion frames the
            phenotype stage pulled the body towards the clothes' silhouette,
            doubled the keypoint error (1.4 -> 2.8 px), lowered the part IoU
            against DensePose (0.52 -> 0.50) and doubled the fit time).
        lr: Adam learning rate for rotations (radians per step scale).
        lr_final_factor: each stage's learning rate falls linearly from
            ``lr`` to ``lr * lr_final_factor`` over its steps.
        threads: torch threads used during the fit (0 keeps the caller's).
        w_2d, w_3d, w_mask, w_prior, w_shape: loss weights.
        focal_factor: camera focal length as a multiple of ``max(H, W)``.
    """

    steps_global: int = 20
    steps_pose: int = 60
    steps_shape: int = 0
    lr: float = 0.04
    lr_final_factor: float = 0.1
    threads: int = 1
    w_2d: float = 1.0
    w_3d: float = 0.05
    w_mask: float = 0.5
    w_prior: float = 0.002
    w_shape: float = 0.01
    focal_factor: float = 1.5


class _Body:
    """anny evaluated on a vertex subset, differentiable in pose and phenotypes."""

    def __init__(self, n_uniform: int = 2000):
        self.model = load_anny()
        m = self.model
        import anny

        kr = anny.KeypointsRegressor.coco(m)
        self.kp_names = list(kr.labels)
        w = kr.regression_weights.float()
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
        self.rest_cache: dict[tuple, tuple[torch.Tensor, torch.Tensor]] = {}
        self._fast: _FastSkin | None = None

    def fast_skin(self) -> _FastSkin:
        """:class:`_FastSkin` for the default phenotypes (built once)."""
        if self._fast is None:
            with torch.no_grad():
                self._fast = _FastSkin(self, *self.rest(None))
        return self._fast

    def rest(self, pheno: torch.Tensor | None):
        """Rest vertices (subset, float32) and rest bone poses for phenotypes (5,) in [0, 1]."""
        m = self.model
        kwargs = None
        if pheno is not None:
            kwargs = {n: pheno[i : i + 1].double() for i, n in enumerate(FIT_PHENOTYPES)}
        eye = torch.eye(4, dtype=torch.float64).expand(1, m.bone_count, 4, 4)
        out = m(pose_parameters=eye.clone(), phenotype_kwargs=kwargs)
        return out["rest_vertices"][0, self.subset].float(), out["rest_bone_poses"]

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
        return self.kp_w @ verts[self.kp_cols]


class _FastSkin:
    """Skinning of the fit's vertex subset through the optimised bones only.

    Every bone ``c`` that is not optimised keeps its identity delta, so its
    posed pose is ``W_c = W_a W0_a^-1 W0_c`` with ``a`` its nearest optimised
    ancestor and ``W0`` the poses at identity deltas (anny's reference pose);
    an optimised bone's is ``W_a = W_a' W0_a'^-1 W0_a D'_a`` with ``a'`` the
    next optimised ancestor and ``D'_a = U_a^T D_a U_a`` its delta in anny's
    'local-ref' parameterisation (``U`` = reference orientations). Linear
    blend skinning ``sum_b w_vb W_b P_b^-1 v`` then groups by ``a``:
    ``sum_a W_a y_va`` with ``y_va = sum_{b in a} w_vb W0_a^-1 W0_b P_b^-1 v``
    precomputed once, so each fit step runs 18 small matrix products instead
    of anny's 104-bone chain (same vertices to 1e-6 m, ~3x faster with its
    backward pass).
    """

    def __init__(self, body: _Body, rest_v: torch.Tensor, rest_poses: torch.Tensor):
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
        vh = torch.cat([rest_v.double(), torch.ones(len(rest_v), 1, dtype=torch.float64)], 1)
        pts = torch.einsum("skij,sj->ski", E[body.vb_idx], vh) * body.vb_w.double()[..., None]
        gidx = torch.tensor(group)[body.vb_idx]  # (S, K)
        self.y = torch.stack([(pts * (gidx == a)[..., None]).sum(1) for a in opt], 1).float()
        self.const = (pts * (gidx < 0)[..., None]).sum(1)[:, :3].float()
        self.bottom = torch.tensor([[0.0, 0.0, 0.0, 1.0]])

    def __call__(self, rot: torch.Tensor) -> torch.Tensor:
        """Skinned subset vertices (S, 3) float32 for bone axis-angles rot (J, 3)."""
        D = self.U.transpose(1, 2) @ axis_angle_to_matrix(rot) @ self.U
        Dh = torch.cat([F.pad(D, (0, 1)), self.bottom.expand(len(D), 1, 4)], 1)
        W: list[torch.Tensor | None] = [None] * len(self.order)
        for i in self.order:
            base = self.C[i] if self.anc[i] < 0 else W[self.anc[i]] @ self.C[i]
            W[i] = base @ Dh[i]
        Ws = torch.stack(W)  # type: ignore[arg-type]
        return torch.einsum("gij,sgj->si", Ws[:, :3, :], self.y) + self.const


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
    import cv2

    return cv2.Rodrigues(np.asarray(R, np.float64))[0].ravel()


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
    cfg = config or FitConfig()
    before = torch.get_num_threads()
    if cfg.threads > 0:
        torch.set_num_threads(cfg.threads)
    try:
        return _fit_body(obs, cfg)
    finally:
        torch.set_num_threads(before)


_BP_INDEX = {n: i for i, n in enumerate(BLAZEPOSE_NAMES)}
_TORSO = ("left_shoulder", "right_shoulder", "left_hip", "right_hip")


@dataclass
class _Targets:
    """The 2-D keypoint targets of a fit, in :data:`_KP_MAP` order (21 entries).

    Attributes:
        kp_ids: indices into anny's 23 COCO keypoints.
        lm_ids: the matching BlazePose landmark indices.
        target2d: (21, 2) float32 BlazePose landmarks in pixels (x, y).
        weight2d: (21,) float32 per-keypoint weight: visibility (0 when <= 0.5 or
            more than 2 % outside the image) times :data:`_KP_WEIGHT`.
    """

    kp_ids: list[int]
    lm_ids: list[int]
    target2d: torch.Tensor
    weight2d: torch.Tensor


@dataclass
class _Params:
    """The optimised parameters (leaf tensors with ``requires_grad``) and the depth scale.

    Attributes:
        glob: (3,) float32 axis-angle of the camera-from-anny rotation.
        trans: (3,) float32 camera-frame translation in units of ``z``.
        rot: (J, 3) float32 axis-angles of the :data:`POSE_BONES` (``local-ref`` deltas).
        pheno: (5,) float32 :data:`FIT_PHENOTYPES`, nominally in [0, 1].
        z: the initial depth z0 in metres (numpy float64 scalar).
    """

    glob: torch.Tensor
    trans: torch.Tensor
    rot: torch.Tensor
    pheno: torch.Tensor
    z: np.float64


def _targets(obs: PersonObservation, body: _Body) -> _Targets:
    """The 2-D targets and weights of ``obs`` (landmarks in pixels of an H x W image).

    Raises:
        FitError: when fewer than two of the shoulders and hips carry weight.
    """
    h, w = obs.image_size
    kp_ids = [body.kp_names.index(k) for k in _KP_MAP]
    lm_ids = [_BP_INDEX[v] for v in _KP_MAP.values()]
    target2d = torch.tensor(obs.landmarks[lm_ids], dtype=torch.float32)
    vis = torch.tensor(obs.visibility[lm_ids], dtype=torch.float32)
    inside = (target2d[:, 0] > -0.02 * w) & (target2d[:, 0] < 1.02 * w)
    inside &= (target2d[:, 1] > -0.02 * h) & (target2d[:, 1] < 1.02 * h)
    weight2d = torch.where((vis > 0.5) & inside, vis, torch.zeros_like(vis))
    weight2d = weight2d * torch.tensor([_KP_WEIGHT.get(k, 1.0) for k in _KP_MAP])
    if (weight2d[[list(_KP_MAP).index(k) for k in _TORSO]] > 0).sum() < 2:
        raise FitError("the person's shoulders and hips are not visible enough to fit a body")
    return _Targets(kp_ids, lm_ids, target2d, weight2d)


def _initialise(obs: PersonObservation, body: _Body, cam: Camera) -> _Params:
    """Starting parameters: facing by Kabsch, depth from the torso's size.

    The facing is the rotation aligning anny's reference-pose shoulders and hips
    (anny's frame, metres) with BlazePose's world landmarks (camera axes,
    metres); the depth ``z0 = focal * torso3d / torso2d`` (torso = shoulder
    centre to hip centre, the 2-D length at least 5 % of ``max(H, W)``) and the
    translation puts the torso's centre on the landmarks' torso centre (pixels)
    at that depth. Pose deltas start at zero, phenotypes at 0.5.
    """
    h, w = obs.image_size
    scale = float(max(h, w))
    with torch.no_grad():
        rest_v, rest_poses = body.rest(None)
        v0 = body.forward(torch.zeros(len(POSE_BONES), 3), rest_v, rest_poses)
        kp0 = body.keypoints(v0).numpy()
    ti = [body.kp_names.index(k) for k in _TORSO]
    world = obs.world[[_BP_INDEX[k] for k in _TORSO]].astype(np.float64)
    R0 = _kabsch(kp0[ti].astype(np.float64), world)
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
    return _Params(
        glob=torch.tensor(_matrix_to_axis_angle(R0), dtype=torch.float32, requires_grad=True),
        trans=torch.tensor(t0 / z, dtype=torch.float32, requires_grad=True),  # in units of z0
        rot=torch.zeros(len(POSE_BONES), 3, requires_grad=True),
        pheno=torch.full((len(FIT_PHENOTYPES),), 0.5, requires_grad=True),
        z=z,
    )


def _silhouette_targets(obs: PersonObservation, scale: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Silhouette term inputs from the person mask (H, W).

    Returns:
        outside: (1, 1, H, W) float32 distance to the mask (pixels / ``scale``;
            0 inside the mask), for ``grid_sample``.
        mask_pts: (N, 2) float32 pixel centres (x, y) of up to 400 mask pixels
            drawn without replacement by ``default_rng(0)``.
    """
    import cv2

    mask = (obs.mask > 0.5).astype(np.uint8)
    outside = cv2.distanceTransform(1 - mask, cv2.DIST_L2, 5).astype(np.float32) / scale
    outside_t = torch.from_numpy(outside)[None, None]
    ys, xs = np.nonzero(mask)
    rng = np.random.default_rng(0)
    pick = rng.choice(len(xs), size=min(400, len(xs)), replace=False) if len(xs) else []
    mask_pts = torch.tensor(np.stack([xs[pick], ys[pick]], 1) + 0.5, dtype=torch.float32)
    return outside_t, mask_pts


class _FitLoss:
    """The fit's loss terms for the current values of a :class:`_Params`.

    Call it with ``with_shape`` (skin through anny with the phenotypes, else
    the fast default-phenotype skinning) for a dict of scalar float32 tensors
    ``"2d"``, ``"3d"``, ``"mask"``, ``"prior"``, ``"shape"`` (in that order).
    """

    def __init__(self, obs: PersonObservation, body: _Body, cam: Camera,
                 targets: _Targets, params: _Params):  # fmt: skip
        h, w = obs.image_size
        self.body, self.fast, self.cam = body, body.fast_skin(), cam
        self.targets, self.params = targets, params
        self.width, self.height = w, h
        self.scale = float(max(h, w))
        self.outside, self.mask_pts = _silhouette_targets(obs, self.scale)
        self.world = torch.tensor(obs.world, dtype=torch.float32)
        self.limbs = [
            (body.kp_names.index(a), body.kp_names.index(b), _BP_INDEX[a], _BP_INDEX[b])
            for a, b in _LIMBS
            if obs.visibility[_BP_INDEX[a]] > 0.5 and obs.visibility[_BP_INDEX[b]] > 0.5
        ]
        self.prior_w = torch.tensor(list(POSE_BONES.values()))

    def camera_vertices(self, with_shape: bool) -> torch.Tensor:
        """(S, 3) float32 skinned subset vertices in the camera frame (metres, z >= 0.1)."""
        p, body = self.params, self.body
        if with_shape:
            v = body.forward(p.rot, *body.rest(p.pheno.clamp(0, 1)))
        else:
            v = self.fast(p.rot)
        Rg = axis_angle_to_matrix(p.glob)
        vc = v @ Rg.T + p.trans * float(p.z)
        return torch.cat([vc[:, :2], vc[:, 2:].clamp_min(0.1)], 1)

    def reprojection(self, kp: torch.Tensor) -> torch.Tensor:
        """Weighted mean 2-D distance (fraction of ``max(H, W)``) of keypoints kp (23, 3)."""
        tg = self.targets
        proj = self.cam.project(kp)
        d2 = ((proj[tg.kp_ids] - tg.target2d) / self.scale).pow(2).sum(1)
        return (tg.weight2d * (d2 + 1e-6).sqrt()).sum() / tg.weight2d.sum().clamp_min(1e-6)

    def bone_directions(self, kp: torch.Tensor) -> torch.Tensor:
        """Mean 1 - cosine between the visible limbs of kp (23, 3) and BlazePose's world limbs."""
        if not self.limbs:
            return torch.zeros(())
        cos = []
        for a, b, wa, wb in self.limbs:
            da = F.normalize(kp[b] - kp[a], dim=0)
            db = F.normalize(self.world[wb] - self.world[wa], dim=0)
            cos.append(1 - (da * db).sum())
        return torch.stack(cos).mean()

    def silhouette(self, vc: torch.Tensor) -> torch.Tensor:
        """Silhouette term of camera-frame vertices vc (S, 3): mean distance outside the
        mask of the projected uniform subset plus the one-sided chamfer of the mask points."""
        w, h, scale = self.width, self.height, self.scale
        pv = self.cam.project(vc[self.body.n_uniform_mask])
        grid = torch.stack([pv[:, 0] / w * 2 - 1, pv[:, 1] / h * 2 - 1], -1)[None, None]
        out_d = F.grid_sample(self.outside, grid, align_corners=False, padding_mode="border")
        sil = out_d.mean()
        if len(self.mask_pts):
            dist = torch.cdist(self.mask_pts / scale, pv / scale).min(1).values
            sil = sil + dist.mean()
        return sil

    def __call__(self, with_shape: bool) -> dict[str, torch.Tensor]:
        p = self.params
        vc = self.camera_vertices(with_shape)
        kp = self.body.keypoints(vc)
        out = {"2d": self.reprojection(kp)}
        out["3d"] = self.bone_directions(kp)
        out["mask"] = self.silhouette(vc)
        prior = (self.prior_w * p.rot.pow(2).sum(1)).sum()
        out["prior"] = prior
        out["shape"] = (p.pheno - 0.5).pow(2).sum() if with_shape else torch.zeros(())
        return out


def _run_stage(loss: _FitLoss, weights: dict[str, float], params: list[torch.Tensor],
               steps: int, cfg: FitConfig, with_shape: bool = False, lr: float | None = None
               ) -> dict[str, torch.Tensor]:  # fmt: skip
    """One Adam stage over ``params``: ``steps`` steps of the weighted sum of ``loss``'s terms.

    The learning rate (``lr``, default ``cfg.lr``) falls linearly to
    ``cfg.lr_final_factor`` times itself. Returns the terms of the last step
    ({} when ``steps <= 0``).
    """
    if steps <= 0:
        return {}
    opt = torch.optim.Adam(params, lr=cfg.lr if lr is None else lr)
    # anneal each stage's learning rate linearly to cfg.lr_final_factor x lr
    sched = torch.optim.lr_scheduler.LinearLR(
        opt, 1.0, cfg.lr_final_factor, total_iters=max(steps - 1, 1)
    )
    for _ in range(steps):
        opt.zero_grad()
        terms = loss(with_shape)
        total = sum(weights[k] * v for k, v in terms.items())
        total.backward()
        opt.step()
        sched.step()
    return terms


def _finish(obs: PersonObservation, body: _Body, cam: Camera, targets: _Targets,
            params: _Params, cfg: FitConfig, terms: dict[str, torch.Tensor]) -> FittedBody:  # fmt: skip
    """Skin all of anny at the fitted parameters and package the :class:`FittedBody`.

    The keypoint error is the mean pixel distance of the weighted keypoints.

    Raises:
        FitError: when a vertex is not finite or lies behind the camera.
    """
    p = params
    with torch.no_grad():
        P = torch.eye(4).repeat(body.model.bone_count, 1, 1)
        P[body.pose_ids, :3, :3] = axis_angle_to_matrix(p.rot)
        phen = {
            n: float(v) for n, v in zip(FIT_PHENOTYPES, p.pheno.clamp(0, 1).tolist(), strict=True)
        }
        if cfg.steps_shape <= 0:
            phen = {}
        verts = posed_vertices(P.numpy(), phen)
        Rg = axis_angle_to_matrix(p.glob).numpy()
        t = p.trans.numpy() * p.z
        vc = verts @ Rg.T + t
        import anny

        kr = anny.KeypointsRegressor.coco(body.model)
        kp = (kr.regression_weights.float().numpy() @ vc).astype(np.float32)
        kp2d = cam.project(kp)
        err = np.linalg.norm(kp2d[targets.kp_ids] - obs.landmarks[targets.lm_ids], axis=1)
        sel = targets.weight2d.numpy() > 0
        kerr = float(err[sel].mean()) if sel.any() else float("nan")
    if not np.isfinite(vc).all() or (vc[:, 2] <= 0).any():
        raise FitError("the body fit diverged (the body ended up behind the camera)")
    return FittedBody(
        pose=P.numpy().astype(np.float32),
        phenotypes=phen,
        rotation=Rg.astype(np.float32),
        translation=t.astype(np.float32),
        camera=cam,
        vertices=vc.astype(np.float32),
        keypoints_2d=kp2d.astype(np.float32),
        keypoint_error_px=kerr,
        losses={k: float(v.detach()) for k, v in terms.items()},
    )


def _fit_body(obs: PersonObservation, config: FitConfig | None = None) -> FittedBody:
    """Body of :func:`fit_body` (same arguments, already resolved config).

    Stages: facing and translation, then + pose, then (``steps_shape > 0``)
    + phenotypes with learning rate 0.02 and anny's full skinning.
    """
    cfg = config or FitConfig()
    body = _body()
    h, w = obs.image_size
    cam = Camera.centred(w, h, cfg.focal_factor)
    targets = _targets(obs, body)
    params = _initialise(obs, body, cam)
    loss = _FitLoss(obs, body, cam, targets, params)
    weights = {"2d": cfg.w_2d, "3d": cfg.w_3d, "mask": cfg.w_mask, "prior": cfg.w_prior,
               "shape": cfg.w_shape}  # fmt: skip
    glob, trans, rot, pheno = params.glob, params.trans, params.rot, params.pheno
    _run_stage(loss, weights, [glob, trans], cfg.steps_global, cfg)
    _run_stage(loss, weights, [glob, trans, rot], cfg.steps_pose, cfg)
    terms = _run_stage(loss, weights, [glob, trans, rot, pheno], cfg.steps_shape, cfg,
                       with_shape=cfg.steps_shape > 0, lr=0.02)  # fmt: skip
    if not terms:
        with torch.no_grad():
            terms = loss(False)
    return _finish(obs, body, cam, targets, params, cfg, terms)
