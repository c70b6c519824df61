"""FitBatcher: concurrent fit requests merged into one batch, each caller gets its own."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from reroute.body.fit_batch import FitBatcher


class _Recorder:
    """A fake batch fit: records each batch's observations; the first batch waits for
    ``release`` so that the other callers queue up behind it. Observations are strings;
    "bad" fails the batch it is in."""

    def __init__(self):
        self.batches: list[list[str]] = []
        self.started = threading.Event()
        self.release = threading.Event()

    def __call__(self, observations, config, names):
        self.batches.append(list(observations))
        if len(self.batches) == 1:
            self.started.set()
            assert self.release.wait(10)
        if "bad" in observations:
            raise ValueError(f"cannot fit {names[observations.index('bad')]}")
        return [f"body of {o}" for o in observations]


def _wait_for(condition) -> None:
    deadline = time.monotonic() + 10
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.002)


def _run_concurrently(batcher, fake, first, others, config="cfg"):
    """Submit ``first``, then (once its batch runs) every request of ``others`` in turn,
    each queued before the next is sent; returns each request's outcome (bodies or the
    exception), in order."""
    requests = [first, *others]
    out: list = [None] * len(requests)

    def call(i):
        obs = requests[i]
        try:
            out[i] = batcher(obs, config, [f"{o}-name" for o in obs])
        except Exception as exc:  # noqa: BLE001 - the test inspects it
            out[i] = exc

    threads = [threading.Thread(target=call, args=(0,))]
    threads[0].start()
    assert fake.started.wait(10)
    for i in range(1, len(requests)):
        threads.append(threading.Thread(target=call, args=(i,)))
        threads[-1].start()
        _wait_for(lambda i=i: batcher.pending == i)
    fake.release.set()
    for t in threads:
        t.join(10)
    return out


def test_requests_queued_behind_a_running_batch_share_the_next_one():
    fake = _Recorder()
    batcher = FitBatcher(fake)
    out = _run_concurrently(batcher, fake, ["a1", "a2"], [["b1", "b2"], ["c1"], ["d1", "d2"]])
    assert fake.batches == [["a1", "a2"], ["b1", "b2", "c1", "d1", "d2"]]
    assert out == [["body of a1", "body of a2"], ["body of b1", "body of b2"], ["body of c1"],
                   ["body of d1", "body of d2"]]  # fmt: skip
    assert batcher.batches == 2 and batcher.largest == 5


def test_a_failing_photo_fails_only_its_own_request():
    fake = _Recorder()
    out = _run_concurrently(FitBatcher(fake), fake, ["a"], [["b"], ["bad"], ["c"]])
    # the merged batch fails, then each request is fitted alone
    assert fake.batches == [["a"], ["b", "bad", "c"], ["b"], ["bad"], ["c"]]
    assert out[0] == ["body of a"] and out[1] == ["body of b"] and out[3] == ["body of c"]
    assert isinstance(out[2], ValueError) and str(out[2]) == "cannot fit bad-name"


def test_max_photos_and_configs_split_batches():
    fake = _Recorder()
    batcher = FitBatcher(fake, max_photos=3)
    out = _run_concurrently(batcher, fake, ["a"], [["b1", "b2"], ["c1", "c2"], ["d"]])
    # first come, first served: c does not fit beside b, so b goes alone and d waits for c
    assert fake.batches == [["a"], ["b1", "b2"], ["c1", "c2", "d"]]
    assert out[2] == ["body of c1", "body of c2"] and out[3] == ["body of d"]
    with pytest.raises(ValueError, match="max_photos must be >= 1"):
        FitBatcher(fake, max_photos=0)

    fake = _Recorder()
    batcher = FitBatcher(fake)
    requests = [["x"], ["y"]]
    out = [None, None]

    def call(i, cfg):
        out[i] = batcher(requests[i], cfg, ["n"])

    t0 = threading.Thread(target=call, args=(0, "one"))
    t0.start()
    assert fake.started.wait(10)
    t1 = threading.Thread(target=call, args=(1, "other"))
    t1.start()
    _wait_for(lambda: batcher.pending == 1)
    fake.release.set()
    t0.join(10)
    t1.join(10)
    assert fake.batches == [["x"], ["y"]] and out == [["body of x"], ["body of y"]]


def test_concurrent_fit_bodies_calls_match_fitting_alone():
    """Real fits from four threads: merged (fewer batches than calls), and each photo's
    body is the one it gets alone (its own schedule; float summation order aside)."""
    import torch

    from reroute.body.detect import detect_person
    from reroute.body.fit import SHARED_BATCHER as batcher
    from reroute.body.fit import FitConfig, fit_bodies
    from reroute.synth.engine import render_synthetic_person
    from reroute.synth.pose import EXAMPLE_POSES

    torch.set_num_threads(1)
    cfg = FitConfig(tol=0.0, steps_pose=12)
    obs = [detect_person(render_synthetic_person(p, size=192, seed=i).image)
           for i, p in enumerate((EXAMPLE_POSES["arm_raised"], None, None, None))]  # fmt: skip
    alone = [fit_bodies([o], cfg, merge=False)[0] for o in obs]
    before = batcher.batches
    got: list = [None] * 4

    def call(i):
        got[i] = fit_bodies([obs[i]], cfg)[0]

    threads = [threading.Thread(target=call, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert batcher.batches - before < 4  # at least two calls shared a batch
    for a, g in zip(alone, got, strict=True):
        assert g.steps == a.steps == 12
        np.testing.assert_allclose(g.keypoints_2d, a.keypoints_2d, atol=1.0)  # pixels
