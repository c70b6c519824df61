"""The fitted body and the posing helpers shared by the fit and the synthetic engine.

:class:`FittedBody` is what the fit (:mod:`reroute.body.fit`) hands to every
later stage: anny's pose deltas and phenotypes, the camera-from-body rigid
transform, the camera and the posed vertices in the camera frame. It lives
here, apart from the optimiser, so that rendering, warping and the synthetic
engine depend on the data type and not on the fit.

Frames (see :mod:`reroute.body.template`): anny is z-up, metres, faces -y, the
person's left at +x; cameras use OpenCV axes (x right, y down, z forward), see
:mod:`reroute.body.raster`. :data:`CAMERA_FROM_ANNY` turns a body to face the
camera.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from reroute.body.raster import Camera
from reroute.body.template import load_anny

__all__ = ["FittedBody", "axis_angle_to_matrix", "posed_vertices", "vertex_normals", "CAMERA_FROM_ANNY", "rotation_x", "rotation_z"]


@dataclass
class FittedBody:
    """A posed anny body placed in front of a camera.

    Attributes:
        pose: (104, 4, 4) float32 anny ``local-ref`` pose deltas (identity = A-pose).
        phenotypes: anny phenotype values in [0, 1] by name.
        rotation: (3, 3) float32, camera-from-body rotation.
        translation: (3,) float32 metres; camera point = ``rotation @ p + translation``
            for an anny-frame point p.
        camera: the :class:`~reroute.body.raster.Camera` the fit used.
        vertices: (13718, 3) float32 posed vertices in the camera frame (metres).
        keypoints_2d: (23, 2) float32 anny's COCO-23 keypoints projected (pixels).
        keypoint_error_px: mean 2-D distance to the visible BlazePose landmarks.
        losses: final value of each loss term.
        steps: Adam steps the fit took over all its stages (0 for a body that
            was not fitted, e.g. a synthetic render's truth).
    """

    pose: np.ndarray
    phenotypes: dict[str, float]
    rotation: np.ndarray
    translation: np.ndarray
    camera: Camera
    vertices: np.ndarray
    keypoints_2d: np.ndarray
    keypoint_error_px: float
    losses: dict[str, float] = field(default_factory=dict)
    steps: int = 0

    def resized(self, width: int, height: int) -> FittedBody:
        """The same body for the photo resized to ``width x height``."""
        cam = self.camera.resized(width, height)
        s = np.float32([width / self.camera.width, height / self.camera.height])
        return FittedBody(self.pose, self.phenotypes, self.rotation, self.translation, cam,
                          self.vertices, self.keypoints_2d * s, self.keypoint_error_px,
                          self.losses, self.steps)  # fmt: skip


def axis_angle_to_matrix(aa: torch.Tensor) -> torch.Tensor:
    """Rodrigues' formula: axis-angle (..., 3) radians -> rotation matrices (..., 3, 3)."""
    theta = aa.norm(dim=-1, keepdim=True).clamp_min(1e-8)
    k = aa / theta
    kx, ky, kz = k.unbind(-1)
    zero = torch.zeros_like(kx)
    K = torch.stack([zero, -kz, ky, kz, zero, -kx, -ky, kx, zero], -1).reshape(aa.shape + (3,))
    eye = torch.eye(3, dtype=aa.dtype, device=aa.device).expand_as(K)
    s, c = torch.sin(theta)[..., None], torch.cos(theta)[..., None]
    return eye + s * K + (1 - c) * (K @ K)


def posed_vertices(fitted_pose: np.ndarray, phenotypes: dict[str, float]) -> np.ndarray:
    """All anny vertices (13718, 3) float32 in anny's frame for a pose (104, 4, 4) and phenotypes."""
    m = load_anny()
    with torch.no_grad():
        pk = {k: torch.tensor([v], dtype=torch.float64) for k, v in phenotypes.items()}
        P = torch.as_tensor(fitted_pose, dtype=torch.float64)[None]
        out = m(pose_parameters=P, phenotype_kwargs=pk or None)
    return out["vertices"][0].float().numpy()


def vertex_normals(verts: np.ndarray, faces: np.ndarray) -> np.ndarray:
    tri = verts[faces]
    fn = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    flat = faces.ravel()
    vn = np.stack([np.bincount(flat, np.repeat(fn[:, c], 3), len(verts)) for c in range(3)], 1)
    return vn / np.maximum(np.linalg.norm(vn, axis=1, keepdims=True), 1e-12)


#: Camera-from-anny rotation of a body facing the camera (OpenCV camera axes):
#: anny's x -> camera x, anny's up (z) -> camera -y, anny's forward (-y) -> camera -z.
CAMERA_FROM_ANNY = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, -1.0], [0.0, 1.0, 0.0]])


def rotation_x(deg: float) -> np.ndarray:
    """(3, 3) float64 rotation by ``deg`` degrees about the x axis (right-handed)."""
    a = np.deg2rad(deg)
    return np.array([[1, 0, 0], [0, np.cos(a), -np.sin(a)], [0, np.sin(a), np.cos(a)]])


def rotation_z(deg: float) -> np.ndarray:
    """(3, 3) float64 rotation by ``deg`` degrees about the z axis (anny's up; right-handed)."""
    a = np.deg2rad(deg)
    return np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1.0]])
