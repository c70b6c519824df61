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
import sys
from pathlib import Path

import torch

from reroute.errors import InputError
from reroute.io.files import write_text_atomic

__all__ = ["cpu_name", "hardware", "write_card", "export_main", "read_json_object"]


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
    p.add_argument("--extra", help="JSON object merged into the model card: inline, or a .json file's path")
    a = p.parse_args(argv)
    try:
        metrics = None
        if a.metrics:
            raw = read_json_object(a.metrics, "--metrics", inline=False)
            metrics = {k: ({kk: vv for kk, vv in v.items() if kk != "per_pair"} if isinstance(v, dict) else v)
                       for k, v in raw.items()}  # fmt: skip
        extra = read_json_object(a.extra, "--extra", inline=True) if a.extra else None
    except InputError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    card = export_fn(a.run, a.out, metrics, extra)
    print(json.dumps({k: card[k] for k in keys}))
    return 0


def read_json_object(value: str, option: str, inline: bool) -> dict:
    """A JSON object from a file path, or (``inline``) from the text itself when it starts with ``{``.

    Args:
        value: the option's text: a path to a ``.json`` file, or inline JSON.
        option: the option's name, for the error message (e.g. ``"--extra"``).
        inline: accept inline JSON as well as a path.
    Returns:
        the parsed object (a dict).
    Raises:
        InputError: the file is missing, or the text is not a JSON object (one line naming ``option``).
    """
    text = value
    if not (inline and value.lstrip().startswith("{")):
        path = Path(value)
        if not path.is_file():
            raise InputError(f"{option}: {value} is not a file" + (" or an inline JSON object" if inline else ""))
        text = path.read_text()
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as e:
        raise InputError(f"{option}: not valid JSON ({e})") from None
    if not isinstance(obj, dict):
        raise InputError(f"{option}: expected a JSON object, got {type(obj).__name__}")
    return obj
