"""Texture completion U-Net (BodyMap, Ianina et al., CVPR 2022, supplementary C.1.1).

Input: the partial continuous-UV texture (3 channels in [-1, 1], 0 where not
observed) and its visibility mask (1 channel, {0, 1}), optionally a prior fill
(3 channels in [-1, 1]). Output: the full texture (B, 3, T, T) in [-1, 1]
(``tanh``). The encoder halves the resolution ``depth`` times; the decoder
upsamples (bilinear) and concatenates the encoder feature of the same size
(U-Net skips), and the last layer also sees the aligned input itself, so
observed texels can pass straight through.

Normalisation: ``"batch"`` (BatchNorm; :func:`convert_sync_batchnorm` turns it
into :class:`torch.nn.SyncBatchNorm` for multi-GPU training: statistics over all
devices; running statistics at test time as plain BatchNorm) or
``"instance"`` (the paper's comparison, which reported distorted colours in
unseen regions).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from reroute.training.checkpoint import load_checkpoint
from reroute.uv.texture import UVTexture, uv_layout_mask
from texture.classical import complete_classical

__all__ = [
    "TextureNetConfig",
    "TextureUNet",
    "convert_sync_batchnorm",
    "load_texture_net",
    "complete_network",
    "texture_to_tensors",
    "norm_layer",
    "conv_block",
]


@dataclass
class TextureNetConfig:
    """Architecture of :class:`TextureUNet`.

    Attributes:
        texture_size: UV texture side T it is trained at (must be divisible by 2**depth).
        base_channels: channels at full resolution; doubled per level up to ``max_channels``.
        depth: number of stride-2 levels.
        norm: "batch" or "instance".
        prior: "none" or "classical" (3 extra input channels: the classical fill).
    """

    texture_size: int = 256
    base_channels: int = 16
    max_channels: int = 256
    depth: int = 6
    norm: str = "batch"
    prior: str = "none"

    def validate(self) -> TextureNetConfig:
        """Return self; raise ``ValueError`` naming the bad field otherwise."""
        if self.norm not in ("batch", "instance"):
            raise ValueError(f"norm must be 'batch' or 'instance', got {self.norm!r}")
        if self.prior not in ("none", "classical"):
            raise ValueError(f"prior must be 'none' or 'classical', got {self.prior!r}")
        if self.depth < 1 or self.texture_size % (2**self.depth):
            raise ValueError(
                f"texture_size {self.texture_size} must be divisible by 2**depth = {2**self.depth}"
            )
        return self

    @classmethod
    def from_dict(cls, d: dict) -> TextureNetConfig:
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names}).validate()

    @property
    def in_channels(self) -> int:
        return 4 + (3 if self.prior == "classical" else 0)


def norm_layer(kind: str, c: int) -> nn.Module:
    """``"batch"`` -> BatchNorm2d(c), else InstanceNorm2d(c, affine=True)."""
    return nn.BatchNorm2d(c) if kind == "batch" else nn.InstanceNorm2d(c, affine=True)


def conv_block(cin: int, cout: int, norm: str, stride: int = 1) -> nn.Sequential:
    """Two 3x3 convs (the first with ``stride``), each + norm + LeakyReLU(0.2): (B, cin, H, W) -> (B, cout, H/stride, W/stride)."""
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, stride, 1, bias=False), norm_layer(norm, cout), nn.LeakyReLU(0.2, True),
        nn.Conv2d(cout, cout, 3, 1, 1, bias=False), norm_layer(norm, cout), nn.LeakyReLU(0.2, True),
    )  # fmt: skip


class TextureUNet(nn.Module):
    """The U-Net generator.

    ``forward(partial, mask, prior=None)``: partial (B, 3, T, T) float in [-1, 1]
    (0 where not observed); mask (B, 1, T, T) float {0, 1}; prior (B, 3, T, T)
    in [-1, 1] when ``config.prior == "classical"``. Returns (B, 3, T, T) in
    [-1, 1]. T must be divisible by ``2**depth`` (any such T works; the network
    is fully convolutional, but it is trained at ``config.texture_size``).
    Raises ``ValueError`` on wrong shapes.
    """

    def __init__(self, config: TextureNetConfig | None = None):
        super().__init__()
        self.config = c = (config or TextureNetConfig()).validate()
        ch = [min(c.base_channels * 2**i, c.max_channels) for i in range(c.depth + 1)]
        self.stem = conv_block(c.in_channels, ch[0], c.norm)
        self.down = nn.ModuleList(conv_block(ch[i], ch[i + 1], c.norm, 2) for i in range(c.depth))
        self.up = nn.ModuleList(
            conv_block(ch[i + 1] + ch[i], ch[i], c.norm) for i in reversed(range(c.depth))
        )
        self.head = nn.Conv2d(ch[0] + c.in_channels, 3, 3, 1, 1)

    def forward(self, partial: torch.Tensor, mask: torch.Tensor,
                prior: torch.Tensor | None = None) -> torch.Tensor:  # fmt: skip
        c = self.config
        if partial.ndim != 4 or partial.shape[1] != 3:
            raise ValueError(f"partial: expected (B, 3, T, T), got {tuple(partial.shape)}")
        if mask.shape != (partial.shape[0], 1, *partial.shape[2:]):
            raise ValueError(
                f"mask: expected {(partial.shape[0], 1, *partial.shape[2:])}, got {tuple(mask.shape)}"
            )
        if partial.shape[-1] % (2**c.depth) or partial.shape[-2] % (2**c.depth):
            raise ValueError(
                f"texture side must be divisible by {2**c.depth}, got {tuple(partial.shape[-2:])}"
            )
        parts = [partial * mask, mask]
        if c.prior == "classical":
            if prior is None or prior.shape != partial.shape:
                raise ValueError(
                    "prior: expected (B, 3, T, T) classical fill for prior='classical'"
                )
            parts.append(prior)
        x = torch.cat(parts, 1)
        feats = [self.stem(x)]
        for d in self.down:
            feats.append(d(feats[-1]))
        h = feats.pop()
        for u in self.up:
            skip = feats.pop()
            h = F.interpolate(h, size=skip.shape[-2:], mode="bilinear", align_corners=False)
            h = u(torch.cat([h, skip], 1))
        return torch.tanh(self.head(torch.cat([h, x], 1)))


def convert_sync_batchnorm(model: nn.Module, enabled: bool) -> nn.Module:
    """BatchNorm -> :class:`torch.nn.SyncBatchNorm` when ``enabled`` (multi-GPU DDP only).

    torch's SyncBatchNorm needs CUDA tensors and an initialised process group; on
    CPU (gloo) callers pass ``enabled=False`` and keep plain BatchNorm.
    """
    return nn.SyncBatchNorm.convert_sync_batchnorm(model) if enabled else model


def _revert_sync_batchnorm(module: nn.Module) -> nn.Module:
    """SyncBatchNorm -> BatchNorm2d (same statistics), for single-device inference."""
    out = module
    if isinstance(module, nn.SyncBatchNorm):
        out = nn.BatchNorm2d(module.num_features, module.eps, module.momentum, module.affine,
                             module.track_running_stats)  # fmt: skip
        out.load_state_dict(module.state_dict())
    for name, child in module.named_children():
        out.add_module(name, _revert_sync_batchnorm(child))
    return out


def load_texture_net(path, map_location="cpu") -> TextureUNet:
    """A trained :class:`TextureUNet` from a reroute checkpoint (``weights_only=True``).

    Uses the EMA weights when the checkpoint has them. Returns the model in eval mode.
    Raises :class:`reroute.errors.InputError` for a missing or foreign file.
    """

    ck = load_checkpoint(path, kind="texture_completion", map_location=map_location)
    model = TextureUNet(TextureNetConfig.from_dict(ck["config"]["model"]))
    state = ck.get("ema") or ck["generator"]
    model.load_state_dict(state)
    return model.eval()


def texture_to_tensors(texture, layout: np.ndarray | None = None):
    """A :class:`reroute.uv.texture.UVTexture` as network inputs: partial (1, 3, T, T) in [-1, 1], mask (1, 1, T, T)."""
    m = torch.from_numpy((texture.visibility > 0.5).astype(np.float32))[None, None]
    if layout is not None:
        m = m * torch.from_numpy(layout.astype(np.float32))[None, None]
    p = torch.from_numpy(np.ascontiguousarray(texture.pixels.transpose(2, 0, 1), np.float32))[None]
    return (p * 2 - 1) * m, m


@torch.no_grad()
def complete_network(texture, model: TextureUNet, keep_observed: bool = True):
    """Complete a partial :class:`reroute.uv.texture.UVTexture` with the network.

    Args:
        texture: partial UVTexture (T, T); T should be the model's ``texture_size``
            (other sizes divisible by ``2**depth`` run but were not trained).
        model: a :class:`TextureUNet` (put in eval mode here).
        keep_observed: paste the observed texels over the prediction.
    Returns:
        UVTexture (T, T) with pixels in [0, 1] inside the UV islands (0 outside);
        visibility 1 on every island texel.
    """

    model.eval()
    lay = uv_layout_mask(texture.size)
    partial, mask = texture_to_tensors(texture, lay)
    prior = None
    if model.config.prior == "classical":
        cl = complete_classical(texture).pixels
        prior = torch.from_numpy(np.ascontiguousarray(cl.transpose(2, 0, 1)))[None] * 2 - 1
    out = model(partial, mask, prior)
    if keep_observed:
        out = torch.where(mask > 0.5, partial, out)
    pix = ((out[0].permute(1, 2, 0).numpy() + 1) * 0.5).clip(0, 1)
    pix = np.where(lay[..., None], pix, 0.0).astype(np.float32)
    return UVTexture(pix, lay.astype(np.float32))


def config_dict(config: TextureNetConfig) -> dict:
    """The config as a plain dict (checkpoint-safe)."""
    return asdict(config)
