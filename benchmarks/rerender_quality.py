"""Neural re-renderer on held-out real pairs: warp only versus warp + re-renderer.

Sets (256x256, read from ``../shared/data/deepfashion``), never trained on
(:mod:`renderer.data`):

* ``pg2``: ``pg2_pairs`` 080-099 by sorted name, with PG2's released output
  (Ma et al., NeurIPS 2017) for each pair;
* ``dev``: the 18 pairs of ``pairs.csv``.

Each pair runs the pose-transfer pipeline once with the re-renderer on: the
warp-only result is the pipeline's composite (the re-renderer's input), the
re-rendered one its output. Metrics against the real target: grayscale SSIM
(scikit-image ``structural_similarity`` on ``rgb2gray``, data_range 1), PATN
SSIM (:func:`reroute.metrics.image.ssim_patn`, no padding), MS-SSIM and PSNR
(:mod:`reroute.metrics.image`, uint8 RGB), for warp, re-rendered, PG2 (pg2
set) and the identity baseline (the source photo). ``--grid PNG`` draws
source | target | warp only | re-rendered for 12 pairs (side and back targets
of the dev set first); it shows real photos, so keep it out of git.

    python benchmarks/rerender_quality.py [--checkpoint CKPT] [--set pg2 dev] [--grid docs/rerender_grid.png]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from _common import SHARED_DATA, emit, peak_rss_mb, require
from pose_transfer_quality import _pairs


def _metrics(out, target) -> dict[str, float]:
    import numpy as np
    from skimage.color import rgb2gray
    from skimage.metrics import structural_similarity

    from reroute.metrics.image import ms_ssim, psnr, ssim_patn

    g = float(structural_similarity(rgb2gray(out), rgb2gray(target), data_range=1.0))
    return {"ssim": round(g, 4), "ssim_patn": round(float(ssim_patn(out, target, pad=0)), 4),
            "ms_ssim": round(float(ms_ssim(out, target)), 4),
            "psnr": round(float(np.asarray(psnr(out, target))), 3)}  # fmt: skip


def _grid(rows: list[dict], path: Path) -> None:
    import numpy as np

    from reroute.io.images import save_image_atomic

    def view(r):
        return any(v in r["name"].split("__")[-1] for v in ("2side", "3back"))

    picked = sorted(rows, key=lambda r: (not view(r), r["set"], r["name"]))[:12]
    lines = [np.concatenate([r["images"][k] for k in ("source", "target", "warp", "rerender")], 1)
             for r in picked]  # fmt: skip
    save_image_atomic(path, np.concatenate(lines, 0))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--checkpoint", default=None, help="re-renderer checkpoint (default: committed)")
    ap.add_argument("--set", nargs="+", choices=["pg2", "dev"], default=["pg2", "dev"])
    ap.add_argument("--limit", type=int, default=None)
    ap.add_argument("--grid", default=None, help="write the contact sheet here")
    args = ap.parse_args()
    root = require(SHARED_DATA / "deepfashion")
    import numpy as np

    from reroute.errors import InputError
    from reroute.io.images import load_image
    from reroute.pipelines.pose_transfer import PoseTransferPipeline

    pipe = PoseTransferPipeline(size=256, rerender="network", rerender_checkpoint=args.checkpoint)
    result: dict = {"checkpoint": args.checkpoint or "checkpoints/rerenderer_cpu256.pt"}
    rows_all, t0, rr_time = [], time.perf_counter(), []
    for which in args.set:
        rows, failed = [], []
        for p in _pairs(root, which, "heldout" if which == "pg2" else "all")[: args.limit]:
            src, tgt = load_image(p["source"]).pixels, load_image(p["target"]).pixels
            try:
                res = pipe(p["source"], p["target"])
            except InputError as e:
                failed.append({"name": p["name"], "error": str(e)})
                continue
            rr_time.append(res.timings["rerender"])
            warp = res.composite  # the working size: 256 px, as every photo of both sets
            row = {"set": which, "name": p["name"], "warp": _metrics(warp, tgt),
                   "rerender": _metrics(res.image, tgt), "identity": _metrics(src, tgt)}  # fmt: skip
            if "peer" in p:
                row["pg2"] = _metrics(load_image(p["peer"]).pixels, tgt)
            rows.append(row)
            rows_all.append(row | {"images": {"source": src, "target": tgt, "warp": warp,
                                              "rerender": res.image}})  # fmt: skip
        methods = ["warp", "rerender", "identity"] + (["pg2"] if which == "pg2" else [])
        table = {m: {k: round(float(np.mean([r[m][k] for r in rows])), 4)
                     for k in ("ssim", "ssim_patn", "ms_ssim", "psnr")} for m in methods}  # fmt: skip
        result[which] = {"pairs": len(rows), "failed": failed, "mean": table,
                         "rerender_beats_warp_ssim": sum(r["rerender"]["ssim"] > r["warp"]["ssim"] for r in rows),
                         "per_pair": rows}  # fmt: skip
        if which == "pg2":
            result[which]["rerender_beats_pg2_ssim"] = sum(r["rerender"]["ssim"] > r["pg2"]["ssim"] for r in rows)
    if args.grid:
        _grid(rows_all, Path(args.grid))
    result.update(rerender_s_mean=round(float(np.mean(rr_time)), 4) if rr_time else None,
                  wall_seconds=round(time.perf_counter() - t0, 1), peak_rss_mb=round(peak_rss_mb(), 1))  # fmt: skip
    emit(result)


if __name__ == "__main__":
    main()
