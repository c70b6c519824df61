"""Train the BodyMap network: ``python -m reroute.correspondence.bodymap.train --preset tiny|cpu|paper --out RUN``.

One command for one device or ``torchrun`` (:class:`reroute.training.trainer.GANTrainer`
with no discriminator: DDP, gloo on CPU, nccl + SyncBatchNorm on CUDA, AMP on
CUDA, EMA, resumable). Data: :class:`~reroute.correspondence.bodymap.data.BodyMapDataset`,
synthetic people rendered on the fly with perturbed initial correspondences
(seed 0; the held-out synthetic set of ``benchmarks/bodymap_quality.py`` uses
another seed, so other identities). Losses: :class:`~reroute.correspondence.bodymap.losses.BodyMapLoss`
(eq. 3), with the colour scores computed at ``pixels`` random body pixels per
image (:func:`~reroute.correspondence.bodymap.losses.sample_pixels`).

``--prepared FILE ...`` trains on prepared sets instead
(:class:`~reroute.correspondence.bodymap.prepared.PreparedDataset`: synthetic renders
with the real fit as initialisation, and real video frames whose DensePose part
labels feed the ``part`` term, ``--part-weight``).

``--variant full|rgb|unet`` trains the Table 5 rows. ``--part-head`` adds the part head
(``--part-prior``, ``--part-gain``, ``--part-table``), trained by ``--part-ce-weight``
on synthetic and real part labels alike.
"""

from __future__ import annotations

import argparse
from dataclasses import asdict, dataclass, field, replace

import torch

from reroute.correspondence.bodymap.data import Augment, BodyMapDataset, InitPerturbation
from reroute.correspondence.bodymap.losses import (
    BodyMapLoss,
    BodyMapLossWeights,
    BodyMapTargets,
    gather_targets,
    sample_pixels,
)
from reroute.correspondence.bodymap.network import PRESETS as MODEL_PRESETS
from reroute.correspondence.bodymap.network import (
    VARIANTS,
    BodyMapConfig,
    BodyMapNet,
    BodyMapOutput,
)
from reroute.correspondence.bodymap.prepared import PreparedDataset
from reroute.errors import InputError
from reroute.training.trainer import (
    LossTerms,
    TrainConfig,
    add_train_options,
    train_command,
    train_config_from_args,
)

__all__ = ["BodyMapTaskConfig", "BodyMapTask", "PRESETS", "build_dataset", "main"]


@dataclass
class BodyMapTaskConfig:
    """Everything that defines a BodyMap training run (stored in checkpoints).

    ``size``: training image side; ``pixels``: scored body pixels per image;
    ``length``: samples per epoch; ``perturbation`` and ``augment``: see
    :mod:`reroute.correspondence.bodymap.data`; ``prepared``: prepared set files
    trained on instead of the on-the-fly stream (then ``length`` and ``perturbation``
    do not apply), each real frame ``repeat_real`` times per epoch.
    """

    model: BodyMapConfig = field(default_factory=BodyMapConfig)
    loss: BodyMapLossWeights = field(default_factory=BodyMapLossWeights)
    perturbation: InitPerturbation = field(default_factory=InitPerturbation)
    augment: Augment = field(default_factory=Augment)
    size: int = 256
    pixels: int = 4096
    length: int = 100_000
    prepared: tuple[str, ...] = ()
    repeat_real: int = 1

    def config_dict(self) -> dict:
        """Plain values (rebuild the network with :meth:`BodyMapConfig.from_dict` of ``model``)."""
        return {"model": self.model.to_dict(), "loss": asdict(self.loss), "perturbation": asdict(self.perturbation),
                "augment": asdict(self.augment), "size": self.size, "pixels": self.pixels,
                "length": self.length, "prepared": list(self.prepared),
                "repeat_real": self.repeat_real}  # fmt: skip


@dataclass
class _Scored:
    """The generator output of one step and the pixels its colour scores are at."""

    output: BodyMapOutput
    pixels: torch.Tensor


class BodyMapTask:
    """The BodyMap network as a :class:`~reroute.training.trainer.GANTask` (no discriminator)."""

    kind = "bodymap"

    def __init__(self, config: BodyMapTaskConfig, landmarks=None):
        self.config = config
        self.loss = BodyMapLoss(config.loss, landmarks)

    def config_dict(self) -> dict:
        return self.config.config_dict()

    def build_generator(self):
        return BodyMapNet(self.config.model)

    def build_discriminator(self):
        return None

    def generate(self, G, batch) -> _Scored:
        pixels = sample_pixels((batch["vertex"] >= 0) | (batch["part"] > 0), self.config.pixels)
        return _Scored(G(batch["image"], batch["init"], pixels), pixels)

    def discriminator_loss(self, D, batch, fake) -> LossTerms:
        raise RuntimeError("the BodyMap network has no discriminator")

    def generator_loss(self, D, batch, fake: _Scored) -> LossTerms:
        t = BodyMapTargets(batch["colour"], batch["mask"], batch["part"], batch["vertex"], batch.get("real"))
        terms = self.loss.terms(fake.output, gather_targets(t, fake.pixels))
        return LossTerms(self.loss.total(terms), {k: v.detach() for k, v in terms.items()})

    def image_grid(self, batch, fake: _Scored):
        """Rows: image, initial colour code, predicted colour at the scored pixels
        (argmax, black elsewhere) times the foreground probability, true colour (first 4)."""
        k = min(4, batch["image"].shape[0])
        B, _, H, W = batch["image"].shape
        levels = fake.output.logits[:k, :, :, :, 0].detach().argmax(2).float()  # (k, 3, N)
        bins = self.config.model.bins
        pred = torch.zeros(k, 3, H * W)
        pred.scatter_(2, fake.pixels[:k, None].expand(-1, 3, -1).cpu(), ((levels + 0.5) / bins).cpu())
        pred = pred.reshape(k, 3, H, W) * torch.sigmoid(fake.output.foreground[:k].detach().cpu())
        true = (batch["colour"][:k].float() + 0.5) / bins * batch["mask"][:k]
        rows = [batch["image"][:k].cpu(), batch["init"][:k, :3].cpu() * 2 - 1, pred * 2 - 1, true.cpu() * 2 - 1]
        return torch.cat(rows), k


#: name -> (task config, train config)
PRESETS: dict[str, tuple[BodyMapTaskConfig, TrainConfig]] = {
    "tiny": (
        BodyMapTaskConfig(model=MODEL_PRESETS["tiny"], loss=BodyMapLossWeights(anchors=16, geodesic_pixels=256),
                          size=32, pixels=64, length=64),
        TrainConfig(steps=4, batch_size=2, log_every=2, image_every=4, ckpt_every=2),
    ),
    "cpu": (
        BodyMapTaskConfig(model=MODEL_PRESETS["cpu"], size=MODEL_PRESETS["cpu"].image_size, pixels=2048),
        TrainConfig(steps=3000, batch_size=4, lr_g=3e-4, betas=(0.9, 0.999), ema_decay=0.999, log_every=25,
                    image_every=250, ckpt_every=100),
    ),
    "paper": (
        BodyMapTaskConfig(model=MODEL_PRESETS["paper"], size=384, pixels=16384),
        TrainConfig(steps=200_000, batch_size=16, lr_g=1e-4, betas=(0.9, 0.999), amp="bf16", ema_decay=0.9999,
                    log_every=50, image_every=1000, ckpt_every=1000, num_workers=6),
    ),
}  # fmt: skip


def build_dataset(cfg: BodyMapTaskConfig, seed: int = 0) -> BodyMapDataset | PreparedDataset:
    """The training stream (synthetic identities of ``seed``; augmented), or the
    prepared sets of ``cfg.prepared`` (augmented alike).

    Raises ``InputError``: a prepared file is not a set, or its side is not ``cfg.size``."""
    if cfg.prepared:
        ds = PreparedDataset(list(cfg.prepared), cfg.augment, cfg.repeat_real, seed)
        sides = {d["image"].shape[-1] for d in ds.sets}
        if sides != {cfg.size}:
            raise InputError(f"prepared sets are {sorted(sides)} px, the run trains at {cfg.size} px (--size)")
        return ds
    return BodyMapDataset(cfg.length, seed=seed, perturbation=cfg.perturbation, augment=cfg.augment, size=cfg.size)


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m reroute.correspondence.bodymap.train",
                                description=__doc__.split("\n")[0])  # fmt: skip
    p.add_argument("--preset", choices=sorted(PRESETS), default="tiny")
    p.add_argument("--variant", choices=VARIANTS, help="Table 5 row (default: the preset's, full)")
    p.add_argument("--size", type=int, help="training image side (default: the preset's)")
    for name in ("ce", "silhouette", "geodesic", "consistency", "part", "colour_l1", "part_ce"):
        p.add_argument(f"--{name.replace('_', '-')}-weight", type=float)
    p.add_argument("--prepared", nargs="+", help="prepared set files (python -m reroute.correspondence.bodymap.prepared)")
    p.add_argument("--repeat-real", type=int, default=1, help="times each real frame counts per epoch")
    p.add_argument("--prior-offset", action="store_true", help="predict a per-pixel correction of the prior's centre")
    p.add_argument("--prior-flow", action="store_true", help="read the prior's centre through a predicted 2-D flow")
    p.add_argument("--part-head", action="store_true", help="add the part head (train it with --part-ce-weight)")
    p.add_argument("--part-prior", type=float, help="initial weight of the part head's one-hot prior")
    p.add_argument("--part-gain", type=float, help="output scale of the part head (and its table)")
    p.add_argument("--part-table", type=int, help="side of the part prior's learned colour-space table (0: none)")
    add_train_options(p)
    return p.parse_args(argv)


def configs_from_args(a: argparse.Namespace) -> tuple[BodyMapTaskConfig, TrainConfig]:
    """The preset with the command-line overrides applied."""
    task, train = PRESETS[a.preset]
    model = replace(task.model, variant=a.variant) if a.variant else task.model
    model = replace(model, prior_offset=model.prior_offset or a.prior_offset, prior_flow=model.prior_flow or a.prior_flow,
                    part_head=model.part_head or a.part_head)
    for k in ("part_prior", "part_gain", "part_table"):
        if getattr(a, k) is not None:
            model = replace(model, **{k: getattr(a, k)})
    weights = {k: getattr(a, f"{k}_weight")
               for k in ("ce", "silhouette", "geodesic", "consistency", "part", "colour_l1", "part_ce")}
    loss = replace(task.loss, **{k: v for k, v in weights.items() if v is not None})
    size = a.size or task.size
    if size % model.step:
        raise InputError(f"--size must be a multiple of {model.step} for this network, got {size}")
    prepared = tuple(str(p) for p in a.prepared or ())
    task = replace(task, model=model.validate(), loss=loss, size=size, prepared=prepared, repeat_real=a.repeat_real)
    return task, train_config_from_args(a, train)


def main(argv=None) -> int:
    a = parse_args(argv)

    def build():
        task_cfg, train_cfg = configs_from_args(a)
        return BodyMapTask(task_cfg), build_dataset(task_cfg, seed=a.seed), train_cfg

    return train_command(build, a.threads)


if __name__ == "__main__":
    raise SystemExit(main())
