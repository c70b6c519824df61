"""Evaluation throughput: pairs per second per method at 256x176 on this CPU.

Runs the evaluation engine in-process (no torchrun) on the real DeepFashion
pairs in ``../shared/data/deepfashion`` into a temporary folder and times the
whole per-pair loop (load, crop, method, all weight-free metrics, atomic PNG
and record writes), excluding start-up (model construction) and the final merge.
Methods whose networks do not exist yet are listed with the reason. Prints JSON.

    python benchmarks/evaluate_throughput.py [--methods identity,warp] [--limit 18] [--threads 1]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from _common import SHARED_DATA, emit, peak_rss_mb, require


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--methods", default="identity,warp,bodymap,dpt")
    ap.add_argument("--limit", type=int, default=None, help="pairs per method (default all 18)")
    ap.add_argument("--warp-limit", type=int, default=4, help="pairs for the slow warp method")
    ap.add_argument("--threads", type=int, default=1, help="torch threads")
    args = ap.parse_args()
    root = require(SHARED_DATA / "deepfashion")
    import torch

    torch.set_num_threads(args.threads)
    from reroute.errors import InputError
    from reroute.evaluation import pose_transfer as E
    from reroute.metrics.image import NetworkMetrics

    size = (256, 176)
    cfg0 = E.EvalConfig("deepfashion", str(root), "", "identity", pairs="pairs.csv", size=size)
    pairs = E.load_pairs(cfg0).pairs
    results = {}
    for name in args.methods.split(","):
        limit = args.limit or len(pairs)
        if name == "warp":
            limit = min(limit, args.warp_limit)
        cfg = E.EvalConfig("deepfashion", str(root), "", name, pairs="pairs.csv", size=size)
        try:
            t = time.perf_counter()
            method = E.build_method(cfg, size)
            setup = time.perf_counter() - t
        except InputError as e:
            results[name] = {"unavailable": str(e)}
            continue
        netm = NetworkMetrics()
        with tempfile.TemporaryDirectory() as d:
            out = Path(d)
            (out / "images").mkdir()
            (out / "records").mkdir()
            log = E._Log(out / "evaluate.log", 0, quiet=True)
            t = time.perf_counter()
            counts = E._run_shard(pairs[:limit], out, size, 40, method, netm, log, False, 0, 1)
            wall = time.perf_counter() - t
        n = counts["ok"] + counts["failed"]
        results[name] = {
            "pairs": n,
            "ok": counts["ok"],
            "failed": counts["failed"],
            "wall_s": round(wall, 2),
            "pairs_per_s": round(n / wall, 3),
            "setup_s": round(setup, 2),
        }
    emit({"size": "256x176", "torch_threads": args.threads, "methods": results,
          "peak_rss_mb": round(peak_rss_mb(), 1)})  # fmt: skip


if __name__ == "__main__":
    main()
