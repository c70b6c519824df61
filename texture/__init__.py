"""BodyMap texture-completion network (Ianina et al., CVPR 2022, supplementary C.1.1).

* :mod:`texture.classical`: mirror fill + push-pull, no network;
* :mod:`texture.network`: the U-Net (:class:`~texture.network.TextureUNet`) and
  :func:`~texture.network.complete_network`;
* :mod:`texture.discriminator`: the multi-scale PatchGAN;
* :mod:`texture.losses`: hinge GAN, VGG perceptual L1, TV, masked L1;
* :mod:`texture.data`: partial/full pairs from the synthetic engine;
* :mod:`texture.train`: ``python -m texture.train --preset tiny|cpu|paper``
  (also under torchrun), built on :mod:`reroute.training.trainer`;
* :mod:`texture.evaluate`, :mod:`texture.export`: held-out scores, model cards.

:func:`complete_texture` is the one entry point the pipelines use: ``"classical"``
(:func:`texture.classical.complete_classical`) or ``"network"`` (the committed
checkpoint :data:`DEFAULT_CHECKPOINT` or a given one).
"""

from __future__ import annotations

import functools
from pathlib import Path

from reroute.errors import InputError
from texture.classical import complete_classical
from texture.network import complete_network, load_texture_net

__all__ = ["DEFAULT_CHECKPOINT", "TEXTURE_METHODS", "complete_texture", "load_default_network"]

#: the committed 256x256-UV CPU checkpoint (see its .json model card).
DEFAULT_CHECKPOINT = (
    Path(__file__).resolve().parents[1] / "checkpoints" / "texture_completion_cpu256.pt"
)
#: texture completion methods, name -> one-line description (the registry's source)
TEXTURE_METHODS: dict[str, str] = {
    "classical": "mirror fill + push-pull inside the UV islands (texture.classical)",
    "network": "the texture completion U-Net (BodyMap supp. C.1.1; texture.network)",
}


@functools.lru_cache(maxsize=2)
def load_default_network(path: str | None = None):
    """The texture network from ``path`` (default :data:`DEFAULT_CHECKPOINT`), cached, eval mode.

    Raises :class:`reroute.errors.InputError` when the file is missing or not a
    texture-completion checkpoint.
    """
    return load_texture_net(path or DEFAULT_CHECKPOINT)


def complete_texture(partial, method: str = "classical", checkpoint: str | None = None):
    """Complete a partial :class:`reroute.uv.texture.UVTexture` (T, T).

    Args:
        method: "classical" (mirror fill + push-pull) or "network" (the U-Net;
            T must be divisible by 2**depth of the checkpoint, 64 for the committed one).
        checkpoint: network checkpoint path (default :data:`DEFAULT_CHECKPOINT`).
    Returns:
        the completed UVTexture (pixels in [0, 1], visibility 1 on the UV islands).
    Raises:
        InputError: unknown method, missing checkpoint, or a texture size the network cannot take.
    """
    if method == "classical":
        return complete_classical(partial)
    if method != "network":
        raise InputError(f"texture completion must be one of {tuple(TEXTURE_METHODS)}, got {method!r}")

    model = load_default_network(str(checkpoint) if checkpoint else None)
    step = 2**model.config.depth
    if partial.size % step:
        raise InputError(
            f"the texture network needs a texture size divisible by {step}, got {partial.size}"
        )
    return complete_network(partial, model)
