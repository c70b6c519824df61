"""BodyMap's neural re-renderer (Ianina et al., CVPR 2022, supplementary C.1.2).

``X = R(target correspondences, full texture)``: an encoder-decoder turns the
completed texture warped into the target view (the warp-only composite) into
the final image. Inputs, all at the target's working size (H, W):

* ``warped``: (B, 3, H, W) float32 in [-1, 1], the warp-only composite (the
  person warped from the texture, over the background);
* ``background``: (B, 3, H, W) float32 in [-1, 1], what lies behind the person;
* ``uv``: (B, 2, H, W) float32 in [0, 1], the target's continuous UV (U along
  the texture's x, V along its y, row 0 at the top), 0 on background;
* ``colour``: (B, 3, H, W) float32 in [0, 1], the target's BodyMap colour code
  (canonical rest-pose position), 0 on background;
* ``mask``: (B, 1, H, W) float32 in [0, 1], the target person's soft mask;
* ``texture``: (B, 3, T, T) float32 in [-1, 1], the full (completed) UV texture;
  a second encoder turns it into a ``texture_code``-dimensional vector fed
  through the bottleneck into the decoder, so detail lost in warping can come back;
* ``seen`` (only with ``RerenderConfig.seen_input``): (B, 1, H, W) float32 in
  [0, 1], how much of each target pixel's texel the source photo showed (the
  partial texture's visibility warped to the target, :func:`seen_map`); 0 where
  the texture was filled by completion, so the network can tell observed
  appearance from hallucinated appearance (a face drawn from a back view).

The network predicts an RGB residual over ``warped`` and an alpha matte
(its logit offset by the given mask), and composites
``image = alpha * (warped + residual) + (1 - alpha) * background``. The last
layer starts at zero, so an untrained re-renderer returns (almost exactly) its
input: training can only move away from the warp where that lowers the loss.
H and W must be divisible by ``2**depth``; :func:`rerender_image` pads.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from reroute.correspondence.maps import Correspondence
from reroute.io.images import to_uint8
from reroute.training.checkpoint import load_checkpoint
from reroute.uv.texture import UVTexture
from reroute.uv.warp import uv_to_image
from texture.network import conv_block, norm_layer

__all__ = [
    "IN_CHANNELS",
    "seen_map",
    "widen_state_dict",
    "MASK_LOGIT_SCALE",
    "RerenderConfig",
    "RerenderOutput",
    "ReRenderer",
    "TextureEncoder",
    "PRESETS",
    "load_rerenderer",
    "rerender_image",
    "correspondence_tensors",
    "image_tensor",
]

#: input channels of the image encoder: warped 3 + background 3 + uv 2 + colour 3 + mask 1
IN_CHANNELS = 12
#: the alpha logit is offset by ``MASK_LOGIT_SCALE * (2 * mask - 1)`` (alpha 0.98 inside at init)
MASK_LOGIT_SCALE = 4.0


@dataclass
class RerenderConfig:
    """Architecture of :class:`ReRenderer`.

    Attributes:
        image_size: side (pixels) it is trained at; any H, W divisible by
            ``2**depth`` run.
        base_channels: channels at full resolution, doubled per level up to ``max_channels``.
        depth: stride-2 levels of the image encoder.
        res_blocks: residual blocks at the bottleneck (after the texture code joins).
        texture_size: side the full texture is resized to for the texture encoder.
        texture_code: length of the texture encoder's vector.
        norm: "batch" (SyncBatchNorm under multi-GPU DDP) or "instance".
        seen_input: take the ``seen`` map as a 13th input channel (see the
            module docstring); configs stored without the field read as False.
    """

    image_size: int = 256
    base_channels: int = 24
    max_channels: int = 192
    depth: int = 5
    res_blocks: int = 2
    texture_size: int = 128
    texture_code: int = 64
    norm: str = "batch"
    seen_input: bool = False

    @property
    def in_channels(self) -> int:
        """Input channels of the image encoder: :data:`IN_CHANNELS`, + 1 with ``seen_input``."""
        return IN_CHANNELS + int(self.seen_input)

    def validate(self) -> RerenderConfig:
        """Return self; raise ``ValueError`` naming the bad field otherwise."""
        if self.norm not in ("batch", "instance"):
            raise ValueError(f"norm must be 'batch' or 'instance', got {self.norm!r}")
        if self.depth < 1 or self.image_size % (2**self.depth):
            raise ValueError(f"image_size {self.image_size} must be divisible by 2**depth = {2**self.depth}")
        if self.texture_size < 16 or self.texture_size & (self.texture_size - 1):
            raise ValueError(f"texture_size must be a power of two >= 16, got {self.texture_size}")
        return self

    @classmethod
    def from_dict(cls, d: dict) -> RerenderConfig:
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names}).validate()

    def to_dict(self) -> dict:
        return asdict(self)


#: ``tiny`` (tests, 32 px), ``cpu`` (the committed checkpoint, 256 px), ``paper`` (1024 px)
PRESETS: dict[str, RerenderConfig] = {
    "tiny": RerenderConfig(image_size=32, base_channels=8, max_channels=16, depth=2, res_blocks=1,
                           texture_size=16, texture_code=8),
    "cpu": RerenderConfig(),
    "paper": RerenderConfig(image_size=1024, base_channels=32, max_channels=512, depth=6,
                            res_blocks=4, texture_size=512, texture_code=256),
}  # fmt: skip


@dataclass
class RerenderOutput:
    """What :meth:`ReRenderer.render` returns.

    Attributes:
        image: (B, 3, H, W) float32, ``alpha * rgb + (1 - alpha) * background``
            (about [-1, 1]; not clamped while training).
        rgb: (B, 3, H, W) float32, the re-rendered person before compositing.
        alpha: (B, 1, H, W) float32 in [0, 1], the predicted matte.
    """

    image: torch.Tensor
    rgb: torch.Tensor
    alpha: torch.Tensor


class _Residual(nn.Module):
    def __init__(self, c: int, norm: str):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(c, c, 3, 1, 1, bias=False), norm_layer(norm, c),
                                  nn.LeakyReLU(0.2, True), nn.Conv2d(c, c, 3, 1, 1, bias=False),
                                  norm_layer(norm, c))  # fmt: skip

    def forward(self, x):
        return F.leaky_relu(x + self.body(x), 0.2)


class TextureEncoder(nn.Module):
    """Full UV texture -> a low-dimensional code (BodyMap supp. C.1.2's second encoder).

    ``forward(texture)``: (B, 3, T, T) float32 in [-1, 1] (any T; resized to
    ``config.texture_size`` with area averaging) -> (B, texture_code) float32.
    Stride-2 convolutions down to 4x4, then a linear layer.
    """

    def __init__(self, config: RerenderConfig):
        super().__init__()
        self.size = config.texture_size
        layers, c, s = [], 3, config.texture_size
        width = max(8, config.base_channels // 2)
        while s > 4:
            c2 = min(width * 2, config.max_channels)
            layers += [nn.Conv2d(c, c2, 4, 2, 1), nn.LeakyReLU(0.2, True)]
            c, width, s = c2, c2, s // 2
        self.convs = nn.Sequential(*layers)
        self.fc = nn.Linear(c * 16, config.texture_code)

    def forward(self, texture: torch.Tensor) -> torch.Tensor:
        if texture.ndim != 4 or texture.shape[1] != 3:
            raise ValueError(f"texture: expected (B, 3, T, T), got {tuple(texture.shape)}")
        if texture.shape[-1] != self.size:
            texture = F.interpolate(texture, size=(self.size, self.size), mode="area")
        return self.fc(self.convs(texture).flatten(1))


class ReRenderer(nn.Module):
    """The neural re-renderer: U-Net on the target view, texture code at the bottleneck.

    ``forward(warped, background, uv, colour, mask, texture, seen=None)`` returns the
    composited image (B, 3, H, W) (``seen`` required exactly when
    ``config.seen_input``); :meth:`render` also returns the person and
    its alpha (:class:`RerenderOutput`). Shapes and ranges: see the module
    docstring. Raises ``ValueError`` on wrong shapes (expected versus actual).
    """

    def __init__(self, config: RerenderConfig | None = None):
        super().__init__()
        self.config = c = (config or RerenderConfig()).validate()
        ch = [min(c.base_channels * 2**i, c.max_channels) for i in range(c.depth + 1)]
        self.stem = conv_block(c.in_channels, ch[0], c.norm)
        self.down = nn.ModuleList(conv_block(ch[i], ch[i + 1], c.norm, 2) for i in range(c.depth))
        self.texture_encoder = TextureEncoder(c)
        self.fuse = nn.Sequential(nn.Conv2d(ch[-1] + c.texture_code, ch[-1], 1), nn.LeakyReLU(0.2, True))
        self.res = nn.Sequential(*[_Residual(ch[-1], c.norm) for _ in range(c.res_blocks)])
        self.up = nn.ModuleList(conv_block(ch[i + 1] + ch[i], ch[i], c.norm) for i in reversed(range(c.depth)))
        self.head = nn.Conv2d(ch[0] + c.in_channels, 4, 3, 1, 1)
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)

    def _check(self, warped, background, uv, colour, mask, texture, seen) -> None:
        B, _, H, W = warped.shape
        if self.config.seen_input != (seen is not None):
            need = "needs a" if self.config.seen_input else "takes no"
            raise ValueError(f"this re-renderer {need} seen map (config.seen_input={self.config.seen_input})")
        if seen is not None and tuple(seen.shape) != (B, 1, H, W):
            raise ValueError(f"seen: expected {(B, 1, H, W)}, got {tuple(seen.shape)}")
        want = {"warped": (B, 3, H, W), "background": (B, 3, H, W), "uv": (B, 2, H, W),
                "colour": (B, 3, H, W), "mask": (B, 1, H, W)}  # fmt: skip
        got = {"warped": warped, "background": background, "uv": uv, "colour": colour, "mask": mask}
        for k, shape in want.items():
            if tuple(got[k].shape) != shape:
                raise ValueError(f"{k}: expected {shape}, got {tuple(got[k].shape)}")
        if texture.ndim != 4 or texture.shape[:2] != (B, 3):
            raise ValueError(f"texture: expected ({B}, 3, T, T), got {tuple(texture.shape)}")
        step = 2**self.config.depth
        if H % step or W % step:
            raise ValueError(f"image side must be divisible by {step}, got {(H, W)}")

    def render(self, warped, background, uv, colour, mask, texture, seen=None) -> RerenderOutput:
        """Re-render; returns :class:`RerenderOutput` (see the class docstring)."""
        self._check(warped, background, uv, colour, mask, texture, seen)
        x = torch.cat([warped, background, uv, colour, mask] + ([seen] if seen is not None else []), 1)
        feats = [self.stem(x)]
        for d in self.down:
            feats.append(d(feats[-1]))
        h = feats.pop()
        code = self.texture_encoder(texture)[:, :, None, None].expand(-1, -1, *h.shape[-2:])
        h = self.res(self.fuse(torch.cat([h, code], 1)))
        for u in self.up:
            skip = feats.pop()
            h = F.interpolate(h, size=skip.shape[-2:], mode="bilinear", align_corners=False)
            h = u(torch.cat([h, skip], 1))
        out = self.head(torch.cat([h, x], 1))
        rgb = warped + out[:, :3]
        alpha = torch.sigmoid(out[:, 3:] + MASK_LOGIT_SCALE * (2 * mask - 1))
        return RerenderOutput(alpha * rgb + (1 - alpha) * background, rgb, alpha)

    def forward(self, warped, background, uv, colour, mask, texture, seen=None) -> torch.Tensor:
        return self.render(warped, background, uv, colour, mask, texture, seen).image


def widen_state_dict(state: dict[str, torch.Tensor], config: RerenderConfig) -> dict[str, torch.Tensor]:
    """Weights of a re-renderer without the ``seen`` input, made loadable into one with it.

    The ``seen`` channel is the last input channel of the stem's first
    convolution and of the head; both get zero weights there, so the widened
    network computes exactly what the original did, whatever ``seen`` holds
    (fine-tuning starts from the trained network). Returns a new dict; a state
    that already has the channel is returned unchanged.
    """
    out = dict(state)
    ch0 = state["stem.0.weight"].shape[0]
    for key, want in (("stem.0.weight", config.in_channels), ("head.weight", ch0 + config.in_channels)):
        w = state[key]
        if w.shape[1] == want - 1:
            out[key] = torch.cat([w, w.new_zeros(w.shape[0], 1, *w.shape[2:])], 1)
        elif w.shape[1] != want:
            raise ValueError(f"{key}: expected {want} or {want - 1} input channels, got {w.shape[1]}")
    return out


def load_rerenderer(path, map_location="cpu") -> ReRenderer:
    """A trained :class:`ReRenderer` from a reroute checkpoint (``weights_only=True``).

    Uses the EMA weights when the checkpoint has them; returns it in eval mode,
    its convolution weights in channels-last memory order (NHWC): oneDNN's
    convolutions then run without reordering, and the outputs are the same up
    to float summation order (max difference 1e-6 on [-1, 1] images). On the
    2-core CPU one forward took 0.087 s instead of 0.108 s at 256 x 192 and
    0.31-0.36 s instead of 0.40 s at 512 x 384 (medians of 8, alternating).
    Inputs may have either memory order.
    Raises :class:`reroute.errors.InputError` for a missing or foreign file.
    """
    ck = load_checkpoint(path, kind="rerenderer", map_location=map_location)
    model = ReRenderer(RerenderConfig.from_dict(ck["config"]["model"]))
    model.load_state_dict(ck.get("ema") or ck["generator"])
    return model.to(memory_format=torch.channels_last).eval()


def correspondence_tensors(corr: Correspondence) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """A :class:`Correspondence` as network inputs: uv (1, 2, H, W), colour (1, 3, H, W), soft mask (1, 1, H, W)."""
    m = corr.mask[..., None]
    uv = torch.from_numpy(np.ascontiguousarray(np.where(m, corr.uv, 0).transpose(2, 0, 1), np.float32))
    col = torch.from_numpy(np.ascontiguousarray(np.where(m, corr.colour, 0).transpose(2, 0, 1), np.float32))
    soft = torch.from_numpy(corr.soft_mask())
    return uv[None], col[None], soft[None, None]


def image_tensor(image: np.ndarray) -> torch.Tensor:
    """(H, W, 3) uint8 RGB -> (1, 3, H, W) float32 in [-1, 1]."""
    return torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1))).float()[None] / 127.5 - 1


def seen_map(partial: UVTexture | np.ndarray, corr: Correspondence) -> np.ndarray:
    """What the source showed of each target pixel: (H, W) float32 in [0, 1].

    Args:
        partial: the partial (lifted, not completed) :class:`UVTexture`, or its
            (T, T) float visibility in [0, 1] (row 0 is v = 0).
        corr: the target :class:`Correspondence` (H, W).
    Returns:
        the visibility sampled at each target pixel's UV
        (:func:`reroute.uv.warp.uv_to_image`: bilinear, inside the UV islands
        only); 0 outside ``corr.mask`` and on texels that only completion filled.
    """
    vis = partial.visibility if isinstance(partial, UVTexture) else np.asarray(partial)
    return uv_to_image(vis[..., None].astype(np.float32), corr)[..., 0]


@torch.no_grad()
def rerender_image(model: ReRenderer, composite: np.ndarray, background: np.ndarray,
                   corr: Correspondence, texture: UVTexture, seen: np.ndarray | None = None) -> np.ndarray:  # fmt: skip
    """Re-render one warp-only composite.

    Args:
        model: a :class:`ReRenderer` (put in eval mode here).
        composite: (H, W, 3) uint8 RGB, the warp-only result (person over background).
        background: (H, W, 3) uint8 RGB behind the person.
        corr: the target's :class:`Correspondence` (H, W).
        texture: the completed :class:`UVTexture` (pixels in [0, 1]).
        seen: (H, W) float32 in [0, 1] (:func:`seen_map`); required when
            ``model.config.seen_input``, ignored otherwise.
    Returns:
        (H, W, 3) uint8 RGB. Sides not divisible by ``2**depth`` are padded
        (edge replicate, mask 0) and cropped back.
    Raises:
        ValueError: sizes differ, or ``seen`` is missing for a model that needs it.
    """
    model.eval()
    H, W = corr.shape
    if composite.shape[:2] != (H, W) or background.shape[:2] != (H, W):
        raise ValueError(f"composite {composite.shape[:2]} and background {background.shape[:2]} "
                         f"must match the correspondences {(H, W)}")  # fmt: skip
    uv, col, soft = correspondence_tensors(corr)
    tex = torch.from_numpy(np.ascontiguousarray(texture.pixels.transpose(2, 0, 1), np.float32))[None] * 2 - 1
    step = 2**model.config.depth
    ph, pw = -H % step, -W % step
    ins = [image_tensor(composite), image_tensor(background), uv, col, soft]
    if model.config.seen_input:
        if seen is None or seen.shape != (H, W):
            raise ValueError(f"this re-renderer needs a seen map of {(H, W)}, got "
                             f"{None if seen is None else seen.shape}")  # fmt: skip
        ins.append(torch.from_numpy(np.ascontiguousarray(seen, np.float32))[None, None])
    if ph or pw:
        ins = [F.pad(t, (0, pw, 0, ph), mode="replicate" if i < 2 else "constant") for i, t in enumerate(ins)]
    out = model(*ins[:5], tex, *ins[5:])[0, :, :H, :W]
    return to_uint8(((out.clamp(-1, 1) + 1) * 0.5).permute(1, 2, 0).numpy())
