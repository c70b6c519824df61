"""Correspondence methods as the pipelines, the CLI and the app choose them: by name.

The names are those of :data:`reroute.pipelines.registry.CORRESPONDENCES` (owned by
:mod:`reroute.correspondence.analyse`): ``fit`` keeps the fitted anny body's rendered
correspondences, ``bodymap`` refines them with the BodyMap network
(:mod:`reroute.correspondence.bodymap`), which needs a checkpoint (default
``checkpoints/bodymap_cpu256.pt``). Every pipeline takes ``correspondence=`` and
``bodymap_checkpoint=`` and loads the network in its constructor through
:func:`load_correspondence`, so a missing checkpoint fails before any photo is
read; callers above the pipelines (the app) check a checkpoint through it too.
"""

from __future__ import annotations

from pathlib import Path

from reroute.correspondence.analyse import (
    CORRESPONDENCES,
    DEFAULT_CORRESPONDENCE,
    LEARNED_CORRESPONDENCES,
    check_correspondence,
    load_correspondence_model,
)

__all__ = [
    "CORRESPONDENCES",
    "DEFAULT_CORRESPONDENCE",
    "LEARNED_CORRESPONDENCES",
    "check_correspondence",
    "load_correspondence",
]


def load_correspondence(method: str, checkpoint: str | Path | None = None) -> None:
    """Check ``method`` and, for a learned one, load its network now (cached per path, so
    the analyses that follow reuse it).

    Args:
        method: a name of :data:`CORRESPONDENCES` (``fit`` or ``bodymap``).
        checkpoint: the BodyMap checkpoint (``.pt``, kind ``"bodymap"``); ``None`` for
            the committed default. Ignored for ``fit``.
    Raises:
        InputError: unknown method, or the checkpoint is missing or not a ``bodymap``
            one (one line naming the file).
    """
    load_correspondence_model(method, checkpoint)
