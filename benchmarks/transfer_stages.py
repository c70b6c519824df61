"""Per-stage CPU time and peak memory of one pose transfer at 256 and 512 px.

Models are loaded and warmed by one untimed transfer first, so the figures are
"after models are loaded". Stages: pose (mediapipe, both photos), fit (anny,
both photos), render (correspondences, both), warp (lift to UV + warp back +
composite), completion (classical fill), rerender (the neural re-renderer).
Each size runs without the re-renderer (``"256"``) and, when its checkpoint
loads, with it (``"256+rerender"``); no analysis cache, so every repeat
analyses both photos again. Uses a DeepFashion pair from ../shared/data when
present, else two synthetic anny renders. Run it from an older checkout
(``python /old/checkout/benchmarks/transfer_stages.py``) for the "before".

    python benchmarks/transfer_stages.py [--sizes 256 512] [--repeats 3] [--no-rerender]
"""

from __future__ import annotations

import argparse
import sys
import time

from _common import SHARED_DATA, emit, peak_rss_mb


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", type=int, nargs="+", default=[256, 512])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--no-rerender", action="store_true", help="skip the re-renderer runs")
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
    variants = [("", {})]
    if not args.no_rerender:
        try:
            from renderer import load_default_rerenderer

            load_default_rerenderer()
            variants.append(("+rerender", {"rerender": "network"}))
        except Exception as e:  # noqa: BLE001 - report why, time the rest
            print(f"re-renderer not timed: {e}", file=sys.stderr)
    for _, kw in variants:  # load and warm up, untimed
        PoseTransferPipeline(size=min(args.sizes), **kw)(src, tgt)
    out = {"data": data, "torch_threads": torch.get_num_threads(), "sizes": {}}
    for size in args.sizes:
        for suffix, kw in variants:
            pipe = PoseTransferPipeline(size=size, **kw)
            runs = []
            for _ in range(args.repeats):
                t = time.perf_counter()
                res = pipe(src, tgt)
                runs.append(dict(res.timings, wall=time.perf_counter() - t))
            key = f"{size}{suffix}"
            out["sizes"][key] = {
                k: round(float(np.median([r.get(k, 0.0) for r in runs])), 3) for k in runs[0]
            }
            out["sizes"][key]["peak_rss_mb_so_far"] = round(peak_rss_mb(), 1)
    out["peak_rss_mb"] = round(peak_rss_mb(), 1)
    emit(out)


if __name__ == "__main__":
    main()
