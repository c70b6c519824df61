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
``--data PATH.npz`` (a cache from ``python -m texture.data``), or
``--data multiview:DIR`` (real multi-view partial textures from ``python -m texture.data
multiview``: input = one view, target = what the other views observe, as in Dense Pose
Transfer), optionally mixed with complete-target pairs (``--mix-with synth|PATH.npz
--mix-fraction F``). ``--init CKPT`` starts from a trained generator (fine-tuning).

Loss terms on multi-view items: ``l1`` is masked to texels the other views observe;
``perceptual`` compares output and target multiplied by that mask; ``tv`` needs no
target and covers the whole output; ``adv``: the generator term covers every output,
while the discriminator sees as *real* only complete targets (synthetic items), never
the holed multi-view targets; without a mix there are none, so the adversarial term is
switched off (with a note, recorded in the config).
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import asdict, dataclass, field, replace

import numpy as np
import torch

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
from texture.data import (
    MixedTexturePairs,
    MultiViewTexturePairs,
    SyntheticTexturePairs,
    TexturePairDataset,
    load_multiview_set,
    load_texture_cache,
)
from texture.discriminator import DiscriminatorConfig, MultiScaleDiscriminator
from texture.losses import LossWeights, TextureLoss, hinge_d_loss
from texture.network import TextureNetConfig, TextureUNet

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
    mix_with: str | None = None
    mix_fraction: float = 0.0
    init: str | None = None


class TextureCompletionTask:
    """The texture network as a :class:`reroute.training.trainer.GANTask`."""

    kind = "texture_completion"

    def __init__(self, config: TextureTaskConfig):
        self.config = c = config
        if c.loss.perceptual > 0 and c.feature_net == "none":
            raise InputError("perceptual weight > 0 needs feature_net vgg19 or untrained-vgg19")
        features = None
        if c.loss.perceptual > 0:
            features = load_vgg19_features(c.feature_net, c.vgg_weights)
        self.loss = TextureLoss(c.loss, features)
        #: plain-value description of the training data (set by :func:`main`), or None
        self.data_info: dict | None = None

    def config_dict(self) -> dict:
        c = self.config
        fn = c.feature_net if c.loss.perceptual > 0 else "none"
        out = {"model": asdict(c.model), "disc": asdict(c.disc), "loss": asdict(c.loss),
               "feature_net": fn, "data": c.data}  # fmt: skip
        if c.mix_with:
            out |= {"mix_with": c.mix_with, "mix_fraction": c.mix_fraction}
        if c.init:
            out["init"] = c.init
        if self.data_info is not None:
            out["data_info"] = self.data_info
        return out

    def build_generator(self):
        G = TextureUNet(self.config.model)
        if self.config.init:  # fine-tuning: start from a trained generator (EMA if present)
            ck = load_checkpoint(self.config.init, kind=self.kind)
            G.load_state_dict(ck.get("ema") or ck["generator"])
        return G

    def build_discriminator(self):
        return MultiScaleDiscriminator(self.config.disc) if self.config.loss.adv > 0 else None

    def generate(self, G, batch):
        return G(batch["partial"], batch["mask"], batch.get("prior"))

    def discriminator_loss(self, D, batch, fake) -> LossTerms:
        # real and fake in one forward (one DDP pass per backward)
        # only complete targets are real examples (multi-view targets have holes)
        full = batch.get("full_target")
        keep = (
            full > 0.5
            if full is not None
            else torch.ones(fake.shape[0], dtype=torch.bool, device=fake.device)
        )
        n = int(keep.sum())
        tex = torch.cat([batch["target"][keep], fake])
        cond_p = torch.cat([batch["partial"][keep], batch["partial"]])
        cond_m = torch.cat([batch["mask"][keep], batch["mask"]])
        out = D(tex, cond_p, cond_m)
        fk = [[f[n:] for f in s] for s in out]
        if n:
            loss = hinge_d_loss([[f[:n] for f in s] for s in out], fk)
        else:  # no complete target in this batch: only the fake half of the hinge
            loss = torch.stack([torch.relu(1 + s[-1]).mean() for s in fk]).mean()
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


MULTIVIEW_PREFIX = "multiview:"


def build_dataset(cfg: TextureTaskConfig, length: int | None = None, seed: int = 0):
    """The training set named by ``cfg.data``: "toy", "synth", a cache path (.npz) or
    ``multiview:DIR`` (mixed with ``cfg.mix_with`` when ``cfg.mix_fraction`` > 0).

    A multi-view (or mixed) set has an ``info`` attribute: plain values describing it.
    """
    T = cfg.model.texture_size
    if cfg.data.startswith(MULTIVIEW_PREFIX):
        mv = load_multiview_set(cfg.data[len(MULTIVIEW_PREFIX) :])
        if mv.texture_size != T:
            raise InputError(f"multi-view set {mv.root} holds {mv.texture_size}px textures, "
                             f"the model wants {T} (--texture-size)")  # fmt: skip
        prior = cfg.model.prior == "classical"
        ds = MultiViewTexturePairs(mv.people, mv.layout, prior=prior)
        info = mv.summary() | {"items": len(ds)}
        if cfg.mix_with and cfg.mix_fraction > 0:
            full = build_dataset(replace(cfg, data=cfg.mix_with, mix_with=None), length, seed)
            ds = MixedTexturePairs(ds, full, cfg.mix_fraction, prior=prior)
            info |= {"mix_with": cfg.mix_with, "mix_fraction": cfg.mix_fraction,
                     "full_items": ds.n_full}  # fmt: skip
        ds.info = info
        return ds
    if cfg.data.startswith("multiview"):
        raise InputError(f"--data {cfg.data!r}: write multiview:DIR")
    if cfg.data == "toy":
        return ToyTexturePairs(length or 64, T, seed)
    if cfg.data == "synth":
        return SyntheticTexturePairs(length or 100_000, texture_size=T, seed=seed,
                                     prior=cfg.model.prior == "classical")  # fmt: skip

    cache = load_texture_cache(cfg.data)
    if cache.size != T:
        raise InputError(f"cache {cfg.data} holds {cache.size}px textures, the model wants {T}")
    return TexturePairDataset(cache, augment=True, seed=seed, prior=cfg.model.prior == "classical")


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m texture.train", description=__doc__.split("\n")[0])
    p.add_argument("--preset", choices=sorted(PRESETS), default="tiny")
    p.add_argument("--data", help="toy, synth, a texture cache .npz or multiview:DIR "
                   "(default: the preset's)")  # fmt: skip
    p.add_argument(
        "--mix-with", help="with multiview:DIR, also complete-target pairs: synth or .npz"
    )
    p.add_argument("--mix-fraction", type=float, default=0.5,
                   help="share of complete-target items with --mix-with (0 < F < 1)")  # fmt: skip
    p.add_argument("--init", help="start from this texture checkpoint's generator (fine-tune); "
                   "its model config is used")  # fmt: skip
    p.add_argument("--texture-size", type=int, help="UV texture side T (default: the preset's)")
    p.add_argument("--norm", choices=["batch", "instance"])
    p.add_argument("--prior", choices=["none", "classical"], help="classical fill as extra input")
    add_train_options(p)
    return p.parse_args(argv)


def configs_from_args(a: argparse.Namespace) -> tuple[TextureTaskConfig, TrainConfig]:
    """The preset with the command-line overrides applied."""
    task, train = PRESETS[a.preset]
    over_m = {k: v for k, v in (("norm", a.norm), ("prior", a.prior),
                                ("texture_size", a.texture_size)) if v}  # fmt: skip
    model = replace(task.model, **over_m)
    if a.init:
        model = TextureNetConfig.from_dict(
            load_checkpoint(a.init, kind="texture_completion")["config"]["model"]
        )
        bad = {k: v for k, v in over_m.items() if getattr(model, k) != v}
        if bad:
            raise InputError(f"--init {a.init} has model {asdict(model)}; it conflicts with {bad}")
    loss = replace(task.loss, **{k: v for k, v in (("perceptual", a.perceptual_weight),
                                                   ("adv", a.adv_weight)) if v is not None})  # fmt: skip
    task = replace(task, model=model, loss=loss,
                   feature_net=a.feature_net or task.feature_net, vgg_weights=a.vgg_weights,
                   data=a.data or task.data, init=a.init)  # fmt: skip
    if a.mix_with:
        if not task.data.startswith(MULTIVIEW_PREFIX):
            raise InputError("--mix-with goes with --data multiview:DIR")
        if not 0.0 < a.mix_fraction < 1.0:
            raise InputError(f"--mix-fraction must be in (0, 1), got {a.mix_fraction}")
        task = replace(task, mix_with=a.mix_with, mix_fraction=a.mix_fraction)
    elif task.data.startswith(MULTIVIEW_PREFIX) and task.loss.adv > 0:
        print("note: adversarial term off: multi-view targets are partial, so there is no "
              "complete texture to show the discriminator as real (add --mix-with synth)",
              file=sys.stderr, flush=True)  # fmt: skip
        task = replace(task, loss=replace(task.loss, adv=0.0))
    if task.loss.perceptual > 0 and task.feature_net == "none":
        raise InputError("--perceptual-weight > 0 needs --feature-net vgg19 or untrained-vgg19")
    return task, train_config_from_args(a, train)


def main(argv=None) -> int:
    a = parse_args(argv)

    def build():
        task_cfg, train_cfg = configs_from_args(a)
        task = TextureCompletionTask(task_cfg)
        dataset = build_dataset(task_cfg, seed=a.seed)
        task.data_info = getattr(dataset, "info", None)
        return task, dataset, train_cfg

    return train_command(build, a.threads)


if __name__ == "__main__":
    np.seterr(all="ignore")
    raise SystemExit(main())
