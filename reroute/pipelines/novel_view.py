"""Novel-view video: the fitted body, wearing its completed texture, under a turning camera.

From one photo (after the one-time body fit and texture completion) each frame
re-renders the fitted anny body with the camera orbiting it: the body turns by
``yaw`` about its own vertical axis through its centre, and tilts by
``elevation`` about the camera's horizontal axis (positive = seen from above),
which is the same as moving the camera around a still body. Each pixel takes
the completed texture's colour at its continuous UV (``grid_sample``,
``align_corners=False``), as in BodyMap's re-rendering (Ianina et al.,
CVPR 2022); with ``rerender="network"`` each frame is then re-rendered by the
neural re-renderer (:mod:`renderer`, supp. C.1.2) with that frame's rendered
correspondences, over the same flat background. Only the body surface is
drawn: hair and loose clothes beyond the fitted body are not part of the template.

Videos are H.264 MP4 (``yuv420p``) written with PyAV (FFmpeg's libx264,
shipped in PyAV's wheels), atomically.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from renderer import rerender_image, seen_map
from reroute.body.posed import FittedBody
from reroute.body.raster import Camera, MeshCaster, Rasterization
from reroute.body.template import get_template, split_maps
from reroute.correspondence.maps import Correspondence
from reroute.io.images import to_uint8
from reroute.pipelines.rerendering import DEFAULT_RERENDERING, load_rerendering
from reroute.uv.texture import UVTexture, sample_masked, uv_layout_mask

__all__ = [
    "NovelViewConfig",
    "NovelViewVideo",
    "orbit_transform",
    "orbit_vertices",
    "render_novel_views",
    "frame_strip",
    "MAX_FRAMES",
]

#: Largest number of frames :func:`render_novel_views` accepts.
MAX_FRAMES = 360


@dataclass
class NovelViewConfig:
    """What to render.

    Attributes:
        frames: number of frames N (1..:data:`MAX_FRAMES`).
        turn_deg: total turn of the camera around the person, degrees
            (-360..360; frame i is at ``turn_deg * i / N``, so a full turn
            does not repeat its first frame).
        elevation_deg: camera elevation, degrees (-60..60; positive = from above).
        size: longer side of the frames, pixels (>= 32; rounded down to even
            numbers for H.264). The frames keep the photo's aspect ratio.
        background: RGB in [0, 1] behind the body.
    """

    frames: int = 72
    turn_deg: float = 360.0
    elevation_deg: float = 0.0
    size: int = 256
    background: tuple[float, float, float] = (1.0, 1.0, 1.0)

    def check(self) -> None:
        """Raise ValueError with one sentence when a field is out of range."""
        if not 1 <= int(self.frames) <= MAX_FRAMES:
            raise ValueError(f"frames must be between 1 and {MAX_FRAMES}, got {self.frames}")
        if not -360.0 <= float(self.turn_deg) <= 360.0:
            raise ValueError(
                f"turn angle must be between -360 and 360 degrees, got {float(self.turn_deg):g}"
            )
        if not -60.0 <= float(self.elevation_deg) <= 60.0:
            raise ValueError(
                f"elevation must be between -60 and 60 degrees, got {float(self.elevation_deg):g}"
            )
        if int(self.size) < 32:
            raise ValueError(f"resolution must be at least 32 px, got {self.size}")


@dataclass
class NovelViewVideo:
    """Frames of a novel-view sequence.

    Attributes:
        frames: (N, H, W, 3) uint8 RGB.
        yaw_deg: (N,) float32 turn of each frame, degrees.
        masks: (N, H, W) bool, where the body covers each frame.
        timings: seconds: ``render`` (rasterise + texture lookup), ``rerender``
            (the neural re-renderer, 0 when off), total.
        rerendered: whether the frames come from the neural re-renderer.
    """

    frames: np.ndarray
    yaw_deg: np.ndarray
    masks: np.ndarray
    timings: dict[str, float] = field(default_factory=dict)
    rerendered: bool = False


def _rotation(axis: np.ndarray, angle: float) -> np.ndarray:
    """Rotation matrix (3, 3) about a unit axis by ``angle`` radians (Rodrigues)."""
    a = np.asarray(axis, np.float64)
    a = a / np.linalg.norm(a)
    K = np.array([[0, -a[2], a[1]], [a[2], 0, -a[0]], [-a[1], a[0], 0]])
    return np.eye(3) + math.sin(angle) * K + (1 - math.cos(angle)) * (K @ K)


def orbit_transform(body: FittedBody, yaw_deg: float, elevation_deg: float = 0.0
                    ) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """The rigid motion of :func:`orbit_vertices`: ``v' = R @ (v - c) + c``.

    Returns:
        R: (3, 3) float64 rotation; c: (3,) float64 centre of the body's
        bounding box (camera frame, metres).
    """
    v = np.asarray(body.vertices, np.float64)
    c = (v.min(0) + v.max(0)) / 2.0
    up = np.asarray(body.rotation, np.float64) @ np.array([0.0, 0.0, 1.0])
    R = _rotation(np.array([1.0, 0.0, 0.0]), math.radians(elevation_deg)) @ _rotation(
        up, math.radians(yaw_deg)
    )
    return R, c


def orbit_vertices(body: FittedBody, yaw_deg: float, elevation_deg: float = 0.0) -> np.ndarray:
    """The fitted body's camera-frame vertices as seen from an orbiting camera.

    Args:
        body: the :class:`~reroute.body.posed.FittedBody` (camera-frame vertices, metres).
        yaw_deg: turn about the body's own up axis (``rotation @ z``) through the
            centre of its bounding box, degrees.
        elevation_deg: then a tilt about the camera's x axis through the same
            centre, degrees; positive brings the head towards the camera (the
            camera looks from above).
    Returns:
        (V, 3) float64 camera-frame vertices (metres).
    """
    R, c = orbit_transform(body, yaw_deg, elevation_deg)
    return (np.asarray(body.vertices, np.float64) - c) @ R.T + c


def _frame_camera(camera: Camera, size: int) -> Camera:
    s = size / max(camera.width, camera.height)
    w = max(2, int(round(camera.width * s)) // 2 * 2)
    h = max(2, int(round(camera.height * s)) // 2 * 2)
    return camera.resized(w, h)


def _frame_correspondence(r: Rasterization) -> Correspondence:
    """One frame's (H, W) :class:`~reroute.correspondence.maps.Correspondence`, from its
    rasterization: the template's part, per-part UV, continuous UV and colour code on the
    body; ``mask`` = ``body_mask`` = the body itself (no person mask to extend it to)."""
    t = get_template()
    part = r.face_values(t.face_part.astype(np.uint8))
    return Correspondence(part, *split_maps(r.interpolate(t.face_maps)), r.mask, r.mask)


def render_novel_views(body: FittedBody, texture: UVTexture | np.ndarray,
                       config: NovelViewConfig | None = None,
                       progress: Callable[[float, str], None] | None = None, *,
                       rerender: str = DEFAULT_RERENDERING,
                       rerender_checkpoint: str | None = None,
                       observed: np.ndarray | None = None) -> NovelViewVideo:  # fmt: skip
    """Render the textured body from N cameras turning around it.

    Args:
        body: the fitted body of the photo (its camera, resized to ``config.size``,
            is the first frame's camera).
        texture: the completed continuous-UV texture, :class:`~reroute.uv.texture.UVTexture`
            or (T, T, 3) float32 in [0, 1].
        config: :class:`NovelViewConfig` (defaults: 72 frames, 360 degrees, 256 px).
        progress: ``progress(fraction, stage)`` callback, called every few frames.
        rerender: ``"none"`` or ``"network"``: re-render every frame with the
            neural re-renderer, from the frame's rendered correspondences, over
            the flat ``config.background``.
        rerender_checkpoint: the re-renderer checkpoint (default: the committed one).
        observed: (T', T') float32 in [0, 1], the partial (lifted) texture's
            visibility, for a re-renderer that takes a seen map
            (:func:`renderer.network.seen_map`); None counts every texel as seen.
    Returns:
        :class:`NovelViewVideo` with frames (N, H, W, 3) uint8 (``rerendered`` says which).
    Raises:
        ValueError: a config field out of range.
        InputError: unknown ``rerender``, or a missing or foreign re-renderer
            checkpoint (checked before any frame is rendered).
    """
    cfg = config or NovelViewConfig()
    cfg.check()
    model = load_rerendering(rerender, rerender_checkpoint)
    t0 = time.perf_counter()
    tpl = get_template()
    tex = texture.pixels if isinstance(texture, UVTexture) else np.asarray(texture, np.float32)
    valid = uv_layout_mask(tex.shape[0]) if tex.shape[0] == tex.shape[1] else None
    if model is not None and not isinstance(texture, UVTexture):
        texture = UVTexture(tex, np.ones(tex.shape[:2], np.float32))
    cam = _frame_camera(body.camera, int(cfg.size))
    n = int(cfg.frames)
    yaws = np.asarray([cfg.turn_deg * i / n for i in range(n)], np.float32)
    frames = np.empty((n, cam.height, cam.width, 3), np.uint8)
    masks = np.empty((n, cam.height, cam.width), bool)
    bg = np.asarray(cfg.background, np.float32)
    bg8 = to_uint8(np.broadcast_to(bg, (cam.height, cam.width, 3)))
    every = max(1, n // 12)
    rerender_s = 0.0
    caster = MeshCaster(body.vertices, tpl.faces)  # one BVH; each frame turns the rays
    for i, yaw in enumerate(yaws):
        if progress is not None and i % every == 0:
            progress(i / n, f"rendering frame {i + 1} of {n}")
        r = caster.render(cam, *orbit_transform(body, float(yaw), cfg.elevation_deg))
        img = np.broadcast_to(bg, (cam.height, cam.width, 3)).copy()
        # seam-free: only island texels are sampled (see reroute.uv.texture.sample_masked)
        img[r.mask] = sample_masked(tex, r.interpolate(tpl.face_uv)[r.mask], valid)
        frames[i] = to_uint8(img)
        masks[i] = r.mask
        if model is not None:
            t = time.perf_counter()
            fc = _frame_correspondence(r)
            seen = None
            if model.config.seen_input:
                seen = fc.mask.astype(np.float32) if observed is None else seen_map(observed, fc)
            frames[i] = rerender_image(model, frames[i], bg8, fc, texture, seen)
            rerender_s += time.perf_counter() - t
    total = time.perf_counter() - t0
    timings = {"render": total - rerender_s, "rerender": rerender_s, "total": total}
    return NovelViewVideo(frames, yaws, masks, timings, rerendered=model is not None)


# ------------------------------------------------------------------ video files


def frame_strip(frames: np.ndarray, count: int = 8, height: int = 128) -> np.ndarray:
    """``count`` evenly spaced frames side by side, each ``height`` px tall, (h, W, 3) uint8."""
    import cv2

    frames = np.asarray(frames)
    n = len(frames)
    idx = np.unique(np.linspace(0, n - 1, min(count, n)).round().astype(int))
    h, w = frames.shape[1:3]
    tw = max(1, int(round(w * height / h)))
    tiles = [cv2.resize(frames[i], (tw, height), interpolation=cv2.INTER_AREA) for i in idx]
    return np.concatenate(tiles, axis=1)
