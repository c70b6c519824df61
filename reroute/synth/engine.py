"""The synthetic human data engine: anny people with exact ground truth.

Each **identity** is a phenotype draw (gender, age, muscle, weight, height,
proportions over anny's range; ages from teenage to old by default) and an
:class:`~reroute.synth.appearance.Outfit` painted into anny's UV texture. Each
identity is seen in K **views**: a pose from :func:`reroute.synth.pose.sample_pose`
and a camera -- yaw over the full turn, pitch (camera height) -10..+25 deg,
focal length 1.2-2.6 x the image size (distance follows from the framing),
full-body or upper-body framing filling 55-92 % of the image with a random
offset -- lit by a Lambertian light with an ambient term over a plain or
cluttered background, optionally with other people in the frame (occluders,
as BodyMap's augmentation).

Ground truth of every image (:class:`SyntheticSample`): RGB; the primary
person's mask; DensePose IUV (24 parts), anny's continuous UV and the BodyMap
colour code (a :class:`~reroute.correspondence.maps.Correspondence` over all people
in the frame, with an instance map saying who is who); the face-region mask;
the nearest template vertex per pixel (exact surface point, for GPS);
COCO-17 and BlazePose-33 keypoints with visibility; the identity's full UV
texture with the mask of texels visible in this view; the posed vertices and
camera (a :class:`~reroute.body.posed.FittedBody`).

Everything is deterministic given ``(seed, identity index, view index)``:
identity ``i`` draws from ``np.random.default_rng([seed, i])`` and its view
``k`` from ``np.random.default_rng([seed, i, k + 1])``. All K poses of an
identity are skinned in one anny batch (posing is the costliest step after
ray casting), and :class:`SyntheticPeopleDataset` streams samples for
training without writing to disk.

Approximations (documented, measured where stated):

* BlazePose-33 keypoints: the 21 landmarks anny's COCO regressor has (COCO 17,
  heels, big toes = ``foot_index``) use its regression weights; eye
  inner/outer corners and mouth corners are the nearest surface vertices to
  points 1.5 cm beside the eye keypoint and 2.2 cm beside the mouth centre on
  the canonical head; pinky/index knuckles and the thumb are the inverse-distance
  blend of the 4 vertices nearest to the rest-pose heads of bones
  ``finger5-1``, ``finger2-1`` and ``finger1-3``.
* Keypoint visibility: 0 outside the image, 2 when the rendered surface at the
  keypoint's pixel is no more than 12 cm in front of the keypoint (joints lie
  under the skin) and belongs to this person, else 1 (occluded).
* Texture visibility is per triangle: a texel is visible when its triangle is
  hit by at least one pixel ray.
* Anti-aliasing is a Gaussian blur (sigma 0.5 px) of the composited image, not
  supersampling; sensor noise is Gaussian (sigma 0-1.5 % of full scale).

Test fixtures (the older ``synthetic`` module, folded in):
:func:`render_synthetic_person` poses anny with axis-angle deltas on the bones of
:data:`reroute.body.fit.POSE_BONES` (e.g. :data:`reroute.synth.pose.EXAMPLE_POSES`),
places it facing a centred camera (``yaw_deg`` turns it about its vertical
axis first, positive towards the person's left), paints it with a simple
procedural outfit (:func:`reroute.synth.appearance.shade_fixture`: skin, a
striped short-sleeved shirt, trousers, shoes, a hair cap and a face) with
Lambertian shading over a light-grey background, and returns the render with
its truth (:class:`SyntheticRender`: posed body, camera, projected COCO-23
keypoints, rendered correspondences). BlazePose finds these people, which
makes them reroute's test fixtures and app examples: our own renders, free of
any licence question.
"""

from __future__ import annotations

import functools
from collections import OrderedDict
from dataclasses import dataclass, field

import numpy as np
import torch

from reroute.body.detect import BLAZEPOSE_NAMES
from reroute.body.posed import (
    CAMERA_FROM_ANNY,
    FittedBody,
    posed_vertices,
    rotation_x,
    rotation_z,
    vertex_normals,
)
from reroute.body.raster import Camera, Rasterization, ray_kernel
from reroute.body.template import get_template, load_anny, split_maps
from reroute.correspondence.fitted import render_correspondence
from reroute.correspondence.maps import Correspondence
from reroute.io.images import to_uint8
from reroute.synth.appearance import (
    Outfit,
    TexelGeometry,
    canonical_landmarks,
    coco_regressor,
    face_region_faces,
    paint_texture,
    render_background,
    sample_outfit,
    shade_fixture,
    texel_geometry,
)
from reroute.synth.pose import POSE_KINDS, pose_matrices, pose_to_matrices, sample_pose

__all__ = [
    "SynthConfig",
    "Identity",
    "ViewSpec",
    "SyntheticSample",
    "SyntheticEngine",
    "SyntheticPeopleDataset",
    "COCO17_NAMES",
    "BLAZEPOSE33_NAMES",
    "sample_phenotypes",
    "PHENOTYPE_RANGES",
    "SyntheticRender",
    "render_synthetic_person",
    "pose_batch",
]

COCO17_NAMES: tuple[str, ...] = (
    "nose", "left_eye", "right_eye", "left_ear", "right_ear", "left_shoulder",
    "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist", "left_hip",
    "right_hip", "left_knee", "right_knee", "left_ankle", "right_ankle",
)  # fmt: skip
#: BlazePose 33 landmark names, in order (the front end's own list).
BLAZEPOSE33_NAMES: tuple[str, ...] = BLAZEPOSE_NAMES

#: anny phenotype -> (low, high) sampled uniformly; age 0.45..1 is teenage..old
#: (anny's age anchors: newborn -1/3, baby 0, child 1/3, young 2/3, old 1).
PHENOTYPE_RANGES: dict[str, tuple[float, float]] = {
    "gender": (0.0, 1.0), "age": (0.45, 1.0), "muscle": (0.0, 1.0),
    "weight": (0.05, 0.95), "height": (0.0, 1.0), "proportions": (0.0, 1.0),
}  # fmt: skip

_KEYPOINT_DEPTH_MARGIN = 0.12  # metres


@dataclass
class SynthConfig:
    """Parameters of the engine.

    Attributes:
        size: image side in pixels (square images), 128..1024.
        texture_size: side of the identity's UV texture (512 keeps faces legible).
        views_per_identity: K, images per identity.
        poses_per_identity: distinct poses per identity (view k uses pose
            ``k % poses_per_identity``); 0 = one pose per view. Fewer poses than
            views give multi-view images of one pose.
        upper_body_prob: share of upper-body framings (head to hips).
        cluttered_prob: share of cluttered backgrounds.
        multi_person_prob: share of frames with 1-2 extra people.
        pose_kinds: allowed pose kinds (subset of :data:`reroute.synth.pose.POSE_KINDS`).
        pose_bank: optional poses (bone -> axis-angle) for the ``"bank"`` kind.
        phenotype_ranges: (low, high) per phenotype; defaults to :data:`PHENOTYPE_RANGES`.
        focal_range: camera focal length as a multiple of the image size.
        pitch_range_deg: camera elevation (positive = camera above, looking down).
        fill_range: framed region's extent as a fraction of the image side.
        blur_sigma: anti-aliasing blur (pixels at 256 px, scaled with size).
        noise_max: largest sensor-noise sigma (fraction of full scale).
    """

    size: int = 256
    texture_size: int = 512
    views_per_identity: int = 4
    poses_per_identity: int = 0
    upper_body_prob: float = 0.25
    cluttered_prob: float = 0.5
    multi_person_prob: float = 0.0
    pose_kinds: tuple[str, ...] = POSE_KINDS
    pose_bank: list | None = None
    phenotype_ranges: dict[str, tuple[float, float]] = field(
        default_factory=lambda: dict(PHENOTYPE_RANGES)
    )
    focal_range: tuple[float, float] = (1.2, 2.6)
    pitch_range_deg: tuple[float, float] = (-10.0, 25.0)
    fill_range: tuple[float, float] = (0.55, 0.92)
    blur_sigma: float = 0.5
    noise_max: float = 0.015

    def validate(self) -> SynthConfig:
        """Return self; raise ``ValueError`` naming the bad field otherwise."""
        if not 128 <= self.size <= 1024:
            raise ValueError(f"size must be in 128..1024 px, got {self.size}")
        if not 64 <= self.texture_size <= 2048:
            raise ValueError(f"texture_size must be in 64..2048, got {self.texture_size}")
        if self.views_per_identity < 1:
            raise ValueError(f"views_per_identity must be >= 1, got {self.views_per_identity}")
        if self.poses_per_identity < 0:
            raise ValueError(f"poses_per_identity must be >= 0, got {self.poses_per_identity}")
        bad = [k for k in self.pose_kinds if k not in POSE_KINDS]
        if bad or not self.pose_kinds:
            raise ValueError(
                f"pose_kinds must be a non-empty subset of {POSE_KINDS}, got {self.pose_kinds}"
            )
        for name in ("upper_body_prob", "cluttered_prob", "multi_person_prob"):
            v = getattr(self, name)
            if not 0.0 <= v <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {v}")
        return self


def sample_phenotypes(rng: np.random.Generator, ranges: dict[str, tuple[float, float]] | None = None
                      ) -> dict[str, float]:  # fmt: skip
    """anny phenotypes, each uniform in its (low, high) range (:data:`PHENOTYPE_RANGES`)."""
    r = ranges or PHENOTYPE_RANGES
    return {k: float(rng.uniform(lo, hi)) for k, (lo, hi) in r.items()}


@dataclass
class ViewSpec:
    """Everything random about one image of an identity.

    Attributes:
        pose: bone -> (3,) axis-angle radians; ``pose_kind`` which prior made it.
        yaw_deg: body turn about its vertical axis (0 = facing the camera, 90 =
            the person's left side towards the camera... anticlockwise from above).
        pitch_deg: camera elevation; ``focal_factor``: focal / image size.
        framing: ``"full"`` or ``"upper"``; ``fill``: framed extent / image side;
        offset: (2,) framed centre offset as a fraction of the free margin, in [-1, 1].
        light: (3,) unit direction towards the light (camera frame); ``ambient`` in [0, 1].
        cluttered: background kind; ``background_seed`` its seed.
        noise: sensor-noise sigma; ``extras``: other people (phenotypes, outfit, pose,
            lateral and depth offsets in metres, yaw).
    """

    pose: dict
    pose_kind: str
    yaw_deg: float
    pitch_deg: float
    focal_factor: float
    framing: str
    fill: float
    offset: np.ndarray
    light: np.ndarray
    ambient: float
    cluttered: bool
    background_seed: int
    noise: float
    extras: list = field(default_factory=list)


@dataclass
class Identity:
    """One synthetic person: phenotypes, outfit, texture and the views' specs.

    Attributes:
        index: identity number within the seed.
        phenotypes: anny phenotypes in [0, 1].
        outfit: the :class:`~reroute.synth.appearance.Outfit`.
        texture: (T, T, 3) float32 albedo in [0, 1] (continuous UV, image convention).
        views: one :class:`ViewSpec` per view.
        vertices: (P, V, 3) float32 posed vertices (anny frame, metres) per distinct pose.
    """

    index: int
    phenotypes: dict[str, float]
    outfit: Outfit
    texture: np.ndarray
    views: list[ViewSpec]
    vertices: np.ndarray


@dataclass
class SyntheticSample:
    """One rendered image and its ground truth (primary person unless noted).

    Attributes:
        image: (H, W, 3) uint8 RGB.
        correspondence: :class:`~reroute.correspondence.maps.Correspondence` over all
            people in the frame (part 0..24, per-part UV, continuous UV, BodyMap
            colour; ``mask`` = any person, ``body_mask`` the same: no extension).
        mask: (H, W) bool, the primary person's visible pixels.
        instance: (H, W) uint8, 0 background, 1 the primary person, 2.. others.
        face_mask: (H, W) bool, primary person's face region (see
            :func:`reroute.synth.appearance.face_region_faces`).
        vertex_index: (H, W) int32 nearest template vertex of each person pixel
            (largest barycentric weight), -1 on background.
        depth: (H, W) float32 ray distance in metres, inf on background.
        keypoints_coco: (17, 3) float32 (x, y, visibility 0/1/2), pixels; COCO order.
        keypoints_blazepose: (33, 3) float32 the same in BlazePose order.
        texture: (T, T, 3) uint8 the identity's full UV texture.
        texture_visibility: (T, T) bool texels seen in this view.
        texture_mask: (T, T) bool texels inside UV islands.
        body: the primary person as a :class:`~reroute.body.posed.FittedBody` (pose,
            phenotypes, camera, rotation, translation, camera-frame vertices).
        identity, view: indices; ``pose_kind``, ``framing`` as in :class:`ViewSpec`.
    """

    image: np.ndarray
    correspondence: Correspondence
    mask: np.ndarray
    instance: np.ndarray
    face_mask: np.ndarray
    vertex_index: np.ndarray
    depth: np.ndarray
    keypoints_coco: np.ndarray
    keypoints_blazepose: np.ndarray
    texture: np.ndarray
    texture_visibility: np.ndarray
    texture_mask: np.ndarray
    body: FittedBody
    identity: int
    view: int
    pose_kind: str
    framing: str
    spec: ViewSpec | None = None

    @property
    def iuv(self) -> np.ndarray:
        """(H, W, 3) uint8 DensePose IUV of all people in the frame."""
        return self.correspondence.to_iuv()

    @property
    def partial_texture(self) -> np.ndarray:
        """(T, T, 3) uint8, the full texture where visible in this view, 0 elsewhere
        (the input of texture completion; :attr:`texture` is its target)."""
        return np.where(self.texture_visibility[..., None], self.texture, 0).astype(np.uint8)


# ---------------------------------------------------------------------------------------------
# keypoint regressors


@functools.lru_cache(maxsize=1)
def _regressors() -> tuple[np.ndarray, np.ndarray]:
    """(17, V) COCO and (33, V) BlazePose dense regression matrices (float64)."""
    import anny
    from scipy.spatial import cKDTree

    m = load_anny()
    t = get_template()
    kr = anny.KeypointsRegressor.coco(m)
    w = kr.regression_weights.double().numpy()
    labels = list(kr.labels)
    coco = w[[labels.index(n) for n in COCO17_NAMES]]
    verts = t.vertices.astype(np.float64)
    tree = cKDTree(verts)
    lm = canonical_landmarks()
    with torch.no_grad():
        eye = torch.eye(4, dtype=torch.float64).expand(1, m.bone_count, 4, 4).clone()
        heads = m(pose_parameters=eye)["bone_poses"][0, :, :3, 3].numpy()
    bones = {n: heads[i] for i, n in enumerate(m.bone_labels)}
    alias = {"left_foot_index": "left_big_toe", "right_foot_index": "right_big_toe"}

    def surface_row(p: np.ndarray, k: int) -> np.ndarray:
        d, idx = tree.query(p, k=k)
        d, idx = np.atleast_1d(d), np.atleast_1d(idx)
        wts = 1.0 / np.maximum(d, 1e-4)
        row = np.zeros(len(verts))
        row[idx] = wts / wts.sum()
        return row

    rows = []
    for n in BLAZEPOSE33_NAMES:
        a = alias.get(n, n)
        if a in labels:
            rows.append(w[labels.index(a)])
            continue
        side = 1.0 if n.startswith("left") else -1.0
        if "eye_" in n:
            e = lm[f"{'left' if side > 0 else 'right'}_eye"]
            dx = 0.015 * (-side if n.endswith("inner") else side)
            rows.append(surface_row(e + np.array([dx, 0.0, 0.0]), 1))
        elif n.startswith("mouth"):
            nose = lm["nose"]
            rows.append(surface_row(nose + np.array([0.022 * side, 0.0, -0.043]), 1))
        else:
            s = "L" if side > 0 else "R"
            bone = {"pinky": f"finger5-1.{s}", "index": f"finger2-1.{s}", "thumb": f"finger1-3.{s}"}
            rows.append(surface_row(bones[bone[n.split("_")[1]]], 4))
    return coco, np.stack(rows)


_MESHES: OrderedDict = OrderedDict()


def _mesh_for(wp, vertices: np.ndarray, faces: np.ndarray):
    """A warp mesh of these triangles at these points: the BVH of a mesh with the same
    faces is refitted (bounding boxes updated, ~10x cheaper than a build) instead of
    rebuilt; a few topologies are kept (one person, two, three)."""
    key = (len(faces), len(vertices), hash(faces[:: max(1, len(faces) // 64)].tobytes()))
    pts = np.ascontiguousarray(vertices, np.float32)
    if key in _MESHES:
        mesh, arr = _MESHES[key]
        arr.assign(pts)
        mesh.refit()
        _MESHES.move_to_end(key)
        return mesh
    arr = wp.array(pts, dtype=wp.vec3, device="cpu")
    idx = wp.array(np.ascontiguousarray(faces.reshape(-1), np.int32), dtype=wp.int32, device="cpu")
    mesh = wp.Mesh(points=arr, indices=idx, bvh_constructor="median")
    _MESHES[key] = (mesh, arr)
    while len(_MESHES) > 3:
        _MESHES.popitem(last=False)
    return mesh


def _rasterize(vertices: np.ndarray, faces: np.ndarray, cam: Camera) -> Rasterization:
    """Like :func:`reroute.body.raster.rasterize` (same output), faster for sparse scenes.

    Rays are cast only inside the projected bounding box of the mesh, and the
    BVH is built once per topology with warp's median split and refitted for
    new vertex positions afterwards (a refit keeps the tree, so a very
    different pose traverses a looser tree; results stay exact). Same camera convention and barycentrics
    (recomputed in float64 from the hit point).
    """
    import contextlib
    import sys

    h, w = cam.height, cam.width
    face = np.full(h * w, -1, np.int64)
    tt = np.full(h * w, np.inf)
    pv = cam.project(vertices[vertices[:, 2] > 1e-6])
    x0, y0 = np.floor(pv.min(0)).astype(int) - 1
    x1, y1 = np.ceil(pv.max(0)).astype(int) + 1
    x0, y0, x1, y1 = max(x0, 0), max(y0, 0), min(x1, w), min(y1, h)
    if (vertices[:, 2] <= 1e-6).any():  # a vertex behind the camera: cast everywhere
        x0, y0, x1, y1 = 0, 0, w, h
    all_dirs = None
    if x1 > x0 and y1 > y0:
        ys, xs = np.mgrid[y0:y1, x0:x1]
        dirs = np.stack([(xs + 0.5 - cam.cx) / cam.focal, (ys + 0.5 - cam.cy) / cam.focal,
                         np.ones(xs.shape)], -1).reshape(-1, 3)  # fmt: skip
        dirs /= np.linalg.norm(dirs, axis=1, keepdims=True)
        wp, cast = ray_kernel()  # reroute.body.raster's kernel, every ray from the camera centre
        mesh = _mesh_for(wp, vertices, faces)
        n = len(dirs)
        o = wp.zeros(n, dtype=wp.vec3, device="cpu")
        d = wp.array(np.ascontiguousarray(dirs, np.float32), dtype=wp.vec3, device="cpu")
        f = wp.empty(n, dtype=wp.int32, device="cpu")
        t = wp.empty(n, dtype=wp.float32, device="cpu")
        with contextlib.redirect_stdout(sys.stderr):
            wp.launch(cast, dim=n, inputs=[mesh.id, o, d, f, t], device="cpu")
        pix = (ys * w + xs).ravel()
        face[pix] = f.numpy()
        tt[pix] = t.numpy()
        all_dirs = (pix, dirs)
    bary = np.zeros((h * w, 3), np.float32)
    hit = face >= 0
    if all_dirs is not None and hit.any():
        pix, dirs = all_dirs
        sel = face[pix] >= 0
        p = dirs[sel] * tt[pix[sel], None]
        tri = vertices[faces[face[pix[sel]]]]
        a, b, c = tri[:, 0], tri[:, 1], tri[:, 2]
        v0, v1, v2 = b - a, c - a, p - a
        d00, d01, d11 = (v0 * v0).sum(1), (v0 * v1).sum(1), (v1 * v1).sum(1)
        d20, d21 = (v2 * v0).sum(1), (v2 * v1).sum(1)
        den = d00 * d11 - d01 * d01
        den = np.where(np.abs(den) < 1e-30, 1e-30, den)
        w1 = (d11 * d20 - d01 * d21) / den
        w2 = (d00 * d21 - d01 * d20) / den
        wts = np.clip(np.stack([1.0 - w1 - w2, w1, w2], 1), 0.0, 1.0)
        bary[pix[sel]] = wts / wts.sum(1, keepdims=True)
    tt[~hit] = np.inf
    return Rasterization(
        face.reshape(h, w), bary.reshape(h, w, 3), tt.astype(np.float32).reshape(h, w)
    )


# anny (x left, y back, z up) -> camera (x right in the image, y down, z forward)


def pose_batch(poses: list[dict], phenotypes: list[dict[str, float]]) -> np.ndarray:
    """Skin a batch of poses (one anny call): (B, V, 3) float32 anny-frame vertices."""
    m = load_anny()
    P = torch.from_numpy(np.stack([pose_to_matrices(p) for p in poses]))
    pk = {k: torch.tensor([ph[k] for ph in phenotypes], dtype=torch.float64) for k in phenotypes[0]}
    with torch.no_grad():
        out = m(pose_parameters=P, phenotype_kwargs=pk)
    return out["vertices"].float().numpy()


# ---------------------------------------------------------------------------------------------
# the steps of SyntheticEngine.render


def _extra_people(spec: ViewSpec, vc: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
    """The other people of a view, placed beside the primary person.

    Args:
        spec: the view (its ``extras``, ``pitch_deg``).
        vc: (V, 3) float64 the primary person's camera-frame vertices (metres).
    Returns:
        [(vertices (V, 3) float64 camera frame, texture (256, 256, 3) float32)] for
        the extras that lie wholly more than 0.1 m in front of the camera: each
        is centred on the primary person, stands on the same floor (largest y),
        then shifted by its lateral and depth offsets (metres).
    """
    if not spec.extras:
        return []
    people = []
    ev = pose_batch([e["pose"] for e in spec.extras], [e["phenotypes"] for e in spec.extras])
    for e, v in zip(spec.extras, ev, strict=True):
        Re = rotation_x(-spec.pitch_deg) @ CAMERA_FROM_ANNY @ rotation_z(e["yaw"])
        ve = v.astype(np.float64) @ Re.T
        ve = ve - ve.mean(0) + vc.mean(0)
        ve[:, 1] += vc[:, 1].max() - ve[:, 1].max()  # same floor
        ve[:, 0] += e["lateral"]
        ve[:, 2] += e["depth"]
        if ve[:, 2].min() > 0.1:
            people.append((ve, paint_texture(e["outfit"], 256)))
    return people


@dataclass
class _SceneHits:
    """Ray-cast hits of a scene of people who all share anny's triangles (F faces).

    Attributes:
        raster: the :class:`Rasterization` of the concatenated meshes (``face`` =
            person * F + template face; ``depth`` (H, W) float32 ray distance in
            metres, inf on background).
        hit: (H, W) bool, a person is seen.
        owner: (H, W) int64 index of the person seen (0 = primary), -1 on background.
        local: (H, W) int64 template face seen, -1 on background.
        template_raster: ``raster`` with ``local`` as its faces.
    """

    raster: Rasterization
    hit: np.ndarray
    owner: np.ndarray
    local: np.ndarray
    template_raster: Rasterization


def _cast_people(vertices: list[np.ndarray], cam: Camera) -> _SceneHits:
    """Cast one ray per pixel of ``cam`` at people given as (V, 3) camera-frame vertices."""
    t = get_template()
    V, F = len(t.vertices), len(t.faces)
    all_v = np.concatenate(vertices)
    all_f = np.concatenate([t.faces + i * V for i in range(len(vertices))])
    r = _rasterize(all_v, all_f, cam)
    hit = r.mask
    owner = np.where(hit, r.face // F, -1)
    local = np.where(hit, r.face % F, -1)
    return _SceneHits(r, hit, owner, local, Rasterization(local, r.bary, r.depth))


def _ground_truth_maps(hits: _SceneHits) -> tuple[Correspondence, np.ndarray, np.ndarray,
                                                  np.ndarray]:  # fmt: skip
    """The surface ground truth of a scene.

    Returns:
        correspondence over all people (``mask`` = ``body_mask`` = any person);
        vertex_index (H, W) int32, the hit face's corner with the largest
        barycentric weight, -1 on background; instance (H, W) uint8 (0
        background, 1 primary person, 2.. others); face_mask (H, W) bool, the
        primary person's face region.
    """
    t = get_template()
    rl, hit, local = hits.template_raster, hits.hit, hits.local
    part = rl.face_values(t.face_part.astype(np.uint8))
    part_uv, uv, colour = split_maps(rl.interpolate(t.face_maps))
    corner = hits.raster.bary.argmax(-1)
    vidx = np.full(hit.shape, -1, np.int32)
    vidx[hit] = t.faces[local[hit], corner[hit]]
    instance = (hits.owner + 1).astype(np.uint8)
    face_mask = rl.face_values(face_region_faces()) & (hits.owner == 0)
    corr = Correspondence(part, part_uv, uv, colour, hit.copy(), hit.copy())
    return corr, vidx, instance, face_mask


def _albedo(people: list[tuple[np.ndarray, np.ndarray]], owner: np.ndarray, uv: np.ndarray,
            texture_size: int) -> np.ndarray:  # fmt: skip
    """(H, W, 3) float32 albedo: each person's pixels sample its texture at uv (H, W, 2).

    uv is continuous UV in [0, 1] (image convention) relative to a
    ``texture_size`` texture; textures of other sizes are sampled at the same
    UV (bilinear, border replicated). 0 on background.
    """
    import cv2

    albedo = np.zeros(owner.shape + (3,), np.float32)
    mx = (uv[..., 0] * texture_size - 0.5).astype(np.float32)
    my = (uv[..., 1] * texture_size - 0.5).astype(np.float32)
    for i, (_, tex) in enumerate(people):
        sel = owner == i
        if not sel.any():
            continue
        s = tex.shape[0] / texture_size
        a = cv2.remap(tex, mx * s + 0.5 * (s - 1), my * s + 0.5 * (s - 1),
                      cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)  # fmt: skip
        albedo[sel] = a[sel]
    return albedo


def _lambert(people: list[tuple[np.ndarray, np.ndarray]], hits: _SceneHits, cam: Camera,
             light: np.ndarray, ambient: float) -> np.ndarray:  # fmt: skip
    """(N,) float64 shading ``ambient + (1 - ambient) * max(n . light, 0)`` of the N hit
    pixels (row-major order), with interpolated vertex normals turned towards the
    camera and ``light`` (3,) a unit direction towards the light (camera frame)."""
    t = get_template()
    hit, owner, r = hits.hit, hits.owner, hits.raster
    normals = np.zeros((hit.sum(), 3))
    fh = hits.local[hit]
    for i, (v, _) in enumerate(people):
        sel = owner[hit] == i
        if sel.any():
            vn = vertex_normals(v, t.faces)
            normals[sel] = np.einsum("nk,nkc->nc", r.bary[hit][sel], vn[t.faces[fh[sel]]])
    normals /= np.maximum(np.linalg.norm(normals, axis=1, keepdims=True), 1e-12)
    ys, xs = np.nonzero(hit)
    ray = np.stack([(xs + 0.5 - cam.cx) / cam.focal, (ys + 0.5 - cam.cy) / cam.focal,
                    np.ones(len(xs))], 1)  # fmt: skip
    flip = (normals * ray).sum(1) > 0
    normals[flip] *= -1
    lam = np.clip(normals @ light, 0.0, 1.0)
    return ambient + (1.0 - ambient) * lam


def _shade(spec: ViewSpec, people: list[tuple[np.ndarray, np.ndarray]], hits: _SceneHits,
           uv: np.ndarray, cam: Camera, c: SynthConfig) -> np.ndarray:  # fmt: skip
    """(H, W, 3) uint8 image: people (albedo x Lambert) over the view's background,
    blurred (``c.blur_sigma`` at 256 px) and with sensor noise.

    One generator, ``default_rng(spec.background_seed)``, draws the background
    and then the noise.
    """
    import cv2

    size = cam.width
    rng = np.random.default_rng(spec.background_seed)
    img = render_background(rng, size, size, spec.cluttered)
    hit = hits.hit
    if hit.any():
        albedo = _albedo(people, hits.owner, uv, c.texture_size)
        shade = _lambert(people, hits, cam, spec.light, spec.ambient)
        img[hit] = albedo[hit] * shade[:, None]
    sig = c.blur_sigma * size / 256.0
    if sig > 0:
        img = cv2.GaussianBlur(img, (0, 0), sig)
    if spec.noise > 0:
        img = img + rng.normal(0.0, spec.noise, img.shape).astype(np.float32)
    return to_uint8(img)


def _keypoints(verts: np.ndarray, R: np.ndarray, tr: np.ndarray, cam: Camera,
               hits: _SceneHits) -> list[np.ndarray]:  # fmt: skip
    """The primary person's COCO-17 and BlazePose-33 keypoints, each (K, 3) float32
    (x, y pixels, visibility 0 outside the image, 2 visible, 1 occluded).

    Args:
        verts: (V, 3) anny-frame vertices (metres); ``R`` (3, 3), ``tr`` (3,)
            camera-from-anny rotation and translation.
        hits: the scene's ray casts; a keypoint is visible when its pixel shows
            the primary person no more than :data:`_KEYPOINT_DEPTH_MARGIN` in
            front of it, or nothing.
    """
    coco_w, bp_w = _regressors()
    size = cam.width
    depth, owner, hit = hits.raster.depth, hits.owner, hits.hit
    kps = []
    for W in (coco_w, bp_w):
        k3 = (W @ verts.astype(np.float64)) @ R.T + tr
        k2 = cam.project(k3)
        vis = np.zeros(len(k2), np.float32)
        xi, yi = np.floor(k2[:, 0]).astype(int), np.floor(k2[:, 1]).astype(int)
        inside = (xi >= 0) & (xi < size) & (yi >= 0) & (yi < size) & (k3[:, 2] > 0)
        vis[inside] = 1.0
        ii = np.where(inside)[0]
        dist = np.linalg.norm(k3[ii], axis=1)
        ok = (owner[yi[ii], xi[ii]] == 0) & (depth[yi[ii], xi[ii]] >= dist - _KEYPOINT_DEPTH_MARGIN)
        ok |= ~hit[yi[ii], xi[ii]]  # nothing drawn there: not occluded
        vis[ii[ok]] = 2.0
        kps.append(np.concatenate([k2, vis[:, None]], 1).astype(np.float32))
    return kps


def _texture_visibility(hits: _SceneHits, mask: np.ndarray, geo: TexelGeometry) -> np.ndarray:
    """(T, T) bool texels of :class:`TexelGeometry` ``geo`` whose triangle is hit by
    at least one of the primary person's pixels (``mask`` (H, W) bool)."""
    seen = np.zeros(len(get_template().faces), bool)
    seen[hits.local[mask]] = True
    return geo.mask & seen[np.maximum(geo.face, 0)]


class SyntheticEngine:
    """Renders synthetic people with exact ground truth, deterministically from a seed.

    Args:
        config: :class:`SynthConfig` (validated).
        seed: the master seed.

    Use :meth:`identity` / :meth:`render` (or :meth:`sample`) for one image, or
    :meth:`samples` to stream many. Thread use: one engine per process/worker.
    """

    def __init__(self, config: SynthConfig | None = None, seed: int = 0):
        self.config = (config or SynthConfig()).validate()
        self.seed = int(seed)
        self._cache: OrderedDict[int, Identity] = OrderedDict()

    # -- identities ------------------------------------------------------------------------
    def _view_spec(self, rng: np.random.Generator, pose: dict, kind: str) -> ViewSpec:
        c = self.config
        light = np.array([rng.uniform(-0.8, 0.8), rng.uniform(-0.9, 0.2), -1.0])
        extras = []
        if rng.random() < c.multi_person_prob:
            for _ in range(int(rng.integers(1, 3))):
                p, _k = sample_pose(rng, str(rng.choice(["standing", "walking", "arms_raised"])))
                extras.append({
                    "phenotypes": sample_phenotypes(rng, c.phenotype_ranges),
                    "outfit": sample_outfit(rng), "pose": p,
                    "lateral": float(rng.choice([-1, 1]) * rng.uniform(0.35, 0.9)),
                    "depth": float(rng.uniform(-0.8, 1.5)), "yaw": float(rng.uniform(0, 360)),
                })  # fmt: skip
        return ViewSpec(
            pose=pose, pose_kind=kind, yaw_deg=float(rng.uniform(0.0, 360.0)),
            pitch_deg=float(rng.uniform(*c.pitch_range_deg)),
            focal_factor=float(rng.uniform(*c.focal_range)),
            framing="upper" if rng.random() < c.upper_body_prob else "full",
            fill=float(rng.uniform(*c.fill_range)), offset=rng.uniform(-0.8, 0.8, 2),
            light=light / np.linalg.norm(light), ambient=float(rng.uniform(0.3, 0.55)),
            cluttered=bool(rng.random() < c.cluttered_prob),
            background_seed=int(rng.integers(2**31)), noise=float(rng.uniform(0, c.noise_max)),
            extras=extras,
        )  # fmt: skip

    def identity(self, index: int) -> Identity:
        """Identity ``index`` (phenotypes, outfit, texture, view specs, posed vertices); cached."""
        if index in self._cache:
            self._cache.move_to_end(index)
            return self._cache[index]
        c = self.config
        rng = np.random.default_rng([self.seed, index])
        phen = sample_phenotypes(rng, c.phenotype_ranges)
        outfit = sample_outfit(rng)
        texture = paint_texture(outfit, c.texture_size)
        n_poses = c.poses_per_identity or c.views_per_identity
        kinds = list(c.pose_kinds)
        poses = []
        for _ in range(n_poses):
            kind = str(rng.choice(kinds)) if len(kinds) > 1 else kinds[0]
            poses.append(sample_pose(rng, kind, c.pose_bank))
        views = []
        for k in range(c.views_per_identity):
            vr = np.random.default_rng([self.seed, index, k + 1])
            pose, kind = poses[k % n_poses]
            views.append(self._view_spec(vr, pose, kind))
        verts = pose_batch([p for p, _ in poses], [phen] * n_poses)
        ident = Identity(index, phen, outfit, texture, views, verts)
        self._cache[index] = ident
        while len(self._cache) > 2:
            self._cache.popitem(last=False)
        return ident

    # -- rendering -------------------------------------------------------------------------
    def _place(
        self, verts: np.ndarray, spec: ViewSpec, cam: Camera
    ) -> tuple[np.ndarray, np.ndarray]:
        """Camera-from-body rotation and translation framing ``verts`` as ``spec`` says."""
        R = rotation_x(-spec.pitch_deg) @ CAMERA_FROM_ANNY @ rotation_z(spec.yaw_deg)
        v = verts.astype(np.float64) @ R.T
        sel = v
        if spec.framing == "upper":
            coco, _ = _regressors()
            kp = coco @ verts.astype(np.float64)
            hip_z = kp[[11, 12], 2].mean()
            sel = v[verts[:, 2] > hip_z - 0.08]
        lo, hi = sel.min(0), sel.max(0)
        extent = max(hi[0] - lo[0], hi[1] - lo[1])
        depth = cam.focal * extent / (spec.fill * cam.height)
        tr = np.array([-(lo[0] + hi[0]) / 2, -(lo[1] + hi[1]) / 2, depth - (lo[2] + hi[2]) / 2])
        pv = cam.project(sel + tr)
        margin = (1.0 - (pv.max(0) - pv.min(0)) / np.array([cam.width, cam.height])).clip(0, 1) / 2
        want = np.array([cam.cx, cam.cy]) + spec.offset * margin * np.array([cam.width, cam.height])
        mid = (pv.min(0) + pv.max(0)) / 2 - want
        tr[:2] -= mid * depth / cam.focal
        return R, tr

    def render(self, ident: Identity, view: int) -> SyntheticSample:
        """Render view ``view`` of ``ident`` with all ground-truth maps.

        Steps: placement (primary person framed by :meth:`_place`, extras
        beside it), ray casting, ground-truth maps, shading and compositing,
        keypoints, texture visibility.
        """
        c = self.config
        spec = ident.views[view]
        verts = ident.vertices[view % len(ident.vertices)]
        cam = Camera.centred(c.size, c.size, spec.focal_factor)
        R, tr = self._place(verts, spec, cam)
        vc = verts.astype(np.float64) @ R.T + tr
        people = [(vc, ident.texture)] + _extra_people(spec, vc)
        hits = _cast_people([p[0] for p in people], cam)
        corr, vidx, instance, face_mask = _ground_truth_maps(hits)
        mask = hits.owner == 0
        image = _shade(spec, people, hits, corr.uv, cam, c)
        kps = _keypoints(verts, R, tr, cam, hits)
        geo = texel_geometry(c.texture_size)
        tvis = _texture_visibility(hits, mask, geo)
        body = FittedBody(
            pose=pose_to_matrices(spec.pose).astype(np.float32), phenotypes=dict(ident.phenotypes),
            rotation=R.astype(np.float32), translation=tr.astype(np.float32), camera=cam,
            vertices=vc.astype(np.float32), keypoints_2d=kps[0][:, :2].copy(), keypoint_error_px=0.0,
        )  # fmt: skip
        tex8 = to_uint8(ident.texture)
        return SyntheticSample(
            image=image, correspondence=corr, mask=mask, instance=instance, face_mask=face_mask,
            vertex_index=vidx, depth=hits.raster.depth, keypoints_coco=kps[0],
            keypoints_blazepose=kps[1], texture=tex8, texture_visibility=tvis,
            texture_mask=geo.mask, body=body, identity=ident.index, view=view,
            pose_kind=spec.pose_kind, framing=spec.framing, spec=spec,
        )  # fmt: skip

    def sample(self, identity: int, view: int) -> SyntheticSample:
        """Image ``view`` of identity ``identity`` (deterministic given the seed)."""
        if not 0 <= view < self.config.views_per_identity:
            raise ValueError(f"view must be in 0..{self.config.views_per_identity - 1}, got {view}")
        return self.render(self.identity(identity), view)

    def samples(self, n_identities: int, start: int = 0):
        """Yield all views of identities ``start .. start + n_identities - 1``, in order."""
        for i in range(start, start + n_identities):
            ident = self.identity(i)
            for k in range(self.config.views_per_identity):
                yield self.render(ident, k)


class SyntheticPeopleDataset(torch.utils.data.Dataset):
    """A streaming dataset of synthetic people (rendered on access, nothing on disk).

    Item ``i`` is view ``i % K`` of identity ``i // K`` (K = views per identity),
    deterministic given ``seed``; sequential access reuses each identity's
    texture and skinned poses (each DataLoader worker keeps its own cache).

    Args:
        length: number of items.
        config: :class:`SynthConfig`; ``seed``: master seed.

    Items are dicts of tensors (so the default collate works):
    ``image`` (3, H, W) float32 in [0, 1]; ``mask``, ``face_mask`` (1, H, W)
    float32 {0, 1}; ``part`` (H, W) int64 0..24; ``part_uv`` (2, H, W) and
    ``uv`` (2, H, W) float32 in [0, 1]; ``colour`` (3, H, W) float32 BodyMap code;
    ``instance`` (H, W) int64; ``vertex_index`` (H, W) int64 (-1 background);
    ``keypoints_coco`` (17, 3), ``keypoints_blazepose`` (33, 3) float32 (x, y, v);
    ``texture`` (3, T, T) float32 in [0, 1]; ``texture_visibility`` (1, T, T)
    float32; ``identity``, ``view`` int64.
    """

    def __init__(self, length: int, config: SynthConfig | None = None, seed: int = 0):
        if length < 1:
            raise ValueError(f"length must be >= 1, got {length}")
        self.length = int(length)
        self.config = (config or SynthConfig()).validate()
        self.seed = seed
        self._engine: SyntheticEngine | None = None

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        if not -self.length <= index < self.length:
            raise IndexError(f"index {index} out of range for {self.length} items")
        index %= self.length
        if self._engine is None:
            self._engine = SyntheticEngine(self.config, self.seed)
        k = self.config.views_per_identity
        s = self._engine.sample(index // k, index % k)
        return sample_to_tensors(s)


def sample_to_tensors(s: SyntheticSample) -> dict[str, torch.Tensor]:
    """A :class:`SyntheticSample` as the dict of tensors :class:`SyntheticPeopleDataset` yields."""
    c = s.correspondence

    def chw(a: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(a.transpose(2, 0, 1), np.float32))

    return {
        "image": chw(s.image.astype(np.float32) / 255.0),
        "mask": torch.from_numpy(s.mask[None].astype(np.float32)),
        "face_mask": torch.from_numpy(s.face_mask[None].astype(np.float32)),
        "part": torch.from_numpy(c.part.astype(np.int64)),
        "part_uv": chw(c.part_uv),
        "uv": chw(c.uv),
        "colour": chw(c.colour),
        "instance": torch.from_numpy(s.instance.astype(np.int64)),
        "vertex_index": torch.from_numpy(s.vertex_index.astype(np.int64)),
        "keypoints_coco": torch.from_numpy(s.keypoints_coco),
        "keypoints_blazepose": torch.from_numpy(s.keypoints_blazepose),
        "texture": chw(s.texture.astype(np.float32) / 255.0),
        "texture_visibility": torch.from_numpy(s.texture_visibility[None].astype(np.float32)),
        "identity": torch.tensor(s.identity),
        "view": torch.tensor(s.view),
    }


@dataclass
class SyntheticRender:
    """A synthetic photo of one posed anny body, with its ground truth.

    Attributes:
        image: (H, W, 3) uint8 RGB.
        body: the posed body as a :class:`~reroute.body.posed.FittedBody` (pose,
            phenotypes, camera-from-body rotation and translation, camera,
            camera-frame vertices, projected keypoints; ``keypoint_error_px`` 0).
        keypoints_2d: (23, 2) float32 anny's COCO-23 keypoints projected (pixels).
        keypoints_3d: (23, 3) float32 the same keypoints in the camera frame (metres).
        keypoint_names: the 23 names, in order (COCO 17 + toes and heels).
        correspondence: the rendered :class:`~reroute.correspondence.maps.Correspondence`
            (foreground = the body, no person-mask extension).
    """

    image: np.ndarray
    body: FittedBody
    keypoints_2d: np.ndarray
    keypoints_3d: np.ndarray
    keypoint_names: tuple[str, ...]
    correspondence: Correspondence

    @property
    def vertices(self) -> np.ndarray:
        """(13718, 3) float32 posed vertices in the camera frame (metres)."""
        return self.body.vertices

    @property
    def camera(self) -> Camera:
        return self.body.camera


def render_synthetic_person(
    pose: dict[str, tuple[float, float, float]] | None = None,
    *,
    size: int = 256,
    yaw_deg: float = 0.0,
    seed: int = 0,
    phenotypes: dict[str, float] | None = None,
    height_fraction: float = 0.8,
    supersample: int = 2,
) -> SyntheticRender:
    """Render one posed, clothed anny body in front of a centred camera.

    Args:
        pose: anny bone name (a key of :data:`reroute.body.fit.POSE_BONES`) ->
            axis-angle (radians) ``local-ref`` delta in world-aligned axes;
            ``None`` or ``{}`` is anny's reference A-pose.
        size: image side in pixels (square image, camera ``Camera.centred(size, size)``).
        yaw_deg: rotation of the body about its vertical axis (0 = facing the camera).
        seed: picks skin, shirt, trouser and hair colours and the stripe period;
            the render is deterministic given all arguments.
        phenotypes: anny phenotypes (gender, age, muscle, weight, height,
            proportions) in [0, 1]; missing ones take anny's defaults.
        height_fraction: the body's larger image extent as a fraction of ``size``.
        supersample: anti-aliasing factor of the colour image (the
            correspondence is rendered at ``size`` directly).
    Returns:
        :class:`SyntheticRender`.
    """
    if size < 16:
        raise ValueError(f"size must be at least 16 px, got {size}")
    t = get_template()
    P = pose_matrices(pose)
    phen = dict(phenotypes or {})
    verts = posed_vertices(P, phen).astype(np.float64)
    kw, kp_names = coco_regressor()
    kp = kw @ verts

    R = CAMERA_FROM_ANNY @ rotation_z(yaw_deg)
    cam = Camera.centred(size, size)
    v = verts @ R.T
    lo, hi = v.min(0), v.max(0)
    extent = max(hi[0] - lo[0], hi[1] - lo[1])
    depth = cam.focal * extent / (height_fraction * size)
    tr = np.array([-(lo[0] + hi[0]) / 2, -(lo[1] + hi[1]) / 2, depth - (lo[2] + hi[2]) / 2])
    # perspective makes the near side larger: recentre on the projected bounds once
    pv = cam.project(v + tr)
    mid = (pv.min(0) + pv.max(0)) / 2 - np.array([cam.cx, cam.cy])
    tr[:2] -= mid * depth / cam.focal
    vc = v + tr
    kpc = kp @ R.T + tr
    kp2d = cam.project(kpc).astype(np.float32)

    body = FittedBody(
        pose=P, phenotypes=phen, rotation=R.astype(np.float32), translation=tr.astype(np.float32),
        camera=cam, vertices=vc.astype(np.float32), keypoints_2d=kp2d, keypoint_error_px=0.0,
    )  # fmt: skip
    corr = render_correspondence(body)
    image = shade_fixture(vc, t, cam.resized(size * supersample, size * supersample), seed)
    if supersample > 1:
        import cv2

        image = cv2.resize(image, (size, size), interpolation=cv2.INTER_AREA)
    image8 = to_uint8(image)
    return SyntheticRender(image8, body, kp2d, kpc.astype(np.float32), kp_names, corr)
