"""BodyMap inference: refine a photo's template-fit correspondences with the trained network.

:func:`refine_correspondence` runs :class:`~reroute.correspondence.bodymap.network.BodyMapNet`
on one photo and its fitted :class:`~reroute.correspondence.maps.Correspondence`
(the initialisation) and decodes the prediction where the foreground is
(:func:`~reroute.correspondence.bodymap.decode.expected_colour`,
:func:`~reroute.correspondence.bodymap.decode.decode_colour_map`): colour code ->
nearest surface point (within the predicted part, for networks with a part head)
-> part, per-part UV, continuous UV, with a confidence map.
:func:`load_bodymap` reads a checkpoint of kind ``bodymap`` (``weights_only=True``).
"""

from __future__ import annotations

import functools
import time
from pathlib import Path

import numpy as np
import torch
from torch.nn import functional as F

from reroute.body.fit import DenseTargets
from reroute.correspondence.bodymap.decode import (
    MIN_ISLAND,
    DecodedCorrespondence,
    decode_colour_map,
    expected_colour,
    expected_prior_colour,
    remove_part_islands,
)
from reroute.correspondence.bodymap.network import BodyMapConfig, BodyMapNet, init_tensor
from reroute.correspondence.maps import Correspondence
from reroute.training.checkpoint import load_checkpoint

__all__ = ["DEFAULT_CHECKPOINT", "dense_targets", "load_bodymap", "load_default_bodymap",
           "refine_correspondence"]

#: pixels drawn by :func:`dense_targets` for the dense refit
DENSE_POINTS = 400

#: pixels whose 3 x 256 colour scores are made and reduced at a time by
#: :func:`refine_correspondence` (the scores stay in cache: 2 times faster than all at once)
COLOUR_CHUNK = 1024

#: the committed CPU checkpoint (see its .json model card)
DEFAULT_CHECKPOINT = Path(__file__).resolve().parents[3] / "checkpoints" / "bodymap_cpu256.pt"


def load_bodymap(path, map_location="cpu") -> BodyMapNet:
    """A trained :class:`BodyMapNet` (EMA weights when present), eval mode, its
    convolution weights in ``torch.channels_last`` memory format (the format
    :func:`refine_correspondence` feeds it in: CPU convolutions on 32-64 channels at
    full resolution run about twice as fast in it; the values are the same).

    Raises :class:`reroute.errors.InputError` for a missing or foreign file."""
    ck = load_checkpoint(path, kind="bodymap", map_location=map_location)
    model = BodyMapNet(BodyMapConfig.from_dict(ck["config"]["model"]))
    model.load_state_dict(ck.get("ema") or ck["generator"])
    return model.to(memory_format=torch.channels_last).eval()


@functools.lru_cache(maxsize=4)
def load_default_bodymap(path: str | None = None) -> BodyMapNet:
    """:func:`load_bodymap` of ``path`` (default :data:`DEFAULT_CHECKPOINT`), cached per path."""
    return load_bodymap(str(path) if path else DEFAULT_CHECKPOINT)


def _pixel_colours(model: BodyMapNet, feats: torch.Tensor, pixels: torch.Tensor,
                   init: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:  # fmt: skip
    """:func:`expected_colour` of the colour scores at ``pixels`` (1, N) only (the costliest
    head), or :func:`expected_prior_colour` of the initial map there when the scores are
    the prior alone (:attr:`BodyMapNet.colour_is_prior`, on a 0/1 initial mask),
    :data:`COLOUR_CHUNK` pixels at a time: (1, 3, N, 1) colour and mass."""
    at = torch.gather(init.flatten(2), 2, pixels[:, None].expand(-1, init.shape[1], -1))  # (1, 4, N)
    if model.colour_is_prior and bool(((at[:, 3] == 0) | (at[:, 3] == 1)).all()):
        sharpness = float(model.prior_log_sharpness.detach().exp())

        def colours(i: int) -> tuple[torch.Tensor, torch.Tensor]:
            a = at[..., i:i + COLOUR_CHUNK]
            return expected_prior_colour(a[:, :3], a[:, 3] > 0.5, sharpness)
    else:

        def colours(i: int) -> tuple[torch.Tensor, torch.Tensor]:
            return expected_colour(model.score_pixels(feats, pixels[:, i:i + COLOUR_CHUNK], init))

    out = [colours(i) for i in range(0, max(pixels.shape[1], 1), COLOUR_CHUNK)]
    return torch.cat([c for c, _ in out], 2), torch.cat([m for _, m in out], 2)


@torch.no_grad()
def refine_correspondence(model: BodyMapNet, image: np.ndarray, init: Correspondence,
                          threshold: float = 0.5, min_island: float = MIN_ISLAND,
                          keep_torso_side: bool = True,
                          timings: dict[str, float] | None = None) -> DecodedCorrespondence:  # fmt: skip
    """The network's correspondences of one photo.

    Args:
        model: a :class:`BodyMapNet` (put in eval mode here).
        image: (H, W, 3) uint8 RGB.
        init: the template fit's :class:`Correspondence` of the same (H, W).
        threshold: foreground probability above which a pixel is the person's.
        min_island: part islands smaller than this fraction of the foreground are
            refilled from their surroundings (:func:`remove_part_islands`; 0: kept).
        keep_torso_side: with a part head, a pixel the initial map puts on one side of
            the torso (DensePose part 1 back, 2 front) and the network on the other keeps
            the initial side: the fit's facing decides front from back (not for the
            ``rgb`` variant, which does not read the initial map).
        timings: when given, receives the seconds of ``network`` (the network's heads and
            the colours' expectation) and ``decode`` (nearest surface points, islands).
    Returns:
        :class:`DecodedCorrespondence` (H, W): ``correspondence`` with part, per-part
        UV, continuous UV, colour code and mask (``body_mask`` = ``mask``),
        ``confidence`` (H, W) float32 in [0, 1], ``vertex`` (H, W) int64 (-1 background).
        The inputs are padded bottom/right (image edge replicated, initial map 0) to
        multiples of ``model.config.step`` and the outputs cropped back.
    Raises:
        ValueError: image and correspondences differ in size, or the image is not (H, W, 3) uint8.
    """
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"image: expected (H, W, 3) uint8, got {image.shape} {image.dtype}")
    if image.shape[:2] != init.shape:
        raise ValueError(f"image {image.shape[:2]} and its correspondences {init.shape} differ")
    model.eval()
    start = time.perf_counter()
    H, W = init.shape
    s = model.config.step
    pad = (0, -W % s, 0, -H % s)
    x = torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1))).float()[None] / 127.5 - 1
    init_t = F.pad(init_tensor(init), pad).contiguous(memory_format=torch.channels_last)
    x = F.pad(x, pad, mode="replicate").contiguous(memory_format=torch.channels_last)
    feats = model.pixel_features(x, init_t)
    prob = torch.sigmoid(model.foreground(feats, init_t))[0, 0, :H, :W]
    mask = prob > threshold
    ys, xs = torch.nonzero(mask, as_tuple=True)
    colour, mass = _pixel_colours(model, feats, (ys * feats.shape[-1] + xs)[None], init_t)  # (1, 3, N, 1)
    colour_map = np.zeros((H, W, 3), np.float32)
    confidence = np.zeros((H, W), np.float32)
    colour_map[ys.numpy(), xs.numpy()] = colour[0, :, :, 0].T.numpy()
    confidence[ys.numpy(), xs.numpy()] = (mass[0, :, :, 0].prod(0) * prob[ys, xs]).numpy()
    part = None
    if model.config.part_head:  # each pixel's surface point within its predicted part
        part = np.zeros((H, W), np.int64)
        if len(ys):  # scored in the foreground's box, one pixel wider (the head's 3 x 3 reach)
            y0, x0 = max(int(ys.min()) - 1, 0), max(int(xs.min()) - 1, 0)
            box = (..., slice(y0, int(ys.max()) + 2), slice(x0, int(xs.max()) + 2))
            scores = model.part_scores(feats[box], init_t[box])[0, :, ys - y0, xs - x0]
            part[ys.numpy(), xs.numpy()] = (scores.argmax(0) + 1).numpy()
        if keep_torso_side and model.config.variant != "rgb":  # no front <-> back swaps against the fit
            flip = np.isin(init.part, (1, 2)) & np.isin(part, (1, 2)) & (part != init.part)
            part[flip] = init.part[flip]
    middle = time.perf_counter()
    decoded = decode_colour_map(colour_map, mask.numpy(), confidence, part)
    decoded = remove_part_islands(decoded, min_island) if min_island > 0 else decoded
    if timings is not None:
        timings.update(network=middle - start, decode=time.perf_counter() - middle)
    return decoded


def dense_targets(decoded: DecodedCorrespondence, n: int = DENSE_POINTS, seed: int = 0,
                  body_only: np.ndarray | None = None) -> DenseTargets:  # fmt: skip
    """Dense 2-D keypoints for :func:`reroute.body.fit.refit_body` from decoded correspondences.

    Draws up to ``n`` foreground pixels (``decoded.vertex >= 0``; without replacement,
    ``numpy.random.default_rng(seed)``, so the same map gives the same targets), each
    with the template vertex it shows and its confidence as the weight.

    Args:
        decoded: a :class:`DecodedCorrespondence` (H, W).
        n: at most this many points.
        seed: the draw's seed.
        body_only: optional (H, W) bool; only pixels inside it are drawn (e.g. the
            fitted body's own silhouette, leaving out hair and loose clothes).
    Returns:
        :class:`~reroute.body.fit.DenseTargets`: pixels (N, 2) float32 (x, y) at pixel
        centres (``+0.5``), vertices (N,) int64, weights (N,) float32 in [0, 1].
    """
    ok = decoded.vertex >= 0
    if body_only is not None:
        ok &= body_only
    ys, xs = np.nonzero(ok)
    if len(ys) > n:
        pick = np.sort(np.random.default_rng(seed).choice(len(ys), n, replace=False))
        ys, xs = ys[pick], xs[pick]
    return DenseTargets(
        pixels=(np.stack([xs, ys], 1) + 0.5).astype(np.float32),
        vertices=decoded.vertex[ys, xs].astype(np.int64),
        weights=decoded.confidence[ys, xs].astype(np.float32),
    )
