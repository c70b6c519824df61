"""Held-out evaluation of texture completion: network versus classical fill.

On each held-out partial/full pair (a :class:`texture.data.TextureCache` rendered
with a seed and identities never used in training), both methods complete the
partial texture and are scored **only on the texels the input did not see**
(inside the UV islands):

* L1: mean absolute error in [0, 1] units over those texels and the 3 channels;
* SSIM: scikit-image ``structural_similarity`` map (Gaussian window sigma 1.5,
  population covariance, data_range 1, per channel) averaged over those texels.

LPIPS is not computed: its AlexNet/VGG backbone weights are not available
offline (reported as unavailable, never substituted).
"""

from __future__ import annotations

import numpy as np

from reroute.uv.texture import UVTexture
from texture.classical import complete_classical
from texture.network import TextureUNet, complete_network

__all__ = ["unseen_metrics", "evaluate_heldout"]


def unseen_metrics(pred: np.ndarray, target: np.ndarray, unseen: np.ndarray) -> dict[str, float]:
    """L1 and SSIM over ``unseen`` texels.

    Args:
        pred, target: (T, T, 3) float in [0, 1]; unseen: (T, T) bool.
    Returns:
        {"l1": float, "ssim": float}; NaN when ``unseen`` is empty.
    """
    from skimage.metrics import structural_similarity

    if not unseen.any():
        return {"l1": float("nan"), "ssim": float("nan")}
    l1 = float(np.abs(pred - target)[unseen].mean())
    _, smap = structural_similarity(pred, target, data_range=1.0, channel_axis=-1, full=True,
                                    gaussian_weights=True, sigma=1.5,
                                    use_sample_covariance=False)  # fmt: skip
    return {"l1": l1, "ssim": float(smap.mean(-1)[unseen].mean())}


def evaluate_heldout(model: TextureUNet | None, cache, limit: int | None = None) -> dict:
    """Score classical fill (and the network, when given) on a held-out cache.

    Returns:
        {"pairs": n, "unseen_fraction": mean share of island texels unseen,
        "classical": {"l1", "ssim"}, "network": {"l1", "ssim"} (if model),
        "lpips": "unavailable: ..."}; each figure is the mean over pairs.
    """
    n_id, k = cache.visibility.shape[:2]
    lay = cache.layout
    res: dict[str, list] = {"classical": [], "network": []}
    frac = []
    count = 0
    for i in range(n_id):
        full = cache.textures[i].astype(np.float32) / 255.0
        full = np.where(lay[..., None], full, 0.0).astype(np.float32)
        for v in range(k):
            if limit is not None and count >= limit:
                break
            vis = cache.visibility[i, v] & lay
            unseen = lay & ~vis
            partial = UVTexture(np.where(vis[..., None], full, 0.0).astype(np.float32),
                                vis.astype(np.float32))  # fmt: skip
            res["classical"].append(
                unseen_metrics(complete_classical(partial).pixels, full, unseen)
            )
            if model is not None:
                res["network"].append(unseen_metrics(complete_network(partial, model).pixels,
                                                     full, unseen))  # fmt: skip
            frac.append(unseen.sum() / lay.sum())
            count += 1
    out = {"pairs": count, "unseen_fraction": float(np.mean(frac))}
    for name, rows in res.items():
        if rows:
            out[name] = {m: float(np.nanmean([r[m] for r in rows])) for m in ("l1", "ssim")}
    out["lpips"] = "unavailable: no AlexNet/VGG LPIPS weights offline"
    return out
