"""Correspondences of a fitted body (the "fit" predictor).

:func:`render_correspondence` ray-casts the fitted anny body
(:mod:`reroute.body.raster`) and interpolates the template's coordinate
systems (:mod:`reroute.body.template`) per pixel: DensePose part index and
per-part (U, V), continuous UV and the BodyMap colour code. With a person mask
it then extends them to the whole person (hair, loose clothes) by copying
each uncovered mask pixel's nearest body label, the way BodyMap builds dense
pseudo ground truth (Ianina et al., CVPR 2022, sec. 3.3). The learned BodyMap
predictor will plug in beside this module and return the same
:class:`~reroute.correspondence.maps.Correspondence`.
"""

from __future__ import annotations

import numpy as np
from skimage.measure import label

from reroute.body.posed import FittedBody
from reroute.body.raster import rasterize
from reroute.body.template import get_template, split_maps
from reroute.correspondence.maps import Correspondence

__all__ = ["render_correspondence", "THIN_DONOR_PARTS", "THIN_DONOR_PX"]

#: Distance (px) up to which :data:`THIN_DONOR_PARTS` still lend their labels.
THIN_DONOR_PX = 3.0


def _small_islands(part: np.ndarray, min_area: float) -> np.ndarray:
    """(H, W) bool: pixels of connected part regions smaller than ``min_area`` px.

    A region is a 4-connected set of pixels with one nonzero label of ``part``
    (H, W) int; scikit-image labels every part in one pass (at 512 px: 3 ms
    against 46 ms for one SciPy ``label`` per part, the same regions).
    """
    if min_area <= 1:
        return np.zeros(part.shape, bool)
    regions = label(part, background=0, connectivity=1)
    small = np.bincount(regions.ravel()) < min_area
    small[0] = False  # the background
    return small[regions]


def render_correspondence(
    fitted: FittedBody,
    person_mask: np.ndarray | None = None,
    *,
    extend_px: float | None = None,
    min_part_fraction: float = 0.002,
) -> Correspondence:
    """Render a fitted body's correspondences and extend them to the person mask.

    Steps: (1) rasterize the posed template; (2) drop body pixels outside the
    person mask and part islands smaller than ``min_part_fraction`` of the
    foreground (slivers of a part seen at a grazing angle, which DensePose
    never predicts); (3) give every other person pixel the correspondence of
    its nearest kept body pixel, where hands and forearms
    (:data:`THIN_DONOR_PARTS`) lend theirs only within :data:`THIN_DONOR_PX`.

    Args:
        fitted: the :class:`~reroute.body.posed.FittedBody`; the output has its camera's size.
        person_mask: optional (H, W) bool or float (> 0.5 = person) mask of the
            same size. When given, the foreground is this mask: rendered pixels
            outside it are dropped and mask pixels the body does not cover take
            the correspondence of the nearest rendered pixel inside the mask.
            Without it, the foreground is the rendered body.
        extend_px: ``None`` extends to the whole person mask (hair, loose
            clothes: what texture transfer needs); a distance in pixels keeps
            only mask pixels within it of the rendered body (DensePose R-CNN's
            coverage: body surface and tight clothes, e.g. ``4`` at 256 px).
        min_part_fraction: islands below this share of the foreground area
            are relabelled from their neighbours (0 disables).
    Returns:
        :class:`Correspondence` of shape ``(camera.height, camera.width)``.
    Raises:
        ValueError: if ``person_mask`` has another size than the camera.
    """

    # 1. rasterize and interpolate every surface attribute
    t = get_template()
    cam = fitted.camera
    r = rasterize(fitted.vertices, t.faces, cam)
    part = r.face_values(t.face_part.astype(np.uint8))
    part_uv, uv, colour = split_maps(r.interpolate(t.face_maps))
    body = r.mask
    if person_mask is None:
        pm = body
    else:
        pm = np.asarray(person_mask)
        if pm.shape != body.shape:
            raise ValueError(f"person_mask: expected shape {body.shape}, got {pm.shape}")
        pm = pm > 0.5 if pm.dtype != bool else pm
    # 2. keep body pixels inside the mask, minus grazing-angle slivers
    seen = body & pm
    if not seen.any():
        seen = body
    if not seen.any():
        empty = np.zeros_like(body)
        return Correspondence(part * 0, part_uv * 0, uv * 0, colour * 0, empty, empty)
    fg = pm | seen
    # work in the person's box: every donor and receiver lies in it (same result)
    ys, xs = np.nonzero(fg)
    box = (slice(ys.min(), ys.max() + 1), slice(xs.min(), xs.max() + 1))
    full_shape = fg.shape
    part, part_uv, uv, colour = part[box], part_uv[box], uv[box], colour[box]
    fg, seen = fg[box], seen[box]
    src = seen & ~_small_islands(np.where(seen, part, 0), min_part_fraction * fg.sum())
    if not src.any():
        src = seen
    # 3. nearest kept body pixel for everything else; thin parts lend only nearby
    (iy, ix), fg = _donors(src, part, fg, seen, extend_px)
    fields = [a[iy, ix] for a in (part, part_uv, uv, colour)] + [fg.copy(), seen & fg]
    out = []
    for crop in fields:
        crop[~fg] = 0
        filled = np.zeros(full_shape + crop.shape[2:], crop.dtype)
        filled[box] = crop
        out.append(filled)
    return Correspondence(*out[:4], mask=out[4], body_mask=out[5])


def _donors(src: np.ndarray, part: np.ndarray, fg: np.ndarray, seen: np.ndarray,
            extend_px: float | None) -> tuple[tuple[np.ndarray, np.ndarray], np.ndarray]:  # fmt: skip
    """Which kept body pixel lends its correspondence to each pixel, and the final foreground.

    Args:
        src: (h, w) bool kept body pixels; part: (h, w) their part labels;
        fg: (h, w) bool person foreground; seen: (h, w) bool rendered body in the mask.
        extend_px: see :func:`render_correspondence`.
    Returns:
        ((iy, ix), fg): per pixel the row and column (h, w) int of its donor, the
        nearest ``src`` pixel, except that farther than :data:`THIN_DONOR_PX` from
        every hand and forearm pixel the nearest other part lends; and ``fg``
        restricted to ``extend_px`` of ``seen`` when that is given.
    """
    from scipy import ndimage as ndi

    dist, (iy, ix) = ndi.distance_transform_edt(~src, return_indices=True)
    thick = src & ~np.isin(part, THIN_DONOR_PARTS)
    if thick.any():
        _, (ty, tx) = ndi.distance_transform_edt(~thick, return_indices=True)
        far = dist > THIN_DONOR_PX
        iy, ix = np.where(far, ty, iy), np.where(far, tx, ix)
    if extend_px is not None:  # measured from the rendered body, slivers included
        fg = fg & (ndi.distance_transform_edt(~seen) <= extend_px)
    return (iy, ix), fg


#: Parts that lend their correspondence to extension pixels only close by
#: (hands and forearms): a skirt or sleeve next to a hanging hand is not hand.
THIN_DONOR_PARTS: tuple[int, ...] = (3, 4, 19, 20, 21, 22)
