"""Dense Pose Transfer (Neverova, Güler, Kokkinos, ECCV 2018) on reroute's IUV maps.

* :mod:`renderer.dpt.predictive`: the predictive stream (sec. 3.1) and the
  Table 3 conditionings (:func:`~renderer.dpt.predictive.encode_iuv`);
* :mod:`renderer.dpt.warping`: the atlas spatial transformers
  (:func:`~renderer.dpt.warping.image_to_atlas`,
  :func:`~renderer.dpt.warping.atlas_to_image`) and the inpainting
  autoencoder (sec. 3.2, Appendix A Table 6);
* :mod:`renderer.dpt.blending`: the blending module (sec. 3.3);
* :mod:`renderer.dpt.model`: :class:`~renderer.dpt.model.DensePoseTransfer`
  (the Table 4 variants) and :func:`~renderer.dpt.model.dpt_transfer_image`;
* :mod:`renderer.dpt.losses`: L1, perceptual L2, Gram style, LSGAN, masked
  multi-view L1 (sec. 3.4, Appendix eq. 6);
* :mod:`renderer.dpt.data`: training pairs (real photos, synthetic people);
* :mod:`renderer.dpt.train`: ``python -m renderer.dpt.train --stage ...``;
* :mod:`renderer.dpt.export`: the committed checkpoint and its model card.

The correspondences are reroute's (the anny fit), not DensePose R-CNN's.
"""

from __future__ import annotations

import functools
from pathlib import Path

from renderer.dpt.model import DensePoseTransfer, dpt_transfer_image, load_dpt

__all__ = ["DEFAULT_CHECKPOINT", "DensePoseTransfer", "dpt_transfer_image", "load_dpt", "load_default_dpt"]

#: the committed 256 px CPU checkpoint (see its .json model card)
DEFAULT_CHECKPOINT = Path(__file__).resolve().parents[2] / "checkpoints" / "dpt_cpu256.pt"


@functools.lru_cache(maxsize=4)
def load_default_dpt(path: str | None = None) -> DensePoseTransfer:
    """The Dense Pose Transfer model from ``path`` (default :data:`DEFAULT_CHECKPOINT`),
    cached per path, eval mode. Raises :class:`reroute.errors.InputError` when the file
    is missing or not a ``dpt`` checkpoint."""
    return load_dpt(str(path) if path else DEFAULT_CHECKPOINT)
