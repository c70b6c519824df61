"""Export a training run's generator as a small committed checkpoint with its model card.

``python -m texture.export --run RUN --out checkpoints/texture_completion_cpu256.pt
--heldout HELDOUT.npz [--card-note TEXT]`` reads ``RUN/checkpoints/last.pt``
(``weights_only=True``), keeps the generator's EMA weights (or its raw weights),
writes them with the run's config as a versioned checkpoint, scores network and
classical fill on the held-out cache, and writes ``OUT`` with ``.json`` (the model
card: data, steps, hardware, wall time, held-out metrics, loss choices).
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import torch

from reroute.io.files import write_text_atomic
from reroute.training.checkpoint import load_checkpoint, save_checkpoint
from reroute.training.modelcard import cpu_name
from texture.data import load_texture_cache
from texture.evaluate import evaluate_heldout
from texture.network import TextureNetConfig, TextureUNet

__all__ = ["export", "cpu_name", "main"]


def export(run: str | os.PathLike, out: str | os.PathLike, heldout: str | None,
           extra: dict | None = None, limit: int | None = None) -> dict:  # fmt: skip
    """Write the slim checkpoint and its model card; returns the card."""
    ck = load_checkpoint(Path(run) / "checkpoints" / "last.pt", kind="texture_completion")
    state = ck.get("ema") or ck["generator"]
    model = TextureUNet(TextureNetConfig.from_dict(ck["config"]["model"]))
    model.load_state_dict(state)
    model.eval()
    out = Path(out)
    save_checkpoint(out, "texture_completion", ck["config"], ck["step"],
                    generator={k: v.float() for k, v in model.state_dict().items()})  # fmt: skip
    scalars = []
    sp = Path(run) / "scalars.jsonl"
    if sp.is_file():
        scalars = [json.loads(x) for x in sp.read_text().splitlines() if x.strip()]
    card = {
        "name": out.stem,
        "file": out.name,
        "file_bytes": out.stat().st_size,
        "parameters": sum(p.numel() for p in model.parameters()),
        "network": "BodyMap texture completion U-Net (Ianina et al. CVPR 2022 supp. C.1.1), "
        "reroute texture/network.py",
        "config": ck["config"],
        "steps": int(ck["step"]),
        "weights": "EMA of generator weights" if ck.get("ema") else "generator weights",
        "hardware": {
            "cpu": cpu_name(),
            "cpu_count": os.cpu_count(),
            "gpu": None,
            "torch": torch.__version__,
        },  # fmt: skip
        "final_logged_losses": scalars[-1] if scalars else None,
        "honest_note": "A small CPU model: trained for a few minutes on a shared 2-core CPU "
        "with one torch thread; far from the paper's training. Use it to exercise the "
        "network path; its quality is the held-out table below, nothing more.",
    }
    if extra:
        card.update(extra)
    if heldout:
        cache = load_texture_cache(heldout)
        card["heldout"] = {"data": str(Path(heldout).name), "seed": cache.seed,
                           "first_identity": cache.start,
                           **evaluate_heldout(model, cache, limit)}  # fmt: skip
    path = out.with_suffix(".json")
    write_text_atomic(path, json.dumps(card, indent=1))
    return card


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m texture.export", description=__doc__.split("\n")[0])
    p.add_argument("--run", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--heldout")
    p.add_argument("--limit", type=int)
    p.add_argument("--extra", help="JSON object merged into the model card")
    a = p.parse_args(argv)
    torch.set_num_threads(1)
    card = export(a.run, a.out, a.heldout, json.loads(a.extra) if a.extra else None, a.limit)
    print(json.dumps(card.get("heldout", {}), indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
