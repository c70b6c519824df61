"""Neural re-rendering as the pipelines and the app choose it: by name.

The names are those of :data:`reroute.pipelines.registry.RERENDERINGS` (owned by
:mod:`renderer`): ``none`` keeps the warp-only composite, ``network`` runs
BodyMap's neural re-renderer (:mod:`renderer.network`), which needs a
checkpoint. The try-on and novel-view pipelines get their network from
:func:`load_rerendering`; callers above the pipelines (the app) check a
checkpoint through it and never import :mod:`renderer` themselves.
"""

from __future__ import annotations

from pathlib import Path

from renderer import RERENDER_METHODS, ReRenderer, load_default_rerenderer
from reroute.errors import InputError

__all__ = [
    "DEFAULT_RERENDERING",
    "LEARNED_RERENDERINGS",
    "check_rerendering",
    "load_rerendering",
]

#: the re-rendering used when none is asked for (the warp-only composite)
DEFAULT_RERENDERING: str = "none"

#: re-renderings that run a trained network, so need a loadable checkpoint
LEARNED_RERENDERINGS: tuple[str, ...] = ("network",)

assert DEFAULT_RERENDERING in RERENDER_METHODS and DEFAULT_RERENDERING not in LEARNED_RERENDERINGS
assert set(LEARNED_RERENDERINGS) <= set(RERENDER_METHODS)


def check_rerendering(method: object) -> str:
    """``method`` if it names a re-rendering of the registry.

    Raises:
        InputError: unknown name (one sentence naming the choices).
    """
    if method not in tuple(RERENDER_METHODS):
        raise InputError(f"unknown re-rendering {method!r}; choose {' or '.join(RERENDER_METHODS)}")
    return str(method)


def load_rerendering(method: str, checkpoint: str | Path | None = None) -> ReRenderer | None:
    """Check ``method`` and, for a learned one, load its network now (cached per path).

    Args:
        method: a name of :data:`~reroute.pipelines.registry.RERENDERINGS`.
        checkpoint: the re-renderer checkpoint (``.pt``, kind ``"rerenderer"``);
            ``None`` for the committed default (:data:`renderer.DEFAULT_CHECKPOINT`).
            Ignored for ``none``.
    Returns:
        The :class:`~renderer.network.ReRenderer` in eval mode (CPU), shared by
        every caller with the same path; ``None`` for ``none``.
    Raises:
        InputError: unknown method, or the file is missing or not a
            re-renderer checkpoint (the message names the file); other
            exceptions of the loader (a corrupt file) pass through.
    """
    check_rerendering(method)
    if method not in LEARNED_RERENDERINGS:
        return None
    return load_default_rerenderer(str(checkpoint) if checkpoint else None)
