"""Synthetic photos of a posed anny body with known ground truth.

:func:`render_synthetic_person` poses anny (axis-angle deltas on the bones of
:data:`reroute.fit.POSE_BONES`), places it in front of a centred camera, paints
it with a procedural clothing texture (skin, a striped shirt with short
sleeves, trousers, shoes, a hair cap and a simple face) and shades it
(Lambertian, light from the camera side plus ambient) over a light-grey
background. The render carries its truth: the posed body and camera, anny's
COCO-23 keypoints projected into the image and the rendered
:class:`~reroute.correspondence.Correspondence`.

The pictures look enough like a person for mediapipe's BlazePose to find and
track them, which makes them the test fixtures and demo examples of reroute:
they are our own renders, free of any licence question.

Placement (OpenCV camera axes, see :mod:`reroute.render`): anny is z-up, faces
-y and has the person's left at +x; the camera-from-body rotation maps anny's
x to the camera's x, anny's up (z) to the camera's -y and anny's forward (-y)
to the camera's -z, so the body faces the camera with its left on the image's
right. ``yaw_deg`` turns the body about its vertical axis first (positive =
towards the person's left, i.e. anticlockwise seen from above).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
import torch

from .body import get_template, load_anny
from .correspondence import Correspondence, render_correspondence
from .fit import POSE_BONES, FittedBody, axis_angle_to_matrix, posed_vertices
from .render import Camera, rasterize

__all__ = ["SyntheticRender", "render_synthetic_person", "pose_matrices", "EXAMPLE_POSES"]

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

_BACKGROUND = np.float32([0.86, 0.86, 0.85])
_SKIN_TONES = np.float32([[0.87, 0.70, 0.58], [0.76, 0.57, 0.44], [0.55, 0.38, 0.27],
                          [0.93, 0.78, 0.68]])  # fmt: skip
_SHIRTS = np.float32([[0.80, 0.16, 0.14], [0.13, 0.38, 0.72], [0.16, 0.55, 0.30],
                      [0.90, 0.62, 0.12]])  # fmt: skip
_TROUSERS = np.float32([[0.15, 0.20, 0.36], [0.22, 0.22, 0.24], [0.42, 0.33, 0.22]])
_HAIR = np.float32([[0.13, 0.09, 0.07], [0.30, 0.19, 0.10], [0.06, 0.06, 0.07]])


@dataclass
class SyntheticRender:
    """A synthetic photo of one posed anny body, with its ground truth.

    Attributes:
        image: (H, W, 3) uint8 RGB.
        body: the posed body as a :class:`~reroute.fit.FittedBody` (pose,
            phenotypes, camera-from-body rotation and translation, camera,
            camera-frame vertices, projected keypoints; ``keypoint_error_px`` 0).
        keypoints_2d: (23, 2) float32 anny's COCO-23 keypoints projected (pixels).
        keypoints_3d: (23, 3) float32 the same keypoints in the camera frame (metres).
        keypoint_names: the 23 names, in order (COCO 17 + toes and heels).
        correspondence: the rendered :class:`~reroute.correspondence.Correspondence`
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


def pose_matrices(pose: dict[str, tuple[float, float, float]] | None) -> np.ndarray:
    """anny ``local-ref`` pose (104, 4, 4) float32 from axis-angles on named bones.

    Raises:
        ValueError: for a bone that is not in :data:`reroute.fit.POSE_BONES`.
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


@functools.lru_cache(maxsize=1)
def _keypoint_regressor() -> tuple[np.ndarray, tuple[str, ...]]:
    import anny

    kr = anny.KeypointsRegressor.coco(load_anny())
    return kr.regression_weights.double().numpy(), tuple(kr.labels)


@functools.lru_cache(maxsize=1)
def _canonical_landmarks() -> dict[str, np.ndarray]:
    """Canonical (reference pose) positions of facial keypoints and body landmarks."""
    t = get_template()
    w, names = _keypoint_regressor()
    kp = w @ t.vertices.astype(np.float64)
    return {n: kp[i] for i, n in enumerate(names)}


def _vertex_normals(verts: np.ndarray, faces: np.ndarray) -> np.ndarray:
    tri = verts[faces]
    fn = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    vn = np.zeros_like(verts)
    for k in range(3):
        np.add.at(vn, faces[:, k], fn)
    return vn / np.maximum(np.linalg.norm(vn, axis=1, keepdims=True), 1e-12)


def _albedo(part: np.ndarray, canon: np.ndarray, part_uv: np.ndarray,
            rng: np.random.Generator) -> np.ndarray:  # fmt: skip
    """Procedural clothing colour (N, 3) from part index, canonical point and chart UV."""
    lm = _canonical_landmarks()
    skin = _SKIN_TONES[rng.integers(len(_SKIN_TONES))]
    shirt = _SHIRTS[rng.integers(len(_SHIRTS))]
    stripe = np.clip(shirt * 0.45 + 0.5, 0, 1)
    trousers = _TROUSERS[rng.integers(len(_TROUSERS))]
    hair = _HAIR[rng.integers(len(_HAIR))]
    shoes = np.float32([0.12, 0.10, 0.10])
    period = 0.045 + 0.02 * rng.random()

    x, y, z = canon[:, 0], canon[:, 1], canon[:, 2]
    out = np.tile(skin, (len(part), 1))
    torso = (part == 1) | (part == 2)
    upper_arm = (part >= 15) & (part <= 18)
    legs = (part >= 7) & (part <= 14)
    feet = (part == 5) | (part == 6)
    head = part >= 23
    hip_z = 0.5 * (lm["left_hip"][2] + lm["right_hip"][2])
    sh_x = abs(lm["left_shoulder"][0])
    # short sleeves: the shirt covers the upper arm up to a third of the way to the elbow
    el_x = abs(lm["left_elbow"][0])
    sleeve = upper_arm & (np.abs(x) < sh_x + 0.45 * (el_x - sh_x))
    shirt_px = (torso & (z > hip_z + 0.06)) | sleeve
    stripes = (np.floor(z / period) % 2 == 0) & shirt_px
    out[shirt_px] = shirt
    out[stripes] = stripe
    out[(torso & ~shirt_px) | legs] = trousers
    belt = torso & (np.abs(z - (hip_z + 0.06)) < 0.012)
    out[belt] = np.float32([0.25, 0.16, 0.08])
    out[feet] = shoes
    # trousers end a little above the ankle: below it, skin (a sock line) then shoes
    ank_z = lm["left_ankle"][2]
    out[legs & (z < ank_z + 0.04)] = np.float32([0.95, 0.95, 0.95])
    # hair: a cap on the top and back of the head
    nose, eye_l, eye_r = lm["nose"], lm["left_eye"], lm["right_eye"]
    eye_z = 0.5 * (eye_l[2] + eye_r[2])
    cap = head & ((z > eye_z + 0.045) | ((y > nose[1] + 0.11) & (z > eye_z - 0.07)))
    out[cap] = hair
    # face: eyes, brows and mouth, on the front of the head
    front = head & (y < nose[1] + 0.06)
    for eye in (eye_l, eye_r):
        d = np.hypot(x - eye[0], z - eye[2])
        out[front & (d < 0.011)] = np.float32([0.96, 0.96, 0.96])
        out[front & (d < 0.0065)] = np.float32([0.08, 0.06, 0.05])
        brow = front & (np.abs(x - eye[0]) < 0.018) & (np.abs(z - eye[2] - 0.02) < 0.004)
        out[brow] = hair
    mouth_z = nose[2] - 0.045
    mouth = front & (np.abs(x - nose[0]) < 0.022) & (np.abs(z - mouth_z) < 0.005)
    out[mouth] = np.float32([0.62, 0.25, 0.25])
    # a little cloth texture: low-amplitude pattern over the chart coordinates
    grain = 0.04 * np.sin(part_uv[:, 0] * 60.0) * np.sin(part_uv[:, 1] * 60.0)
    cloth = shirt_px | legs | (torso & ~shirt_px)
    out[cloth] *= (1.0 + grain[cloth])[:, None]
    return out


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
        pose: anny bone name (a key of :data:`reroute.fit.POSE_BONES`) ->
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
    kw, kp_names = _keypoint_regressor()
    kp = kw @ verts

    base = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, -1.0], [0.0, 1.0, 0.0]])
    a = np.deg2rad(yaw_deg)
    yaw = np.array([[np.cos(a), -np.sin(a), 0.0], [np.sin(a), np.cos(a), 0.0], [0.0, 0.0, 1.0]])
    R = base @ yaw
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
    image = _shade(vc, t, cam.resized(size * supersample, size * supersample), seed)
    if supersample > 1:
        import cv2

        image = cv2.resize(image, (size, size), interpolation=cv2.INTER_AREA)
    image8 = np.clip(np.rint(image * 255.0), 0, 255).astype(np.uint8)
    return SyntheticRender(image8, body, kp2d, kpc.astype(np.float32), kp_names, corr)


def _shade(vc: np.ndarray, t, cam: Camera, seed: int) -> np.ndarray:
    """(H, W, 3) float32 image in [0, 1]: albedo x Lambert over the background."""
    r = rasterize(vc, t.faces, cam)
    m = r.mask
    img = np.tile(_BACKGROUND, (cam.height, cam.width, 1))
    if not m.any():
        return img
    part = r.face_values(t.face_part)[m]
    canon = r.interpolate(t.vertices[t.faces])[m]
    part_uv = r.interpolate(t.face_part_uv)[m]
    rng = np.random.default_rng(seed)
    albedo = _albedo(part, canon, part_uv, rng)
    normals = r.interpolate(_vertex_normals(vc, t.faces)[t.faces])[m]
    normals /= np.maximum(np.linalg.norm(normals, axis=1, keepdims=True), 1e-12)
    ys, xs = np.nonzero(m)
    view = np.stack([(xs + 0.5 - cam.cx) / cam.focal, (ys + 0.5 - cam.cy) / cam.focal,
                     np.ones(len(xs))], 1)  # fmt: skip
    view /= np.linalg.norm(view, axis=1, keepdims=True)
    # normals facing away from the eye are flipped (back faces seen through gaps)
    flip = (normals * view).sum(1) > 0
    normals[flip] *= -1
    light = np.array([0.25, -0.45, -1.0])
    light /= np.linalg.norm(light)
    lambert = np.clip(normals @ light, 0.0, 1.0)
    shade = 0.38 + 0.62 * lambert
    img[m] = np.clip(albedo * shade[:, None], 0.0, 1.0)
    return img
