"""Virtual try-on / appearance swap by mixing UV regions of two body textures.

BodyMap (Ianina et al., CVPR 2022, sec. 5 and supp. fig. 5) swaps garments by
combining the completed UV textures of two people: the garment donor's texels
inside a region of the body template (the upper body for a top, the legs for a
bottom, ...) and the wearer's everywhere else, then rendering the mixed texture
at the wearer's correspondences. Regions are unions of DensePose parts of the
template (see :data:`REGIONS`); the head (face and hair) and the hands are in
no region, so the wearer always keeps them.

The swap follows the garment, not only the template region
(:func:`garment_texture_mask`): inside the region, texels that either person
shows as skin (bare arms, legs; colour close to that person's own face skin,
:func:`skin_texels`) keep the wearer's appearance, so a short-sleeved donor
does not paint the wearer's forearms and a long-sleeved donor does not cover
the wearer's bare ones; the swapped region's border is feathered.

In the image, only the wearer's pixels whose correspondence falls in the
swapped texels are replaced (with a feathered edge); every other pixel is the
wearer's photo unchanged, at its full resolution. With ``rerender="network"``
the composite is made at the working size instead and re-rendered by the
neural re-renderer (:mod:`renderer`, BodyMap supp. C.1.2) over the wearer's
photo with the person inpainted away, then resized to the photo's resolution.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import cv2
import numpy as np

from renderer import ReRenderer, rerender_image, seen_map
from reroute.body.fit import FitConfig
from reroute.body.template import PART_NAMES
from reroute.correspondence.analyse import PersonAnalysis, analyse_person
from reroute.correspondence.maps import Correspondence
from reroute.errors import InputError
from reroute.io.images import load_image, load_photos, to_uint8
from reroute.pipelines.compose import alpha_blend, inpaint_background, texture_over_photo
from reroute.pipelines.correspondences import DEFAULT_CORRESPONDENCE, load_correspondence
from reroute.pipelines.rerendering import DEFAULT_RERENDERING, load_rerendering
from reroute.uv.skin import SKIN_CHROMA_DISTANCE, skin_texels
from reroute.uv.texture import UVTexture, fuse_textures, texel_parts
from reroute.uv.warp import image_to_uv, uv_to_image
from texture.classical import complete_classical

__all__ = [
    "REGIONS",
    "keep_photo_outside",
    "KEPT_PARTS",
    "texel_parts",
    "region_texture_mask",
    "region_image_mask",
    "mix_textures",
    "skin_texels",
    "garment_texture_mask",
    "SKIN_CHROMA_DISTANCE",
    "TryOnResult",
    "try_on",
    "TryOnPipeline",
]

_TOP = (1, 2, 15, 16, 17, 18, 19, 20, 21, 22)  # torso, upper and lower arms
_BOTTOM = (7, 8, 9, 10, 11, 12, 13, 14)  # upper and lower legs
_SHOES = (5, 6)  # feet

#: What can be swapped -> the DensePose parts (1..24) it covers.
REGIONS: dict[str, tuple[int, ...]] = {
    "top": _TOP,
    "bottom": _BOTTOM,
    "shoes": _SHOES,
    "full outfit": _TOP + _BOTTOM + _SHOES,
}

#: Parts the wearer always keeps: right hand, left hand, head right, head left.
KEPT_PARTS: tuple[int, ...] = (3, 4, 23, 24)

assert not set(KEPT_PARTS) & set(REGIONS["full outfit"])


def _check_region(region: str) -> tuple[int, ...]:
    if region not in REGIONS:
        raise InputError(f"unknown region {region!r}; choose one of {', '.join(REGIONS)}")
    return REGIONS[region]


def _feather(mask: np.ndarray, inside: np.ndarray, sigma: float) -> np.ndarray:
    """Blur a {0, 1} mask with a normalised Gaussian restricted to ``inside``."""
    if sigma <= 0:
        return mask.astype(np.float32)
    m = mask.astype(np.float32) * inside
    k = int(2 * round(3 * sigma) + 1)
    num = cv2.GaussianBlur(m, (k, k), sigma)
    den = cv2.GaussianBlur(inside.astype(np.float32), (k, k), sigma)
    out = np.where(den > 1e-6, num / np.maximum(den, 1e-6), 0.0)
    return (out * inside).astype(np.float32)


def region_texture_mask(region: str, size: int, feather: float = 1.0) -> np.ndarray:
    """Where the donor's texture is used, in the continuous UV layout.

    Args:
        region: a key of :data:`REGIONS`.
        size: texture side T.
        feather: Gaussian sigma (texels) of the soft edge, blurred within the
            UV islands only; 0 gives a hard mask.
    Returns:
        (T, T) float32 in [0, 1]: 1 on the region's texels, 0 on every other
        texel (in particular on the head and hands, :data:`KEPT_PARTS`).
    Raises:
        InputError: unknown region.
    """
    parts = _check_region(region)
    tp = texel_parts(size)
    hard = np.isin(tp, parts)
    soft = _feather(hard, tp > 0, feather)
    soft[np.isin(tp, KEPT_PARTS)] = 0.0  # the wearer's face, hair and hands stay exact
    return soft


def region_image_mask(corr: Correspondence, region: str, feather: float = 1.0) -> np.ndarray:
    """Where a photo's pixels get the donor's appearance.

    Args:
        corr: the wearer's :class:`~reroute.correspondence.maps.Correspondence` (H, W).
        region: a key of :data:`REGIONS`.
        feather: Gaussian sigma (pixels) of the soft edge.
    Returns:
        (H, W) float32 in [0, 1]: 1 on foreground pixels whose part is in the
        region, 0 on the background and on head and hand pixels.
    """
    parts = _check_region(region)
    hard = corr.mask & np.isin(corr.part, parts)
    soft = _feather(hard, np.ones_like(hard), feather)
    soft[corr.mask & np.isin(corr.part, KEPT_PARTS)] = 0.0
    return soft


def garment_texture_mask(wearer: UVTexture, donor: UVTexture, region: str,
                         feather: float = 1.0) -> np.ndarray:  # fmt: skip
    """Where the donor's texels replace the wearer's: the region minus skin.

    Args:
        wearer, donor: completed textures of the same size T.
        region: a key of :data:`REGIONS`.
        feather: soft edge (texels) of the region and of the skin border.
    Returns:
        (T, T) float32 in [0, 1]: :func:`region_texture_mask` with the texels
        either person shows as skin (:func:`skin_texels`) taken out.
    Raises:
        InputError: unknown region.
    """
    m = region_texture_mask(region, wearer.size, feather)
    skin = skin_texels(wearer) | skin_texels(donor)
    islands = texel_parts(wearer.size) > 0
    keep = _feather(skin & islands, islands, feather)
    return (m * (1.0 - keep)).astype(np.float32)


def mix_textures(wearer: UVTexture, donor: UVTexture, region: str,
                 feather: float = 1.0, mask: np.ndarray | None = None) -> UVTexture:  # fmt: skip
    """The wearer's texture with the donor's texels inside ``region``.

    Args:
        wearer, donor: completed (or partial) :class:`~reroute.uv.texture.UVTexture`
            of the same size T; pixels (T, T, 3) float32 in [0, 1].
        region: a key of :data:`REGIONS`.
        feather: soft edge (texels), see :func:`region_texture_mask`.
        mask: (T, T) float32 in [0, 1], the texels to take from the donor
            (default: the whole region, :func:`region_texture_mask`).
    Returns:
        :class:`UVTexture` ``m * donor + (1 - m) * wearer`` for the mask
        ``m``, visibility mixed the same way.
    Raises:
        InputError: unknown region. ValueError: textures of different sizes.
    """
    if wearer.size != donor.size:
        raise ValueError(f"textures differ in size: wearer {wearer.size}, donor {donor.size}")
    m = region_texture_mask(region, wearer.size, feather) if mask is None else mask
    pix = m[..., None] * donor.pixels + (1.0 - m[..., None]) * wearer.pixels
    vis = m * donor.visibility + (1.0 - m) * wearer.visibility
    return UVTexture(pix.astype(np.float32), vis.astype(np.float32))


@dataclass
class TryOnResult:
    """Output of :func:`try_on` / :class:`TryOnPipeline`.

    Attributes:
        image: (H, W, 3) uint8 RGB at the wearer photo's resolution: the
            wearer in the donor's garments (region), in the wearer's pose.
        region: what was swapped (a key of :data:`REGIONS`).
        donor, wearer: the two :class:`~reroute.correspondence.analyse.PersonAnalysis`
            (``donor``: the first donor photo's when several were fused).
        donor_texture, wearer_texture: completed UV textures (T, T) (the donor's
            from all its photos).
        texture: the mixed texture (T, T).
        mask: (h, w) float32 in [0, 1], where the wearer's pixels were replaced
            (working size).
        poses: extra results: the same mixed appearance in further photos'
            poses, each (H_i, W_i, 3) uint8 (empty unless asked for).
        texture_mask: (T, T) float32 in [0, 1], the texels taken from the donor
            (:func:`garment_texture_mask`).
        timings: seconds per stage (pose, fit, render, bodymap with BodyMap
            correspondences, lift, completion, composite, rerender (0 when off), total).
        notices: messages for the user.
        rerendered: whether ``image`` (and ``poses``) come from the neural re-renderer.
    """

    image: np.ndarray
    region: str
    donor: PersonAnalysis
    wearer: PersonAnalysis
    donor_texture: UVTexture
    wearer_texture: UVTexture
    texture: UVTexture
    mask: np.ndarray
    poses: list[np.ndarray] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    notices: list[str] = field(default_factory=list)
    texture_mask: np.ndarray | None = None
    rerendered: bool = False


def _composite(texture: UVTexture, person: PersonAnalysis, photo: np.ndarray, region: str,
               feather: float, swapped: np.ndarray) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """Render ``texture`` on ``person`` where the texels were swapped over ``photo``
    (full resolution); ``swapped`` is the (T, T) donor mask of :func:`garment_texture_mask`."""
    corr = person.correspondence
    alpha = region_image_mask(corr, region, feather)
    alpha = alpha * uv_to_image(swapped[..., None], corr)[..., 0]  # skin stays the photo's
    return texture_over_photo(texture, corr, photo, alpha), alpha


def _rerender(model: ReRenderer, composite: np.ndarray, texture: UVTexture,
              person: PersonAnalysis, size: tuple[int, int], seen: np.ndarray | None = None) -> np.ndarray:  # fmt: skip
    """``composite`` ((h, w, 3) uint8, the swap over ``person.image`` at the working size)
    re-rendered by ``model`` over the photo with the person inpainted away, then resized
    to ``size`` = (H, W): (H, W, 3) uint8 RGB. ``seen``: (h, w) in [0, 1] for a model
    with a seen input (:func:`renderer.network.seen_map`); None counts the whole person as seen."""
    corr = person.correspondence
    if seen is None and model.config.seen_input:
        seen = corr.mask.astype(np.float32)
    background = inpaint_background(person.image, corr.mask)
    out = rerender_image(model, composite, background, corr, texture, seen)
    if out.shape[:2] != tuple(size):
        out = cv2.resize(out, (size[1], size[0]), interpolation=cv2.INTER_CUBIC)
    return out


def keep_photo_outside(rerendered: np.ndarray, photo: np.ndarray, swapped: np.ndarray,
                       grow: float = 4.0 / 256) -> np.ndarray:  # fmt: skip
    """The re-renderer's output only where the garment was swapped (and a band around it).

    The wearer's own pixels outside the swap are the real photo; the network
    would only smooth them (by eye on 8 real pairs it blurred faces and
    clothes), so they are kept at full resolution. The band lets it close the
    swap's seams and halo.

    Args:
        rerendered: (H, W, 3) uint8, the re-rendered try-on at the photo's size.
        photo: (H, W, 3) uint8, the wearer's photo.
        swapped: (h, w) float in [0, 1], where the donor's garment was drawn,
            at the working size.
        grow: the band's width as a fraction of the working size's longer side
            (4 px at 256 px), then feathered by the same width.
    Returns:
        (H, W, 3) uint8.
    """
    h, w = swapped.shape
    r = max(1, int(round(grow * max(h, w))))
    band = cv2.dilate((swapped > 0.05).astype(np.uint8), np.ones((2 * r + 1, 2 * r + 1), np.uint8))
    alpha = np.maximum(cv2.GaussianBlur(band.astype(np.float32), (0, 0), r), swapped)
    H, W = photo.shape[:2]
    alpha = cv2.resize(alpha, (W, H), interpolation=cv2.INTER_LINEAR)
    return to_uint8(alpha_blend(rerendered / 255.0, alpha, photo / 255.0))


def try_on(donor: PersonAnalysis | list[PersonAnalysis], wearer: PersonAnalysis, region: str, *,
           wearer_photo: np.ndarray | None = None, texture_size: int = 256,
           complete: Callable[[UVTexture], UVTexture] = complete_classical,
           feather: float = 1.0, rerender: str = DEFAULT_RERENDERING,
           rerender_checkpoint: str | None = None) -> TryOnResult:  # fmt: skip
    """Swap ``region`` of the wearer's appearance for the donor's.

    Args:
        donor: analysis of the garment donor's photo, or a non-empty list of
            analyses of several photos of the donor in the same clothes (front,
            back...): their lifted textures are fused by evidence
            (:func:`~reroute.uv.texture.fuse_textures`) before completion.
        wearer: analysis of the wearer's photo.
        region: ``"top"``, ``"bottom"``, ``"shoes"`` or ``"full outfit"``.
        wearer_photo: the wearer's photo (H, W, 3) uint8 at full resolution;
            defaults to ``wearer.image`` (working size).
        texture_size: side T of the UV textures.
        complete: texture completion (classical by default).
        feather: soft-edge sigma in texels and pixels.
        rerender: ``"none"`` (the swap composited over the photo at its full
            resolution) or ``"network"`` (composited at the working size and
            re-rendered by the neural re-renderer, then resized to the photo's;
            outside the swap and a 4-px band the photo stays,
            :func:`keep_photo_outside`).
        rerender_checkpoint: the re-renderer checkpoint (default: the committed one).
    Returns:
        :class:`TryOnResult` (``rerendered`` says which).
    Raises:
        InputError: unknown region or re-rendering, missing or foreign re-renderer
            checkpoint (checked before any work), an empty list of donor photos.
    """
    _check_region(region)
    donors = list(donor) if isinstance(donor, (list, tuple)) else [donor]
    if not donors:
        raise InputError("try-on needs at least one garment donor photo")
    donor = donors[0]
    model = load_rerendering(rerender, rerender_checkpoint)
    t0 = time.perf_counter()
    timings: dict[str, float] = {}
    t = time.perf_counter()
    d_part = fuse_textures([image_to_uv(d.image, d.correspondence, texture_size)
                            for d in donors])  # fmt: skip
    w_part = image_to_uv(wearer.image, wearer.correspondence, texture_size)
    timings["lift"] = time.perf_counter() - t
    t = time.perf_counter()
    d_tex, w_tex = complete(d_part), complete(w_part)
    timings["completion"] = time.perf_counter() - t
    t = time.perf_counter()
    swapped = garment_texture_mask(w_tex, d_tex, region, feather)
    mixed = mix_textures(w_tex, d_tex, region, feather, mask=swapped)
    photo = wearer.image if wearer_photo is None else wearer_photo
    at = photo if model is None else wearer.image  # the re-renderer works at the working size
    image, mask = _composite(mixed, wearer, at, region, feather, swapped)
    timings["composite"] = time.perf_counter() - t
    t = time.perf_counter()
    if model is not None:
        seen = None
        if model.config.seen_input:  # the donor's visibility where swapped, the wearer's elsewhere
            corr = wearer.correspondence
            seen = mask * seen_map(d_part, corr) + (1 - mask) * seen_map(w_part, corr)
        image = _rerender(model, image, mixed, wearer, photo.shape[:2], seen)
        image = keep_photo_outside(image, photo, mask)
    timings["rerender"] = time.perf_counter() - t
    timings["total"] = time.perf_counter() - t0
    return TryOnResult(image, region, donor, wearer, d_tex, w_tex, mixed, mask,
                       timings=timings, notices=[n for a in (*donors, wearer) for n in a.notices],
                       texture_mask=swapped, rerendered=model is not None)  # fmt: skip


class TryOnPipeline:
    """Try-on from two photos: the wearer in the donor's top, bottom, shoes or full outfit.

    Args:
        size: working size (longer side, pixels, >= 64) for the analyses.
        texture_size: side T of the UV textures.
        fit_config: schedule of the body fits.
        complete: texture completion ``complete(partial UVTexture) -> UVTexture``
            (default :func:`~texture.classical.complete_classical`; the app passes
            :func:`texture.complete_texture` with the network).
        rerender: ``"none"`` or ``"network"``: re-render the result (and every
            extra pose) with the neural re-renderer (see :func:`try_on`).
        rerender_checkpoint: the re-renderer checkpoint (default: the committed one).
        correspondence: ``fit`` or ``bodymap`` (every photo's fitted correspondences
            refined by the BodyMap network) for the default ``analyse``; a caller's own
            ``analyse`` decides for itself.
        bodymap_checkpoint: the BodyMap checkpoint (default: the committed one).

    Raises:
        InputError: size under 64, unknown ``rerender`` or ``correspondence``, or a
            missing or foreign re-renderer or BodyMap checkpoint (loaded here, before
            any fit).
    """

    def __init__(self, size: int = 256, texture_size: int = 256,
                 fit_config: FitConfig | None = None,
                 complete: Callable[[UVTexture], UVTexture] | None = None,
                 rerender: str = DEFAULT_RERENDERING,
                 rerender_checkpoint: str | None = None,
                 correspondence: str = DEFAULT_CORRESPONDENCE,
                 bodymap_checkpoint: str | None = None):  # fmt: skip
        if size < 64:
            raise InputError(f"size must be at least 64 px, got {size}")
        self.size = size
        self.texture_size = texture_size
        self.fit_config = fit_config
        self.complete = complete or complete_classical
        # a missing re-renderer checkpoint fails here, before any fit
        self.rerenderer = load_rerendering(rerender, rerender_checkpoint)
        self.rerender = rerender
        self.rerender_checkpoint = rerender_checkpoint
        load_correspondence(correspondence, bodymap_checkpoint)  # before any fit, too
        self.correspondence = correspondence
        self.bodymap_checkpoint = bodymap_checkpoint

    def __call__(self, donor, wearer, region: str = "top", *, extra_poses=(),
                 analyse: Callable[..., PersonAnalysis] | None = None,
                 progress: Callable[[float, str], None] | None = None) -> TryOnResult:  # fmt: skip
        """Run try-on.

        Args:
            donor: photo of the garment donor (path, bytes, PIL image or uint8 array),
                or a list or tuple of photos of the donor in the same clothes from
                other views, fused (see :func:`try_on`).
            wearer: photo of the person who puts the garments on.
            region: a key of :data:`REGIONS`.
            extra_poses: further photos (of anyone); the mixed appearance is
                also rendered in each of their poses (BodyMap supp. fig. 5).
            analyse: ``analyse(loaded_image, name=...) -> PersonAnalysis``;
                defaults to :func:`~reroute.correspondence.analyse.analyse_person` at ``size``
                with this pipeline's ``correspondence`` (the app passes a cached one).
            progress: ``progress(fraction, stage)`` callback.
        Returns:
            :class:`TryOnResult` (``image`` at the wearer photo's resolution; re-rendered,
            with ``rerendered`` True, when the pipeline was made with ``rerender="network"``).
        Raises:
            InputError: unknown region, bad image, no person, several persons, failed fit.
        """
        _check_region(region)

        def step(f: float, s: str) -> None:
            if progress is not None:
                progress(f, s)

        if analyse is None:

            def analyse(img, name):
                return analyse_person(img, size=self.size, name=name, fit_config=self.fit_config,
                                      correspondence=self.correspondence,
                                      bodymap_checkpoint=self.bodymap_checkpoint)  # fmt: skip

        t0 = time.perf_counter()
        step(0.0, "checking the photos")
        d_imgs, names = load_photos(donor, name="garment donor photo")
        w_img = load_image(wearer, name="wearer photo")
        extra = [load_image(p, name=f"pose photo {i + 1}") for i, p in enumerate(extra_poses)]
        n_fit = len(d_imgs) + 1 + len(extra)
        donors = []
        for i, (img, name) in enumerate(zip(d_imgs, names, strict=True)):
            step(0.05 + 0.8 * i / n_fit, f"pose and fit: {name}")
            donors.append(analyse(img, name=name))
        step(0.05 + 0.8 * len(donors) / n_fit, "pose and fit: wearer photo")
        w = analyse(w_img, name="wearer photo")
        step(0.05 + 0.8 * (len(donors) + 1) / n_fit, "completing and mixing the textures")
        res = try_on(donors, w, region, wearer_photo=w_img.pixels, texture_size=self.texture_size,
                     complete=self.complete, rerender=self.rerender,
                     rerender_checkpoint=self.rerender_checkpoint)  # fmt: skip
        model = self.rerenderer
        for i, e in enumerate(extra):
            step(0.05 + 0.8 * (len(donors) + 1 + i) / n_fit, f"pose and fit: pose photo {i + 1}")
            a = analyse(e, name=f"pose photo {i + 1}")
            at = e.pixels if model is None else a.image
            img, _ = _composite(res.texture, a, at, region, 1.0, res.texture_mask)
            if model is not None:
                img = _rerender(model, img, res.texture, a, e.pixels.shape[:2])
            res.poses.append(img)
            res.notices.extend(a.notices)
        fitted = [*donors, w]
        refined = ("bodymap",) if any("bodymap" in a.timings for a in fitted) else ()
        for k in ("pose", "fit", "render", *refined):
            res.timings[k] = sum(a.timings.get(k, 0.0) for a in fitted)
        res.timings["total"] = time.perf_counter() - t0
        step(1.0, "done")
        return res


def region_description(region: str) -> str:
    """The DensePose part names of a region, for help texts."""
    return ", ".join(PART_NAMES[p] for p in _check_region(region))
