"""Rasterisation of the body mesh: per-pixel triangle id and barycentrics.

Chosen by measurement (``../shared/notes``): warp-lang's BVH ray queries
(``wp.mesh_query_ray``) on the CPU -- exact, pure pip (already an anny
dependency), ~85 ms for a 512 px anny render; the first kernel compile (~7 s)
is cached under ``~/.cache/warp``. Barycentrics are recomputed in float64 from
the hit point so they do not depend on warp's (u, v) convention.

Camera convention (OpenCV pinhole): camera at the origin, x right, y down,
z forward (into the scene), pixel ``(x, y)`` has its centre at ``(x + 0.5, y + 0.5)``.
"""

from __future__ import annotations

import functools
import threading
from dataclasses import dataclass, replace

import numpy as np

from reroute.body.native import quiet_native

__all__ = [
    "Camera",
    "MeshCaster",
    "Rasterization",
    "rasterize",
    "rasterize_layout",
    "ray_kernel",
]

_WARP_LOCK = threading.Lock()


@dataclass(frozen=True)
class Camera:
    """Pinhole camera, OpenCV convention.

    Attributes:
        focal: focal length in pixels (same for x and y).
        cx, cy: principal point in pixels (``width / 2``, ``height / 2`` for a centred one).
        width, height: image size in pixels.
    """

    focal: float
    cx: float
    cy: float
    width: int
    height: int

    @staticmethod
    def centred(width: int, height: int, focal_factor: float = 1.5) -> Camera:
        """A camera with the principal point at the centre and ``focal = factor * max(W, H)``."""
        return Camera(focal_factor * max(width, height), width / 2.0, height / 2.0, width, height)

    def resized(self, width: int, height: int) -> Camera:
        """The same camera for an image resized to ``width x height`` (pixels scale, FOV kept)."""
        sx, sy = width / self.width, height / self.height
        return replace(self, focal=self.focal * (sx + sy) / 2, cx=self.cx * sx, cy=self.cy * sy,
                       width=width, height=height)  # fmt: skip

    def project(self, points):
        """Camera-frame points (..., 3) metres -> pixel coordinates (..., 2) (x, y).

        Works on numpy arrays and torch tensors (differentiable); z must be > 0.
        """
        z = points[..., 2:3]
        xy = points[..., :2] / z * self.focal
        if isinstance(xy, np.ndarray):
            return xy + np.array([self.cx, self.cy], dtype=xy.dtype)
        import torch

        return xy + torch.tensor([self.cx, self.cy], dtype=xy.dtype, device=xy.device)


@dataclass
class Rasterization:
    """Which triangle each pixel sees, and where on it.

    Attributes:
        face: (H, W) int64 triangle index, -1 where no triangle is hit.
        bary: (H, W, 3) float32 barycentric weights of the triangle's corners
            (sum 1 on hits, 0 elsewhere).
        depth: (H, W) float32 distance along the ray (metres for a camera
            render), ``inf`` where nothing is hit.
    """

    face: np.ndarray
    bary: np.ndarray
    depth: np.ndarray

    @property
    def mask(self) -> np.ndarray:
        """(H, W) bool, True where a triangle is hit."""
        return self.face >= 0

    def interpolate(self, corner_values: np.ndarray) -> np.ndarray:
        """Blend per-face-corner attributes with the barycentrics.

        Args:
            corner_values: (F, 3, C) or (F, 3) attribute per face corner
                (per-corner storage keeps UV seams from cracking).
        Returns:
            (H, W, C) float32 (or (H, W)), 0 where no triangle is hit.
        """
        squeeze = corner_values.ndim == 2
        cv = corner_values[..., None] if squeeze else corner_values
        out = np.zeros(self.face.shape + cv.shape[-1:], np.float32)
        m = self.mask
        vals = cv[self.face[m]]  # (n, 3, C)
        out[m] = np.einsum("nk,nkc->nc", self.bary[m], vals)
        return out[..., 0] if squeeze else out

    def face_values(self, face_values: np.ndarray, background=0) -> np.ndarray:
        """Per-face values (F, ...) -> per-pixel (H, W, ...), ``background`` where no hit."""
        out = np.full(self.face.shape + face_values.shape[1:], background, face_values.dtype)
        m = self.mask
        out[m] = face_values[self.face[m]]
        return out


@functools.lru_cache(maxsize=1)
def ray_kernel():
    """The compiled warp-lang ray-cast kernel ``(wp, cast)``, built once (thread-safe).

    Shared by :func:`rasterize` and the synthetic engine, which casts its own rays.
    """
    import warp as wp

    wp.config.quiet = True
    with quiet_native():  # warp's banner and CUDA warning (printed from C)
        wp.init()

    @wp.kernel
    def cast(
        mesh: wp.uint64,
        origins: wp.array(dtype=wp.vec3),
        dirs: wp.array(dtype=wp.vec3),
        faces: wp.array(dtype=wp.int32),
        ts: wp.array(dtype=wp.float32),
    ):
        tid = wp.tid()
        q = wp.mesh_query_ray(mesh, origins[tid], dirs[tid], 1.0e6)
        if q.result:
            faces[tid] = q.face
            ts[tid] = q.t
        else:
            faces[tid] = -1
            ts[tid] = 1.0e30

    return wp, cast


def _warp_mesh(points: np.ndarray, faces: np.ndarray):
    """warp's BVH of a triangle mesh (the caller holds ``_WARP_LOCK``)."""
    wp, _ = ray_kernel()
    return wp.Mesh(
        points=wp.array(np.ascontiguousarray(points, np.float32), dtype=wp.vec3, device="cpu"),
        indices=wp.array(np.ascontiguousarray(faces.reshape(-1), np.int32), dtype=wp.int32,
                         device="cpu"),
    )  # fmt: skip


def _launch(mesh, origins: np.ndarray, dirs: np.ndarray):
    """Closest hits in ``mesh`` (the caller holds ``_WARP_LOCK``): face (N,) int64, t (N,) float64."""
    wp, cast = ray_kernel()
    n = len(origins)
    o = wp.array(np.ascontiguousarray(origins, np.float32), dtype=wp.vec3, device="cpu")
    d = wp.array(np.ascontiguousarray(dirs, np.float32), dtype=wp.vec3, device="cpu")
    f = wp.empty(n, dtype=wp.int32, device="cpu")
    t = wp.empty(n, dtype=wp.float32, device="cpu")
    with quiet_native():  # the first launch reports the module load from C
        wp.launch(cast, dim=n, inputs=[mesh.id, o, d, f, t], device="cpu")
    return f.numpy().astype(np.int64), t.numpy().astype(np.float64)


def _cast_rays(points: np.ndarray, faces: np.ndarray, origins: np.ndarray, dirs: np.ndarray):
    """Closest hit of each ray: face (N,) int64 (-1 = miss) and t (N,) float64."""
    with _WARP_LOCK:
        return _launch(_warp_mesh(points, faces), origins, dirs)


def _barycentrics(p: np.ndarray, tri: np.ndarray) -> np.ndarray:
    """Barycentric weights (N, 3) of points p (N, D) in triangles tri (N, 3, D)."""
    a, b, c = tri[:, 0], tri[:, 1], tri[:, 2]
    v0, v1, v2 = b - a, c - a, p - a
    d00 = (v0 * v0).sum(1)
    d01 = (v0 * v1).sum(1)
    d11 = (v1 * v1).sum(1)
    d20 = (v2 * v0).sum(1)
    d21 = (v2 * v1).sum(1)
    den = d00 * d11 - d01 * d01
    den = np.where(np.abs(den) < 1e-30, 1e-30, den)
    w1 = (d11 * d20 - d01 * d21) / den
    w2 = (d00 * d21 - d01 * d20) / den
    w = np.stack([1.0 - w1 - w2, w1, w2], 1)
    w = np.clip(w, 0.0, 1.0)
    return w / w.sum(1, keepdims=True)


def _check_mesh(vertices: np.ndarray, faces: np.ndarray) -> None:
    if vertices.ndim != 2 or vertices.shape[1] != 3:
        raise ValueError(f"vertices: expected shape (V, 3), got {tuple(vertices.shape)}")
    if faces.ndim != 2 or faces.shape[1] != 3:
        raise ValueError(f"faces: expected shape (F, 3), got {tuple(faces.shape)}")
    if faces.size and (faces.min() < 0 or faces.max() >= len(vertices)):
        # warp's BVH build hangs on out-of-range indices: refuse them here
        raise ValueError(f"faces index vertices 0..{faces.max()}, but only {len(vertices)} given")


def rasterize(vertices: np.ndarray, faces: np.ndarray, camera: Camera) -> Rasterization:
    """Perspective render of a triangle mesh: triangle id, barycentrics and depth per pixel.

    Args:
        vertices: (V, 3) float, camera-frame positions in metres (z forward, > 0 in view).
        faces: (F, 3) int triangle vertex indices.
        camera: the pinhole :class:`Camera`; output is ``camera.height x camera.width``.
    Returns:
        :class:`Rasterization` with depth = distance along each ray (metres).
    Raises:
        ValueError: on malformed shapes or out-of-range face indices.
    """
    vertices = np.asarray(vertices, np.float64)
    faces = np.asarray(faces, np.int64)
    _check_mesh(vertices, faces)
    box = _ray_box(vertices, camera)
    dirs = _camera_rays(camera, box)
    origins = np.zeros_like(dirs)
    face, t = _cast_rays(vertices, faces, origins, dirs) if len(dirs) else _no_hits()
    return _paste(_finish(face, t, origins, dirs, vertices, faces, _box_shape(box)), box, camera)


def _ray_box(vertices: np.ndarray, camera: Camera) -> tuple[int, int, int, int]:
    """Pixel box (x0, y0, x1, y1) outside which no ray can hit the mesh ``vertices`` (V, 3).

    When every vertex lies in front of the camera, each triangle's image lies
    inside the bounding box of the vertices' projections (1 px margin);
    otherwise the whole image.
    """
    w, h = camera.width, camera.height
    if not len(vertices) or (vertices[:, 2] <= 1e-6).any():
        return 0, 0, w, h
    xy = vertices[:, :2] / vertices[:, 2:] * camera.focal + [camera.cx, camera.cy]
    (bx0, by0), (bx1, by1) = np.floor(xy.min(0)) - 1, np.ceil(xy.max(0)) + 1
    x0, y0 = int(np.clip(bx0, 0, w)), int(np.clip(by0, 0, h))
    return x0, y0, int(np.clip(bx1, x0, w)), int(np.clip(by1, y0, h))


def _box_shape(box: tuple[int, int, int, int]) -> tuple[int, int]:
    return box[3] - box[1], box[2] - box[0]


def _camera_rays(camera: Camera, box: tuple[int, int, int, int]) -> np.ndarray:
    """(N, 3) float64 unit ray directions (camera frame) through the pixel centres of ``box``."""
    x0, y0, x1, y1 = box
    ys, xs = np.mgrid[y0:y1, x0:x1]
    dirs = np.stack([(xs + 0.5 - camera.cx) / camera.focal, (ys + 0.5 - camera.cy) / camera.focal,
                     np.ones_like(xs, np.float64)], -1).reshape(-1, 3)  # fmt: skip
    return dirs / np.linalg.norm(dirs, axis=1, keepdims=True)


def _no_hits() -> tuple[np.ndarray, np.ndarray]:
    return np.full(0, -1, np.int64), np.zeros(0)


def _paste(part: Rasterization, box: tuple[int, int, int, int], camera: Camera) -> Rasterization:
    """The box's :class:`Rasterization` placed in a full ``camera``-sized one (misses elsewhere)."""
    w, h = camera.width, camera.height
    if box == (0, 0, w, h):
        return part
    x0, y0, x1, y1 = box
    out = Rasterization(np.full((h, w), -1, np.int64), np.zeros((h, w, 3), np.float32),
                        np.full((h, w), np.inf, np.float32))  # fmt: skip
    out.face[y0:y1, x0:x1] = part.face
    out.bary[y0:y1, x0:x1] = part.bary
    out.depth[y0:y1, x0:x1] = part.depth
    return out


class MeshCaster:
    """A triangle mesh held in warp's BVH, rendered many times as it moves rigidly.

    Turning the mesh is the same as turning the rays the other way, so the
    BVH is built once (about 13 ms for anny on the 2-core CPU) instead of per
    render; results equal :func:`rasterize` of the moved vertices.

    Args:
        vertices: (V, 3) float positions in metres (camera frame at rest).
        faces: (F, 3) int triangle vertex indices.
    Raises:
        ValueError: on malformed shapes or out-of-range face indices.
    """

    def __init__(self, vertices: np.ndarray, faces: np.ndarray):
        self.vertices = np.asarray(vertices, np.float64)
        self.faces = np.asarray(faces, np.int64)
        _check_mesh(self.vertices, self.faces)
        with _WARP_LOCK:
            self._mesh = _warp_mesh(self.vertices, self.faces)

    def render(self, camera: Camera, rotation: np.ndarray | None = None,
               centre: np.ndarray | None = None) -> Rasterization:  # fmt: skip
        """:func:`rasterize` of the mesh moved to ``rotation @ (v - centre) + centre``.

        Args:
            camera: the pinhole :class:`Camera`.
            rotation: (3, 3) rotation matrix (identity when ``None``).
            centre: (3,) point the rotation turns about, metres (origin when ``None``).
        Returns:
            :class:`Rasterization` of shape ``(camera.height, camera.width)``.
        """
        R = np.eye(3) if rotation is None else np.asarray(rotation, np.float64)
        c = np.zeros(3) if centre is None else np.asarray(centre, np.float64)
        box = _ray_box((self.vertices - c) @ R.T + c, camera)
        dirs = _camera_rays(camera, box)
        # the rays in the mesh's own frame: p_mesh = R^T (p - c) + c (rows: x @ R)
        origins = np.broadcast_to(-c @ R + c, dirs.shape)
        dirs = dirs @ R
        if len(dirs):
            with _WARP_LOCK:
                face, t = _launch(self._mesh, origins, dirs)
        else:
            face, t = _no_hits()
        part = _finish(face, t, origins, dirs, self.vertices, self.faces, _box_shape(box))
        return _paste(part, box, camera)


def _finish(face, t, origins, dirs, vertices, faces, shape) -> Rasterization:
    hit = face >= 0
    bary = np.zeros((len(face), 3), np.float32)
    p = origins[hit] + t[hit, None] * dirs[hit]
    bary[hit] = _barycentrics(p, vertices[faces[face[hit]]])
    depth = np.where(hit, t, np.inf).astype(np.float32)
    return Rasterization(face.reshape(shape), bary.reshape(shape + (3,)), depth.reshape(shape))


def rasterize_layout(corner_coords: np.ndarray, size: int | tuple[int, int]) -> Rasterization:
    """Rasterise a 2-D layout given per face corner, e.g. a UV atlas.

    Args:
        corner_coords: (F, 3, 2) float coordinates in [0, 1] per face corner;
            x along columns, y along rows (row 0 at the top), image convention.
        size: output size N (square) or (H, W).
    Returns:
        :class:`Rasterization` of shape (H, W): which face covers each texel
        centre and its barycentrics; where islands overlap the first hit wins.
    """
    h, w = (size, size) if isinstance(size, int) else size
    cc = np.asarray(corner_coords, np.float64)
    if cc.ndim != 3 or cc.shape[1:] != (3, 2):
        raise ValueError(f"corner_coords: expected shape (F, 3, 2), got {tuple(cc.shape)}")
    nf = len(cc)
    pts = np.concatenate([cc.reshape(-1, 2) * [w, h], np.zeros((nf * 3, 1))], 1)
    faces = np.arange(nf * 3, dtype=np.int64).reshape(nf, 3)
    ys, xs = np.mgrid[0:h, 0:w]
    origins = np.stack([xs + 0.5, ys + 0.5, -np.ones_like(xs, np.float64)], -1).reshape(-1, 3)
    dirs = np.tile([0.0, 0.0, 1.0], (len(origins), 1))
    face, t = _cast_rays(pts, faces, origins, dirs)
    return _finish(face, t, origins, dirs, pts, faces, (h, w))
