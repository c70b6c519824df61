"""Shared GAN training machinery (texture completion, re-renderer, Dense Pose Transfer).

One :class:`GANTrainer` runs any :class:`GANTask` with explicit discriminator
and generator steps (:meth:`GANTrainer.d_step`, :meth:`GANTrainer.g_step`):

* the same script runs in one process (CPU or one GPU) or under ``torchrun``
  (DistributedDataParallel; backend ``nccl`` on CUDA, ``gloo`` on CPU; BatchNorm
  becomes SyncBatchNorm on multi-GPU CUDA only: torch refuses it on CPU);
* AMP (``bf16`` / ``fp16`` with a grad scaler) on CUDA only; on CPU the option is
  ignored with a note;
* optional EMA of the generator weights (``ema_decay`` > 0);
* checkpoints hold only tensors and plain values, with a format version and the
  full config, and are read with ``torch.load(weights_only=True)``; written
  atomically every ``ckpt_every`` steps, so a killed run resumes from its last
  checkpoint (losing at most one interval) with the same data order;
* only rank 0 logs (JSON-lines scalars, PNG image grids, TensorBoard when the
  ``tensorboard`` package is installed) and writes; a tqdm progress bar.

Data order: step ``s`` of epoch ``e`` takes batch ``s`` of a permutation seeded by
``(seed, e)``, sharded by rank, so resumption continues the same stream.
"""

from __future__ import annotations

import json
import math
import os
import sys
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Protocol

import torch
import torch.distributed as dist
from torch import nn

from reroute.errors import InputError
from reroute.io.images import save_image_atomic
from reroute.training.checkpoint import load_checkpoint, plain_values, save_checkpoint

__all__ = [
    "DistContext",
    "TrainConfig",
    "LossTerms",
    "GANTask",
    "GANTrainer",
    "EMA",
    "init_distributed",
    "use_sync_batchnorm",
    "measure_matmul_gflops",
    "close_distributed",
    "train_command",
    "add_train_options",
    "train_config_from_args",
]


@dataclass
class DistContext:
    """Process placement: rank, world size, local rank, device."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def init_distributed(device: str = "auto") -> DistContext:
    """Join the ``torchrun`` process group if its environment is set, else run alone.

    Args:
        device: "auto" (CUDA when available), "cpu" or "cuda".
    Returns:
        :class:`DistContext`. Under torchrun (WORLD_SIZE > 1) the group is
        initialised with ``nccl`` on CUDA and ``gloo`` on CPU.
    """
    use_cuda = torch.cuda.is_available() if device == "auto" else device == "cuda"
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    if use_cuda:
        torch.cuda.set_device(local)
        dev = torch.device("cuda", local)
    else:
        dev = torch.device("cpu")
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if use_cuda else "gloo")
    return DistContext(rank, world, local, dev)


def close_distributed() -> None:
    """Leave the process group, if one was started: a barrier, then ``destroy_process_group``.

    Every rank must call it. Exiting without it lets one gloo rank close its
    sockets while a peer still reads them; the peer then aborts (SIGABRT).
    A no-op in a single process.
    """
    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def use_sync_batchnorm(ctx: DistContext) -> bool:
    """SyncBatchNorm only for multi-process CUDA training (torch has no CPU implementation)."""
    return ctx.distributed and ctx.device.type == "cuda"


@dataclass
class TrainConfig:
    """Optimisation and bookkeeping.

    Attributes:
        steps: total generator steps; batch_size: per process.
        lr_g, lr_d, betas: Adam settings (pix2pixHD / BodyMap: 2e-4, (0.5, 0.999)).
        amp: "none", "bf16" or "fp16" (CUDA only).
        ema_decay: EMA of generator weights (0 = off).
        log_every, image_every, ckpt_every: intervals in steps (0 = never).
        num_workers: DataLoader workers per process.
        seed: data-order and initialisation seed.
        out_dir: run folder (checkpoints/, scalars.jsonl, images/).
        resume: continue from ``out_dir/checkpoints/last.pt`` when it exists.
        progress: show a progress bar (rank 0).
        device: "auto", "cpu" or "cuda".
    """

    steps: int = 1000
    batch_size: int = 4
    lr_g: float = 2e-4
    lr_d: float = 2e-4
    betas: tuple[float, float] = (0.5, 0.999)
    amp: str = "none"
    ema_decay: float = 0.0
    log_every: int = 10
    image_every: int = 200
    ckpt_every: int = 100
    num_workers: int = 0
    seed: int = 0
    out_dir: str = "runs/train"
    resume: bool = True
    progress: bool = True
    device: str = "auto"

    def validate(self) -> TrainConfig:
        if self.amp not in ("none", "bf16", "fp16"):
            raise InputError(f"amp must be none, bf16 or fp16, got {self.amp!r}")
        if self.steps < 1 or self.batch_size < 1:
            raise InputError(
                f"steps and batch_size must be >= 1, got {self.steps}, {self.batch_size}"
            )
        if not 0.0 <= self.ema_decay < 1.0:
            raise InputError(f"ema_decay must be in [0, 1), got {self.ema_decay}")
        return self


@dataclass
class LossTerms:
    """A step's objective: ``total`` (scalar tensor to minimise) and its named unweighted terms."""

    total: torch.Tensor
    terms: dict[str, torch.Tensor]


class GANTask(Protocol):
    """What a network plugs into :class:`GANTrainer`.

    ``kind`` names the checkpoint kind; ``config_dict()`` returns the plain-value
    config stored in checkpoints (must rebuild the networks).
    ``generate(G, batch)`` returns the generator output; ``discriminator_loss(D, batch,
    fake)`` (``fake`` detached) and ``generator_loss(D, batch, fake)`` return
    :class:`LossTerms` (D may be None for a non-adversarial task);
    ``image_grid(batch, fake)`` returns ((N, 3, H, W) in [-1, 1], images per row) to log.
    """

    kind: str

    def build_generator(self) -> nn.Module: ...
    def build_discriminator(self) -> nn.Module | None: ...
    def config_dict(self) -> dict: ...
    def generate(self, G: nn.Module, batch: dict) -> torch.Tensor: ...
    def discriminator_loss(self, D: nn.Module, batch: dict, fake: torch.Tensor) -> LossTerms: ...
    def generator_loss(self, D: nn.Module | None, batch: dict, fake: torch.Tensor) -> LossTerms: ...
    def image_grid(self, batch: dict, fake: torch.Tensor) -> tuple[torch.Tensor, int]: ...


class EMA:
    """Exponential moving average of a module's parameters (buffers copied).

    ``update(model)``: ``p_ema = decay * p_ema + (1 - decay) * p``.
    """

    def __init__(self, model: nn.Module, decay: float):
        self.decay = decay
        self.state = {k: v.detach().clone() for k, v in model.state_dict().items()}

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        for k, v in model.state_dict().items():
            e = self.state[k]
            if e.dtype.is_floating_point:
                e.mul_(self.decay).add_(v.detach(), alpha=1 - self.decay)
            else:
                e.copy_(v)


class _Logger:
    """Rank-0 scalars (JSON lines, TensorBoard if installed) and image grids (PNG)."""

    def __init__(self, out: Path, enabled: bool):
        self.enabled = enabled
        self.out = out
        self.tb = None
        if enabled:
            out.mkdir(parents=True, exist_ok=True)
            try:
                from torch.utils.tensorboard import SummaryWriter

                self.tb = SummaryWriter(str(out / "tb"))
            except Exception:  # noqa: BLE001 - tensorboard is optional
                self.tb = None

    def scalars(self, step: int, values: dict[str, float]) -> None:
        if not self.enabled:
            return
        with open(self.out / "scalars.jsonl", "a") as f:
            f.write(json.dumps({"step": step, **values}) + "\n")
        if self.tb is not None:
            for k, v in values.items():
                self.tb.add_scalar(k, v, step)

    def images(self, step: int, grid: torch.Tensor, nrow: int) -> None:
        if not self.enabled:
            return
        from torchvision.utils import make_grid

        g = make_grid(grid.detach().float().cpu().clamp(-1, 1) * 0.5 + 0.5, nrow=nrow)
        if self.tb is not None:
            self.tb.add_image("samples", g, step)
        arr = (g.permute(1, 2, 0).numpy() * 255).round().astype("uint8")
        save_image_atomic(self.out / "images" / f"step_{step:07d}.png", arr)


class GANTrainer:
    """Trains a :class:`GANTask` on a map-style dataset.

    Args:
        task: the networks and losses; dataset: items are dicts of tensors.
        config: :class:`TrainConfig`.

    :meth:`fit` runs to ``config.steps`` (resuming first when a checkpoint exists)
    and returns a summary dict (steps run, wall time, images per second).
    """

    def __init__(self, task: GANTask, dataset, config: TrainConfig):
        self.task = task
        self.dataset = dataset
        self.cfg = config.validate()
        self.ctx = init_distributed(self.cfg.device)
        ctx = self.ctx
        torch.manual_seed(self.cfg.seed)
        self.out = Path(self.cfg.out_dir)
        self.log = _Logger(self.out, ctx.is_main)
        self.notes: list[str] = []
        cuda = ctx.device.type == "cuda"
        if self.cfg.amp != "none" and not cuda:
            self.notes.append(f"amp={self.cfg.amp} ignored on CPU (AMP runs on CUDA only)")
        self.amp_dtype = (
            {"bf16": torch.bfloat16, "fp16": torch.float16}.get(self.cfg.amp) if cuda else None
        )
        fp16 = cuda and self.cfg.amp == "fp16"
        # one loss scaler per network: an overflow in the D step must not skip the G step
        self.scaler = torch.amp.GradScaler("cuda", enabled=fp16)
        self.scaler_d = torch.amp.GradScaler("cuda", enabled=fp16)

        G = task.build_generator().to(ctx.device)
        D = task.build_discriminator()
        D = D.to(ctx.device) if D is not None else None
        if use_sync_batchnorm(ctx):
            G = nn.SyncBatchNorm.convert_sync_batchnorm(G)
            if D is not None:
                D = nn.SyncBatchNorm.convert_sync_batchnorm(D)
        self.G, self.D = G, D
        self.ema = EMA(G, self.cfg.ema_decay) if self.cfg.ema_decay > 0 else None
        if ctx.distributed:
            from torch.nn.parallel import DistributedDataParallel as DDP

            ids = [ctx.local_rank] if cuda else None
            self.G_ddp = DDP(G, device_ids=ids)
            self.D_ddp = DDP(D, device_ids=ids) if D is not None else None
        else:
            self.G_ddp, self.D_ddp = G, D
        self.opt_g = torch.optim.Adam(G.parameters(), self.cfg.lr_g, betas=tuple(self.cfg.betas))
        self.opt_d = (torch.optim.Adam(D.parameters(), self.cfg.lr_d, betas=tuple(self.cfg.betas))
                      if D is not None else None)  # fmt: skip
        self.step = 0
        self.resumed_from: int | None = None
        if self.cfg.resume and self.last_path.is_file():
            self._load(self.last_path)

    # -- checkpoints ------------------------------------------------------------------------
    @property
    def last_path(self) -> Path:
        return self.out / "checkpoints" / "last.pt"

    def full_config(self) -> dict:
        """Task config + training config, as plain values (stored in checkpoints)."""
        return plain_values({**self.task.config_dict(), "train": asdict(self.cfg),
                       "world_size": self.ctx.world_size})  # fmt: skip

    def save(self, path: Path | None = None) -> None:
        """Write the full training state (rank 0 only; others return)."""
        if not self.ctx.is_main:
            return
        state = {"generator": self.G.state_dict(), "opt_g": self.opt_g.state_dict(),
                 "scaler": self.scaler.state_dict(), "scaler_d": self.scaler_d.state_dict(),
                 "torch_rng": torch.get_rng_state()}  # fmt: skip
        if self.D is not None:
            state["discriminator"] = self.D.state_dict()
            state["opt_d"] = self.opt_d.state_dict()
        if self.ema is not None:
            state["ema"] = self.ema.state
        save_checkpoint(
            path or self.last_path, self.task.kind, self.full_config(), self.step, **state
        )

    def _load(self, path: Path) -> None:
        ck = load_checkpoint(path, kind=self.task.kind, map_location=self.ctx.device)
        self.G.load_state_dict(ck["generator"])
        self.opt_g.load_state_dict(ck["opt_g"])
        if self.D is not None and "discriminator" in ck:
            self.D.load_state_dict(ck["discriminator"])
            self.opt_d.load_state_dict(ck["opt_d"])
        # the learning rates are this run's config (e.g. a lower --lr-g for a last phase), not the saved ones
        for opt, lr in ((self.opt_g, self.cfg.lr_g), (self.opt_d, self.cfg.lr_d)):
            for group in opt.param_groups if opt is not None else ():
                group["lr"] = lr
        if self.ema is not None and "ema" in ck:
            self.ema.state = {k: v.to(self.ctx.device) for k, v in ck["ema"].items()}
        if ck.get("scaler"):
            self.scaler.load_state_dict(ck["scaler"])
        if ck.get("scaler_d"):
            self.scaler_d.load_state_dict(ck["scaler_d"])
        if "torch_rng" in ck:
            torch.set_rng_state(ck["torch_rng"].cpu())
        self.step = self.resumed_from = int(ck["step"])

    # -- data -------------------------------------------------------------------------------
    def _steps_per_epoch(self) -> int:
        n = len(self.dataset) // self.ctx.world_size
        return max(1, n // self.cfg.batch_size)

    def _epoch_batches(self, epoch: int) -> list[list[int]]:
        g = torch.Generator().manual_seed(self.cfg.seed * 100003 + epoch)
        perm = torch.randperm(len(self.dataset), generator=g).tolist()
        if len(perm) < self.ctx.world_size * self.cfg.batch_size:  # tiny sets: repeat
            perm = perm * math.ceil(self.ctx.world_size * self.cfg.batch_size / len(perm))
        mine = perm[self.ctx.rank :: self.ctx.world_size]
        b = self.cfg.batch_size
        return [mine[i : i + b] for i in range(0, len(mine) - b + 1, b)]

    def _batches(self):
        spe = self._steps_per_epoch()
        epoch, offset = divmod(self.step, spe)
        while True:
            if hasattr(self.dataset, "set_epoch"):
                self.dataset.set_epoch(epoch)
            bs = self._epoch_batches(epoch)[offset:]
            loader = torch.utils.data.DataLoader(
                self.dataset, batch_sampler=bs, num_workers=self.cfg.num_workers,
                persistent_workers=False,
            )  # fmt: skip
            yield from loader
            epoch, offset = epoch + 1, 0

    def _to_device(self, batch: dict) -> dict:
        return {k: v.to(self.ctx.device, non_blocking=True) if torch.is_tensor(v) else v
                for k, v in batch.items()}  # fmt: skip

    # -- steps ------------------------------------------------------------------------------
    def _autocast(self):
        if self.amp_dtype is None:
            return torch.autocast("cpu", enabled=False)
        return torch.autocast("cuda", dtype=self.amp_dtype)

    def d_step(self, batch: dict, fake: torch.Tensor) -> dict[str, float]:
        """One discriminator update on ``fake`` (detached here). Returns its terms."""
        if self.D is None:
            return {}
        self.D.train()
        self.opt_d.zero_grad(set_to_none=True)
        with self._autocast():
            lt = self.task.discriminator_loss(self.D_ddp, batch, fake.detach())
        self.scaler_d.scale(lt.total).backward()
        self.scaler_d.step(self.opt_d)
        self.scaler_d.update()
        return {f"d/{k}": float(v) for k, v in lt.terms.items()} | {
            "d/total": float(lt.total.detach())
        }

    def g_step(self, batch: dict, fake: torch.Tensor) -> dict[str, float]:
        """One generator update; the discriminator is used frozen (no DDP sync on it)."""
        D = self.D
        if D is not None:
            D.requires_grad_(False)
        self.opt_g.zero_grad(set_to_none=True)
        try:
            with self._autocast():
                lt = self.task.generator_loss(D, batch, fake)
            self.scaler.scale(lt.total).backward()
        finally:
            if D is not None:
                D.requires_grad_(True)
        self.scaler.step(self.opt_g)
        self.scaler.update()
        if self.ema is not None:
            self.ema.update(self.G)
        return {f"g/{k}": float(v) for k, v in lt.terms.items()} | {
            "g/total": float(lt.total.detach())
        }

    def train_step(self, batch: dict) -> tuple[dict[str, float], torch.Tensor]:
        """Generator forward, then the D step, then the G step (pix2pixHD order)."""
        self.G.train()
        batch = self._to_device(batch)
        with self._autocast():
            fake = self.task.generate(self.G_ddp, batch)
        terms = self.d_step(batch, fake)
        terms |= self.g_step(batch, fake)
        return terms, fake

    def _reduce(self, terms: dict[str, float]) -> dict[str, float]:
        if not self.ctx.distributed:
            return terms
        keys = sorted(terms)
        t = torch.tensor([terms[k] for k in keys], dtype=torch.float64, device=self.ctx.device)
        dist.all_reduce(t)
        return {k: float(v) / self.ctx.world_size for k, v in zip(keys, t.tolist(), strict=True)}

    def fit(self) -> dict:
        """Train to ``config.steps``; returns {steps_run, wall_s, images_per_s, final_terms, notes}."""
        from tqdm import tqdm

        cfg, ctx = self.cfg, self.ctx
        start = self.step
        if ctx.is_main:
            for n in self.notes:
                print(f"note: {n}", flush=True)
            if self.resumed_from is not None:
                print(f"resumed from step {self.resumed_from} ({self.last_path})", flush=True)
        bar = tqdm(total=cfg.steps, initial=start, disable=not (ctx.is_main and cfg.progress),
                   desc=self.task.kind, dynamic_ncols=True)  # fmt: skip
        acc: dict[str, float] = {}
        n_acc = 0
        terms: dict[str, float] = {}
        t0 = time.perf_counter()
        t_first = None
        it = self._batches()
        while self.step < cfg.steps:
            batch = next(it)
            terms, fake = self.train_step(batch)
            self.step += 1
            if t_first is None:
                t_first = time.perf_counter()
            for k, v in terms.items():
                acc[k] = acc.get(k, 0.0) + v
            n_acc += 1
            bar.update(1)
            if cfg.log_every and self.step % cfg.log_every == 0:
                mean = self._reduce({k: v / n_acc for k, v in acc.items()})
                self.log.scalars(self.step, mean)
                bar.set_postfix({k: f"{v:.3f}" for k, v in mean.items() if k.endswith("total")})
                acc, n_acc = {}, 0
            if cfg.image_every and self.step % cfg.image_every == 0:
                grid, nrow = self.task.image_grid(batch, fake)
                self.log.images(self.step, grid, nrow=nrow)
            if cfg.ckpt_every and self.step % cfg.ckpt_every == 0:
                self.save()
        bar.close()
        wall = time.perf_counter() - t0
        self.save()
        steps_run = self.step - start
        timed = time.perf_counter() - (t_first or t0)
        ips = ((steps_run - 1) * cfg.batch_size * ctx.world_size / timed
               if steps_run > 1 and timed > 0 else float("nan"))  # fmt: skip
        if ctx.distributed:
            dist.barrier()
        return {"steps_run": steps_run, "start_step": start, "wall_s": wall,
                "images_per_s": ips, "final_terms": terms, "notes": self.notes}  # fmt: skip


def measure_matmul_gflops(n: int = 1024, repeats: int = 10, dtype=torch.float32) -> float:
    """This CPU's achieved float32 matmul rate with the current torch thread count, GFLOP/s.

    Times ``repeats`` products of two (n, n) matrices (2 n^3 FLOP each) after one
    warm-up and returns the best of three rounds.
    """
    a = torch.randn(n, n, dtype=dtype)
    b = torch.randn(n, n, dtype=dtype)
    a @ b
    best = 0.0
    for _ in range(3):
        t = time.perf_counter()
        for _ in range(repeats):
            a @ b
        dt = time.perf_counter() - t
        best = max(best, 2 * n**3 * repeats / dt / 1e9)
    return best


def train_command(build, threads: int = 0) -> int:
    """The body of every network's training command (``python -m texture.train``, ``renderer.train``).

    Args:
        build: ``build() -> (task, dataset, TrainConfig)``; may raise
            :class:`~reroute.errors.InputError` (bad option, missing data or weights).
        threads: torch threads per process (0 = torch's default).
    Returns:
        0 after training (rank 0 prints one JSON line: steps, wall time,
        images/s, final loss terms, world size, step); 2 after an
        :class:`~reroute.errors.InputError`, printed as one ``error:`` line on stderr.
    """
    if threads:
        torch.set_num_threads(threads)
    try:
        task, dataset, train_cfg = build()
        trainer = GANTrainer(task, dataset, train_cfg)
        summary = trainer.fit()
    except InputError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    close_distributed()
    if trainer.ctx.is_main:
        summary = {k: v for k, v in summary.items() if k != "final_terms"} | {
            "final_terms": {k: round(v, 5) for k, v in summary["final_terms"].items()},
            "world_size": trainer.ctx.world_size, "step": trainer.step,
        }  # fmt: skip
        print(json.dumps(summary))
    return 0


def add_train_options(p) -> None:
    """The options every training command shares (an ``argparse.ArgumentParser`` ``p``):
    ``--out``, ``--steps``, ``--batch-size``, ``--ckpt-every``, ``--log-every``, ``--lr-g``,
    ``--amp``, ``--ema``, ``--perceptual-weight``, ``--adv-weight``, ``--feature-net``,
    ``--vgg-weights``, ``--device``, ``--threads``, ``--seed``, ``--no-resume``, ``--no-progress``."""
    p.add_argument("--out", required=True, help="run folder (checkpoints/, scalars, images)")
    p.add_argument("--steps", type=int)
    p.add_argument("--batch-size", type=int)
    p.add_argument("--ckpt-every", type=int)
    p.add_argument("--log-every", type=int)
    p.add_argument("--lr-g", type=float)
    p.add_argument("--amp", choices=["none", "bf16", "fp16"])
    p.add_argument("--ema", type=float, help="EMA decay of generator weights (0 = off)")
    p.add_argument("--perceptual-weight", type=float)
    p.add_argument("--adv-weight", type=float)
    p.add_argument("--feature-net", choices=["vgg19", "untrained-vgg19", "none"])
    p.add_argument("--vgg-weights", help="path of vgg19-dcbb9e9d.pth (default: the torch cache)")
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    p.add_argument("--threads", type=int, default=0, help="torch threads per process (0 = default)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-resume", action="store_true", help="ignore an existing last.pt")
    p.add_argument("--no-progress", action="store_true")


def train_config_from_args(a, preset: TrainConfig) -> TrainConfig:
    """``preset`` with the options of :func:`add_train_options` applied (unset ones kept)."""
    over = {"steps": a.steps, "batch_size": a.batch_size, "ckpt_every": a.ckpt_every,
            "log_every": a.log_every, "lr_g": a.lr_g, "amp": a.amp, "ema_decay": a.ema}  # fmt: skip
    return replace(preset, **{k: v for k, v in over.items() if v is not None}, out_dir=a.out,
                   seed=a.seed, resume=not a.no_resume, progress=not a.no_progress,
                   device=a.device)  # fmt: skip
