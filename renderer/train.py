"""Train the neural re-renderer: ``python -m renderer.train --preset tiny|cpu|paper --out RUN``.

Runs unchanged under ``torchrun --standalone --nproc_per_node N -m renderer.train ...``
(DDP; gloo on CPU, nccl + SyncBatchNorm on CUDA; AMP on CUDA; EMA; resumable),
on :class:`reroute.training.trainer.GANTrainer`. Presets:

* ``tiny``: 32 px, toy pairs (no real data, no anny), a few steps in seconds (tests);
* ``cpu``: 256 px network trained on 192 px crops (random scale 0.5-1) of the
  real items of ``python -m reroute.evaluation.rerender_pairs``; the committed
  checkpoint. No perceptual term: ImageNet VGG19 weights are not available here;
* ``paper``: 1024 px, 3-scale discriminator, VGG19 perceptual loss (weights
  required), EMA, bf16 AMP on CUDA.

Data: ``--data toy`` or ``--data DIR`` (a folder of items).
The discriminator sees ``cat(image, warped input, mask)`` (7 channels) at
``disc.num_scales`` scales (:class:`texture.discriminator.MultiScaleDiscriminator`).
"""

from __future__ import annotations

import argparse
from dataclasses import asdict, dataclass, field, replace

import torch
from torch.nn import functional as F

from renderer.data import RerenderDataset
from renderer.losses import RerenderLoss, RerenderLossWeights
from renderer.network import PRESETS as MODEL_PRESETS
from renderer.network import RerenderConfig, ReRenderer, widen_state_dict
from reroute.errors import InputError
from reroute.training.checkpoint import load_checkpoint
from reroute.training.trainer import (
    LossTerms,
    TrainConfig,
    add_train_options,
    train_command,
    train_config_from_args,
)
from reroute.training.vgg import load_vgg19_features
from texture.discriminator import DiscriminatorConfig, MultiScaleDiscriminator
from texture.losses import hinge_d_loss

__all__ = ["RerenderTaskConfig", "RerenderTask", "ToyRerenderPairs", "PRESETS", "build_dataset", "main"]


@dataclass
class RerenderTaskConfig:
    """Everything that defines a re-renderer training run (stored in checkpoints).

    ``feature_net``: "vgg19" (ImageNet weights from the torch cache or
    ``vgg_weights``), "untrained-vgg19" (explicit, recorded) or "none" (only with
    ``loss.perceptual == 0``). ``crop``: training crop side (pixels).
    ``synthetic``: a folder of synthetic items (``python -m
    reroute.evaluation.rerender_pairs --synthetic N``) mixed in at
    ``synthetic_weight`` (the synthetic fraction of each epoch; 0 = real only).
    ``kinds``: train only on these item kinds of ``data`` (e.g. ``("cross",
    "video")``, the pairs whose source and target differ, as at test time);
    None = all.
    """

    model: RerenderConfig = field(default_factory=RerenderConfig)
    disc: DiscriminatorConfig = field(default_factory=lambda: DiscriminatorConfig(in_channels=7))
    loss: RerenderLossWeights = field(default_factory=RerenderLossWeights)
    feature_net: str = "none"
    vgg_weights: str | None = None
    data: str = "runs/rerender_data"
    crop: int = 128
    init: str | None = None
    synthetic: str | None = None
    synthetic_weight: float = 0.0
    kinds: tuple[str, ...] | None = None


class RerenderTask:
    """The re-renderer as a :class:`reroute.training.trainer.GANTask`."""

    kind = "rerenderer"

    def __init__(self, config: RerenderTaskConfig):
        self.config = c = config
        if c.loss.perceptual > 0 and c.feature_net == "none":
            raise InputError("perceptual weight > 0 needs feature_net vgg19 or untrained-vgg19")
        features = load_vgg19_features(c.feature_net, c.vgg_weights) if c.loss.perceptual > 0 else None
        self.loss = RerenderLoss(c.loss, features)

    def config_dict(self) -> dict:
        c = self.config
        out = {"model": asdict(c.model), "disc": asdict(c.disc), "loss": asdict(c.loss),
               "feature_net": c.feature_net if c.loss.perceptual > 0 else "none",
               "data": c.data, "crop": c.crop}  # fmt: skip
        if c.init:
            out["init"] = c.init
        if c.kinds:
            out["kinds"] = list(c.kinds)
        if c.synthetic and c.synthetic_weight > 0:
            out.update(synthetic=c.synthetic, synthetic_weight=c.synthetic_weight)
        return out

    def build_generator(self):
        G = ReRenderer(self.config.model)
        if self.config.init:  # fine-tuning: start from a trained re-renderer (EMA if present)
            ck = load_checkpoint(self.config.init, kind=self.kind)
            # a network without the seen input gets it with zero weights (same output at the start)
            G.load_state_dict(widen_state_dict(ck.get("ema") or ck["generator"], self.config.model))
        return G

    def build_discriminator(self):
        return MultiScaleDiscriminator(self.config.disc) if self.config.loss.adv > 0 else None

    def generate(self, G, batch):
        seen = None
        if self.config.model.seen_input:
            if "seen" not in batch:
                raise InputError(f"a re-renderer with seen_input needs items with seen maps; {self.config.data} "
                                 "was built without them: rebuild it (python -m reroute.evaluation.rerender_pairs)")
            seen = batch["seen"]
        return G(batch["warped"], batch["background"], batch["uv"], batch["colour"], batch["mask"],
                 batch["texture"], seen)  # fmt: skip

    def discriminator_loss(self, D, batch, fake) -> LossTerms:
        # real and fake in one forward (one DDP pass per backward)
        n = fake.shape[0]
        out = D(torch.cat([batch["target"], fake]), torch.cat([batch["warped"]] * 2),
                torch.cat([batch["mask"]] * 2))  # fmt: skip
        loss = hinge_d_loss([[f[:n] for f in s] for s in out], [[f[n:] for f in s] for s in out])
        return LossTerms(loss, {"hinge": loss.detach()})

    def generator_loss(self, D, batch, fake) -> LossTerms:
        d_fake = d_real = None
        if D is not None:
            n = fake.shape[0]
            out = D(torch.cat([fake, batch["target"]]), torch.cat([batch["warped"]] * 2),
                    torch.cat([batch["mask"]] * 2))  # fmt: skip
            d_fake = [[f[:n] for f in s] for s in out]
            d_real = [[f[n:].detach() for f in s] for s in out]
        terms = self.loss.generator_terms(fake, batch["target"], batch["face"], d_fake, d_real)
        total = self.loss.total(terms)
        return LossTerms(total, {k: v.detach() for k, v in terms.items()})

    def image_grid(self, batch, fake):
        """Rows: warp-only input, re-rendered, real target (first 4 items)."""
        k = min(4, fake.shape[0])
        return torch.cat([batch["warped"][:k], fake[:k].detach().clamp(-1, 1), batch["target"][:k]]), k


class ToyRerenderPairs(torch.utils.data.Dataset):
    """Procedural pairs without photos or anny (tests): a smooth random image as the
    target, the warped input a colour-shifted copy inside a blob mask over a
    flat background. Deterministic per index; items as :class:`renderer.data.RerenderDataset`."""

    def __init__(self, length: int, size: int = 32, seed: int = 0):
        self.length, self.size, self.seed = int(length), int(size), seed

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        g = torch.Generator().manual_seed(self.seed * 7919 + int(i))
        s = self.size

        def smooth(c, k=4):
            return F.interpolate(torch.rand(1, c, k, k, generator=g), size=(s, s), mode="bilinear",
                                 align_corners=False)[0]  # fmt: skip

        mask = (smooth(1) > 0.4).float()
        bg = torch.full((3, s, s), 0.8)
        person = smooth(3, 8) * 2 - 1
        target = mask * person + (1 - mask) * bg
        shifted = person * 0.8 + 0.1  # a colour cast the re-renderer has to undo
        warped = mask * shifted + (1 - mask) * bg
        face = mask * (smooth(1) > 0.7).float()
        return {"warped": warped, "background": bg, "target": target, "uv": smooth(2) * mask,
                "colour": smooth(3) * mask, "mask": mask, "face": face,
                "texture": smooth(3, 8) * 2 - 1, "seen": mask * (smooth(1) > 0.3).float()}  # fmt: skip


#: name -> (task config, train config)
PRESETS: dict[str, tuple[RerenderTaskConfig, TrainConfig]] = {
    "tiny": (
        RerenderTaskConfig(model=MODEL_PRESETS["tiny"],
                           disc=DiscriminatorConfig(in_channels=7, base_channels=8, num_layers=3, num_scales=2),
                           data="toy", crop=32),
        TrainConfig(steps=4, batch_size=2, log_every=2, image_every=4, ckpt_every=2),
    ),
    "cpu": (
        RerenderTaskConfig(model=replace(MODEL_PRESETS["cpu"], base_channels=16, max_channels=128),
                           disc=DiscriminatorConfig(in_channels=7, base_channels=32, num_layers=3, num_scales=2),
                           crop=192),
        TrainConfig(steps=2800, batch_size=4, lr_g=5e-4, lr_d=2e-4, log_every=25, image_every=250,
                    ckpt_every=100, ema_decay=0.99),
    ),
    "paper": (
        RerenderTaskConfig(model=MODEL_PRESETS["paper"],
                           disc=DiscriminatorConfig(in_channels=7, base_channels=64, num_layers=3, num_scales=3),
                           loss=RerenderLossWeights(perceptual=10.0, adv=1.0, fm=10.0, l1=1.0),
                           feature_net="vgg19", crop=512),
        TrainConfig(steps=200_000, batch_size=4, amp="bf16", ema_decay=0.999, log_every=50,
                    image_every=1000, ckpt_every=1000, num_workers=4),
    ),
}  # fmt: skip


def build_dataset(cfg: RerenderTaskConfig, seed: int = 0, names: list[str] | None = None):
    """``toy`` (:class:`ToyRerenderPairs`) or a folder of items (:class:`RerenderDataset`)."""
    if cfg.data == "toy":
        return ToyRerenderPairs(64, cfg.crop, seed)
    return RerenderDataset(cfg.data, kinds=tuple(cfg.kinds) if cfg.kinds else None, crop=cfg.crop,
                           augment=True, names=names, seed=seed,
                           synthetic=cfg.synthetic, synthetic_weight=cfg.synthetic_weight)  # fmt: skip


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m renderer.train", description=__doc__.split("\n")[0])
    p.add_argument("--preset", choices=sorted(PRESETS), default="tiny")
    p.add_argument("--data", help="toy or a folder of items (default: the preset's)")
    p.add_argument("--init", help="start from this re-renderer checkpoint (fine-tune)")
    p.add_argument("--crop", type=int)
    p.add_argument("--seen-input", action="store_true",
                   help="give the network the seen map (items must store it); widens an --init network")
    p.add_argument("--kinds", nargs="+", choices=["cross", "video", "self"],
                   help="train only on these kinds of real items (default: all)")
    p.add_argument("--synthetic", help="folder of synthetic items to mix in")
    p.add_argument("--synthetic-weight", type=float, default=0.0,
                   help="fraction of each epoch's items drawn from --synthetic (0 = real only)")
    p.add_argument("--fm-weight", type=float)
    p.add_argument("--ssim-weight", type=float, help="weight of 1 - MS-SSIM")
    p.add_argument("--ssim-gray-weight", type=float, help="weight of 1 - grayscale SSIM (skimage's)")
    p.add_argument("--face-weight", type=float)
    add_train_options(p)
    return p.parse_args(argv)


def configs_from_args(a: argparse.Namespace) -> tuple[RerenderTaskConfig, TrainConfig]:
    """The preset with the command-line overrides applied."""
    task, train = PRESETS[a.preset]
    weights = (("perceptual", a.perceptual_weight), ("adv", a.adv_weight), ("fm", a.fm_weight),
               ("ssim", a.ssim_weight), ("ssim_gray", a.ssim_gray_weight), ("face", a.face_weight))  # fmt: skip
    loss = replace(task.loss, **{k: v for k, v in weights if v is not None})
    model = task.model
    if a.init:
        model = RerenderConfig.from_dict(load_checkpoint(a.init, kind="rerenderer")["config"]["model"])
    if a.seen_input:
        model = replace(model, seen_input=True)
    task = replace(task, model=model, loss=loss, feature_net=a.feature_net or task.feature_net,
                   vgg_weights=a.vgg_weights, data=a.data or task.data, init=a.init,
                   crop=a.crop or task.crop, synthetic=a.synthetic,
                   synthetic_weight=a.synthetic_weight if a.synthetic else 0.0,
                   kinds=tuple(a.kinds) if a.kinds else None)  # fmt: skip
    if task.loss.perceptual > 0 and task.feature_net == "none":
        raise InputError("--perceptual-weight > 0 needs --feature-net vgg19 or untrained-vgg19")
    return task, train_config_from_args(a, train)


def main(argv=None) -> int:
    a = parse_args(argv)

    def build():
        task_cfg, train_cfg = configs_from_args(a)
        return RerenderTask(task_cfg), build_dataset(task_cfg, seed=a.seed), train_cfg

    return train_command(build, a.threads)


if __name__ == "__main__":
    raise SystemExit(main())
