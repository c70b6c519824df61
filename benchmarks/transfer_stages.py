"""Per-stage CPU time and peak memory of one pose transfer at 256 and 512 px.

Models are loaded and warmed by one untimed transfer first, so the figures are
"after models are loaded". Stages: pose (mediapipe, both photos), fit (anny,
both photos), render (correspondences, both), warp (lift to UV + warp back +
composite), completion (classical fill), rerender (the neural re-renderer).
Each size runs without the re-renderer (``"256"``) and, when its checkpoint
loads, with it (``"256+rerender"``), and with ``--compile-fit`` each again with
the compiled body fit (``"256+rerender+compiled-fit"``); the variants take turns
in each repeat, so a slow spell of the machine hits all of them; medians are
reported. No analysis cache, so every repeat analyses both photos again.
Uses a DeepFashion pair from ../shared/data when present, else two synthetic
anny renders. Run it from an older checkout
(``python /old/checkout/benchmarks/transfer_stages.py``) for the "before".

    python benchmarks/transfer_stages.py [--sizes 256 512] [--repeats 3] [--no-rerender] [--compile-fit]
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
    ap.add_argument("--compile-fit", action="store_true",
                    help="also time every variant with FitConfig(compile=True)")  # fmt: skip
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
    if args.compile_fit:  # each variant again with the compiled fit, timed in the same rounds
        from reroute.body.fit import FitConfig

        variants += [(s + "+compiled-fit", dict(kw, fit_config=FitConfig(compile=True)))
                     for s, kw in variants]  # fmt: skip
    out = {"data": data, "torch_threads": torch.get_num_threads(), "sizes": {}}
    pipes = {f"{size}{suffix}": PoseTransferPipeline(size=size, **kw)
             for size in args.sizes for suffix, kw in variants}  # fmt: skip
    t = time.perf_counter()
    for pipe in pipes.values():  # load, warm up and (compiled fit) compile, untimed
        pipe(src, tgt)
    out["warm_up_s"] = round(time.perf_counter() - t, 1)
    runs: dict[str, list[dict]] = {key: [] for key in pipes}
    for _ in range(args.repeats):  # round robin: the machine's slow spells hit every variant
        for key, pipe in pipes.items():
            t = time.perf_counter()
            res = pipe(src, tgt)
            runs[key].append(dict(res.timings, wall=time.perf_counter() - t))
    for key, rs in runs.items():
        out["sizes"][key] = {k: round(float(np.median([r.get(k, 0.0) for r in rs])), 3) for k in rs[0]}
    out["peak_rss_mb"] = round(peak_rss_mb(), 1)
    emit(out)


if __name__ == "__main__":
    main()
