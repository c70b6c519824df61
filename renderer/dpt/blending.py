"""Dense Pose Transfer's blending module (Neverova et al., ECCV 2018, sec. 3.3).

Input: the predictive stream's output, the warping stream's output with its
coverage, and the target IUV; two 3x3 convs and three residual blocks learn a
residual that is added to the predictive output (tanh-bounded sum, clamped
to [-1, 1] after the addition). The last layer starts at zero, so an untrained
blending module returns the predictive output unchanged.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn

from renderer.dpt.predictive import ResBlock
from reroute.training.checkpoint import dataclass_from_dict

__all__ = ["BlendingConfig", "BlendingModule", "BLEND_IN_CHANNELS"]

#: predictive 3 + warped 3 + coverage 1 + target IUV 3
BLEND_IN_CHANNELS = 10


@dataclass
class BlendingConfig:
    """Architecture of :class:`BlendingModule`.

    Attributes:
        channels: width of the convs and residual blocks (paper: 64).
        res_blocks: residual blocks (paper: 3).
    """

    channels: int = 64
    res_blocks: int = 3

    @classmethod
    def from_dict(cls, d: dict) -> BlendingConfig:
        return dataclass_from_dict(cls, d)

    def to_dict(self) -> dict:
        return asdict(self)


class BlendingModule(nn.Module):
    """Residual refinement of the predictive output with the warped output (sec. 3.3).

    ``forward(predicted, warped, coverage, target_iuv)``: predicted, warped
    (B, 3, H, W) float32 in [-1, 1]; coverage (B, 1, H, W) in [0, 1] (where the
    warped output is defined; zeros when there is no warping stream);
    target_iuv (B, 3, H, W) (I / 24, U, V). Returns (B, 3, H, W) float32 in
    [-1, 1]: ``clamp(predicted + residual)``.
    """

    def __init__(self, config: BlendingConfig | None = None):
        super().__init__()
        self.config = c = config or BlendingConfig()
        self.convs = nn.Sequential(
            nn.Conv2d(BLEND_IN_CHANNELS, c.channels, 3, 1, 1), nn.InstanceNorm2d(c.channels, affine=True),
            nn.ReLU(True), nn.Conv2d(c.channels, c.channels, 3, 1, 1),
            nn.InstanceNorm2d(c.channels, affine=True), nn.ReLU(True),
        )  # fmt: skip
        self.res = nn.Sequential(*[ResBlock(c.channels) for _ in range(c.res_blocks)])
        self.head = nn.Conv2d(c.channels, 3, 3, 1, 1)
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)

    def forward(self, predicted, warped, coverage, target_iuv) -> torch.Tensor:
        B, _, H, W = predicted.shape
        for name, t, ch in (("warped", warped, 3), ("coverage", coverage, 1), ("target_iuv", target_iuv, 3)):
            if tuple(t.shape) != (B, ch, H, W):
                raise ValueError(f"{name}: expected {(B, ch, H, W)}, got {tuple(t.shape)}")
        x = torch.cat([predicted, warped, coverage, target_iuv], 1)
        return (predicted + self.head(self.res(self.convs(x)))).clamp(-1, 1)
