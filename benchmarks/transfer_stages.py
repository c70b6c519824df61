"""Per-stage CPU time and peak memory of one pose transfer at 256 and 512 px.

Models are loaded and warmed by one untimed transfer first, so the figures are
"after models are loaded". Stages: pose (mediapipe, both photos), fit (anny,
both photos), render (correspondences, both), warp (lift to UV + warp back +
composite), completion (classical fill). Uses a DeepFashion pair from
../shared/data when present, else two synthetic anny renders.

    python benchmarks/transfer_stages.py [--sizes 256 512] [--repeats 2]
"""

from __future__ import annotations

import argparse
import time

from _common import SHARED_DATA, emit, peak_rss_mb


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", type=int, nargs="+", default=[256, 512])
    ap.add_argument("--repeats", type=int, default=2)
    args = ap.parse_args()
    import numpy as np
    import torch

    from reroute.pipelines.pose_transfer import PoseTransferPipeline

    imgs = SHARED_DATA / "deepfashion" / "images"
    if imgs.exists():
        src = imgs / "fashionMENShirts_Polosid0000154003_1front.png"
        tgt = imgs / "fashionMENShirts_Polosid0000154003_2side.png"
        data = "deepfashion pair " + src.stem + " -> " + tgt.stem
    else:
        from reroute.synth.engine import render_synthetic_person

        src = render_synthetic_person(None, size=512, seed=0).image
        tgt = render_synthetic_person(None, size=512, seed=1, yaw_deg=30).image
        data = "synthetic anny renders"
    PoseTransferPipeline(size=min(args.sizes))(src, tgt)  # load and warm up, untimed
    out = {"data": data, "torch_threads": torch.get_num_threads(), "sizes": {}}
    for size in args.sizes:
        pipe = PoseTransferPipeline(size=size)
        runs = []
        for _ in range(args.repeats):
            t = time.perf_counter()
            res = pipe(src, tgt)
            runs.append(dict(res.timings, wall=time.perf_counter() - t))
        out["sizes"][str(size)] = {
            k: round(float(np.median([r[k] for r in runs])), 3) for k in runs[0]
        }
        out["sizes"][str(size)]["peak_rss_mb_so_far"] = round(peak_rss_mb(), 1)
    out["peak_rss_mb"] = round(peak_rss_mb(), 1)
    emit(out)


if __name__ == "__main__":
    main()
