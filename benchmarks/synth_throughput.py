"""Throughput of the synthetic data engine, and its size on disk.

Prints JSON: images per second of :class:`reroute.synth.engine.SyntheticEngine`
with every ground-truth map (wall clock and per CPU-second of this process, the
latter being robust to other jobs sharing the CPU), the same with the writer
(PNG encoding of all maps), and MB on disk per 1,000 images. Optionally writes
a contact sheet of random samples with their IUV maps.

    python benchmarks/synth_throughput.py [--identities 10] [--views 4] [--size 256]
        [--contact-sheet docs/synthetic_contact_sheet.png]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from _common import emit, peak_rss_mb


def contact_sheet(samples, cols: int = 6):
    """Grid of (image over IUV picture) tiles, uint8 (rows * 2H, cols * W, 3)."""
    import numpy as np

    from reroute.correspondence.maps import iuv_to_rgb

    tiles = [np.concatenate([s.image, iuv_to_rgb(s.iuv)], 0) for s in samples]
    while len(tiles) % cols:
        tiles.append(np.full_like(tiles[0], 255))
    rows = [np.concatenate(tiles[i : i + cols], 1) for i in range(0, len(tiles), cols)]
    return np.concatenate(rows, 0)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--identities", type=int, default=10)
    ap.add_argument("--views", type=int, default=4)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1, help="torch threads")
    ap.add_argument("--contact-sheet", help="write a PNG of 24 random samples + IUV here")
    args = ap.parse_args()
    import numpy as np
    import torch

    torch.set_num_threads(args.threads)
    from reroute.synth.engine import SynthConfig, SyntheticEngine
    from reroute.synth.writer import SampleWriter

    cfg = SynthConfig(size=args.size, views_per_identity=args.views)
    t0 = time.perf_counter()
    warm = SyntheticEngine(cfg, seed=args.seed + 1000)
    warm.sample(0, 0)  # loads anny, the template, texel geometry, warp kernels
    startup = time.perf_counter() - t0

    eng = SyntheticEngine(cfg, seed=args.seed)
    n = args.identities * args.views
    w0, c0 = time.perf_counter(), time.process_time()
    for _ in eng.samples(args.identities):
        pass
    wall, cpu = time.perf_counter() - w0, time.process_time() - c0

    with tempfile.TemporaryDirectory() as d:
        writer = SampleWriter(d, args.seed, cfg)
        eng2 = SyntheticEngine(cfg, seed=args.seed)
        w1, c1 = time.perf_counter(), time.process_time()
        for s in eng2.samples(args.identities):
            writer.write(s)
        writer.close()
        wall_w, cpu_w = time.perf_counter() - w1, time.process_time() - c1
        size = sum(p.stat().st_size for p in Path(d).rglob("*") if p.is_file())

    out = {
        "size_px": args.size,
        "images": n,
        "identities": args.identities,
        "views_per_identity": args.views,
        "startup_s": round(startup, 2),
        "engine_images_per_s_wall": round(n / wall, 2),
        "engine_images_per_cpu_s": round(n / cpu, 2),
        "engine_plus_writer_images_per_s_wall": round(n / wall_w, 2),
        "engine_plus_writer_images_per_cpu_s": round(n / cpu_w, 2),
        "disk_mb_per_1000_images": round(size / n * 1000 / 1e6, 1),
        "torch_threads": args.threads,
        "load_average_1min": round(__import__("os").getloadavg()[0], 2),
        "peak_rss_mb": round(peak_rss_mb(), 1),
    }
    if args.contact_sheet:
        from reroute.io.images import save_image_atomic

        rng = np.random.default_rng(args.seed)
        sheet_eng = SyntheticEngine(SynthConfig(size=args.size, views_per_identity=2,
                                                multi_person_prob=0.25), seed=args.seed + 7)  # fmt: skip
        picks = sorted(rng.choice(200, 12, replace=False).tolist())
        sheet = [sheet_eng.sample(int(i), k) for i in picks for k in range(2)]
        save_image_atomic(args.contact_sheet, contact_sheet(sheet, cols=8))
        out["contact_sheet"] = args.contact_sheet
    emit(out)


if __name__ == "__main__":
    main()
