"""Train Dense Pose Transfer: ``python -m renderer.dpt.train --stage STAGE --preset tiny|cpu|paper --out RUN``.

The paper's schedule (sec. 4.1), one stage per run, each resumable and runnable
unchanged under ``torchrun`` (:class:`reroute.training.trainer.GANTrainer`: DDP,
gloo on CPU, nccl + SyncBatchNorm on CUDA, AMP on CUDA):

1. ``--stage predictive``: the predictive stream alone (Table 4's first row);
2. ``--stage inpainting``: the inpainting autoencoder alone, with the masked
   multi-view L1 of Appendix eq. 6 (each pair gives two views of one person);
3. ``--stage full`` (or ``predictive+blending``, ``predictive+warping+blending``):
   the blending module on top, starting from the stage checkpoints
   (``--predictive RUN1/checkpoints/last.pt``, ``--inpainting RUN2/...``),
   fine-tuning end to end (``--freeze`` keeps the pretrained streams fixed).

Losses (:mod:`renderer.dpt.losses`): L1, VGG19 perceptual L2 and Gram style
(only with VGG19 weights: ``--feature-net vgg19``; the ``cpu`` preset has
none, and its model card says so), LSGAN with a PatchGAN on (image, source
image, target IUV). Adam lr 2e-4, betas (0.5, 0.999); the paper's batch is 8
(``paper`` preset), the ``cpu`` preset uses 4. Correspondences are frozen inputs.

Data: ``--data toy`` (:class:`ToyDPTPairs`, tests) or a folder of
:mod:`renderer.dpt.data` items.
"""

from __future__ import annotations

import argparse
from dataclasses import asdict, dataclass, field, replace

import torch
from torch.nn import functional as F

from renderer.dpt.data import DPTDataset
from renderer.dpt.losses import DPTLoss, DPTLossWeights, lsgan_d_loss, multiview_l1
from renderer.dpt.model import PRESETS as MODEL_PRESETS
from renderer.dpt.model import VARIANTS, DensePoseTransfer, DPTConfig
from renderer.dpt.warping import InpaintingAutoencoder, image_to_atlas
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

__all__ = ["STAGES", "DPTTaskConfig", "DPTTask", "InpaintingTask", "ToyDPTPairs", "PRESETS", "build_task", "main"]

#: ``inpainting`` and every Table 4 variant
STAGES = ("inpainting",) + VARIANTS


@dataclass
class DPTTaskConfig:
    """Everything that defines a Dense Pose Transfer training run (stored in checkpoints).

    ``model.variant`` is the stage for the model stages. ``predictive_init`` /
    ``inpainting_init``: stage checkpoints the model starts from; ``freeze``: keep
    those pretrained streams fixed. ``feature_net``: "vgg19", "untrained-vgg19" or
    "none" (then the perceptual and style weights must be 0). ``size``: side of
    the training images (items are 256 px).
    """

    model: DPTConfig = field(default_factory=DPTConfig)
    disc: DiscriminatorConfig = field(default_factory=lambda: DiscriminatorConfig(in_channels=9, num_scales=1))
    loss: DPTLossWeights = field(default_factory=DPTLossWeights)
    feature_net: str = "vgg19"
    vgg_weights: str | None = None
    data: str = "runs/dpt_data"
    size: int = 256
    predictive_init: str | None = None
    inpainting_init: str | None = None
    freeze: bool = False

    def config_dict(self) -> dict:
        """Plain values, stored in checkpoints (rebuild the networks with :meth:`DPTConfig.from_dict`)."""
        return {"model": self.model.to_dict(), "disc": asdict(self.disc), "loss": asdict(self.loss),
               "feature_net": self.feature_net, "data": self.data, "size": self.size, "freeze": self.freeze,
               "predictive_init": self.predictive_init, "inpainting_init": self.inpainting_init}  # fmt: skip


def _load_weights(module: torch.nn.Module, path: str, kind: str, prefix: str = "") -> None:
    ck = load_checkpoint(path, kind=kind)
    state = ck.get("ema") or ck["generator"]
    if prefix:
        state = {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
    module.load_state_dict(state)


class DPTTask:
    """A model stage (predictive, a blending variant, full) as a :class:`~reroute.training.trainer.GANTask`."""

    kind = "dpt"

    def __init__(self, config: DPTTaskConfig):
        self.config = c = config
        vgg = c.loss.perceptual > 0 or c.loss.style > 0
        if vgg and c.feature_net == "none":
            raise InputError("perceptual or style weight > 0 needs feature_net vgg19 or untrained-vgg19")
        self.loss = DPTLoss(c.loss, load_vgg19_features(c.feature_net, c.vgg_weights) if vgg else None)

    def config_dict(self) -> dict:
        return self.config.config_dict()

    def build_generator(self):
        c = self.config
        G = DensePoseTransfer(c.model)
        if c.predictive_init:
            _load_weights(G.predictive, c.predictive_init, "dpt", "predictive.")
            G.predictive.requires_grad_(not c.freeze)
        if c.inpainting_init and G.inpainting is not None:
            _load_weights(G.inpainting, c.inpainting_init, "dpt_inpainting")
            G.inpainting.requires_grad_(not c.freeze)
        return G

    def build_discriminator(self):
        return MultiScaleDiscriminator(self.config.disc) if self.config.loss.adv > 0 else None

    def generate(self, G, batch):
        if self.config.model.predictive.conditioning == "keypoints":
            if "source_keypoints" not in batch:
                raise InputError(f"the keypoints conditioning needs items with keypoints; {self.config.data} has none "
                                 "(rebuild it with python -m renderer.dpt.data)")  # fmt: skip
            return G(batch["source"], batch["source_iuv"], batch["target_iuv"], batch["source_keypoints"],
                     batch["target_keypoints"])  # fmt: skip
        return G(batch["source"], batch["source_iuv"], batch["target_iuv"])

    def _d(self, D, images, batch, k: int):
        return D(images, torch.cat([batch["source"]] * k), torch.cat([batch["target_iuv"]] * k))

    def discriminator_loss(self, D, batch, fake) -> LossTerms:
        n = fake.shape[0]
        out = self._d(D, torch.cat([batch["target"], fake]), batch, 2)
        loss = lsgan_d_loss([[f[:n] for f in s] for s in out], [[f[n:] for f in s] for s in out])
        return LossTerms(loss, {"lsgan": loss.detach()})

    def generator_loss(self, D, batch, fake) -> LossTerms:
        d_fake = self._d(D, fake, batch, 1) if D is not None else None
        terms = self.loss.generator_terms(fake, batch["target"], d_fake)
        return LossTerms(self.loss.total(terms), {k: v.detach() for k, v in terms.items()})

    def image_grid(self, batch, fake):
        """Rows: source, output, real target (first 4 items)."""
        k = min(4, fake.shape[0])
        return torch.cat([batch["source"][:k], fake[:k].detach().clamp(-1, 1), batch["target"][:k]]), k


class InpaintingTask:
    """The inpainting autoencoder alone (no discriminator): the masked multi-view L1 of
    Appendix eq. 6 between its completion of the source atlas and the atlases of
    both views (source and target photo of one person)."""

    kind = "dpt_inpainting"

    def __init__(self, config: DPTTaskConfig):
        self.config = config

    def config_dict(self) -> dict:
        return self.config.config_dict()

    def build_generator(self):
        return InpaintingAutoencoder(self.config.model.inpainting)

    def build_discriminator(self):
        return None

    def _views(self, batch):
        t = self.config.model.inpainting.tile
        return (image_to_atlas(batch["source"], batch["source_iuv"], t),
                image_to_atlas(batch["target"], batch["target_iuv"], t))  # fmt: skip

    def generate(self, G, batch):
        return G(self._views(batch)[0], keep_observed=False).pixels

    def discriminator_loss(self, D, batch, fake) -> LossTerms:
        raise RuntimeError("the inpainting stage has no discriminator")

    def generator_loss(self, D, batch, fake) -> LossTerms:
        views = [(a.pixels, a.visibility) for a in self._views(batch)]
        loss = multiview_l1(fake, views)
        return LossTerms(loss, {"multiview_l1": loss.detach()})

    def image_grid(self, batch, fake):
        """Rows: the source atlas, its completion, the target view's atlas (first 4 items)."""
        s, t = self._views(batch)
        k = min(4, fake.shape[0])
        return torch.cat([s.pixels[:k], fake[:k].detach().clamp(-1, 1), t.pixels[:k]]), k


class ToyDPTPairs(torch.utils.data.Dataset):
    """Procedural pairs without photos or anny (tests), consistent by construction.

    The "person" is a rectangle split into the 24 parts (a 4 x 6 grid, U and V
    running across each cell) with 18 keypoints at the centres of its first 18
    cells (confidence 1); the target view is the source shifted right by
    ``size // 8`` pixels, IUV, image and keypoints alike. Items as
    :class:`renderer.dpt.data.DPTDataset`.
    """

    def __init__(self, length: int, size: int = 32, seed: int = 0):
        self.length, self.size, self.seed = int(length), int(size), seed

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        g = torch.Generator().manual_seed(self.seed * 7919 + int(i))
        s, shift = self.size, self.size // 8
        img = F.interpolate(torch.rand(1, 3, 6, 6, generator=g), size=(s, s), mode="bilinear",
                            align_corners=False)[0] * 2 - 1  # fmt: skip
        y0, x0, h, w = s // 8, s // 8, s * 3 // 4, s * 9 // 16
        iuv = torch.zeros(3, s, s)
        yy, xx = torch.meshgrid(torch.arange(h, dtype=torch.float32), torch.arange(w, dtype=torch.float32),
                                indexing="ij")  # fmt: skip
        ry, rx = yy / h * 4, xx / w * 6
        iuv[0, y0 : y0 + h, x0 : x0 + w] = (ry.floor() * 6 + rx.floor() + 1) / 24
        iuv[1, y0 : y0 + h, x0 : x0 + w] = rx - rx.floor()
        iuv[2, y0 : y0 + h, x0 : x0 + w] = 1 - (ry - ry.floor())
        mask = (iuv[:1] > 0).float()
        bg = torch.full((3, s, s), 0.6)
        src = mask * img + (1 - mask) * bg
        cell = torch.arange(18, dtype=torch.float32)
        kp = torch.stack([x0 + (cell % 6 + 0.5) * w / 6, y0 + (cell // 6 + 0.5) * h / 4, torch.ones(18)], 1)
        return {"source": src, "target": torch.roll(src, shift, 2), "source_iuv": iuv,
                "target_iuv": torch.roll(iuv, shift, 2), "source_mask": mask,
                "target_mask": torch.roll(mask, shift, 2), "source_keypoints": kp,
                "target_keypoints": kp + torch.tensor([shift, 0.0, 0.0])}  # fmt: skip


_NO_VGG = DPTLossWeights(perceptual=0.0, style=0.0)

#: name -> (task config, train config); the stage is set by ``--stage``
PRESETS: dict[str, tuple[DPTTaskConfig, TrainConfig]] = {
    "tiny": (
        DPTTaskConfig(model=MODEL_PRESETS["tiny"], disc=DiscriminatorConfig(9, 8, 2, 1), loss=_NO_VGG,
                      feature_net="none", data="toy", size=32),
        TrainConfig(steps=4, batch_size=2, log_every=2, image_every=4, ckpt_every=2),
    ),
    "cpu": (
        DPTTaskConfig(model=MODEL_PRESETS["cpu"], disc=DiscriminatorConfig(9, 32, 3, 1), loss=_NO_VGG,
                      feature_net="none"),
        TrainConfig(steps=1500, batch_size=4, log_every=25, image_every=250, ckpt_every=100),
    ),
    "paper": (
        DPTTaskConfig(model=MODEL_PRESETS["paper"], disc=DiscriminatorConfig(9, 64, 3, 1)),
        TrainConfig(steps=100_000, batch_size=8, amp="bf16", log_every=50, image_every=1000,
                    ckpt_every=1000, num_workers=4),
    ),
}  # fmt: skip


def build_task(stage: str, cfg: DPTTaskConfig):
    """The task of one stage: :class:`InpaintingTask` or :class:`DPTTask` (variant = stage)."""
    if stage not in STAGES:
        raise InputError(f"--stage must be one of {', '.join(STAGES)}, got {stage!r}")
    if stage == "inpainting":
        return InpaintingTask(cfg)
    return DPTTask(replace(cfg, model=replace(cfg.model, variant=stage)))


def build_dataset(cfg: DPTTaskConfig, seed: int = 0):
    """``toy`` (:class:`ToyDPTPairs`) or a folder of items (:class:`DPTDataset`, both directions)."""
    if cfg.data == "toy":
        return ToyDPTPairs(64, cfg.size, seed)
    return DPTDataset(cfg.data, size=cfg.size, augment=True, swap=True, seed=seed)


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m renderer.dpt.train", description=__doc__.split("\n")[0])
    p.add_argument("--stage", required=True, choices=STAGES)
    p.add_argument("--preset", choices=sorted(PRESETS), default="tiny")
    p.add_argument("--data", help="toy or a folder of items (default: the preset's)")
    p.add_argument("--predictive", help="checkpoint of the predictive stage to start from")
    p.add_argument("--inpainting", help="checkpoint of the inpainting stage to start from")
    p.add_argument("--freeze", action="store_true", help="keep the pretrained streams fixed")
    p.add_argument("--style-weight", type=float)
    p.add_argument("--conditioning", help="predictive stream conditioning (Table 3): mask, parts, iuv, parts_uv, keypoints")
    add_train_options(p)
    return p.parse_args(argv)


def configs_from_args(a: argparse.Namespace) -> tuple[DPTTaskConfig, TrainConfig]:
    """The preset with the command-line overrides applied."""
    task, train = PRESETS[a.preset]
    weights = (("perceptual", a.perceptual_weight), ("adv", a.adv_weight), ("style", a.style_weight))
    loss = replace(task.loss, **{k: v for k, v in weights if v is not None})
    model = task.model
    if a.conditioning:
        model = replace(model, predictive=replace(model.predictive, conditioning=a.conditioning))
    if a.predictive:  # the predictive stream's architecture comes from its checkpoint
        pc = DPTConfig.from_dict(load_checkpoint(a.predictive, kind="dpt")["config"]["model"]).predictive
        model = replace(model, predictive=pc)
    task = replace(task, model=model, loss=loss, feature_net=a.feature_net or task.feature_net,
                   vgg_weights=a.vgg_weights, data=a.data or task.data, predictive_init=a.predictive,
                   inpainting_init=a.inpainting, freeze=a.freeze)  # fmt: skip
    if (task.loss.perceptual > 0 or task.loss.style > 0) and task.feature_net == "none":
        raise InputError("--perceptual-weight or --style-weight > 0 needs --feature-net vgg19 or untrained-vgg19")
    return task, train_config_from_args(a, train)


def main(argv=None) -> int:
    a = parse_args(argv)

    def build():
        task_cfg, train_cfg = configs_from_args(a)
        return build_task(a.stage, task_cfg), build_dataset(task_cfg, seed=a.seed), train_cfg

    return train_command(build, a.threads)


if __name__ == "__main__":
    raise SystemExit(main())
