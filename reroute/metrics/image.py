"""Image metrics of the pose-transfer literature, each named with its exact variant.

Every function takes images as ``(H, W, 3)`` ``uint8`` RGB numpy arrays (0..255)
or batches ``(B, H, W, 3)`` and returns Python floats (or ``(B,)`` float64 arrays
for batches). Computation is in float64 torch on the CPU, so the figures match
the reference implementations they name to ~1e-10, not just to a tolerance.

The SSIM in circulation in pose transfer comes in two incompatible forms:

* **PATN SSIM** (Zhu et al., CVPR 2019, ``tool/getMetrics_fashion.py``; the same
  code as Deformable GAN, Siarohin et al., CVPR 2018): scikit-image
  ``compare_ssim(reference, generated, gaussian_weights=True, sigma=1.5,
  use_sample_covariance=False, multichannel=True,
  data_range=generated.max() - generated.min())`` on 0..255 RGB, the 256x176
  images first padded with 40 px of white on each side (``addBounding``) back to
  256x256. :func:`ssim_patn`.
* **GFLA SSIM** (Ren et al., CVPR 2020, ``script/metrics.py``; also used by NTED
  and PIDM): ``compare_ssim(gt, pred, data_range=1, win_size=51,
  multichannel=True)`` on float RGB in [0, 1], uniform 51x51 window with the
  sample covariance (scikit-image's default). :func:`ssim_gfla`.

Both average the SSIM map over each channel (dropping ``(win - 1) / 2`` pixels
at every border, scipy ``reflect`` padding) and then over the 3 channels, as
scikit-image does. Set-level metrics that need trained networks (LPIPS, FID, IS,
DS) live behind :class:`NetworkMetrics`, which loads weights only from the torch
cache or a path the user gives, and reports them as unavailable (with the
reason) otherwise: no figure ever comes from an untrained network.
"""

from __future__ import annotations

import hashlib
import math
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

__all__ = [
    "METRIC_VARIANTS",
    "ssim",
    "ssim_patn",
    "ssim_gfla",
    "ms_ssim",
    "masked_ssim",
    "psnr",
    "l1",
    "keypoint_mask",
    "pair_metrics",
    "frechet_distance",
    "inception_score_from_probs",
    "WeightSource",
    "NetworkMetrics",
    "find_cached_weights",
    "sha256_file",
]

PATN_PAD = 40
"""White columns PATN adds on each side of a 256x176 image before SSIM (``addBounding``)."""

MS_SSIM_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)
"""Per-scale exponents of MS-SSIM (Wang, Simoncelli, Bovik 2003, Table/eq. 7)."""

# OpenPose-18 limbs of Ma et al.'s mask (PG2 / Deformable GAN ``produce_ma_mask``), 1-based.
_MA_MASK_LIMBS = [
    (2, 3), (2, 6), (3, 4), (4, 5), (6, 7), (7, 8), (2, 9), (9, 10), (10, 11), (2, 12),
    (12, 13), (13, 14), (2, 1), (1, 15), (15, 17), (1, 16), (16, 18), (2, 17), (2, 18),
    (9, 12), (12, 6), (9, 3), (17, 18),
]  # fmt: skip

METRIC_VARIANTS: dict[str, str] = {
    "ssim_patn": (
        "PATN/Deformable-GAN SSIM: skimage-equivalent structural_similarity on RGB 0..255, "
        "Gaussian window sigma 1.5 (truncate 3.5 -> 11x11), population covariance "
        "(use_sample_covariance=False), K1=0.01, K2=0.03, data_range = generated.max() - "
        "generated.min(), scipy 'reflect' borders, 5 px border cropped, mean over channels; "
        "images padded with {pad} px of white on each side first"
    ),
    "ssim_gfla": (
        "GFLA/NTED/PIDM SSIM: skimage-equivalent structural_similarity on RGB /255 in [0, 1], "
        "uniform 51x51 window, sample covariance (N/(N-1)), data_range=1, K1=0.01, K2=0.03, "
        "scipy 'reflect' borders, 25 px border cropped, mean over channels; no padding"
    ),
    "ms_ssim": (
        "MS-SSIM (Wang et al. 2003) on RGB 0..255, data_range 255, 5 scales with weights "
        "(0.0448, 0.2856, 0.3001, 0.2363, 0.1333), 11x11 Gaussian sigma 1.5 'valid' filtering, "
        "2x2 average-pool downsampling (zero pad on odd sides), ReLU on cs, per-channel then "
        "channel mean (pytorch-msssim convention)"
    ),
    "masked_ssim": (
        "mask-SSIM (Ma et al. PG2 / Deformable GAN): PATN SSIM settings without padding on both "
        "images multiplied by the target's keypoint mask (OpenPose-18 limbs as 8 px wide "
        "polygons + 4 px joint disks, then 5x5 dilation and erosion)"
    ),
    "psnr": "PSNR = 10 log10(255^2 / MSE) over all pixels and channels of the 0..255 RGB images "
    "(skimage peak_signal_noise_ratio, data_range 255; equals GFLA's data_range 1 on /255)",
    "l1": "L1 = mean |generated - target| / 255 over all pixels and channels, in [0, 1] "
    "(GFLA's l1; PATN's L1 on [-1, 1] images is twice this)",
    "lpips": "LPIPS v0.1 AlexNet (lpips 0.1.4 linear heads, torchvision AlexNet ImageNet weights), "
    "inputs RGB scaled to [-1, 1] at the evaluation size, spatial average",
    "ds": "DS (Dense Pose Transfer / Deformable GAN detection score): max person (COCO label 1) "
    "confidence of torchvision SSD300-VGG16 COCO on the generated image; 0 if no person box",
    "fid": "FID: Frechet distance between Inception-v3 pool3 (2048-d) activation Gaussians of "
    "the generated PNGs and the reference images, both bilinearly resized to 299x299 "
    "(torch interpolate, align_corners=False); network: {network}",
    "is": "IS: exp(E_x KL(p(y|x) || p(y))) of Inception-v3 softmax over {classes} classes, "
    "{splits} split(s), images bilinearly resized to 299x299; network: {network}",
}


# ----------------------------------------------------------------------------- helpers


def _as_batch(img: np.ndarray, what: str) -> torch.Tensor:
    """(H, W, 3) or (B, H, W, 3) uint8/float -> (B, 3, H, W) float64 tensor (values kept)."""
    a = np.asarray(img)
    if a.ndim == 3:
        a = a[None]
    if a.ndim != 4 or a.shape[-1] != 3:
        raise ValueError(f"{what}: expected (H, W, 3) or (B, H, W, 3), got shape {a.shape}")
    return torch.from_numpy(np.ascontiguousarray(a, dtype=np.float64)).permute(0, 3, 1, 2)


def _check_pair(gen: np.ndarray, ref: np.ndarray) -> None:
    if np.shape(gen) != np.shape(ref):
        raise ValueError(
            f"generated and reference images differ in shape: {np.shape(gen)} vs {np.shape(ref)}"
        )


def _out(v: torch.Tensor, batched: bool):
    v = v.numpy().astype(np.float64)
    return v if batched else float(v[0])


def _filter_separable(x: torch.Tensor, k: torch.Tensor | None, *, same: bool,
                      box: int = 0) -> torch.Tensor:  # fmt: skip
    """Correlate (B, C, H, W) float64 with a separable kernel along H and W.

    Args:
        k: odd-length 1-D kernel, or None with ``box``: a uniform kernel of that
            odd length.
        same: scipy ``reflect`` (half-sample symmetric) padding, output (H, W);
            otherwise the 'valid' part, (H - 2r, W - 2r).
    Runs scipy.ndimage.correlate1d (C, float64): exact and much faster than a
    float64 torch convolution on the CPU.
    """
    from scipy.ndimage import correlate1d

    w = np.full(box, 1.0 / box) if box else k.numpy().astype(np.float64)
    r = (len(w) - 1) // 2
    a = correlate1d(x.numpy(), w, axis=2, mode="reflect")
    a = correlate1d(a, w, axis=3, mode="reflect")
    if not same and r:
        a = a[:, :, r:-r, r:-r]
    return torch.from_numpy(np.ascontiguousarray(a))


def _gaussian_kernel(sigma: float, radius: int) -> torch.Tensor:
    x = torch.arange(-radius, radius + 1, dtype=torch.float64)
    k = torch.exp(-0.5 * (x / sigma) ** 2)
    return k / k.sum()


def _ssim_map(x, y, k, *, data_range, cov_norm, same, box=0, K1=0.01, K2=0.03):
    """SSIM and contrast-structure maps (Wang et al. 2004, eq. 13), per channel."""
    B = x.shape[0]
    stats = _filter_separable(torch.cat([x, y, x * x, y * y, x * y]), k, same=same, box=box)
    ux, uy, uxx, uyy, uxy = stats.split(B)
    vx = cov_norm * (uxx - ux * ux)
    vy = cov_norm * (uyy - uy * uy)
    vxy = cov_norm * (uxy - ux * uy)
    C1 = (K1 * data_range) ** 2
    C2 = (K2 * data_range) ** 2
    cs = (2 * vxy + C2) / (vx + vy + C2)
    s = (2 * ux * uy + C1) / (ux**2 + uy**2 + C1) * cs
    return s, cs


# ----------------------------------------------------------------------------- SSIM family


def ssim(generated, reference, *, data_range, gaussian: bool = True, sigma: float = 1.5,
         win_size: int = 7, sample_covariance: bool = True, truncate: float = 3.5):  # fmt: skip
    """scikit-image's ``structural_similarity`` for RGB images, in torch.

    Args:
        generated, reference: ``(H, W, 3)`` or ``(B, H, W, 3)`` arrays (any real
            dtype; values are used as given, in units of ``data_range``).
        data_range: dynamic range R of the values (C1 = (0.01 R)^2, C2 = (0.03 R)^2);
            a float, or a ``(B,)`` array for per-image ranges.
        gaussian: Gaussian window (``gaussian_weights=True``: sigma, radius
            ``int(truncate * sigma + 0.5)``) instead of a uniform ``win_size`` window.
        sample_covariance: scale variances by N / (N - 1), N = window pixels.
    Returns:
        float (or ``(B,)`` float64 array): the SSIM map averaged over each
        channel, ``(win - 1) / 2`` pixels cropped at every border, then over
        channels (skimage's ``channel_axis=-1`` behaviour).
    Raises:
        ValueError: shapes differ or an image is smaller than the window.
    """
    _check_pair(generated, reference)
    batched = np.ndim(generated) == 4
    x, y = _as_batch(generated, "generated"), _as_batch(reference, "reference")
    if gaussian:
        r = int(truncate * sigma + 0.5)
        k = _gaussian_kernel(sigma, r)
    else:
        if win_size % 2 != 1:
            raise ValueError(f"win_size must be odd, got {win_size}")
        r = (win_size - 1) // 2
        k = None
    win = 2 * r + 1
    if min(x.shape[2:]) < win:
        raise ValueError(f"images of {tuple(x.shape[2:])} px are smaller than the {win} px window")
    cov_norm = win * win / (win * win - 1) if sample_covariance else 1.0
    dr = torch.as_tensor(np.asarray(data_range, dtype=np.float64)).reshape(-1, 1, 1, 1)
    s, _ = _ssim_map(
        x, y, k, data_range=dr, cov_norm=cov_norm, same=True, box=0 if gaussian else win
    )
    s = s[:, :, r : s.shape[2] - r, r : s.shape[3] - r]
    return _out(s.mean(dim=(2, 3)).mean(dim=1), batched)


def _pad_white(a: np.ndarray, pad: int) -> np.ndarray:
    if pad == 0:
        return np.asarray(a)
    widths = [(0, 0)] * (np.ndim(a) - 3) + [(0, 0), (pad, pad), (0, 0)]
    return np.pad(np.asarray(a), widths, constant_values=255)


def ssim_patn(generated, reference, *, pad: int = PATN_PAD):
    """PATN / Deformable-GAN SSIM (see the module docstring for the exact recipe).

    Args:
        generated, reference: ``(H, W, 3)`` or ``(B, H, W, 3)`` uint8 RGB (0..255).
        pad: white columns added on each side first (40 for 256x176 DeepFashion,
            restoring the 256x256 frame as PATN's ``addBounding`` does; 0 for none).
    Returns:
        float, or ``(B,)`` float64 for a batch.
    """
    g, r = _pad_white(generated, pad), _pad_white(reference, pad)
    axes = tuple(range(g.ndim - 3, g.ndim))
    dr = g.max(axis=axes).astype(np.float64) - g.min(axis=axes).astype(np.float64)
    dr = np.where(dr > 0, dr, 255.0)  # a constant image: skimage would divide by C1 = 0
    return ssim(g, r, data_range=dr, gaussian=True, sigma=1.5, sample_covariance=False)


def ssim_gfla(generated, reference):
    """GFLA / NTED / PIDM SSIM: uniform 51x51 window, sample covariance, images /255, range 1.

    Args:
        generated, reference: ``(H, W, 3)`` or ``(B, H, W, 3)`` uint8 RGB.
    Returns:
        float, or ``(B,)`` float64 for a batch.
    """
    g = np.asarray(generated, dtype=np.float64) / 255.0
    r = np.asarray(reference, dtype=np.float64) / 255.0
    return ssim(g, r, data_range=1.0, gaussian=False, win_size=51, sample_covariance=True)


def ms_ssim(generated, reference, *, data_range: float = 255.0,
            weights: tuple[float, ...] = MS_SSIM_WEIGHTS):  # fmt: skip
    """Multi-scale SSIM (Wang, Simoncelli, Bovik, Asilomar 2003).

    At each of ``len(weights)`` scales the 11x11 Gaussian (sigma 1.5) SSIM terms
    are computed without padding ('valid'); the contrast-structure term cs is
    kept (ReLU'd) at the first scales and the full SSIM at the last, then
    ``prod_j relu(cs_j)^w_j * relu(ssim_M)^w_M`` per channel, averaged over
    channels. Between scales the images are 2x2 average-pooled (zero padding on
    an odd side, counted in the mean), the convention of pytorch-msssim.

    Args:
        generated, reference: ``(H, W, 3)`` or ``(B, H, W, 3)``, values in units
            of ``data_range`` (uint8 RGB with the default 255).
    Returns:
        float, or ``(B,)`` float64 array.
    Raises:
        ValueError: the shorter side is not above 10 * 2^(scales-1) = 160 px.
    """
    _check_pair(generated, reference)
    batched = np.ndim(generated) == 4
    x, y = _as_batch(generated, "generated"), _as_batch(reference, "reference")
    n = len(weights)
    need = (11 - 1) * 2 ** (n - 1)
    if min(x.shape[2:]) <= need:
        raise ValueError(f"MS-SSIM with {n} scales needs a shorter side above {need} px, "
                         f"got {tuple(x.shape[2:])}")  # fmt: skip
    k = _gaussian_kernel(1.5, 5)
    w = torch.tensor(weights, dtype=torch.float64)
    mcs = []
    for i in range(n):
        s, cs = _ssim_map(x, y, k, data_range=data_range, cov_norm=1.0, same=False)
        s, cs = s.mean(dim=(2, 3)), cs.mean(dim=(2, 3))
        if i < n - 1:
            mcs.append(torch.relu(cs))
            pad = [d % 2 for d in x.shape[2:]]
            x = F.avg_pool2d(x, kernel_size=2, padding=pad)
            y = F.avg_pool2d(y, kernel_size=2, padding=pad)
    vals = torch.stack(mcs + [torch.relu(s)], dim=0)  # (n, B, C)
    out = torch.prod(vals ** w.view(-1, 1, 1), dim=0).mean(dim=1)
    return _out(out, batched)


def keypoint_mask(keypoints: np.ndarray, shape: tuple[int, int], radius: int = 4) -> np.ndarray:
    """Ma et al.'s body mask from 18 OpenPose keypoints (PG2; Deformable GAN ``produce_ma_mask``).

    Each limb of the 23-limb list becomes a polygon ``2 * radius`` px wide, each
    joint a disk of ``radius`` px; the union is closed by a 5x5 square dilation
    followed by a 5x5 erosion.

    Args:
        keypoints: ``(18, 2)`` (y, x) pixel coordinates in the image, OpenPose-18
            order (nose, neck, r-shoulder, ...); a coordinate of -1 marks a missing joint.
        shape: (H, W) of the image.
    Returns:
        ``(H, W)`` bool mask.
    """
    from skimage.draw import disk, polygon
    from skimage.morphology import dilation, erosion

    kp = np.asarray(keypoints, dtype=np.float64)
    if kp.shape != (18, 2):
        raise ValueError(f"keypoints: expected (18, 2) (y, x), got shape {kp.shape}")
    missing = (kp == -1).any(axis=1)
    mask = np.zeros(shape, dtype=bool)
    for f, t in _MA_MASK_LIMBS:
        f, t = f - 1, t - 1
        if missing[f] or missing[t]:
            continue
        d = kp[f] - kp[t]
        norm = np.linalg.norm(d)
        if norm == 0:
            continue
        nv = radius * np.array([-d[1], d[0]]) / norm
        v = np.array([kp[f] + nv, kp[f] - nv, kp[t] - nv, kp[t] + nv])
        yy, xx = polygon(v[:, 0], v[:, 1], shape=shape)
        mask[yy, xx] = True
    for j in np.flatnonzero(~missing):
        yy, xx = disk((kp[j, 0], kp[j, 1]), radius, shape=shape)
        mask[yy, xx] = True
    sq = np.ones((5, 5), dtype=bool)
    return erosion(dilation(mask, sq), sq)


def masked_ssim(generated, reference, mask: np.ndarray) -> float:
    """mask-SSIM: PATN SSIM (no padding) of both images multiplied by ``mask``.

    Args:
        generated, reference: ``(H, W, 3)`` uint8 RGB.
        mask: ``(H, W)`` bool or {0, 1}, e.g. :func:`keypoint_mask` of the target.
    Returns:
        float; NaN when the mask is empty (the metric is undefined there).
    """
    m = np.asarray(mask).astype(np.uint8)
    if m.shape != np.shape(generated)[:2]:
        raise ValueError(f"mask {m.shape} does not match the image {np.shape(generated)[:2]}")
    if not m.any():
        return float("nan")
    g = np.asarray(generated) * m[..., None]
    r = np.asarray(reference) * m[..., None]
    return ssim_patn(g, r, pad=0)


def psnr(generated, reference, *, data_range: float = 255.0):
    """Peak signal-to-noise ratio in dB, 10 log10(R^2 / MSE) over all pixels and channels.

    Args:
        generated, reference: ``(H, W, 3)`` or ``(B, H, W, 3)`` in units of ``data_range``.
    Returns:
        float (``inf`` for identical images), or ``(B,)`` float64.
    """
    _check_pair(generated, reference)
    batched = np.ndim(generated) == 4
    x, y = _as_batch(generated, "generated"), _as_batch(reference, "reference")
    mse = ((x - y) ** 2).mean(dim=(1, 2, 3))
    with np.errstate(divide="ignore"):
        out = 10 * torch.log10(data_range**2 / mse)
    return _out(out, batched)


def l1(generated, reference):
    """Mean absolute error of uint8 RGB images divided by 255 (in [0, 1]).

    Returns:
        float, or ``(B,)`` float64 for a batch.
    """
    _check_pair(generated, reference)
    batched = np.ndim(generated) == 4
    x, y = _as_batch(generated, "generated"), _as_batch(reference, "reference")
    return _out((x - y).abs().mean(dim=(1, 2, 3)) / 255.0, batched)


def pair_metrics(generated: np.ndarray, reference: np.ndarray, *,
                 target_keypoints: np.ndarray | None = None,
                 patn_pad: int = 0) -> dict[str, float]:  # fmt: skip
    """All weight-free per-pair metrics of one generated image against its target.

    Args:
        generated, reference: ``(H, W, 3)`` uint8 RGB, same shape.
        target_keypoints: ``(18, 2)`` (y, x) in the image's pixels, -1 = missing;
            without them ``masked_ssim`` is NaN.
        patn_pad: white padding of :func:`ssim_patn` (40 at 256x176, else 0).
    Returns:
        dict with keys ``ssim_patn, ssim_gfla, ms_ssim, masked_ssim, psnr, l1``
        (``ms_ssim`` is NaN below 161 px on the shorter side).
    """
    out = {
        "ssim_patn": ssim_patn(generated, reference, pad=patn_pad),
        "ssim_gfla": ssim_gfla(generated, reference),
    }
    try:
        out["ms_ssim"] = ms_ssim(generated, reference)
    except ValueError:
        out["ms_ssim"] = float("nan")
    if target_keypoints is not None:
        mask = keypoint_mask(target_keypoints, generated.shape[:2])
        out["masked_ssim"] = masked_ssim(generated, reference, mask)
    else:
        out["masked_ssim"] = float("nan")
    out["psnr"] = psnr(generated, reference)
    out["l1"] = l1(generated, reference)
    return out


# ----------------------------------------------------------------------------- set-level math


def frechet_distance(mu1, sigma1, mu2, sigma2, eps: float = 1e-6) -> float:
    """Frechet distance of two Gaussians: |mu1 - mu2|^2 + Tr(S1 + S2 - 2 (S1 S2)^(1/2)).

    The matrix square root is scipy's ``sqrtm``; when it is not finite, ``eps``
    is added to both diagonals (as in TTUR / pytorch-fid). Heusel et al. 2017, eq. 6.

    Args:
        mu1, mu2: ``(D,)`` means; sigma1, sigma2: ``(D, D)`` covariances.
    Returns:
        float (>= 0 up to rounding).
    """
    from scipy import linalg

    mu1, mu2 = np.atleast_1d(mu1).astype(np.float64), np.atleast_1d(mu2).astype(np.float64)
    s1, s2 = np.atleast_2d(sigma1).astype(np.float64), np.atleast_2d(sigma2).astype(np.float64)
    if mu1.shape != mu2.shape or s1.shape != s2.shape:
        raise ValueError(
            f"statistics differ in shape: {mu1.shape}/{s1.shape} vs {mu2.shape}/{s2.shape}"
        )
    diff = mu1 - mu2
    covmean = linalg.sqrtm(s1.dot(s2))
    if not np.isfinite(covmean).all():
        off = np.eye(s1.shape[0]) * eps
        covmean = linalg.sqrtm((s1 + off).dot(s2 + off))
    covmean = np.real(covmean)
    return float(diff.dot(diff) + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean))


def inception_score_from_probs(probs: np.ndarray, splits: int = 10) -> tuple[float, float]:
    """Inception score (Salimans et al. 2016) from class probabilities.

    Args:
        probs: ``(N, K)`` softmax outputs, rows summing to 1.
        splits: the images are cut into this many consecutive chunks (at most N).
    Returns:
        (mean, std) over the splits of ``exp(mean_x KL(p(y|x) || p(y)))``.
    """
    p = np.asarray(probs, dtype=np.float64)
    splits = max(1, min(splits, len(p)))
    scores = []
    for part in np.array_split(p, splits):
        py = part.mean(axis=0, keepdims=True)
        kl = (part * (np.log(part + 1e-12) - np.log(py + 1e-12))).sum(axis=1)
        scores.append(math.exp(kl.mean()))
    return float(np.mean(scores)), float(np.std(scores))


# ----------------------------------------------------------------------------- weights


def sha256_file(path: str | os.PathLike) -> str:
    """Hex SHA-256 of a file (for checkpoint provenance in ``metrics.json``)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _torch_cache_dir() -> Path:
    return Path(torch.hub.get_dir()) / "checkpoints"


def find_cached_weights(filename: str) -> Path | None:
    """``filename`` in the torch hub cache (``$TORCH_HOME/hub/checkpoints``), never downloading."""
    p = _torch_cache_dir() / filename
    return p if p.is_file() else None


@dataclass
class WeightSource:
    """Where a network's weights come from: a user path, else the torch cache.

    Attributes:
        filename: the torchvision / hub cache file name looked for.
        path: a user-given path (takes precedence); None to use the cache only.
    """

    filename: str
    path: str | None = None

    def resolve(self) -> tuple[Path | None, str]:
        """Returns (path, '') when found, else (None, reason)."""
        if self.path:
            p = Path(self.path)
            if p.is_file():
                return p, ""
            return None, f"weights file {self.path} not found"
        p = find_cached_weights(self.filename)
        if p is not None:
            return p, ""
        return None, (f"weights {self.filename} are not in the torch cache "
                      f"({_torch_cache_dir()}) and no path was given")  # fmt: skip


ALEXNET_FILE = "alexnet-owt-7be5be79.pth"
INCEPTION_TV_FILE = "inception_v3_google-0cc3c7bd.pth"
INCEPTION_FID_FILE = "pt_inception-2015-12-05-6726825d.pth"
SSD_FILE = "ssd300_vgg16_coco-b556d3b4.pth"


def _load_state(path: Path) -> dict:
    state = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    return state


class _LPIPS:
    """LPIPS v0.1 AlexNet with the trunk loaded from a file (never downloaded)."""

    def __init__(self, alexnet_path: Path):
        import lpips
        import torchvision

        with warnings.catch_warnings():  # lpips passes torchvision's deprecated pretrained=False
            warnings.simplefilter("ignore", UserWarning)
            model = lpips.LPIPS(net="alex", version="0.1", pretrained=True, pnet_rand=True,
                                verbose=False)  # fmt: skip
        feats = torchvision.models.alexnet(weights=None).features
        state = _load_state(alexnet_path)  # the full AlexNet, or only its features.*
        feats.load_state_dict({k[9:]: v for k, v in state.items() if k.startswith("features.")})
        for sl in (model.net.slice1, model.net.slice2, model.net.slice3, model.net.slice4,
                   model.net.slice5):  # fmt: skip
            for name, mod in sl.named_children():
                mod.load_state_dict(feats[int(name)].state_dict())
        self.model = model.eval()
        self.head_file = Path(lpips.__file__).parent / "weights" / "v0.1" / "alex.pth"

    @torch.no_grad()
    def __call__(self, generated: np.ndarray, reference: np.ndarray) -> float:
        g = _as_batch(generated, "generated").float() / 127.5 - 1
        r = _as_batch(reference, "reference").float() / 127.5 - 1
        return float(self.model(g, r).flatten()[0])


class _SSDScore:
    """Max COCO-person confidence of torchvision's SSD300-VGG16 (detection score DS)."""

    def __init__(self, path: Path):
        from torchvision.models.detection import ssd300_vgg16

        model = ssd300_vgg16(weights=None, weights_backbone=None, num_classes=91)
        model.load_state_dict(_load_state(path))
        self.model = model.eval()

    @torch.no_grad()
    def __call__(self, image: np.ndarray) -> float:
        x = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1).float() / 255.0
        det = self.model([x])[0]
        person = det["scores"][det["labels"] == 1]
        return float(person.max()) if person.numel() else 0.0


def _fid_inception(num_classes: int):
    """Inception-v3 with the TF-FID patches (pytorch-fid's FIDInception blocks) when 1008 classes.

    The 2015-12-05 TensorFlow graph's average pools exclude padding and its last
    block's pool branch uses max pooling; torchvision's blocks are patched
    accordingly (Heusel et al. 2017's reference network).
    """
    import torchvision
    from torchvision.models import inception as inc

    model = torchvision.models.inception_v3(weights=None, aux_logits=False, init_weights=False,
                                            num_classes=num_classes, transform_input=False)  # fmt: skip
    if num_classes != 1008:
        return model

    def avg(x):
        return F.avg_pool2d(x, kernel_size=3, stride=1, padding=1, count_include_pad=False)

    class A(inc.InceptionA):
        def _forward(self, x):
            b1 = self.branch1x1(x)
            b5 = self.branch5x5_2(self.branch5x5_1(x))
            b3 = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
            return [b1, b5, b3, self.branch_pool(avg(x))]

    class C(inc.InceptionC):
        def _forward(self, x):
            b1 = self.branch1x1(x)
            b7 = self.branch7x7_3(self.branch7x7_2(self.branch7x7_1(x)))
            bd = x
            for m in (self.branch7x7dbl_1, self.branch7x7dbl_2, self.branch7x7dbl_3,
                      self.branch7x7dbl_4, self.branch7x7dbl_5):  # fmt: skip
                bd = m(bd)
            return [b1, b7, bd, self.branch_pool(avg(x))]

    class E(inc.InceptionE):
        def __init__(self, in_channels, use_max):
            super().__init__(in_channels)
            self.use_max = use_max

        def _forward(self, x):
            b1 = self.branch1x1(x)
            b3 = self.branch3x3_1(x)
            b3 = torch.cat([self.branch3x3_2a(b3), self.branch3x3_2b(b3)], 1)
            bd = self.branch3x3dbl_2(self.branch3x3dbl_1(x))
            bd = torch.cat([self.branch3x3dbl_3a(bd), self.branch3x3dbl_3b(bd)], 1)
            pool = F.max_pool2d(x, 3, stride=1, padding=1) if self.use_max else avg(x)
            return [b1, b3, bd, self.branch_pool(pool)]

    model.Mixed_5b, model.Mixed_5c, model.Mixed_5d = A(192, 32), A(256, 64), A(288, 64)
    model.Mixed_6b = C(768, 128)
    model.Mixed_6c, model.Mixed_6d, model.Mixed_6e = C(768, 160), C(768, 160), C(768, 192)
    model.Mixed_7b, model.Mixed_7c = E(1280, False), E(2048, True)
    return model


class _Inception:
    """Inception-v3 pool3 features (2048-d) and softmax, from a weights file."""

    def __init__(self, path: Path):
        state = _load_state(path)
        fc = state.get("fc.weight")
        if fc is None:
            raise ValueError(f"{path} holds no Inception-v3 state dict (no fc.weight)")
        self.num_classes = int(fc.shape[0])
        self.tf_fid = self.num_classes == 1008
        state = {k: v for k, v in state.items() if not k.startswith("AuxLogits.")}
        self.model = _fid_inception(self.num_classes)
        self.model.load_state_dict(state)
        self.model.eval()
        self.network = (
            "TF Inception-v3 2015-12-05 (pytorch-fid pt_inception weights, FID-patched blocks, "
            "inputs scaled to [-1, 1])"
            if self.tf_fid
            else "torchvision Inception-v3 ImageNet weights (inputs ImageNet-normalised; "
            "not comparable with TF-Inception FID figures)"
        )

    @torch.no_grad()
    def __call__(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(B, H, W, 3) uint8 -> (pool3 (B, 2048) float64, softmax (B, K) float64)."""
        x = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float() / 255.0
        x = F.interpolate(x, size=(299, 299), mode="bilinear", align_corners=False)
        if self.tf_fid:
            x = 2 * x - 1
        else:
            mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
            std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
            x = (x - mean) / std
        m = self.model
        feats = {}
        h = m.avgpool.register_forward_hook(lambda mod, i, o: feats.__setitem__("pool", o))
        try:
            logits = m(x)
        finally:
            h.remove()
        pool = feats["pool"].flatten(1).double().numpy()
        if self.tf_fid:
            logits = logits[:, 1:1001]  # the TF graph's 1008 outputs: 0 background, 1..1000 classes
        return pool, torch.softmax(logits.double(), dim=1).numpy()


@dataclass
class NetworkMetrics:
    """The metrics that need trained networks, each loaded only when its weights exist.

    Args:
        lpips_alexnet: AlexNet ImageNet weights (``alexnet-owt-7be5be79.pth``) path,
            or None to look in the torch cache.
        inception: Inception-v3 weights for FID and IS: pytorch-fid's
            ``pt_inception-2015-12-05-6726825d.pth`` (TF-FID, preferred) or
            torchvision's ``inception_v3_google-0cc3c7bd.pth``; None: the cache.
        ssd: torchvision ``ssd300_vgg16_coco-b556d3b4.pth`` for DS; None: the cache.
        enabled: metric names to try (subset of lpips, fid, is, ds).

    After construction, ``available`` maps each metric to True/False and
    ``reasons`` gives the reason of each unavailable one; ``weights`` maps
    each loaded file to its SHA-256.
    """

    lpips_alexnet: str | None = None
    inception: str | None = None
    ssd: str | None = None
    enabled: tuple[str, ...] = ("lpips", "fid", "is", "ds")
    available: dict[str, bool] = field(default_factory=dict)
    reasons: dict[str, str] = field(default_factory=dict)
    weights: dict[str, str] = field(default_factory=dict)

    def __post_init__(self):
        self._lpips = self._ssd = self._inception = None
        if "lpips" in self.enabled:
            self._lpips = self._try("lpips", WeightSource(ALEXNET_FILE, self.lpips_alexnet), _LPIPS)
            if self._lpips is not None:
                self.weights[str(self._lpips.head_file)] = sha256_file(self._lpips.head_file)
        if "ds" in self.enabled:
            self._ssd = self._try("ds", WeightSource(SSD_FILE, self.ssd), _SSDScore)
        if {"fid", "is"} & set(self.enabled):
            src = WeightSource(INCEPTION_FID_FILE, self.inception)
            if self.inception is None and find_cached_weights(INCEPTION_FID_FILE) is None:
                src = WeightSource(INCEPTION_TV_FILE, None)
            inc = self._try("fid", src, _Inception)
            self._inception = inc
            for name in ("fid", "is"):
                if name in self.enabled:
                    self.available[name] = inc is not None
                    if inc is None:
                        self.reasons[name] = self.reasons.get("fid", "")
        for name in ("lpips", "fid", "is", "ds"):
            if name not in self.enabled:
                self.available[name] = False
                self.reasons[name] = "disabled by the user"

    def _try(self, name, source: WeightSource, build):
        path, reason = source.resolve()
        if path is None:
            if source.path is None and source.filename == INCEPTION_TV_FILE:
                reason = (f"neither {INCEPTION_FID_FILE} nor {INCEPTION_TV_FILE} is in the "
                          f"torch cache ({_torch_cache_dir()}) and no path was given")  # fmt: skip
            self.available[name], self.reasons[name] = False, reason
            return None
        try:
            net = build(path)
        except Exception as e:  # a wrong or corrupt file: report, never fall back to random
            self.available[name] = False
            self.reasons[name] = f"cannot load {path}: {type(e).__name__}: {e}"
            return None
        self.available[name] = True
        self.weights[str(path)] = sha256_file(path)
        return net

    @property
    def inception_network(self) -> str | None:
        return self._inception.network if self._inception is not None else None

    @property
    def inception_classes(self) -> int | None:
        return 1000 if self._inception is not None else None

    def pair(self, generated: np.ndarray, reference: np.ndarray) -> dict[str, float]:
        """Per-pair network metrics that are available: ``lpips`` and ``ds`` (of ``generated``)."""
        out = {}
        if self._lpips is not None:
            out["lpips"] = self._lpips(generated, reference)
        if self._ssd is not None:
            out["ds"] = self._ssd(generated)
        return out

    def inception_features(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(B, H, W, 3) uint8 -> (pool3 features (B, 2048), class probabilities (B, 1000))."""
        if self._inception is None:
            raise RuntimeError("Inception weights are unavailable: " + self.reasons.get("fid", ""))
        return self._inception(images)
