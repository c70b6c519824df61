"""Video files: H.264 MP4 writing and probing with PyAV.

:func:`write_mp4` encodes ``(N, H, W, 3)`` uint8 RGB frames as H.264
(``yuv420p``, ``+faststart``, plays in browsers) and writes the file
atomically (:func:`reroute.io.files.atomic_path`); :func:`probe_video` reads
back what a file holds.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from reroute.io.files import atomic_path

__all__ = ["VideoInfo", "write_mp4", "probe_video"]


@dataclass
class VideoInfo:
    """What a video file holds (read back with PyAV).

    Attributes:
        codec: the video stream's codec name (``"h264"`` for H.264).
        frames: number of decoded frames.
        width, height: frame size in pixels.
        fps: average frame rate.
        pix_fmt: pixel format of the stream (``"yuv420p"`` plays in browsers).
    """

    codec: str
    frames: int
    width: int
    height: int
    fps: float
    pix_fmt: str


def write_mp4(frames: np.ndarray, path: str | os.PathLike[str], fps: float = 24.0,
              crf: int = 20) -> Path:  # fmt: skip
    """Encode frames as an H.264 MP4 (libx264, yuv420p, faststart), atomically.

    Args:
        frames: (N, H, W, 3) uint8 RGB, N >= 1, H and W even.
        path: output file; written to a temporary file beside it, then renamed.
        fps: frame rate (1..120).
        crf: x264 constant rate factor (0 = lossless .. 51; 18-23 look clean).
    Returns:
        The path written.
    Raises:
        ValueError: bad shape, odd size or frame rate out of range.
    """
    import av

    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8 or not len(frames):
        raise ValueError(
            f"frames: expected (N, H, W, 3) uint8 with N >= 1, got {frames.shape} {frames.dtype}"
        )
    n, h, w, _ = frames.shape
    if h % 2 or w % 2:
        raise ValueError(f"H.264 (yuv420p) needs even frame sizes, got {w}x{h}")
    if not 1 <= fps <= 120:
        raise ValueError(f"fps must be between 1 and 120, got {fps}")
    from fractions import Fraction

    path = Path(path)
    with (
        atomic_path(path) as tmp,
        av.open(str(tmp), mode="w", format="mp4", options={"movflags": "+faststart"}) as out,
    ):
        stream = out.add_stream("libx264", rate=Fraction(fps).limit_denominator(1000))
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        stream.options = {"crf": str(int(crf)), "preset": "veryfast"}
        for f in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(f, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path


def probe_video(path: str | os.PathLike[str]) -> VideoInfo:
    """Decode a video with PyAV and report its codec, frame count and size.

    Raises:
        ValueError: the file has no video stream.
    """
    import av

    with av.open(str(path)) as c:
        if not c.streams.video:
            raise ValueError(f"{path} has no video stream")
        s = c.streams.video[0]
        codec, pix_fmt = s.codec_context.name, s.codec_context.pix_fmt or ""
        fps = float(s.average_rate) if s.average_rate else 0.0
        n = 0
        w = h = 0
        for frame in c.decode(s):
            n += 1
            w, h = frame.width, frame.height
    return VideoInfo(codec, n, w, h, fps, pix_fmt)
