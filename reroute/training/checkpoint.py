"""Versioned checkpoints, read with ``torch.load(weights_only=True)``.

A checkpoint is a dict ``{"format": "reroute.checkpoint", "version": 1,
"kind": KIND, "config": {...plain values...}, "step": N, **state}`` written
atomically (:func:`reroute.io.files.atomic_path`). ``config`` rebuilds the
network (each network's config dataclass has ``from_dict``), ``kind`` names
what it holds (e.g. ``"texture_completion"``), and a newer ``version`` than
this reroute reads is refused with a one-line error.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from reroute.errors import InputError
from reroute.io.files import atomic_path

__all__ = ["CHECKPOINT_FORMAT", "CHECKPOINT_VERSION", "save_checkpoint", "load_checkpoint", "plain_values",
           "dataclass_from_dict"]

CHECKPOINT_FORMAT = "reroute.checkpoint"


CHECKPOINT_VERSION = 1


def save_checkpoint(path: str | os.PathLike, kind: str, config: dict, step: int,
                    **state: Any) -> None:  # fmt: skip
    """Write a versioned checkpoint atomically.

    Args:
        kind: what it holds (e.g. "texture_completion"); config: plain values only.
        step: completed generator steps; state: state dicts / tensors / plain values.
    """
    obj = {"format": CHECKPOINT_FORMAT, "version": CHECKPOINT_VERSION, "kind": kind,
           "config": config, "step": int(step), **state}  # fmt: skip
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


def load_checkpoint(path: str | os.PathLike, kind: str | None = None,
                    map_location: str | torch.device = "cpu") -> dict:  # fmt: skip
    """Read a checkpoint with ``torch.load(weights_only=True)`` and check its header.

    Raises:
        InputError: missing file, not a reroute checkpoint, newer format version,
            or a different ``kind``.
    """
    p = Path(path)
    if not p.is_file():
        raise InputError(f"checkpoint {p} does not exist")
    try:
        ck = torch.load(p, map_location=map_location, weights_only=True)
    except Exception as e:  # noqa: BLE001 - any unpickling failure is a bad file
        raise InputError(f"checkpoint {p} could not be read safely: {e}") from None
    if not isinstance(ck, dict) or ck.get("format") != CHECKPOINT_FORMAT:
        raise InputError(f"{p} is not a reroute checkpoint")
    if int(ck.get("version", 0)) > CHECKPOINT_VERSION:
        raise InputError(
            f"{p} has checkpoint version {ck['version']}; this reroute reads <= {CHECKPOINT_VERSION}"
        )
    if kind is not None and ck.get("kind") != kind:
        raise InputError(f"{p} holds a {ck.get('kind')!r} checkpoint, expected {kind!r}")
    return ck


def plain_values(x):
    """Config values as checkpoint-safe plain types (tuples -> lists)."""
    if isinstance(x, dict):
        return {str(k): plain_values(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [plain_values(v) for v in x]
    if x is None or isinstance(x, (bool, int, float, str)):
        return x
    return str(x)


def dataclass_from_dict(cls, d: dict):
    """``cls(**d)`` for a config dataclass read back from a checkpoint: unknown keys are
    dropped and lists become tuples where the field's default is a tuple (JSON-like
    checkpoint configs store tuples as lists)."""
    import dataclasses

    kw = {}
    for f in dataclasses.fields(cls):
        if f.name in d:
            v = d[f.name]
            kw[f.name] = tuple(v) if isinstance(f.default, tuple) and isinstance(v, list) else v
    return cls(**kw)
