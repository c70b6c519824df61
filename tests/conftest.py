"""Fixtures shared by several test modules."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def tiny_rerenderer(tmp_path_factory) -> Path:
    """A valid, untrained re-renderer checkpoint (``tiny`` preset) named like the committed one.

    ``checkpoints/rerenderer_cpu256.pt`` in a temporary folder (so the folder can
    be an app's ``--checkpoints``). Its last layer is zero-initialised, so it
    returns (almost exactly) the warp-only composite it is given: the tests check
    that it ran, not what it learned.
    """
    from renderer.network import PRESETS, ReRenderer
    from reroute.training.checkpoint import save_checkpoint

    path = tmp_path_factory.mktemp("checkpoints") / "rerenderer_cpu256.pt"
    model = ReRenderer(PRESETS["tiny"])
    save_checkpoint(path, "rerenderer", {"model": PRESETS["tiny"].to_dict()}, 0,
                    generator=model.state_dict())  # fmt: skip
    return path
