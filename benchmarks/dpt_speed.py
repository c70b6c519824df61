"""Dense Pose Transfer inference time per pair at 256 px on this CPU, per stream.

Times each stage of :meth:`renderer.dpt.model.DensePoseTransfer.run` for one
256 x 256 pair (batch 1, ``torch.no_grad``): the predictive stream, the scatter
into the atlas (:func:`~renderer.dpt.warping.image_to_atlas`), the inpainting
autoencoder, the sample back to the target (:func:`~renderer.dpt.warping.atlas_to_image`),
the blending module, and the whole model; median of ``--repeats`` after 2
warm-ups, at each thread count. The architecture is the committed checkpoint's
(or the ``cpu`` preset when it is absent); weights do not change the time.
Correspondences (pose, fit, render) are not included: see ``transfer_stages.py``.

    python benchmarks/dpt_speed.py [--checkpoint CKPT] [--threads 1 2] [--repeats 10]
"""

from __future__ import annotations

import argparse
import os

from _common import emit, median_seconds, peak_rss_mb


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--checkpoint", default=None)
    ap.add_argument("--threads", type=int, nargs="+", default=[2, 1])
    ap.add_argument("--repeats", type=int, default=10)
    args = ap.parse_args()
    import torch

    from renderer.dpt import DEFAULT_CHECKPOINT
    from renderer.dpt.model import PRESETS, DensePoseTransfer, load_dpt
    from renderer.dpt.warping import atlas_to_image, image_to_atlas

    path = str(args.checkpoint or DEFAULT_CHECKPOINT)
    trained = os.path.isfile(path)
    model = load_dpt(path) if trained else DensePoseTransfer(PRESETS["cpu"]).eval()
    c = model.config
    g = torch.Generator().manual_seed(0)
    src = torch.rand(1, 3, 256, 256, generator=g) * 2 - 1
    iuv = torch.cat([torch.randint(0, 25, (1, 1, 256, 256), generator=g) / 24, torch.rand(1, 2, 256, 256, generator=g)], 1)
    result = {"checkpoint": path if trained else "cpu preset (untrained)",
              "variant": c.variant, "size": 256, "parameters": {k: sum(p.numel() for p in getattr(model, k).parameters())
              for k in ("predictive", "inpainting", "blending") if getattr(model, k) is not None}}  # fmt: skip
    with torch.no_grad():
        pred = model.predictive(src, iuv, iuv)
        atlas = image_to_atlas(src, iuv, c.inpainting.tile)
        full = model.inpainting(atlas) if model.inpainting is not None else atlas
        warped, cover = atlas_to_image(full, iuv)
        for n in args.threads:
            torch.set_num_threads(n)
            stages = {
                "predictive": lambda: model.predictive(src, iuv, iuv),
                "atlas_scatter": lambda: image_to_atlas(src, iuv, c.inpainting.tile),
                "atlas_sample": lambda: atlas_to_image(full, iuv),
                "total": lambda: model(src, iuv, iuv),
            }
            if model.inpainting is not None:
                stages["inpainting"] = lambda: model.inpainting(atlas)
            if model.blending is not None:
                stages["blending"] = lambda: model.blending(pred, warped, cover, iuv)
            result[f"threads_{n}"] = {k: median_seconds(f, args.repeats, warmup=2) for k, f in stages.items()}
    result["peak_rss_mb"] = round(peak_rss_mb(), 1)
    emit(result)


if __name__ == "__main__":
    main()
