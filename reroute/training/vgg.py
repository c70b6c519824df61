"""VGG19 feature extractor for perceptual losses (Simonyan & Zisserman 2015).

torchvision's ``vgg19`` definition with ImageNet weights read from disk, never
downloaded: the standard torch cache
(``~/.cache/torch/hub/checkpoints/vgg19-dcbb9e9d.pth``, i.e.
``$TORCH_HOME/hub/checkpoints``) or an explicit path. When the file is absent
:func:`load_vgg19_features` raises :class:`VGGWeightsMissing`, whose message
says where to put it. An untrained network is used only when the caller names
it explicitly (``feature_net="untrained-vgg19"``); the choice is reported by
:attr:`VGG19Features.feature_net` so model cards can record it.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import nn

from reroute.errors import InputError

__all__ = [
    "VGG19_FILE",
    "FEATURE_NETS",
    "VGGWeightsMissing",
    "VGG19Features",
    "default_vgg19_path",
    "load_vgg19_features",
]

#: torchvision's ImageNet VGG19 weight file name (``VGG19_Weights.IMAGENET1K_V1``).
VGG19_FILE = "vgg19-dcbb9e9d.pth"
#: accepted ``feature_net`` names.
FEATURE_NETS = ("vgg19", "untrained-vgg19")
#: indices in ``vgg19().features`` of relu1_1, relu2_1, relu3_1, relu4_1, relu5_1
#: (the five layers of pix2pixHD's / BodyMap's perceptual loss).
DEFAULT_LAYERS = (1, 6, 11, 20, 29)
_MEAN = (0.485, 0.456, 0.406)
_STD = (0.229, 0.224, 0.225)


class VGGWeightsMissing(InputError):
    """The ImageNet VGG19 weight file is not on disk."""


def default_vgg19_path() -> Path:
    """Where torchvision would cache the weights: ``$TORCH_HOME/hub/checkpoints/vgg19-dcbb9e9d.pth``."""
    return Path(torch.hub.get_dir()) / "checkpoints" / VGG19_FILE


class VGG19Features(nn.Module):
    """Frozen VGG19 activations at several layers.

    Args:
        features: ``torchvision.models.vgg19().features`` (weights already loaded).
        layers: indices of the ReLU outputs to return (default relu1_1 .. relu5_1).
        feature_net: the name recorded in model cards ("vgg19" or "untrained-vgg19").

    ``forward(x)``: x (B, 3, H, W) float in [-1, 1] (RGB) -> list of len(layers)
    tensors (B, C_i, H / 2^i, W / 2^i). Inputs are mapped to ImageNet
    normalisation inside. Parameters never require gradients.
    """

    def __init__(self, features: nn.Sequential, layers=DEFAULT_LAYERS,
                 feature_net: str = "vgg19"):  # fmt: skip
        super().__init__()
        self.layers = tuple(int(i) for i in layers)
        self.features = features[: max(self.layers) + 1].eval()
        self.feature_net = feature_net
        for p in self.parameters():
            p.requires_grad_(False)
        self.register_buffer("mean", torch.tensor(_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(_STD).view(1, 3, 1, 1), persistent=False)

    def train(self, mode: bool = True):  # always frozen, always eval
        return super().train(False)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        if x.ndim != 4 or x.shape[1] != 3:
            raise ValueError(f"VGG19Features: expected (B, 3, H, W), got {tuple(x.shape)}")
        h = ((x + 1) * 0.5 - self.mean) / self.std
        out = []
        for i, layer in enumerate(self.features):
            h = layer(h)
            if i in self.layers:
                out.append(h)
        return out


def load_vgg19_features(feature_net: str = "vgg19", weights_path: str | os.PathLike | None = None,
                        layers=DEFAULT_LAYERS) -> VGG19Features:  # fmt: skip
    """Build :class:`VGG19Features`.

    Args:
        feature_net: "vgg19" (ImageNet weights, required on disk) or
            "untrained-vgg19" (explicitly chosen random init, seeded 0; no file read).
        weights_path: the weight file; default :func:`default_vgg19_path`.
        layers: ``features`` indices to return.
    Raises:
        VGGWeightsMissing: "vgg19" chosen and the file is absent (the message names
            the expected path and the ``--vgg-weights`` option).
        InputError: unknown ``feature_net``.
    """
    from torchvision.models.vgg import cfgs, make_layers

    if feature_net not in FEATURE_NETS:
        raise InputError(f"feature_net must be one of {FEATURE_NETS}, got {feature_net!r}")
    if feature_net == "untrained-vgg19":
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            features = make_layers(cfgs["E"])  # torchvision's vgg19().features
        return VGG19Features(features, layers, feature_net)
    path = Path(weights_path) if weights_path else default_vgg19_path()
    if not path.is_file():
        raise VGGWeightsMissing(
            f"VGG19 ImageNet weights not found at {path}: download torchvision's {VGG19_FILE} "
            f"on a machine with internet and copy it to {default_vgg19_path()} (or pass "
            "--vgg-weights PATH); to train without them set the perceptual weight to 0 or "
            "choose feature_net='untrained-vgg19' explicitly"
        )
    features = make_layers(cfgs["E"])
    state = torch.load(path, map_location="cpu", weights_only=True)
    state = {k[len("features.") :]: v for k, v in state.items() if k.startswith("features.")}
    features.load_state_dict(state)  # classifier weights are not needed
    return VGG19Features(features, layers, feature_net)
