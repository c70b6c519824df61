"""Training infrastructure shared by every network.

* :mod:`reroute.training.trainer`: :class:`~reroute.training.trainer.GANTrainer`
  (one device or ``torchrun``; DDP, SyncBatchNorm on CUDA, AMP, EMA,
  resumable), :class:`~reroute.training.trainer.TrainConfig`;
* :mod:`reroute.training.checkpoint`: versioned checkpoints loaded with
  ``weights_only=True``;
* :mod:`reroute.training.vgg`: VGG19 features for perceptual losses, from
  locally found weights only.
"""

from reroute.training.checkpoint import load_checkpoint, save_checkpoint
from reroute.training.trainer import GANTrainer, LossTerms, TrainConfig

__all__ = ["GANTrainer", "TrainConfig", "LossTerms", "save_checkpoint", "load_checkpoint"]
