"""BodyMap neural re-renderer (Ianina et al., CVPR 2022, supplementary C.1.2).

* :mod:`renderer.network`: :class:`~renderer.network.ReRenderer` (U-Net on the
  target view with a texture encoder into the bottleneck, residual RGB and an
  alpha matte) and :func:`~renderer.network.rerender_image`;
* :mod:`renderer.losses`: feature matching, face-region L1, MS-SSIM, and the
  weighted sum (hinge GAN and TV shared with :mod:`texture.losses`);
* :mod:`renderer.data`: training pairs from real photos (self-reconstruction,
  cross-pose DeepFashion pairs, video frame pairs) and synthetic renders;
* :mod:`renderer.train`: ``python -m renderer.train --preset tiny|cpu|paper``
  (also under torchrun), built on :mod:`reroute.training.trainer`;
* :mod:`renderer.export`: the committed checkpoint and its model card.

The pipelines use :func:`load_default_rerenderer` and :func:`rerender_image`;
``rerender="none"`` keeps the warp-only composite.
"""

from __future__ import annotations

import functools
from pathlib import Path

from renderer.network import ReRenderer, load_rerenderer, rerender_image, seen_map

__all__ = [
    "DEFAULT_CHECKPOINT",
    "RERENDER_METHODS",
    "ReRenderer",
    "load_default_rerenderer",
    "rerender_image",
    "seen_map",
]

#: the committed 256 px CPU checkpoint (see its .json model card)
DEFAULT_CHECKPOINT = Path(__file__).resolve().parents[1] / "checkpoints" / "rerenderer_cpu256.pt"
#: re-rendering choices, name -> one-line description (the registry's source)
RERENDER_METHODS: dict[str, str] = {
    "none": "no re-rendering: the warped texture composited over the background is the output",
    "network": "BodyMap's neural re-renderer (supp. C.1.2; renderer.network)",
}


@functools.lru_cache(maxsize=2)
def load_default_rerenderer(path: str | None = None) -> ReRenderer:
    """The re-renderer from ``path`` (default :data:`DEFAULT_CHECKPOINT`), cached, eval mode.

    Raises :class:`reroute.errors.InputError` when the file is missing or not a
    re-renderer checkpoint.
    """
    return load_rerenderer(str(path) if path else DEFAULT_CHECKPOINT)
