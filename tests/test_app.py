"""The Gradio app: a real server (``python launch.py``) driven through ``gradio_client``.

One server is started for the module. The fast tests at the top exercise the
callbacks (:mod:`app.callbacks`) and services (:mod:`app.services`) with stand-in
pipelines, the texture tab's pipeline (:mod:`reroute.pipelines.retexture`) and the
try-on / novel-view building blocks (:mod:`reroute.pipelines.tryon`,
:mod:`reroute.pipelines.novel_view`) without a server.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from reroute.errors import InputError, NoPersonError

ROOT = Path(__file__).resolve().parents[1]
START_TIMEOUT_S = 180


# ------------------------------------------------------------ no server needed


class _RefusingPipeline:
    def __call__(self, source, target):
        raise NoPersonError("no person found in target photo")


def test_callback_reports_input_errors_as_status():
    from app.callbacks import N_OUTPUTS, run_transfer

    img = np.full((96, 96, 3), 128, np.uint8)
    out = run_transfer(_RefusingPipeline(), img, img)
    assert len(out) == N_OUTPUTS == 10
    assert out[1] == "error: no person found in target photo."
    assert all(v is None for i, v in enumerate(out) if i != 1)

    out = run_transfer(_RefusingPipeline(), None, img)
    assert out[1] == "error: upload a source photo."


def test_examples_use_package_photos(tmp_path):
    from app.ui import example_images

    bundled = tmp_path / "bundled"
    bundled.mkdir()
    for name in ("synthetic_a.png", "synthetic_b.png"):
        Image.new("RGB", (64, 64)).save(bundled / name)
    pairs = example_images(tmp_path / "written", bundled=bundled)
    names = [[Path(p).name for p in pair] for pair in pairs]
    assert ["astronaut.png", "astronaut.png"] in names
    assert ["synthetic_a.png", "synthetic_b.png"] in names
    assert all(Path(p).is_file() for pair in pairs for p in pair)
    assert not any("shared" in p for pair in pairs for p in pair)


class _SlowPipeline:
    def __call__(self, source, target):
        raise AssertionError("the deadline should stop the request before the pipeline runs")


def _services(tmp_path, pipeline=_RefusingPipeline, **limits):
    from app.services import AppLimits, Services

    return Services(pipeline, checkpoints=tmp_path / "ckpt", limits=AppLimits(**limits),
                    workdir=tmp_path / "work")  # fmt: skip


def test_unavailable_networks_are_refused_with_their_reason(tmp_path):
    from app.callbacks import transfer_callback
    from app.services import network_status

    status = network_status(tmp_path / "ckpt")
    assert status == {k: f"no checkpoint in {tmp_path / 'ckpt'}/ yet"
                      for k in ("texture completion", "re-renderer", "Dense Pose Transfer",
                                "BodyMap network")}  # fmt: skip
    (tmp_path / "ckpt").mkdir()
    (tmp_path / "ckpt" / "texture_unet.safetensors").write_bytes(b"x")
    reason = network_status(tmp_path / "ckpt")["texture completion"]
    assert reason.startswith("texture_unet.safetensors is there, but reroute cannot load it ("), (
        reason
    )
    assert "\n" not in reason

    svc = _services(tmp_path)
    img = np.full((96, 96, 3), 128, np.uint8)
    cases = {
        (
            "Dense Pose Transfer",
            "classical",
            False,
            256,
        ): "Dense Pose Transfer is unavailable: no checkpoint",
        (
            "BodyMap re-rendering",
            "network",
            False,
            256,
        ): "network texture completion is unavailable",
        (
            "BodyMap re-rendering",
            "classical",
            True,
            256,
        ): "re-renderer is unavailable: no checkpoint",
        ("BodyMap re-rendering", "classical", False, 4096): "resolution must be between 64 and 512",
        ("Magic", "classical", False, 256): "unknown method 'Magic'",
    }
    for (method, completion, rerenderer, res), expect in cases.items():
        out = transfer_callback(svc, img, img, method, res, completion, rerenderer, 0)
        assert out[1].startswith("error: ") and expect in out[1], out[1]
        assert out[1].count(".") >= 1 and "\n" not in out[1]
        assert all(v is None for i, v in enumerate(out) if i != 1)


class _RecordingFactory:
    """A pipeline factory that records its keyword arguments."""

    def __init__(self):
        self.calls = []

    def __call__(self, **kwargs):
        self.calls.append(kwargs)
        return _RefusingPipeline()


def test_network_completion_is_offered_when_its_checkpoint_loads(tmp_path):
    from app.callbacks import texture_callback
    from app.services import Services, find_texture_checkpoint, network_status
    from texture import DEFAULT_CHECKPOINT

    ckpt = tmp_path / "ckpt"
    ckpt.mkdir()
    (ckpt / DEFAULT_CHECKPOINT.name).symlink_to(DEFAULT_CHECKPOINT)
    assert find_texture_checkpoint(ckpt) == (ckpt / DEFAULT_CHECKPOINT.name, None)
    status = network_status(ckpt)
    assert status["texture completion"] is None
    # the re-renderer and Dense Pose Transfer stay unavailable
    assert status["re-renderer"] == status["Dense Pose Transfer"] == f"no checkpoint in {ckpt}/ yet"

    factory = _RecordingFactory()
    svc = Services(factory, checkpoints=ckpt, workdir=tmp_path / "work")
    net = svc.pipeline_for(192, "network")
    assert svc.pipeline_for(192, "network") is net  # cached per (size, completion)
    assert svc.pipeline_for(192, "classical") is not net
    assert all(c.pop("cache") is svc.analysis_cache for c in factory.calls)  # one shared cache
    assert factory.calls == [
        {},
        {
            "size": 192,
            "texture": "network",
            "texture_checkpoint": str(ckpt / DEFAULT_CHECKPOINT.name),
        },
        {"size": 192},
    ]
    out = texture_callback(svc, np.zeros((96, 96, 3), np.uint8), 256, "learned")
    assert out[-1] == "error: unknown texture completion 'learned'; choose classical or network."


def test_rerenderer_is_offered_when_its_checkpoint_loads(tmp_path, tiny_rerenderer):
    from app.callbacks import transfer_callback
    from app.services import Services, find_rerenderer_checkpoint, network_status

    ckpt = tiny_rerenderer.parent
    assert find_rerenderer_checkpoint(ckpt) == (tiny_rerenderer, None)
    assert network_status(ckpt)["re-renderer"] is None
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "rerenderer_cpu256.pt").write_bytes(b"not a checkpoint")
    reason = network_status(bad)["re-renderer"]
    assert reason.startswith("rerenderer_cpu256.pt is there, but reroute cannot load it ("), reason
    assert "\n" not in reason

    factory = _RecordingFactory()
    svc = Services(factory, checkpoints=ckpt, workdir=tmp_path / "work")
    on = svc.pipeline_for(192, "classical", True)
    assert svc.pipeline_for(192, "classical", True) is on  # cached per (size, completion, rerender)
    assert svc.pipeline_for(192, "classical") is not on
    assert all(c.pop("cache") is svc.analysis_cache for c in factory.calls)
    assert factory.calls == [
        {},
        {"size": 192, "rerender": "network", "rerender_checkpoint": str(tiny_rerenderer)},
        {"size": 192},
    ]
    img = np.full((96, 96, 3), 128, np.uint8)
    out = transfer_callback(svc, img, img, "BodyMap re-rendering", 192, "classical", True, 0)
    assert out[1] == "error: no person found in target photo."  # the re-rendering pipeline ran
    # a folder without one: refused in place, with the reason
    off = Services(_RecordingFactory(), checkpoints=bad, workdir=tmp_path / "work2")
    out = transfer_callback(off, img, img, "BodyMap re-rendering", 192, "classical", True, 0)
    assert out[1].startswith("error: the neural re-renderer is unavailable: rerenderer_cpu256.pt "
                             "is there, but reroute cannot load it"), out[1]  # fmt: skip


def test_deadline_stops_a_request_between_stages(tmp_path):
    from app.callbacks import run_transfer

    svc = _services(tmp_path, _SlowPipeline, timeout_s=0.0)
    img = np.full((96, 96, 3), 128, np.uint8)
    out = run_transfer(svc.pipeline, img, img, deadline=svc.deadline())
    assert out[1].startswith("error: the request was stopped before checking the photos")
    assert "0 s limit" in out[1]


def test_fit_failure_shows_the_landmarks(tmp_path, monkeypatch):
    import app.callbacks as callbacks
    from reroute.errors import FitError

    class _FitFails:
        def __call__(self, source, target):
            raise FitError("the person's shoulders and hips are not visible enough to fit a body")

    drawn = np.zeros((8, 8, 3), np.uint8)
    monkeypatch.setattr(callbacks, "_landmarks_of", lambda photo, name: drawn)
    img = np.full((96, 96, 3), 128, np.uint8)
    out = callbacks.run_transfer(_FitFails(), img, img)
    assert out[1] == ("error: the person's shoulders and hips are not visible enough to fit a "
                      "body (the landmarks found are drawn under 'Fitted bodies').")  # fmt: skip
    assert out[0] is None and out[-2] is drawn and out[-1] is drawn


def test_novel_view_and_try_on_check_their_limits_before_any_model(tmp_path):
    from app.callbacks import novel_view_callback, try_on_callback

    svc = _services(tmp_path, max_frames=48)
    img = np.full((96, 96, 3), 128, np.uint8)
    for kwargs, expect in (
        ({"frames": 49}, "frames must be between 1 and 48, got 49"),
        ({"turn": 400}, "turn angle must be between -360 and 360 degrees, got 400"),
        ({"fps": 0}, "fps must be between 1 and 60, got 0"),
        ({"resolution": 32}, "resolution must be between 64 and 512 px, got 32"),
    ):
        video, strip, status = novel_view_callback(svc, img, **kwargs)
        assert (video, strip) == (None, None)
        assert status == f"error: {expect}.", status
    out = try_on_callback(svc, img, img, "hat")
    assert out[1] == "error: unknown region 'hat'; choose one of top, bottom, shoes, full outfit."
    assert try_on_callback(svc, None, img)[1] == "error: upload a garment donor photo."
    assert novel_view_callback(svc, None)[2] == "error: upload a photo."
    five = [str(tmp_path / f"more{i}.png") for i in range(5)]  # never read: refused first
    status = novel_view_callback(svc, img, more_photos=five)[2]
    assert status == "error: at most 4 more photos of the person, got 5.", status
    from app.callbacks import transfer_callback

    out = transfer_callback(svc, img, img, more_sources=five)
    assert out[1] == "error: at most 4 more photos of the person, got 5.", out[1]


def test_texture_pipeline_extracts_reads_back_and_retextures(tmp_path):
    """The texture tab's steps live in :mod:`reroute.pipelines.retexture`."""
    from reroute.pipelines import extract_texture, read_texture, retexture
    from reroute.pipelines.compose import texture_over_photo

    photo = np.asarray(Image.open(EXAMPLES / "synthetic_arms_down.png").convert("RGB"))
    stages = []
    ext = extract_texture(photo, size=128, texture_size=128, atlas_tile=32,
                          progress=lambda f, s: stages.append((f, s)))  # fmt: skip
    assert [f for f, _ in stages] == [0.0, 0.05, 0.8, 0.9, 1.0]
    assert ext.completion == "classical" and ext.analysis.image.shape == (128, 128, 3)
    for tex in (ext.texture, ext.partial):
        assert tex.pixels.shape == (128, 128, 3) and tex.pixels.dtype == np.float32
        assert 0.0 <= tex.pixels.min() and tex.pixels.max() <= 1.0
    assert ext.partial.visibility.mean() < ext.texture.visibility.mean()
    assert ext.atlas.shape == (128, 192, 3) and ext.atlas.dtype == np.uint8
    assert {"lift", "completion", "atlas", "total", "fit"} <= set(ext.timings)
    # from the analysis (cached in the app): no atlas asked for, no analysis stages
    again = extract_texture(ext.analysis, texture_size=128, atlas_tile=None)
    assert again.atlas is None and np.array_equal(again.texture.pixels, ext.texture.pixels)

    # an atlas PNG reads back as a continuous texture; a 2:1 image is refused
    Image.fromarray(ext.atlas).save(tmp_path / "atlas.png")
    pixels, kind = read_texture(tmp_path / "atlas.png", 128)
    assert kind == "DensePose atlas" and pixels.shape == (128, 128, 3)
    Image.fromarray(ext.texture.to_uint8()).save(tmp_path / "uv.png")
    assert read_texture(tmp_path / "uv.png", 64)[0].shape == (64, 64, 3)
    Image.new("RGB", (128, 64)).save(tmp_path / "wide.png")
    with pytest.raises(InputError, match="the texture is 128x64 px"):
        read_texture(tmp_path / "wide.png")

    big = np.asarray(Image.fromarray(photo).resize((256, 256)))
    out = retexture(ext.analysis, pixels, big)
    assert out.shape == big.shape and out.dtype == np.uint8
    assert np.array_equal(out, texture_over_photo(pixels, ext.analysis.correspondence, big))
    assert (out[0] == big[0]).all()  # background row untouched


# ------------------------------------------------------------ try-on and novel-view pieces


def test_region_masks_keep_face_hair_and_hands():
    from reroute.pipelines.tryon import (
        KEPT_PARTS,
        REGIONS,
        mix_textures,
        region_texture_mask,
        texel_parts,
    )
    from reroute.uv.texture import UVTexture

    T = 128
    parts = texel_parts(T)
    assert set(np.unique(parts)) == set(range(25))  # every DensePose part has texels
    red = UVTexture(np.tile(np.float32([1, 0, 0]), (T, T, 1)), np.ones((T, T), np.float32))
    blue = UVTexture(np.tile(np.float32([0, 0, 1]), (T, T, 1)), np.zeros((T, T), np.float32))
    kept = np.isin(parts, KEPT_PARTS)
    for region, region_parts in REGIONS.items():
        m = region_texture_mask(region, T, feather=0)
        assert np.array_equal(m > 0.5, np.isin(parts, region_parts)), region
        mixed = mix_textures(red, blue, region, feather=1.0)
        inside = np.isin(parts, region_parts)
        # well inside the region the donor's colour, on head and hands exactly the wearer's
        core = inside & (region_texture_mask(region, T, feather=1.0) > 0.999)
        assert core.sum() > 0.5 * inside.sum()
        assert np.allclose(mixed.pixels[core], [0, 0, 1], atol=1e-3)
        assert np.array_equal(mixed.pixels[kept], red.pixels[kept])
        assert np.allclose(mixed.visibility[core], 0.0, atol=1e-3)
    full = region_texture_mask("full outfit", T, feather=0) > 0.5
    assert np.array_equal(full | kept | (parts == 0), np.ones_like(full))  # all but head/hands


@pytest.fixture(scope="module")
def synthetic_body():
    from reroute.synth.engine import render_synthetic_person

    return render_synthetic_person(size=128, seed=0)


def test_orbit_turns_about_the_body_axis(synthetic_body):
    from reroute.pipelines.novel_view import orbit_vertices

    body = synthetic_body.body
    v = body.vertices.astype(np.float64)
    assert np.allclose(orbit_vertices(body, 0.0), v, atol=1e-6)
    assert np.allclose(orbit_vertices(body, 360.0), v, atol=1e-5)
    half = orbit_vertices(body, 180.0)
    c = (v.min(0) + v.max(0)) / 2
    up = body.rotation @ np.array([0.0, 0.0, 1.0])
    # heights along the up axis are kept; offsets across it are negated
    assert np.allclose((half - c) @ up, (v - c) @ up, atol=1e-5)
    across = (v - c) - np.outer((v - c) @ up, up)
    across_half = (half - c) - np.outer((half - c) @ up, up)
    assert np.allclose(across_half, -across, atol=1e-5)
    from_above = orbit_vertices(body, 0.0, 30.0)
    head = np.argmin(v[:, 1])  # highest point in the image (y down)
    assert from_above[head, 2] < v[head, 2]  # the head comes towards the camera


def test_novel_views_show_the_texture_and_encode_as_h264(synthetic_body, tmp_path):
    from reroute.io.video import probe_video, write_mp4  # fmt: skip
    from reroute.pipelines.novel_view import (  # fmt: skip
        NovelViewConfig,
        frame_strip,
        render_novel_views,
    )

    tex = np.tile(np.float32([0.2, 0.6, 0.4]), (64, 64, 1))
    video = render_novel_views(synthetic_body.body, tex, NovelViewConfig(frames=24, size=96))
    assert video.frames.shape == (24, 96, 96, 3) and video.frames.dtype == np.uint8
    expect = np.rint(np.float32([0.2, 0.6, 0.4]) * 255)
    for f, m in zip(video.frames, video.masks, strict=True):
        assert 0.05 < m.mean() < 0.6
        assert np.abs(f[m].astype(np.float32) - expect).max() <= 1
        assert (f[~m] == 255).all()
    # the first frame is the photo's own view
    first = synthetic_body.correspondence.resized(96, 96).mask
    assert (video.masks[0] == first).mean() > 0.97
    assert np.allclose(video.yaw_deg, np.arange(24) * 15.0)

    out = write_mp4(video.frames, tmp_path / "v.mp4", fps=12)
    info = probe_video(out)
    assert (info.codec, info.frames, info.width, info.height) == ("h264", 24, 96, 96)
    assert info.pix_fmt == "yuv420p" and abs(info.fps - 12) < 1e-6
    assert [p.name for p in tmp_path.iterdir()] == ["v.mp4"]  # no temporary file left
    with pytest.raises(ValueError, match="even frame sizes"):
        write_mp4(np.zeros((2, 95, 96, 3), np.uint8), tmp_path / "odd.mp4")
    with pytest.raises(ValueError, match="frames must be between 1 and 360"):
        render_novel_views(synthetic_body.body, tex, NovelViewConfig(frames=0))
    strip = frame_strip(video.frames, count=8, height=48)
    assert strip.shape == (48, 8 * 48, 3)


def test_novel_views_and_try_on_take_the_rerenderer(synthetic_body, tiny_rerenderer):
    from reroute.pipelines.novel_view import NovelViewConfig, render_novel_views
    from reroute.pipelines.tryon import TryOnPipeline

    tex = np.tile(np.float32([0.2, 0.6, 0.4]), (64, 64, 1))
    cfg = NovelViewConfig(frames=3, size=96)
    plain = render_novel_views(synthetic_body.body, tex, cfg)
    video = render_novel_views(synthetic_body.body, tex, cfg, rerender="network",
                               rerender_checkpoint=str(tiny_rerenderer))  # fmt: skip
    assert video.rerendered and not plain.rerendered
    assert video.frames.shape == plain.frames.shape and video.frames.dtype == np.uint8
    assert np.array_equal(video.masks, plain.masks)
    assert video.timings["rerender"] > 0 and plain.timings["rerender"] == 0
    # untrained: the frames it was given, give or take the soft silhouette edge
    assert np.abs(video.frames.astype(int) - plain.frames).mean() < 3
    for fn in (lambda **kw: render_novel_views(synthetic_body.body, tex, cfg, **kw),
               lambda **kw: TryOnPipeline(**kw)):  # fmt: skip
        with pytest.raises(InputError, match="checkpoint /nonexistent.pt does not exist"):
            fn(rerender="network", rerender_checkpoint="/nonexistent.pt")
        with pytest.raises(InputError, match="unknown re-rendering 'bogus'; choose none or"):
            fn(rerender="bogus")


# ------------------------------------------------------------ the real server


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """URL of a ``python launch.py`` server; killed at the end of the module."""
    yield from _launch(tmp_path_factory)


def _launch(tmp_path_factory, *args: str):
    """Start ``python launch.py --port P *args``, yield its URL once it answers, then stop it."""
    port = _free_port()
    url = f"http://127.0.0.1:{port}/"
    log_path = tmp_path_factory.mktemp("server") / "server.log"
    env = dict(os.environ, GRADIO_ANALYTICS_ENABLED="False")
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "launch.py", "--port", str(port), *args],
            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            if proc.poll() is not None:
                pytest.fail(f"launch.py exited with {proc.returncode}:\n{log_path.read_text()}")
            try:
                with urllib.request.urlopen(url, timeout=5) as r:
                    if r.status == 200:
                        break
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"server not up after {START_TIMEOUT_S} s:\n{log_path.read_text()}")
            time.sleep(1)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="module")
def client(server):
    from gradio_client import Client

    return Client(server, verbose=False)


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    """An upper-body photo (scikit-image's astronaut, 512x512) and a flat gray image."""
    import skimage.data

    d = tmp_path_factory.mktemp("photos")
    person = d / "astronaut.png"
    Image.fromarray(skimage.data.astronaut()).save(person)
    gray = d / "gray.png"
    Image.new("RGB", (128, 128), (128, 128, 128)).save(gray)
    return person, gray


def test_api_endpoint_is_named_transfer(client):
    assert "/transfer" in client.view_api(print_info=False, return_format="dict")["named_endpoints"]


def test_no_person_is_reported_then_a_valid_request_succeeds(client, photos):
    from gradio_client import handle_file

    person, gray = photos
    out = client.predict(handle_file(str(person)), handle_file(str(gray)), api_name="/transfer")
    result, status = out[0], out[1]
    assert result is None
    assert status.startswith("error:") and "no person" in status, status
    assert "target photo" in status

    # the server stays up and the next (valid) request works; maps only when asked for
    for want in (True, False):
        out = client.predict(handle_file(str(person)), handle_file(str(person)), maps=want,
                             api_name="/transfer")  # fmt: skip
        result, status, *maps = out
        assert status.startswith("ok:"), status
        assert result is not None and Path(result).is_file()
        with Image.open(result) as im:
            assert im.size == (512, 512)  # the target photo's size
        assert len(maps) == 8  # six intermediate maps + the two fitted bodies over their photos
        for m in maps:
            assert (m is not None and Path(m).is_file()) if want else m is None


EXAMPLES = ROOT / "app" / "examples"


@pytest.fixture(scope="module")
def bad_files(tmp_path_factory):
    """A text file named .png, a photo of two persons and a file over the upload limit."""
    d = tmp_path_factory.mktemp("bad")
    text = d / "notes.png"
    text.write_text("this is a text file, not a picture\n")
    a = np.asarray(Image.open(EXAMPLES / "synthetic_arms_down.png").convert("RGB"))
    b = np.asarray(Image.open(EXAMPLES / "synthetic_turned.png").convert("RGB"))
    two = d / "two.png"
    Image.fromarray(np.concatenate([a, b], 1)).save(two)
    big = d / "big.png"
    big.write_bytes(b"\x89PNG" + os.urandom(21 * 1024 * 1024))  # over the 20 MB default
    return {"text": text, "two": two, "big": big}


def test_every_tab_has_a_named_endpoint(client):
    named = client.view_api(print_info=False, return_format="dict")["named_endpoints"]
    assert {"/transfer", "/try_on", "/novel_view", "/texture", "/retexture"} <= set(named)
    params = [p["parameter_name"] for p in named["/novel_view"]["parameters"]]
    assert params == ["photo", "frames", "turn", "elevation", "fps", "resolution", "completion",
                      "more_photos"]  # fmt: skip
    # the intermediate maps cost time under load: off unless asked for
    maps, more = named["/transfer"]["parameters"][-2:]
    assert maps["parameter_name"] == "maps" and maps["parameter_default"] is False
    # more photos of the source person: optional, last
    assert more["parameter_name"] == "more_sources" and more["parameter_has_default"], more
    # texture completion (default classical) of every completing endpoint
    where = {"/transfer": 4, "/try_on": -1, "/novel_view": -2, "/texture": -1}
    for api, i in where.items():
        param = named[api]["parameters"][i]
        assert param["parameter_name"] == "completion", (api, param)
        assert param["parameter_default"] == "classical", (api, param)


def test_try_on_swaps_the_top_and_keeps_the_head(client):
    from gradio_client import handle_file

    donor, wearer = EXAMPLES / "synthetic_turned.png", EXAMPLES / "synthetic_arms_down.png"
    out = client.predict(handle_file(str(donor)), handle_file(str(wearer)), "top",
                         api_name="/try_on")  # fmt: skip
    result, status, mixed, donor_fit, wearer_fit, mask, gallery = out
    assert status.startswith("ok: top swapped"), status
    res = np.asarray(Image.open(result).convert("RGB")).astype(int)
    w = np.asarray(Image.open(wearer).convert("RGB")).astype(int)
    assert np.asarray(Image.open(mask)).shape[:2] == res.shape[:2]
    assert res.shape == w.shape
    changed = np.abs(res - w).sum(-1) > 30
    # the head (top rows of the person) is untouched; the shirt turned from green to blue
    ys, xs = np.nonzero(np.abs(w - w[0, 0]).sum(-1) > 30)
    top = ys.min()
    assert not changed[top : top + 12].any()
    shirt = (np.arange(w.shape[0])[:, None] > top + 45) & (
        np.arange(w.shape[0])[:, None] < top + 80
    )
    shirt = shirt & (np.abs(xs.mean() - np.arange(w.shape[1]))[None] < 12)
    assert res[shirt][:, 2].mean() > w[shirt][:, 2].mean() + 30  # bluer
    assert res[shirt][:, 1].mean() < w[shirt][:, 1].mean() - 10  # less green
    assert changed.mean() > 0.02
    for p in (mixed, donor_fit, wearer_fit):
        assert p is not None and Path(p).is_file()
    assert not gallery


def test_transfer_fuses_more_photos_of_the_source(client, tmp_path):
    """A colour that only the second source photo (her back, torso painted green) shows
    reaches the target's back through ``more_sources``."""
    from gradio_client import handle_file

    from reroute.synth.engine import render_synthetic_person

    front = render_synthetic_person(None, size=256, seed=3).image
    back = render_synthetic_person(None, size=256, seed=3, yaw_deg=180)
    painted = back.image.copy()
    painted[back.correspondence.mask & (back.correspondence.part == 1)] = (0, 200, 0)
    target = render_synthetic_person(None, size=256, seed=3, yaw_deg=165)
    files = {}
    for name, pixels in (("front", front), ("back", painted), ("target", target.image)):
        files[name] = tmp_path / f"{name}.png"
        Image.fromarray(pixels).save(files[name])
    where = target.correspondence.mask & (target.correspondence.part == 1)
    greens = []
    for more in ([], [handle_file(str(files["back"]))]):
        out = client.predict(handle_file(str(files["front"])), handle_file(str(files["target"])),
                             more_sources=more, api_name="/transfer")  # fmt: skip
        assert out[1].startswith("ok:"), out[1]
        px = np.asarray(Image.open(out[0]).convert("RGB"))[where].astype(float)
        greens.append((px[:, 1] - (px[:, 0] + px[:, 2]) / 2).mean())
    assert greens[0] < 20 and greens[1] > 80, greens


def test_novel_view_video_is_h264_with_the_asked_frames(client):
    from gradio_client import handle_file

    from reroute.io.video import probe_video

    photo = EXAMPLES / "synthetic_arms_down.png"  # analysed by the try-on test: cached
    video, strip, status = client.predict(handle_file(str(photo)), 24, 360, 10, 12, 256,
                                          api_name="/novel_view")  # fmt: skip
    assert status.startswith("ok: 24 frames, 256x256 px"), status
    path = video["video"] if isinstance(video, dict) else video
    info = probe_video(path)
    assert (info.codec, info.frames, info.width, info.height) == ("h264", 24, 256, 256)
    assert info.pix_fmt == "yuv420p" and abs(info.fps - 12) < 1e-6
    with Image.open(strip) as im:
        assert im.size[1] == 160 and im.size[0] >= 6 * 150


def test_texture_download_and_re_render_round_trip(client, tmp_path):
    from gradio_client import handle_file

    photo = EXAMPLES / "synthetic_arms_down.png"
    tex, atlas, tex_png, atlas_png, status = client.predict(handle_file(str(photo)),
                                                            api_name="/texture")  # fmt: skip
    assert status.startswith("ok: completed 256x256 UV texture"), status
    with Image.open(tex_png) as a, Image.open(atlas_png) as b:
        assert a.size == (256, 256) and b.size == (768, 512) and a.format == b.format == "PNG"
    # an edited texture (all red) re-renders the person red, and the background stays
    red = tmp_path / "red_atlas.png"
    edited = np.asarray(Image.open(atlas_png).convert("RGB")).copy()
    edited[...] = (255, 0, 0)
    Image.fromarray(edited).save(red)
    result, status = client.predict(handle_file(str(photo)), handle_file(str(red)),
                                    api_name="/retexture")  # fmt: skip
    assert status == "ok: re-rendered with the uploaded DensePose atlas.", status
    res = np.asarray(Image.open(result).convert("RGB")).astype(int)
    src = np.asarray(Image.open(photo).convert("RGB")).astype(int)
    reddish = (res[..., 0] > 200) & (res[..., 1] < 40) & (res[..., 2] < 40)
    person = np.abs(src - src[0, 0]).sum(-1) > 30
    assert reddish[person].mean() > 0.6
    assert (res[0] == src[0]).all()  # background row untouched


def test_bad_input_gets_one_sentence_and_the_next_request_works(client, bad_files):
    from gradio_client import handle_file

    photo = handle_file(str(EXAMPLES / "synthetic_arms_down.png"))
    cases = [
        ("/texture", (handle_file(str(bad_files["text"])),), "not a readable image"),
        ("/texture", (handle_file(str(bad_files["two"])),), "2 persons"),
        ("/transfer", (handle_file(str(bad_files["two"])), photo, "BodyMap re-rendering", 256,
                       "classical", True), "2 persons"),
        ("/retexture", (photo, handle_file(str(bad_files["two"]))),
         "the texture is 512x256 px; upload a square continuous UV texture"),
    ]  # fmt: skip
    for api, args, expect in cases:
        status = next(v for v in client.predict(*args, api_name=api)
                      if isinstance(v, str) and v.startswith(("ok", "error")))  # fmt: skip
        assert status.startswith("error: ") and expect in status, (api, status)
        assert status.endswith(".") and "\n" not in status and "Traceback" not in status
        assert "/tmp/" not in status  # server paths are not shown
    # values outside a slider's range are refused by Gradio itself, in one sentence
    with pytest.raises(Exception, match="Value 1000 is greater than maximum value 240"):
        client.predict(photo, 1000, api_name="/novel_view")
    # over the upload limit: refused at upload, the server stays up
    with pytest.raises(Exception, match="(?i)size|large|413"):
        client.predict(handle_file(str(bad_files["big"])), api_name="/texture")
    *_, status = client.predict(photo, api_name="/texture")
    assert status.startswith("ok:"), status


def test_network_texture_completion_through_the_api(client):
    """The committed checkpoint is in checkpoints/: the network is offered and used."""
    from gradio_client import handle_file

    source, target = EXAMPLES / "synthetic_turned.png", EXAMPLES / "synthetic_arms_down.png"
    # texture tab (the photo's fit is cached by the tests above): classical vs network
    outs = {
        how: client.predict(handle_file(str(target)), 256, how, api_name="/texture")
        for how in ("classical", "network")
    }
    for how, out in outs.items():
        assert out[-1].startswith("ok: completed 256x256 UV texture"), out[-1]
        assert out[-1].endswith(f"({how} completion)."), out[-1]
    classical, network = (np.asarray(Image.open(outs[h][2]).convert("RGB")).astype(int)
                          for h in ("classical", "network"))  # fmt: skip
    same = (np.abs(classical - network).sum(-1) == 0).mean()
    assert 0.05 < same < 0.95, same  # observed texels kept, unseen ones filled differently

    # pose transfer with the network
    out = client.predict(handle_file(str(source)), handle_file(str(target)),
                         "BodyMap re-rendering", 256, "network", api_name="/transfer")  # fmt: skip
    result, status = out[0], out[1]
    assert status.startswith("ok: pose transferred"), status
    assert "network completion" in status, status
    assert result is not None and Path(result).is_file()


def test_dense_pose_transfer_through_the_api(client):
    """The committed DPT checkpoint is in checkpoints/: the method is offered and runs its network."""
    from gradio_client import handle_file

    if not (ROOT / "checkpoints" / "dpt_cpu256.pt").is_file():
        pytest.skip("needs the committed checkpoints/dpt_cpu256.pt")
    source, target = EXAMPLES / "synthetic_turned.png", EXAMPLES / "synthetic_arms_down.png"
    out = client.predict(handle_file(str(source)), handle_file(str(target)), "Dense Pose Transfer", 256,
                         maps=True, api_name="/transfer")  # fmt: skip
    result, status, *maps = out
    assert status.startswith("ok: pose transferred") and "Dense Pose Transfer network" in status, status
    with Image.open(result) as im:
        assert im.size == Image.open(target).size
    # IUV maps, the inpainted atlas, the warping stream's output and both fits; no UV textures
    assert [m is None for m in maps] == [False, False, True, True, False, False, False, False]


# ------------------------------------------------------------ a server with the re-renderer


@pytest.fixture(scope="module")
def rerender_client(tmp_path_factory, tiny_rerenderer):
    """A client of a server whose ``--checkpoints`` holds only the tiny re-renderer."""
    from gradio_client import Client

    for url in _launch(tmp_path_factory, "--checkpoints", str(tiny_rerenderer.parent)):
        yield Client(url, verbose=False)


def test_rerenderer_through_the_api(rerender_client):
    """The checkbox is offered and used; untrained, it returns the warp-only result."""
    from gradio_client import handle_file

    source = handle_file(str(EXAMPLES / "synthetic_turned.png"))
    target = handle_file(str(EXAMPLES / "synthetic_arms_down.png"))
    results = {}
    for on in (True, False):
        out = rerender_client.predict(source, target, "BodyMap re-rendering", 256, "classical",
                                      on, api_name="/transfer")  # fmt: skip
        status = out[1]
        assert status.startswith("ok: pose transferred"), status
        assert ("neural re-renderer" in status) is on, status
        results[on] = np.asarray(Image.open(out[0]).convert("RGB")).astype(int)
    assert results[True].shape == results[False].shape == (256, 256, 3)
    diff = np.abs(results[True] - results[False]).mean()
    print(f"\nuntrained re-renderer vs warp only, through the app: {diff:.2f} grey levels")
    assert diff < 3


_ARENA_PROBE = """
import ctypes, re, sys, tempfile, threading
import launch
capped = launch.limit_malloc_arenas(2) if sys.argv[1] == "cap" else None
barrier = threading.Barrier(6)
def work():
    barrier.wait()  # six threads allocate at once, so each would take its own arena
    keep = [bytearray(2000) for _ in range(2000)]
    barrier.wait()
threads = [threading.Thread(target=work) for _ in range(6)]
for t in threads: t.start()
for t in threads: t.join()
libc = ctypes.CDLL(None)
libc.fopen.restype = ctypes.c_void_p
with tempfile.NamedTemporaryFile() as f:
    fp = ctypes.c_void_p(libc.fopen(f.name.encode(), b"w"))
    libc.malloc_info(0, fp)
    libc.fclose(fp)
    print(capped, len(re.findall(r"<heap nr=", open(f.name).read())))
"""


def test_server_caps_glibc_malloc_arenas():
    """launch.limit_malloc_arenas: six allocating threads share 2 arenas instead of one each;
    a MALLOC_ARENA_MAX in the environment is left to decide."""
    import ctypes

    if not hasattr(ctypes.CDLL(None), "malloc_info"):
        pytest.skip("not glibc: no malloc arenas to cap")
    env = {k: v for k, v in os.environ.items() if k != "MALLOC_ARENA_MAX"}

    def arenas(mode: str, **extra: str) -> str:
        out = subprocess.run([sys.executable, "-c", _ARENA_PROBE, mode], cwd=ROOT, env={**env, **extra},
                             capture_output=True, text=True, timeout=120, check=True)  # fmt: skip
        return out.stdout.split()

    capped, n_capped = arenas("cap")
    _, n_free = arenas("free")
    assert capped == "True" and int(n_capped) == 2
    assert int(n_free) > 2  # without the cap the threads took arenas of their own
    assert arenas("cap", MALLOC_ARENA_MAX="3")[0] == "False"
