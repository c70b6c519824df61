"""Decoding BodyMap predictions: colour code -> template surface point -> UV and IUV.

The BodyMap network (:mod:`reroute.correspondence.bodymap.network`) predicts, per
pixel, 256-way scores for each of the three colour-code channels and a
foreground logit. The colour code of a surface point is its canonical
(rest-pose) position normalised to [0, 1]^3 over the template's bounding box
(:meth:`reroute.body.template.BodyTemplate.colour_code`), quantised to 256
levels per channel: level ``k`` stands for the colour ``(k + 0.5) / 256``
(:func:`colour_targets` gives the training targets, :func:`expected_colour`
reads a continuous colour back with sub-bin precision).

Decoding maps a colour to the nearest point of the template surface
(:func:`nearest_surface_points`) and reads every coordinate system off that
point (:func:`decode_colour_map`): the DensePose part of its face, the per-part
chart (U, V) and the continuous UV interpolated barycentrically from the face's
corners, and the nearest template vertex. Conventions are the template's
(:mod:`reroute.body.template`): continuous UV in image convention (u along x,
v along y, v = 0 on the top row); per-part (U, V) in [0, 1] in DensePose's
atlas convention (U along x, V along y reversed, as in detectron2's DensePose
texture visualizer); canonical positions in metres, z up, face towards -y.
"""

from __future__ import annotations

import functools
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import cv2
import numpy as np
import torch
from scipy import ndimage
from scipy.spatial import cKDTree

from reroute.body.template import MIRROR_PART, get_template
from reroute.correspondence.maps import Correspondence

__all__ = [
    "LEVELS",
    "WINDOW",
    "expected_prior_colour",
    "SurfacePoints",
    "DecodedCorrespondence",
    "nearest_surface_points",
    "decode_colour_map",
    "remove_part_islands",
    "MIN_ISLAND",
    "expected_colour",
    "colour_targets",
    "decode_logits",
    "PART_LOOKUP_SIDE",
    "part_lookup",
]

#: quantisation levels per colour-code channel; level k means colour (k + 0.5) / LEVELS
LEVELS = 256
#: half-width (in bins) of the window around the argmax used by :func:`expected_colour`
WINDOW = 4
#: part islands below this fraction of the foreground are refilled by :func:`remove_part_islands`
MIN_ISLAND = 0.004
#: every point of a template face lies within this distance (metres) of one of the
#: face's surface samples (see :func:`_surface_samples`)
_SAMPLE_RADIUS = 4e-3
#: samples of the wanted part whose faces are searched when a point must move to that part
_K_FIRST = 16
#: samples fetched per query point by the first search of :func:`nearest_surface_points`
#: (doubled while the search ball holds more; on the surface it holds 2-6)
_K_START = 8
#: at most this many samples per query point (reached only far off the body)
_K_MAX = 256
#: (point, candidate) pairs projected at once (bounds the temporaries)
_PAIRS = 1 << 17
#: a softmax term this far below the peak score is negligible in float32 (see
#: :func:`expected_prior_colour`)
_NEGLIGIBLE = 30.0
#: :func:`nearest_surface_points` of at least this many points runs in two halves on two threads
_SPLIT = 8192
#: k-d tree queries of at least this many points run on every core
_PARALLEL_QUERY = 512
#: cells per colour-code axis of :func:`part_lookup`
PART_LOOKUP_SIDE = 128


@dataclass
class SurfacePoints:
    """Points on the template surface, as a face and barycentric weights.

    Attributes:
        face: (N,) int64 template face index (into ``BodyTemplate.faces``).
        barycentric: (N, 3) float32 weights of the face's three corners, each in
            [0, 1], summing to 1; the point is ``sum_i w_i * vertices[faces[face, i]]``.
    """

    face: np.ndarray
    barycentric: np.ndarray

    def positions(self) -> np.ndarray:
        """(N, 3) float32 canonical positions of the points, in metres."""
        t = get_template()
        corners = t.vertices[t.faces[self.face]]  # (N, 3, 3)
        return np.einsum("nc,ncd->nd", self.barycentric, corners).astype(np.float32)

    def vertex(self) -> np.ndarray:
        """(N,) int64 the face corner with the largest barycentric weight."""
        t = get_template()
        return t.faces[self.face, self.barycentric.argmax(1)].astype(np.int64)


@dataclass
class DecodedCorrespondence:
    """A decoded correspondence map of one image.

    Attributes:
        correspondence: the per-pixel :class:`~reroute.correspondence.maps.Correspondence`
            (part uint8 0..24, part_uv / uv float32 in [0, 1], colour float32 the
            decoded surface point's colour code, ``mask`` and ``body_mask`` the
            predicted foreground; all 0 on background).
        confidence: (H, W) float32 in [0, 1], 0 on background.
        vertex: (H, W) int64 nearest template vertex of each foreground pixel,
            -1 on background (the input of :func:`reroute.metrics.correspondence.gps`
            and :func:`~reroute.metrics.correspondence.accuracy_2d`).
    """

    correspondence: Correspondence
    confidence: np.ndarray
    vertex: np.ndarray


@functools.lru_cache(maxsize=1)
def _surface_samples() -> tuple[cKDTree, np.ndarray, float]:
    """Surface samples of the template, built once per process (~0.15 s).

    Each face (a, b, c) is cut into ``m * m`` congruent sub-triangles (a
    barycentric grid, ``m = ceil(R / _SAMPLE_RADIUS)`` with ``R`` the face's
    centroid-to-corner radius) and sampled at their centroids, so every point of
    every face lies within ``radius <= _SAMPLE_RADIUS`` of a sample of that face.

    Returns:
        a k-d tree over the (S, 3) float64 samples in canonical metres, the (S,)
        int64 face of each sample, and ``radius`` (metres).
    """
    t = get_template()
    tri = t.vertices[t.faces].astype(np.float64)  # (F, 3, 3)
    reach = np.linalg.norm(tri - tri.mean(1, keepdims=True), axis=2).max(1)
    m = np.maximum(np.ceil(reach / _SAMPLE_RADIUS), 1).astype(np.int64)
    points, owner = [], []
    for mi in np.unique(m):
        i, j = np.meshgrid(np.arange(mi), np.arange(mi), indexing="ij")
        up = (i + j) <= mi - 1
        down = (i + j) <= mi - 2
        uv = np.concatenate([np.stack([i[up] + 1 / 3, j[up] + 1 / 3], 1),
                             np.stack([i[down] + 2 / 3, j[down] + 2 / 3], 1)]) / mi  # fmt: skip
        w = np.column_stack([1.0 - uv.sum(1), uv])  # (mi * mi, 3)
        faces = np.flatnonzero(m == mi)
        points.append(np.einsum("sc,fcd->fsd", w, tri[faces]).reshape(-1, 3))
        owner.append(np.repeat(faces, len(w)))
    radius = float((reach / m).max())
    return cKDTree(np.concatenate(points)), np.concatenate(owner).astype(np.int64), radius


@functools.lru_cache(maxsize=1)
def _part_samples() -> dict[int, tuple[cKDTree, np.ndarray]]:
    """Part -> (k-d tree over that part's surface samples, (S_p,) int64 face of each)."""
    t = get_template()
    tree, owner, _ = _surface_samples()
    part = t.face_part[owner]
    return {p: (cKDTree(tree.data[part == p]), owner[part == p]) for p in range(1, 25)}


def _query(tree: cKDTree, q: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """``tree.query(q, k)`` as (n, k) distances and indices; on every core for large
    queries (starting the threads costs more than small ones take)."""
    dist, idx = tree.query(q, k=k, workers=-1 if len(q) >= _PARALLEL_QUERY else 1)
    return dist.reshape(len(q), k), idx.reshape(len(q), k)


def _within_parts(p: np.ndarray, parts: np.ndarray, face: np.ndarray,
                  bary: np.ndarray) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """Move the points whose nearest face is not of their part in ``parts`` (N,)
    (1..24; 0 = any) to the nearest point of that part: the best projection onto the
    faces of the part's ``_K_FIRST`` surface samples nearest to ``p`` (metres), or to
    ``p`` mirrored (x -> -x) when the wanted part is the mirror of the found one."""
    t = get_template()
    found = t.face_part[face]
    rows = np.flatnonzero((parts > 0) & (parts != found))
    mirror = np.asarray(MIRROR_PART)[found[rows]] == parts[rows]
    q = p[rows].copy()
    q[mirror, 0] *= -1.0
    samples = _part_samples()
    for part in np.unique(parts[rows]):
        sel = np.flatnonzero(parts[rows] == part)
        tree, owner = samples[int(part)]
        k = min(_K_FIRST, len(owner))
        _, idx = _query(tree, q[sel], k)
        f, b = _project_best(q[sel], owner[idx.reshape(len(sel), k)])
        face[rows[sel]], bary[rows[sel]] = f, b
    return face, bary


@functools.lru_cache(maxsize=4)
def part_lookup(side: int = PART_LOOKUP_SIDE) -> torch.Tensor:
    """The DensePose part of the template surface in each cell of colour space.

    Cell ``(i, j, k)`` holds the colour codes in ``[i, i + 1) / side`` (and so on per
    channel). Each cell the surface passes through takes the part (1..24) of the face
    owning the surface sample (:func:`_surface_samples`, 4 mm apart or closer) nearest
    to the cell's centre; cells holding no sample read 0 (off the body, and a few thin
    cells on it). With the default 128 cells an axis a cell spans 0.8 cm (x), 0.3 cm (y)
    and 1.3 cm (z) of the canonical body, so a colour code on the surface reads its own
    part except near a part border or in an empty cell (98.2 % of random surface points
    read their own part). Built once per process in under 0.1 s after the samples; the
    BodyMap network's part prior reads the initial correspondences' part from it
    (:meth:`~reroute.correspondence.bodymap.network.BodyMapNet.part_scores`).

    Args:
        side: cells per colour-code axis.

    Returns:
        (side, side, side) uint8 tensor indexed by the quantised colour channels
        (0, 1, 2) = (x, y, z) of the canonical frame.
    """
    t = get_template()
    tree, owner, _ = _surface_samples()
    colour = (tree.data - t.bbox_min) / (t.bbox_max - t.bbox_min)
    cell = np.clip((colour * side).astype(np.int64), 0, side - 1)
    off = ((colour * side - cell - 0.5) ** 2).sum(1)
    order = np.argsort(-off)  # the sample nearest to its cell's centre is written last
    flat = ((cell[:, 0] * side + cell[:, 1]) * side + cell[:, 2])[order]
    part = np.zeros(side**3, np.uint8)
    part[flat] = t.face_part[owner[order]]
    return torch.from_numpy(part.reshape(side, side, side))


def _safe_div(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """``num / den`` with 0 where ``den`` is 0 (degenerate triangles)."""
    ok = den != 0
    return np.where(ok, num / np.where(ok, den, 1.0), 0.0)


def _closest_on_triangles(p: np.ndarray, a: np.ndarray, b: np.ndarray,
                          c: np.ndarray) -> np.ndarray:  # fmt: skip
    """Barycentric weights (..., 3) of the point of triangle (a, b, c) closest to p.

    All inputs (..., 3) float64. The region-based test of Ericson, *Real-Time
    Collision Detection*, sec. 5.1.5: vertex regions, then edge regions, then
    the interior, evaluated for every triangle and picked with ``np.select`` in
    the book's order (the first region whose test holds wins).
    """

    def dot(x: np.ndarray, y: np.ndarray) -> np.ndarray:
        return np.einsum("...i,...i->...", x, y)

    ab, ac = b - a, c - a
    ap, bp, cp = p - a, p - b, p - c
    d1, d2 = dot(ab, ap), dot(ac, ap)
    d3, d4 = dot(ab, bp), dot(ac, bp)
    d5, d6 = dot(ab, cp), dot(ac, cp)
    va = d3 * d6 - d5 * d4
    vb = d5 * d2 - d1 * d6
    vc = d1 * d4 - d3 * d2
    t_ab = _safe_div(d1, d1 - d3)
    t_ac = _safe_div(d2, d2 - d6)
    t_bc = _safe_div(d4 - d3, (d4 - d3) + (d5 - d6))
    total = va + vb + vc
    in_v, in_w = _safe_div(vb, total), _safe_div(vc, total)
    zero, one = np.zeros_like(d1), np.ones_like(d1)
    conditions = [
        (d1 <= 0) & (d2 <= 0),  # vertex a
        (d3 >= 0) & (d4 <= d3),  # vertex b
        (vc <= 0) & (d1 >= 0) & (d3 <= 0),  # edge ab
        (d6 >= 0) & (d5 <= d6),  # vertex c
        (vb <= 0) & (d2 >= 0) & (d6 <= 0),  # edge ac
        (va <= 0) & (d4 - d3 >= 0) & (d5 - d6 >= 0),  # edge bc
    ]
    v = np.select(conditions, [zero, one, t_ab, zero, zero, 1.0 - t_bc], in_v)
    w = np.select(conditions, [zero, zero, zero, one, t_ac, t_bc], in_w)
    return np.stack([1.0 - v - w, v, w], axis=-1)


@functools.lru_cache(maxsize=1)
def _triangles() -> np.ndarray:
    """(F, 3 corners, 3) float64 canonical corner positions of every template face."""
    t = get_template()
    return t.vertices.astype(np.float64)[t.faces]


def _project_best(p: np.ndarray, cand: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The closest of each row's candidate faces: p (n, 3) float64 metres, cand (n, k)
    int64 faces (-1 = none; at least one per row) -> face (n,), barycentric (n, 3).

    Each distinct face of a row is projected once (neighbouring samples mostly share
    their faces); of equally close faces the one first in ``cand`` wins."""
    if cand.shape[1] == 1:
        rows, faces = np.arange(len(cand)), cand[:, 0]
    else:
        order = np.argsort(cand, axis=1, kind="stable")
        ordered = np.take_along_axis(cand, order, 1)
        first = np.ones(cand.shape, bool)
        first[:, 1:] = ordered[:, 1:] != ordered[:, :-1]
        keep = np.zeros(cand.shape, bool)
        np.put_along_axis(keep, order, first & (ordered >= 0), 1)
        rows, cols = np.nonzero(keep)  # distinct (row, face) pairs, in candidate order per row
        faces = cand[rows, cols]
    dist = np.empty(len(rows))
    bary = np.empty((len(rows), 3))
    for s in range(0, len(rows), _PAIRS):
        q, tri = p[rows[s:s + _PAIRS]], _triangles()[faces[s:s + _PAIRS]]  # (m, 3), (m, 3 corners, 3)
        w = _closest_on_triangles(q, tri[:, 0], tri[:, 1], tri[:, 2])
        dist[s:s + _PAIRS] = ((np.einsum("mc,mcd->md", w, tri) - q) ** 2).sum(-1)
        bary[s:s + _PAIRS] = w
    if len(rows) == len(cand):  # one pair a row
        return faces, bary
    # per row (rows ascending, pairs in candidate order) the first pair at the row's minimum
    new_row = np.diff(rows, prepend=-1) != 0
    row_min = np.minimum.reduceat(dist, np.flatnonzero(new_row))
    at_min = np.flatnonzero(dist == row_min[np.cumsum(new_row) - 1])
    best = at_min[np.diff(rows[at_min], prepend=-1) != 0]
    return faces[best], bary[best]


def nearest_surface_points(colours: np.ndarray, parts: np.ndarray | None = None) -> SurfacePoints:
    """The template surface point nearest to each colour code (within a given part).

    The colour code is an affine map of canonical positions (a per-axis scale),
    so the search runs in canonical metres, ``p = bbox_min + c * (bbox_max -
    bbox_min)``, and "nearest" means Euclidean distance to the body surface.
    Candidates come from dense surface samples (every point of a face lies
    within ``r`` = 4 mm of one of that face's samples; a k-d tree built once per
    process): the face of the sample nearest to ``p`` gives an upper bound ``U``
    on the distance, and every face closer than ``U`` has a sample within
    ``U + r`` of ``p``; the faces of all samples in that ball are the
    candidates, ``p`` is projected onto each (closest point on a triangle) and
    the closest projection kept. The result is exact among the candidate faces,
    and hence exact overall (up to rounding) whenever the ball holds at most
    ``_K_MAX`` (256) samples, which holds for points within centimetres of the
    body; farther off, the best of the 256 nearest samples' faces is returned,
    at most ``r`` farther from ``p`` than the true nearest point.

    (Candidates from the faces around the k nearest template *vertices* are not
    enough: on anny's long thin triangles that misses the true face for ~0.2 %
    of on-surface points, by up to 2 mm, even with k = 8.)

    With ``parts``, a point whose nearest face lies in another part than its own
    entry is replaced by the nearest point of that part (among the faces of the
    part's 16 surface samples nearest to it; when the part asked for is the mirror
    image of the one found, e.g. left for right upper arm, the position is mirrored
    (x -> -x) first, so the point lands on the same spot of the other side).

    Args:
        colours: (N, 3) float BodyMap colour codes in [0, 1] (values outside are
            decoded as the positions they extrapolate to).
        parts: optional (N,) int DensePose part 1..24 each point must lie in (0: any),
            e.g. the BodyMap part head's prediction.
    Returns:
        :class:`SurfacePoints` with N entries.
    Raises:
        ValueError: if ``colours`` is not (N, 3) or ``parts`` not (N,), naming
            expected and actual shape.
    """
    colours = np.asarray(colours)
    if colours.ndim != 2 or colours.shape[1] != 3:
        raise ValueError(f"colours: expected shape (N, 3), got {colours.shape}")
    if parts is not None and np.shape(parts) != (len(colours),):
        raise ValueError(f"parts: expected shape ({len(colours)},), got {np.shape(parts)}")
    t = get_template()
    lo = t.bbox_min.astype(np.float64)
    p = lo + colours.astype(np.float64) * (t.bbox_max.astype(np.float64) - lo)
    parts = None if parts is None else np.asarray(parts, np.int64)
    if len(p) < _SPLIT:
        return _nearest(p, parts)
    _surface_samples()  # the cached samples and triangles are built once, before the threads
    _triangles()
    if parts is not None:
        _part_samples()
    # two halves on two threads (numpy and the k-d tree release the GIL; each row is
    # decoded on its own, so the result is the same)
    halves = (slice(0, len(p) // 2), slice(len(p) // 2, None))
    with ThreadPoolExecutor(2) as pool:
        a, b = pool.map(lambda h: _nearest(p[h], None if parts is None else parts[h]), halves)
    return SurfacePoints(np.concatenate([a.face, b.face]), np.concatenate([a.barycentric, b.barycentric]))


def _nearest(p: np.ndarray, parts: np.ndarray | None) -> SurfacePoints:
    """:func:`nearest_surface_points` of ``p`` (N, 3) float64 canonical metres, ``parts``
    (N,) int64 or ``None``."""
    tree, owner, radius = _surface_samples()
    k = min(_K_START, len(owner))
    dist, idx = _query(tree, p, k)
    face, bary = _project_best(p, owner[idx[:, :1]])
    upper = np.linalg.norm(np.einsum("nc,ncd->nd", bary, _triangles()[face]) - p, axis=1)
    bound = upper + radius + 1e-9  # every face closer than `upper` has a sample in here
    rows = np.arange(len(p))
    while len(rows):
        if k > dist.shape[1]:  # the ball holds more: fetch more samples for these rows
            dist, idx = _query(tree, p[rows], k)
        inside = dist <= bound[rows, None]
        more = inside[:, -1] & (k < min(_K_MAX, len(owner)))
        done = rows[~more]
        cand = np.where(inside[~more], owner[idx[~more]], -1)
        cand = np.concatenate([face[done, None], cand], 1)
        face[done], bary[done] = _project_best(p[done], cand)
        rows, k = rows[more], min(2 * k, _K_MAX, len(owner))
        dist, idx = dist[more], idx[more]
    if parts is not None:
        face, bary = _within_parts(p, parts, face, bary)
    return SurfacePoints(face, bary.astype(np.float32))


def decode_colour_map(colour: np.ndarray, mask: np.ndarray, confidence: np.ndarray | None = None,
                      part: np.ndarray | None = None) -> DecodedCorrespondence:  # fmt: skip
    """Decode a BodyMap colour-code image into every coordinate system of the template.

    For each mask pixel, the nearest template surface point
    (:func:`nearest_surface_points`) gives: part = its face's DensePose part
    (1..24); part_uv = the per-part chart (U, V) in [0, 1] (U along x, V along y
    reversed, detectron2's atlas convention) and uv = continuous UV in [0, 1]
    (image convention: u along x, v along y, v = 0 on the top row), both
    interpolated barycentrically from the face's corners; colour = the surface
    point's own colour code (the input snapped onto the surface); vertex = the
    face corner with the largest barycentric weight.

    Args:
        colour: (H, W, 3) float colour code in [0, 1] (read on ``mask`` only).
        mask: (H, W) bool foreground; becomes both ``mask`` and ``body_mask``.
        confidence: optional (H, W) float per-pixel confidence, clipped to [0, 1];
            ``None`` means 1 on every mask pixel.
        part: optional (H, W) int DensePose part 1..24 per pixel (the part head's);
            each mask pixel's surface point is then searched within its part
            (:func:`nearest_surface_points`; 0: any part).
    Returns:
        :class:`DecodedCorrespondence`; every field is 0 (``vertex`` -1) off the mask.
    Raises:
        ValueError: on shapes other than (H, W, 3) and (H, W) for the others, naming
            expected and actual shape.
    """
    colour = np.asarray(colour)
    mask = np.asarray(mask, bool)
    if colour.ndim != 3 or colour.shape[2] != 3:
        raise ValueError(f"colour: expected shape (H, W, 3), got {colour.shape}")
    hw = colour.shape[:2]
    if mask.shape != hw:
        raise ValueError(f"mask: expected shape {hw}, got {mask.shape}")
    if confidence is not None and np.shape(confidence) != hw:
        raise ValueError(f"confidence: expected shape {hw}, got {np.shape(confidence)}")
    if part is not None and np.shape(part) != hw:
        raise ValueError(f"part: expected shape {hw}, got {np.shape(part)}")
    t = get_template()
    sp = nearest_surface_points(colour[mask].astype(np.float64), None if part is None else np.asarray(part)[mask])
    w = sp.barycentric[:, :, None]
    part = np.zeros(hw, np.uint8)
    part_uv = np.zeros(hw + (2,), np.float32)
    uv = np.zeros(hw + (2,), np.float32)
    snapped = np.zeros(hw + (3,), np.float32)
    vertex = np.full(hw, -1, np.int64)
    part[mask] = t.face_part[sp.face]
    part_uv[mask] = (w * t.face_part_uv[sp.face]).sum(1)
    uv[mask] = (w * t.face_uv[sp.face]).sum(1)
    snapped[mask] = t.colour_code(sp.positions())
    vertex[mask] = sp.vertex()
    conf = np.zeros(hw, np.float32)
    if confidence is None:
        conf[mask] = 1.0
    else:
        conf[mask] = np.clip(np.asarray(confidence, np.float32)[mask], 0.0, 1.0)
    corr = Correspondence(part, np.clip(part_uv, 0.0, 1.0), np.clip(uv, 0.0, 1.0), snapped,
                          mask.copy(), mask.copy())  # fmt: skip
    return DecodedCorrespondence(corr, conf, vertex)


def remove_part_islands(d: DecodedCorrespondence, min_fraction: float = MIN_ISLAND) -> DecodedCorrespondence:
    """Refill the small islands of each part label from their surroundings.

    Decoding each pixel on its own leaves speckles: a few pixels whose colour falls
    just across a part border of the template become islands of another part
    (which a part-label IoU counts as a whole wrong class). Every 8-connected
    component of one part smaller than ``min_fraction`` of the foreground is
    refilled with the correspondences (part, UVs, colour, vertex, confidence) of
    its nearest pixel outside such islands (Euclidean distance transform); the
    foreground does not change.

    Args:
        d: a :class:`DecodedCorrespondence` (H, W).
        min_fraction: island size threshold as a fraction of the foreground's pixels.
    Returns:
        a new :class:`DecodedCorrespondence` (``d`` itself when nothing changes).
    """
    c = d.correspondence
    limit = min_fraction * c.mask.sum()
    if not c.mask.any():
        return d
    ys, xs = np.nonzero(c.mask)  # the work is done in the foreground's box
    box = (slice(ys.min(), ys.max() + 1), slice(xs.min(), xs.max() + 1))
    part, mask = c.part[box], c.mask[box]
    island = np.zeros(part.shape, bool)
    for p in np.unique(part[mask]):
        n, labels, stats, _ = cv2.connectedComponentsWithStats((part == p).astype(np.uint8), connectivity=8)
        small = np.flatnonzero(stats[1:, cv2.CC_STAT_AREA] < limit) + 1
        if len(small):
            island |= np.isin(labels, small)
    keep = mask & ~island
    if not island.any() or not keep.any():
        return d
    iy, ix = ndimage.distance_transform_edt(~keep, return_distances=False, return_indices=True)
    src = (iy[island] + box[0].start, ix[island] + box[1].start)
    island = np.pad(island, ((box[0].start, c.shape[0] - box[0].stop), (box[1].start, c.shape[1] - box[1].stop)))

    def refill(a: np.ndarray) -> np.ndarray:
        a = a.copy()
        a[island] = a[src]
        return a

    corr = Correspondence(refill(c.part), refill(c.part_uv), refill(c.uv), refill(c.colour), c.mask.copy(),
                          c.body_mask.copy())  # fmt: skip
    return DecodedCorrespondence(corr, refill(d.confidence), refill(d.vertex))


def _check_logits(logits: torch.Tensor) -> None:
    if logits.ndim != 5 or logits.shape[1] != 3 or logits.shape[2] != LEVELS:
        raise ValueError(
            f"logits: expected shape (B, 3, {LEVELS}, H, W), got {tuple(logits.shape)}")


def expected_colour(logits: torch.Tensor,
                    window: int = WINDOW) -> tuple[torch.Tensor, torch.Tensor]:  # fmt: skip
    """Continuous colour per channel from 256-way scores, with sub-bin precision.

    Per channel and pixel: the softmax over the 256 levels, restricted to the
    bins within ``window`` of the argmax (clipped at levels 0 and 255),
    renormalised, and its expectation taken with level ``k`` meaning colour
    ``(k + 0.5) / 256``. Restricting to a window keeps a second mode far away
    from pulling the estimate between the two.

    Args:
        logits: (B, 3, 256, H, W) float scores (any device; not differentiated).
        window: half-width of the window, in bins.
    Returns:
        ``(colour, mass)``: (B, 3, H, W) float32 colour in [0.5/256, 255.5/256],
        and (B, 3, H, W) float32 softmax mass inside the window, in (0, 1].
    Raises:
        ValueError: if ``logits`` is not (B, 3, 256, H, W), naming expected and actual.
    """
    _check_logits(logits)
    with torch.no_grad():
        return _windowed_expectation(logits.detach().float().movedim(2, -1), 0, window)


def _windowed_expectation(x: torch.Tensor, first: torch.Tensor | int,
                          window: int) -> tuple[torch.Tensor, torch.Tensor]:  # fmt: skip
    """:func:`expected_colour`'s work on scores ``x`` (..., K) over the consecutive levels
    ``first + 0 .. first + K - 1`` (``first``: an int or (..., 1) int64; levels outside
    0..255 must score ``-inf``); terms below e^-80 of the peak enter the softmax's
    normaliser as e^-80 (no change in float32, where ``exp``'s slow path for
    underflowing arguments costs 7 times more). Returns colour and mass (...)."""
    top = x.argmax(-1, keepdim=True)  # (..., 1), the first of equal maxima
    peak = x.gather(-1, top)
    lse = peak + (x - peak).clamp_(min=-80.0).exp_().sum(-1, keepdim=True).log_()
    idx = top + torch.arange(-window, window + 1, device=x.device)
    level = idx + first
    inside = (level >= 0) & (level < LEVELS)
    p = torch.exp(x.gather(-1, idx.clamp(0, x.shape[-1] - 1)) - lse) * inside
    mass = p.sum(-1)
    colour = (p * ((level.float() + 0.5) / LEVELS)).sum(-1) / mass.clamp_min(torch.finfo(torch.float32).tiny)
    return colour, mass.clamp(0.0, 1.0)


def expected_prior_colour(centre: torch.Tensor, on: torch.Tensor, sharpness: float,
                          window: int = WINDOW) -> tuple[torch.Tensor, torch.Tensor]:  # fmt: skip
    """:func:`expected_colour` of scores that are the BodyMap initialisation prior alone,
    ``-sharpness * (level - centre)^2`` on the initial mask and 0 off it, without making
    the 256 scores per channel.

    Levels farther than ``256 * sqrt(30 / sharpness)`` from ``centre`` score more than 30
    below the peak (e^-30 = 1e-13 of its weight; all 256 together could not change a
    float32 sum), so the scores are made on that band only (67 of the 256 levels at the
    default sharpness 2000): the result equals :func:`expected_colour` of the full
    scores up to float rounding (< 1e-6). What
    :meth:`~reroute.correspondence.bodymap.network.BodyMapNet.score_pixels` returns when
    its free colour scores are all zero (a network trained without the colour terms).

    Args:
        centre: (B, 3, N) float initial colour code in [0, 1].
        on: (B, N) bool, the initial mask.
        sharpness: the prior's sharpness (> 0).
        window: as :func:`expected_colour`.
    Returns:
        ``(colour, mass)``: (B, 3, N, 1) float32 each, as :func:`expected_colour`.
    Raises:
        ValueError: on other shapes (expected versus actual) or a sharpness <= 0.
    """
    if centre.ndim != 3 or centre.shape[1] != 3 or tuple(on.shape) != (centre.shape[0], centre.shape[2]):
        raise ValueError(f"centre, on: expected (B, 3, N) and (B, N), got {tuple(centre.shape)}, {tuple(on.shape)}")
    if not sharpness > 0:
        raise ValueError(f"sharpness must be > 0, got {sharpness}")
    with torch.no_grad():
        c = centre.detach().float()[..., None]  # (B, 3, N, 1)
        reach = max(int(np.ceil(LEVELS * np.sqrt(_NEGLIGIBLE / sharpness))), window) + 1
        first = (c * LEVELS).floor().clamp(0, LEVELS - 1).long() - reach
        level = first + torch.arange(2 * reach + 1, device=c.device)  # (B, 3, N, K)
        x = -sharpness * ((level + 0.5) / LEVELS - c) ** 2
        x.masked_fill_((level < 0) | (level >= LEVELS), float("-inf"))
        colour, mass = _windowed_expectation(x, first, window)
        # off the mask every level scores 0: the same colour and mass for every pixel
        off_colour, off_mass = _windowed_expectation(torch.zeros(LEVELS), 0, window)
        off = ~on[:, None].expand_as(colour)
        colour[off], mass[off] = off_colour, off_mass
    return colour[..., None], mass[..., None]


def colour_targets(colour: torch.Tensor) -> torch.Tensor:
    """Quantise colour codes into classification targets.

    Args:
        colour: (B, 3, H, W) float colour code in [0, 1].
    Returns:
        (B, 3, H, W) int64 level ``clamp(floor(c * 256), 0, 255)``; level ``k``
        stands for colour ``(k + 0.5) / 256`` (:func:`expected_colour`).
    Raises:
        ValueError: if ``colour`` is not (B, 3, H, W), naming expected and actual.
    """
    if colour.ndim != 4 or colour.shape[1] != 3:
        raise ValueError(f"colour: expected shape (B, 3, H, W), got {tuple(colour.shape)}")
    return torch.floor(colour.float() * LEVELS).clamp(0, LEVELS - 1).long()


def decode_logits(logits: torch.Tensor, foreground: torch.Tensor, threshold: float = 0.5,
                  parts: torch.Tensor | None = None) -> list[DecodedCorrespondence]:  # fmt: skip
    """Decode the BodyMap network's output into per-image correspondences.

    Colour per channel is :func:`expected_colour` (windowed softmax expectation,
    level k = colour (k + 0.5) / 256); mask = ``sigmoid(foreground) > threshold``;
    confidence = the product over the 3 channels of the softmax mass inside the
    window, times the foreground probability (0 off the mask). The colours are
    then decoded with :func:`decode_colour_map`.

    Args:
        logits: (B, 3, 256, H, W) float per-channel scores over the 256 levels.
        foreground: (B, 1, H, W) float foreground logits.
        threshold: foreground probability above which a pixel is foreground.
        parts: optional (B, 24, H, W) part scores (the part head's); each pixel's
            surface point is then searched within its highest-scoring part.
    Returns:
        B :class:`DecodedCorrespondence` of size H x W.
    Raises:
        ValueError: on other shapes, naming expected and actual shape.
    """
    _check_logits(logits)
    b, _, _, h, w = logits.shape
    if tuple(foreground.shape) != (b, 1, h, w):
        raise ValueError(
            f"foreground: expected shape {(b, 1, h, w)}, got {tuple(foreground.shape)}")
    colour, mass = expected_colour(logits)
    with torch.no_grad():
        prob = torch.sigmoid(foreground.detach().float())[:, 0]  # (B, H, W)
        conf = mass.prod(1) * prob
    if parts is not None and tuple(parts.shape) != (b, 24, h, w):
        raise ValueError(f"parts: expected shape {(b, 24, h, w)}, got {tuple(parts.shape)}")
    colour_np = colour.permute(0, 2, 3, 1).cpu().numpy()
    prob_np, conf_np = prob.cpu().numpy(), conf.cpu().numpy()
    part_np = [None] * b if parts is None else (parts.detach().argmax(1) + 1).cpu().numpy()
    return [decode_colour_map(colour_np[i], prob_np[i] > threshold, conf_np[i], part_np[i]) for i in range(b)]
