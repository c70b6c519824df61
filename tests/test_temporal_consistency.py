"""Temporal consistency over frame intervals (reroute.metrics.temporal) on synthetic
sequences (reroute.synth.video): known answers, the ground-truth floor, skipped
intervals, determinism and the CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest

from reroute.metrics.correspondence import _scaled_mesh, exact_geodesic
from reroute.metrics.temporal import (
    FrameTracks,
    LocalExactGeodesic,
    frame_tracks,
    temporal_consistency,
)
from reroute.synth.video import SyntheticVideo, VideoConfig

FRAMES = 4


@pytest.fixture(scope="module")
def video() -> SyntheticVideo:
    return SyntheticVideo(VideoConfig(frames=FRAMES, size=128, texture_size=128), seed=3)


@pytest.fixture(scope="module")
def frames(video):
    return [video.frame(t) for t in range(FRAMES)]


def _unit_geodesic(a, b):  # 1 cm per unit of vertex index difference
    return np.abs(np.asarray(a) - np.asarray(b)) * 0.01


def test_known_answer_for_constant_offsets_per_frame() -> None:
    # 5 frames of 4 x 4 px; vertex i seen at pixel (i % 4, i // 4) in every frame;
    # frame t predicts vertex + 3 t: an interval k is then 3 k cm inconsistent
    n, H = 5, 4
    pix = np.stack([np.arange(16) % 4, np.arange(16) // 4], 1)
    vis = np.ones(16, bool)
    vis[15] = False  # not visible: must not count
    tracks = [FrameTracks(pix, vis, (H, H)) for _ in range(n)]
    base = np.arange(16).reshape(H, H)
    preds = [base + 3 * t for t in range(n)]
    preds[4] = preds[4].copy()
    preds[4][0, 0] = -1  # background in the last frame: one missing point per pair ending there
    r = temporal_consistency(tracks, preds, (1, 2, 4, 5, 12), geodesic=_unit_geodesic)
    r1, r2, r4, r5, r12 = r
    assert (r1.pairs, r1.points) == (4, 4 * 15)
    assert r1.mean_cm == pytest.approx(3.0) and r1.median_cm == pytest.approx(3.0)
    assert r1.within_5cm == pytest.approx(59 / 60) and r1.missing == pytest.approx(1 / 60)
    assert r2.mean_cm == pytest.approx(6.0)
    assert r2.within_5cm == 0.0 and r2.within_10cm == pytest.approx(44 / 45)
    assert r4.pairs == 1 and r4.mean_cm == pytest.approx(12.0) and r4.within_10cm == 0.0
    # error against the true vertex: frames t and t + k predict +3t and +3(t + k) cm
    # (pairs 0-1, 1-2, 2-3: 15 points, errors 3t and 3t + 3; pair 3-4: 14 points, 9 and 12)
    assert r1.error_cm == pytest.approx((15 * (3 + 9 + 15) + 14 * 21) / (2 * (45 + 14)))
    for skipped in (r5, r12):
        assert skipped.skipped and skipped.pairs == 0 and np.isnan(skipped.mean_cm)
        assert "sequence length 5" in skipped.reason
        assert skipped.to_dict()["mean_cm"] is None


def test_input_errors() -> None:
    t = FrameTracks(np.zeros((1, 2), np.int64), np.ones(1, bool), (2, 2))
    with pytest.raises(ValueError, match="2 frames of tracks but 1"):
        temporal_consistency([t, t], [np.zeros((2, 2), int)])
    with pytest.raises(ValueError, match=r"prediction \(3, 3\) vs ground truth \(2, 2\)"):
        temporal_consistency([t], [np.zeros((3, 3), int)])
    with pytest.raises(ValueError, match="positive integers"):
        temporal_consistency([t], [np.zeros((2, 2), int)], (0,))


def test_local_exact_geodesic_matches_dijkstra_below_the_radius() -> None:
    rng = np.random.default_rng(0)
    v, _ = _scaled_mesh()
    a = rng.integers(0, len(v), 60)
    # near pairs: a vertex 2-5 cm away; far pairs: random vertices
    near = np.array([
        int(np.argmin(np.abs(np.linalg.norm(v - v[i], axis=1) - 0.035))) for i in a
    ])  # fmt: skip
    far = rng.integers(0, len(v), 60)
    geo = LocalExactGeodesic(radius=0.06)
    ex = exact_geodesic(np.r_[a, a], np.r_[near, far])
    got = geo(np.r_[a, a], np.r_[near, far])
    short = ex < 0.06
    assert short.sum() > 30
    assert np.allclose(got[short], ex[short])
    assert np.all(got[~short] >= 0.06)
    assert np.all(geo(a, a) == 0)


def test_ground_truth_is_consistent_up_to_pixel_quantisation(video, frames) -> None:
    tracks = [frame_tracks(s) for s in frames]
    # a tracked vertex's pixel shows the vertex's surface: GT vertex there is within ~2 cm
    s, tr = frames[0], tracks[0]
    v = np.where(tr.visible)[0]
    assert len(v) > 500
    gt = s.vertex_index[tr.pixel[v, 1], tr.pixel[v, 0]]
    assert np.all(gt >= 0)
    sub = np.random.default_rng(0).choice(len(v), 200, replace=False)
    assert np.median(exact_geodesic(v[sub], gt[sub])) < 0.02
    r1, r3, r12 = temporal_consistency(tracks, [f.vertex_index for f in frames], (1, 3, 12))
    for r in (r1, r3):
        assert not r.skipped and r.points > 1000 and r.missing == 0.0
        assert r.mean_cm < 1.5 and r.median_cm < 1.0 and r.within_5cm > 0.95
    assert r12.skipped


def test_perturbed_prediction_gives_the_offset(frames) -> None:
    # odd frames predict a vertex ~8 cm above the true one (template frame), even
    # frames the truth: interval 1 pairs are ~8 cm apart, interval 2 pairs ~0
    v, _ = _scaled_mesh()
    from scipy.spatial import cKDTree

    up = cKDTree(v).query(v + np.array([0.0, 0.0, 0.08]))[1]
    tracks = [frame_tracks(s) for s in frames]
    preds = []
    for t, s in enumerate(frames):
        p = s.vertex_index.astype(np.int64)
        if t % 2:
            p = np.where(p >= 0, up[np.maximum(p, 0)], -1)
        preds.append(p)
    r1, r2 = temporal_consistency(tracks, preds, (1, 2))
    gt1, gt2 = temporal_consistency(tracks, [s.vertex_index for s in frames], (1, 2))
    assert 6.0 < r1.mean_cm < 11.0 and r1.within_5cm < 0.2
    assert r2.mean_cm < 2.0 * gt2.mean_cm + 2.0  # odd-odd pairs: both shifted alike
    assert r1.error_cm > gt1.error_cm + 2.0


def test_sequence_is_deterministic_and_moves(video, frames) -> None:
    again = SyntheticVideo(VideoConfig(frames=FRAMES, size=128, texture_size=128), seed=3)
    s = again.frame(2)
    assert np.array_equal(s.image, frames[2].image)
    assert np.array_equal(s.vertex_index, frames[2].vertex_index)
    assert np.allclose(again.yaws_deg, video.yaws_deg)
    assert np.allclose(np.diff(video.yaws_deg), 1.0)  # default orbit speed
    # consecutive frames differ (the body walks), but not by a cut
    d = np.abs(frames[1].image.astype(int) - frames[0].image.astype(int)).mean()
    assert 0.05 < d < 20
    other = SyntheticVideo(VideoConfig(frames=1, size=128, texture_size=128), seed=4).frame(0)
    assert not np.array_equal(other.image, frames[0].image)
    with pytest.raises(IndexError, match="out of range"):
        video.frame(FRAMES)
    with pytest.raises(ValueError, match="frames must be >= 1"):
        VideoConfig(frames=0).validate()


def test_cli_temporal_ground_truth(tmp_path, capsys) -> None:
    from reroute.cli import main

    out = tmp_path / "t.json"
    rc = main(["eval-correspondence", "--temporal", "--method", "ground-truth", "--frames", "3",
               "--size", "128", "--seed", "1", "--out", str(out)])  # fmt: skip
    assert rc == 0
    res = json.loads(out.read_text())
    assert res["frames"] == 3 and res["method"] == "ground-truth"
    k1, k12, k120 = res["intervals"]
    assert k1["interval"] == 1 and not k1["skipped"] and k1["mean_cm"] < 2.0
    assert k12["skipped"] and k120["skipped"]
    assert res["ground_truth_floor"][0]["mean_cm"] <= k1["mean_cm"] + 0.5
    assert main(["eval-correspondence", "--temporal", "--out", str(tmp_path / "x.json")]) == 2
    assert "--temporal needs --method ground-truth, reroute or bodymap" in capsys.readouterr().err
    assert main(["eval-correspondence", "--temporal", "--method", "ground-truth",
                 "--intervals", "1,x", "--out", str(tmp_path / "x.json")]) == 2  # fmt: skip
    assert not (tmp_path / "x.json").exists()
