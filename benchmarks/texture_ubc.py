"""Texture completion on the real UBC Fashion turning video: network versus classical fill.

The texture is lifted (``image_to_uv``) from one front-facing frame and completed
by both methods; each back-facing frame's own lifted texture is what that view
observes. Scored on the texels seen only in back-facing frames (not in the front
frame): masked L1 (mean |difference| in [0, 1]) and SSIM (scikit-image map,
Gaussian sigma 1.5, data_range 1, averaged over those texels) against the mean
of the back frames' observations. Facing is read from DensePose's IUV maps
shipped with the frames (torso-back pixels, part 1, against torso-front, part 2).
Every frame goes through reroute's own front end (BlazePose + anny fit), ~10 s each.

    python benchmarks/texture_ubc.py [--back 4] [--checkpoint checkpoints/texture_completion_cpu256.pt]
"""

from __future__ import annotations

import argparse
import time

from _common import SHARED_DATA, emit, peak_rss_mb, require


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--back", type=int, default=4, help="number of back-facing frames")
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--texture-size", type=int, default=256)
    ap.add_argument("--checkpoint")
    a = ap.parse_args()

    import cv2
    import numpy as np
    import torch

    from reroute.correspondence.analyse import analyse_person
    from reroute.uv.texture import uv_layout_mask
    from reroute.uv.warp import image_to_uv
    from texture import complete_texture
    from texture.classical import complete_classical
    from texture.evaluate import unseen_metrics

    torch.set_num_threads(1)
    root = require(SHARED_DATA / "video" / "ubc_fashion_1")
    frames = sorted(p for p in root.glob("frame*.png") if not p.stem.endswith("_IUV"))
    facing = {}
    for f in frames:
        iuv = cv2.imread(str(f.with_name(f.stem + "_IUV.png")))
        if iuv is None:
            continue
        back, front = int((iuv[..., 0] == 1).sum()), int((iuv[..., 0] == 2).sum())
        facing[f] = (front - back) / max(1, front + back)
    front_frame = max(facing, key=facing.get)
    backs = sorted((f for f in facing if facing[f] < -0.8), key=facing.get)
    step = max(1, len(backs) // a.back)
    backs = backs[::step][: a.back]
    t0 = time.perf_counter()
    T = a.texture_size
    lay = uv_layout_mask(T)

    def lift(f):
        pa = analyse_person(str(f), size=a.size, name=f.name)
        return image_to_uv(pa.image, pa.correspondence, T)

    front = lift(front_frame)
    acc = np.zeros((T, T, 3), np.float64)
    cnt = np.zeros((T, T), np.float64)
    used, failed = [], []
    for f in backs:
        try:
            tex = lift(f)
        except Exception as e:  # noqa: BLE001 - a failed fit is counted, not fatal
            failed.append(f"{f.name}: {e}")
            continue
        v = tex.visibility > 0.5
        acc[v] += tex.pixels[v]
        cnt[v] += 1
        used.append(f.name)
    seen_back = (cnt > 0) & lay
    only_back = seen_back & ~(front.visibility > 0.5)
    ref = np.where(seen_back[..., None], acc / np.maximum(cnt, 1)[..., None], 0).astype(np.float32)
    out = {
        "front_frame": front_frame.name, "back_frames": used, "failed": failed,
        "texels_scored": int(only_back.sum()),
        "front_visible_fraction": float(((front.visibility > 0.5) & lay).sum() / lay.sum()),
    }  # fmt: skip
    classical = complete_classical(front).pixels
    out["classical"] = unseen_metrics(classical, ref, only_back)
    try:
        net = complete_texture(front, "network", a.checkpoint).pixels
        out["network"] = unseen_metrics(net, ref, only_back)
    except Exception as e:  # noqa: BLE001
        out["network"] = f"unavailable: {e}"
    out["wall_s"] = round(time.perf_counter() - t0, 1)
    out["peak_rss_mb"] = round(peak_rss_mb(), 1)
    emit(out)


if __name__ == "__main__":
    main()
