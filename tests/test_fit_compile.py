"""The compiled body fit (``FitConfig(compile=True)``): same loss, same answer, safe fallback.

Compiling needs TorchInductor and a C++ compiler; the tests that compile are
slow (about 30 s per graph on a new machine, seconds once Inductor's on-disk
cache holds the kernels). The fallback test compiles nothing.
"""

from __future__ import annotations

import os
import shutil
import warnings

import numpy as np
import pytest
import torch

import reroute.body.fit as fit_module
from reroute.body.detect import detect_person
from reroute.body.fit import COMPILE_ENV, FitConfig, fit_bodies
from reroute.synth.engine import render_synthetic_person
from reroute.synth.pose import EXAMPLE_POSES


@pytest.fixture(scope="module")
def observations():
    renders = [render_synthetic_person(EXAMPLE_POSES["arm_raised"], size=256, seed=0),
               render_synthetic_person(EXAMPLE_POSES["turned"], size=256, yaw_deg=30, seed=1)]
    return [detect_person(r.image, name=f"render {i}") for i, r in enumerate(renders)]


@pytest.fixture
def fresh_compile_state():
    """Forget this process's compiled step (and a failure) before and after the test."""
    saved = list(fit_module._COMPILED)
    fit_module._COMPILED.clear()
    yield
    fit_module._COMPILED[:] = saved


def test_environment_variable_turns_compile_on(monkeypatch) -> None:
    monkeypatch.delenv(COMPILE_ENV, raising=False)
    assert FitConfig().compile is False
    monkeypatch.setenv(COMPILE_ENV, "1")
    assert FitConfig().compile is True
    assert FitConfig(compile=False).compile is False
    monkeypatch.setenv(COMPILE_ENV, "0")
    assert FitConfig().compile is False


def test_failed_compile_warns_once_and_fits_eagerly(observations, one_thread, monkeypatch,
                                                    fresh_compile_state) -> None:  # fmt: skip
    def broken_compile(fn):
        def run(*args, **kwargs):
            raise RuntimeError("no C++ compiler\nsecond line")

        return run

    monkeypatch.setattr(torch, "compile", broken_compile)
    eager = fit_bodies(observations[:1], FitConfig(steps_pose=5), merge=False)[0]
    with pytest.warns(RuntimeWarning, match=r"torch.compile failed.*RuntimeError: no C\+\+ compiler\)"):
        first = fit_bodies(observations[:1], FitConfig(steps_pose=5, compile=True), merge=False)[0]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the second fit does not try (nor warn) again
        second = fit_bodies(observations[:1], FitConfig(steps_pose=5, compile=True), merge=False)[0]
    assert fit_module._COMPILED == [None]
    for got in (first, second):  # the eager terms, on the compiled path's padded inputs
        np.testing.assert_allclose(got.pose, eager.pose, atol=1e-3)
        np.testing.assert_allclose(got.vertices, eager.vertices, atol=1e-3)


@pytest.mark.slow
@pytest.mark.skipif(shutil.which(os.environ.get("CXX", "g++")) is None,
                    reason="torch.compile's CPU backend needs a C++ compiler (none on PATH)")
def test_compiled_fit_matches_the_eager_fit(observations, one_thread, fresh_compile_state) -> None:
    # no step: the loss terms at the start pose, compiled (one photo, then a batch of
    # two: the batch dimension is dynamic) against eager
    for batch in (observations[:1], observations):
        cfg = dict(steps_pose=0)
        eager = fit_bodies(batch, FitConfig(**cfg), merge=False)
        comp = fit_bodies(batch, FitConfig(**cfg, compile=True), merge=False)
        for e, c in zip(eager, comp, strict=True):
            assert e.losses.keys() == c.losses.keys()
            for k in e.losses:
                assert c.losses[k] == pytest.approx(e.losses[k], rel=1e-4, abs=1e-6), k
            np.testing.assert_array_equal(c.pose, e.pose)
    assert fit_module._COMPILED and fit_module._COMPILED[0] is not None
    # the full fit: the same body up to float summation order, which Adam amplifies on
    # loosely held bones (and can move the convergence stop by many steps); the
    # keypoints land where the eager fit's do
    eager = fit_bodies(observations, FitConfig(), merge=False)
    comp = fit_bodies(observations, FitConfig(compile=True), merge=False)
    for e, c in zip(eager, comp, strict=True):
        assert c.keypoint_error_px < max(1.25 * e.keypoint_error_px, e.keypoint_error_px + 0.5)
        assert np.median(np.linalg.norm(c.keypoints_2d - e.keypoints_2d, axis=1)) < 2.0
    # another working size and batch size: the batch graph compiled above serves them
    graphs = dict(torch._dynamo.utils.counters["stats"])
    other = detect_person(render_synthetic_person(None, size=384, seed=2).image)
    for batch in ([other, other], [other, other, other]):
        out = fit_bodies(batch, FitConfig(compile=True), merge=False)
        assert (out[0].camera.width, out[0].camera.height) == (384, 384)
    assert dict(torch._dynamo.utils.counters["stats"]) == graphs
