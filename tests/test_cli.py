"""The real command line, as a user runs it: ``python -m reroute ...`` in a subprocess.

Bad input must give exit code 2, exactly one ``error: ...`` line on stderr (no
traceback) and nothing at the ``--out`` path; good input of any colour mode
must work. Inputs are synthetic anny renders (:mod:`reroute.synth.engine`).

mediapipe and warp write their own log lines to stderr (``W0000 ...``,
``INFO: Created TensorFlow Lite XNNPACK delegate``...); reroute's own lines
are the ones starting with ``error:`` or ``note:``.

The subprocesses run torch single-threaded (``OMP_NUM_THREADS=1``): on a busy
2-core machine a two-thread fit is several times slower.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from reroute.io.images import MAX_SIDE
from reroute.io.video import probe_video
from reroute.synth.engine import render_synthetic_person
from reroute.synth.pose import EXAMPLE_POSES

REPO = Path(__file__).resolve().parents[1]


def _run(*args: str, timeout: int = 600) -> subprocess.CompletedProcess:
    env = dict(os.environ, OMP_NUM_THREADS="1")
    return subprocess.run([sys.executable, "-m", "reroute", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=timeout)  # fmt: skip


def _error_lines(stderr: str) -> list[str]:
    return [ln for ln in stderr.splitlines() if ln.startswith("error:")]


@pytest.fixture(scope="module")
def renders() -> dict[str, object]:
    return {
        "arms_down": render_synthetic_person(EXAMPLE_POSES["arms_down"], seed=0),
        "arm_raised": render_synthetic_person(EXAMPLE_POSES["arm_raised"], seed=1),
        "turned": render_synthetic_person(EXAMPLE_POSES["turned"], yaw_deg=30.0, seed=2),
    }


@pytest.fixture(scope="module")
def inputs(tmp_path_factory, renders) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("inputs")
    files: dict[str, Path] = {}

    def save(name: str, pixels: np.ndarray) -> None:
        files[name] = d / f"{name}.png"
        Image.fromarray(pixels).save(files[name])

    save("good", renders["arms_down"].image)
    (d / "text.png").write_text("this is a text file, not a picture\n")
    files["text"] = d / "text.png"
    (d / "empty.png").write_bytes(b"")
    files["empty"] = d / "empty.png"
    raw = files["good"].read_bytes()
    (d / "truncated.png").write_bytes(raw[: len(raw) // 2])
    files["truncated"] = d / "truncated.png"
    save("tiny", renders["arms_down"].image[100:140, 100:140])
    files["missing"] = d / "does_not_exist.png"
    save("flat", np.full((256, 256, 3), 200, np.uint8))
    save("noise", np.random.default_rng(0).integers(0, 256, (256, 256, 3), dtype=np.uint8))
    save("two", np.concatenate([renders["arms_down"].image, renders["turned"].image], 1))
    return files


# case -> (what the error line must mention)
BAD_SOURCES = {
    "text": "not a readable image",
    "empty": "empty",
    "truncated": "truncated",
    "tiny": "at least 64",
    "missing": "not found",
    "flat": "no person",
    "noise": "no person",
    "two": "2 persons",
}


def _assert_refused(r: subprocess.CompletedProcess, out_dir: Path, expect: str) -> None:
    assert r.returncode == 2, f"exit {r.returncode}\n{r.stderr}"
    errors = _error_lines(r.stderr)
    assert len(errors) == 1, r.stderr
    assert expect in errors[0].lower(), errors[0]
    assert "Traceback" not in r.stderr, r.stderr
    assert r.stdout == "", r.stdout
    assert list(out_dir.iterdir()) == []  # no output, no temporary file left behind


@pytest.mark.parametrize("case", list(BAD_SOURCES))
def test_transfer_refuses_bad_source(inputs, tmp_path, case) -> None:
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    out = out_dir / "result.png"
    r = _run("transfer", "--source", str(inputs[case]), "--target", str(inputs["good"]),
             "--out", str(out))  # fmt: skip
    _assert_refused(r, out_dir, BAD_SOURCES[case])


def test_transfer_checks_the_target_before_any_model_runs(inputs, tmp_path) -> None:
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    r = _run("transfer", "--source", str(inputs["good"]), "--target", str(inputs["truncated"]),
             "--out", str(out_dir / "result.png"))  # fmt: skip
    _assert_refused(r, out_dir, "truncated")
    assert str(inputs["truncated"]) in _error_lines(r.stderr)[0]
    assert "XNNPACK" not in r.stderr  # refused before mediapipe started


@pytest.mark.parametrize("case", ["text", "tiny", "flat"])
def test_correspond_refuses_bad_image(inputs, tmp_path, case) -> None:
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    r = _run("correspond", str(inputs[case]), "--out", str(out_dir / "iuv.png"))
    _assert_refused(r, out_dir, BAD_SOURCES[case])


@pytest.mark.parametrize(
    "command, out_name",
    [("transfer", "result.gif"), ("transfer", "result"), ("correspond", "iuv.jpg")],
)
def test_bad_output_extension(inputs, tmp_path, command, out_name) -> None:
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    out = out_dir / out_name
    if command == "transfer":
        args = ["--source", str(inputs["good"]), "--target", str(inputs["good"])]
    else:
        args = [str(inputs["good"])]
    r = _run(command, *args, "--out", str(out))
    _assert_refused(r, out_dir, "must end in")


def test_transfer_grayscale_source_and_rgba_target(renders, tmp_path) -> None:
    """The one happy-path transfer of the default suite (full pipeline, ~20 s)."""
    src, tgt = renders["arms_down"], renders["arm_raised"]
    source = tmp_path / "source_gray.png"
    Image.fromarray(src.image).convert("L").save(source)
    target = tmp_path / "target_rgba.png"
    alpha = cv2.dilate(tgt.correspondence.mask.astype(np.uint8), np.ones((5, 5), np.uint8)) * 255
    Image.fromarray(np.dstack([tgt.image, alpha])).save(target)  # transparent background
    assert Image.open(source).mode == "L" and Image.open(target).mode == "RGBA"
    out = tmp_path / "result.png"

    # the warp alone: a trained re-renderer (the default) may tint grey by a few levels
    r = _run("transfer", "--source", str(source), "--target", str(target), "--out", str(out),
             "--rerender", "none")  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert _error_lines(r.stderr) == []
    report = json.loads(r.stdout.strip().splitlines()[-1])
    assert Path(report["out"]) == out and report["timings_s"]["total"] > 0
    img = np.asarray(Image.open(out))
    assert img.shape == (256, 256, 3) and img.dtype == np.uint8
    # the source was grayscale and so is everything taken from it
    rgb = img.astype(int)
    assert (
        np.abs(rgb[..., 0] - rgb[..., 1]).max() <= 2
        and np.abs(rgb[..., 1] - rgb[..., 2]).max() <= 2
    )
    # the person now stands in the target's pose, over the source's background
    gray = rgb.mean(-1)
    bg_level = np.median(gray[:20])  # the top rows are background
    person = np.abs(gray - bg_level) > 8
    tmask, smask = tgt.correspondence.mask, src.correspondence.mask
    iou_t = (person & tmask).sum() / (person | tmask).sum()
    iou_s = (person & smask).sum() / (person | smask).sum()
    print(
        f"\ntransfer output silhouette: IoU {iou_t:.3f} with the target, {iou_s:.3f} with the source"
    )
    assert iou_t > 0.6 and iou_t > iou_s + 0.1


def _agreement(iuv: np.ndarray, truth_part: np.ndarray) -> float:
    fg = truth_part > 0
    return float((iuv[..., 0][fg] == truth_part[fg]).mean())


def test_correspond_writes_iuv_at_photo_resolution(renders, tmp_path) -> None:
    truth = renders["arm_raised"]
    photo = tmp_path / "photo.png"
    Image.fromarray(truth.image).save(photo)
    out = tmp_path / "iuv.png"
    r = _run("correspond", str(photo), "--out", str(out))
    assert r.returncode == 0, r.stderr
    assert _error_lines(r.stderr) == []
    report = json.loads(r.stdout.strip().splitlines()[-1])
    assert Path(report["out"]) == out and report["keypoint_error_px"] < 10
    iuv = cv2.imread(str(out))
    assert iuv is not None and iuv.shape == (256, 256, 3) and iuv.dtype == np.uint8
    assert iuv[..., 0].max() <= 24
    assert (iuv[iuv[..., 0] == 0][:, 1:] == 0).all()  # U, V are 0 on the background
    agree = _agreement(iuv, truth.correspondence.part)
    print(f"\ncorrespond: part label agrees with the truth on {agree:.1%} of the body's pixels")
    assert agree > 0.6


def test_correspond_downscales_a_huge_image_with_a_notice(renders, tmp_path) -> None:
    """An image over MAX_SIDE is downscaled, with a note on stderr; the IUV has its new size."""
    truth = renders["arms_down"]
    crop = (88, 168)  # a narrow, tall picture keeps the pixel count (and the test) small
    small = truth.image[:, crop[0] : crop[1]]
    factor = (MAX_SIDE + 128) / small.shape[0]
    big_h, big_w = MAX_SIDE + 128, round(small.shape[1] * factor)
    photo = tmp_path / "huge.png"
    Image.fromarray(small).resize((big_w, big_h), Image.Resampling.NEAREST).save(photo)
    out = tmp_path / "iuv.png"
    r = _run("correspond", str(photo), "--out", str(out))
    assert r.returncode == 0, r.stderr
    notes = [ln for ln in r.stderr.splitlines() if ln.startswith("note:")]
    assert len(notes) == 1 and "downscaled" in notes[0], r.stderr
    new_w = round(big_w * MAX_SIDE / big_h)
    assert f"{big_w}x{big_h}" in notes[0] and f"{new_w}x{MAX_SIDE}" in notes[0], notes[0]
    iuv = cv2.imread(str(out))
    assert iuv.shape == (MAX_SIDE, new_w, 3)
    assert iuv[..., 0].max() <= 24
    # sample the IUV at the centres of the small picture's pixels
    ys = ((np.arange(small.shape[0]) + 0.5) * MAX_SIDE / small.shape[0]).astype(int)
    xs = ((np.arange(small.shape[1]) + 0.5) * new_w / small.shape[1]).astype(int)
    sampled = iuv[np.ix_(ys, xs)]
    agree = _agreement(sampled, truth.correspondence.part[:, crop[0] : crop[1]])
    print(f"\nhuge image: part label agreement {agree:.1%}")
    assert agree > 0.6


# try-on and novel-view: bad input (case -> (arguments, what the error line must mention));
# {good} is a photo of one person, {text} a text file, {out_dir} the empty output folder
BAD_TRY_ON_AND_NOVEL_VIEW = {
    "try-on donor not an image": (
        "try-on --donor {text} --wearer {good} --region top --out {out_dir}/r.png",
        "not a readable image",
    ),
    "try-on unknown region": (
        "try-on --donor {good} --wearer {good} --region hat --out {out_dir}/r.png",
        "unknown --region 'hat'",
    ),
    "try-on wrong extension": (
        "try-on --donor {good} --wearer {good} --region top --out {out_dir}/r.mp4",
        "must end in .png",
    ),
    "try-on missing region": (
        "try-on --donor {good} --wearer {good} --out {out_dir}/r.png",
        "required: --region",
    ),
    "novel-view wrong extension": ("novel-view {good} --out {out_dir}/v.png", "must end in .mp4"),
    "novel-view frames out of range": (
        "novel-view {good} --out {out_dir}/v.mp4 --frames 0",
        "frames must be between 1 and",
    ),
    "novel-view size out of range": (
        "novel-view {good} --out {out_dir}/v.mp4 --size 20",
        "--size must be between 64 and",
    ),
}


@pytest.mark.parametrize("case", list(BAD_TRY_ON_AND_NOVEL_VIEW))
def test_try_on_and_novel_view_refuse_bad_input(inputs, tmp_path, case) -> None:
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    template, expect = BAD_TRY_ON_AND_NOVEL_VIEW[case]
    args = template.format(good=inputs["good"], text=inputs["text"], out_dir=out_dir).split()
    r = _run(*args)
    _assert_refused(r, out_dir, expect.lower())
    assert "XNNPACK" not in r.stderr  # refused before mediapipe started


def test_help_and_argument_errors_import_no_torch() -> None:
    """``--help`` lists every command, and neither it nor an argument error imports torch
    (the registry's names are read only when a command runs or its own --help lists them)."""
    code = """import sys
from reroute.cli import main
for argv in (["--help"], ["try-on", "--donor", "a.png"]):
    try:
        main(argv)
    except SystemExit as e:
        print("exit", e.code)
print("torch loaded:", "torch" in sys.modules)
"""
    r = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True)
    assert r.stdout.count("exit 0") == 1 and r.stdout.count("exit 2") == 1, r.stdout + r.stderr
    for command in ("transfer", "try-on", "novel-view", "correspond", "evaluate"):
        assert command in r.stdout
    errors = _error_lines(r.stderr)
    assert len(errors) == 1 and "required: --wearer, --region, --out" in errors[0], r.stderr
    assert r.stdout.strip().endswith("torch loaded: False")


def test_try_on_full_outfit_at_the_wearer_resolution(renders, tmp_path) -> None:
    """The wearer (a 256x176 crop) in the donor's full outfit; face, hands, background kept."""
    donor, wearer = tmp_path / "donor.png", tmp_path / "wearer.png"
    Image.fromarray(renders["arms_down"].image).save(donor)
    crop = slice(40, 216)
    w_img = renders["arm_raised"].image[:, crop]
    Image.fromarray(w_img).save(wearer)
    out = tmp_path / "tried_on.png"
    r = _run("try-on", "--donor", str(donor), "--wearer", str(wearer), "--region", "full",
             "--out", str(out), "--size", "128")  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert _error_lines(r.stderr) == []
    report = json.loads(r.stdout.strip().splitlines()[-1])
    assert Path(report["out"]) == out and report["region"] == "full outfit"
    img = np.asarray(Image.open(out))
    assert img.shape == w_img.shape and img.dtype == np.uint8  # the wearer photo's size
    diff = np.abs(img.astype(int) - w_img.astype(int)).sum(-1)
    truth = renders["arm_raised"].correspondence
    near = cv2.dilate(truth.mask[:, crop].astype(np.uint8), np.ones((15, 15), np.uint8)) > 0
    torso = np.isin(truth.part[:, crop], (1, 2))
    print(f"\ntry-on: {(diff[torso] > 30).mean():.1%} of the torso changed")
    assert (diff[~near] == 0).all()  # the background is the wearer's photo, unchanged
    assert (diff[torso] > 30).mean() > 0.3  # the donor's top is on


def test_novel_view_writes_an_mp4_with_the_requested_frames(inputs, tmp_path) -> None:
    out = tmp_path / "turn.mp4"
    r = _run("novel-view", str(inputs["good"]), "--out", str(out), "--frames", "4",
             "--size", "128")  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert _error_lines(r.stderr) == []
    report = json.loads(r.stdout.strip().splitlines()[-1])
    assert Path(report["out"]) == out and report["frames"] == 4
    info = probe_video(out)
    assert (info.codec, info.frames, info.width, info.height) == ("h264", 4, 128, 128)
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temp file


@pytest.mark.slow
def test_transfer_debug_dir_and_jpeg_output(inputs, renders, tmp_path) -> None:
    """A second full transfer: JPEG output and every debug map."""
    target = tmp_path / "target.png"
    Image.fromarray(renders["turned"].image).save(target)
    out = tmp_path / "result.jpg"
    debug = tmp_path / "debug"
    r = _run("transfer", "--source", str(inputs["good"]), "--target", str(target),
             "--out", str(out), "--debug-dir", str(debug))  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert Image.open(out).format == "JPEG" and Image.open(out).size == (256, 256)
    names = {p.name for p in debug.iterdir()}
    assert {"iuv_source.png", "iuv_target.png", "texture_partial.png", "texture_completed.png",
            "atlas_completed.png", "warped.png", "timings.json"} <= names  # fmt: skip
    iuv = cv2.imread(str(debug / "iuv_target.png"))
    agree = _agreement(iuv, renders["turned"].correspondence.part)
    assert agree > 0.6


# ------------------------------------------------------------ the neural re-renderer
# ``tiny_rerenderer`` (tests/conftest.py) is an untrained checkpoint: it returns the
# warp-only composite it is given, so these tests check that it ran, not what it learned.


def test_transfer_with_the_rerenderer(inputs, renders, tiny_rerenderer, tmp_path) -> None:
    """``transfer --rerender network``: re-rendered at the working size, the target's resolution."""
    target = tmp_path / "target.png"
    Image.fromarray(renders["arm_raised"].image).save(target)
    out, debug = tmp_path / "result.png", tmp_path / "debug"
    r = _run("transfer", "--source", str(inputs["good"]), "--target", str(target),
             "--out", str(out), "--rerender", "network",
             "--rerender-checkpoint", str(tiny_rerenderer), "--debug-dir", str(debug))  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert _error_lines(r.stderr) == []
    report = json.loads(r.stdout.strip().splitlines()[-1])
    assert report["rerendered"] is True and "rerender" in report["timings_s"]
    img = np.asarray(Image.open(out)).astype(int)
    warp_only = np.asarray(Image.open(debug / "composite_warp_only.png")).astype(int)
    assert img.shape == warp_only.shape == (256, 256, 3)  # working size = target size here
    diff = np.abs(img - warp_only).mean()
    print(f"\nuntrained re-renderer vs warp-only composite: {diff:.2f} grey levels")
    assert diff < 3


def test_try_on_with_the_rerenderer(renders, tiny_rerenderer, tmp_path) -> None:
    """``try-on --rerender network``: re-rendered at 128 px, resized to the wearer photo's size."""
    donor, wearer = tmp_path / "donor.png", tmp_path / "wearer.png"
    Image.fromarray(renders["arms_down"].image).save(donor)
    Image.fromarray(renders["arm_raised"].image).save(wearer)
    out = tmp_path / "tried_on.png"
    r = _run("try-on", "--donor", str(donor), "--wearer", str(wearer), "--region", "full",
             "--out", str(out), "--size", "128", "--rerender", "network",
             "--rerender-checkpoint", str(tiny_rerenderer))  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert _error_lines(r.stderr) == []
    report = json.loads(r.stdout.strip().splitlines()[-1])
    assert report["rerendered"] is True and "rerender" in report["timings_s"]
    img = np.asarray(Image.open(out)).astype(int)
    w_img = renders["arm_raised"].image.astype(int)
    assert img.shape == w_img.shape  # the wearer photo's size
    diff = np.abs(img - w_img).sum(-1)
    truth = renders["arm_raised"].correspondence
    near = cv2.dilate(truth.mask.astype(np.uint8), np.ones((15, 15), np.uint8)) > 0
    torso = np.isin(truth.part, (1, 2))
    print(f"\nre-rendered try-on: background off by {diff[~near].mean() / 3:.2f} grey levels, "
          f"{(diff[torso] > 30).mean():.1%} of the torso changed")  # fmt: skip
    assert diff[~near].mean() / 3 < 3  # the background stays the wearer's (resized from 128 px)
    assert (diff[torso] > 30).mean() > 0.3  # the donor's outfit is on


# (arguments after the command's photos and --out, what the one error line must mention)
BAD_RERENDER = {
    "unknown name": (["--rerender", "bogus"], "unknown --rerender 'bogus'; choose one of none"),
    "missing checkpoint": (["--rerender", "network", "--rerender-checkpoint", "/nonexistent.pt"],
                           "checkpoint /nonexistent.pt does not exist"),
}  # fmt: skip


@pytest.mark.parametrize("command", ["transfer", "try-on", "novel-view"])
@pytest.mark.parametrize("case", list(BAD_RERENDER))
def test_bad_rerender_options_are_refused_before_any_fit(inputs, tmp_path, command, case) -> None:
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    good = str(inputs["good"])
    args = {
        "transfer": ["--source", good, "--target", good, "--out", str(out_dir / "r.png")],
        "try-on": ["--donor", good, "--wearer", good, "--region", "top",
                   "--out", str(out_dir / "r.png")],
        "novel-view": [good, "--out", str(out_dir / "v.mp4")],
    }[command]  # fmt: skip
    extra, expect = BAD_RERENDER[case]
    r = _run(command, *args, *extra)
    _assert_refused(r, out_dir, expect.lower())
    assert r.stderr.strip().splitlines() == _error_lines(r.stderr)  # that one line, nothing else
