"""Reading and writing images and DensePose IUV maps, safely.

Everything the user hands in goes through :func:`load_image`, which turns any
decodable photo (path, bytes, PIL image or numpy array) into an ``(H, W, 3)``
``uint8`` RGB array, or raises a one-sentence :class:`~reroute.errors.InputError`
naming the file. Everything reroute writes goes through
:func:`save_image_atomic` / :func:`write_iuv`, which never leave a partial file
behind.

IUV convention (DensePose on disk): an 8-bit, 3-channel PNG such that
``cv2.imread(path)`` returns the channels in the order (I, U, V): I is the part
index 0..24 (0 = background), U and V are the per-part coordinates scaled to
0..255. Because OpenCV reads channels as BGR, the PNG's *red* channel holds V
and its *blue* channel holds I.
"""

from __future__ import annotations

import io
import math
import os
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from reroute.errors import ImageTooSmallError, InputError, NotAnImageError
from reroute.io.files import describe_os_error, megabytes, read_input_file, write_atomic

__all__ = [
    "MIN_SIDE",
    "MAX_SIDE",
    "MAX_FILE_BYTES",
    "MAX_PIXELS",
    "LoadedImage",
    "load_image",
    "load_photos",
    "save_image_atomic",
    "to_uint8",
    "check_uint8",
]

MIN_SIDE = 64
"""The shorter side of an input image must be at least this many pixels."""

MAX_SIDE = 4096
"""An input whose longer side exceeds this is downscaled to it (with a notice)."""

MAX_FILE_BYTES = 50 * 2**20
"""Input files (or byte strings) larger than this are refused."""

MAX_PIXELS = 200_000_000
"""Decoded images with more pixels than this are refused (decompression bombs)."""


# PIL warns above MAX_IMAGE_PIXELS and raises above twice that; reroute checks
# MAX_PIXELS itself right after reading the header, before any decoding.
Image.MAX_IMAGE_PIXELS = MAX_PIXELS

_SAVE_FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG"}
_ALPHA_MODES = {"RGBA", "LA", "PA", "RGBa", "La"}
_SIXTEEN_BIT_MODES = {"I", "I;16", "I;16B", "I;16L", "I;16N"}


def to_uint8(x: np.ndarray) -> np.ndarray:
    """Float pixels in [0, 1] (any shape) -> ``uint8`` in 0..255.

    Values are scaled by 255, rounded half to even (``np.rint``) and clipped, so
    out-of-range floats saturate instead of wrapping. The one float->uint8
    conversion of reroute (images, textures, IUV maps, video frames).
    """
    return np.clip(np.rint(np.asarray(x) * 255.0), 0, 255).astype(np.uint8)


@dataclass(frozen=True)
class LoadedImage:
    """A decoded input image.

    Attributes:
        pixels: ``(H, W, 3)`` ``uint8`` RGB array, C-contiguous, owned (never a
            view of the caller's array), both sides in ``[MIN_SIDE, MAX_SIDE]``.
        notice: a short note for the user when the image was changed beyond
            format conversion, e.g. ``"downscaled from 8000x6000 to 4096x3072"``;
            ``None`` otherwise.
        path: the source path as a string when loaded from a file, else ``None``.
    """

    pixels: np.ndarray
    notice: str | None
    path: str | None


def load_image(source: Any, *, name: str = "image") -> LoadedImage:
    """Load a photo as RGB ``uint8``, whatever form it comes in.

    Args:
        source: one of
            - a path (``str`` or :class:`os.PathLike`) to an image file in any
              format PIL reads (PNG, JPEG, WebP, TIFF, BMP, GIF: first frame, ...);
            - the encoded file's ``bytes`` / ``bytearray`` / ``memoryview``;
            - a :class:`PIL.Image.Image`;
            - a numpy array of shape ``(H, W)``, ``(H, W, 1)``, ``(H, W, 3)`` (RGB)
              or ``(H, W, 4)`` (RGBA), dtype ``uint8`` (0..255) or floating
              point in ``[0, 1]``.
        name: how error messages call a source that is not a path; a path is
            called by the path itself.

    Decoding applies the EXIF orientation, converts grayscale, palette, CMYK and
    16-bit images to 8-bit RGB (16-bit values are scaled, not clipped) and
    composites transparency onto white. An image whose longer side exceeds
    :data:`MAX_SIDE` is downscaled with Lanczos filtering, keeping its aspect
    ratio, and the result carries a ``notice``.

    Returns:
        :class:`LoadedImage` with ``pixels`` ``(H, W, 3)`` ``uint8`` RGB.

    Raises:
        InputError: the file does not exist or is a directory, is larger than
            :data:`MAX_FILE_BYTES`, has more than :data:`MAX_PIXELS` pixels, or
            an array has an unsupported shape, dtype or value range.
        NotAnImageError: the file or bytes are empty, truncated, or not a
            decodable image.
        ImageTooSmallError: the shorter side is below :data:`MIN_SIDE` (before
            or after downscaling).
        TypeError: ``source`` is of none of the types above (a programming error).
    """
    path: str | None = None
    if isinstance(source, str | os.PathLike):
        path = os.fspath(source)
        label = path
        rgb, (width, height) = _decode_pil(_open_path(path), label, draft=True)
    elif isinstance(source, bytes | bytearray | memoryview):
        label = name
        rgb, (width, height) = _decode_pil(_open_bytes(bytes(source), label), label, draft=True)
    elif isinstance(source, Image.Image):
        label = name
        rgb, (width, height) = _decode_pil(source, label, draft=False)
    elif isinstance(source, np.ndarray):
        label = name
        rgb = _array_to_rgb(source, label)
        height, width = rgb.shape[:2]
    else:
        raise TypeError(
            f"load_image() takes a path, bytes, a PIL image or a numpy array, "
            f"not {type(source).__name__}"
        )

    # (width, height) is the image's own size, EXIF-oriented; rgb may already be
    # smaller when a JPEG was decoded at reduced scale (see _draft_for_downscale).
    if min(height, width) < MIN_SIDE:
        raise ImageTooSmallError(
            f"{label} is {width}x{height} px; the shorter side must be at least {MIN_SIDE} px"
        )

    notice = None
    if max(height, width) > MAX_SIDE:
        scale = MAX_SIDE / max(height, width)
        new_w = MAX_SIDE if width >= height else max(1, round(width * scale))
        new_h = MAX_SIDE if height > width else max(1, round(height * scale))
        if min(new_w, new_h) < MIN_SIDE:
            raise ImageTooSmallError(
                f"{label} is {width}x{height} px, so downscaling its longer side to "
                f"{MAX_SIDE} px would leave the shorter side at {min(new_w, new_h)} px, "
                f"below the {MIN_SIDE} px minimum"
            )
        resized = Image.fromarray(rgb).resize((new_w, new_h), Image.Resampling.LANCZOS)
        rgb = np.asarray(resized, dtype=np.uint8)
        notice = f"downscaled from {width}x{height} to {new_w}x{new_h}"

    pixels = np.ascontiguousarray(rgb, dtype=np.uint8)
    return LoadedImage(pixels=pixels, notice=notice, path=path)


def load_photos(photos: Any, *, name: str) -> tuple[list[LoadedImage], list[str]]:
    """One photo, or a list or tuple of photos of one person, each loaded by :func:`load_image`.

    Args:
        photos: a photo (anything :func:`load_image` takes), or a non-empty list or
            tuple of them.
        name: how messages call the first photo; the others are ``"<name> 2"``,
            ``"<name> 3"``, ...
    Returns:
        the loaded photos and their names, in order.
    Raises:
        InputError: an empty list, or any photo :func:`load_image` refuses (the first
            refused one is reported).
    """
    items = list(photos) if isinstance(photos, (list, tuple)) else [photos]
    if not items:
        raise InputError(f"at least one {name} is needed")
    names = [name] + [f"{name} {i}" for i in range(2, len(items) + 1)]
    return [load_image(p, name=n) for p, n in zip(items, names, strict=True)], names


def save_image_atomic(path: str | os.PathLike[str], pixels: np.ndarray) -> None:
    """Write an RGB or grayscale image to ``path`` atomically.

    The format follows the extension: ``.png`` (lossless) or ``.jpg`` / ``.jpeg``
    (quality 95). The image is written to a temporary file in the same
    directory and moved over ``path`` with :func:`os.replace`, so readers see
    either the old file or the complete new one. Missing parent directories
    are created. On any failure the temporary file is removed and ``path`` is
    left as it was (absent if it was absent).

    Args:
        path: destination file.
        pixels: ``(H, W, 3)`` RGB or ``(H, W)`` grayscale, ``uint8``.

    Raises:
        InputError: unsupported extension, or the file cannot be written
            (permission denied, path is a directory, disk full, ...).
        ValueError: ``pixels`` has the wrong type, dtype or shape (a
            programming error, not the user's).
    """
    path = os.fspath(path)
    fmt = _SAVE_FORMATS.get(Path(path).suffix.lower())
    if fmt is None:
        raise InputError(
            f"cannot save {path}: unsupported extension {Path(path).suffix or '(none)'!r}; "
            f"use .png, .jpg or .jpeg"
        )
    check_uint8(pixels, allowed_ndim=(2, 3), what="pixels")
    if pixels.ndim == 3 and pixels.shape[2] != 3:
        raise ValueError(f"pixels must be (H, W, 3) or (H, W) uint8, got shape {pixels.shape}")
    image = Image.fromarray(np.ascontiguousarray(pixels))
    options: dict[str, Any] = {"quality": 95} if fmt == "JPEG" else {}
    write_atomic(path, lambda f: image.save(f, format=fmt, **options))


# --------------------------------------------------------------------------- helpers


def _open_path(path: str) -> Image.Image:
    data = read_input_file(path, "image", MAX_FILE_BYTES)
    if not data:
        raise NotAnImageError(f"{path} is an empty file, not an image")
    return _open_bytes(data, path)


def _open_bytes(data: bytes, label: str) -> Image.Image:
    if not data:
        raise NotAnImageError(f"{label} is empty, not an image")
    if len(data) > MAX_FILE_BYTES:
        raise InputError(
            f"{label} is {megabytes(len(data))}; images over {megabytes(MAX_FILE_BYTES)} are refused"
        )
    try:
        return Image.open(io.BytesIO(data))
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise _bomb_error(label, None) from exc
    except UnidentifiedImageError as exc:
        raise NotAnImageError(
            f"{label} is not a readable image (unknown or corrupt format)"
        ) from exc
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise NotAnImageError(
            f"{label} is not a readable image ({describe_os_error(exc)})"
        ) from exc


def _bomb_error(label: str, size: tuple[int, int] | None) -> InputError:
    dims = f" ({size[0]}x{size[1]} px)" if size else ""
    return InputError(
        f"{label} is too large to decode{dims}; at most {MAX_PIXELS // 1_000_000} megapixels are accepted"
    )


def _decode_pil(
    image: Image.Image, label: str, *, draft: bool
) -> tuple[np.ndarray, tuple[int, int]]:
    """Fully decode a PIL image to ``(H, W, 3)`` uint8 RGB, EXIF-oriented.

    Returns the pixels and the image's full ``(width, height)`` after
    orientation; with ``draft`` (only for images opened here, never the
    caller's) the pixels may be smaller than that, when a large JPEG was
    decoded at reduced scale.
    """
    width, height = image.size
    if width * height > MAX_PIXELS:
        raise _bomb_error(label, (width, height))
    if width == 0 or height == 0:
        raise NotAnImageError(f"{label} is not a readable image (it has no pixels)")
    try:
        if draft:
            _draft_for_downscale(image)
        image.load()
        decoded_size = image.size
        try:
            oriented = ImageOps.exif_transpose(image)
        except Exception:  # a broken EXIF block must not make a good photo unreadable
            oriented = image
        if oriented is not None and oriented is not image:
            image = oriented
        if image.size != decoded_size:  # orientation swapped the axes
            width, height = height, width
        return _pil_to_rgb(image), (width, height)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise _bomb_error(label, (width, height)) from exc
    except MemoryError as exc:
        raise _bomb_error(label, (width, height)) from exc
    except (OSError, SyntaxError, ValueError, EOFError, IndexError, struct.error) as exc:
        raise NotAnImageError(
            f"{label} is not a readable image ({describe_os_error(exc)})"
        ) from exc


def _draft_for_downscale(image: Image.Image) -> None:
    """Let JPEG decode at 1/2, 1/4 or 1/8 scale when the result is downscaled anyway.

    ``draft`` never goes below the requested size, so the longer side stays at
    least :data:`MAX_SIDE` and the final Lanczos resize still does the work.
    Only used when the image is at least twice too large.
    """
    if image.format != "JPEG":
        return
    width, height = image.size
    if max(width, height) < 2 * MAX_SIDE:
        return
    scale = MAX_SIDE / max(width, height)
    image.draft(None, (math.ceil(width * scale), math.ceil(height * scale)))


def _pil_to_rgb(image: Image.Image) -> np.ndarray:
    mode = image.mode
    if mode in _SIXTEEN_BIT_MODES:
        values = np.asarray(image).astype(np.float64)
        gray = np.clip(np.round(values / 257.0), 0, 255).astype(np.uint8)
        return np.repeat(gray[..., None], 3, axis=2)
    if mode == "F":
        values = np.nan_to_num(np.asarray(image, dtype=np.float64))
        if values.size and values.max() <= 1.0:
            values = values * 255.0
        gray = np.clip(np.round(values), 0, 255).astype(np.uint8)
        return np.repeat(gray[..., None], 3, axis=2)
    if mode in _ALPHA_MODES or "transparency" in image.info:
        rgba = np.asarray(image.convert("RGBA"), dtype=np.uint8)
        return _composite_on_white(rgba)
    if mode != "RGB":
        image = image.convert("RGB")
    return np.asarray(image, dtype=np.uint8)


def _composite_on_white(rgba: np.ndarray) -> np.ndarray:
    """``(H, W, 4)`` uint8 RGBA -> ``(H, W, 3)`` uint8 RGB over a white background."""
    rgb = rgba[..., :3].astype(np.uint32)
    alpha = rgba[..., 3:4].astype(np.uint32)
    out = (rgb * alpha + 255 * (255 - alpha) + 127) // 255
    return out.astype(np.uint8)


def _array_to_rgb(array: np.ndarray, label: str) -> np.ndarray:
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[..., 0]
    if not (array.ndim == 2 or (array.ndim == 3 and array.shape[2] in (3, 4))):
        raise InputError(
            f"{label} has shape {array.shape}; expected (H, W), (H, W, 1), (H, W, 3) or (H, W, 4)"
        )
    if array.dtype == np.uint8:
        values = array
    elif np.issubdtype(array.dtype, np.floating):
        if array.size and not np.isfinite(array).all():
            raise InputError(f"{label} contains NaN or infinite values")
        if array.size and (array.min() < 0.0 or array.max() > 1.0):
            raise InputError(
                f"{label} has float values in [{float(array.min()):g}, {float(array.max()):g}]; "
                f"float images must lie in [0, 1]"
            )
        values = np.round(array.astype(np.float64) * 255.0).astype(np.uint8)
    else:
        raise InputError(f"{label} has dtype {array.dtype}; expected uint8 or float in [0, 1]")
    if values.ndim == 2:
        return np.repeat(values[..., None], 3, axis=2)
    if values.shape[2] == 4:
        return _composite_on_white(values)
    return np.array(values, dtype=np.uint8, copy=True)


def check_uint8(array: Any, *, allowed_ndim: tuple[int, ...], what: str) -> None:
    """Check that ``array`` is a non-empty uint8 numpy array with ``ndim`` in ``allowed_ndim``.

    Raises:
        ValueError: naming ``what``, the expected and the actual type, dtype or shape.
    """
    if not isinstance(array, np.ndarray):
        raise ValueError(f"{what} must be a numpy array, got {type(array).__name__}")
    if array.dtype != np.uint8:
        raise ValueError(f"{what} must be uint8, got {array.dtype}")
    if array.ndim not in allowed_ndim or array.shape[0] == 0 or array.shape[1] == 0:
        raise ValueError(f"{what} has unsupported shape {array.shape}")
