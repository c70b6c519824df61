"""Model cards of committed checkpoints: the hardware line and the shared export command line.

Every trained network has an ``export`` module (``texture.export``,
``renderer.export``, ``renderer.dpt.export``,
``reroute.correspondence.bodymap.export``) that slims a run's last checkpoint
and writes its JSON model card beside it; :func:`export_main` is their common
command line and :func:`cpu_name` names the CPU for the card's hardware entry.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
from pathlib import Path

import torch

from reroute.io.files import write_text_atomic

__all__ = ["cpu_name", "hardware", "write_card", "export_main"]


def cpu_name() -> str:
    """The CPU model from /proc/cpuinfo (or the platform's processor name)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def hardware() -> dict:
    """The card's hardware entry: CPU model and count, GPU (None: CPU training), torch version."""
    return {"cpu": cpu_name(), "cpu_count": os.cpu_count(), "gpu": None, "torch": torch.__version__}


def write_card(out: str | os.PathLike, card: dict, metrics: dict | None = None, extra: dict | None = None) -> dict:
    """Add the held-out ``metrics`` (as ``heldout``) and ``extra`` to ``card`` and write it
    atomically beside the checkpoint ``out`` as ``OUT.json``; returns the card."""
    if metrics:
        card["heldout"] = metrics
    card.update(extra or {})
    write_text_atomic(Path(out).with_suffix(".json"), json.dumps(card, indent=1))
    return card


def export_main(argv, prog: str, description: str, export_fn, keys: tuple[str, ...]) -> int:
    """The command line of an export module: ``--run``, ``--out``, ``--metrics`` (a benchmark's
    JSON, per-pair rows dropped), ``--extra`` (JSON merged into the card); calls
    ``export_fn(run, out, metrics, extra)`` and prints the card's ``keys`` as one JSON line."""
    p = argparse.ArgumentParser(prog=prog, description=description)
    p.add_argument("--run", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--metrics", help="JSON of the held-out benchmark (per-pair rows dropped)")
    p.add_argument("--extra", help="JSON object merged into the model card")
    a = p.parse_args(argv)
    metrics = None
    if a.metrics:
        raw = json.loads(Path(a.metrics).read_text())
        metrics = {k: ({kk: vv for kk, vv in v.items() if kk != "per_pair"} if isinstance(v, dict) else v)
                   for k, v in raw.items()}  # fmt: skip
    card = export_fn(a.run, a.out, metrics, json.loads(a.extra) if a.extra else None)
    print(json.dumps({k: card[k] for k in keys}))
    return 0
