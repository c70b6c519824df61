"""The ``--correspondence fit|bodymap`` option (issue 13, item 5): the BodyMap network's
refinement through the analysis, the analysis cache, the CLI and the app.

Every test uses a tiny, briefly trained BodyMap checkpoint (made in seconds): the tests
check that the network runs where it is asked for, not what it learned.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest

from reroute.errors import InputError

ROOT = Path(__file__).resolve().parents[1]
PG2 = ROOT.parent / "shared" / "data" / "deepfashion" / "pg2_pairs"
EXAMPLES = ROOT / "app" / "examples"


@pytest.fixture(scope="module")
def tiny_bodymap(tmp_path_factory) -> Path:
    """A tiny, briefly trained ``bodymap`` checkpoint named like the committed one
    (``checkpoints/bodymap_cpu256.pt`` in a temporary folder, usable as an app's ``--checkpoints``)."""
    from reroute.correspondence.bodymap.train import main

    run = tmp_path_factory.mktemp("bodymap_run")
    assert main(["--preset", "tiny", "--out", str(run), "--steps", "2", "--no-progress"]) == 0
    folder = tmp_path_factory.mktemp("checkpoints")
    (folder / "bodymap_cpu256.pt").write_bytes((run / "checkpoints" / "last.pt").read_bytes())
    return folder / "bodymap_cpu256.pt"


@pytest.fixture(scope="module")
def photo():
    from reroute.io.images import load_image

    return load_image(EXAMPLES / "synthetic_arms_down.png")


def _cli(*args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "1"))
    return subprocess.run([sys.executable, "-m", "reroute", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=300, env=env)  # fmt: skip


def _one_error_line(code: int, stderr: str) -> str:
    lines = [x for x in stderr.splitlines() if x.strip()]
    assert code == 2 and len(lines) == 1 and lines[0].startswith("error: "), stderr
    return lines[0]


def _run(capsys, *args: str) -> tuple[int, str, str]:
    """``python -m reroute ARGS`` in this process (torch and mediapipe already loaded):
    (exit code, stdout, stderr)."""
    from reroute.cli import main

    capsys.readouterr()
    code = main(list(args))
    out = capsys.readouterr()
    return code, out.out, out.err


# ------------------------------------------------------------ analysis and cache


def test_bodymap_analysis_differs_from_the_fit_and_the_cache_keeps_them_apart(
    tiny_bodymap, photo, tmp_path
):
    from reroute.body.fit import FitConfig
    from reroute.correspondence.analyse import analyse_person
    from reroute.correspondence.cache import AnalysisCache, analysis_key

    ck = str(tiny_bodymap)
    fit = analyse_person(photo, size=128)
    net = analyse_person(photo, size=128, correspondence="bodymap", bodymap_checkpoint=ck)
    assert (fit.correspondence_method, net.correspondence_method) == ("fit", "bodymap")
    assert "bodymap" in net.timings and "bodymap" not in fit.timings and net.timings["bodymap"] > 0
    assert net.correspondence.shape == fit.correspondence.shape == (128, 128)
    assert not np.array_equal(net.correspondence.to_iuv(), fit.correspondence.to_iuv())
    with pytest.raises(InputError, match="unknown correspondence method 'magic'"):
        analyse_person(photo, size=128, correspondence="magic")

    # the key: the fit's is unchanged by the option; the network's names method and weights
    k_fit, k_net = analysis_key(photo, 128), analysis_key(photo, 128, None, "bodymap", ck)
    assert k_fit == analysis_key(photo, 128, None, "fit", ck) != k_net
    legacy = hashlib.sha1(photo.pixels.tobytes())  # the key before the option existed
    fields = asdict(FitConfig())
    del fields["compile"]  # an eager fit's key leaves FitConfig.compile out
    legacy.update(json.dumps([list(photo.pixels.shape), "uint8", 128, fields],
                             sort_keys=True).encode())  # fmt: skip
    assert k_fit == legacy.hexdigest()
    other = tmp_path / "other.pt"
    other.write_bytes(tiny_bodymap.read_bytes() + b"\0")
    assert analysis_key(photo, 128, None, "bodymap", other) != k_net

    cache = AnalysisCache(directory=tmp_path / "analyses")
    how = {"correspondence": "bodymap", "bodymap_checkpoint": ck}
    a = cache.get_or_analyse(photo, size=128)
    b = cache.get_or_analyse(photo, size=128, **how)
    assert not a.cached and not b.cached and (cache.misses, cache.hits) == (2, 0)
    assert (a.correspondence_method, b.correspondence_method) == ("fit", "bodymap")
    again = cache.get_or_analyse(photo, size=128, **how)
    assert again.cached and again.correspondence_method == "bodymap"
    assert again.timings == {"pose": 0.0, "fit": 0.0, "render": 0.0, "bodymap": 0.0,
                             "cache": again.timings["cache"]}  # fmt: skip
    np.testing.assert_array_equal(again.correspondence.part, b.correspondence.part)
    assert cache.get_or_analyse(photo, size=128).correspondence_method == "fit"
    assert cache.contains(photo, 128, None, "bodymap", ck) and not cache.contains(photo, 128, None,
                                                                                    "bodymap", other)
    # read back from disk by a fresh cache: still told apart
    fresh = AnalysisCache(directory=tmp_path / "analyses")
    back = fresh.get_or_analyse(photo, size=128, **how)
    assert back.cached and fresh.disk_hits == 1 and back.correspondence_method == "bodymap"
    np.testing.assert_array_equal(back.correspondence.part, b.correspondence.part)
    assert fresh.get_or_analyse(photo, size=128).correspondence_method == "fit"
    with pytest.raises(InputError, match="missing.pt"):
        cache.get_or_analyse(photo, size=128, correspondence="bodymap",
                             bodymap_checkpoint=str(tmp_path / "missing.pt"))  # fmt: skip


def test_dense_targets_and_the_refit_through_the_analysis(tiny_bodymap, photo):
    """The refined map's pixels become dense keypoints (Rong et al. eq. 4) and, asked for,
    the analysis refits the body to them."""
    from reroute.body.fit import RefitConfig
    from reroute.correspondence.analyse import analyse_person
    from reroute.correspondence.bodymap.predict import (
        dense_targets,
        load_bodymap,
        refine_correspondence,
    )

    ck = str(tiny_bodymap)
    fit = analyse_person(photo, size=128)
    decoded = refine_correspondence(load_bodymap(ck), fit.image, fit.correspondence)
    d = dense_targets(decoded, n=50)
    assert d.pixels.shape == (50, 2) and d.vertices.shape == d.weights.shape == (50,)
    xs, ys = (d.pixels - 0.5).astype(int).T
    np.testing.assert_array_equal(d.vertices, decoded.vertex[ys, xs])
    np.testing.assert_array_equal(d.weights, decoded.confidence[ys, xs])
    assert (d.vertices >= 0).all()
    np.testing.assert_array_equal(dense_targets(decoded, n=50).pixels, d.pixels)  # same draw
    inside = np.zeros(decoded.vertex.shape, bool)
    inside[:64] = True
    assert (dense_targets(decoded, n=50, body_only=inside).pixels[:, 1] < 64).all()
    everything = dense_targets(decoded, n=10**6)
    assert len(everything.vertices) == int((decoded.vertex >= 0).sum())

    net = analyse_person(photo, size=128, correspondence="bodymap", bodymap_checkpoint=ck)
    refit = analyse_person(photo, size=128, correspondence="bodymap", bodymap_checkpoint=ck,
                           refit=RefitConfig(steps=10))  # fmt: skip
    assert "refit" in refit.timings and "refit" not in net.timings
    np.testing.assert_array_equal(net.body.vertices, fit.body.vertices)
    assert not np.array_equal(refit.body.vertices, fit.body.vertices)
    assert "dense" in refit.body.losses
    np.testing.assert_array_equal(refit.correspondence.part, net.correspondence.part)
    # the fit's own correspondences have no refit
    assert "refit" not in analyse_person(photo, size=128, refit=RefitConfig(steps=10)).timings


# ------------------------------------------------------------ CLI


@pytest.mark.skipif(not PG2.is_dir(), reason="needs ../shared/data/deepfashion/pg2_pairs")
def test_cli_correspond_with_bodymap_writes_the_photo_size(tiny_bodymap, tmp_path, capsys):
    import cv2

    photo = sorted(PG2.glob("*_source.png"))[0]
    out = tmp_path / "photo_IUV.png"
    # working size 128 for a 256 px photo: the network's map is resized to the photo
    r = _cli("correspond", str(photo), "--out", str(out), "--size", "128",
             "--correspondence", "bodymap", "--bodymap-checkpoint", str(tiny_bodymap))  # fmt: skip
    assert r.returncode == 0, r.stderr
    res = json.loads(r.stdout.strip().splitlines()[-1])
    assert res["correspondence"] == "bodymap" and res["timings_s"]["bodymap"] > 0
    iuv, img = cv2.imread(str(out)), cv2.imread(str(photo))
    assert iuv.shape == img.shape and iuv[..., 0].max() <= 24

    missing = tmp_path / "no_such_bodymap.pt"
    code, _, err = _run(capsys, "correspond", str(photo), "--out", str(tmp_path / "x.png"),
                        "--correspondence", "bodymap", "--bodymap-checkpoint", str(missing))  # fmt: skip
    assert "no_such_bodymap.pt" in _one_error_line(code, err)
    assert not (tmp_path / "x.png").exists()
    code, _, err = _run(capsys, "correspond", str(photo), "--out", str(tmp_path / "x.png"),
                        "--correspondence", "magic")  # fmt: skip
    assert "unknown --correspondence 'magic'" in _one_error_line(code, err)


def test_cli_missing_checkpoint_is_refused_before_any_fit(tmp_path, capsys):
    """Every command with the option refuses a missing checkpoint with one line, before any fit
    (``transfer`` and ``correspond`` even before reading a photo)."""
    missing = str(tmp_path / "gone.pt")
    absent = str(tmp_path / "no_photo.png")
    photo = str(EXAMPLES / "synthetic_arms_down.png")
    root = tmp_path / "pairs"
    for side in ("source", "target"):
        (root / side).mkdir(parents=True)
        (root / side / "a.png").write_bytes(Path(photo).read_bytes())
    out = str(tmp_path / "out.png")
    for args in (
        ("transfer", "--source", absent, "--target", absent, "--out", out),
        ("transfer", "--source", absent, "--target", absent, "--out", out, "--method", "dpt"),
        ("correspond", absent, "--out", out),
        ("try-on", "--donor", photo, "--wearer", photo, "--region", "top", "--out", out),
        ("novel-view", photo, "--out", str(tmp_path / "v.mp4")),
        ("evaluate", "--dataset", "folder", "--root", str(root), "--method", "warp",
         "--out", str(tmp_path / "eval")),
    ):  # fmt: skip
        code, _, err = _run(capsys, *args, "--correspondence", "bodymap",
                            "--bodymap-checkpoint", missing)  # fmt: skip
        line = _one_error_line(code, err)
        assert "gone.pt" in line and "no_photo" not in line, (args, line)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pairs"]  # nothing written


def test_cli_eval_correspondence_method_bodymap(tiny_bodymap, tmp_path, capsys):
    syn = tmp_path / "syn"
    code, _, err = _run(capsys, "synth", "--out", str(syn), "--identities", "1",
                        "--views-per-identity", "2", "--size", "128", "--texture-size", "128",
                        "--no-progress")  # fmt: skip
    assert code == 0, err
    out = tmp_path / "metrics.json"
    code, stdout, err = _run(capsys, "eval-correspondence", "--gt", str(syn), "--method", "bodymap",
                             "--bodymap-checkpoint", str(tiny_bodymap), "--limit", "2",
                             "--out", str(out))  # fmt: skip
    assert code == 0, err
    res = json.loads(out.read_text())
    assert res["method"] == "bodymap" and res["images"] == 2 and res["failed"] == 0
    assert 0 <= res["gps_mean"] <= 1 and len(res["per_image"]) == 2
    assert json.loads(stdout.strip().splitlines()[-1])["method"] == "bodymap"
    code, _, err = _run(capsys, "eval-correspondence", "--gt", str(syn), "--method", "bodymap",
                        "--bodymap-checkpoint", str(tmp_path / "absent.pt"),
                        "--out", str(tmp_path / "m2.json"))  # fmt: skip
    assert "absent.pt" in _one_error_line(code, err) and not (tmp_path / "m2.json").exists()


# ------------------------------------------------------------ app


def test_app_services_offer_bodymap_only_when_its_checkpoint_loads(tiny_bodymap, tmp_path):
    from app.callbacks import transfer_callback
    from app.services import BODYMAP, Services, network_status

    assert network_status(tiny_bodymap.parent)[BODYMAP] is None
    (tmp_path / "ckpt").mkdir()
    (tmp_path / "ckpt" / "bodymap_broken.pt").write_bytes(b"x")
    reason = network_status(tmp_path / "ckpt")[BODYMAP]
    assert reason.startswith("bodymap_broken.pt is there, but reroute cannot load it"), reason

    svc = Services(checkpoints=tmp_path / "ckpt", workdir=tmp_path / "work")
    img = np.full((96, 96, 3), 128, np.uint8)
    out = transfer_callback(svc, img, img, "BodyMap re-rendering", 256, "classical", False, 0,
                            "BodyMap network")  # fmt: skip
    assert out[1].startswith("error: the BodyMap network is unavailable: bodymap_broken.pt"), out[1]
    assert all(v is None for i, v in enumerate(out) if i != 1)
    out = transfer_callback(svc, img, img, "BodyMap re-rendering", 256, "classical", False, 0, "magic")
    assert out[1].startswith("error: unknown correspondences 'magic'"), out[1]

    svc = Services(checkpoints=tiny_bodymap.parent, workdir=tmp_path / "work2")
    pipe = svc.pipeline_for(192, "classical", False, "bodymap")
    assert svc.pipeline_for(192, "classical", False, "bodymap") is pipe
    assert svc.pipeline_for(192) is not pipe and pipe.cache is svc.analysis_cache
    assert (pipe.correspondence, pipe.bodymap_checkpoint) == ("bodymap", str(tiny_bodymap))


@pytest.fixture(scope="module")
def bodymap_client(tiny_bodymap):
    """A ``gradio_client`` of a running app server whose checkpoints folder holds only the
    tiny BodyMap network (served in this process; the models load on the first request)."""
    from gradio_client import Client

    from app.ui import build_app

    demo = build_app(checkpoints=tiny_bodymap.parent, examples=False, load_models=False)
    demo.launch(server_name="127.0.0.1", prevent_thread_lock=True, quiet=True)
    try:
        yield Client(demo.local_url, verbose=False)
    finally:
        demo.close()


def test_app_offers_and_runs_the_bodymap_network_through_the_api(bodymap_client):
    from gradio_client import handle_file

    named = bodymap_client.view_api(print_info=False, return_format="dict")["named_endpoints"]
    param = {p["parameter_name"]: p for p in named["/transfer"]["parameters"]}["correspondences"]
    assert param["parameter_default"] == "fit"
    assert "BodyMap network" in json.dumps(param["python_type"]), param
    source = handle_file(str(EXAMPLES / "synthetic_turned.png"))
    target = handle_file(str(EXAMPLES / "synthetic_arms_down.png"))
    for how in ("BodyMap network", "fit"):
        result, status, *maps = bodymap_client.predict(
            source, target, "BodyMap re-rendering", 128, "classical", False, 0, how, True,
            api_name="/transfer")  # fmt: skip
        assert status.startswith("ok: pose transferred"), status
        assert ("BodyMap network" in status) is (how != "fit"), status
        assert result is not None and Path(result).is_file()
        assert maps[0] is not None and maps[1] is not None  # both IUV maps
