"""Correspondence quality metrics: geodesic distances, GPS, AP/AR, 2-D accuracy, IoU.

* **Geodesic distances** on the anny template scaled to an average-height body
  (:data:`AVERAGE_HEIGHT_M` = 1.70 m, roughly SMPL's mean shape, the body
  DensePose's GPS was defined on). Exact: Dijkstra on the mesh edge graph
  (edge lengths in metres; on a triangle mesh this overestimates the true
  surface geodesic by a few per cent, the path zig-zags along edges).
  Fast: a table of exact edge-graph distances between ``n_landmarks`` vertices
  chosen by farthest-point sampling (cached in ``~/.cache/reroute``); a vertex
  pair is looked up through each vertex's nearest landmark, floored at the
  Euclidean distance, and pairs sharing a landmark use the Euclidean distance.
  With 2,048 landmarks the landmark spacing is about 3 cm, which bounds the
  lookup error (measured against the exact value in the tests).
* **GPS** (Güler et al., CVPR 2018, eq. 4.2 of DensePose):
  ``GPS_j = 1/|P_j| sum_p exp(-g(i_p, î_p)^2 / (2 kappa^2))`` over the
  ground-truth points ``P_j`` of person j, kappa = 0.255, g in metres; a ground-truth
  point the prediction calls background contributes 0 (g = infinity).
* **AP / AR** over GPS thresholds 0.50:0.05:0.95, COCO protocol (GPS in place
  of IoU): per image, predictions sorted by score are greedily matched to the
  unmatched ground truth of highest GPS above the threshold; AP is the
  101-point interpolated area under precision-recall, AR the final recall,
  both averaged over thresholds.
* **2-D accuracy** (BodyMap, Ianina et al. CVPR 2022): the share of foreground
  pixels whose predicted surface point, projected with the true posed body,
  lands within 5, 10, 20 px of the pixel.
* **Part IoU and UV error** against another system's IUV maps (e.g. DensePose
  R-CNN's): mean IoU over the 25 labels present in either map, foreground IoU,
  label agreement, mean |dU|+|dV| / 2 where parts agree.
"""

from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from reroute.body.template import get_template
from reroute.errors import InputError
from reroute.io.iuv import read_iuv
from reroute.synth.writer import read_synthetic_set

__all__ = [
    "AVERAGE_HEIGHT_M",
    "GPS_KAPPA",
    "GPS_THRESHOLDS",
    "GeodesicTable",
    "geodesic_table",
    "exact_geodesic",
    "gps",
    "coco_ap_ar",
    "accuracy_2d",
    "part_iou",
    "iuv_agreement",
    "vertices_from_iuv",
    "IUVAgreement",
    "edge_graph",
    "evaluate_synthetic_set",
    "evaluate_iuv_folders",
]

AVERAGE_HEIGHT_M = 1.70
GPS_KAPPA = 0.255
GPS_THRESHOLDS = tuple(np.round(np.arange(0.5, 0.951, 0.05), 2).tolist())


@functools.lru_cache(maxsize=1)
def _scaled_mesh() -> tuple[np.ndarray, np.ndarray]:
    """Template vertices scaled to AVERAGE_HEIGHT_M (float64), and faces."""
    t = get_template()
    v = t.vertices.astype(np.float64)
    return v * (AVERAGE_HEIGHT_M / (v[:, 2].max() - v[:, 2].min())), t.faces


@functools.lru_cache(maxsize=1)
def edge_graph():
    from scipy.sparse import coo_matrix

    v, f = _scaled_mesh()
    e = np.concatenate([f[:, [0, 1]], f[:, [1, 2]], f[:, [2, 0]]])
    e = np.unique(np.sort(e, 1), axis=0)
    w = np.linalg.norm(v[e[:, 0]] - v[e[:, 1]], axis=1)
    n = len(v)
    # anny's eyes are separate mesh pieces: join every vertex of a piece other than
    # the body to its nearest body vertex (an edge of Euclidean length)
    from scipy.sparse.csgraph import connected_components
    from scipy.spatial import cKDTree

    g = coo_matrix((np.r_[w, w], (np.r_[e[:, 0], e[:, 1]], np.r_[e[:, 1], e[:, 0]])), (n, n))
    _, lab = connected_components(g, directed=False)
    main = lab == np.bincount(lab).argmax()
    if not main.all():
        body = np.where(main)[0]
        other = np.where(~main)[0]
        d, j = cKDTree(v[body]).query(v[other])
        e2 = np.stack([other, body[j]], 1)
        e = np.concatenate([e, e2])
        w = np.r_[w, np.maximum(d, 1e-6)]
        g = coo_matrix((np.r_[w, w], (np.r_[e[:, 0], e[:, 1]], np.r_[e[:, 1], e[:, 0]])), (n, n))
    return g.tocsr()


def exact_geodesic(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Edge-graph geodesic distance (metres) between template vertices ``a[i]`` and ``b[i]``.

    Args:
        a, b: (N,) int vertex indices (same length).
    Returns:
        (N,) float64 metres on the average-height template. Runs one Dijkstra
        per distinct ``a`` (~10 ms each): for small N (tests, spot checks).
    """
    from scipy.sparse.csgraph import dijkstra

    a, b = np.asarray(a, np.int64), np.asarray(b, np.int64)
    if a.shape != b.shape:
        raise ValueError(f"a and b must have the same shape, got {a.shape} and {b.shape}")
    ua, inv = np.unique(a, return_inverse=True)
    d = dijkstra(edge_graph(), indices=ua)
    return d[inv, b]


@dataclass(frozen=True)
class GeodesicTable:
    """Landmark-based geodesic lookup on the template (see the module docstring).

    Attributes:
        landmarks: (S,) int64 template vertex indices.
        distances: (S, S) float32 exact edge-graph distances between landmarks (metres).
        nearest: (V,) int64 index into ``landmarks`` of each vertex's nearest landmark.
    """

    landmarks: np.ndarray
    distances: np.ndarray
    nearest: np.ndarray

    def __call__(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """Approximate geodesic distances (metres, float64) between vertex arrays a, b (same shape)."""
        a, b = np.asarray(a, np.int64), np.asarray(b, np.int64)
        v, _ = _scaled_mesh()
        eu = np.linalg.norm(v[a] - v[b], axis=-1)
        la, lb = self.nearest[a], self.nearest[b]
        g = self.distances[la, lb].astype(np.float64)
        return np.where(la == lb, eu, np.maximum(g, eu))


def _farthest_points(v: np.ndarray, n: int) -> np.ndarray:
    idx = np.zeros(n, np.int64)
    idx[0] = int(np.argmin(v[:, 2]))
    d = np.linalg.norm(v - v[idx[0]], axis=1)
    for i in range(1, n):
        idx[i] = int(np.argmax(d))
        d = np.minimum(d, np.linalg.norm(v - v[idx[i]], axis=1))
    return idx


@functools.lru_cache(maxsize=2)
def geodesic_table(n_landmarks: int = 2048) -> GeodesicTable:
    """The :class:`GeodesicTable` (built once, ~10-30 s, then cached on disk and in memory)."""
    from scipy.sparse.csgraph import dijkstra
    from scipy.spatial import cKDTree

    v, f = _scaled_mesh()
    key = hashlib.sha1(v.astype(np.float32).tobytes() + f.tobytes()).hexdigest()[:12]
    cache = Path.home() / ".cache" / "reroute" / f"geodesic_{n_landmarks}_{key}.npz"
    if cache.is_file():
        z = np.load(cache)
        lm, dist = z["landmarks"], z["distances"]
    else:
        lm = _farthest_points(v, n_landmarks)
        dist = np.zeros((n_landmarks, n_landmarks), np.float32)
        g = edge_graph()
        for s in range(0, n_landmarks, 256):
            dist[s : s + 256] = dijkstra(g, indices=lm[s : s + 256])[:, lm]
        dist = np.minimum(dist, dist.T)  # exact symmetry
        cache.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache.with_suffix(".tmp.npz")
        np.savez(tmp, landmarks=lm, distances=dist)
        tmp.replace(cache)
    nearest = cKDTree(v[lm]).query(v)[1]
    return GeodesicTable(lm, dist, nearest.astype(np.int64))


def gps(gt_vertex: np.ndarray, pred_vertex: np.ndarray, *, kappa: float = GPS_KAPPA,
        geodesic=None) -> float:  # fmt: skip
    """Geodesic point similarity of one person (DensePose eq. 4.2).

    Args:
        gt_vertex: (N,) int template vertex of each ground-truth point.
        pred_vertex: (N,) int predicted vertex at the same pixels; -1 = the
            prediction calls the pixel background (contributes 0).
        kappa: the normalising constant, 0.255 as in DensePose (distances in metres).
        geodesic: a callable (a, b) -> metres; defaults to :func:`geodesic_table` ().
    Returns:
        GPS in [0, 1]; 1 for a perfect prediction. ``nan`` for no points.
    """
    gt_vertex = np.asarray(gt_vertex).ravel()
    pred_vertex = np.asarray(pred_vertex).ravel()
    if gt_vertex.shape != pred_vertex.shape:
        raise ValueError(f"gt and pred must match, got {gt_vertex.shape} and {pred_vertex.shape}")
    if gt_vertex.size == 0:
        return float("nan")
    geo = geodesic or geodesic_table()
    ok = pred_vertex >= 0
    s = np.zeros(len(gt_vertex))
    if ok.any():
        g = geo(gt_vertex[ok], pred_vertex[ok])
        s[ok] = np.exp(-(g**2) / (2 * kappa**2))
    return float(s.mean())


def coco_ap_ar(images: list[tuple[np.ndarray, np.ndarray]],
               thresholds: tuple[float, ...] = GPS_THRESHOLDS) -> dict:  # fmt: skip
    """COCO-style AP and AR with GPS as the matching similarity.

    Args:
        images: per image ``(similarity, scores)``: similarity (P, G) GPS of
            each prediction against each ground-truth person, scores (P,) the
            predictions' confidences.
        thresholds: GPS thresholds (default 0.50:0.05:0.95).
    Returns:
        dict with ``AP``, ``AR`` (means over thresholds), ``AP50``, ``AP75``,
        ``per_threshold`` {t: {"AP", "AR"}}; nan when there is no ground truth.
    """
    n_gt = sum(s.shape[1] for s, _ in images)
    per = {}
    for t in thresholds:
        scores, tps = [], []
        for sim, sc in images:
            sim = np.asarray(sim, np.float64)
            sim = sim.reshape(len(sc), sim.shape[-1] if sim.ndim == 2 else -1)  # (0, G): no prediction
            matched = np.zeros(sim.shape[1], bool)
            for p in np.argsort(-np.asarray(sc), kind="stable"):
                cand = np.where(~matched & (sim[p] >= t))[0]
                tp = len(cand) > 0
                if tp:
                    matched[cand[np.argmax(sim[p, cand])]] = True
                scores.append(sc[p])
                tps.append(tp)
        if n_gt == 0:
            per[t] = {"AP": float("nan"), "AR": float("nan")}
            continue
        order = np.argsort(-np.array(scores), kind="stable")
        tp = np.array(tps, bool)[order]
        ctp, cfp = np.cumsum(tp), np.cumsum(~tp)
        rec = ctp / n_gt
        prec = ctp / np.maximum(ctp + cfp, 1)
        # precision envelope, sampled at 101 recall points (COCO)
        for i in range(len(prec) - 2, -1, -1):
            prec[i] = max(prec[i], prec[i + 1])
        rs = np.linspace(0, 1, 101)
        idx = np.searchsorted(rec, rs, side="left")
        q = np.array([prec[i] if i < len(prec) else 0.0 for i in idx])
        per[t] = {"AP": float(q.mean()) if len(prec) else 0.0,
                  "AR": float(rec[-1]) if len(rec) else 0.0}  # fmt: skip
    ap = float(np.mean([v["AP"] for v in per.values()]))
    ar = float(np.mean([v["AR"] for v in per.values()]))
    return {"AP": ap, "AR": ar, "AP50": per.get(0.5, {}).get("AP"), "AP75": per.get(0.75, {}).get("AP"),
            "per_threshold": per}  # fmt: skip


def accuracy_2d(gt_mask: np.ndarray, pred_vertex: np.ndarray, vertices_2d: np.ndarray,
                thresholds_px: tuple[float, ...] = (5.0, 10.0, 20.0)) -> dict[str, float]:  # fmt: skip
    """BodyMap's 2-D accuracy.

    Args:
        gt_mask: (H, W) bool ground-truth foreground.
        pred_vertex: (H, W) int predicted template vertex per pixel (-1 = background;
            such foreground pixels count as misses).
        vertices_2d: (V, 2) float pixel position (x, y) of every template vertex
            under the true pose and camera.
    Returns:
        ``{"acc@5px": ..., "acc@10px": ..., "acc@20px": ..., "mean_px": ...}``,
        shares in [0, 1] over ground-truth foreground pixels.
    """
    if gt_mask.shape != pred_vertex.shape:
        raise ValueError(f"gt_mask {gt_mask.shape} and pred_vertex {pred_vertex.shape} differ")
    ys, xs = np.nonzero(gt_mask)
    pv = pred_vertex[ys, xs]
    d = np.full(len(ys), np.inf)
    ok = pv >= 0
    d[ok] = np.hypot(
        vertices_2d[pv[ok], 0] - (xs[ok] + 0.5), vertices_2d[pv[ok], 1] - (ys[ok] + 0.5)
    )
    out = {
        f"acc@{int(t)}px": float((d <= t).mean()) if len(d) else float("nan") for t in thresholds_px
    }
    out["mean_px"] = float(d[ok].mean()) if ok.any() else float("nan")
    return out


def part_iou(a: np.ndarray, b: np.ndarray, n: int = 25) -> float:
    """Mean IoU of labels 0..n-1 over the labels present in either map (a, b: (H, W) ints)."""
    ious = []
    for c in range(n):
        x, y = a == c, b == c
        u = (x | y).sum()
        if u:
            ious.append((x & y).sum() / u)
    return float(np.mean(ious)) if ious else float("nan")


@dataclass
class IUVAgreement:
    """Agreement of a predicted IUV map with a reference one (see :func:`iuv_agreement`)."""

    part_iou: float
    foreground_iou: float
    label_agreement: float
    uv_abs_error: float


def iuv_agreement(pred: np.ndarray, ref: np.ndarray) -> IUVAgreement:
    """Part IoU, foreground IoU, label agreement and UV error of two (H, W, 3) uint8 IUV maps.

    ``uv_abs_error`` is the mean of |dU| and |dV| (in [0, 1]) over pixels where
    both maps give the same part; nan when none.
    Raises:
        ValueError: when the shapes differ.
    """
    if pred.shape != ref.shape or pred.ndim != 3 or pred.shape[2] != 3:
        raise ValueError(f"IUV maps must both be (H, W, 3), got {pred.shape} and {ref.shape}")
    pi, ri = pred[..., 0], ref[..., 0]
    fp, fr = pi > 0, ri > 0
    agree = (pi == ri) & fr
    both = (fp & fr).sum()
    uv = (np.abs(pred[..., 1:].astype(np.float64) - ref[..., 1:]) / 255.0)[agree]
    return IUVAgreement(
        part_iou=part_iou(pi, ri),
        foreground_iou=float((fp & fr).sum() / max((fp | fr).sum(), 1)),
        label_agreement=float(agree.sum() / max(both, 1)),
        uv_abs_error=float(uv.mean()) if uv.size else float("nan"),
    )


@functools.lru_cache(maxsize=1)
def _part_trees():
    from scipy.spatial import cKDTree

    t = get_template()
    trees = {}
    for p in range(1, 25):
        f = np.where(t.face_part == p)[0]
        uv = t.face_part_uv[f].reshape(-1, 2)
        vid = t.faces[f].reshape(-1)
        trees[p] = (cKDTree(uv), vid)
    return trees


def vertices_from_iuv(iuv: np.ndarray) -> np.ndarray:
    """Template vertex (H, W) int64 of each IUV pixel (-1 on background).

    Each pixel's (U, V) / 255 is matched to the nearest face-corner chart
    coordinate of its part I (reroute's own per-part charts, see
    :mod:`reroute.body`: IUV maps of other systems with other charts give
    meaningless vertices; compare those with :func:`iuv_agreement`).
    """
    if iuv.ndim != 3 or iuv.shape[2] != 3:
        raise ValueError(f"iuv: expected (H, W, 3), got {iuv.shape}")
    out = np.full(iuv.shape[:2], -1, np.int64)
    trees = _part_trees()
    for p in range(1, 25):
        m = iuv[..., 0] == p
        if m.any():
            tree, vid = trees[p]
            out[m] = vid[tree.query(iuv[m][:, 1:].astype(np.float64) / 255.0)[1]]
    return out


def _mean(xs: list[float]) -> float:
    xs = [x for x in xs if x == x]
    return float(np.mean(xs)) if xs else float("nan")


def evaluate_synthetic_set(root: str | Path, predict, limit: int | None = None) -> dict:
    """Correspondence metrics of a predictor on a synthetic set (``reroute synth`` output).

    Args:
        root: the set directory.
        predict: callable (record) -> (H, W, 3) uint8 IUV prediction (reroute's
            charts), or None when the method failed on that image (counted, GPS 0).
        limit: evaluate the first ``limit`` images only.
    Returns:
        dict: ``images``, ``failed``, ``gps_mean``, ``AP``/``AR``/``AP50``/``AP75``
        (GPS thresholds 0.50:0.05:0.95), 2-D accuracy at 5/10/20 px, mean
        geodesic error (cm) on foreground pixels both call body, part IoU, UV
        error and label agreement against the ground-truth IUV, per image rows.
    """

    geo = geodesic_table()
    rows, ap_in = [], []
    for k, rec in enumerate(read_synthetic_set(root)):
        if limit is not None and k >= limit:
            break
        pred = predict(rec)
        gt_v = rec.vertex_index
        m = rec.mask & (gt_v >= 0)
        if pred is None:
            rows.append({"name": rec.name, "failed": True})
            ap_in.append((np.zeros((0, 1)), np.zeros(0)))
            continue
        if pred.shape != rec.iuv.shape:
            raise ValueError(f"{rec.name}: prediction {pred.shape} vs ground truth {rec.iuv.shape}")
        pv = vertices_from_iuv(pred)
        g = gps(gt_v[m], pv[m], geodesic=geo)
        both = m & (pv >= 0)
        gerr = geo(gt_v[both], pv[both]) * 100.0 if both.any() else np.array([np.nan])
        acc = accuracy_2d(m, pv, rec.posed_vertices_2d())
        agr = iuv_agreement(pred, rec.iuv)
        ap_in.append((np.array([[g]]), np.array([1.0])))
        rows.append({"name": rec.name, "gps": round(g, 4), "geodesic_error_cm": round(float(np.mean(gerr)), 2),
                     **{k2: round(v, 4) for k2, v in acc.items()}, "part_iou": round(agr.part_iou, 4),
                     "uv_abs_error": round(agr.uv_abs_error, 4),
                     "label_agreement": round(agr.label_agreement, 4)})  # fmt: skip
    ok = [r for r in rows if not r.get("failed")]
    apar = coco_ap_ar(ap_in)
    out = {"images": len(rows), "failed": len(rows) - len(ok),
           "gps_mean": _mean([r["gps"] for r in ok] + [0.0] * (len(rows) - len(ok))),
           "AP": apar["AP"], "AR": apar["AR"], "AP50": apar["AP50"], "AP75": apar["AP75"]}  # fmt: skip
    for key in ("geodesic_error_cm", "acc@5px", "acc@10px", "acc@20px", "mean_px", "part_iou",
                "uv_abs_error", "label_agreement"):  # fmt: skip
        out[key] = _mean([r[key] for r in ok])
    out["per_image"] = rows
    return out


def evaluate_iuv_folders(gt_dir: str | Path, pred_dir: str | Path) -> dict:
    """Part IoU / UV error of predicted IUV maps against reference ones, matched by file name.

    Both folders hold IUV PNGs (cv2.imread gives I, U, V). Reference files named
    ``X_IUV.png`` match predictions ``X_IUV.png`` or ``X.png``.
    Raises:
        InputError: when no file pairs match.
    """

    gt_dir, pred_dir = Path(gt_dir), Path(pred_dir)
    rows = []
    for ref in sorted(gt_dir.glob("*.png")):
        cands = [pred_dir / ref.name, pred_dir / ref.name.replace("_IUV", "")]
        p = next((c for c in cands if c.is_file()), None)
        if p is None:
            continue
        a = iuv_agreement(read_iuv(p), read_iuv(ref))
        rows.append({"name": ref.name, **{k: round(v, 4) for k, v in vars(a).items()}})
    if not rows:
        raise InputError(f"no IUV files in {pred_dir} match the names in {gt_dir}")
    out = {"images": len(rows)}
    for key in ("part_iou", "foreground_iou", "label_agreement", "uv_abs_error"):
        out[key] = _mean([r[key] for r in rows])
    out["per_image"] = rows
    return out
