"""Dense Pose Transfer's predictive stream (Neverova et al., ECCV 2018, sec. 3.1).

An encoder / residual / decoder generator in the style of Johnson et al.:
``cat(source image, cond(source IUV), cond(target IUV))`` -> three 3x3 convs
(stride 1, 2, 2) to H/4 x W/4 x ``channels[2]`` -> ``res_blocks`` residual blocks
-> two stride-2 transposed convs -> a 3x3 conv and tanh. InstanceNorm and ReLU
throughout. The paper's sizes: 256x256x9 input (IUV conditioning), channels
(64, 128, 256), six residual blocks of 3x3x256x256.

Conditionings (:data:`CONDITIONINGS`, the paper's Table 3), each computed from an
IUV tensor (B, 3, H, W) float32 = (I / 24, U, V), U and V in [0, 1]:

* ``mask``: foreground (1 channel);
* ``parts``: one-hot part index I, background included (25 channels);
* ``iuv``: the IUV tensor itself (3 channels; the paper's choice);
* ``parts_uv``: one-hot I and the U, V channels (27 channels);
* ``keypoints``: no IUV at all, 18 Gaussian heatmaps of OpenPose's COCO
  keypoints (:data:`reroute.body.detect.COCO18_NAMES`; BlazePose's landmarks on
  photos, the engine's keypoints on synthetic people), as PG2 conditions on
  (:func:`keypoint_heatmaps`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn
from torch.nn import functional as F

from reroute.training.checkpoint import dataclass_from_dict

__all__ = ["CONDITIONINGS", "PredictiveConfig", "PredictiveStream", "encode_iuv", "encode_view",
           "keypoint_heatmaps", "ResBlock"]

#: conditioning name -> channels per IUV map
CONDITIONINGS: dict[str, int] = {"mask": 1, "parts": 25, "iuv": 3, "parts_uv": 27, "keypoints": 18}

#: keypoints of the ``keypoints`` conditioning (OpenPose COCO-18)
NUM_KEYPOINTS = 18


def encode_iuv(iuv: torch.Tensor, mode: str = "iuv") -> torch.Tensor:
    """An IUV tensor in the chosen conditioning.

    Args:
        iuv: (B, 3, H, W) float32: I / 24 (0 background, k / 24 part k), U, V in [0, 1].
        mode: a key of :data:`CONDITIONINGS` other than ``keypoints``.
    Returns:
        (B, CONDITIONINGS[mode], H, W) float32 in [0, 1].
    Raises:
        ValueError: wrong shape or unknown mode.
    """
    if iuv.ndim != 4 or iuv.shape[1] != 3:
        raise ValueError(f"iuv: expected (B, 3, H, W), got {tuple(iuv.shape)}")
    if mode not in CONDITIONINGS or mode == "keypoints":
        raise ValueError(f"IUV conditioning must be one of {list(CONDITIONINGS)[:-1]}, got {mode!r}")
    if mode == "iuv":
        return iuv
    part = torch.round(iuv[:, 0] * 24).long().clamp(0, 24)
    if mode == "mask":
        return (part > 0).float()[:, None]
    onehot = F.one_hot(part, 25).permute(0, 3, 1, 2).to(iuv.dtype)
    return onehot if mode == "parts" else torch.cat([onehot, iuv[:, 1:]], 1)


def keypoint_heatmaps(keypoints: torch.Tensor, height: int, width: int, sigma: float | None = None) -> torch.Tensor:
    """Keypoints as Gaussian heatmaps (the ``keypoints`` conditioning).

    Args:
        keypoints: (B, K, 3) float32 (x, y, confidence): x, y in pixels of the
            (height, width) image, pixel centres at integers; confidence in [0, 1]
            scales the peak (0: an all-zero map, e.g. a keypoint not found).
        height, width: map size (pixels).
        sigma: Gaussian standard deviation in pixels; default ``max(height, width) / 64``
            (4 px at 256, PG2's keypoint radius).
    Returns:
        (B, K, height, width) float32 in [0, 1], peak ``confidence`` at (x, y).
    Raises:
        ValueError: wrong shape.
    """
    if keypoints.ndim != 3 or keypoints.shape[-1] != 3:
        raise ValueError(f"keypoints: expected (B, K, 3), got {tuple(keypoints.shape)}")
    sigma = float(sigma or max(height, width) / 64)
    kp = keypoints.float()
    ys = torch.arange(height, dtype=torch.float32, device=kp.device)
    xs = torch.arange(width, dtype=torch.float32, device=kp.device)
    gy = torch.exp(-((ys[None, None] - kp[..., 1:2]) ** 2) / (2 * sigma**2))  # (B, K, H)
    gx = torch.exp(-((xs[None, None] - kp[..., 0:1]) ** 2) / (2 * sigma**2))  # (B, K, W)
    return kp[..., 2, None, None].clamp(0, 1) * gy[..., :, None] * gx[..., None, :]


def encode_view(iuv: torch.Tensor, mode: str, keypoints: torch.Tensor | None = None) -> torch.Tensor:
    """One view's conditioning: :func:`encode_iuv` of ``iuv``, or for ``mode ==
    "keypoints"`` :func:`keypoint_heatmaps` of ``keypoints`` (B, 18, 3) at the IUV's size.

    Returns (B, CONDITIONINGS[mode], H, W) float32 in [0, 1]. Raises ``ValueError``
    when ``keypoints`` is needed and missing or not (B, 18, 3).
    """
    if mode != "keypoints":
        return encode_iuv(iuv, mode)
    B, _, H, W = iuv.shape
    if keypoints is None:
        raise ValueError("the keypoints conditioning needs keypoints (B, 18, 3) for both views")
    if tuple(keypoints.shape) != (B, NUM_KEYPOINTS, 3):
        raise ValueError(f"keypoints: expected {(B, NUM_KEYPOINTS, 3)}, got {tuple(keypoints.shape)}")
    return keypoint_heatmaps(keypoints, H, W).to(iuv.dtype)


class ResBlock(nn.Module):
    """Two 3x3 convs + InstanceNorm, ReLU between, identity skip: (B, C, H, W) -> (B, C, H, W)."""

    def __init__(self, c: int):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(c, c, 3, 1, 1), nn.InstanceNorm2d(c, affine=True), nn.ReLU(True),
                                  nn.Conv2d(c, c, 3, 1, 1), nn.InstanceNorm2d(c, affine=True))  # fmt: skip

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


def _conv(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1), nn.InstanceNorm2d(cout, affine=True), nn.ReLU(True))


def _deconv(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.ConvTranspose2d(cin, cout, 3, 2, 1, output_padding=1),
                         nn.InstanceNorm2d(cout, affine=True), nn.ReLU(True))  # fmt: skip


@dataclass
class PredictiveConfig:
    """Architecture of :class:`PredictiveStream`.

    Attributes:
        channels: widths of the three encoder convs (paper: 64, 128, 256).
        res_blocks: residual blocks at H/4 (paper: 6).
        conditioning: a key of :data:`CONDITIONINGS` (paper: "iuv").
    """

    channels: tuple[int, int, int] = (64, 128, 256)
    res_blocks: int = 6
    conditioning: str = "iuv"

    def validate(self) -> PredictiveConfig:
        if self.conditioning not in CONDITIONINGS:
            raise ValueError(f"conditioning must be one of {list(CONDITIONINGS)}, got {self.conditioning!r}")
        if len(self.channels) != 3 or min(self.channels) < 1:
            raise ValueError(f"channels must be three positive widths, got {self.channels}")
        return self

    @classmethod
    def from_dict(cls, d: dict) -> PredictiveConfig:
        return dataclass_from_dict(cls, d).validate()

    def to_dict(self) -> dict:
        return asdict(self)

    @property
    def in_channels(self) -> int:
        return 3 + 2 * CONDITIONINGS[self.conditioning]


class PredictiveStream(nn.Module):
    """Source image and the two IUV maps -> the target image (sec. 3.1).

    ``forward(source, source_iuv, target_iuv, source_keypoints=None, target_keypoints=None)``:
    source (B, 3, H, W) float32 in [-1, 1]; IUV maps (B, 3, H, W) as
    :func:`encode_iuv` takes them; H and W divisible by 4; keypoints (B, 18, 3)
    (x, y pixels, confidence), used and required only by the ``keypoints``
    conditioning. Returns (B, 3, H, W) float32 in (-1, 1) (tanh).
    Raises ``ValueError`` on wrong shapes (expected versus actual).
    """

    def __init__(self, config: PredictiveConfig | None = None):
        super().__init__()
        self.config = c = (config or PredictiveConfig()).validate()
        c0, c1, c2 = c.channels
        self.encoder = nn.Sequential(_conv(c.in_channels, c0), _conv(c0, c1, 2), _conv(c1, c2, 2))
        self.res = nn.Sequential(*[ResBlock(c2) for _ in range(c.res_blocks)])
        self.decoder = nn.Sequential(_deconv(c2, c1), _deconv(c1, c0), nn.Conv2d(c0, 3, 3, 1, 1), nn.Tanh())

    def forward(self, source: torch.Tensor, source_iuv: torch.Tensor, target_iuv: torch.Tensor,
                source_keypoints: torch.Tensor | None = None,
                target_keypoints: torch.Tensor | None = None) -> torch.Tensor:  # fmt: skip
        check_inputs(source, source_iuv, target_iuv, step=4)
        mode = self.config.conditioning
        x = torch.cat([source, encode_view(source_iuv, mode, source_keypoints),
                       encode_view(target_iuv, mode, target_keypoints)], 1)  # fmt: skip
        return self.decoder(self.res(self.encoder(x)))


def check_inputs(source: torch.Tensor, source_iuv: torch.Tensor, target_iuv: torch.Tensor, step: int) -> None:
    """Raise ``ValueError`` unless all three are (B, 3, H, W) alike with H, W divisible by ``step``."""
    if source.ndim != 4 or source.shape[1] != 3:
        raise ValueError(f"source: expected (B, 3, H, W), got {tuple(source.shape)}")
    for name, t in (("source_iuv", source_iuv), ("target_iuv", target_iuv)):
        if tuple(t.shape) != tuple(source.shape):
            raise ValueError(f"{name}: expected {tuple(source.shape)}, got {tuple(t.shape)}")
    H, W = source.shape[-2:]
    if H % step or W % step:
        raise ValueError(f"image sides must be divisible by {step}, got {(H, W)}")
