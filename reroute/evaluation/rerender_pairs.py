"""Build the neural re-renderer's training items from real photos.

``python -m reroute.evaluation.rerender_pairs --out DIR [--shard I/N] [--root ../shared/data]``
runs reroute's warp-only pose transfer
(:meth:`~reroute.pipelines.pose_transfer.PoseTransferPipeline.transfer`) on
every pair of :func:`renderer.data.real_training_pairs` and stores each result
with its truth (:func:`renderer.data.build_items`). Shards split the pairs by
group (pairs that share photos stay together), so N processes can build at once.
``--synthetic N --photos DIR`` builds synthetic items instead: N two-view
identities of the synthetic engine rendered to photos in DIR
(:func:`renderer.data.write_synthetic_photos`), both directions, through the
same pipeline (keep them in their own ``--out`` folder; training mixes them in
with ``--synthetic DIR --synthetic-weight W``).
Prints one JSON line of counts.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from renderer.data import build_items, real_training_pairs, write_synthetic_photos
from reroute.pipelines.pose_transfer import PoseTransferPipeline

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m reroute.evaluation.rerender_pairs",
                                 description="re-renderer training items from real photos")  # fmt: skip
    ap.add_argument("--root", default=str(Path(__file__).resolve().parents[3] / "shared" / "data"))
    ap.add_argument("--out", required=True)
    ap.add_argument("--shard", default="0/1", help="I/N: this process builds groups I, I+N, ...")
    ap.add_argument("--limit", type=int, default=None)
    ap.add_argument("--synthetic", type=int, default=0, help="build N synthetic identities instead")
    ap.add_argument("--photos", default=None, help="folder of the synthetic photos (with --synthetic)")
    args = ap.parse_args(argv)
    i, n = (int(x) for x in args.shard.split("/"))
    if args.synthetic:
        if not args.photos:
            ap.error("--synthetic needs --photos DIR")
        specs = write_synthetic_photos(args.synthetic, Path(args.photos))
    else:
        specs = real_training_pairs(Path(args.root))
    groups = sorted({s.group for s in specs})
    mine = {g for k, g in enumerate(groups) if k % n == i}
    specs = [s for s in specs if s.group in mine][: args.limit]
    t0 = time.perf_counter()
    cross = PoseTransferPipeline(size=256)
    texture_only = PoseTransferPipeline(size=256, direct=False)
    counts = build_items(specs, Path(args.out), cross.transfer, texture_only.transfer,
                         log=lambda m: print(m, file=sys.stderr, flush=True))  # fmt: skip
    print(json.dumps({**counts, "pairs": len(specs), "wall_s": round(time.perf_counter() - t0, 1)}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
