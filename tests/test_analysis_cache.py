"""The analysis cache (:mod:`reroute.correspondence.cache`): memory LRU, disk layer, pipeline.

Real analyses (mediapipe + fit, ~2 s each) run on synthetic renders for the
hit, disk and pipeline tests; the LRU, key and corrupt-file tests use a
stand-in analysis so they take no time.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json

import numpy as np
import pytest

from reroute.body.detect import PersonObservation
from reroute.body.fit import FitConfig
from reroute.body.posed import FittedBody
from reroute.correspondence import cache as cache_mod
from reroute.correspondence.analyse import PersonAnalysis
from reroute.correspondence.cache import (
    ARRAY_FIELDS,
    BODY_SCALARS,
    FORMAT_VERSION,
    AnalysisCache,
    analysis_key,
    to_arrays,
)
from reroute.correspondence.maps import Correspondence
from reroute.errors import InputError
from reroute.io.images import LoadedImage, load_image


def _synthetic(seed: int) -> LoadedImage:
    from reroute.synth.engine import render_synthetic_person

    return load_image(render_synthetic_person(None, size=256, seed=seed).image)


@pytest.fixture(scope="module")
def photo() -> LoadedImage:
    return _synthetic(0)


@pytest.fixture(scope="module")
def analysed(photo, tmp_path_factory):
    """A disk-backed cache that has analysed ``photo`` once: (cache, first result)."""
    cache = AnalysisCache(directory=tmp_path_factory.mktemp("analyses"))
    first = cache.get_or_analyse(photo, size=256, name="source photo")
    return cache, first


def _assert_same(a: PersonAnalysis, b: PersonAnalysis) -> None:
    """Every field of two analyses equal (arrays exactly, with their dtypes)."""
    parts = lambda x: {"": x, "observation": x.observation, "body": x.body,  # noqa: E731
                       "correspondence": x.correspondence}  # fmt: skip
    pa, pb = parts(a), parts(b)
    for prefix, fields in ARRAY_FIELDS.items():
        for f in fields:
            va, vb = getattr(pa[prefix], f), getattr(pb[prefix], f)
            assert va.dtype == vb.dtype and va.shape == vb.shape, (prefix, f)
            np.testing.assert_array_equal(va, vb, err_msg=f"{prefix}.{f}")
    assert a.original_size == b.original_size
    assert a.observation.image_size == b.observation.image_size
    assert a.body.camera == b.body.camera
    assert a.body.phenotypes == b.body.phenotypes
    assert a.body.keypoint_error_px == b.body.keypoint_error_px
    assert a.body.losses == b.body.losses
    assert a.body.steps == b.body.steps


def test_disk_format_covers_every_field():
    scalars = {
        "": {"original_size", "notices", "timings", "cached", "observation", "body",
             "correspondence", "correspondence_method"},
        "observation": {"image_size"},
        "body": {"camera"} | set(BODY_SCALARS),
        "correspondence": set(),
    }  # fmt: skip
    classes = {"": PersonAnalysis, "observation": PersonObservation, "body": FittedBody,
               "correspondence": Correspondence}  # fmt: skip
    for prefix, cls in classes.items():
        names = {f.name for f in dataclasses.fields(cls)}
        assert names <= set(ARRAY_FIELDS[prefix]) | scalars[prefix], prefix  # all stored
        assert set(ARRAY_FIELDS[prefix]) | scalars[prefix] - set(BODY_SCALARS) <= names, prefix


def test_same_photo_is_analysed_once(photo, analysed):
    cache, first = analysed
    assert (cache.misses, cache.hits) == (1, 0) and len(cache) == 1
    assert not first.cached and first.timings["fit"] > 0
    assert photo in cache and (photo, 256) in cache and (photo, 192) not in cache
    # the same pixels, loaded again with a notice, used as the target
    again = dataclasses.replace(photo, notice="downscaled from 8000x8000 to 256x256")
    second = cache.get_or_analyse(again, size=256, name="target photo")
    assert (cache.misses, cache.hits) == (1, 1)
    assert second.cached and second.notices == [
        "target photo: downscaled from 8000x8000 to 256x256"
    ]
    assert {k: second.timings[k] for k in ("pose", "fit", "render")} == dict.fromkeys(
        ("pose", "fit", "render"), 0.0
    )
    assert 0 <= second.timings["cache"] < 1.0
    _assert_same(first, second)
    # callers cannot change what the cache holds
    second.notices.append("mine")
    second.timings["fit"] = 99.0
    third = cache.get_or_analyse(photo, size=256, name="source photo")
    assert third.notices == [] and third.timings["fit"] == 0.0
    assert first.timings["fit"] > 0  # the first caller's own timings stay


def test_disk_round_trip_in_a_fresh_cache(photo, analysed, monkeypatch):
    cache, first = analysed
    files = list(cache.directory.glob("*.npz"))
    assert [p.stem for p in files] == [analysis_key(photo, 256)]

    def no_analysis(*args, **kwargs):
        raise AssertionError("served from disk, nothing should be analysed")

    monkeypatch.setattr(cache_mod, "analyse_people", no_analysis)
    fresh = AnalysisCache(directory=cache.directory)
    assert len(fresh) == 0 and fresh.contains(photo, 256)
    back = fresh.get_or_analyse(photo, size=256, name="source photo")
    assert back.cached and (fresh.hits, fresh.disk_hits, fresh.misses) == (1, 1, 0)
    _assert_same(first, back)
    assert len(fresh) == 1  # now in memory too
    fresh.get_or_analyse(photo, size=256, name="source photo")
    assert (fresh.hits, fresh.disk_hits) == (2, 1)


def _tiny_analysis(photo: LoadedImage) -> PersonAnalysis:
    """A stand-in analysis with the right types (small arrays; no model runs)."""
    h, w = photo.pixels.shape[:2]
    z = np.zeros
    obs = PersonObservation(z((33, 2), np.float32), z(33, np.float32), z((33, 3), np.float32),
                            z((h, w), np.float32), (h, w))  # fmt: skip
    from reroute.body.raster import Camera

    body = FittedBody(z((104, 4, 4), np.float32), {"height": 0.5}, np.eye(3, dtype=np.float32),
                      z(3, np.float32), Camera.centred(w, h), z((5, 3), np.float32),
                      z((23, 2), np.float32), 1.5, {"2d": 0.25})  # fmt: skip
    corr = Correspondence(z((h, w), np.uint8), z((h, w, 2), np.float32), z((h, w, 2), np.float32),
                          z((h, w, 3), np.float32), z((h, w), bool), z((h, w), bool))  # fmt: skip
    return PersonAnalysis(photo.pixels, (h, w), obs, body, corr, [], {"pose": 0.1, "fit": 0.2,
                                                                       "render": 0.3})  # fmt: skip


@pytest.fixture
def counted(monkeypatch):
    """analyse_people replaced by :func:`_tiny_analysis`; returns the list of photos analysed."""
    calls = []

    def fake(photos, *, size, names, fit_config, **how):  # how: the correspondence method
        calls.extend((int(p.pixels[0, 0, 0]), size, fit_config) for p in photos)
        return [_tiny_analysis(p) for p in photos]

    monkeypatch.setattr(cache_mod, "analyse_people", fake)
    return calls


def _flat(value: int) -> LoadedImage:
    return LoadedImage(np.full((64, 48, 3), value, np.uint8), None, None)


def test_lru_bound_evicts_the_least_recently_used(counted):
    a, b, c = _flat(1), _flat(2), _flat(3)
    cache = AnalysisCache(max_items=2)
    cache.get_or_analyse(a, size=64)
    cache.get_or_analyse(b, size=64)
    cache.get_or_analyse(a, size=64)  # a is now the most recently used
    cache.get_or_analyse(c, size=64)  # evicts b
    assert len(cache) == 2 and (a, 64) in cache and (c, 64) in cache and (b, 64) not in cache
    assert (cache.hits, cache.misses) == (1, 3)
    cache.get_or_analyse(b, size=64)
    assert [v for v, _, _ in counted] == [1, 2, 3, 2]
    cache.clear()
    assert len(cache) == 0 and (cache.hits, cache.misses) == (0, 0)
    with pytest.raises(ValueError):
        AnalysisCache(max_items=0)


def test_many_analyses_each_missing_photo_once_in_one_batch(counted):
    a, b = _flat(1), _flat(2)
    cache = AnalysisCache()
    cache.get_or_analyse(a, size=64)
    res = cache.get_or_analyse_many([a, b, b], size=64, names=["one", "two", "three"])
    assert [v for v, _, _ in counted] == [1, 2]  # b analysed once, a not again
    assert [r.cached for r in res] == [True, False, True]
    assert (cache.hits, cache.misses) == (2, 2)
    assert res[2].timings["fit"] == 0.0 and res[1].timings["fit"] == 0.2


def test_other_size_or_fit_config_is_a_miss(counted):
    a = _flat(7)
    cache = AnalysisCache()
    cache.get_or_analyse(a, size=64)
    cache.get_or_analyse(a, size=64, fit_config=FitConfig())  # the default config: same key
    cache.get_or_analyse(a, size=96)
    cache.get_or_analyse(a, size=64, fit_config=FitConfig(steps_pose=10))
    cache.get_or_analyse(_flat(8), size=64)
    assert (cache.hits, cache.misses) == (1, 4) and len(counted) == 4
    assert analysis_key(a, 64) == analysis_key(_flat(7), 64, FitConfig())
    # the compiled fit's bodies differ in the last bits: its own key; the eager key is
    # the one it was before the option existed (the fields without "compile")
    assert analysis_key(a, 64, FitConfig(compile=True)) != analysis_key(a, 64, FitConfig())
    fields = dataclasses.asdict(FitConfig())
    del fields["compile"]
    h = hashlib.sha1(np.ascontiguousarray(a.pixels).tobytes())
    h.update(json.dumps([list(a.pixels.shape), "uint8", 64, fields], sort_keys=True).encode())
    assert analysis_key(a, 64) == h.hexdigest()
    # same bytes, another shape: another key
    assert analysis_key(a, 64) != analysis_key(LoadedImage(a.pixels.reshape(48, 64, 3), None,
                                                                      None), 64)  # fmt: skip


def test_concurrent_requests_do_not_corrupt_the_cache(counted, tmp_path):
    from concurrent.futures import ThreadPoolExecutor

    cache = AnalysisCache(max_items=3, directory=tmp_path)
    photos = [_flat(v) for v in range(5)]

    def work(i: int) -> tuple[int, int]:
        res = cache.get_or_analyse(photos[i % 5], size=64, name=f"photo {i}")
        return int(res.image[0, 0, 0]), i % 5

    with ThreadPoolExecutor(8) as pool:
        got = list(pool.map(work, range(200)))
    assert all(v == want for v, want in got)  # each caller got its own photo's analysis
    assert cache.hits + cache.misses == 200 and len(cache) == 3
    fresh = AnalysisCache(directory=tmp_path)
    assert all(fresh.get_or_analyse(p, size=64).cached for p in photos)  # every file is whole


def test_corrupt_or_other_version_file_is_a_miss_and_is_replaced(counted, tmp_path):
    a = _flat(5)
    path = tmp_path / f"{analysis_key(a, 64)}.npz"
    path.write_bytes(b"PK\x03\x04 not really a zip")
    cache = AnalysisCache(directory=tmp_path)
    assert (a, 64) in cache  # a file is there (not opened by the check)
    res = cache.get_or_analyse(a, size=64)
    assert not res.cached and (cache.misses, cache.disk_hits) == (1, 0) and len(counted) == 1
    fresh = AnalysisCache(directory=tmp_path)  # the file was overwritten with a good one
    back = fresh.get_or_analyse(a, size=64)
    assert back.cached and fresh.disk_hits == 1 and len(counted) == 1
    _assert_same(res, back)
    assert back.timings == {"pose": 0.0, "fit": 0.0, "render": 0.0,
                            "cache": back.timings["cache"]}  # fmt: skip
    # a file of another format version: a miss, overwritten
    arrays = to_arrays(res)
    arrays["meta"] = np.array(str(arrays["meta"]).replace(
        f'"format_version": {FORMAT_VERSION}', '"format_version": 999'))  # fmt: skip
    with open(path, "wb") as f:
        np.savez(f, **arrays)
    other = AnalysisCache(directory=tmp_path)
    assert not other.get_or_analyse(a, size=64).cached and len(counted) == 2
    assert AnalysisCache(directory=tmp_path).get_or_analyse(a, size=64).cached
    assert not list(tmp_path.glob(".*.tmp"))  # no temporary files left


def test_errors_are_not_cached(tmp_path):
    blank = LoadedImage(np.full((128, 128, 3), 255, np.uint8), None, None)
    cache = AnalysisCache(directory=tmp_path)
    for _ in range(2):
        with pytest.raises(InputError, match="no person"):
            cache.get_or_analyse(blank, size=128, name="source photo")
    assert (cache.misses, cache.hits) == (2, 0) and len(cache) == 0
    assert not list(tmp_path.iterdir())


def test_pipeline_with_a_cache_analyses_each_photo_once(photo):
    import time

    from reroute.pipelines.pose_transfer import PoseTransferPipeline

    cache = AnalysisCache()
    pipe = PoseTransferPipeline(size=256, rerender="none", cache=cache)
    target = _synthetic(1)
    t = time.perf_counter()
    r1 = pipe(photo.pixels, target.pixels)
    t1 = time.perf_counter() - t
    t = time.perf_counter()
    r2 = pipe(photo.pixels, target.pixels)
    t2 = time.perf_counter() - t
    print(f"uncached {t1:.2f} s, cached {t2:.2f} s")
    assert (cache.misses, cache.hits) == (2, 2)
    assert not r1.source.cached and r2.source.cached and r2.target.cached
    assert r1.timings["fit"] > 0
    assert r2.timings["fit"] == r2.timings["pose"] == r2.timings["render"] == 0.0
    np.testing.assert_array_equal(r1.image, r2.image)
    assert t2 < t1


def test_evaluate_analyses_each_photo_once_and_rereads_them(photo, tmp_path):
    """Two pairs over two photos: two analyses; a second run with the same folder: none."""
    import csv

    from reroute.evaluation.pose_transfer import EvalConfig, run_evaluation
    from reroute.io.images import save_image_atomic

    root = tmp_path / "data"
    save_image_atomic(root / "a.png", photo.pixels)
    save_image_atomic(root / "b.png", _synthetic(1).pixels)
    (root / "pairs.csv").write_text("from,to\na.png,b.png\nb.png,a.png\n")
    cache_dir = tmp_path / "analyses"
    rows = []
    for run in ("one", "two"):
        cfg = EvalConfig("folder", str(root), str(tmp_path / run), "warp", pairs="pairs.csv",
                         analysis_cache=str(cache_dir), progress=False)  # fmt: skip
        assert run_evaluation(cfg).counts["ok"] == 2
        log = (tmp_path / run / "evaluate.log").read_text()
        with open(tmp_path / run / "per_pair.csv") as f:
            rows.append([{k: v for k, v in r.items() if k != "seconds"} for r in csv.DictReader(f)])
        expect = "2 hits (0 from disk), 2 analyses" if run == "one" else "4 hits (2 from disk), 0"
        assert f"analysis cache: {expect}" in log, log
    assert len(list(cache_dir.glob("*.npz"))) == 2
    assert rows[0] == rows[1]  # the same numbers from the analyses read back
