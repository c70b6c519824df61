"""Body-fit time by batch size, and concurrent fits merged by the FitBatcher.

Detects the person in ``--photos`` DeepFashion photos (synthetic anny renders
when ../shared/data is absent), then times, with one torch thread as the
pipelines run the fit:

* ``batch_s``: one :func:`reroute.body.fit.fit_bodies` call on 1, 2, 4, 8 and 16
  photos (the photos repeated as needed): the fit's cost is per optimiser step,
  so it grows far slower than the photo count;
* ``concurrent_s``: ``--threads`` threads each fitting two photos at once, as
  ``--threads`` simultaneous pose-transfer requests do, through ``fit_bodies``
  (merged into shared batches by its :class:`~reroute.body.fit_batch.FitBatcher`)
  and, for comparison, each thread calling the unmerged batch fit directly;
  ``batches`` is how many batches the merged run took.

Medians over ``--repeats``. Prints JSON.

    python benchmarks/fit_batch.py [--photos 4] [--threads 4] [--repeats 5] [--compile-fit]
"""

from __future__ import annotations

import argparse
import threading
import time

from _common import SHARED_DATA, emit


def _observations(n: int):
    from reroute.body.detect import detect_person
    from reroute.io.images import load_image

    imgs = SHARED_DATA / "deepfashion" / "images"
    if imgs.exists():
        paths = sorted(imgs.glob("*.png"))[:n]
        return [detect_person(load_image(p).pixels) for p in paths], "deepfashion photos"
    from reroute.synth.engine import render_synthetic_person

    return [detect_person(render_synthetic_person(None, size=256, seed=i, yaw_deg=20 * i).image)
            for i in range(n)], "synthetic anny renders"  # fmt: skip


def _median_time(fn, repeats: int) -> float:
    import numpy as np

    fn()  # warm-up
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return round(float(np.median(times)), 4)


def _in_threads(fn, args_per_thread) -> None:
    threads = [threading.Thread(target=fn, args=a) for a in args_per_thread]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--photos", type=int, default=4)
    ap.add_argument("--threads", type=int, default=4)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--compile-fit", action="store_true",
                    help="FitConfig(compile=True), compiled before the timing")  # fmt: skip
    args = ap.parse_args()
    import torch

    import reroute.body.fit as fit

    torch.set_num_threads(1)
    obs, data = _observations(args.photos)
    cfg = fit.FitConfig(compile=args.compile_fit)
    fit.fit_bodies(obs[:1], cfg)  # warm-up (and compile: one photo, then batches)
    fit.fit_bodies(obs[:2], cfg)
    batch = {}
    for n in (1, 2, 4, 8, 16):
        photos = (obs * n)[:n]
        batch[str(n)] = _median_time(lambda photos=photos: fit.fit_bodies(photos, cfg), args.repeats)
    pairs = [((obs[(2 * i) % len(obs)], obs[(2 * i + 1) % len(obs)]),) for i in range(args.threads)]
    batcher = fit.SHARED_BATCHER
    before = batcher.batches
    merged = _median_time(lambda: _in_threads(lambda p: fit.fit_bodies(list(p), cfg), pairs),
                          args.repeats)  # fmt: skip
    runs = args.repeats + 1
    unmerged = _median_time(
        lambda: _in_threads(lambda p: fit.fit_bodies(list(p), cfg, merge=False), pairs), args.repeats
    )
    emit({
        "data": data,
        "photos": len(obs),
        "batch_s": batch,
        "concurrent_s": {"threads": args.threads, "photos_each": 2, "merged": merged,
                         "unmerged": unmerged,
                         "batches_per_run": round((batcher.batches - before) / runs, 2)},
        "torch_threads": torch.get_num_threads(),
        "compile": cfg.compile,
    })  # fmt: skip


if __name__ == "__main__":
    main()
