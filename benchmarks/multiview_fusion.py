"""Pose transfer from several photos of one person: one source view against views fused.

Sets (read from ``../shared/data``):

* ``ubc``: ``video/ubc_fashion_1``, a woman turning 360 degrees in a check
  dress. Sources: frame 0 (front) and ``--back`` (default 201, her back);
  targets: every ``--stride``-th stored frame that is not a source (default
  24: 15 frames round the turn). Each target is made from the front alone, the
  back alone, and both fused (:func:`reroute.uv.texture.fuse_textures`).
* ``deepfashion``: the dev photos of ``deepfashion/images`` whose item has three
  or more views; each view is the target of the others, singly and fused.

Metrics against the real target frame, 256x256: grayscale SSIM (scikit-image
``structural_similarity`` on ``rgb2gray``, data_range 1) and the mean absolute
error inside the target's person mask (0-255 RGB); ``detail``, the mean 7x7 local
grayscale standard deviation inside that mask over the real frame's (how much of
the garment's pattern is drawn: a flat fill of an unseen side scores far under 1,
where SSIM barely moves). Every photo is analysed once
(an :class:`~reroute.correspondence.cache.AnalysisCache`). Prints JSON: per-target
values, means per method, and per target the fused result against the mean and
the best (an oracle: which view is best is not known beforehand) of the single views.

    python benchmarks/multiview_fusion.py [--set ubc|deepfashion] [--stride 24]
        [--back 201] [--rerender none|network] [--save-dir DIR]
"""

from __future__ import annotations

import argparse
import re
import time
from collections import defaultdict
from pathlib import Path

from _common import SHARED_DATA, emit, peak_rss_mb, require


def _ubc_cases(stride: int, back: int) -> list[dict]:
    d = require(SHARED_DATA / "video" / "ubc_fashion_1")
    frames = sorted(p for p in d.glob("frame*.png") if not p.stem.endswith("_IUV"))
    by_index = {int(p.stem[5:]): p for p in frames}
    if back not in by_index:
        raise SystemExit(f"--back {back}: no stored frame (every 3rd frame is stored)")
    front = by_index[0]
    cases = []
    for i, p in enumerate(frames):
        if i % max(1, stride // 3) != stride // 6 or p in (front, by_index[back]):
            continue
        cases.append({"target": p, "sources": {"front": [front], "back": [by_index[back]],
                                               "fused": [front, by_index[back]]}})  # fmt: skip
    return cases


def _deepfashion_cases() -> list[dict]:
    d = require(SHARED_DATA / "deepfashion" / "images")
    items = defaultdict(list)
    for p in sorted(d.glob("*.png")):
        items[re.sub(r"_\d[a-z]+$", "", p.stem)].append(p)
    cases = []
    for views in items.values():
        if len(views) < 3:
            continue
        for t in views:
            others = [v for v in views if v != t]
            sources = {v.stem.rsplit("_", 1)[1]: [v] for v in others}
            sources["fused"] = others
            cases.append({"target": t, "sources": sources})
    return cases


def _local_std(image, mask) -> float:
    """Mean 7x7 local standard deviation of the grayscale ``image`` (H, W, 3) in [0, 1]
    inside ``mask`` (H, W) bool: how much pattern a region shows (a flat fill: ~0)."""
    import cv2
    from skimage.color import rgb2gray

    g = rgb2gray(image)
    mean = cv2.blur(g, (7, 7))
    var = cv2.blur(g * g, (7, 7)) - mean * mean
    return float(var.clip(0).__pow__(0.5)[mask].mean())


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--set", choices=["ubc", "deepfashion"], default="ubc")
    ap.add_argument("--stride", type=int, default=24, help="ubc: target every N-th video frame")
    ap.add_argument("--back", type=int, default=201, help="ubc: the back view's frame number")
    ap.add_argument("--rerender", choices=["none", "network"], default="none")
    ap.add_argument("--save-dir", default=None, help="write each output PNG here")
    args = ap.parse_args()
    import numpy as np
    from skimage.color import rgb2gray
    from skimage.metrics import structural_similarity

    from reroute.correspondence.cache import AnalysisCache
    from reroute.io.images import load_image, save_image_atomic
    from reroute.pipelines.pose_transfer import PoseTransferPipeline

    cases = _ubc_cases(args.stride, args.back) if args.set == "ubc" else _deepfashion_cases()
    pipe = PoseTransferPipeline(size=256, rerender=args.rerender, cache=AnalysisCache(64))
    save = Path(args.save_dir) if args.save_dir else None
    if save:
        save.mkdir(parents=True, exist_ok=True)
    rows, t0 = [], time.perf_counter()
    for case in cases:
        real = load_image(case["target"]).pixels
        row = {"target": case["target"].stem, "ssim": {}, "mask_mae": {}, "detail": {}}
        for method, sources in case["sources"].items():
            res = pipe([str(s) for s in sources], str(case["target"]))
            out = res.image.astype(np.float64) / 255.0
            gt = real.astype(np.float64) / 255.0
            row["ssim"][method] = round(float(structural_similarity(
                rgb2gray(out), rgb2gray(gt), data_range=1.0)), 4)  # fmt: skip
            m = res.target.correspondence.mask
            if m.shape == real.shape[:2]:
                diff = np.abs(res.image.astype(np.float64) - real)[m]
                row["mask_mae"][method] = round(float(diff.mean()), 2)
                row["detail"][method] = round(_local_std(out, m) / _local_std(gt, m), 3)
            if save:
                save_image_atomic(save / f"{case['target'].stem}__{method}.png", res.image)
        rows.append(row)
    means = {}
    for key in ("ssim", "mask_mae", "detail"):
        by = defaultdict(list)
        for r in rows:
            for k, v in r[key].items():
                by[k].append(v)
        means[key] = {k: round(float(np.mean(v)), 4) for k, v in by.items()}
    summary = {}
    for key in ("ssim", "detail"):  # per target: the mean and the best of the single views
        singles = [[v for k, v in r[key].items() if k != "fused"] for r in rows if r[key]]
        summary[key] = {"fused": means[key]["fused"],
                        "single_view_mean": round(float(np.mean([np.mean(s) for s in singles])), 4),
                        "best_single_view": round(float(np.mean([max(s) for s in singles])), 4)}  # fmt: skip
    wins = sum(r["ssim"]["fused"] > max(v for k, v in r["ssim"].items() if k != "fused")
               for r in rows)  # fmt: skip
    emit({"set": args.set, "rerender": args.rerender, "targets": len(rows), "means": means,
          "summary": summary, "fused_beats_every_single_view": wins, "rows": rows,
          "seconds": round(time.perf_counter() - t0, 1), "peak_rss_mb": round(peak_rss_mb())})  # fmt: skip


if __name__ == "__main__":
    main()
