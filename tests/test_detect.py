"""Person detection's graph pool: parallel photos, quiet first runs, first error in order."""

from __future__ import annotations

import contextlib
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from reroute.body import detect as detect_module
from reroute.body.detect import detect_person
from reroute.correspondence.analyse import analyse_people
from reroute.errors import NoPersonError
from reroute.synth.engine import render_synthetic_person


class _Solution:
    """A stand-in mediapipe solution: ``process`` sleeps, and records who ran at once."""

    running = 0
    most = 0
    lock = threading.Lock()

    def process(self, image):
        with _Solution.lock:
            _Solution.running += 1
            _Solution.most = max(_Solution.most, _Solution.running)
        time.sleep(0.05)
        with _Solution.lock:
            _Solution.running -= 1
        return image


def test_pool_lends_each_graph_to_one_thread_and_makes_at_most_its_size():
    made = []
    pool = detect_module._GraphPool(lambda: made.append(_Solution()) or made[-1], 2)
    _Solution.running = _Solution.most = 0
    seen = []

    def use(_):
        with pool.borrow() as graph:
            seen.append(graph)
            return graph.process(1)

    with ThreadPoolExecutor(6) as ex:
        assert list(ex.map(use, range(12))) == [1] * 12
    assert len(made) == 2  # made when first needed, never more than the size
    assert _Solution.most == 2  # two ran at once, a third waited
    assert {id(g.solution) for g in seen} == {id(s) for s in made}


def test_graph_runs_quietly_until_it_has_found_something(monkeypatch):
    quiet = []

    @contextlib.contextmanager
    def counting():
        quiet.append(1)
        yield

    monkeypatch.setattr(detect_module, "quiet_native", counting)
    graph = detect_module._Graph(_Solution(), lambda res: res is not None)
    for found in (None, None, "person", None, "person"):
        graph.process(found)
    assert len(quiet) == 3  # the two empty runs and the first that found a person


def test_warming_a_pool_on_a_blank_frame_keeps_its_graphs_quiet(monkeypatch):
    monkeypatch.setattr(detect_module, "quiet_native", contextlib.nullcontext)
    pool = detect_module._GraphPool(_Solution, 2, lambda res: res is not None)
    pool.fill(None)  # the blank frame: no person found
    with pool.borrow() as graph:
        assert graph.quiet  # the first photo with a person still runs quietly
    plain = detect_module._GraphPool(_Solution, 1)
    plain.fill(None)
    with plain.borrow() as graph:
        assert not graph.quiet  # no predicate: any result ends the quiet runs


def test_photos_detected_in_parallel_equal_one_at_a_time():
    images = [render_synthetic_person(None, size=192, seed=s, yaw_deg=30 * s).image for s in range(4)]
    alone = [detect_person(img) for img in images]
    with ThreadPoolExecutor(4) as ex:
        together = list(ex.map(detect_person, images))
    for a, b in zip(alone, together, strict=True):
        np.testing.assert_array_equal(a.landmarks, b.landmarks)
        np.testing.assert_array_equal(a.mask, b.mask)


def test_the_first_bad_photo_in_order_is_reported():
    person = render_synthetic_person(None, size=128).image
    blank = np.full((128, 96, 3), 200, np.uint8)
    with pytest.raises(NoPersonError, match="in one$"):
        analyse_people([blank, blank], size=128, names=["one", "two"])
    with pytest.raises(NoPersonError, match="in two$"):
        analyse_people([person, blank], size=128, names=["one", "two"])
