"""Neural re-renderer inference time on this CPU, and its size.

Times :func:`renderer.network.rerender_image` (tensor conversion, padding,
network, uint8 conversion) on a synthetic composite at each size, after one
warm-up call; median of ``--repeats`` calls. Goal (issue 12): under 0.25 s at
256 px on the 2-core CPU.

    python benchmarks/rerender_speed.py [--checkpoint CKPT] [--sizes 256 512] [--threads N]
"""

from __future__ import annotations

import argparse
import statistics
import time

from _common import emit, peak_rss_mb


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--checkpoint", default=None, help="re-renderer checkpoint (default: committed; "
                    "the cpu preset untrained when absent)")  # fmt: skip
    ap.add_argument("--sizes", type=int, nargs="+", default=[256, 512])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=0)
    args = ap.parse_args()
    import numpy as np
    import torch

    from renderer import DEFAULT_CHECKPOINT, rerender_image, seen_map
    from renderer.network import ReRenderer, load_rerenderer
    from renderer.train import PRESETS
    from reroute.correspondence.maps import Correspondence
    from reroute.uv.texture import UVTexture

    if args.threads:
        torch.set_num_threads(args.threads)
    path = args.checkpoint or (DEFAULT_CHECKPOINT if DEFAULT_CHECKPOINT.is_file() else None)
    model = load_rerenderer(path) if path else ReRenderer(PRESETS["cpu"][0].model).eval()
    rng = np.random.default_rng(0)
    rows = []
    for s in args.sizes:
        mask = np.zeros((s, s), bool)
        mask[s // 8 : -s // 8, s // 3 : -s // 3] = True
        corr = Correspondence(mask.astype(np.uint8), np.zeros((s, s, 2), np.float32),
                              rng.random((s, s, 2), dtype=np.float32), rng.random((s, s, 3), dtype=np.float32),
                              mask, mask)  # fmt: skip
        comp = rng.integers(0, 256, (s, s, 3), dtype=np.uint8)
        bg = np.full((s, s, 3), 240, np.uint8)
        tex = UVTexture(rng.random((256, 256, 3), dtype=np.float32), np.ones((256, 256), np.float32))

        def run(comp=comp, bg=bg, corr=corr, tex=tex):  # a seen-input model's seen map counts too
            seen = seen_map(tex, corr) if model.config.seen_input else None
            rerender_image(model, comp, bg, corr, tex, seen)

        run()
        times = []
        for _ in range(args.repeats):
            t = time.perf_counter()
            run()
            times.append(time.perf_counter() - t)
        rows.append({"size": s, "median_s": round(statistics.median(times), 4), "min_s": round(min(times), 4)})
    emit({"checkpoint": str(path) if path else "untrained cpu preset", "threads": torch.get_num_threads(),
          "parameters": sum(p.numel() for p in model.parameters()), "per_size": rows,
          "peak_rss_mb": round(peak_rss_mb(), 1)})  # fmt: skip


if __name__ == "__main__":
    main()
