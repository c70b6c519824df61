"""Export a re-renderer training run as a small committed checkpoint with its model card.

``python -m renderer.export --run RUN --out checkpoints/rerenderer_cpu256.pt
[--metrics HELDOUT.json] [--extra JSON]`` reads ``RUN/checkpoints/last.pt``
(``weights_only=True``), keeps the EMA weights (or the raw generator's),
writes them with the run's config as a versioned checkpoint, and writes
``OUT`` with ``.json``: the model card (data by kind, steps, hardware, wall
time from the run's log, loss choices, and the held-out metrics of
``benchmarks/rerender_quality.py`` when given).
"""

from __future__ import annotations

import collections
import json
import os
from pathlib import Path

import numpy as np

from renderer.network import RerenderConfig, ReRenderer
from reroute.training.checkpoint import load_checkpoint, save_checkpoint
from reroute.training.modelcard import export_main, hardware, write_card

__all__ = ["export", "export_main", "main"]


def _data_summary(folder: str, kinds: list[str] | None = None) -> dict:
    paths = sorted(Path(folder).glob("*.npz"))
    counts = collections.Counter(str(np.load(p)["kind"]) for p in paths)
    if kinds:  # the run read only these kinds
        counts = collections.Counter({k: n for k, n in counts.items() if k in kinds})
    out = {"folder": folder, "items": sum(counts.values()), "by_kind": dict(counts)}
    return out | ({"kinds": list(kinds)} if kinds else {})


def export(run: str | os.PathLike, out: str | os.PathLike, metrics: dict | None = None,
           extra: dict | None = None) -> dict:  # fmt: skip
    """Write the slim checkpoint and its model card; returns the card."""
    ck = load_checkpoint(Path(run) / "checkpoints" / "last.pt", kind="rerenderer")
    model = ReRenderer(RerenderConfig.from_dict(ck["config"]["model"]))
    model.load_state_dict(ck.get("ema") or ck["generator"])
    out = Path(out)
    save_checkpoint(out, "rerenderer", ck["config"], ck["step"],
                    generator={k: v.float() for k, v in model.state_dict().items()})  # fmt: skip
    sp = Path(run) / "scalars.jsonl"
    scalars = [json.loads(x) for x in sp.read_text().splitlines() if x.strip()] if sp.is_file() else []
    data = ck["config"].get("data")
    synthetic = ck["config"].get("synthetic")
    card = {
        "name": out.stem, "file": out.name, "file_bytes": out.stat().st_size,
        "parameters": sum(p.numel() for p in model.parameters()),
        "network": "BodyMap neural re-renderer (Ianina et al. CVPR 2022 supp. C.1.2), reroute renderer/network.py",
        "config": ck["config"], "steps": int(ck["step"]),
        "weights": "EMA of generator weights" if ck.get("ema") else "generator weights",
        "data": _data_summary(data, ck["config"].get("kinds")) if data and Path(data).is_dir() else data,
        "synthetic_data": ({**_data_summary(synthetic), "weight": ck["config"].get("synthetic_weight")}
                           if synthetic and Path(synthetic).is_dir() else synthetic),
        "hardware": hardware(),
        "final_logged_losses": scalars[-1] if scalars else None,
        "perceptual_loss": "none: ImageNet VGG19 weights are not available on this machine",
    }  # fmt: skip
    return write_card(out, card, metrics, extra)


def main(argv=None) -> int:
    return export_main(argv, "python -m renderer.export", __doc__.split("\n")[0], export,
                       ("file", "file_bytes", "parameters", "steps"))  # fmt: skip


if __name__ == "__main__":
    raise SystemExit(main())
