"""Several photos of one person: textures fused by evidence (pose transfer, try-on, novel
view, CLI)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest
from PIL import Image

from reroute.io.video import probe_video
from reroute.pipelines.pose_transfer import PoseTransferPipeline
from reroute.pipelines.tryon import TryOnPipeline
from reroute.synth.engine import render_synthetic_person
from reroute.uv.texture import UVTexture, fuse_textures
from reroute.uv.warp import image_to_uv

REPO = Path(__file__).resolve().parents[1]


def _texture(colour, visible: np.ndarray, weight: float) -> UVTexture:
    pix = np.zeros(visible.shape + (3,), np.float32)
    pix[visible] = colour
    return UVTexture(pix, visible.astype(np.float32), np.where(visible, weight, 0).astype(np.float32))


def test_fuse_textures_known_answers() -> None:
    left = np.zeros((4, 4), bool)
    left[:, :3] = True
    right = np.zeros((4, 4), bool)
    right[:, 2:] = True
    a = _texture((1.0, 0.0, 0.0), left, 1.0)
    b = _texture((0.0, 0.0, 1.0), right, 3.0)
    fused = fuse_textures([a, b])
    np.testing.assert_array_equal(fused.visibility, (left | right).astype(np.float32))
    np.testing.assert_allclose(fused.pixels[:, 0], [[1, 0, 0]] * 4)  # only a saw it
    np.testing.assert_allclose(fused.pixels[:, 3], [[0, 0, 1]] * 4)  # only b saw it
    np.testing.assert_allclose(fused.pixels[:, 2], [[0.25, 0, 0.75]] * 4)  # both: by weight
    np.testing.assert_allclose(fused.weight[:, 2], 4.0)
    assert fused.weight[0, 0] == 1.0 and fused.weight[0, 3] == 3.0
    assert fuse_textures([a]) is a


def test_fuse_textures_errors() -> None:
    vis = np.ones((4, 4), bool)
    with pytest.raises(ValueError, match="at least one"):
        fuse_textures([])
    with pytest.raises(ValueError, match="one size"):
        fuse_textures([_texture((1, 1, 1), vis, 1.0), _texture((1, 1, 1), np.ones((8, 8), bool), 1.0)])
    no_weight = UVTexture(np.zeros((4, 4, 3), np.float32), np.ones((4, 4), np.float32))
    with pytest.raises(ValueError, match="lifting weight"):
        fuse_textures([_texture((1, 1, 1), vis, 1.0), no_weight])


def test_lifted_weight_marks_the_seen_texels_and_fusing_a_view_with_itself_changes_no_colour() -> None:
    r = render_synthetic_person(None, size=256, seed=0)
    tex = image_to_uv(r.image, r.correspondence, 128)
    seen = tex.visibility > 0.5
    assert tex.weight is not None and seen.sum() > 500
    assert (tex.weight[seen] > 0).all() and (tex.weight[~seen] == 0).all()
    assert tex.weight.max() <= 1.0 + 1e-6  # a mean confidence times coverage <= 1
    twice = fuse_textures([tex, tex])
    np.testing.assert_allclose(twice.pixels[seen], tex.pixels[seen], atol=1e-6)
    assert (twice.pixels[~seen] == 0).all()
    np.testing.assert_allclose(twice.weight, 2 * tex.weight, rtol=1e-6)
    # equal weights: the frontal torso's texels are seen by at least a pixel's worth
    flat = image_to_uv(r.image, r.correspondence, 128, confidence=None)
    assert np.median(flat.weight[flat.visibility > 0.5]) == pytest.approx(1.0)


@pytest.fixture(scope="module")
def views() -> dict[str, np.ndarray]:
    """One synthetic person (seed 3) from the front and from the back, the back photo's torso
    painted green (a colour only it shows), and a target turned 165 degrees (a back view)."""
    front = render_synthetic_person(None, size=256, seed=3).image
    back = render_synthetic_person(None, size=256, seed=3, yaw_deg=180)
    painted = back.image.copy()
    painted[back.correspondence.mask & (back.correspondence.part == 1)] = (0, 200, 0)
    target = render_synthetic_person(None, size=256, seed=3, yaw_deg=165).image
    return {"front": front, "back": painted, "target": target}


def _green(image: np.ndarray, where: np.ndarray) -> float:
    px = image[where].astype(np.float64)
    return float((px[:, 1] - (px[:, 0] + px[:, 2]) / 2).mean())


def test_a_colour_only_the_back_photo_shows_reaches_the_back_of_the_target(views) -> None:
    pipe = PoseTransferPipeline(size=256)
    one = pipe(views["front"], views["target"])
    both = pipe([views["front"], views["back"]], views["target"])
    torso_back = one.target.correspondence.mask & (one.target.correspondence.part == 1)
    assert torso_back.sum() > 500
    assert _green(one.image, torso_back) < 20  # the front photo never shows green
    assert _green(both.image, torso_back) > 100  # the back photo's green is on her back
    assert len(both.more_sources) == 1 and one.more_sources == ()
    seen_one = one.partial_texture.visibility > 0.5
    seen_both = both.partial_texture.visibility > 0.5
    assert (seen_both >= seen_one).all() and seen_both.sum() > 1.3 * seen_one.sum()
    # the first source gives the background: the same inpainted background either way
    np.testing.assert_array_equal(one.background, both.background)
    with pytest.raises(Exception, match="at least one source"):
        pipe([], views["target"])


def test_try_on_fuses_the_donor_photos(views) -> None:
    wearer = render_synthetic_person(None, size=256, seed=5, yaw_deg=165).image
    pipe = TryOnPipeline(size=256)
    one = pipe(views["front"], wearer, "top")
    both = pipe([views["front"], views["back"]], wearer, "top")
    corr = one.wearer.correspondence
    torso_back = corr.mask & (corr.part == 1)
    assert torso_back.sum() > 500
    assert _green(one.image, torso_back) < 20
    assert _green(both.image, torso_back) > 100  # the donor's back, seen only in photo 2
    with pytest.raises(Exception, match="at least one garment donor"):
        pipe([], wearer, "top")


def _run(*args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, OMP_NUM_THREADS="1")
    return subprocess.run([sys.executable, "-m", "reroute", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=600)  # fmt: skip


@pytest.fixture(scope="module")
def files(tmp_path_factory, views) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("views")
    out = {}
    for name, pixels in views.items():
        out[name] = d / f"{name}.png"
        Image.fromarray(pixels).save(out[name])
    out["text"] = d / "text.png"
    out["text"].write_text("not a picture\n")
    return out


def test_cli_checks_every_source_before_any_model_runs(files, tmp_path) -> None:
    out = tmp_path / "out.png"
    r = _run("transfer", "--source", str(files["front"]), "--source", str(files["text"]),
             "--target", str(files["target"]), "--out", str(out))  # fmt: skip
    assert r.returncode == 2, r.stderr
    errors = [ln for ln in r.stderr.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1 and "not a readable image" in errors[0], r.stderr
    assert r.stdout == "" and not out.exists() and "XNNPACK" not in r.stderr
    r = _run("transfer", "--method", "dpt", "--source", str(files["front"]), "--source",
             str(files["back"]), "--target", str(files["target"]), "--out", str(out))  # fmt: skip
    assert r.returncode == 2 and "one --source" in r.stderr and not out.exists(), r.stderr


def test_cli_novel_view_from_front_and_back(files, tmp_path) -> None:
    out = tmp_path / "turn.mp4"
    r = _run("novel-view", str(files["front"]), str(files["back"]), "--out", str(out),
             "--frames", "4", "--size", "128")  # fmt: skip
    assert r.returncode == 0, r.stderr
    report = json.loads(r.stdout.strip().splitlines()[-1])
    assert report["frames"] == 4
    info = probe_video(out)
    assert (info.frames, info.width, info.height) == (4, 128, 128)
    frames = iio.imread(out)  # (4, 128, 128, 3): 0, 90, 180, 270 degrees
    body = frames.min(-1) < 230  # (4, 128, 128): not the white background
    assert _green(frames[2], body[2]) > 40  # her back: the back photo's green torso
    assert _green(frames[0], body[0]) < 10  # her front: no green
