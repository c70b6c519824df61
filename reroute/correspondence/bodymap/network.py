"""The BodyMap correspondence network (Ianina et al., CVPR 2022, sec. 3.2-3.4).

Two vision-transformer encoders with separate weights, one on the RGB image and
one on the initial correspondence map (reroute's template fit, in the role of
the paper's CSE initialisation: its colour code and mask, 4 channels). Each
has a patch embedding, a readout token and learned positional embeddings
(bicubically resized for other input sizes). Tokens taken after four of the
encoder's blocks are joined with their readout token ("project" readout of
DPT, Ranftl et al. 2021), the two encoders' tokens concatenated and fused by a
linear layer, reassembled into images at 4, 2, 1 and 1/2 times the patch grid,
and fed to a convolutional fusion decoder (DPT's residual conv units and
feature-fusion blocks). The head upsamples the decoder's features to the input
resolution, joins them with the inputs themselves (so pixel-sharp edges of the
photo and of the initial map reach it; reroute's addition) and gives, per
pixel, 256-way scores for each of the three colour-code channels and a
foreground logit (:class:`BodyMapOutput`), and with ``part_head`` scores over the
24 DensePose parts (reroute's addition; see :class:`BodyMapConfig`).

Variants (the paper's Table 5 ablation): ``full`` (both encoders), ``rgb``
(the RGB encoder alone, no initial correspondences) and ``unet`` (a
convolutional U-Net on the concatenated RGB and initial correspondences in
place of the transformers, same head).

Inputs: ``image`` (B, 3, H, W) float32 in [-1, 1]; ``init`` (B, 4, H, W) float32:
the initial colour code in [0, 1] (0 on background) and its mask {0, 1}
(:func:`init_tensor`). H and W divisible by ``2 * patch`` (``unet``: by 16).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from reroute.correspondence.bodymap.decode import part_lookup
from reroute.correspondence.maps import Correspondence
from reroute.training.checkpoint import dataclass_from_dict

__all__ = ["VARIANTS", "BodyMapConfig", "BodyMapOutput", "BodyMapNet", "PRESETS", "init_tensor", "INIT_CHANNELS",
           "PARTS", "parameter_count"]

#: the paper's Table 5 rows: both encoders, RGB only, U-Net backbone
VARIANTS = ("full", "rgb", "unet")
#: channels of the initial correspondence input: colour code (3) and mask (1)
INIT_CHANNELS = 4
#: DensePose body parts scored by the part head (1..24; background is the foreground head's)
PARTS = 24


@dataclass
class BodyMapConfig:
    """Architecture of :class:`BodyMapNet`.

    Attributes:
        variant: one of :data:`VARIANTS`.
        image_size: side the positional embeddings are made for (pixels); other
            sizes resize them.
        patch: patch side (pixels).
        dim: token width; ``depth`` transformer blocks of ``heads`` heads each.
        hooks: the four blocks (0-based) whose tokens are reassembled, shallow to deep.
        features: width of the fusion decoder (and of the U-Net's deepest level).
        bins: levels per colour channel (256: the paper's quantisation).
        init_prior: add to the colour scores a prior peaked at the initial colour code,
            ``-s * (level - c_init)^2`` on the initial map's mask with a learned sharpness
            ``s`` (``prior_sharpness`` at the start), and ``3 * (2 m_init - 1)`` (learned
            weight) to the foreground logit, and the free colour scores start at zero: the
            network starts as the identity on its initialisation and learns corrections
            (reroute's addition, for CPU-scale training; the ``rgb`` variant has no
            initialisation and no prior).
        prior_offset: the prior's centre and sharpness are predicted per pixel: centre
            ``c_init + max_offset * tanh(o)`` (3 channels) and sharpness
            ``s * exp(3 * tanh(o_s))``, from a 1x1 convolution of the pixel features that
            starts at zero (so the untrained network still returns its initialisation).
            A correction of the initial colour is then one number per channel, where the
            free scores would need a ramp over the 256 levels steep enough to move a
            peak of sharpness ``s``.
        max_offset: largest correction of the initial colour code (colour units).
        prior_flow: the prior's centre is the initial map read at the pixel moved by a
            predicted 2-D flow (bilinear, colour renormalised by the sampled mask), before
            ``prior_offset``'s correction. The fit's errors are mostly limbs and borders
            displaced in the image, which a flow undoes directly; the flow head is a 1x1
            convolution of the pixel features that starts at zero.
        max_flow: largest flow, as a fraction of the image width (and height) per axis.
        part_head: also predict per-pixel scores over the 24 DensePose parts (a head
            like DensePose's "I" output; reroute's addition): decoding then finds each
            pixel's surface point within its predicted part
            (:func:`~reroute.correspondence.bodymap.decode.decode_colour_map`). DensePose
            R-CNN's part labels on real frames train it directly (the colour scores see
            them only through the soft assignment of :func:`part_loss`). With the
            initialisation prior the scores start as ``part_prior`` times the one-hot part
            of the initial colour code (read from
            :func:`~reroute.correspondence.bodymap.decode.part_lookup`, learned weight)
            plus a head whose last layer starts at zero: the untrained network returns
            the initial parts.
        part_prior: the initial weight of that one-hot prior.
        part_gain: the part head's output is multiplied by this constant, so that Adam's
            bounded steps (about the learning rate per step and weight) can move part
            scores by the prior's size within a few hundred steps.
        part_table: side ``S`` of a learned correction of the part prior in colour space
            (0: none): an (S, S, S, 24) table, zero at the start and scaled by
            ``part_gain``, read at each pixel's initial colour code and added to the part
            scores. It learns where on the template surface DensePose's part borders lie
            other than the template's (e.g. the upper arms' inside/outside split) from
            every pixel whose initial colour falls in a cell.
    """

    variant: str = "full"
    image_size: int = 384
    patch: int = 16
    dim: int = 768
    depth: int = 12
    heads: int = 12
    hooks: tuple[int, int, int, int] = (2, 5, 8, 11)
    features: int = 256
    bins: int = 256
    init_prior: bool = True
    prior_sharpness: float = 2000.0
    prior_offset: bool = False
    max_offset: float = 0.1
    prior_flow: bool = False
    max_flow: float = 0.0625
    part_head: bool = False
    part_prior: float = 4.0
    part_gain: float = 1.0
    part_table: int = 0

    def validate(self) -> BodyMapConfig:
        if self.variant not in VARIANTS:
            raise ValueError(f"variant must be one of {VARIANTS}, got {self.variant!r}")
        if self.dim % self.heads:
            raise ValueError(f"dim {self.dim} must be divisible by heads {self.heads}")
        h = list(self.hooks)
        if len(h) != 4 or sorted(h) != h or not 0 <= h[0] <= h[-1] < self.depth:
            raise ValueError(f"hooks must be four increasing block indices below depth {self.depth}, got {self.hooks}")
        if self.image_size % (2 * self.patch):
            raise ValueError(f"image_size {self.image_size} must be divisible by 2 * patch = {2 * self.patch}")
        return self

    @classmethod
    def from_dict(cls, d: dict) -> BodyMapConfig:
        """The config stored in a checkpoint (those written before ``init_prior`` existed had none)."""
        return dataclass_from_dict(cls, {"init_prior": False, **d}).validate()

    def to_dict(self) -> dict:
        return asdict(self)

    @property
    def step(self) -> int:
        """Input sides must be multiples of this (pixels)."""
        return 16 if self.variant == "unet" else 2 * self.patch


#: ``tiny`` (tests, 32 px), ``cpu`` (the committed checkpoint, 256 px), ``paper`` (ViT-B/16 sizes, 384 px)
PRESETS: dict[str, BodyMapConfig] = {
    "tiny": BodyMapConfig(image_size=32, patch=8, dim=32, depth=4, heads=2, hooks=(0, 1, 2, 3), features=16),
    "cpu": BodyMapConfig(image_size=256, patch=16, dim=128, depth=6, heads=4, hooks=(1, 2, 4, 5), features=64),
    "paper": BodyMapConfig(),
}


@dataclass
class BodyMapOutput:
    """What :class:`BodyMapNet` returns.

    Attributes:
        logits: (B, 3, bins, H, W) float32 scores per colour channel over its
            ``bins`` levels (level k is colour (k + 0.5) / bins); (B, 3, bins, N, 1)
            when only N pixels were scored (``BodyMapNet.forward(..., pixels)``).
        foreground: (B, 1, H, W) float32 foreground logit.
        parts: (B, 24, H, W) float32 scores over DensePose parts 1..24 (channel
            ``i`` is part ``i + 1``), (B, 24, N, 1) at the scored pixels, or ``None``
            without ``part_head``.
    """

    logits: torch.Tensor
    foreground: torch.Tensor
    parts: torch.Tensor | None = None


def init_tensor(corr: Correspondence) -> torch.Tensor:
    """A :class:`Correspondence` as the network's initial input: (1, 4, H, W) float32,
    its colour code in [0, 1] (0 on background) and its mask {0, 1}."""
    c = np.concatenate([corr.colour * corr.mask[..., None], corr.mask[..., None]], -1).astype(np.float32)
    return torch.from_numpy(np.ascontiguousarray(c.transpose(2, 0, 1)))[None]


class ViTEncoder(nn.Module):
    """Patch embedding, readout token, positional embeddings, pre-norm transformer blocks.

    ``forward(x)``: (B, C, H, W) -> list of 4 token tensors (B, 1 + h * w, dim)
    after the ``hooks`` blocks (readout first), h, w = H / patch, W / patch.
    """

    def __init__(self, in_channels: int, c: BodyMapConfig):
        super().__init__()
        self.c = c
        self.embed = nn.Conv2d(in_channels, c.dim, c.patch, c.patch)
        self.readout = nn.Parameter(torch.zeros(1, 1, c.dim))
        g = c.image_size // c.patch
        self.pos = nn.Parameter(torch.randn(1, 1 + g * g, c.dim) * 0.02)
        self.blocks = nn.ModuleList(
            nn.TransformerEncoderLayer(c.dim, c.heads, 4 * c.dim, 0.0, "gelu", batch_first=True, norm_first=True)
            for _ in range(c.depth)
        )

    def _pos(self, h: int, w: int) -> torch.Tensor:
        g = self.c.image_size // self.c.patch
        if (h, w) == (g, g):
            return self.pos
        grid = self.pos[:, 1:].reshape(1, g, g, -1).permute(0, 3, 1, 2)
        grid = F.interpolate(grid, size=(h, w), mode="bicubic", align_corners=False)
        return torch.cat([self.pos[:, :1], grid.flatten(2).transpose(1, 2)], 1)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        t = self.embed(x)
        h, w = t.shape[-2:]
        t = torch.cat([self.readout.expand(len(t), -1, -1), t.flatten(2).transpose(1, 2)], 1) + self._pos(h, w)
        out = []
        for i, block in enumerate(self.blocks):
            t = _encoder_block(block, t)
            if i in self.c.hooks:
                out.append(t)
        return out


def _encoder_block(block: nn.TransformerEncoderLayer, t: torch.Tensor) -> torch.Tensor:
    """``block(t)`` of a pre-norm, dropout-free layer: (B, L, dim) float32 -> (B, L, dim),
    attention through ``F.scaled_dot_product_attention``. That is what the layer computes
    in training; in eval mode PyTorch takes its fused encoder fast path instead, which on
    this CPU takes 1.5 times as long per block at 1,025 tokens (512 px) and agrees with
    this to 2e-6."""
    B, L, D = t.shape
    sa = block.self_attn
    qkv = F.linear(block.norm1(t), sa.in_proj_weight, sa.in_proj_bias)
    q, k, v = qkv.view(B, L, 3, sa.num_heads, D // sa.num_heads).permute(2, 0, 3, 1, 4)
    t = t + sa.out_proj(F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(B, L, D))
    return t + block.linear2(block.activation(block.linear1(block.norm2(t))))


class ResidualConvUnit(nn.Module):
    """DPT's residual conv unit: x + conv(relu(conv(relu(x)))), (B, C, H, W) -> same."""

    def __init__(self, c: int):
        super().__init__()
        self.body = nn.Sequential(nn.ReLU(), nn.Conv2d(c, c, 3, 1, 1), nn.ReLU(), nn.Conv2d(c, c, 3, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class FusionBlock(nn.Module):
    """DPT's feature-fusion block: RCU(prev + RCU(skip)), then x2 bilinear upsampling and a 1x1 conv."""

    def __init__(self, c: int):
        super().__init__()
        self.skip, self.out, self.proj = ResidualConvUnit(c), ResidualConvUnit(c), nn.Conv2d(c, c, 1)

    def forward(self, prev: torch.Tensor | None, skip: torch.Tensor) -> torch.Tensor:
        x = self.skip(skip) if prev is None else prev + self.skip(skip)
        x = F.interpolate(self.out(x), scale_factor=2, mode="bilinear", align_corners=False)
        return self.proj(x)


def _resample(cin: int, cout: int, scale: float) -> nn.Sequential:
    """1x1 projection, then x4 / x2 transposed conv, identity, or a stride-2 conv (``scale`` 4, 2, 1, 0.5)."""
    proj = nn.Conv2d(cin, cout, 1)
    if scale >= 2:
        k = int(scale)
        return nn.Sequential(proj, nn.ConvTranspose2d(cout, cout, k, k))
    if scale == 1:
        return nn.Sequential(proj)
    return nn.Sequential(proj, nn.Conv2d(cout, cout, 3, 2, 1))


class Reassemble(nn.Module):
    """Tokens of one or two encoders -> four feature maps at 4, 2, 1 and 1/2 times the patch grid.

    ``forward(tokens, h, w)``: tokens a list over encoders of 4 tensors (B, 1 + h*w, dim).
    Returns 4 tensors (B, features, s*h, s*w), s = 4, 2, 1, 1/2.
    """

    SCALES = (4, 2, 1, 0.5)

    def __init__(self, c: BodyMapConfig, encoders: int):
        super().__init__()
        widths = [max(c.features // 2, c.dim // 4), max(c.features // 2, c.dim // 2), c.dim, c.dim]
        self.readout = nn.ModuleList(
            nn.ModuleList(nn.Sequential(nn.Linear(2 * c.dim, c.dim), nn.GELU()) for _ in range(4))
            for _ in range(encoders)
        )
        self.fuse = nn.ModuleList(nn.Linear(encoders * c.dim, c.dim) for _ in range(4))
        self.resample = nn.ModuleList(_resample(c.dim, wd, s) for wd, s in zip(widths, self.SCALES, strict=True))
        self.to_features = nn.ModuleList(nn.Conv2d(wd, c.features, 3, 1, 1, bias=False) for wd in widths)

    def forward(self, tokens: list[list[torch.Tensor]], h: int, w: int) -> list[torch.Tensor]:
        out = []
        for k in range(4):
            per_encoder = []
            for e, toks in enumerate(tokens):
                t = toks[k]
                read = t[:, :1].expand(-1, t.shape[1] - 1, -1)
                per_encoder.append(self.readout[e][k](torch.cat([t[:, 1:], read], -1)))
            t = self.fuse[k](torch.cat(per_encoder, -1))
            grid = t.transpose(1, 2).reshape(len(t), -1, h, w)
            out.append(self.to_features[k](self.resample[k](grid)))
        return out


class UNetBackbone(nn.Module):
    """The ``unet`` variant's backbone: four stride-2 levels on cat(image, init), widths
    ``features / 8 .. features``; returns maps at 1/2, 1/4, 1/8, 1/16 of the input, each
    projected to ``features`` channels (the fusion decoder's four inputs)."""

    def __init__(self, c: BodyMapConfig):
        super().__init__()
        widths = [max(8, c.features // 8), max(8, c.features // 4), max(8, c.features // 2), c.features]
        cin, self.down = 3 + INIT_CHANNELS, nn.ModuleList()
        for wd in widths:
            self.down.append(nn.Sequential(nn.Conv2d(cin, wd, 3, 2, 1), nn.BatchNorm2d(wd), nn.ReLU(True),
                                           nn.Conv2d(wd, wd, 3, 1, 1), nn.BatchNorm2d(wd), nn.ReLU(True)))  # fmt: skip
            cin = wd
        self.to_features = nn.ModuleList(nn.Conv2d(wd, c.features, 3, 1, 1, bias=False) for wd in widths)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        out = []
        for down, proj in zip(self.down, self.to_features, strict=True):
            x = down(x)
            out.append(proj(x))
        return out


class BodyMapNet(nn.Module):
    """Image and initial correspondences -> per-pixel colour-code scores, foreground
    and (``part_head``) part scores.

    ``forward(image, init, pixels=None)``: image (B, 3, H, W) float32 in [-1, 1]; init
    (B, 4, H, W) float32 (:func:`init_tensor`; ignored by the ``rgb`` variant); H, W
    multiples of ``config.step``. Returns :class:`BodyMapOutput` at (H, W) (the
    colour and part scores at ``pixels`` only when given).
    Raises ``ValueError`` on wrong shapes (expected versus actual).
    """

    def __init__(self, config: BodyMapConfig | None = None):
        super().__init__()
        self.config = c = (config or BodyMapConfig()).validate()
        if c.variant == "unet":
            self.backbone = UNetBackbone(c)
        else:
            self.rgb = ViTEncoder(3, c)
            self.corr = ViTEncoder(INIT_CHANNELS, c) if c.variant == "full" else None
            self.reassemble = Reassemble(c, 2 if c.variant == "full" else 1)
        self.fusion = nn.ModuleList(FusionBlock(c.features) for _ in range(4))
        half = max(8, c.features // 2)
        self.head = nn.Sequential(nn.Conv2d(c.features, half, 3, 1, 1), nn.ReLU(True))
        skip = 3 + (INIT_CHANNELS if c.variant != "rgb" else 0)  # the inputs themselves, at full resolution
        self.pixel = nn.Sequential(nn.Conv2d(half + skip, 32, 3, 1, 1), nn.ReLU(True))
        self.scores = nn.Conv2d(32, 3 * c.bins, 1)
        self.fg = nn.Conv2d(32, 1, 1)
        if self.uses_prior:
            # refinement of the initialisation: scores start peaked at the initial colour code
            nn.init.zeros_(self.scores.weight)  # the scores start as the prior alone
            nn.init.zeros_(self.scores.bias)
            self.prior_log_sharpness = nn.Parameter(torch.tensor(float(np.log(c.prior_sharpness))))
            self.prior_foreground = nn.Parameter(torch.tensor(3.0))
            if c.prior_offset:  # per-pixel centre offsets (3) and log-sharpness change (1), zero at the start
                self.prior_shift = nn.Conv2d(32, 4, 1)
                nn.init.zeros_(self.prior_shift.weight)
                nn.init.zeros_(self.prior_shift.bias)
            if c.prior_flow:  # per-pixel flow (x, y) into the initial map, zero at the start
                self.flow_head = nn.Conv2d(32, 2, 1)
                nn.init.zeros_(self.flow_head.weight)
                nn.init.zeros_(self.flow_head.bias)
        if c.part_head:
            self.part = nn.Sequential(nn.Conv2d(32, 32, 3, 1, 1), nn.ReLU(True), nn.Conv2d(32, PARTS, 1))
            if self.uses_prior:  # scores start at the initial parts' one-hot prior
                nn.init.zeros_(self.part[-1].weight)
                nn.init.zeros_(self.part[-1].bias)
                self.part_prior = nn.Parameter(torch.tensor(float(c.part_prior)))
                if c.part_table:
                    self.part_table = nn.Parameter(torch.zeros(c.part_table ** 3, PARTS))

    @property
    def uses_prior(self) -> bool:
        """Whether the scores add the initialisation prior (``init_prior`` and not ``rgb``)."""
        return self.config.init_prior and self.config.variant != "rgb"

    @property
    def colour_is_prior(self) -> bool:
        """Whether the colour scores are the initialisation prior alone: :attr:`uses_prior`
        without ``prior_offset`` or ``prior_flow``, and free colour scores (``self.scores``)
        all zero, as in a network trained without the colour terms (the committed
        checkpoint). Their expectation is then
        :func:`~reroute.correspondence.bodymap.decode.expected_prior_colour` of the initial map."""
        c = self.config
        return (self.uses_prior and not c.prior_offset and not c.prior_flow
                and not self.scores.weight.any() and not self.scores.bias.any())  # fmt: skip

    def _check(self, image: torch.Tensor, init: torch.Tensor) -> None:
        if image.ndim != 4 or image.shape[1] != 3:
            raise ValueError(f"image: expected (B, 3, H, W), got {tuple(image.shape)}")
        B, _, H, W = image.shape
        if tuple(init.shape) != (B, INIT_CHANNELS, H, W):
            raise ValueError(f"init: expected {(B, INIT_CHANNELS, H, W)}, got {tuple(init.shape)}")
        s = self.config.step
        if H % s or W % s:
            raise ValueError(f"image sides must be multiples of {s}, got {(H, W)}")

    def features(self, image: torch.Tensor, init: torch.Tensor) -> list[torch.Tensor]:
        """The four decoder inputs, finest first."""
        c = self.config
        if c.variant == "unet":
            return self.backbone(torch.cat([image, init], 1))
        h, w = image.shape[-2] // c.patch, image.shape[-1] // c.patch
        tokens = [self.rgb(image)] + ([self.corr(init)] if self.corr is not None else [])
        return self.reassemble(tokens, h, w)

    def pixel_features(self, image: torch.Tensor, init: torch.Tensor) -> torch.Tensor:
        """The per-pixel features both heads read: (B, 32, H, W) (inputs as :meth:`forward`)."""
        self._check(image, init)
        feats = self.features(image, init)
        x = None
        for block, skip in zip(self.fusion, reversed(feats), strict=True):
            x = block(x, skip)
        x = F.interpolate(self.head(x), size=image.shape[-2:], mode="bilinear", align_corners=False)
        inputs = [image] if self.config.variant == "rgb" else [image, init]
        return self.pixel(torch.cat([x, *inputs], 1))

    def _add_prior(self, scores: torch.Tensor, init: torch.Tensor, x: torch.Tensor,
                   levels_last: bool = False) -> torch.Tensor:  # fmt: skip
        """``scores`` (B, 3, bins, ...) plus, in place, the initialisation prior of ``init``
        (B, 4, ...): minus the sharpness times the squared distance of each level to the
        initial colour (shifted by the offsets predicted from the pixel features ``x``
        (B, 32, ...) with ``prior_offset``); 0 off the initial mask. ``levels_last``:
        ``scores`` is laid out (B, ..., 3, bins) instead, the levels contiguous."""
        c = self.config
        centre, log_s, mask = init[:, :3], self.prior_log_sharpness, init[:, 3:4]
        if c.prior_offset:
            o = torch.tanh(self.prior_shift(x))
            centre, log_s = centre + c.max_offset * o[:, :3], log_s + 3 * o[:, 3:4]
        levels = (torch.arange(c.bins, device=init.device, dtype=init.dtype) + 0.5) / c.bins
        if levels_last:  # channels (3 or 1) after the spatial dimensions, then the levels
            # (contiguous, so the broadcast result takes the levels-last layout too)
            centre, mask = (t.movedim(1, -1)[..., None].contiguous() for t in (centre, mask))
            log_s = log_s.movedim(1, -1)[..., None] if log_s.ndim else log_s
        else:
            levels = levels.view(1, 1, c.bins, *([1] * (init.ndim - 2)))
            centre, mask = centre[:, :, None], mask[:, :, None]
            log_s = log_s[:, :, None] if log_s.ndim else log_s
        d = levels - centre
        d2 = d * d if torch.is_grad_enabled() else d.square_()
        return scores.addcmul_(d2, -log_s.exp() * mask)  # one pass over the scores

    def _init_at(self, init: torch.Tensor, x: torch.Tensor, pixels: torch.Tensor | None = None) -> torch.Tensor:
        """The initial map (B, 4, H, W) where the prior reads it: at each pixel (or at
        ``pixels`` (B, N), as (B, 4, N, 1)), moved by the predicted flow with ``prior_flow``.
        ``x``: the pixel features (B, 32, H, W)."""
        c = self.config
        if not c.prior_flow:
            return init if pixels is None else self._gather(init, pixels)
        B, _, H, W = init.shape
        xf = x if pixels is None else self._gather(x, pixels)
        flow = 2 * c.max_flow * torch.tanh(self.flow_head(xf)).permute(0, 2, 3, 1)  # grid units
        if pixels is None:
            ys, xs = torch.meshgrid(torch.arange(H, device=init.device), torch.arange(W, device=init.device),
                                    indexing="ij")  # fmt: skip
            ys, xs = ys[None, ..., None], xs[None, ..., None]
        else:
            ys, xs = (pixels // W)[..., None, None], (pixels % W)[..., None, None]
        base = torch.cat([(2 * xs + 1) / W - 1, (2 * ys + 1) / H - 1], -1).to(init.dtype)  # pixel centres
        s = F.grid_sample(init, base + flow, mode="bilinear", padding_mode="zeros", align_corners=False)
        m = s[:, 3:4]
        return torch.cat([(s[:, :3] / m.clamp_min(1e-3)).clamp(0, 1), m], 1)

    def _gather(self, t: torch.Tensor, pixels: torch.Tensor) -> torch.Tensor:
        return torch.gather(t.flatten(2), 2, pixels[:, None].expand(-1, t.shape[1], -1))[..., None]

    def score_pixels(self, x: torch.Tensor, pixels: torch.Tensor, init: torch.Tensor | None = None) -> torch.Tensor:
        """Colour scores (B, 3, bins, N, 1) of :meth:`pixel_features` ``x`` at ``pixels``
        (B, N) int64 flat indices ``y * W + x``; ``init`` (B, 4, H, W) is needed when
        :attr:`uses_prior`. The result is a view of a (B, N, 3, bins) tensor: each
        pixel's levels are contiguous, which the reductions over the levels
        (:func:`~reroute.correspondence.bodymap.decode.expected_colour`, the losses) read fastest."""
        B = x.shape[0]
        if pixels.ndim != 2 or pixels.shape[0] != B:
            raise ValueError(f"pixels: expected ({B}, N), got {tuple(pixels.shape)}")
        xp = self._gather(x, pixels)  # (B, 32, N, 1)
        weight = self.scores.weight.flatten(1)  # (3 * bins, 32)
        scores = F.linear(xp[..., 0].transpose(1, 2), weight, self.scores.bias).unflatten(-1, (3, -1))
        if self.uses_prior:  # the prior in (B, N, 1, 3, bins), added to (B, N, 3, bins)
            self._add_prior(scores[:, :, None], self._init_at(init, x, pixels), xp, levels_last=True)
        return scores.permute(0, 2, 3, 1)[..., None]

    def foreground(self, x: torch.Tensor, init: torch.Tensor) -> torch.Tensor:
        """Foreground logits (B, 1, H, W) of :meth:`pixel_features` ``x`` (plus the
        initial mask's prior when :attr:`uses_prior`)."""
        fg = self.fg(x)
        return fg + self.prior_foreground * (2 * init[:, 3:4] - 1) if self.uses_prior else fg

    def part_scores(self, x: torch.Tensor, init: torch.Tensor) -> torch.Tensor:
        """Part scores (B, 24, H, W) float32 (channel ``i`` is DensePose part ``i + 1``;
        ``part_head`` only).

        ``x``: the (B, 32, H, W) :meth:`pixel_features`; ``init``: the (B, 4, H, W)
        initial map (:func:`init_tensor`). The scores are ``part_gain`` times the head's,
        plus (:attr:`uses_prior`), on the initial mask, ``part_prior`` times the one-hot
        part of the initial colour code (:func:`~reroute.correspondence.bodymap.decode.part_lookup`)
        and ``part_gain`` times the ``part_table`` entry of its colour-space cell.
        Raises ``RuntimeError`` without ``part_head``."""
        if not self.config.part_head:
            raise RuntimeError("this BodyMap network has no part head (config.part_head is False)")
        c = self.config
        scores = c.part_gain * self.part(x)
        if not self.uses_prior:
            return scores
        on = init[:, 3] > 0.5
        lut = part_lookup().to(init.device)
        first = lut.flatten()[_colour_cells(init, lut.shape[0])].long() * on  # (B, H, W), 0 = none
        onehot = F.one_hot(first, PARTS + 1)[..., 1:].permute(0, 3, 1, 2).to(scores.dtype)
        scores = scores + self.part_prior * onehot
        if c.part_table:
            table = self.part_table[_colour_cells(init, c.part_table)].permute(0, 3, 1, 2)
            scores = scores + c.part_gain * table * on[:, None].to(scores.dtype)
        return scores

    def forward(self, image: torch.Tensor, init: torch.Tensor, pixels: torch.Tensor | None = None) -> BodyMapOutput:
        """See the class docstring; ``pixels`` (B, N) int64 flat indices ``y * W + x``:
        score only those pixels (training: the 3 x 256 scores per pixel are the
        costliest tensor), returned as ``logits`` (B, 3, bins, N, 1)."""
        x = self.pixel_features(image, init)
        fg = self.foreground(x, init)
        parts = self.part_scores(x, init) if self.config.part_head else None
        if pixels is not None:
            parts = None if parts is None else self._gather(parts, pixels)
            return BodyMapOutput(self.score_pixels(x, pixels, init), fg, parts)
        B, _, H, W = x.shape
        scores = self.scores(x).reshape(B, 3, self.config.bins, H, W)
        if self.uses_prior:
            scores = self._add_prior(scores, self._init_at(init, x), x)
        return BodyMapOutput(scores, fg, parts)


def _colour_cells(init: torch.Tensor, n: int) -> torch.Tensor:
    """(B, H, W) int64 flat index ``(i * n + j) * n + k`` of the initial colour code's cell
    in an n x n x n grid over [0, 1]^3 (``init``: (B, 4, H, W), colour in channels 0-2)."""
    q = (init[:, :3].detach() * n).long().clamp(0, n - 1)
    return (q[:, 0] * n + q[:, 1]) * n + q[:, 2]


def parameter_count(model: nn.Module) -> int:
    """Number of parameters."""
    return int(sum(p.numel() for p in model.parameters()))
