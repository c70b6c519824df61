"""Texture spaces of the body and the warps between them and images.

* :mod:`reroute.uv.texture`: :class:`~reroute.uv.texture.UVTexture` (a texture
  in anny's continuous UV layout with its visibility), the layout, and
  :func:`~reroute.uv.texture.fuse_textures` (several photos' textures fused by evidence);
* :mod:`reroute.uv.warp`: :func:`~reroute.uv.warp.image_to_uv` (lift a photo
  into UV) and :func:`~reroute.uv.warp.uv_to_image` (sample a texture at a
  correspondence map's UVs);
* :mod:`reroute.uv.atlas`: DensePose's 24-tile atlas and its conversion to and
  from continuous UV.
"""

from reroute.uv.atlas import atlas_to_continuous, continuous_to_atlas
from reroute.uv.texture import UVTexture, fuse_textures, uv_layout_mask
from reroute.uv.warp import image_to_uv, uv_to_image

__all__ = [
    "UVTexture",
    "fuse_textures",
    "uv_layout_mask",
    "image_to_uv",
    "uv_to_image",
    "continuous_to_atlas",
    "atlas_to_continuous",
]
