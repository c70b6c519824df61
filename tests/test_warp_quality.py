"""Known answers for seam-free warps, the correspondence flow, body-aware completion,
detection retries and quiet native logging (issue: pose transfer that looks right)."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from reroute.correspondence.maps import Correspondence
from reroute.synth.engine import render_synthetic_person
from reroute.synth.pose import EXAMPLE_POSES
from reroute.uv.texture import (
    UVTexture,
    sample_masked,
    texel_parts,
    texel_points,
    uv_islands,
    uv_layout_mask,
)
from reroute.uv.warp import (
    LIFT_MIN_WEIGHT,
    correspondence_flow,
    image_to_uv,
    lifting_confidence,
    sample_image,
    uv_to_image,
)
from texture.classical import complete_classical

T = 128



def test_masked_sampling_never_mixes_in_empty_texels():
    # a constant colour on the islands, black around them: every sample is the colour,
    # even for UVs right at an island's border, where plain bilinear sampling darkens
    mask = uv_layout_mask(T)
    tex = np.where(mask[..., None], np.float32([0.2, 0.6, 0.9]), 0.0).astype(np.float32)
    ys, xs = np.nonzero(mask)
    border = ~mask[np.clip(ys - 1, 0, T - 1), xs] | ~mask[ys, np.clip(xs + 1, 0, T - 1)]
    uv = np.stack([(xs[border] + 1.0) / T, (ys[border] + 0.5) / T], 1).astype(np.float32)
    plain = sample_masked(tex, uv)
    masked = sample_masked(tex, uv, mask)
    assert plain[:, 2].min() < 0.8  # the old behaviour: dark seams
    np.testing.assert_allclose(masked, np.broadcast_to([0.2, 0.6, 0.9], masked.shape), atol=1e-5)


def test_uv_to_image_has_no_dark_seams_on_a_render():
    r = render_synthetic_person(EXAMPLE_POSES["turned"], size=128, yaw_deg=180.0)
    mask = uv_layout_mask(T)
    tex = np.where(mask[..., None], np.float32([0.5, 0.5, 0.5]), 0.0).astype(np.float32)
    out = uv_to_image(UVTexture(tex, mask.astype(np.float32)), r.correspondence)
    fg = r.correspondence.mask
    np.testing.assert_allclose(out[fg], 0.5, atol=1e-5)
    assert (out[~fg] == 0).all()


def test_flow_of_a_photo_onto_itself_is_the_identity():
    r = render_synthetic_person(EXAMPLE_POSES["arm_raised"], size=128)
    c = r.correspondence
    flow = correspondence_flow(c, c, size=256)
    assert flow.valid[c.mask].mean() > 0.99
    ys, xs = np.nonzero(flow.valid)
    err = np.abs(flow.xy[ys, xs] - np.stack([xs + 0.5, ys + 0.5], 1)).max(1)
    assert np.median(err) < 0.25 and np.percentile(err, 99) < 1.5
    out = sample_image(r.image, flow)
    diff = np.abs(out[flow.valid] - r.image[flow.valid] / 255.0)
    assert np.median(diff) < 0.02


def test_flow_is_invalid_where_the_source_does_not_show_the_surface():
    front = render_synthetic_person(EXAMPLE_POSES["arms_down"], size=128)
    back = render_synthetic_person(EXAMPLE_POSES["arms_down"], size=128, yaw_deg=180.0)
    flow = correspondence_flow(front.correspondence, back.correspondence, size=256)
    torso_back = back.correspondence.part == 1
    assert torso_back.sum() > 200
    assert flow.valid[torso_back].mean() < 0.05  # the front photo never saw the back


def test_completion_fills_an_unseen_back_from_the_front_and_never_across_islands():
    parts = texel_parts(T)
    labels = uv_islands(T)
    body = np.bincount(labels[labels > 0]).argmax()
    pix = np.zeros((T, T, 3), np.float32)
    vis = np.zeros((T, T), np.float32)
    front = parts == 2
    pix[front] = (0.9, 0.1, 0.1)  # a red shirt front
    vis[front] = 1
    head_island = np.bincount(labels[np.isin(parts, (23, 24))]).argmax()
    assert head_island != body
    head = labels == head_island
    pix[head] = (0.1, 0.9, 0.1)  # a green head
    vis[head] = 1
    out = complete_classical(UVTexture(pix, vis))
    back = parts == 1
    # the unseen back takes the shirt's colour (garment prior), not the head's or skin
    assert np.abs(out.pixels[back].mean(0) - (0.9, 0.1, 0.1)).max() < 0.05
    # no green from the head island anywhere on the body island
    assert out.pixels[labels == body][:, 1].max() < 0.2


def test_completion_gives_the_back_of_the_head_the_hair_colour():
    parts = texel_parts(T)
    pts = texel_points(T)
    head = np.isin(parts, (23, 24))
    top = head & (pts[..., 2] > pts[head][:, 2].max() - 0.05)
    face = head & (pts[..., 1] < np.median(pts[head][:, 1]) - 0.03) & ~top
    pix = np.zeros((T, T, 3), np.float32)
    vis = np.zeros((T, T), np.float32)
    pix[top], vis[top] = (0.3, 0.2, 0.1), 1  # brown hair seen on top
    pix[face], vis[face] = (0.9, 0.7, 0.6), 1  # skin seen on the face
    out = complete_classical(UVTexture(pix, vis))
    labels = uv_islands(T)
    head_island = np.bincount(labels[top]).argmax()
    back = (labels == head_island) & (pts[..., 1] > np.median(pts[head][:, 1]) + 0.03) & (vis == 0)
    assert back.sum() > 20
    np.testing.assert_allclose(out.pixels[back].mean(0), (0.3, 0.2, 0.1), atol=0.05)


@pytest.mark.parametrize("bare_torso", [False, True])
def test_completion_fills_unseen_clothes_from_the_clothes_not_the_bare_skin(bare_torso):
    """A grey top seen from the front, with bare shoulders and arms across its sides
    (the face's skin): the unseen back takes the grey, not the skin that borders it in
    UV. A bare torso (mostly skin) is filled with skin as before."""
    from reroute.uv.skin import face_texels

    parts, pts = texel_parts(T), texel_points(T)
    skin, grey = (0.85, 0.62, 0.50), (0.55, 0.55, 0.57)
    front = parts == 2
    ax, z = np.abs(pts[..., 0]), pts[..., 2]
    q = 0.3 if bare_torso else 0.8
    bare = front & ((z > np.quantile(z[front], q)) | (ax > np.quantile(ax[front], q)))
    pix = np.zeros((T, T, 3), np.float32)
    vis = np.zeros((T, T), np.float32)
    face = face_texels(T)
    pix[face], vis[face] = skin, 1
    pix[front], vis[front] = grey, 1
    pix[bare] = skin
    out = complete_classical(UVTexture(pix, vis))
    mean = out.pixels[parts == 1].mean(0)
    if bare_torso:  # skin is most of what is seen: the back is filled from it too
        assert np.abs(mean - skin).max() < np.abs(mean - grey).max()
    else:  # 0.068 off in red before the clothes-first fill
        np.testing.assert_allclose(mean, grey, atol=0.03)
    np.testing.assert_array_equal(out.pixels[vis > 0], pix[vis > 0])  # seen texels kept


def test_lifting_then_completing_a_render_keeps_what_was_seen():
    r = render_synthetic_person(EXAMPLE_POSES["arms_down"], size=128)
    part = image_to_uv(r.image, r.correspondence, T)
    full = complete_classical(part)
    seen = part.visibility > 0.5
    np.testing.assert_array_equal(full.pixels[seen], part.pixels[seen])


def test_mirrored_detection_retry_maps_landmarks_back(monkeypatch):
    from reroute.body import detect

    r = render_synthetic_person(EXAMPLE_POSES["arm_raised"], size=256)
    direct = detect.detect_person(r.image)
    monkeypatch.setattr(detect, "RETRIES", ((0.0, "constant", True),))
    mirrored = detect.detect_person(r.image)
    names = detect.BLAZEPOSE_NAMES
    for n in ("left_wrist", "right_wrist", "left_hip", "right_knee", "nose"):
        i = names.index(n)
        assert np.linalg.norm(direct.landmarks[i] - mirrored.landmarks[i]) < 8.0, n
    np.testing.assert_allclose(direct.mask.mean(), mirrored.mask.mean(), rtol=0.05)


def test_padded_detection_retry_maps_landmarks_back(monkeypatch):
    from reroute.body import detect

    r = render_synthetic_person(EXAMPLE_POSES["arms_down"], size=256)
    direct = detect.detect_person(r.image)
    monkeypatch.setattr(detect, "RETRIES", ((0.25, "constant", False),))
    padded = detect.detect_person(r.image)
    assert padded.mask.shape == direct.mask.shape
    i = detect.BLAZEPOSE_NAMES.index("left_shoulder")
    assert np.linalg.norm(direct.landmarks[i] - padded.landmarks[i]) < 8.0


def test_mask_roi_fallback_finds_the_person_the_detector_is_not_run_on(monkeypatch):
    """With no detector try at all, the landmark model on regions around the
    person mask still finds the person, with landmarks where the detector's are."""
    from reroute.body import detect
    from reroute.errors import NoPersonError

    r = render_synthetic_person(EXAMPLE_POSES["arm_raised"], size=256)
    direct = detect.detect_person(r.image)
    monkeypatch.setattr(detect, "RETRIES", ())
    fallback = detect.detect_person(r.image)
    names = detect.BLAZEPOSE_NAMES
    for n in ("left_shoulder", "right_wrist", "left_hip", "right_knee", "nose"):
        i = names.index(n)
        assert np.linalg.norm(direct.landmarks[i] - fallback.landmarks[i]) < 10.0, n
    inter = ((direct.mask > 0.5) & (fallback.mask > 0.5)).sum()
    assert inter / ((direct.mask > 0.5) | (fallback.mask > 0.5)).sum() > 0.9
    grey = np.full((256, 256, 3), 128, np.uint8)
    with pytest.raises(NoPersonError, match="no person found in grey"):
        detect.detect_person(grey, name="grey")


@pytest.mark.parametrize("what", ["no person"])
def test_a_bad_input_prints_one_line_and_nothing_else(tmp_path, what):
    from PIL import Image

    src = tmp_path / "grey.png"
    Image.fromarray(np.full((128, 128, 3), 128, np.uint8)).save(src)
    out = tmp_path / "out.png"
    p = subprocess.run([sys.executable, "-m", "reroute", "transfer", "--source", str(src),
                        "--target", str(src), "--out", str(out)],
                       capture_output=True, text=True, timeout=300)  # fmt: skip
    assert p.returncode == 2
    assert p.stderr.strip().splitlines() == ["error: no person found in source photo"], p.stderr
    assert not out.exists()


def test_correspondence_dataclass_fields_used_by_the_flow():
    # the flow relies on body_mask being inside mask
    r = render_synthetic_person(EXAMPLE_POSES["arms_down"], size=64)
    c: Correspondence = r.correspondence
    assert not (c.body_mask & ~c.mask).any()


def test_try_on_follows_the_garment_not_the_template_region():
    """A short-sleeved donor's bare forearms (skin like its face) are not painted
    on the wearer: those texels keep the wearer's long sleeves."""
    from reroute.pipelines.tryon import garment_texture_mask, mix_textures
    from reroute.uv.skin import face_texels

    parts = texel_parts(T)
    face = face_texels(T)
    assert face.sum() > 20
    skin = np.float32([0.85, 0.62, 0.50])
    donor = np.zeros((T, T, 3), np.float32)
    donor[np.isin(parts, (1, 2, 15, 16, 17, 18))] = (0.8, 0.1, 0.1)  # red shirt, short sleeves
    forearms = np.isin(parts, (19, 20, 21, 22))
    donor[forearms] = skin  # bare forearms
    donor[face] = skin
    wearer = np.zeros((T, T, 3), np.float32)
    wearer[parts > 0] = (0.1, 0.2, 0.7)  # blue long sleeves everywhere
    wearer[face] = np.float32([0.6, 0.45, 0.35])
    ones = np.ones((T, T), np.float32)
    d, w = UVTexture(donor, ones), UVTexture(wearer, ones)
    m = garment_texture_mask(w, d, "top", feather=0.0)
    mixed = mix_textures(w, d, "top", feather=0.0, mask=m)
    torso = np.isin(parts, (1, 2))
    np.testing.assert_allclose(mixed.pixels[torso].mean(0), (0.8, 0.1, 0.1), atol=0.02)
    np.testing.assert_allclose(mixed.pixels[forearms].mean(0), (0.1, 0.2, 0.7), atol=0.02)
    assert m[forearms].max() == 0.0 and m[torso].min() == 1.0


def test_lifting_confidence_is_low_at_borders_and_full_inside_frontal_parts():
    import scipy.ndimage as ndi

    c = render_synthetic_person(EXAMPLE_POSES["arms_down"], size=256).correspondence
    conf = lifting_confidence(c)
    body = c.body_mask & c.mask
    assert conf.shape == c.shape and conf.dtype == np.float32
    assert (conf[~body] == 0).all()
    assert conf[body].min() >= LIFT_MIN_WEIGHT and conf.max() <= 1.0
    rim = body & ~ndi.binary_erosion(body)  # body pixels next to the background
    assert np.median(conf[rim]) < 0.3
    torso = ndi.binary_erosion(np.isin(c.part, (1, 2)) & body, iterations=6)
    assert torso.sum() > 100 and np.median(conf[torso]) > 0.9


def test_lifting_weights_the_colours_that_meet_on_a_texel():
    """Two pixels landing on the same UV: the texel takes their confidence-weighted
    mean; visibility does not depend on the confidence."""
    c = render_synthetic_person(EXAMPLE_POSES["arms_down"], size=64).correspondence
    y, x = np.argwhere(c.body_mask & c.mask)[len(np.argwhere(c.body_mask)) // 2]
    part = np.zeros((1, 2), np.uint8) + c.part[y, x]
    uv = np.repeat(c.uv[y, x][None, None], 2, 1)
    one = Correspondence(part, np.repeat(c.part_uv[y, x][None, None], 2, 1), uv,
                         np.zeros((1, 2, 3), np.float32), np.ones((1, 2), bool), np.ones((1, 2), bool))
    image = np.array([[[1.0, 0.0, 0.0], [0.0, 0.0, 1.0]]], np.float32)  # red, blue
    plain = image_to_uv(image, one, 64, confidence=None)
    weighted = image_to_uv(image, one, 64, confidence=np.array([[0.9, 0.1]], np.float32))
    np.testing.assert_array_equal(plain.visibility, weighted.visibility)
    seen = plain.visibility > 0
    assert seen.any()
    np.testing.assert_allclose(plain.pixels[seen], np.tile([0.5, 0, 0.5], (seen.sum(), 1)), atol=1e-5)
    np.testing.assert_allclose(weighted.pixels[seen], np.tile([0.9, 0, 0.1], (seen.sum(), 1)), atol=1e-5)
    with pytest.raises(ValueError, match="confidence is"):
        image_to_uv(image, one, 64, confidence=np.ones((2, 2), np.float32))
