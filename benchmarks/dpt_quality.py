"""Dense Pose Transfer on held-out real pairs: the paper's Table 4 structure.

Sets (read from ``../shared/data/deepfashion``), never trained on
(:mod:`renderer.dpt.data`):

* ``pg2``: ``pg2_pairs`` 080-099 by sorted name, with PG2's released output
  (Ma et al., NeurIPS 2017) for each pair (256x176);
* ``dev``: the 18 pairs of ``pairs.csv`` (256x256).

Each photo is analysed once (one :class:`~reroute.correspondence.cache.AnalysisCache`
serves every method). Methods: each DPT checkpoint given as ``--variant
NAME=PATH`` (default: the committed ``full`` model), reroute's BodyMap-style
pipeline (warp + neural re-renderer), PG2 (pg2 set) and the identity baseline
(the source photo). Metrics against the real target: grayscale SSIM
(scikit-image on ``rgb2gray``), PATN SSIM (no padding), MS-SSIM, PSNR
(:func:`benchmarks.rerender_quality._metrics`). ``--grid PNG`` draws source |
target | PG2 or blank | BodyMap | each DPT variant for 6 dev pairs (side and back
targets first) and 6 pg2 pairs; real photos: keep it out of git (``docs/dpt_grid.png`` is ignored).

    python benchmarks/dpt_quality.py --variant predictive=RUN/last.pt --variant full=checkpoints/dpt_cpu256.pt \\
        [--set pg2 dev] [--grid docs/dpt_grid.png] [--analysis-cache DIR]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from _common import SHARED_DATA, emit, peak_rss_mb, require
from pose_transfer_quality import _pairs
from rerender_quality import _metrics

KEYS = ("ssim", "ssim_patn", "ms_ssim", "psnr")


def _cell(image):
    """A 256 x 256 cell: the image scaled to height 256 and centred on white."""
    import cv2
    import numpy as np

    h, w = image.shape[:2]
    im = cv2.resize(image, (max(1, round(w * 256 / h)), 256), interpolation=cv2.INTER_AREA)[:, :256]
    out = np.full((256, 256, 3), 255, np.uint8)
    x = (256 - im.shape[1]) // 2
    out[:, x : x + im.shape[1]] = im
    return out


def _grid(rows: list[dict], methods: list[str], path: Path) -> None:
    import cv2
    import numpy as np

    from reroute.io.images import save_image_atomic

    def view(r):
        return any(v in r["name"].split("__")[-1] for v in ("2side", "3back"))

    ordered = sorted(rows, key=lambda r: (not view(r), r["name"]))
    picked = [r for r in ordered if r["set"] == "dev"][:6] + [r for r in ordered if r["set"] == "pg2"][:6]
    lines = []
    for r in picked:
        ims = r["images"]
        cells = [ims["source"], ims["target"], ims.get("pg2", np.full_like(ims["target"], 255))]
        cells += [ims[m] for m in methods]
        cells = [_cell(c) for c in cells]
        lines.append(np.concatenate(cells, 1))
    sheet = np.concatenate(lines, 0)
    head = np.full((22, sheet.shape[1], 3), 255, np.uint8)
    for i, name in enumerate(["source", "target", "PG2", *methods]):
        cv2.putText(head, name[:30], (i * 256 + 3, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 0, 0), 1, cv2.LINE_AA)
    save_image_atomic(path, np.concatenate([head, sheet], 0))


def _run_pairs(which: str, root: Path, runners: dict, limit: int | None, rows_all: list) -> dict:
    import numpy as np

    from reroute.errors import InputError
    from reroute.io.images import load_image

    rows, failed, secs = [], [], {m: [] for m in runners}
    for p in _pairs(root, which, "heldout" if which == "pg2" else "all")[:limit]:
        src, tgt = load_image(p["source"]).pixels, load_image(p["target"]).pixels
        row, images = {"set": which, "name": p["name"]}, {"source": src, "target": tgt}
        try:
            for m, run in runners.items():
                t = time.perf_counter()
                images[m] = run(p["source"], p["target"])
                secs[m].append(time.perf_counter() - t)
                row[m] = _metrics(images[m], tgt)
        except InputError as e:
            failed.append({"name": p["name"], "error": str(e)})
            continue
        row["identity"] = _metrics(src, tgt)
        if "peer" in p:
            images["pg2"] = load_image(p["peer"]).pixels
            row["pg2"] = _metrics(images["pg2"], tgt)
        rows.append(row)
        rows_all.append(row | {"images": images})
    methods = list(runners) + ["identity"] + (["pg2"] if which == "pg2" else [])
    table = {m: {k: round(float(np.mean([r[m][k] for r in rows])), 4) for k in KEYS} for m in methods}
    out = {"pairs": len(rows), "failed": failed, "mean": table, "per_pair": rows,
           "seconds_mean": {m: round(float(np.mean(v[1:] or v)), 3) for m, v in secs.items() if v}}  # fmt: skip
    if which == "pg2":
        out["beats_pg2_ssim"] = {m: sum(r[m]["ssim"] > r["pg2"]["ssim"] for r in rows) for m in runners}
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--variant", action="append", default=[], metavar="NAME=PATH",
                    help="a DPT checkpoint to evaluate (repeatable; default full=checkpoints/dpt_cpu256.pt)")
    ap.add_argument("--no-bodymap", action="store_true", help="skip reroute's BodyMap-style pipeline")
    ap.add_argument("--set", nargs="+", choices=["pg2", "dev"], default=["pg2", "dev"])
    ap.add_argument("--limit", type=int, default=None)
    ap.add_argument("--grid", default=None, help="write the contact sheet here")
    ap.add_argument("--analysis-cache", default=None, metavar="DIR",
                    help="keep the photos' analyses here across runs (AnalysisCache's disk layer)")
    args = ap.parse_args()
    root = require(SHARED_DATA / "deepfashion")

    from renderer.dpt import DEFAULT_CHECKPOINT
    from reroute.correspondence.cache import AnalysisCache
    from reroute.pipelines.dpt import DensePoseTransferPipeline
    from reroute.pipelines.pose_transfer import PoseTransferPipeline

    cache = AnalysisCache(256, args.analysis_cache)
    variants = dict(v.split("=", 1) for v in args.variant) or {"dpt-full": str(DEFAULT_CHECKPOINT)}
    runners = {}
    if not args.no_bodymap:
        bodymap = PoseTransferPipeline(size=256, rerender="network", cache=cache)
        runners["bodymap"] = lambda s, t: bodymap(s, t).image
    for name, path in variants.items():
        pipe = DensePoseTransferPipeline(size=256, checkpoint=path, cache=cache)
        runners[name] = lambda s, t, pipe=pipe: pipe(s, t).image
    result: dict = {"variants": variants}
    rows_all: list = []
    t0 = time.perf_counter()
    for which in args.set:
        result[which] = _run_pairs(which, root, runners, args.limit, rows_all)
    if args.grid:
        _grid(rows_all, list(runners), Path(args.grid))
    result.update(wall_seconds=round(time.perf_counter() - t0, 1), peak_rss_mb=round(peak_rss_mb(), 1))
    emit(result)


if __name__ == "__main__":
    main()
