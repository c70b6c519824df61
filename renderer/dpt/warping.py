"""Dense Pose Transfer's warping stream (Neverova et al., ECCV 2018, sec. 3.2, Appendix A).

1. :func:`image_to_atlas`: a spatial transformer that scatters the source photo
   into DensePose's 24-part atlas (6 columns x 4 rows of N x N tiles, part ``i``
   at row ``(i-1) // 6``, column ``(i-1) % 6``, U along x, V along y reversed: the
   layout of :mod:`reroute.uv.atlas`) by bilinear splatting, with a visibility map;
2. :class:`InpaintingAutoencoder`: the paper's Table 6: 24 per-part encoders
   (stride-2 4x4 convs 3->32->32->64->128 at N = 256), a context network over all
   parts' codes (24*128*16*16 -> 256 -> 256), and 24 decoders each taking its
   part's code with the context code; reroute runs the 24 encoders and decoders
   as grouped convolutions (one group per part, independent weights);
3. :func:`atlas_to_image`: a bilinear spatial transformer from the atlas to the
   target image at the target IUV.

Seam-free sampling (the warp module's rule, :func:`reroute.uv.texture.sample_masked`):
a sample never reads outside its part's tile (positions are clamped to the
tile's texel centres), and with a visibility map only visible texels
contribute (bilinear weights renormalised), so empty texels never darken a pixel.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn
from torch.nn import functional as F

from reroute.training.checkpoint import dataclass_from_dict

__all__ = [
    "NUM_PARTS",
    "Atlas",
    "image_to_atlas",
    "atlas_to_image",
    "atlas_parts",
    "parts_atlas",
    "InpaintingConfig",
    "InpaintingAutoencoder",
]

#: DensePose body parts (tiles of the atlas)
NUM_PARTS = 24


@dataclass
class Atlas:
    """A texture in DensePose's 24-part atlas layout.

    Attributes:
        pixels: (B, C, 4N, 6N) float32 (images in [-1, 1]); 0 where not visible.
        visibility: (B, 1, 4N, 6N) float32 in {0, 1}: texels some pixel landed on
            (all 1 for a completed atlas).
    """

    pixels: torch.Tensor
    visibility: torch.Tensor

    @property
    def tile(self) -> int:
        return self.pixels.shape[-2] // 4


def _part_coords(iuv: torch.Tensor, tile: int):
    """Per pixel: part (B, H, W) long, atlas texel coordinates x, y (float, texel-centre units)."""
    part = torch.round(iuv[:, 0] * 24).long().clamp(0, NUM_PARTS)
    k = (part - 1).clamp_min(0)
    col, row = (k % 6).to(iuv.dtype), (k // 6).to(iuv.dtype)
    # inside the tile: texel centres at 0.5 .. N - 0.5, clamped so no footprint leaves the tile
    tx = (iuv[:, 1] * tile).clamp(0.5, tile - 0.5)
    ty = ((1 - iuv[:, 2]) * tile).clamp(0.5, tile - 0.5)
    return part, col * tile + tx, row * tile + ty


def _check_iuv(iuv: torch.Tensor, like: torch.Tensor | None = None) -> None:
    if iuv.ndim != 4 or iuv.shape[1] != 3:
        raise ValueError(f"iuv: expected (B, 3, H, W), got {tuple(iuv.shape)}")
    if like is not None and (like.shape[0] != iuv.shape[0] or like.shape[-2:] != iuv.shape[-2:]):
        raise ValueError(f"image {tuple(like.shape)} and iuv {tuple(iuv.shape)} differ in batch or size")


def image_to_atlas(image: torch.Tensor, iuv: torch.Tensor, tile: int) -> Atlas:
    """Scatter an image into the 24-part atlas (bilinear splatting; differentiable in ``image``).

    Args:
        image: (B, C, H, W) float32.
        iuv: (B, 3, H, W) float32 (I / 24, U, V); pixels with I = 0 are ignored.
        tile: N, the side of each part's tile.
    Returns:
        :class:`Atlas` (B, C, 4N, 6N): each texel the weighted mean of the pixels
        splatted onto it; visibility 1 where the summed weight exceeds 1e-3.
    Raises:
        ValueError: wrong shapes.
    """
    _check_iuv(iuv, image)
    B, C, H, W = image.shape
    part, x, y = _part_coords(iuv, tile)
    k = (part - 1).clamp_min(0)
    lo_x, lo_y = (k % 6) * tile, (k // 6) * tile
    x, y = x - 0.5, y - 0.5  # texel-index space: texel j has its centre at j
    x0, y0 = x.floor(), y.floor()
    fx, fy = x - x0, y - y0
    x0, y0 = x0.long(), y0.long()
    on = (part > 0).to(image.dtype)
    AH, AW = 4 * tile, 6 * tile
    num = image.new_zeros(B * AH * AW, C)
    den = image.new_zeros(B * AH * AW)
    vals = image.permute(0, 2, 3, 1).reshape(-1, C)
    base = torch.arange(B, device=image.device).view(B, 1, 1) * (AH * AW)
    for dx, dy in ((0, 0), (1, 0), (0, 1), (1, 1)):
        w = (fx if dx else 1 - fx) * (fy if dy else 1 - fy) * on
        xi = torch.minimum(torch.maximum(x0 + dx, lo_x), lo_x + tile - 1)
        yi = torch.minimum(torch.maximum(y0 + dy, lo_y), lo_y + tile - 1)
        idx = (base + yi * AW + xi).reshape(-1)
        wf = w.reshape(-1)
        num.index_add_(0, idx, vals * wf[:, None])
        den.index_add_(0, idx, wf)
    seen = den > 1e-3
    pix = torch.where(seen[:, None], num / den.clamp_min(1e-3)[:, None], torch.zeros_like(num))
    pix = pix.view(B, AH, AW, C).permute(0, 3, 1, 2)
    return Atlas(pix.contiguous(), seen.view(B, 1, AH, AW).to(image.dtype))


def atlas_to_image(atlas: Atlas | torch.Tensor, iuv: torch.Tensor, masked: bool = True
                   ) -> tuple[torch.Tensor, torch.Tensor]:  # fmt: skip
    """Sample the atlas at each pixel's (I, U, V): the bilinear spatial transformer to the target.

    Args:
        atlas: an :class:`Atlas` or its pixels (B, C, 4N, 6N).
        iuv: (B, 3, H, W) float32 (I / 24, U, V).
        masked: with an :class:`Atlas`, only visible texels contribute
            (renormalised bilinear weights).
    Returns:
        image (B, C, H, W) float32, 0 on background and where no visible texel is
        near; coverage (B, 1, H, W) float32 in [0, 1]: the summed visible weight
        (1 for a completed atlas), 0 on background.
    """
    _check_iuv(iuv)
    pixels = atlas.pixels if isinstance(atlas, Atlas) else atlas
    vis = atlas.visibility if isinstance(atlas, Atlas) and masked else None
    if pixels.shape[0] != iuv.shape[0] or pixels.shape[-1] * 4 != pixels.shape[-2] * 6:
        raise ValueError(f"atlas: expected ({iuv.shape[0]}, C, 4N, 6N), got {tuple(pixels.shape)}")
    tile = pixels.shape[-2] // 4
    part, x, y = _part_coords(iuv, tile)
    grid = torch.stack([x / (6 * tile) * 2 - 1, y / (4 * tile) * 2 - 1], -1)
    on = (part > 0).to(pixels.dtype)[:, None]
    if vis is None:
        out = F.grid_sample(pixels, grid, mode="bilinear", padding_mode="border", align_corners=False)
        return out * on, on
    num = F.grid_sample(pixels * vis, grid, mode="bilinear", padding_mode="border", align_corners=False)
    den = F.grid_sample(vis, grid, mode="bilinear", padding_mode="border", align_corners=False)
    out = torch.where(den > 1e-4, num / den.clamp_min(1e-4), torch.zeros_like(num))
    return out * on, den * on


def atlas_parts(x: torch.Tensor) -> torch.Tensor:
    """(B, C, 4N, 6N) atlas -> (B, 24, C, N, N) per-part tiles (part k at index k - 1)."""
    B, C, H, W = x.shape
    n = H // 4
    return x.view(B, C, 4, n, 6, n).permute(0, 2, 4, 1, 3, 5).reshape(B, NUM_PARTS, C, n, n)


def parts_atlas(x: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`atlas_parts`: (B, 24, C, N, N) -> (B, C, 4N, 6N)."""
    B, P, C, n, _ = x.shape
    return x.view(B, 4, 6, C, n, n).permute(0, 3, 1, 4, 2, 5).reshape(B, C, 4 * n, 6 * n)


@dataclass
class InpaintingConfig:
    """Architecture of :class:`InpaintingAutoencoder` (Appendix A, Table 6).

    Attributes:
        tile: N, side of each part's tile (paper: 256).
        channels: per-part encoder widths, one stride-2 conv each (paper: 32, 32, 64, 128).
        context: width of the context network's two layers (paper: 256).
        keep_observed: visible texels keep their observed colour in the output.
    """

    tile: int = 256
    channels: tuple[int, ...] = (32, 32, 64, 128)
    context: int = 256
    keep_observed: bool = True

    def validate(self) -> InpaintingConfig:
        s = 2 ** len(self.channels)
        if self.tile % s or self.tile < s:
            raise ValueError(f"tile {self.tile} must be a multiple of 2**len(channels) = {s}")
        return self

    @classmethod
    def from_dict(cls, d: dict) -> InpaintingConfig:
        return dataclass_from_dict(cls, d).validate()

    def to_dict(self) -> dict:
        return asdict(self)

    @property
    def code_side(self) -> int:
        return self.tile // 2 ** len(self.channels)


class InpaintingAutoencoder(nn.Module):
    """Completes a partial 24-part atlas (Appendix A, Table 6).

    ``forward(atlas)``: :class:`Atlas` with pixels (B, 3, 4N, 6N) in [-1, 1]
    and visibility (B, 1, 4N, 6N), N = ``config.tile``. Each part's encoder E_i
    sees its tile's colours and visibility (4 channels); the context network maps
    all 24 codes to one vector G; decoder D_i takes ``[E_i, G]`` (G repeated over
    the code's positions) back to an N x N tile (tanh). Returns an :class:`Atlas`
    whose pixels are the completed texture (observed texels kept when
    ``keep_observed``, default ``config.keep_observed``; training compares the
    raw decoder output with every view) and whose visibility is all ones.
    """

    def __init__(self, config: InpaintingConfig | None = None):
        super().__init__()
        self.config = c = (config or InpaintingConfig()).validate()
        P = NUM_PARTS
        enc, cin = [], 4
        for i, ch in enumerate(c.channels):
            enc += [nn.Conv2d(P * cin, P * ch, 4, 2, 1, groups=P)]
            enc += [nn.InstanceNorm2d(P * ch, affine=True)] if i else []
            enc += [nn.LeakyReLU(0.2, True)]
            cin = ch
        self.encoders = nn.Sequential(*enc)
        s = c.code_side
        self.context = nn.Sequential(nn.Linear(P * c.channels[-1] * s * s, c.context), nn.ReLU(True),
                                     nn.Linear(c.context, c.context), nn.ReLU(True))  # fmt: skip
        dec, cin = [], c.channels[-1] + c.context
        for ch in reversed(c.channels[:-1]):
            dec += [nn.ConvTranspose2d(P * cin, P * ch, 4, 2, 1, groups=P), nn.InstanceNorm2d(P * ch, affine=True),
                    nn.ReLU(True)]  # fmt: skip
            cin = ch
        dec += [nn.ConvTranspose2d(P * cin, P * 3, 4, 2, 1, groups=P), nn.Tanh()]
        self.decoders = nn.Sequential(*dec)

    def forward(self, atlas: Atlas, keep_observed: bool | None = None) -> Atlas:
        c, P = self.config, NUM_PARTS
        keep = c.keep_observed if keep_observed is None else keep_observed
        pix, vis = atlas.pixels, atlas.visibility
        want = (pix.shape[0], 3, 4 * c.tile, 6 * c.tile)
        if tuple(pix.shape) != want:
            raise ValueError(f"atlas pixels: expected {want}, got {tuple(pix.shape)}")
        if tuple(vis.shape) != (want[0], 1) + want[2:]:
            raise ValueError(f"atlas visibility: expected {(want[0], 1) + want[2:]}, got {tuple(vis.shape)}")
        B, s = pix.shape[0], c.code_side
        x = atlas_parts(torch.cat([pix * vis, vis], 1)).reshape(B, P * 4, c.tile, c.tile)
        e = self.encoders(x)  # (B, P * c_last, s, s)
        g = self.context(e.flatten(1))  # (B, context)
        e = e.view(B, P, c.channels[-1], s, s)
        g = g[:, None, :, None, None].expand(B, P, c.context, s, s)
        out = self.decoders(torch.cat([e, g], 2).reshape(B, -1, s, s))
        out = parts_atlas(out.view(B, P, 3, c.tile, c.tile))
        if keep:
            out = vis * pix + (1 - vis) * out
        return Atlas(out, torch.ones_like(vis))
