"""Tests for reroute.io (images, IUV files, the atomic writer): loading user images, atomic saving, IUV files."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from reroute.errors import ImageTooSmallError, InputError, NotAnImageError
from reroute.io import images as imageio
from reroute.io.images import MAX_SIDE, MIN_SIDE, LoadedImage, load_image, save_image_atomic
from reroute.io.iuv import read_iuv, write_iuv


def _noise(h: int, w: int, c: int = 3, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    shape = (h, w, c) if c else (h, w)
    return rng.integers(0, 256, size=shape, dtype=np.uint8)


def _one_sentence(err: pytest.ExceptionInfo[BaseException]) -> str:
    msg = str(err.value)
    assert "\n" not in msg
    assert msg and not msg.endswith(".")
    return msg


# --------------------------------------------------------------------------- load_image


def test_png_round_trip(tmp_path: Path) -> None:
    pixels = _noise(70, 90)
    path = tmp_path / "a.png"
    save_image_atomic(path, pixels)
    loaded = load_image(path)
    assert isinstance(loaded, LoadedImage)
    assert loaded.pixels.dtype == np.uint8 and loaded.pixels.shape == (70, 90, 3)
    np.testing.assert_array_equal(loaded.pixels, pixels)
    assert loaded.notice is None
    assert loaded.path == str(path)
    # str paths work the same
    np.testing.assert_array_equal(load_image(str(path)).pixels, pixels)


def test_jpeg_round_trip(tmp_path: Path) -> None:
    pixels = np.zeros((80, 100, 3), np.uint8)
    pixels[:, :50] = (200, 30, 40)
    pixels[:, 50:] = (20, 180, 90)
    for name in ("a.jpg", "b.JPEG"):
        path = tmp_path / name
        save_image_atomic(path, pixels)
        with Image.open(path) as im:
            assert im.format == "JPEG"
        loaded = load_image(path)
        assert loaded.pixels.shape == (80, 100, 3)
        diff = np.abs(loaded.pixels.astype(int) - pixels.astype(int))
        assert diff[:, 5:45].max() <= 6 and diff[:, 55:95].max() <= 6


def test_grayscale_becomes_rgb(tmp_path: Path) -> None:
    gray = _noise(64, 64, c=0)
    path = tmp_path / "g.png"
    Image.fromarray(gray).save(path)
    with Image.open(path) as im:
        assert im.mode == "L"
    px = load_image(path).pixels
    assert px.shape == (64, 64, 3)
    for c in range(3):
        np.testing.assert_array_equal(px[..., c], gray)
    # save_image_atomic accepts (H, W) too
    save_image_atomic(tmp_path / "g2.png", gray)
    np.testing.assert_array_equal(load_image(tmp_path / "g2.png").pixels[..., 1], gray)


def test_rgba_composited_on_white(tmp_path: Path) -> None:
    rgba = np.zeros((64, 64, 4), np.uint8)
    rgba[..., :3] = (10, 20, 30)
    rgba[:, :32, 3] = 0  # fully transparent -> white
    rgba[:, 32:, 3] = 255  # opaque -> unchanged
    rgba[0, 63] = (0, 0, 0, 128)  # half transparent black -> mid grey
    path = tmp_path / "rgba.png"
    Image.fromarray(rgba).save(path)
    with Image.open(path) as im:
        assert im.mode == "RGBA"
    px = load_image(path).pixels
    assert px.shape == (64, 64, 3)
    assert (px[:, :32] == 255).all()
    assert (px[1:, 32:] == (10, 20, 30)).all()
    assert abs(int(px[0, 63, 0]) - 127) <= 1


def test_la_and_palette_transparency(tmp_path: Path) -> None:
    la = np.zeros((64, 64, 2), np.uint8)
    la[..., 0] = 50
    la[:10, :, 1] = 0
    la[10:, :, 1] = 255
    path = tmp_path / "la.png"
    Image.frombytes("LA", (64, 64), la.tobytes()).save(path)
    px = load_image(path).pixels
    assert (px[:10] == 255).all() and (px[10:] == 50).all()

    pal = Image.new("P", (64, 64), 0)
    pal.putpalette([0, 0, 255] + [255, 0, 0] * 255)
    pal.paste(1, (0, 0, 64, 32))
    pal.info["transparency"] = 0
    path = tmp_path / "p.png"
    pal.save(path, transparency=0)
    px = load_image(path).pixels
    assert (px[:32] == (255, 0, 0)).all()
    assert (px[32:] == 255).all()


def test_16bit_png(tmp_path: Path) -> None:
    values = np.zeros((64, 64), np.uint16)
    values[:, 16:32] = 32768
    values[:, 32:] = 65535
    path = tmp_path / "g16.png"
    Image.fromarray(values).save(path)
    with Image.open(path) as im:
        assert im.mode.startswith("I")
    px = load_image(path).pixels
    assert px.dtype == np.uint8 and px.shape == (64, 64, 3)
    assert (px[:, :16] == 0).all()
    assert (np.abs(px[:, 16:32].astype(int) - 128) <= 1).all()
    assert (px[:, 32:] == 255).all()

    # 16-bit colour, written by OpenCV (BGR order)
    bgr16 = np.zeros((64, 64, 3), np.uint16)
    bgr16[..., 2] = 65535  # red
    bgr16[..., 1] = 32768  # green
    path = tmp_path / "c16.png"
    assert cv2.imwrite(str(path), bgr16)
    px = load_image(path).pixels
    assert (px[..., 0] == 255).all()
    assert (np.abs(px[..., 1].astype(int) - 128) <= 1).all()
    assert (px[..., 2] == 0).all()


def test_exif_orientation_applied(tmp_path: Path) -> None:
    # stored 96 wide x 64 high, red block at the stored top-left
    stored = np.full((64, 96, 3), 255, np.uint8)
    stored[:20, :20] = (255, 0, 0)
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    path = tmp_path / "rot.jpg"
    Image.fromarray(stored).save(path, exif=exif.tobytes(), quality=95)
    px = load_image(path).pixels
    assert px.shape == (96, 64, 3)
    # after a clockwise quarter turn the stored top-left is at the top-right
    top_right = px[2:18, -18:-2].astype(int)
    top_left = px[2:18, 2:18].astype(int)
    assert (np.abs(top_right - (255, 0, 0)) < 40).all()
    assert (top_left > 200).all()


def test_tiny_image_message(tmp_path: Path) -> None:
    path = tmp_path / "tiny.png"
    Image.new("RGB", (40, 30), "white").save(path)
    with pytest.raises(ImageTooSmallError) as err:
        load_image(path)
    assert (
        _one_sentence(err) == f"{path} is 40x30 px; the shorter side must be at least {MIN_SIDE} px"
    )
    assert isinstance(err.value, InputError)


def test_huge_image_downscaled_with_notice(tmp_path: Path) -> None:
    path = tmp_path / "wide.png"
    Image.new("RGB", (5000, 300), (10, 120, 200)).save(path)
    loaded = load_image(path)
    assert loaded.pixels.shape == (246, MAX_SIDE, 3)
    assert loaded.notice == "downscaled from 5000x300 to 4096x246"
    assert (np.abs(loaded.pixels.astype(int) - (10, 120, 200)) <= 1).all()

    tall = load_image(np.zeros((5000, 300, 3), np.uint8), name="tall")
    assert tall.pixels.shape == (MAX_SIDE, 246, 3)
    assert tall.notice == "downscaled from 300x5000 to 246x4096"


def test_too_thin_after_downscale(tmp_path: Path) -> None:
    with pytest.raises(ImageTooSmallError) as err:
        load_image(np.zeros((70, 10000), np.uint8), name="strip")
    msg = _one_sentence(err)
    assert msg.startswith("strip is 10000x70 px")
    assert "29 px" in msg


def test_large_jpeg_uses_draft_and_downscales(tmp_path: Path) -> None:
    path = tmp_path / "big.jpg"
    Image.new("RGB", (8200, 200), (200, 100, 50)).save(path, quality=90)
    loaded = load_image(path)
    assert loaded.pixels.shape == (100, MAX_SIDE, 3)
    assert loaded.notice == "downscaled from 8200x200 to 4096x100"
    assert (np.abs(loaded.pixels[10:-10, 10:-10].astype(int) - (200, 100, 50)) <= 4).all()


def test_large_rotated_jpeg_reports_displayed_size(tmp_path: Path) -> None:
    path = tmp_path / "big_rot.jpg"
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.new("RGB", (8200, 200), (0, 0, 255)).save(path, exif=exif.tobytes())
    loaded = load_image(path)
    assert loaded.pixels.shape == (MAX_SIDE, 100, 3)
    assert loaded.notice == "downscaled from 200x8200 to 100x4096"


def test_text_file_named_png(tmp_path: Path) -> None:
    path = tmp_path / "notes.png"
    path.write_text("this is not an image\n" * 10)
    with pytest.raises(NotAnImageError) as err:
        load_image(path)
    msg = _one_sentence(err)
    assert msg.startswith(f"{path} is not a readable image (")


def test_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.jpg"
    path.write_bytes(b"")
    with pytest.raises(NotAnImageError) as err:
        load_image(path)
    assert str(path) in _one_sentence(err)
    with pytest.raises(NotAnImageError, match="upload is empty"):
        load_image(b"", name="upload")


def test_truncated_png(tmp_path: Path) -> None:
    full = tmp_path / "full.png"
    Image.fromarray(_noise(200, 200)).save(full)
    data = full.read_bytes()
    path = tmp_path / "half.png"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(NotAnImageError) as err:
        load_image(path)
    assert _one_sentence(err).startswith(f"{path} is not a readable image (")
    with pytest.raises(NotAnImageError, match="^upload is not a readable image"):
        load_image(data[: len(data) // 2], name="upload")


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.png"
    with pytest.raises(InputError) as err:
        load_image(path)
    assert _one_sentence(err) == f"image not found: {path}"
    with pytest.raises(InputError, match="is a directory"):
        load_image(tmp_path)


def test_file_too_big(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "a.png"
    save_image_atomic(path, _noise(64, 64))
    monkeypatch.setattr(imageio, "MAX_FILE_BYTES", 1000)
    with pytest.raises(InputError) as err:
        load_image(path)
    assert str(path) in _one_sentence(err)
    with pytest.raises(InputError):
        load_image(path.read_bytes())


def _png_header_only(width: int, height: int) -> bytes:
    def chunk(kind: bytes, body: bytes) -> bytes:
        crc = zlib.crc32(kind + body) & 0xFFFFFFFF
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 64)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")
@pytest.mark.parametrize("side", [15_000, 40_000])  # between 1x and 2x the limit, and above 2x
def test_decompression_bomb_refused(tmp_path: Path, side: int) -> None:
    path = tmp_path / "bomb.png"
    path.write_bytes(_png_header_only(side, side))
    with pytest.raises(InputError) as err:
        load_image(path)
    msg = _one_sentence(err)
    assert str(path) in msg and "megapixels" in msg
    assert not isinstance(err.value, NotAnImageError)


def test_bytes_and_pil_sources(tmp_path: Path) -> None:
    pixels = _noise(64, 80)
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="PNG")
    loaded = load_image(buf.getvalue(), name="upload.png")
    np.testing.assert_array_equal(loaded.pixels, pixels)
    assert loaded.path is None
    np.testing.assert_array_equal(load_image(bytearray(buf.getvalue())).pixels, pixels)
    np.testing.assert_array_equal(load_image(Image.fromarray(pixels)).pixels, pixels)
    rgba = Image.fromarray(pixels).convert("RGBA")
    rgba.putalpha(0)
    assert (load_image(rgba).pixels == 255).all()
    with pytest.raises(TypeError):
        load_image(12345)


def test_numpy_sources() -> None:
    rgb = _noise(64, 70)
    out = load_image(rgb).pixels
    np.testing.assert_array_equal(out, rgb)
    assert not np.shares_memory(out, rgb)

    gray = _noise(64, 70, c=0)
    np.testing.assert_array_equal(load_image(gray).pixels[..., 2], gray)
    np.testing.assert_array_equal(load_image(gray[..., None]).pixels[..., 0], gray)

    rgba = np.concatenate([rgb, np.zeros((64, 70, 1), np.uint8)], axis=2)
    assert (load_image(rgba).pixels == 255).all()

    floats = np.full((64, 64, 3), 0.5, np.float32)
    floats[0, 0] = (0.0, 1.0, 0.25)
    out = load_image(floats).pixels
    assert out.dtype == np.uint8
    assert tuple(out[0, 0]) == (0, 255, 64) and tuple(out[1, 1]) == (128, 128, 128)


@pytest.mark.parametrize(
    "array, fragment",
    [
        (np.zeros((64, 64, 3), np.int64), "dtype int64"),
        (np.full((64, 64, 3), 2.0), "[0, 1]"),
        (np.full((64, 64, 3), np.nan), "NaN"),
        (np.zeros((64, 64, 2), np.uint8), "shape"),
        (np.zeros((2, 64, 64, 3), np.uint8), "shape"),
    ],
)
def test_numpy_bad_arrays(array: np.ndarray, fragment: str) -> None:
    with pytest.raises(InputError) as err:
        load_image(array, name="frame")
    msg = _one_sentence(err)
    assert msg.startswith("frame ") and fragment in msg


# --------------------------------------------------------------------------- saving


def _entries(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


def test_save_creates_parents_and_leaves_no_temp(tmp_path: Path) -> None:
    path = tmp_path / "x" / "y" / "out.png"
    save_image_atomic(path, _noise(64, 64))
    assert _entries(path.parent) == ["out.png"]
    # overwriting works and is complete
    new = _noise(64, 64, seed=1)
    save_image_atomic(path, new)
    np.testing.assert_array_equal(load_image(path).pixels, new)
    assert _entries(path.parent) == ["out.png"]


def test_save_unsupported_extension(tmp_path: Path) -> None:
    path = tmp_path / "out.bmp"
    with pytest.raises(InputError) as err:
        save_image_atomic(path, _noise(64, 64))
    msg = _one_sentence(err)
    assert ".png" in msg and ".jpg" in msg and ".jpeg" in msg
    assert _entries(tmp_path) == []
    with pytest.raises(InputError):
        save_image_atomic(tmp_path / "noext", _noise(64, 64))
    assert _entries(tmp_path) == []


@pytest.mark.parametrize(
    "pixels",
    [
        np.zeros((64, 64, 3), np.float32),
        np.zeros((64, 64, 4), np.uint8),
        np.zeros((64, 64, 3, 1), np.uint8),
        np.zeros((0, 64, 3), np.uint8),
        [[0, 1], [2, 3]],
    ],
)
def test_save_bad_pixels_leaves_nothing(tmp_path: Path, pixels: np.ndarray) -> None:
    with pytest.raises(ValueError):
        save_image_atomic(tmp_path / "sub" / "out.png", pixels)
    assert _entries(tmp_path) == []


def test_save_failure_mid_write_cleans_up(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "out.png"
    old = _noise(64, 64)
    save_image_atomic(path, old)

    def broken_save(self: Image.Image, fp: object, *args: object, **kwargs: object) -> None:
        fp.write(b"partial")  # type: ignore[attr-defined]
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(Image.Image, "save", broken_save)
    with pytest.raises(RuntimeError):
        save_image_atomic(path, _noise(64, 64, seed=2))
    with pytest.raises(RuntimeError):
        save_image_atomic(tmp_path / "new.png", _noise(64, 64, seed=2))
    monkeypatch.undo()
    # the old file is intact, the new one never appeared, no temp files remain
    assert _entries(tmp_path) == ["out.png"]
    np.testing.assert_array_equal(load_image(path).pixels, old)


def test_save_onto_directory_is_input_error(tmp_path: Path) -> None:
    (tmp_path / "out.png").mkdir()
    with pytest.raises(InputError) as err:
        save_image_atomic(tmp_path / "out.png", _noise(64, 64))
    assert "cannot write" in _one_sentence(err)
    assert _entries(tmp_path) == ["out.png"]
    assert (tmp_path / "out.png").is_dir()


# --------------------------------------------------------------------------- IUV


def _iuv(h: int = 48, w: int = 40) -> np.ndarray:
    rng = np.random.default_rng(3)
    iuv = np.zeros((h, w, 3), np.uint8)
    iuv[..., 0] = rng.integers(0, 25, size=(h, w))
    iuv[..., 1] = rng.integers(0, 256, size=(h, w))
    iuv[..., 2] = rng.integers(0, 256, size=(h, w))
    return iuv


def test_iuv_round_trip_and_opencv_order(tmp_path: Path) -> None:
    iuv = _iuv()
    path = tmp_path / "maps" / "person_IUV.png"
    write_iuv(path, iuv)
    assert _entries(path.parent) == ["person_IUV.png"]
    back = read_iuv(path)
    assert back.dtype == np.uint8 and back.shape == iuv.shape
    np.testing.assert_array_equal(back, iuv)
    # DensePose convention: cv2.imread gives channels (I, U, V)
    raw = cv2.imread(str(path))
    np.testing.assert_array_equal(raw, iuv)
    # ... which means PIL (RGB) sees them reversed: red = V, blue = I
    with Image.open(path) as im:
        rgb = np.asarray(im.convert("RGB"))
    np.testing.assert_array_equal(rgb[..., 0], iuv[..., 2])
    np.testing.assert_array_equal(rgb[..., 2], iuv[..., 0])


def test_iuv_reads_opencv_written_file(tmp_path: Path) -> None:
    iuv = _iuv()
    path = tmp_path / "dp.png"
    assert cv2.imwrite(str(path), iuv)  # how DensePose tooling writes them
    np.testing.assert_array_equal(read_iuv(path), iuv)


def test_write_iuv_rejects_bad_input(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"\.png"):
        write_iuv(tmp_path / "iuv.jpg", _iuv())
    with pytest.raises(ValueError):
        write_iuv(tmp_path / "iuv.png", _iuv().astype(np.float32))
    with pytest.raises(ValueError):
        write_iuv(tmp_path / "iuv.png", _iuv()[..., :2])
    swapped = _iuv()[..., ::-1].copy()  # V in channel 0: part indices up to 255
    with pytest.raises(ValueError, match="part index"):
        write_iuv(tmp_path / "iuv.png", swapped)
    assert _entries(tmp_path) == []


def test_read_iuv_errors(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="IUV file not found"):
        read_iuv(tmp_path / "missing.png")
    text = tmp_path / "text.png"
    text.write_text("hello")
    with pytest.raises(InputError, match="not a readable IUV image"):
        read_iuv(text)
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    with pytest.raises(InputError):
        read_iuv(empty)
    gray = tmp_path / "gray.png"
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(gray)
    with pytest.raises(InputError, match="3 channels"):
        read_iuv(gray)
    photo = tmp_path / "photo.png"
    Image.fromarray(_noise(16, 16)).save(photo)
    with pytest.raises(InputError, match="part indices"):
        read_iuv(photo)
