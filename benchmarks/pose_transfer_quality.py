"""Pose-transfer quality on real DeepFashion photos, next to PG2's released outputs.

Sets (all 256x256, read from ``../shared/data/deepfashion``):

* ``pg2``: the 100 pairs of ``pg2_pairs/`` with PG2's output for each (Ma et
  al., NeurIPS 2017): reroute, PG2 and the identity baseline (the source photo
  unchanged) against the real target; ``--split heldout`` keeps pairs 080-099
  by sorted name (the rest train the networks);
* ``dev``: the 18 pairs of ``pairs.csv`` (reroute and identity);
* ``identity``: ``transfer X X`` for the 36 photos of the 18 dev pairs (an
  identity transfer should return the photo).

Metrics: grayscale SSIM (scikit-image ``structural_similarity`` on ``rgb2gray``,
data_range 1) and PATN SSIM (:func:`reroute.metrics.image.ssim_patn`, 256x256,
no padding). Prints JSON (means, wins against PG2, per-pair values). With
``--rerender network`` the committed neural re-renderer runs after the warp (the
default of ``reroute transfer``); it was trained on pg2 pairs 000-079, so on
``--set pg2 --split all`` the means are also given per split (``by_split``):
only ``heldout`` is a fair figure for it.

    python benchmarks/pose_transfer_quality.py --set pg2 [--limit N] [--texture classical]
        [--rerender none|network] [--correspondence fit|bodymap] [--save-dir DIR]
"""

from __future__ import annotations

import argparse
import csv
import time
from pathlib import Path

from _common import SHARED_DATA, emit, peak_rss_mb, require


def _pairs(root: Path, which: str, split: str) -> list[dict]:
    if which == "pg2":
        with open(root / "pg2_pairs" / "pairs.csv", newline="") as f:
            rows = sorted(csv.DictReader(f), key=lambda r: r["name"])
        d = root / "pg2_pairs"
        out = [{"name": r["name"], "source": d / r["source"], "target": d / r["target"],
                "peer": d / r["pg2_output"], "split": "train" if i < 80 else "heldout"}
               for i, r in enumerate(rows)]  # fmt: skip
        if split == "heldout":
            out = out[80:]
        elif split == "train":
            out = out[:80]
        return out
    with open(root / "pairs.csv", newline="") as f:
        pairs = [(Path(r["from"].strip()).stem, Path(r["to"].strip()).stem)
                 for r in csv.DictReader(f)]  # fmt: skip
    img = root / "images"
    if which == "dev":
        return [{"name": f"{a}__{b}", "source": img / f"{a}.png", "target": img / f"{b}.png"}
                for a, b in pairs]  # fmt: skip
    photos = sorted({p for ab in pairs for p in ab})
    return [{"name": p, "source": img / f"{p}.png", "target": img / f"{p}.png"} for p in photos]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--set", choices=["pg2", "dev", "identity"], default="pg2")
    ap.add_argument("--split", choices=["all", "train", "heldout"], default="all")
    ap.add_argument("--limit", type=int, default=None)
    ap.add_argument("--texture", default="classical")
    ap.add_argument("--rerender", choices=["none", "network"], default="none")
    ap.add_argument("--save-dir", default=None, help="write each output PNG here")
    ap.add_argument("--correspondence", choices=["fit", "bodymap"], default="fit",
                    help="both photos' correspondences: the fit, or refined by the BodyMap network")
    ap.add_argument("--bodymap-checkpoint", default=None, help="with --correspondence bodymap")
    args = ap.parse_args()
    root = require(SHARED_DATA / "deepfashion")
    import numpy as np
    from skimage.color import rgb2gray
    from skimage.metrics import structural_similarity

    from reroute.errors import InputError
    from reroute.io.images import load_image, save_image_atomic
    from reroute.metrics.image import ssim_patn
    from reroute.pipelines.pose_transfer import PoseTransferPipeline

    def gray_ssim(a, b):
        return float(structural_similarity(rgb2gray(a), rgb2gray(b), data_range=1.0))

    pairs = _pairs(root, args.set, args.split)[: args.limit]
    pipe = PoseTransferPipeline(size=256, texture=args.texture, rerender=args.rerender,
                                correspondence=args.correspondence,
                                bodymap_checkpoint=args.bodymap_checkpoint)  # fmt: skip
    rows, failed = [], []
    t0 = time.perf_counter()
    for p in pairs:
        target = load_image(p["target"]).pixels
        source = load_image(p["source"]).pixels
        ok = True
        try:
            out = pipe(p["source"], p["target"]).image
        except InputError as e:
            failed.append({"name": p["name"], "error": str(e)})
            out, ok = source, False  # a failed transfer counts as the identity baseline
        row = {"name": p["name"], "ok": ok, "split": p.get("split"),
               "ssim": round(gray_ssim(out, target), 4),
               "ssim_patn": round(float(ssim_patn(out, target, pad=0)), 4),
               "ssim_identity": round(gray_ssim(source, target), 4)}  # fmt: skip
        if "peer" in p:
            peer = load_image(p["peer"]).pixels
            row["ssim_pg2"] = round(gray_ssim(peer, target), 4)
            row["ssim_patn_pg2"] = round(float(ssim_patn(peer, target, pad=0)), 4)
        rows.append(row)
        if args.save_dir:
            save_image_atomic(Path(args.save_dir) / f"{p['name']}.png", out)

    def mean(key, split=None):
        return round(float(np.mean([r[key] for r in rows if split in (None, r["split"])])), 4)

    result = {"set": args.set, "split": args.split, "pairs": len(rows), "texture": args.texture,
              "rerender": args.rerender, "correspondence": args.correspondence,
              "failed": failed, "mean_ssim_reroute": mean("ssim"),
              "mean_ssim_patn_reroute": mean("ssim_patn"),
              "min_ssim_reroute": round(min(r["ssim"] for r in rows), 4),
              "mean_ssim_identity": mean("ssim_identity")}  # fmt: skip
    if args.set == "pg2":
        result.update(mean_ssim_pg2=mean("ssim_pg2"), mean_ssim_patn_pg2=mean("ssim_patn_pg2"),
                      reroute_beats_pg2=sum(r["ssim"] > r["ssim_pg2"] for r in rows))  # fmt: skip
        result["by_split"] = {
            sp: {"pairs": sum(r["split"] == sp for r in rows), "ssim_reroute": mean("ssim", sp),
                 "ssim_patn_reroute": mean("ssim_patn", sp), "ssim_pg2": mean("ssim_pg2", sp),
                 "ssim_patn_pg2": mean("ssim_patn_pg2", sp), "ssim_identity": mean("ssim_identity", sp),
                 "reroute_beats_pg2": sum(r["ssim"] > r["ssim_pg2"] for r in rows if r["split"] == sp)}
            for sp in ("train", "heldout") if any(r["split"] == sp for r in rows)
        }  # fmt: skip
    result.update(wall_seconds=round(time.perf_counter() - t0, 1),
                  peak_rss_mb=round(peak_rss_mb(), 1), per_pair=rows)  # fmt: skip
    emit(result)


if __name__ == "__main__":
    main()
