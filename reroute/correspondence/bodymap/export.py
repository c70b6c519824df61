"""Export a BodyMap training run as a small committed checkpoint with its model card.

``python -m reroute.correspondence.bodymap.export --run RUN --out checkpoints/bodymap_cpu256.pt
[--metrics HELDOUT.json] [--extra JSON]`` reads ``RUN/checkpoints/last.pt``
(``weights_only=True``), keeps the EMA weights (or the raw network's), writes them
with the run's config as a versioned ``bodymap`` checkpoint, and writes ``OUT`` with
``.json``: the model card (network, parameters, data, steps, hardware, wall time
from the run's scalars, and the held-out metrics of ``benchmarks/bodymap_quality.py``
when given).
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from reroute.correspondence.bodymap.network import BodyMapConfig, BodyMapNet, parameter_count
from reroute.training.checkpoint import load_checkpoint, save_checkpoint
from reroute.training.modelcard import export_main, hardware, write_card

__all__ = ["export", "training_data", "main"]


def training_data(cfg: dict) -> dict:
    """The model card's ``data``: what a run's config (``BodyMapTaskConfig.config_dict``) trained on.

    For prepared sets, each file's ``meta`` (read memory-mapped, ``weights_only=True``):
    kind, counts, the real frames used, and what was skipped; a file no longer there is
    named as missing."""
    if not cfg.get("prepared"):
        return {"kind": "synthetic anny people rendered on the fly (reroute.synth.engine, seed 0), "
                        "initial correspondences from the perturbed true body (perturbation in config)",
                "real_frames": "none used for training"}  # fmt: skip
    sets = []
    for p in cfg["prepared"]:
        try:
            meta = torch.load(p, map_location="cpu", weights_only=True, mmap=True).get("meta", {})
        except (OSError, RuntimeError):
            meta = {"missing": True}
        sets.append({"file": Path(p).name, **meta})
    return {"kind": "prepared sets (reroute.correspondence.bodymap.prepared): the real template fit as "
                    "initialisation; synthetic renders with exact targets, real frames with DensePose "
                    "R-CNN part labels (part and silhouette terms only)",
            "repeat_real": cfg.get("repeat_real", 1), "sets": sets}  # fmt: skip


def export(run: str | os.PathLike, out: str | os.PathLike, metrics: dict | None = None,
           extra: dict | None = None) -> dict:  # fmt: skip
    """Write the slim checkpoint and its model card; returns the card."""
    ck = load_checkpoint(Path(run) / "checkpoints" / "last.pt", kind="bodymap")
    cfg = ck["config"]
    model = BodyMapNet(BodyMapConfig.from_dict(cfg["model"]))
    model.load_state_dict(ck.get("ema") or ck["generator"])
    out = Path(out)
    save_checkpoint(out, "bodymap", cfg, ck["step"], generator={k: v.float() for k, v in model.state_dict().items()})
    train = cfg.get("train", {})
    card = {
        "name": out.stem, "file": out.name, "file_bytes": out.stat().st_size,
        "parameters": parameter_count(model),
        "network": "BodyMap (Ianina et al., CVPR 2022), reroute reroute/correspondence/bodymap/",
        "variant": cfg["model"]["variant"], "config": cfg, "steps": int(ck["step"]),
        "images_seen": int(ck["step"]) * int(train.get("batch_size", 0)),
        "weights": "EMA of network weights" if ck.get("ema") else "network weights",
        "data": training_data(cfg),
        "hardware": hardware(),
    }  # fmt: skip
    return write_card(out, card, metrics, extra)


def main(argv=None) -> int:
    return export_main(argv, "python -m reroute.correspondence.bodymap.export", __doc__.split("\n")[0], export,
                       ("file", "file_bytes", "parameters", "steps"))  # fmt: skip


if __name__ == "__main__":
    raise SystemExit(main())
