"""DensePose IUV maps on disk: :func:`write_iuv` and :func:`read_iuv`.

Convention (DensePose, detectron2): an 8-bit, 3-channel PNG such that
``cv2.imread(path)`` returns the channels in the order (I, U, V): I is the
part index 0..24 (0 = background), U and V are the per-part coordinates
scaled to 0..255. Because OpenCV reads channels as BGR, the PNG's *red*
channel holds V and its *blue* channel holds I.
"""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from reroute.errors import InputError
from reroute.io.files import read_input_file, write_atomic
from reroute.io.images import MAX_FILE_BYTES, check_uint8

__all__ = ["IUV_MAX_PART", "write_iuv", "read_iuv"]

IUV_MAX_PART = 24
"""Largest DensePose part index in the I channel of an IUV map."""


def write_iuv(path: str | os.PathLike[str], iuv: np.ndarray) -> None:
    """Write a DensePose IUV map as a PNG, atomically.

    The file follows DensePose's on-disk convention: ``cv2.imread(path)``
    returns ``iuv`` exactly, channels in the order (I, U, V). (The PNG's red
    channel therefore holds V and its blue channel I.)

    Args:
        path: destination, must end in ``.png``; parent directories are created.
        iuv: ``(H, W, 3)`` ``uint8``; channel 0 = part index I in
            ``0..IUV_MAX_PART`` (0 = background), channels 1, 2 = U, V in 0..255.

    Raises:
        InputError: the extension is not ``.png`` or the file cannot be written.
        ValueError: ``iuv`` has the wrong dtype or shape, or part indices above
            :data:`IUV_MAX_PART` (most likely swapped channels).
    """
    path = os.fspath(path)
    if Path(path).suffix.lower() != ".png":
        raise InputError(f"cannot save {path}: IUV maps are written as .png only")
    check_uint8(iuv, allowed_ndim=(3,), what="iuv")
    if iuv.shape[2] != 3:
        raise ValueError(f"iuv must be (H, W, 3) uint8, got shape {iuv.shape}")
    if iuv.size and int(iuv[..., 0].max()) > IUV_MAX_PART:
        raise ValueError(
            f"iuv channel 0 (part index I) must be in 0..{IUV_MAX_PART}, "
            f"got max {int(iuv[..., 0].max())}; are the channels in (I, U, V) order?"
        )
    # PIL writes its first channel as red; reversing makes cv2.imread's BGR = (I, U, V).
    image = Image.fromarray(np.ascontiguousarray(iuv[..., ::-1]))
    write_atomic(path, lambda f: image.save(f, format="PNG"))


def read_iuv(path: str | os.PathLike[str]) -> np.ndarray:
    """Read a DensePose IUV map written by :func:`write_iuv` or by DensePose tools.

    Args:
        path: an 8-bit, 3-channel image file (normally PNG).

    Returns:
        ``(H, W, 3)`` ``uint8`` array with channels (I, U, V), exactly what
        ``cv2.imread(path)`` gives: I in ``0..IUV_MAX_PART``, U and V in 0..255.

    Raises:
        InputError: the file is missing, empty, too large, not decodable, not
            8-bit 3-channel, or has part indices above :data:`IUV_MAX_PART`.
    """
    path = os.fspath(path)
    data = read_input_file(path, "IUV file", MAX_FILE_BYTES)
    iuv = None
    if data:
        # imdecode rather than imread: same result, but works for any path string.
        iuv = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_UNCHANGED)
    if iuv is None:
        raise InputError(f"{path} is not a readable IUV image")
    if iuv.dtype != np.uint8 or iuv.ndim != 3 or iuv.shape[2] != 3:
        channels = 1 if iuv.ndim == 2 else iuv.shape[2]
        raise InputError(
            f"{path} is not an IUV image (expected 8-bit with 3 channels, "
            f"got {iuv.dtype} with {channels})"
        )
    if iuv.size and int(iuv[..., 0].max()) > IUV_MAX_PART:
        raise InputError(
            f"{path} is not an IUV image (part indices must be 0..{IUV_MAX_PART}, "
            f"found {int(iuv[..., 0].max())})"
        )
    return np.ascontiguousarray(iuv)
