"""Texture-completion training throughput and inference time, against this CPU's matmul peak.

Prints JSON:

* ``matmul_peak_gflops``: float32 (n x n) @ (n x n) rate measured in this run with the
  same torch thread count (best of 3 rounds);
* ``train``: images per second of full GAN steps (G forward, D step, G step) of the
  chosen preset's networks at its UV size, the FLOP of one step counted by
  ``torch.utils.flop_counter.FlopCounterMode`` (convolutions and matmuls, forward
  and backward), the achieved GFLOP/s and its share of the matmul peak;
* ``inference_ms``: one texture completion (batch 1, eval, no grad) at 256 and
  1024 px, median of ``--repeats`` runs.

Also reports CPU seconds of the process per image (robust to other jobs on the CPU).

    python benchmarks/texture_train.py [--preset cpu] [--steps 6] [--batch-size 4] [--threads 1]
"""

from __future__ import annotations

import argparse
import time

from _common import emit, peak_rss_mb


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--preset", default="cpu")
    p.add_argument("--steps", type=int, default=6)
    p.add_argument("--batch-size", type=int, default=4)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--repeats", type=int, default=3)
    a = p.parse_args()

    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from reroute.training.trainer import measure_matmul_gflops
    from texture.network import TextureUNet
    from texture.train import PRESETS, TextureCompletionTask, ToyTexturePairs

    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    peak = measure_matmul_gflops(1024, 8)

    task_cfg, train_cfg = PRESETS[a.preset]
    task = TextureCompletionTask(task_cfg)
    G, D = task.build_generator(), task.build_discriminator()
    T = task_cfg.model.texture_size
    data = ToyTexturePairs(a.batch_size, T)
    batch = torch.utils.data.default_collate([data[i] for i in range(a.batch_size)])
    if task_cfg.model.prior == "classical":
        batch["prior"] = batch["partial"].clone()
    og = torch.optim.Adam(G.parameters(), 1e-4, betas=(0.5, 0.999))
    od = torch.optim.Adam(D.parameters(), 1e-4, betas=(0.5, 0.999)) if D is not None else None

    def step():
        fake = task.generate(G, batch)
        if D is not None:
            od.zero_grad()
            task.discriminator_loss(D, batch, fake.detach()).total.backward()
            od.step()
            D.requires_grad_(False)
        og.zero_grad()
        task.generator_loss(D, batch, fake).total.backward()
        if D is not None:
            D.requires_grad_(True)
        og.step()

    step()  # warm-up
    with FlopCounterMode(display=False) as fc:
        step()
    flop = fc.get_total_flops()
    t, c = time.perf_counter(), time.process_time()
    for _ in range(a.steps):
        step()
    wall, cpu = time.perf_counter() - t, time.process_time() - c
    achieved = flop * a.steps / wall / 1e9

    inf = {}
    G.eval()
    for size in (256, 1024):
        net = TextureUNet(
            task_cfg.model.__class__(**{**task_cfg.model.__dict__, "texture_size": size})
        ).eval()
        x = torch.zeros(1, 3, size, size)
        m = torch.zeros(1, 1, size, size)
        prior = x if task_cfg.model.prior == "classical" else None
        times = []
        with torch.no_grad():
            net(x, m, prior)
            for _ in range(a.repeats):
                t0 = time.perf_counter()
                net(x, m, prior)
                times.append(time.perf_counter() - t0)
        times.sort()
        inf[str(size)] = round(1000 * times[len(times) // 2], 1)

    emit({
        "preset": a.preset, "texture_size": T, "threads": a.threads, "batch_size": a.batch_size,
        "generator_params": sum(q.numel() for q in G.parameters()),
        "discriminator_params": sum(q.numel() for q in D.parameters()) if D is not None else 0,
        "matmul_peak_gflops": round(peak, 2),
        "train": {
            "steps_timed": a.steps, "images_per_s": round(a.steps * a.batch_size / wall, 3),
            "cpu_s_per_image": round(cpu / (a.steps * a.batch_size), 3),
            "gflop_per_step": round(flop / 1e9, 2), "achieved_gflops": round(achieved, 2),
            "share_of_matmul_peak": round(achieved / peak, 3),
        },
        "inference_ms": inf,
        "peak_rss_mb": round(peak_rss_mb(), 1),
    })  # fmt: skip


if __name__ == "__main__":
    main()
