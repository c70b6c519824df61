"""Texture completion as the pipelines and the app choose it: by name, from the registry.

The names are those of :data:`reroute.pipelines.registry.TEXTURE_COMPLETIONS`
(``classical``: mirror fill + push-pull; ``network``: the texture completion
U-Net of :mod:`texture`, which needs a checkpoint). Callers above the
pipelines (the app) check, load and run a completion through these functions
and never import :mod:`texture` themselves.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path

from reroute.errors import InputError
from reroute.pipelines.registry import TEXTURE_COMPLETIONS
from reroute.uv.texture import UVTexture
from texture import complete_texture, load_default_network

__all__ = [
    "DEFAULT_COMPLETION",
    "LEARNED_COMPLETIONS",
    "check_completion",
    "needs_checkpoint",
    "load_completion",
    "run_completion",
    "completion_function",
]

#: the completion used when none is asked for (no network, deterministic)
DEFAULT_COMPLETION: str = next(iter(TEXTURE_COMPLETIONS))

#: completions that run a trained network, so need a loadable checkpoint
LEARNED_COMPLETIONS: tuple[str, ...] = ("network",)

assert DEFAULT_COMPLETION not in LEARNED_COMPLETIONS
assert set(LEARNED_COMPLETIONS) <= set(TEXTURE_COMPLETIONS)


def check_completion(method: object) -> str:
    """``method`` if it names a texture completion of the registry.

    Raises:
        InputError: unknown name (one sentence naming the choices).
    """
    if method not in tuple(TEXTURE_COMPLETIONS):
        raise InputError(
            f"unknown texture completion {method!r}; choose {' or '.join(TEXTURE_COMPLETIONS)}"
        )
    return str(method)


def needs_checkpoint(method: str) -> bool:
    """Whether completion ``method`` runs a trained network (see :data:`LEARNED_COMPLETIONS`)."""
    return method in LEARNED_COMPLETIONS


def load_completion(method: str, checkpoint: str | Path | None = None) -> None:
    """Check ``method`` and, for a learned one, load its network now (cached per path).

    Loading once at start-up lets every later :func:`run_completion` with the
    same checkpoint share the one network (eval mode, CPU).

    Args:
        method: a name of :data:`~reroute.pipelines.registry.TEXTURE_COMPLETIONS`.
        checkpoint: the network's checkpoint (``.pt`` or ``.safetensors``);
            ``None`` for the committed default. Ignored for ``classical``.
    Raises:
        InputError: unknown method, or the file is missing or not a texture
            completion checkpoint; other exceptions of the loader (a corrupt
            file) pass through.
    """
    check_completion(method)
    if needs_checkpoint(method):
        load_default_network(str(checkpoint) if checkpoint else None)


def run_completion(partial: UVTexture, method: str,
                   checkpoint: str | Path | None = None) -> UVTexture:  # fmt: skip
    """Complete a partial texture with ``method``.

    Args:
        partial: (T, T) :class:`~reroute.uv.texture.UVTexture`, pixels float32
            RGB in [0, 1] and visibility in [0, 1].
        method: a name of :data:`~reroute.pipelines.registry.TEXTURE_COMPLETIONS`.
        checkpoint: the network checkpoint of a learned method (``None``: the
            committed default); ignored for ``classical``.
    Returns:
        The completed (T, T) UVTexture (pixels in [0, 1], visibility 1 on the UV islands).
    Raises:
        InputError: unknown method, missing checkpoint, or a texture size the network cannot take.
    """
    check_completion(method)
    ckpt = str(checkpoint) if checkpoint and needs_checkpoint(method) else None
    return complete_texture(partial, method, ckpt)


def completion_function(method: str,
                        checkpoint: str | Path | None = None) -> Callable[[UVTexture], UVTexture]:  # fmt: skip
    """``partial -> completed`` for ``method`` (see :func:`run_completion`), checked now.

    For :class:`~reroute.pipelines.tryon.TryOnPipeline`'s ``complete`` argument.

    Raises:
        InputError: unknown method.
    """
    check_completion(method)
    return functools.partial(run_completion, method=method, checkpoint=checkpoint)
