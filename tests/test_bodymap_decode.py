"""Known answers for BodyMap decoding (reroute.correspondence.bodymap.decode)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from reroute.body.template import MIRROR_PART, get_template
from reroute.correspondence.bodymap import decode
from reroute.correspondence.bodymap.decode import (
    LEVELS,
    colour_targets,
    decode_colour_map,
    decode_logits,
    expected_colour,
    expected_prior_colour,
    nearest_surface_points,
    part_lookup,
)


@pytest.fixture(scope="module")
def template():
    return get_template()


@pytest.fixture(scope="module")
def sample():
    from reroute.synth.engine import SynthConfig, SyntheticEngine

    return SyntheticEngine(SynthConfig(size=128, multi_person_prob=0.0), seed=0).sample(0, 0)


def _face_points(t, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    face = rng.integers(0, len(t.faces), n)
    w = rng.dirichlet([1.0, 1.0, 1.0], n)
    return face, np.einsum("nc,ncd->nd", w, t.vertices[t.faces[face]].astype(np.float64))


def test_closest_point_on_triangle_regions():
    a, b, c = np.array([0.0, 0, 0]), np.array([1.0, 0, 0]), np.array([0.0, 1, 0])
    cases = {  # query point -> barycentric weights of its closest point
        (0.2, 0.3, 5.0): (0.5, 0.2, 0.3),  # interior, above the plane
        (-1.0, -1.0, 0.0): (1.0, 0.0, 0.0),  # vertex a
        (2.0, -0.5, 1.0): (0.0, 1.0, 0.0),  # vertex b
        (-0.5, 2.0, 0.0): (0.0, 0.0, 1.0),  # vertex c
        (0.4, -1.0, 0.0): (0.6, 0.4, 0.0),  # edge ab
        (-1.0, 0.3, 0.0): (0.7, 0.0, 0.3),  # edge ac
        (1.0, 1.0, 0.0): (0.0, 0.5, 0.5),  # edge bc
    }
    p = np.array(list(cases), np.float64)
    w = decode._closest_on_triangles(p, *(np.broadcast_to(x, p.shape) for x in (a, b, c)))
    np.testing.assert_allclose(w, np.array(list(cases.values())), atol=1e-12)


def test_vertex_colours_decode_to_their_vertex(template):
    t = template
    idx = np.random.default_rng(0).choice(len(t.vertices), 500, replace=False)
    sp = nearest_surface_points(t.colour_code(t.vertices[idx]))
    assert sp.face.dtype == np.int64 and sp.barycentric.dtype == np.float32
    assert sp.face.shape == (500,) and sp.barycentric.shape == (500, 3)
    np.testing.assert_array_equal(sp.vertex(), idx)
    corner = (t.faces[sp.face] == idx[:, None]).argmax(1)
    assert sp.barycentric[np.arange(500), corner].min() > 0.99
    assert np.linalg.norm(sp.positions() - t.vertices[idx], axis=1).max() < 1e-5


def test_face_point_colours_decode_to_that_point(template):
    t = template
    face, p = _face_points(t, 500, seed=1)
    sp = nearest_surface_points(t.colour_code(p))
    assert np.linalg.norm(sp.positions() - p, axis=1).max() < 1e-4
    assert (sp.face == face).mean() > 0.99  # a point on a shared edge may name the neighbour
    np.testing.assert_allclose(sp.barycentric.sum(1), 1.0, atol=1e-5)


def test_off_surface_points_match_brute_force(template):
    t = template
    _, p = _face_points(t, 40, seed=2)
    q = p + np.random.default_rng(3).normal(0.0, 0.01, p.shape)  # ~1 cm off the body
    colours = (q - t.bbox_min) / (t.bbox_max - t.bbox_min)
    got = np.linalg.norm(nearest_surface_points(colours).positions() - q, axis=1)
    every = np.broadcast_to(np.arange(len(t.faces)), (len(q), len(t.faces)))
    face, bary = decode._project_best(q, np.ascontiguousarray(every))
    best = np.einsum("nc,ncd->nd", bary, t.vertices[t.faces[face]]) - q
    np.testing.assert_allclose(got, np.linalg.norm(best, axis=1), atol=1e-6)


def test_two_thread_search_equals_one(template, monkeypatch):
    """Above ``_SPLIT`` points the search runs in two halves on two threads: the same
    faces and weights as one pass, with and without parts."""
    t = template
    _, p = _face_points(t, 300, seed=5)
    q = p + np.random.default_rng(6).normal(0.0, 0.005, p.shape)
    colours = (q - t.bbox_min) / (t.bbox_max - t.bbox_min)
    parts = np.random.default_rng(7).integers(0, 25, len(q))
    for given in (None, parts):
        whole = nearest_surface_points(colours, given)
        monkeypatch.setattr(decode, "_SPLIT", 10)
        split = nearest_surface_points(colours, given)
        monkeypatch.setattr(decode, "_SPLIT", 10**9)
        assert np.array_equal(whole.face, split.face) and np.array_equal(whole.barycentric, split.barycentric)


def test_synthetic_render_round_trip(sample):
    corr, m = sample.correspondence, sample.mask
    assert m.sum() > 500
    out = decode_colour_map(corr.colour, m)
    d = out.correspondence
    # measured on this sample: parts 100 %, |UV error| median 1.5e-8, vertex 100 %
    assert (d.part[m] == corr.part[m]).mean() >= 0.99
    assert np.median(np.abs(d.uv[m] - corr.uv[m])) < 1e-3
    assert np.median(np.abs(d.part_uv[m] - corr.part_uv[m])) < 1e-3
    assert (out.vertex[m] == sample.vertex_index[m]).mean() >= 0.98
    np.testing.assert_allclose(d.colour[m], corr.colour[m], atol=1e-4)
    # types, and zeros / -1 / False off the mask
    assert d.part.dtype == np.uint8 and d.uv.dtype == np.float32 and out.vertex.dtype == np.int64
    assert d.mask.dtype == bool and (d.mask == m).all() and (d.body_mask == m).all()
    assert (d.part[~m] == 0).all() and (d.uv[~m] == 0).all() and (d.colour[~m] == 0).all()
    assert (out.vertex[~m] == -1).all() and (out.vertex[m] >= 0).all()
    assert (out.confidence[m] == 1).all() and (out.confidence[~m] == 0).all()


def test_quantised_synthetic_render(sample):
    """What a perfect 256-way classifier would give: colours at bin centres."""
    corr, m = sample.correspondence, sample.mask
    k = colour_targets(torch.from_numpy(corr.colour).permute(2, 0, 1)[None])
    quantised = ((k[0].permute(1, 2, 0).numpy() + 0.5) / LEVELS).astype(np.float32)
    d = decode_colour_map(quantised, m).correspondence
    # measured on this sample: parts 98.5 %, |UV error| median 5.1e-4
    assert (d.part[m] == corr.part[m]).mean() >= 0.97
    assert np.median(np.abs(d.uv[m] - corr.uv[m])) < 0.02


def test_decode_colour_map_confidence_and_shapes():
    colour = np.full((3, 4, 3), 0.5, np.float32)
    mask = np.zeros((3, 4), bool)
    mask[1, 1:3] = True
    conf = np.full((3, 4), 1.5, np.float32)
    conf[1, 2] = 0.25
    out = decode_colour_map(colour, mask, conf)
    np.testing.assert_array_equal(out.confidence, np.where(mask, [[1.0, 1.0, 0.25, 1.0]], 0.0))
    assert out.confidence.dtype == np.float32
    with pytest.raises(ValueError, match=r"expected shape \(H, W, 3\), got \(3, 4\)"):
        decode_colour_map(colour[..., 0], mask)
    with pytest.raises(ValueError, match=r"mask: expected shape \(3, 4\), got \(4, 3\)"):
        decode_colour_map(colour, mask.T)
    with pytest.raises(ValueError, match=r"confidence: expected shape \(3, 4\), got \(3,\)"):
        decode_colour_map(colour, mask, conf[0, :3])
    with pytest.raises(ValueError, match=r"expected shape \(N, 3\), got \(5, 2\)"):
        nearest_surface_points(np.zeros((5, 2)))


def _one_hot_logits(k: torch.Tensor, score: float = 60.0) -> torch.Tensor:
    """(B, 3, H, W) bins -> (B, 3, 256, H, W) scores: ``score`` at the bin, 0 elsewhere."""
    b, _, h, w = k.shape
    return torch.zeros(b, 3, LEVELS, h, w).scatter_(2, k[:, :, None], score)


def test_expected_colour_of_one_hot_scores_is_the_bin_centre():
    k = torch.randint(0, LEVELS, (2, 3, 5, 6))
    k[0, :, 0, 0] = torch.tensor([0, 255, 3])  # window clipped at both ends
    colour, mass = expected_colour(_one_hot_logits(k))
    assert colour.dtype == torch.float32 and colour.shape == (2, 3, 5, 6)
    assert torch.equal(colour, (k.float() + 0.5) / LEVELS)
    assert torch.allclose(mass, torch.ones_like(mass))


def test_expected_colour_sub_bin_and_window():
    logits = torch.full((1, 3, LEVELS, 1, 1), -30.0)
    logits[0, 0, 100] = logits[0, 0, 101] = 5.0  # two equal bins: halfway between
    logits[0, 1, 40], logits[0, 1, 200] = 5.0, 4.0  # far second mode: outside the window
    logits[0, 2, 10] = 5.0
    logits[0, 2, 11] = 5.0 + np.log(3.0)  # weights 1:3 -> 10.5 + 0.75 bins
    colour, mass = expected_colour(logits)
    assert torch.allclose(colour[0, :, 0, 0], torch.tensor([101.0, 40.5, 11.25]) / LEVELS)
    p200 = np.exp(4.0) / (np.exp(5.0) + np.exp(4.0))
    assert abs(float(mass[0, 1, 0, 0]) - (1 - p200)) < 1e-5


def test_expected_prior_colour_equals_the_full_scores():
    """From the prior alone (scores -s (level - c)^2 on the mask, 0 off it), the band of
    levels gives :func:`expected_colour` of all 256 scores: at 0 and 1, on bin edges (ties
    between two levels), off the mask; and bad shapes or sharpness are refused."""
    torch.manual_seed(0)
    n = 400
    c = torch.rand(2, 3, n)
    c[0, :, :3] = torch.tensor([[0.0, 1.0, 0.5]]).T  # the ends of the range
    c[1, :, :50] = torch.randint(0, LEVELS + 1, (3, 50)) / LEVELS  # bin edges
    on = torch.rand(2, n) > 0.2
    for s in (2000.0, 300.0, 20000.0):
        levels = (torch.arange(LEVELS) + 0.5) / LEVELS
        scores = -s * (levels[None, None, :, None] - c[:, :, None]) ** 2 * on[:, None, None]
        want = expected_colour(scores[..., None])
        got = expected_prior_colour(c, on, s)
        for w, g in zip(want, got, strict=True):
            assert g.shape == (2, 3, n, 1) and torch.allclose(w, g, atol=1e-6), s
    with pytest.raises(ValueError, match="expected"):
        expected_prior_colour(c[0], on, 2000.0)
    with pytest.raises(ValueError, match="sharpness"):
        expected_prior_colour(c, on, 0.0)


def test_project_best_dedups_candidates_and_keeps_their_order(template):
    """Repeated and missing (-1) candidates give the result of the distinct ones; of two
    faces equally close (a point off their shared corner) the one listed first wins."""
    t = template
    q = t.vertices[t.faces[:30, 0]].astype(np.float64) + 0.002  # just off each face's corner a
    rng = np.random.default_rng(0)
    cand = rng.integers(0, len(t.faces), (30, 6))
    cand[:, 0] = np.arange(30)
    messy = np.concatenate([cand, cand[:, ::-1], np.full((30, 3), -1)], 1)
    assert all(np.array_equal(a, b) for a, b in zip(decode._project_best(q, cand), decode._project_best(q, messy),
                                                       strict=True))  # fmt: skip
    v = int(t.faces[0, 0])
    sharing = np.flatnonzero((t.faces == v).any(1))  # faces around one vertex
    p = np.repeat(t.vertices[v][None].astype(np.float64), 2, 0)  # exactly on it: every one at distance 0
    pair = np.array([[sharing[0], sharing[1]], [sharing[1], sharing[0]]])
    face, bary = decode._project_best(p, pair)
    assert face.tolist() == [sharing[0], sharing[1]] and np.allclose(bary.max(1), 1.0)


def test_decode_logits_mask_confidence_and_colours(template):
    t = template
    rng = np.random.default_rng(4)
    vid = rng.choice(len(t.vertices), 12, replace=False)
    c = torch.from_numpy(t.colour_code(t.vertices[vid])).T.reshape(1, 3, 3, 4)
    k = colour_targets(c)
    fg = torch.full((1, 1, 3, 4), -8.0)
    fg[0, 0, :2] = 8.0
    (out,) = decode_logits(_one_hot_logits(k), fg)
    mask = np.zeros((3, 4), bool)
    mask[:2] = True
    d = out.correspondence
    assert (d.mask == mask).all() and (out.vertex[~mask] == -1).all()
    np.testing.assert_allclose(out.confidence[mask], 1 / (1 + np.exp(-8.0)), rtol=1e-5)
    assert (out.confidence[~mask] == 0).all()
    # the bin centre lies within half a bin of the vertex; its nearest surface point too
    bin_centre = ((k[0].permute(1, 2, 0).numpy() + 0.5) / LEVELS)
    assert np.abs(d.colour[mask] - bin_centre[mask]).max() < 2.0 / LEVELS
    assert (out.vertex[mask] >= 0).all()


def test_colour_targets_and_shape_errors():
    k = torch.randint(0, LEVELS, (2, 3, 4, 5))
    assert torch.equal(colour_targets((k.float() + 0.5) / LEVELS), k)
    edge = colour_targets(torch.tensor([0.0, 1.0, -0.1, 1.2]).view(1, 1, 2, 2).expand(1, 3, 2, 2))
    assert edge.dtype == torch.int64 and edge[0, 0].tolist() == [[0, 255], [0, 255]]
    with pytest.raises(ValueError, match=r"expected shape \(B, 3, H, W\), got \(3, 4, 5\)"):
        colour_targets(torch.zeros(3, 4, 5))
    logits_error = r"expected shape \(B, 3, 256, H, W\), got \(1, 3, 255, 2, 2\)"
    with pytest.raises(ValueError, match=logits_error):
        decode_logits(torch.zeros(1, 3, 255, 2, 2), torch.zeros(1, 1, 2, 2))
    foreground_error = r"foreground: expected shape \(1, 1, 2, 2\), got \(1, 2, 2\)"
    with pytest.raises(ValueError, match=foreground_error):
        decode_logits(torch.zeros(1, 3, LEVELS, 2, 2), torch.zeros(1, 2, 2))


def test_part_constrained_points_land_in_that_part(template):
    """``nearest_surface_points(colours, parts)``: a point already in its part is kept;
    asked for another part it lands on that part's nearest point (brute force over the
    part's faces); asked for the mirror part (left for right) it lands on the mirrored
    spot, since the template is symmetric about x = 0."""
    t = template
    face, p = _face_points(t, 400, seed=5)
    own = t.face_part[face]
    kept = nearest_surface_points(t.colour_code(p), own)
    assert np.linalg.norm(kept.positions() - p, axis=1).max() < 1e-4
    mirror = np.asarray(MIRROR_PART)[own]
    limb = np.flatnonzero(mirror != own)
    sp = nearest_surface_points(t.colour_code(p[limb]), mirror[limb])
    assert (t.face_part[sp.face] == mirror[limb]).all()
    flipped = p[limb] * np.array([-1.0, 1.0, 1.0])
    assert np.median(np.linalg.norm(sp.positions() - flipped, axis=1)) < 1e-4
    upper_arm = np.flatnonzero(own == 15)[:20]  # left upper arm inside -> outside (17)
    sp = nearest_surface_points(t.colour_code(p[upper_arm]), np.full(len(upper_arm), 17))
    faces17 = np.flatnonzero(t.face_part == 17)
    f, b = decode._project_best(p[upper_arm], np.tile(faces17, (len(upper_arm), 1)))
    brute = np.einsum("nc,ncd->nd", b, t.vertices[t.faces[f]])
    np.testing.assert_allclose(np.linalg.norm(sp.positions() - p[upper_arm], axis=1),
                               np.linalg.norm(brute - p[upper_arm], axis=1), atol=1e-6)  # fmt: skip
    with pytest.raises(ValueError, match=r"parts: expected shape \(400,\)"):
        nearest_surface_points(t.colour_code(p), own[:3])


def test_part_lookup_reads_the_part_of_surface_points(template):
    t = template
    lut = part_lookup()
    side = decode.PART_LOOKUP_SIDE
    assert lut.shape == (side, side, side) and lut.dtype == torch.uint8
    face, p = _face_points(t, 2000, seed=6)
    q = np.clip((t.colour_code(p) * side).astype(int), 0, side - 1)
    agree = (lut.numpy()[q[:, 0], q[:, 1], q[:, 2]] == t.face_part[face]).mean()
    assert agree > 0.96, agree  # measured 0.979: cells on a part border read either side
    assert int(lut[0, 0, 0]) == 0 and int(lut[0, -1, -1]) == 0  # bounding-box corners: off the body


def test_decode_with_parts_keeps_the_given_parts(sample):
    corr, m = sample.correspondence, sample.mask
    want = np.where(m, np.asarray(MIRROR_PART)[corr.part], 0)
    d = decode_colour_map(corr.colour, m, part=want).correspondence
    assert np.array_equal(d.part[m], want[m])
    same = decode_colour_map(corr.colour, m, part=np.where(m, corr.part, 0)).correspondence
    assert np.median(np.abs(same.uv[m] - corr.uv[m])) < 1e-3
    with pytest.raises(ValueError, match="part: expected shape"):
        decode_colour_map(corr.colour, m, part=want[:-1])
