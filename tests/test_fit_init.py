"""The learned initialisation of the body fit (reroute.body.fit_init)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from reroute.body.detect import detect_person
from reroute.body.fit import POSE_BONES, FitConfig, closed_form_pose, fit_body
from reroute.body.fit_init import (
    FitInitConfig,
    FitInitNet,
    FitInitTraining,
    init_features,
    keypoint_error_cm,
    learned_pose,
    load_fit_init,
    prepare_observations,
    save_fit_init,
    train_fit_init,
)
from reroute.errors import InputError
from reroute.synth.engine import render_synthetic_person

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def data() -> dict[str, np.ndarray]:
    """BlazePose on 16 synthetic renders of known pose (seed 99)."""
    d = prepare_observations(16, seed=99)
    assert len(d["rot"]) >= 12  # BlazePose finds nearly every render
    return d


@pytest.fixture(scope="module")
def observation():
    return detect_person(render_synthetic_person(None, size=256, seed=0, yaw_deg=20).image)


def test_prepared_close_ups_cut_the_body_off() -> None:
    d = prepare_observations(3, seed=98, crop_share=1.0)
    assert len(d["rot"]) >= 2
    for h, w in d["image_size"]:
        assert h < 256 and w < h  # a portrait window of the top of the render
    # cut at 50-95 % of the height: feet or knees fall below the frame in most
    below = [(lm[:, 1] > h).any() for (h, _), lm in zip(d["image_size"], d["landmarks"], strict=True)]
    assert any(below)


def test_the_untrained_network_returns_the_closed_form(observation) -> None:
    R0, rot0 = closed_form_pose(observation)
    f = init_features(observation.landmarks, observation.world, observation.visibility,
                      observation.image_size, R0, rot0)  # fmt: skip
    assert f.shape == (99 + 66 + 33 + 9 + 3 * len(POSE_BONES),) and f.dtype == np.float32
    net = FitInitNet(FitInitConfig.preset("tiny"))
    out = net(torch.from_numpy(f)[None])
    assert out.shape == (1, len(POSE_BONES), 3)
    np.testing.assert_allclose(out[0].detach().numpy(), rot0, atol=1e-6)
    with pytest.raises(ValueError, match=r"expected \(B, 261\), got \(1, 5\)"):
        net(torch.zeros(1, 5))
    with pytest.raises(InputError, match="unknown preset 'huge'"):
        FitInitConfig.preset("huge")


def test_keypoint_error_is_zero_at_the_truth_and_grows_with_error() -> None:
    rot = torch.zeros(1, len(POSE_BONES), 3)
    assert float(keypoint_error_cm(rot, rot)) == 0.0
    bent = rot.clone()
    bent[0, list(POSE_BONES).index("upperarm01.L"), 0] = 0.5
    e1 = float(keypoint_error_cm(bent, rot))
    bent[0, list(POSE_BONES).index("upperarm01.L"), 0] = 1.0
    assert 0.5 < e1 < float(keypoint_error_cm(bent, rot))


def test_tiny_training_learns_the_pose_and_round_trips(data, tmp_path, observation) -> None:
    training = FitInitTraining(steps=300, batch=16, lr=3e-3, heldout=0.2)
    net, metrics = train_fit_init(data, FitInitConfig.preset("tiny"), training)
    assert metrics["train_samples"] + metrics["heldout_samples"] == len(data["rot"])
    # on what it trained on, the network beats the closed form by far (it can overfit)
    from reroute.body.fit_init import _features_of  # noqa: PLC2701 - the test's own check

    feats, rot0 = _features_of(data)
    truth = torch.from_numpy(data["rot"])
    with torch.no_grad():
        err_net = float(keypoint_error_cm(net(torch.from_numpy(feats)), truth).mean())
    err_cf = float(keypoint_error_cm(torch.from_numpy(rot0), truth).mean())
    assert err_net < 0.7 * err_cf, (err_net, err_cf)
    ckpt = tmp_path / "fit_init.pt"
    save_fit_init(net, ckpt, {"steps": training.steps, "metrics": metrics,
                              "torch": torch.__version__})  # a TorchVersion, stored as text
    back = load_fit_init(ckpt)
    x = torch.from_numpy(feats)
    with torch.no_grad():
        assert torch.equal(back(x), net(x))
    assert json.loads(ckpt.with_suffix(".json").read_text())["metrics"] == metrics
    # the fit takes it: the start pose is the network's, and a fit runs from it
    R0, rot0_obs = closed_form_pose(observation)
    start = learned_pose(observation, R0, rot0_obs, ckpt)
    assert start.shape == (len(POSE_BONES), 3) and not np.allclose(start, rot0_obs)
    fitted = fit_body(observation, FitConfig(init="learned", init_checkpoint=str(ckpt)))
    assert fitted.keypoint_error_px < 10


def test_photos_that_cut_the_body_off_keep_the_closed_form(observation, tmp_path) -> None:
    """The network saw only full-body renders: a close-up (legs out of the frame)
    starts from the closed form, whatever the network."""
    from reroute.body.fit_init import in_training_domain

    assert in_training_domain(observation)
    full = render_synthetic_person(None, size=256, seed=0, yaw_deg=20).image
    crop = np.ascontiguousarray(full[:150])  # head to hips
    close = detect_person(crop)
    assert not in_training_domain(close)
    net = FitInitNet(FitInitConfig.preset("tiny"))
    torch.nn.init.normal_(net.head.weight, std=1.0)  # a network that moves every pose
    ckpt = tmp_path / "moving.pt"
    save_fit_init(net, ckpt, {"steps": 0})
    for obs, moved in ((observation, True), (close, False)):
        R0, rot0 = closed_form_pose(obs)
        start = learned_pose(obs, R0, rot0, ckpt)
        assert np.allclose(start, rot0) != moved


def test_a_missing_checkpoint_is_refused_before_the_fit(observation, tmp_path) -> None:
    with pytest.raises(InputError, match="does not exist"):
        fit_body(observation, FitConfig(init="learned", init_checkpoint=str(tmp_path / "no.pt")))
    with pytest.raises(ValueError, match="'ik', 'learned' or 'rest'"):
        fit_body(observation, FitConfig(init="magic"))


def test_cli_trains_under_torchrun_with_two_processes(data, tmp_path) -> None:
    npz = tmp_path / "obs.npz"
    np.savez(npz, **data)
    out = tmp_path / "ck.pt"
    env = dict(os.environ, OMP_NUM_THREADS="1")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
           "--master_port", "29561", "-m", "reroute.body.fit_init", "train", "--data", str(npz),
           "--out", str(out), "--preset", "tiny", "--steps", "5", "--batch", "4"]  # fmt: skip
    r = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    report = json.loads([ln for ln in r.stdout.splitlines() if ln.startswith("{")][-1])
    assert report["processes"] == 2
    card = json.loads(out.with_suffix(".json").read_text())
    assert card["steps"] == 5 and card["data"]["samples"] == len(data["rot"])
    bad = subprocess.run([sys.executable, "-m", "reroute.body.fit_init", "train", "--data",
                          str(tmp_path / "none.npz"), "--out", str(out)], cwd=REPO, env=env,
                         capture_output=True, text=True, timeout=120)  # fmt: skip
    errors = [ln for ln in bad.stderr.splitlines() if ln.startswith("error:")]
    assert bad.returncode == 2 and len(errors) == 1 and "not a prepared fit-init file" in errors[0]
