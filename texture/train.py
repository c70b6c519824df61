"""Train the texture completion network: ``python -m texture.train --preset tiny|cpu|paper``.

Runs unchanged under ``torchrun --standalone --nproc_per_node N -m texture.train ...``
(DDP; gloo on CPU, nccl + SyncBatchNorm on CUDA). Presets:

* ``tiny``: 32x32 UV, toy textures, a few steps in seconds (tests);
* ``cpu``: 256x256 UV, base width 8, the classical fill as an extra input, synthetic pairs; what the committed
  checkpoint used (no perceptual term: ImageNet VGG19 weights are not available here);
* ``paper``: 1024x1024 UV, base width 32, 3-scale discriminator, VGG19 perceptual
  loss (weights required), EMA, bf16 AMP on CUDA.

Data: ``--data toy`` (procedural textures and random visibility blobs, no
anny), ``--data synth`` (rendered on access by the synthetic engine) or
``--data PATH.npz`` (a cache from ``python -m texture.data``).
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict, dataclass, field, replace

import numpy as np
import torch

from reroute.errors import InputError
from reroute.training import GANTrainer, LossTerms, TrainConfig

from .discriminator import DiscriminatorConfig, MultiScaleDiscriminator
from .losses import LossWeights, TextureLoss, hinge_d_loss
from .network import TextureNetConfig, TextureUNet

__all__ = ["TextureTaskConfig", "TextureCompletionTask", "PRESETS", "ToyTexturePairs", "main"]


@dataclass
class TextureTaskConfig:
    """Everything that defines a texture-completion training run (stored in checkpoints).

    ``feature_net``: "vgg19" (ImageNet weights from the torch cache or
    ``vgg_weights``), "untrained-vgg19" (explicit choice, recorded), or "none"
    (only with ``loss.perceptual == 0``).
    """

    model: TextureNetConfig = field(default_factory=TextureNetConfig)
    disc: DiscriminatorConfig = field(default_factory=DiscriminatorConfig)
    loss: LossWeights = field(default_factory=LossWeights)
    feature_net: str = "vgg19"
    vgg_weights: str | None = None
    data: str = "synth"


class TextureCompletionTask:
    """The texture network as a :class:`reroute.training.GANTask`."""

    kind = "texture_completion"

    def __init__(self, config: TextureTaskConfig):
        self.config = c = config
        if c.loss.perceptual > 0 and c.feature_net == "none":
            raise InputError("perceptual weight > 0 needs feature_net vgg19 or untrained-vgg19")
        features = None
        if c.loss.perceptual > 0:
            from reroute.vgg import load_vgg19_features

            features = load_vgg19_features(c.feature_net, c.vgg_weights)
        self.loss = TextureLoss(c.loss, features)

    def config_dict(self) -> dict:
        c = self.config
        fn = c.feature_net if c.loss.perceptual > 0 else "none"
        return {"model": asdict(c.model), "disc": asdict(c.disc), "loss": asdict(c.loss),
                "feature_net": fn, "data": c.data}  # fmt: skip

    def build_generator(self):
        return TextureUNet(self.config.model)

    def build_discriminator(self):
        return MultiScaleDiscriminator(self.config.disc) if self.config.loss.adv > 0 else None

    def generate(self, G, batch):
        return G(batch["partial"], batch["mask"], batch.get("prior"))

    def discriminator_loss(self, D, batch, fake) -> LossTerms:
        # real and fake in one forward (one DDP pass per backward)
        n = fake.shape[0]
        tex = torch.cat([batch["target"], fake])
        cond_p = torch.cat([batch["partial"]] * 2)
        cond_m = torch.cat([batch["mask"]] * 2)
        out = D(tex, cond_p, cond_m)
        real = [[f[:n] for f in s] for s in out]
        fk = [[f[n:] for f in s] for s in out]
        loss = hinge_d_loss(real, fk)
        return LossTerms(loss, {"hinge": loss.detach()})

    def generator_loss(self, D, batch, fake) -> LossTerms:
        d_fake = D(fake, batch["partial"], batch["mask"]) if D is not None else None
        terms = self.loss.generator_terms(fake, batch["target"], batch["target_mask"], d_fake)
        total = self.loss.total(terms)
        return LossTerms(total, {k: v.detach() for k, v in terms.items()})

    def image_grid(self, batch, fake):
        """Rows: partial, output, target (first 4 items)."""
        k = min(4, fake.shape[0])
        return torch.cat([batch["partial"][:k], fake[:k].detach(), batch["target"][:k]]), k


class ToyTexturePairs(torch.utils.data.Dataset):
    """Procedural pairs without anny (for tests): smooth random colour fields,
    random blob visibility, the whole square as the layout. Deterministic per index."""

    def __init__(self, length: int, size: int = 32, seed: int = 0):
        self.length, self.size, self.seed = int(length), int(size), seed

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        g = torch.Generator().manual_seed(self.seed * 7919 + int(i))
        s = self.size
        low = torch.rand(1, 3, 4, 4, generator=g) * 2 - 1
        tex = torch.nn.functional.interpolate(
            low, size=(s, s), mode="bilinear", align_corners=False
        )[0]
        blob = torch.rand(1, 1, 4, 4, generator=g)
        m = torch.nn.functional.interpolate(
            blob, size=(s, s), mode="bilinear", align_corners=False
        )[0]
        m = (m > 0.5).float()
        return {"partial": tex * m, "mask": m, "target": tex, "target_mask": torch.ones_like(m)}


#: name -> (task config, train config)
PRESETS: dict[str, tuple[TextureTaskConfig, TrainConfig]] = {
    "tiny": (
        TextureTaskConfig(
            model=TextureNetConfig(texture_size=32, base_channels=8, max_channels=32, depth=3),
            disc=DiscriminatorConfig(base_channels=8, num_layers=2, num_scales=2),
            loss=LossWeights(perceptual=0.0), feature_net="none", data="toy",
        ),
        TrainConfig(steps=4, batch_size=2, log_every=2, image_every=4, ckpt_every=2),
    ),
    "cpu": (
        TextureTaskConfig(
            model=TextureNetConfig(texture_size=256, base_channels=8, max_channels=128, depth=6,
                                   prior="classical"),
            disc=DiscriminatorConfig(base_channels=16, num_layers=3, num_scales=2),
            loss=LossWeights(l1=10.0, adv=0.5, perceptual=0.0, tv=1e-3), feature_net="none",
            data="synth",
        ),
        TrainConfig(steps=150, batch_size=4, lr_g=1e-3, lr_d=2e-4, log_every=10,
                    image_every=50, ckpt_every=25, ema_decay=0.95),
    ),
    "paper": (
        TextureTaskConfig(
            model=TextureNetConfig(texture_size=1024, base_channels=32, max_channels=512, depth=7),
            disc=DiscriminatorConfig(base_channels=64, num_layers=3, num_scales=3),
            loss=LossWeights(l1=10.0, adv=1.0, perceptual=10.0, tv=1e-3), feature_net="vgg19",
            data="synth",
        ),
        TrainConfig(steps=200_000, batch_size=4, amp="bf16", ema_decay=0.999, log_every=50,
                    image_every=1000, ckpt_every=1000, num_workers=4),
    ),
}  # fmt: skip


def build_dataset(cfg: TextureTaskConfig, length: int | None = None, seed: int = 0):
    """The training set named by ``cfg.data``: "toy", "synth" or a cache path (.npz)."""
    T = cfg.model.texture_size
    if cfg.data == "toy":
        return ToyTexturePairs(length or 64, T, seed)
    if cfg.data == "synth":
        from .data import SyntheticTexturePairs

        return SyntheticTexturePairs(length or 100_000, texture_size=T, seed=seed)
    from .data import TexturePairDataset, load_texture_cache

    cache = load_texture_cache(cfg.data)
    if cache.size != T:
        raise InputError(f"cache {cfg.data} holds {cache.size}px textures, the model wants {T}")
    return TexturePairDataset(cache, augment=True, seed=seed, prior=cfg.model.prior == "classical")


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m texture.train", description=__doc__.split("\n")[0])
    p.add_argument("--preset", choices=sorted(PRESETS), default="tiny")
    p.add_argument("--out", required=True, help="run folder (checkpoints/, scalars, images)")
    p.add_argument("--data", help="toy, synth or a texture cache .npz (default: the preset's)")
    p.add_argument("--steps", type=int)
    p.add_argument("--batch-size", type=int)
    p.add_argument("--ckpt-every", type=int)
    p.add_argument("--log-every", type=int)
    p.add_argument("--lr-g", type=float)
    p.add_argument("--amp", choices=["none", "bf16", "fp16"])
    p.add_argument("--ema", type=float, help="EMA decay of generator weights (0 = off)")
    p.add_argument("--norm", choices=["batch", "instance"])
    p.add_argument("--prior", choices=["none", "classical"], help="classical fill as extra input")
    p.add_argument("--perceptual-weight", type=float)
    p.add_argument("--adv-weight", type=float)
    p.add_argument("--feature-net", choices=["vgg19", "untrained-vgg19", "none"])
    p.add_argument("--vgg-weights", help="path of vgg19-dcbb9e9d.pth (default: the torch cache)")
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    p.add_argument("--threads", type=int, default=0, help="torch threads per process (0 = default)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-resume", action="store_true", help="ignore an existing last.pt")
    p.add_argument("--no-progress", action="store_true")
    return p.parse_args(argv)


def configs_from_args(a: argparse.Namespace) -> tuple[TextureTaskConfig, TrainConfig]:
    """The preset with the command-line overrides applied."""
    task, train = PRESETS[a.preset]
    model = replace(task.model, **{k: v for k, v in (("norm", a.norm), ("prior", a.prior)) if v})
    loss = replace(task.loss, **{k: v for k, v in (("perceptual", a.perceptual_weight),
                                                   ("adv", a.adv_weight)) if v is not None})  # fmt: skip
    task = replace(task, model=model, loss=loss,
                   feature_net=a.feature_net or task.feature_net, vgg_weights=a.vgg_weights,
                   data=a.data or task.data)  # fmt: skip
    if task.loss.perceptual > 0 and task.feature_net == "none":
        raise InputError("--perceptual-weight > 0 needs --feature-net vgg19 or untrained-vgg19")
    over = {"steps": a.steps, "batch_size": a.batch_size, "ckpt_every": a.ckpt_every,
            "log_every": a.log_every, "lr_g": a.lr_g, "amp": a.amp, "ema_decay": a.ema}  # fmt: skip
    train = replace(train, **{k: v for k, v in over.items() if v is not None},
                    out_dir=a.out, seed=a.seed, resume=not a.no_resume,
                    progress=not a.no_progress, device=a.device)  # fmt: skip
    return task, train


def main(argv=None) -> int:
    a = parse_args(argv)
    if a.threads:
        torch.set_num_threads(a.threads)
    try:
        task_cfg, train_cfg = configs_from_args(a)
        task = TextureCompletionTask(task_cfg)
        trainer = GANTrainer(task, build_dataset(task_cfg, seed=a.seed), train_cfg)
        summary = trainer.fit()
    except InputError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if trainer.ctx.is_main:
        summary = {k: v for k, v in summary.items() if k != "final_terms"} | {
            "final_terms": {k: round(v, 5) for k, v in summary["final_terms"].items()},
            "world_size": trainer.ctx.world_size, "step": trainer.step,
        }  # fmt: skip
        print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    np.seterr(all="ignore")
    raise SystemExit(main())
