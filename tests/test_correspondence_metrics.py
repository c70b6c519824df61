"""Known answers of the correspondence metrics: geodesic distances, GPS, AP/AR,
2-D accuracy, IUV agreement, and the eval-correspondence CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest

from reroute.metrics.correspondence import (
    GPS_KAPPA,
    _scaled_mesh,
    accuracy_2d,
    coco_ap_ar,
    exact_geodesic,
    geodesic_table,
    gps,
    iuv_agreement,
    vertices_from_iuv,
)


def test_exact_geodesic_is_symmetric_zero_on_diagonal_and_near_euclid_on_the_chest() -> None:
    v, _ = _scaled_mesh()
    assert abs((v[:, 2].max() - v[:, 2].min()) - 1.70) < 1e-9
    rng = np.random.default_rng(0)
    a, b = rng.integers(0, len(v), 20), rng.integers(0, len(v), 20)
    assert np.allclose(exact_geodesic(a, b), exact_geodesic(b, a))
    assert np.all(exact_geodesic(a, a) == 0)
    assert np.all(np.isfinite(exact_geodesic(a, b)))  # eyes are joined to the head
    # nearby points on the flat-ish chest front: the geodesic is close to the straight line
    chest_z = v[:, 2].min() + 0.72 * 1.70
    front = np.where((np.abs(v[:, 0]) < 0.08) & (np.abs(v[:, 2] - chest_z) < 0.05) & (v[:, 1] < 0))[
        0
    ]
    front = front[np.argsort(v[front, 1])][:40]  # the most forward ones
    p, q = front[:20], front[20:]
    eu = np.linalg.norm(v[p] - v[q], axis=1)
    g = exact_geodesic(p, q)
    assert np.all(g >= eu - 1e-9)
    assert np.all(g <= 1.2 * eu + 0.005)


def test_landmark_table_approximates_the_exact_geodesic() -> None:
    table = geodesic_table()
    rng = np.random.default_rng(1)
    a, b = rng.integers(0, 13718, 200), rng.integers(0, 13718, 200)
    err = np.abs(table(a, b) - exact_geodesic(a, b))
    assert err.mean() < 0.02  # metres
    assert np.allclose(table(a, b), table(b, a))
    assert np.all(table(a, a) == 0)


def test_gps_known_answers() -> None:
    gt = np.arange(100)
    assert gps(gt, gt) == 1.0
    assert gps(gt, np.full(100, -1)) == 0.0

    # a constant 0.255 m error everywhere: exp(-1/2)
    def const(a, b):
        return np.full(len(a), GPS_KAPPA)

    assert gps(gt, gt + 1, geodesic=const) == pytest.approx(np.exp(-0.5))
    half = gt.copy()
    half[:50] = -1
    assert gps(gt, half) == pytest.approx(0.5)


def test_ap_ar_known_answers() -> None:
    perfect = [(np.array([[1.0]]), np.array([0.9])) for _ in range(5)]
    r = coco_ap_ar(perfect)
    assert r["AP"] == 1.0 and r["AR"] == 1.0
    # two images: GPS 0.9 and 0.6 (equal scores): thresholds <= 0.6 all right,
    # 0.65..0.9 half recall at precision 1 (51 of 101 recall points), 0.95 nothing
    r = coco_ap_ar([(np.array([[0.9]]), np.array([1.0])), (np.array([[0.6]]), np.array([1.0]))])
    assert r["AP"] == pytest.approx((3 * 1.0 + 6 * 51 / 101) / 10)
    assert r["AR"] == pytest.approx((3 * 1.0 + 6 * 0.5) / 10)
    # a false positive with a higher score than the true one lowers precision
    r = coco_ap_ar([(np.array([[0.1], [1.0]]), np.array([0.9, 0.5]))])
    assert r["AP"] == pytest.approx(0.5) and r["AR"] == 1.0
    # an image where the method found no person: its ground truth is simply missed
    r = coco_ap_ar([(np.array([[1.0]]), np.array([1.0])), (np.zeros((0, 1)), np.zeros(0))])
    assert r["AR"] == 0.5 and r["AP"] == pytest.approx(51 / 101)


def test_accuracy_2d_known_answers() -> None:
    h, w = 20, 30
    ys, xs = np.mgrid[0:h, 0:w]
    verts2d = np.stack([xs.ravel() + 0.5, ys.ravel() + 0.5], 1)  # vertex k projects onto pixel k
    pred = np.arange(h * w).reshape(h, w)
    mask = np.ones((h, w), bool)
    assert accuracy_2d(mask, pred, verts2d)["acc@5px"] == 1.0
    r = accuracy_2d(mask, pred, verts2d + [7.0, 0.0])
    assert r["acc@5px"] == 0.0 and r["acc@10px"] == 1.0 and r["mean_px"] == pytest.approx(7.0)
    pred_bg = pred.copy()
    pred_bg[:10] = -1
    assert accuracy_2d(mask, pred_bg, verts2d)["acc@20px"] == pytest.approx(0.5)


def test_iuv_agreement_and_vertex_decoding_on_a_synthetic_render() -> None:
    from reroute.synth.engine import SynthConfig, SyntheticEngine

    s = SyntheticEngine(SynthConfig(size=128, texture_size=256, views_per_identity=1), 3).sample(
        0, 0
    )
    a = iuv_agreement(s.iuv, s.iuv)
    assert (a.part_iou, a.foreground_iou, a.label_agreement, a.uv_abs_error) == (1.0, 1.0, 1.0, 0.0)
    pv = vertices_from_iuv(s.iuv)
    m = s.mask
    assert (pv[~s.correspondence.mask] == -1).all()
    # 8-bit IUV decodes to within about a centimetre: GPS close to 1
    assert gps(s.vertex_index[m], pv[m]) > 0.98
    shuffled = s.iuv.copy()
    shuffled[..., 0] = np.where(shuffled[..., 0] > 0, 25 - shuffled[..., 0], 0)
    assert iuv_agreement(shuffled, s.iuv).part_iou < 0.5
    with pytest.raises(ValueError, match="IUV maps"):
        iuv_agreement(s.iuv, s.iuv[:10])


def test_eval_correspondence_cli(tmp_path, capsys) -> None:
    from reroute.cli import main
    from reroute.synth.engine import SynthConfig
    from reroute.synth.writer import write_synthetic_set

    root = write_synthetic_set(tmp_path / "set", 1, SynthConfig(size=128, texture_size=256,
                                                                 views_per_identity=2), seed=2)  # fmt: skip
    out = tmp_path / "m.json"
    assert main(["eval-correspondence", "--gt", str(root), "--method", "ground-truth",
                 "--out", str(out)]) == 0  # fmt: skip
    res = json.loads(out.read_text())
    assert res["images"] == 2 and res["AP"] == 1.0 and res["part_iou"] == 1.0
    assert res["gps_mean"] > 0.98 and res["acc@20px"] > 0.99
    # IUV folders: the set's own IUV maps against themselves
    assert main(["eval-correspondence", "--gt", str(root / "iuv"), "--pred", str(root / "iuv"),
                 "--out", str(out)]) == 0  # fmt: skip
    assert json.loads(out.read_text())["part_iou"] == 1.0
    capsys.readouterr()
    assert main(["eval-correspondence", "--gt", str(tmp_path / "nope"), "--out", str(out)]) == 2
    assert "is not a directory" in capsys.readouterr().err
