"""Multi-scale PatchGAN discriminator (pix2pixHD, Wang et al., CVPR 2018).

``num_scales`` identical PatchGANs see the input at full, 1/2, 1/4 ...
resolution (3x3 average pooling, stride 2, between scales). Conditioned on the
partial texture: the input is ``cat(texture, partial, mask)`` (7 channels).
Each PatchGAN returns the output of every layer (the last is the patch logits),
so losses can use feature matching as well as the adversarial term.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

__all__ = ["DiscriminatorConfig", "PatchGAN", "MultiScaleDiscriminator"]


@dataclass
class DiscriminatorConfig:
    """Attributes: in_channels (7 = texture 3 + partial 3 + mask 1), base_channels
    (ndf), num_layers (stride-2 layers per PatchGAN), num_scales, norm ("instance" | "none")."""

    in_channels: int = 7
    base_channels: int = 64
    num_layers: int = 3
    num_scales: int = 3
    norm: str = "instance"


class PatchGAN(nn.Module):
    """pix2pixHD's NLayerDiscriminator: 4x4 convs (padding 2), LeakyReLU 0.2.

    ``forward(x)``: (B, C_in, H, W) -> list of ``num_layers + 2`` tensors; entry
    ``i < num_layers`` has ``min(ndf * 2**i, 512)`` channels at ~H / 2**(i+1); the
    last is (B, 1, h, w) patch logits.
    """

    def __init__(
        self, in_channels: int, ndf: int = 64, num_layers: int = 3, norm: str = "instance"
    ):
        super().__init__()

        def nrm(c):
            return nn.InstanceNorm2d(c, affine=False) if norm == "instance" else nn.Identity()

        layers = [nn.Sequential(nn.Conv2d(in_channels, ndf, 4, 2, 2), nn.LeakyReLU(0.2, True))]
        c = ndf
        for _ in range(1, num_layers):
            c2 = min(c * 2, 512)
            layers.append(
                nn.Sequential(nn.Conv2d(c, c2, 4, 2, 2), nrm(c2), nn.LeakyReLU(0.2, True))
            )
            c = c2
        c2 = min(c * 2, 512)
        layers.append(nn.Sequential(nn.Conv2d(c, c2, 4, 1, 2), nrm(c2), nn.LeakyReLU(0.2, True)))
        layers.append(nn.Conv2d(c2, 1, 4, 1, 2))
        self.layers = nn.ModuleList(layers)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        out = []
        for layer in self.layers:
            x = layer(x)
            out.append(x)
        return out


class MultiScaleDiscriminator(nn.Module):
    """``num_scales`` PatchGANs on an image pyramid.

    ``forward(texture, partial, mask)``: texture, partial (B, 3, T, T) in [-1, 1];
    mask (B, 1, T, T). Returns a list (scale 0 = full resolution) of per-layer
    feature lists (see :class:`PatchGAN`).
    """

    def __init__(self, config: DiscriminatorConfig | None = None):
        super().__init__()
        self.config = c = config or DiscriminatorConfig()
        if c.norm not in ("instance", "none"):
            raise ValueError(f"norm must be 'instance' or 'none', got {c.norm!r}")
        self.scales = nn.ModuleList(
            PatchGAN(c.in_channels, c.base_channels, c.num_layers, c.norm)
            for _ in range(c.num_scales)
        )

    def forward(self, texture: torch.Tensor, partial: torch.Tensor, mask: torch.Tensor
                ) -> list[list[torch.Tensor]]:  # fmt: skip
        x = torch.cat([texture, partial, mask], 1)
        if x.shape[1] != self.config.in_channels:
            raise ValueError(
                f"discriminator: expected {self.config.in_channels} input channels, got {x.shape[1]}"
            )
        out = []
        for i, d in enumerate(self.scales):
            if i:
                x = F.avg_pool2d(x, 3, 2, 1, count_include_pad=False)
            out.append(d(x))
        return out
