"""Appearance of synthetic people: procedural UV textures and backgrounds.

A person's look is an :class:`Outfit` (skin tone, hair, top, bottom, shoes,
each garment with a pattern) sampled from a seeded generator, painted into
anny's continuous UV texture by :func:`paint_texture`. Every texel knows the
canonical (reference A-pose, default phenotypes) surface point it shows
(:func:`texel_geometry`, from rasterising anny's UV layout once per texture
size), so garments are cut and patterns laid out on the 3-D body: stripes run
round the body, a sleeve ends at a fraction of the shoulder-to-wrist length,
trousers at a fraction of hip-to-ankle, and patterns continue across UV seams.

Garment regions (in canonical coordinates, metres; z up, face towards -y,
person's left at +x): **top** = torso above the waist (below a round or V
neckline) plus the sleeves; **bottom** = torso below the waist plus the legs to
the hem; **shoes** = feet plus a little of the ankle; **hair** = a cap on the
head (short) or cap + back of the head + upper back (long), or none; the
**face** = eyes (white, iris), brows and lips on the front of the head.

Patterns per garment: solid, stripes (round the body or along it), checks,
prints (a scatter of dots on a jittered grid), a logo (a disc, ring, star or
bars on the chest), all with fold shading (low-frequency darkening from a few
random plane waves over the canonical surface). Texels outside UV islands are
filled from the nearest island texel, so bilinear sampling does not bleed the
empty atlas into seams.

Backgrounds (:func:`render_background`): plain (a colour with a vertical
gradient and a floor line) or cluttered (random rectangles, ellipses and lines,
blurred). All drawing is deterministic given the generator.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field

import numpy as np

from reroute.body.posed import vertex_normals
from reroute.body.raster import Camera, rasterize, rasterize_layout
from reroute.body.template import get_template, load_anny

__all__ = [
    "Garment",
    "Outfit",
    "TexelGeometry",
    "texel_geometry",
    "canonical_landmarks",
    "face_region_faces",
    "sample_outfit",
    "paint_texture",
    "render_background",
    "SKIN_TONES",
    "coco_regressor",
    "shade_fixture",
]

#: Skin tones, light to dark (linear-ish RGB in [0, 1]); a sample is jittered around one.
SKIN_TONES = np.float32([
    [0.96, 0.80, 0.69], [0.92, 0.74, 0.62], [0.86, 0.66, 0.53], [0.78, 0.58, 0.45],
    [0.66, 0.47, 0.35], [0.52, 0.36, 0.26], [0.40, 0.27, 0.19], [0.30, 0.20, 0.14],
])  # fmt: skip
_HAIR = np.float32([
    [0.08, 0.06, 0.05], [0.20, 0.13, 0.08], [0.35, 0.22, 0.12], [0.55, 0.40, 0.22],
    [0.80, 0.68, 0.45], [0.55, 0.20, 0.08], [0.62, 0.62, 0.62], [0.04, 0.04, 0.05],
])  # fmt: skip
PATTERNS = ("solid", "stripes", "checks", "print", "logo")


@dataclass
class Garment:
    """One garment's colours and pattern.

    Attributes:
        pattern: one of ``"solid"``, ``"stripes"``, ``"checks"``, ``"print"``, ``"logo"``.
        colour: (3,) float32 base colour in [0, 1].
        colour2: (3,) float32 second colour (stripes, checks, dots, logo).
        period: pattern period in metres (stripes, checks, print grid).
        vertical: stripes along the body (True) or round it (False).
        fold_amplitude: depth of the fold shading (0 = none), fraction of brightness.
        fold_seed: seed of the fold waves.
        logo_shape: ``"disc"``, ``"ring"``, ``"star"`` or ``"bars"`` (pattern ``"logo"``).
    """

    pattern: str
    colour: np.ndarray
    colour2: np.ndarray
    period: float = 0.05
    vertical: bool = False
    fold_amplitude: float = 0.15
    fold_seed: int = 0
    logo_shape: str = "disc"


@dataclass
class Outfit:
    """Everything that defines a synthetic person's look.

    Attributes:
        skin: (3,) float32 skin colour in [0, 1].
        hair: (3,) float32 hair colour; ``hair_style`` in ``{"none", "short", "long"}``.
        eye: (3,) float32 iris colour; ``lips``: (3,) float32.
        top, bottom, shoes: the garments (:class:`Garment`).
        sleeve: sleeve length as a fraction of shoulder -> wrist (0 = sleeveless).
        hem: trouser/shorts/skirt length as a fraction of hip -> ankle.
        waist: waist height above the hip keypoints, metres.
        neckline: ``"round"`` or ``"v"``.
        dress: top and bottom share the top's garment (a dress or jumpsuit).
    """

    skin: np.ndarray
    hair: np.ndarray
    hair_style: str
    eye: np.ndarray
    lips: np.ndarray
    top: Garment
    bottom: Garment
    shoes: Garment
    sleeve: float = 0.3
    hem: float = 0.95
    waist: float = 0.07
    neckline: str = "round"
    dress: bool = False
    extras: dict = field(default_factory=dict)


@dataclass(frozen=True)
class TexelGeometry:
    """What each texel of a T x T continuous-UV texture shows on the canonical body.

    Attributes:
        mask: (T, T) bool, texels inside a UV island.
        face: (T, T) int64 template triangle per texel (-1 outside islands).
        point: (N, 3) float32 canonical surface point of each masked texel (metres).
        part: (N,) int64 DensePose part of each masked texel.
        segment: (N,) int64 skinning segment (index into ``BodyTemplate.segment_names``).
        fill_index: (2, T, T) int64 row, column of the nearest masked texel (for filling).
    """

    mask: np.ndarray
    face: np.ndarray
    point: np.ndarray
    part: np.ndarray
    segment: np.ndarray
    fill_index: np.ndarray


@functools.lru_cache(maxsize=4)
def texel_geometry(size: int) -> TexelGeometry:
    """:class:`TexelGeometry` for a ``size x size`` texture (cached; ~1 s at 512 px)."""
    from scipy import ndimage as ndi

    t = get_template()
    r = rasterize_layout(t.face_uv, size)
    m = r.mask
    point = r.interpolate(t.vertices[t.faces])[m]
    f = r.face[m]
    part = t.face_part[f]
    # segment of the corner with the largest barycentric weight
    corner = r.bary[m].argmax(1)
    segment = t.vertex_segment[t.faces[f, corner]]
    _, idx = ndi.distance_transform_edt(~m, return_indices=True)
    return TexelGeometry(m, r.face, point.astype(np.float32), part, segment, idx)


@functools.lru_cache(maxsize=1)
def canonical_landmarks() -> dict[str, np.ndarray]:
    """anny's COCO-23 keypoints on the canonical template, name -> (3,) float64 metres."""
    w, names = coco_regressor()
    kp = w @ get_template().vertices.astype(np.float64)
    return {n: kp[i] for i, n in enumerate(names)}


@functools.lru_cache(maxsize=1)
def face_region_faces() -> np.ndarray:
    """(F,) bool: template triangles of the face (front of the head, brow to chin).

    The face region is the front of the head segment (in front of the ears),
    from 5 cm above the eyes down to 9 cm below the nose (the chin), i.e. the
    skin region BodyMap's face-reconstruction loss looks at.
    """
    t = get_template()
    lm = canonical_landmarks()
    c = t.vertices[t.faces].mean(1)
    head = np.isin(t.face_part, (23, 24))
    ear_y = 0.5 * (lm["left_ear"][1] + lm["right_ear"][1])
    eye_z = 0.5 * (lm["left_eye"][2] + lm["right_eye"][2])
    chin_z = lm["nose"][2] - 0.09
    return head & (c[:, 1] < ear_y - 0.01) & (c[:, 2] < eye_z + 0.05) & (c[:, 2] > chin_z)


def _random_colour(rng: np.random.Generator) -> np.ndarray:
    """A garment colour: saturated, pastel, dark or neutral, in [0, 1]."""
    import colorsys

    kind = rng.choice(4, p=[0.35, 0.2, 0.25, 0.2])
    h = rng.random()
    s, v = [(0.55 + 0.4 * rng.random(), 0.5 + 0.45 * rng.random()),
            (0.15 + 0.3 * rng.random(), 0.8 + 0.2 * rng.random()),
            (0.3 + 0.6 * rng.random(), 0.12 + 0.25 * rng.random()),
            (0.03 * rng.random(), 0.1 + 0.85 * rng.random())][kind]  # fmt: skip
    return np.float32(colorsys.hsv_to_rgb(h, s, v))


def _garment(rng: np.random.Generator, *, allow_logo: bool, pattern: str | None = None) -> Garment:
    pats = list(PATTERNS if allow_logo else PATTERNS[:-1])
    probs = np.array([0.35, 0.2, 0.15, 0.15, 0.15][: len(pats)])
    p = pattern or str(rng.choice(pats, p=probs / probs.sum()))
    c1 = _random_colour(rng)
    c2 = _random_colour(rng)
    if np.abs(c1 - c2).sum() < 0.4:  # keep patterns visible
        c2 = np.clip(1.0 - c1 * 0.8, 0, 1).astype(np.float32)
    return Garment(
        pattern=p, colour=c1, colour2=c2, period=float(rng.uniform(0.02, 0.09)),
        vertical=bool(rng.random() < 0.3), fold_amplitude=float(rng.uniform(0.05, 0.22)),
        fold_seed=int(rng.integers(2**31)), logo_shape=str(rng.choice(["disc", "ring", "star", "bars"])),
    )  # fmt: skip


def sample_outfit(rng: np.random.Generator) -> Outfit:
    """Sample an :class:`Outfit` (deterministic given the generator's state)."""
    skin = SKIN_TONES[rng.integers(len(SKIN_TONES))] * rng.uniform(0.94, 1.06, 3)
    hair = _HAIR[rng.integers(len(_HAIR))] * rng.uniform(0.85, 1.15)
    style = str(rng.choice(["none", "short", "long"], p=[0.08, 0.5, 0.42]))
    eye = np.float32([[0.25, 0.15, 0.08], [0.15, 0.30, 0.45], [0.25, 0.35, 0.2]])[rng.integers(3)]
    lips = np.clip(skin * np.float32([0.85, 0.55, 0.55]), 0, 1)
    top = _garment(rng, allow_logo=True)
    bottom = _garment(rng, allow_logo=False)
    if rng.random() < 0.5:  # plain bottoms are the most common: denim-like or dark
        bottom.pattern = "solid"
    shoes = Garment("solid", _random_colour(rng) * 0.6, _random_colour(rng), fold_amplitude=0.05)
    sleeve = float(rng.choice([0.0, 0.25, 0.35, 0.55, 0.95], p=[0.12, 0.3, 0.18, 0.1, 0.3]))
    hem = float(rng.choice([0.3, 0.45, 0.7, 0.97], p=[0.2, 0.1, 0.1, 0.6]))
    return Outfit(
        skin=np.clip(skin, 0, 1).astype(np.float32), hair=np.clip(hair, 0, 1).astype(np.float32),
        hair_style=style, eye=eye, lips=lips.astype(np.float32), top=top, bottom=bottom,
        shoes=shoes, sleeve=sleeve, hem=hem, waist=float(rng.uniform(0.02, 0.12)),
        neckline=str(rng.choice(["round", "v"])), dress=bool(rng.random() < 0.12),
    )  # fmt: skip


def _fold(points: np.ndarray, amplitude: float, seed: int) -> np.ndarray:
    """(N,) brightness factor in [1 - amplitude, 1]: a few random plane waves over points."""
    if amplitude <= 0:
        return np.ones(len(points), np.float32)
    r = np.random.default_rng(seed)
    acc = np.zeros(len(points), np.float32)
    for _ in range(4):
        k = r.normal(size=3) * r.uniform(12.0, 40.0)
        k[2] *= 1.5  # folds are mostly horizontal creases
        acc += np.sin(points @ k.astype(np.float32) + r.uniform(0, 2 * np.pi)).astype(np.float32)
    f = 0.5 + acc / 8.0  # in [0, 1]
    return (1.0 - amplitude * np.clip(f, 0, 1) ** 2).astype(np.float32)


def _pattern(g: Garment, axial: np.ndarray, circ: np.ndarray, points: np.ndarray,
             chest: np.ndarray | None) -> np.ndarray:  # fmt: skip
    """(N, 3) colour of a garment at texels with axial/circumferential coordinates (metres)."""
    n = len(axial)
    col = np.tile(g.colour, (n, 1))
    p = g.period
    if g.pattern == "stripes":
        coord = circ if g.vertical else axial
        on = (np.floor(coord / p) % 2) == 0
        col[on] = g.colour2
    elif g.pattern == "checks":
        a = (np.floor(axial / p) + np.floor(circ / p)) % 2 == 0
        col[a] = g.colour2
        # a thin line grid on top, as on plaid
        line = (np.abs((axial / p) % 1 - 0.5) < 0.06) | (np.abs((circ / p) % 1 - 0.5) < 0.06)
        col[line] = 0.5 * (g.colour + g.colour2)
    elif g.pattern == "print":
        cell = p * 0.8
        ia, ic = np.floor(axial / cell), np.floor(circ / cell)
        h = np.sin(ia * 12.9898 + ic * 78.233) * 43758.5453
        jit = (h - np.floor(h)) - 0.5
        da = (axial / cell - ia - 0.5 - 0.4 * jit) * cell
        dc = (circ / cell - ic - 0.5 + 0.4 * jit) * cell
        on = np.hypot(da, dc) < cell * (0.18 + 0.12 * np.abs(jit))
        col[on] = g.colour2
    elif g.pattern == "logo" and chest is not None:
        x, z = chest[:, 0], chest[:, 1]  # chest-front offsets (metres), None elsewhere
        r = np.hypot(x, z)
        if g.logo_shape == "disc":
            on = r < 0.055
        elif g.logo_shape == "ring":
            on = (r < 0.06) & (r > 0.04)
        elif g.logo_shape == "star":
            ang = np.arctan2(z, x)
            on = r < 0.035 + 0.03 * np.abs(np.cos(2.5 * ang))
        else:
            on = (np.abs(x) < 0.07) & ((np.abs(z) < 0.008) | (np.abs(np.abs(z) - 0.025) < 0.008))
        on &= np.isfinite(r)
        col[on] = g.colour2
    return col * _fold(points, g.fold_amplitude, g.fold_seed)[:, None]


@dataclass(frozen=True)
class _TexelFields:
    """Per-texel region masks and garment coordinates (depend on the texture size only)."""

    geo: TexelGeometry
    lm: dict
    points: np.ndarray
    is_torso: np.ndarray
    is_head: np.ndarray
    is_arm: np.ndarray
    is_leg: np.ndarray
    is_foot: np.ndarray
    axial: np.ndarray
    circ: np.ndarray
    arm_s: np.ndarray
    leg_s: np.ndarray
    hip_z: float
    sh_z: float
    torso_centre: np.ndarray
    skin_variation: np.ndarray
    strands: np.ndarray
    face_idx: np.ndarray
    fill_flat: np.ndarray


@functools.lru_cache(maxsize=4)
def _texel_fields(size: int) -> _TexelFields:
    geo = texel_geometry(size)
    t = get_template()
    lm = canonical_landmarks()
    names = t.segment_names
    P = geo.point.astype(np.float64)
    x, y, z = P[:, 0], P[:, 1], P[:, 2]

    def segs(*prefixes: str) -> np.ndarray:
        ids = [i for i, n in enumerate(names) if n.startswith(prefixes)]
        return np.isin(geo.segment, ids)

    is_torso = segs("torso")
    is_head = segs("head")
    is_arm = segs("upperarm", "lowerarm")
    is_hand = segs("hand")
    is_leg = segs("upperleg", "lowerleg")
    is_foot = segs("foot")
    # axial / circumferential coordinates (metres) per region
    axial = z.copy()
    circ = np.zeros_like(z)
    tc = np.array([0.0, 0.5 * (lm["left_hip"][1] + lm["left_shoulder"][1]), 0.0])
    circ[is_torso] = np.arctan2(x[is_torso] - tc[0], -(y[is_torso] - tc[1])) * 0.13
    arm_s = np.zeros_like(z)
    for side, sgn in (("left", 1.0), ("right", -1.0)):
        sh, wr = lm[f"{side}_shoulder"], lm[f"{side}_wrist"]
        d = wr - sh
        L = np.linalg.norm(d)
        sel = (is_arm | is_hand) & (np.sign(x) == sgn)
        rel = P[sel] - sh
        s = rel @ d / L
        arm_s[sel] = s / L
        axial[sel] = s
        radial = rel - np.outer(s, d / L)
        circ[sel] = np.arctan2(radial[:, 1], radial @ np.cross(d / L, [0, 1.0, 0])) * 0.04
        hip = lm[f"{side}_hip"]
        ank = lm[f"{side}_ankle"]
        sel = (is_leg | is_foot) & (np.sign(x) == sgn)
        circ[sel] = np.arctan2(x[sel] - hip[0], y[sel] - 0.5 * (hip[1] + ank[1])) * 0.06
    hip_z = 0.5 * (lm["left_hip"][2] + lm["right_hip"][2])
    ank_z = 0.5 * (lm["left_ankle"][2] + lm["right_ankle"][2])
    leg_s = np.clip((hip_z - z) / (hip_z - ank_z), 0, 2)
    sh_z = 0.5 * (lm["left_shoulder"][2] + lm["right_shoulder"][2])
    return _TexelFields(
        geo,
        lm,
        P,
        is_torso,
        is_head,
        is_arm,
        is_leg,
        is_foot,
        axial,
        circ,
        arm_s,
        leg_s,
        float(hip_z),
        float(sh_z),
        tc,
        _fold(P.astype(np.float32), 0.05, 1234),
        (0.85 + 0.15 * np.sin(np.arctan2(x, y) * 40.0)).astype(np.float32),
        np.where(is_head & (y < lm["nose"][1] + 0.07))[0],
        _fill_flat(geo),
    )


def _fill_flat(geo: TexelGeometry) -> np.ndarray:
    """(T * T,) index into the masked-texel list of each texel's nearest masked texel."""
    order = np.full(geo.mask.shape, -1, np.int64)
    order[geo.mask] = np.arange(int(geo.mask.sum()))
    iy, ix = geo.fill_index
    return order[iy, ix].ravel()


def paint_texture(outfit: Outfit, size: int = 512) -> np.ndarray:
    """Paint an :class:`Outfit` into anny's continuous UV texture.

    Args:
        outfit: the look to paint.
        size: texture side T in texels (512 keeps eyes and logos legible; 256 works).
    Returns:
        (T, T, 3) float32 albedo in [0, 1], image convention (row 0 = ``v = 0``);
        texels outside UV islands hold their nearest island texel's colour.
    """
    f = _texel_fields(size)
    out = (outfit.skin[None, :] * f.skin_variation[:, None]).astype(np.float32)
    _paint_garments(out, outfit, f)
    _paint_hair(out, outfit, f)
    _paint_face(out, outfit, f)
    # hands: slightly lighter palms is too subtle; nails no. Keep skin.
    np.clip(out, 0.0, 1.0, out=out)
    # every texel takes its nearest island texel's colour (precomputed flat indices)
    return out[f.fill_flat].reshape(size, size, 3)


def _garment_regions(outfit: Outfit, f: _TexelFields) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(N,) bool masks of the masked texels under the top, the bottom and the shoes.

    Top: torso between the waist (``outfit.waist`` above the hips) and the
    neckline (round, or a V at the front; bare shoulders when sleeveless) plus
    the sleeves; bottom: torso below the waist plus the legs to the hem; shoes:
    feet plus the lowest 1.5 % of the hip-to-ankle length.
    """
    x, y, z = f.points[:, 0], f.points[:, 1], f.points[:, 2]
    waist_z = f.hip_z + outfit.waist
    neck_drop = np.where(y < 0, 0.05, 0.02)  # neckline lower at the front
    if outfit.neckline == "v":
        neck_drop = np.where(y < 0, 0.13 - 1.4 * np.abs(x), 0.02)
        neck_drop = np.maximum(neck_drop, 0.03)
    top_torso = f.is_torso & (z > waist_z) & (
        z < f.sh_z + 0.04 - neck_drop + 0.02 * (np.abs(x) > 0.1))  # fmt: skip
    sleeve = f.is_arm & (f.arm_s < outfit.sleeve)
    if outfit.sleeve == 0.0:  # sleeveless: bare shoulders beyond the strap
        top_torso &= ~((np.abs(x) > 0.12) & (z > f.sh_z - 0.06))
    top = top_torso | sleeve
    bottom = (f.is_torso & (z <= waist_z)) | (f.is_leg & (f.leg_s < outfit.hem))
    shoes = f.is_foot | (f.is_leg & (f.leg_s > 0.985))
    return top, bottom, shoes


def _paint_garments(out: np.ndarray, outfit: Outfit, f: _TexelFields) -> None:
    """Paint top, bottom (the top's garment for a dress) and shoes, with a dark sole,
    into out (N, 3) float32 (one row per masked texel), in place."""
    P, lm = f.points, f.lm
    x, y, z = P[:, 0], P[:, 1], P[:, 2]
    axial, circ = f.axial, f.circ
    top, bottom, shoes = _garment_regions(outfit, f)
    # chest-front coordinates for logos: centred between the nipples' height and the neck
    chest = np.full((len(P), 2), np.inf)
    cz = f.sh_z - 0.14
    front = f.is_torso & (y < f.torso_centre[1])
    chest[front] = np.stack([x[front], z[front] - cz], 1)

    top_g = outfit.top
    bot_g = top_g if outfit.dress else outfit.bottom
    out[top] = _pattern(top_g, axial[top], circ[top], P[top].astype(np.float32), chest[top])
    out[bottom] = _pattern(bot_g, axial[bottom], circ[bottom], P[bottom].astype(np.float32), None)
    out[shoes] = _pattern(
        outfit.shoes, axial[shoes], circ[shoes], P[shoes].astype(np.float32), None
    )
    # a sole: the bottom of the foot is darker
    foot_z = lm["left_heel"][2]
    out[f.is_foot & (z < foot_z + 0.012)] *= 0.35


def _paint_hair(out: np.ndarray, outfit: Outfit, f: _TexelFields) -> None:
    """Paint the hair (a cap with sideburns; long hair adds the back of the head and
    the upper back) into out (N, 3) float32, in place; nothing for ``"none"``."""
    if outfit.hair_style == "none":
        return
    lm, P = f.lm, f.points
    x, y, z = P[:, 0], P[:, 1], P[:, 2]
    is_head, tc, sh_z = f.is_head, f.torso_centre, f.sh_z
    nose, ear_l, ear_r = lm["nose"], lm["left_ear"], lm["right_ear"]
    eye_z = 0.5 * (lm["left_eye"][2] + lm["right_eye"][2])
    ear_y = 0.5 * (ear_l[1] + ear_r[1])
    cap = is_head & ((z > eye_z + 0.045) | ((y > ear_y + 0.01) & (z > eye_z - 0.06)))
    # sideburns in front of the ears
    cap |= is_head & (np.abs(np.abs(x) - abs(ear_l[0]) + 0.01) < 0.012) & (
        z > eye_z - 0.02) & (y < ear_y + 0.02) & (y > ear_y - 0.03)  # fmt: skip
    if outfit.hair_style == "long":
        cap |= is_head & (y > ear_y - 0.01) & (z > nose[2] - 0.12)
        back = (f.is_torso | f.is_arm) & (y > tc[1] - 0.02) & (z > sh_z - 0.16) & (np.abs(x) < 0.13)
        cap |= back & ~((z < sh_z - 0.1) & (np.abs(x) > 0.1))
    out[cap] = outfit.hair * f.strands[cap, None]


def _paint_face(out: np.ndarray, outfit: Outfit, f: _TexelFields) -> None:
    """Paint eyes (white, iris, pupil), brows and lips into out (N, 3) float32, in place,
    computed on the front-of-head texels only (canonical x, z offsets in metres)."""
    lm, nose = f.lm, f.lm["nose"]
    fi = f.face_idx
    fx, fz = f.points[fi, 0], f.points[fi, 2]
    fo = out[fi]
    for side in ("left", "right"):
        e = lm[f"{side}_eye"]
        r = np.hypot(fx - e[0], fz - e[2])
        fo[np.hypot((fx - e[0]) / 1.5, fz - e[2]) < 0.0085] = np.float32([0.95, 0.95, 0.93])
        fo[r < 0.0055] = outfit.eye
        fo[r < 0.0025] = np.float32([0.03, 0.03, 0.03])
        bz = fz - e[2] - 0.021 + 15.0 * (fx - e[0]) ** 2
        fo[(np.abs(fx - e[0]) < 0.019) & (np.abs(bz) < 0.0035)] = outfit.hair * 0.8 + 0.05
    mouth_z = nose[2] - 0.043
    lip = (np.abs(fx - nose[0]) < 0.024) & (np.abs(fz - mouth_z) < 0.0065 - 8 * (fx - nose[0]) ** 2)
    fo[lip] = outfit.lips
    fo[(np.abs(fx - nose[0]) < 0.022) & (np.abs(fz - mouth_z) < 0.0011)] *= 0.55
    out[fi] = fo


def render_background(rng: np.random.Generator, height: int, width: int,
                      cluttered: bool | None = None) -> np.ndarray:  # fmt: skip
    """A plain or cluttered background (H, W, 3) float32 in [0, 1].

    Plain: a colour with a vertical gradient and a floor band. Cluttered:
    plain plus 6-20 random rectangles, ellipses and lines, blurred slightly
    (out of focus). ``cluttered=None`` chooses with probability 0.5.
    """
    import cv2

    if cluttered is None:
        cluttered = bool(rng.random() < 0.5)
    base = _random_colour(rng) * 0.6 + 0.4 * rng.random()
    top = np.clip(base * rng.uniform(0.9, 1.15), 0, 1)
    bot = np.clip(base * rng.uniform(0.7, 1.0), 0, 1)
    ramp = np.linspace(0, 1, height, dtype=np.float32)[:, None, None]
    img = (top * (1 - ramp) + bot * ramp) * np.ones((1, width, 1), np.float32)
    floor = int(height * rng.uniform(0.7, 1.0))
    img[floor:] *= np.float32(rng.uniform(0.75, 0.95))
    if cluttered:
        img = np.ascontiguousarray(img)
        for _ in range(int(rng.integers(6, 20))):
            c = tuple(float(v) for v in _random_colour(rng))
            kind = rng.integers(3)
            x0, y0 = int(rng.integers(0, width)), int(rng.integers(0, height))
            w, h = (
                int(rng.integers(width // 12, width // 2)),
                int(rng.integers(height // 12, height // 2)),
            )
            if kind == 0:
                cv2.rectangle(img, (x0, y0), (x0 + w, y0 + h), c, -1)
            elif kind == 1:
                cv2.ellipse(
                    img, (x0, y0), (w // 2, h // 2), float(rng.uniform(0, 180)), 0, 360, c, -1
                )
            else:
                cv2.line(img, (x0, y0), (x0 + w, y0 - h), c, max(1, width // 100))
        k = max(1, width // 128) * 2 + 1
        img = cv2.GaussianBlur(img, (k, k), 0)
    return np.clip(img, 0, 1).astype(np.float32)


_FIXTURE_BACKGROUND = np.float32([0.86, 0.86, 0.85])


_FIXTURE_SKIN = np.float32([[0.87, 0.70, 0.58], [0.76, 0.57, 0.44], [0.55, 0.38, 0.27],
                          [0.93, 0.78, 0.68]])  # fmt: skip


_FIXTURE_SHIRTS = np.float32([[0.80, 0.16, 0.14], [0.13, 0.38, 0.72], [0.16, 0.55, 0.30],
                      [0.90, 0.62, 0.12]])  # fmt: skip


_FIXTURE_TROUSERS = np.float32([[0.15, 0.20, 0.36], [0.22, 0.22, 0.24], [0.42, 0.33, 0.22]])


_FIXTURE_HAIR = np.float32([[0.13, 0.09, 0.07], [0.30, 0.19, 0.10], [0.06, 0.06, 0.07]])


@functools.lru_cache(maxsize=1)
def coco_regressor() -> tuple[np.ndarray, tuple[str, ...]]:
    """anny's COCO-23 keypoint regressor: (23, 13718) float64 weights and the 23 names."""
    import anny

    kr = anny.KeypointsRegressor.coco(load_anny())
    return kr.regression_weights.double().numpy(), tuple(kr.labels)


def _fixture_albedo(part: np.ndarray, canon: np.ndarray, part_uv: np.ndarray,
            rng: np.random.Generator) -> np.ndarray:  # fmt: skip
    """Procedural clothing colour (N, 3) from part index, canonical point and chart UV."""
    lm = canonical_landmarks()
    skin = _FIXTURE_SKIN[rng.integers(len(_FIXTURE_SKIN))]
    shirt = _FIXTURE_SHIRTS[rng.integers(len(_FIXTURE_SHIRTS))]
    stripe = np.clip(shirt * 0.45 + 0.5, 0, 1)
    trousers = _FIXTURE_TROUSERS[rng.integers(len(_FIXTURE_TROUSERS))]
    hair = _FIXTURE_HAIR[rng.integers(len(_FIXTURE_HAIR))]
    shoes = np.float32([0.12, 0.10, 0.10])
    period = 0.045 + 0.02 * rng.random()

    x, y, z = canon[:, 0], canon[:, 1], canon[:, 2]
    out = np.tile(skin, (len(part), 1))
    torso = (part == 1) | (part == 2)
    upper_arm = (part >= 15) & (part <= 18)
    legs = (part >= 7) & (part <= 14)
    feet = (part == 5) | (part == 6)
    head = part >= 23
    hip_z = 0.5 * (lm["left_hip"][2] + lm["right_hip"][2])
    sh_x = abs(lm["left_shoulder"][0])
    # short sleeves: the shirt covers the upper arm up to a third of the way to the elbow
    el_x = abs(lm["left_elbow"][0])
    sleeve = upper_arm & (np.abs(x) < sh_x + 0.45 * (el_x - sh_x))
    shirt_px = (torso & (z > hip_z + 0.06)) | sleeve
    stripes = (np.floor(z / period) % 2 == 0) & shirt_px
    out[shirt_px] = shirt
    out[stripes] = stripe
    out[(torso & ~shirt_px) | legs] = trousers
    belt = torso & (np.abs(z - (hip_z + 0.06)) < 0.012)
    out[belt] = np.float32([0.25, 0.16, 0.08])
    out[feet] = shoes
    # trousers end a little above the ankle: below it, skin (a sock line) then shoes
    ank_z = lm["left_ankle"][2]
    out[legs & (z < ank_z + 0.04)] = np.float32([0.95, 0.95, 0.95])
    # hair: a cap on the top and back of the head
    nose, eye_l, eye_r = lm["nose"], lm["left_eye"], lm["right_eye"]
    eye_z = 0.5 * (eye_l[2] + eye_r[2])
    cap = head & ((z > eye_z + 0.045) | ((y > nose[1] + 0.11) & (z > eye_z - 0.07)))
    out[cap] = hair
    # face: eyes, brows and mouth, on the front of the head
    front = head & (y < nose[1] + 0.06)
    for eye in (eye_l, eye_r):
        d = np.hypot(x - eye[0], z - eye[2])
        out[front & (d < 0.011)] = np.float32([0.96, 0.96, 0.96])
        out[front & (d < 0.0065)] = np.float32([0.08, 0.06, 0.05])
        brow = front & (np.abs(x - eye[0]) < 0.018) & (np.abs(z - eye[2] - 0.02) < 0.004)
        out[brow] = hair
    mouth_z = nose[2] - 0.045
    mouth = front & (np.abs(x - nose[0]) < 0.022) & (np.abs(z - mouth_z) < 0.005)
    out[mouth] = np.float32([0.62, 0.25, 0.25])
    # a little cloth texture: low-amplitude pattern over the chart coordinates
    grain = 0.04 * np.sin(part_uv[:, 0] * 60.0) * np.sin(part_uv[:, 1] * 60.0)
    cloth = shirt_px | legs | (torso & ~shirt_px)
    out[cloth] *= (1.0 + grain[cloth])[:, None]
    return out


def shade_fixture(vc: np.ndarray, t, cam: Camera, seed: int) -> np.ndarray:
    """Paint and shade a posed body for :func:`reroute.synth.engine.render_synthetic_person`.

    Args:
        vc: (13718, 3) float64 posed vertices in the camera frame (metres).
        t: the :class:`~reroute.body.template.BodyTemplate`.
        cam: the camera to render with (its size is the image size).
        seed: picks skin, shirt, trouser and hair colours and the stripe period.
    Returns:
        (H, W, 3) float32 image in [0, 1]: procedural albedo x Lambert (light from
        the camera side plus ambient) over a light-grey background.
    """
    r = rasterize(vc, t.faces, cam)
    m = r.mask
    img = np.tile(_FIXTURE_BACKGROUND, (cam.height, cam.width, 1))
    if not m.any():
        return img
    part = r.face_values(t.face_part)[m]
    canon = r.interpolate(t.vertices[t.faces])[m]
    part_uv = r.interpolate(t.face_part_uv)[m]
    rng = np.random.default_rng(seed)
    albedo = _fixture_albedo(part, canon, part_uv, rng)
    normals = r.interpolate(vertex_normals(vc, t.faces)[t.faces])[m]
    normals /= np.maximum(np.linalg.norm(normals, axis=1, keepdims=True), 1e-12)
    ys, xs = np.nonzero(m)
    view = np.stack([(xs + 0.5 - cam.cx) / cam.focal, (ys + 0.5 - cam.cy) / cam.focal,
                     np.ones(len(xs))], 1)  # fmt: skip
    view /= np.linalg.norm(view, axis=1, keepdims=True)
    # normals facing away from the eye are flipped (back faces seen through gaps)
    flip = (normals * view).sum(1) > 0
    normals[flip] *= -1
    light = np.array([0.25, -0.45, -1.0])
    light /= np.linalg.norm(light)
    lambert = np.clip(normals @ light, 0.0, 1.0)
    shade = 0.38 + 0.62 * lambert
    img[m] = np.clip(albedo * shade[:, None], 0.0, 1.0)
    return img
