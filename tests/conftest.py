"""Fixtures shared by several test modules."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch


@pytest.fixture
def one_thread():
    """Torch single-threaded for the test (the body fit is then deterministic)."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


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


@pytest.fixture(scope="session")
def tiny_seen_rerenderer(tmp_path_factory) -> Path:
    """A ``tiny`` re-renderer checkpoint with the seen input whose output depends on it.

    Untrained except for one weight: the head's first RGB channel reads the seen
    map (+0.5 per unit seen), so a pipeline that passes a seen map of zeros and
    one of ones give visibly different images.
    """
    from dataclasses import replace

    import torch

    from renderer.network import PRESETS, ReRenderer
    from reroute.training.checkpoint import save_checkpoint

    config = replace(PRESETS["tiny"], seen_input=True)
    model = ReRenderer(config)
    with torch.no_grad():
        model.head.weight[0, -1, 1, 1] = 0.5
    path = tmp_path_factory.mktemp("seen_checkpoints") / "rerenderer_cpu256.pt"
    save_checkpoint(path, "rerenderer", {"model": config.to_dict()}, 0, generator=model.state_dict())
    return path
