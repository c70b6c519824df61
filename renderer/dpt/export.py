"""Export a Dense Pose Transfer run as a small committed checkpoint with its model card.

``python -m renderer.dpt.export --run RUN --out checkpoints/dpt_cpu256.pt
[--metrics HELDOUT.json] [--extra JSON]`` reads ``RUN/checkpoints/last.pt``
(``weights_only=True``), keeps the EMA weights (or the raw generator's), writes
them with the run's config as a versioned ``dpt`` checkpoint, and writes ``OUT``
with ``.json``: the model card (data by kind, the steps of every stage it was
built from, hardware, loss choices, and the held-out metrics of
``benchmarks/dpt_quality.py`` when given).
"""

from __future__ import annotations

import collections
import os
from pathlib import Path

import numpy as np

from renderer.dpt.model import DensePoseTransfer, DPTConfig
from reroute.training.checkpoint import load_checkpoint, save_checkpoint
from reroute.training.modelcard import export_main, hardware, write_card

__all__ = ["export", "main"]


def _data_summary(folder: str) -> dict:
    paths = sorted(Path(folder).glob("*.npz"))
    kinds = collections.Counter(str(np.load(p)["kind"]) for p in paths)
    return {"folder": folder, "pairs": len(paths), "by_kind": dict(kinds),
            "served": "each pair in both directions, colour jitter"}  # fmt: skip


def _stage(path: str | None, kind: str) -> dict | None:
    if not path or not Path(path).is_file():
        return None
    ck = load_checkpoint(path, kind=kind)
    return {"checkpoint": str(path), "steps": int(ck["step"]), "batch_size": ck["config"]["train"]["batch_size"]}


def export(run: str | os.PathLike, out: str | os.PathLike, metrics: dict | None = None,
           extra: dict | None = None) -> dict:  # fmt: skip
    """Write the slim checkpoint and its model card; returns the card."""
    ck = load_checkpoint(Path(run) / "checkpoints" / "last.pt", kind="dpt")
    cfg = ck["config"]
    model = DensePoseTransfer(DPTConfig.from_dict(cfg["model"]))
    model.load_state_dict(ck.get("ema") or ck["generator"])
    out = Path(out)
    save_checkpoint(out, "dpt", cfg, ck["step"], generator={k: v.float() for k, v in model.state_dict().items()})
    data = cfg.get("data")
    vgg = cfg["loss"]["perceptual"] > 0 or cfg["loss"]["style"] > 0
    card = {
        "name": out.stem, "file": out.name, "file_bytes": out.stat().st_size,
        "parameters": {k: sum(p.numel() for p in getattr(model, k).parameters())
                       for k in ("predictive", "inpainting", "blending") if getattr(model, k) is not None},
        "network": "Dense Pose Transfer (Neverova, Guler, Kokkinos, ECCV 2018), reroute renderer/dpt/",
        "variant": cfg["model"]["variant"], "config": cfg,
        "stages": {"predictive": _stage(cfg.get("predictive_init"), "dpt"),
                   "inpainting": _stage(cfg.get("inpainting_init"), "dpt_inpainting"),
                   cfg["model"]["variant"]: {"steps": int(ck["step"]), "frozen_pretrained_streams": cfg.get("freeze")}},
        "weights": "EMA of generator weights" if ck.get("ema") else "generator weights",
        "data": _data_summary(data) if data and Path(data).is_dir() else data,
        "correspondences": "reroute's anny fit (frozen), not DensePose R-CNN",
        "hardware": hardware(),
        "perceptual_and_style_loss": (cfg["feature_net"] if vgg else
                                      "none: ImageNet VGG19 weights are not available on this machine"),
    }  # fmt: skip
    return write_card(out, card, metrics, extra)


def main(argv=None) -> int:
    return export_main(argv, "python -m renderer.dpt.export", __doc__.split("\n")[0], export,
                       ("file", "file_bytes", "parameters"))  # fmt: skip


if __name__ == "__main__":
    raise SystemExit(main())
