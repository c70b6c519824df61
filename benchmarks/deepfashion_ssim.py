"""Pose transfer on the 18 real DeepFashion pairs: SSIM vs the real target photo.

SSIM is scikit-image's ``structural_similarity`` on grayscale (``rgb2gray``,
data_range 1) at the target's size, for reroute's output and for the baseline
that returns the source photo unchanged. Prints JSON: means, per-pair values
and mean per-stage CPU timings.

    python benchmarks/deepfashion_ssim.py [--limit N] [--size 256]
"""

from __future__ import annotations

import argparse
import csv
import time
from pathlib import Path

from _common import SHARED_DATA, emit, peak_rss_mb, require


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--limit", type=int, default=None)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--save-dir", default=None, help="write outputs here")
    args = ap.parse_args()
    root = require(SHARED_DATA / "deepfashion")
    import numpy as np
    from skimage.color import rgb2gray
    from skimage.metrics import structural_similarity

    from reroute.io.images import load_image
    from reroute.pipelines.pose_transfer import PoseTransferPipeline

    with open(root / "pairs.csv") as f:
        pairs = [(Path(r["from"]).stem, Path(r["to"]).stem) for r in csv.DictReader(f)]
    pairs = pairs[: args.limit] if args.limit else pairs
    pipe = PoseTransferPipeline(size=args.size)
    rows, stage = [], {}
    t0 = time.perf_counter()
    for a, b in pairs:
        src = root / "images" / f"{a}.png"
        tgt = root / "images" / f"{b}.png"
        res = pipe(src, tgt)
        target = load_image(tgt).pixels
        source = load_image(src).pixels
        g = lambda im: rgb2gray(im)  # noqa: E731
        s_out = structural_similarity(g(res.image), g(target), data_range=1.0)
        s_src = structural_similarity(g(source), g(target), data_range=1.0)
        rows.append(
            {
                "source": a,
                "target": b,
                "ssim_reroute": round(float(s_out), 4),
                "ssim_source_unchanged": round(float(s_src), 4),
            }
        )
        for k, v in res.timings.items():
            stage.setdefault(k, []).append(v)
        if args.save_dir:
            from reroute.io.images import save_image_atomic

            save_image_atomic(
                Path(args.save_dir) / f"{a}__{b}.png",
                np.concatenate([source, res.image, target], 1),
            )
    emit(
        {
            "pairs": len(rows),
            "size": args.size,
            "mean_ssim_reroute": round(float(np.mean([r["ssim_reroute"] for r in rows])), 4),
            "mean_ssim_source_unchanged": round(
                float(np.mean([r["ssim_source_unchanged"] for r in rows])), 4
            ),
            "reroute_wins": sum(r["ssim_reroute"] > r["ssim_source_unchanged"] for r in rows),
            "mean_stage_seconds": {k: round(float(np.mean(v)), 3) for k, v in stage.items()},
            "wall_seconds": round(time.perf_counter() - t0, 1),
            "peak_rss_mb": round(peak_rss_mb(), 1),
            "per_pair": rows,
        }
    )


if __name__ == "__main__":
    main()
