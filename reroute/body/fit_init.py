"""A learned initialisation of the body fit: BlazePose's landmarks -> anny's pose.

The fit (:mod:`reroute.body.fit`) starts from a closed form: the facing by Kabsch
on the torso, the depth from its size and each arm and leg swung onto BlazePose's
3-D limb directions (:func:`~reroute.body.fit.closed_form_pose`). That start leaves twist,
spine, neck and head at rest, and the descent spends its steps there: started at
the true pose, 15 steps land closer (limb error 2.50 px on the 24 renders of
``benchmarks/fit_accuracy.py``) than 40 from the closed form (2.84 px).

:class:`FitInitNet` is a small MLP that predicts a correction of the closed-form
pose from what BlazePose sees (:func:`init_features`: the world landmarks turned
into anny's frame by the Kabsch facing, the image landmarks normalised by the
torso, their visibility, and the closed-form pose itself). It is trained on the
synthetic engine, which knows the true pose (:func:`prepare_observations` runs
BlazePose on its renders; :func:`train_fit_init` fits the keypoints of the
predicted pose to the true one's through anny's skinning). ``FitConfig(init=
"learned")`` uses it.

    python -m reroute.body.fit_init prepare --count 3000 --out runs/fit_init/obs.npz
    python -m reroute.body.fit_init train --data runs/fit_init/obs.npz --out checkpoints/fit_init.pt
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from reroute.body.detect import PersonObservation
from reroute.body.fit import POSE_BONES, closed_form_pose, pose_keypoints
from reroute.errors import InputError
from reroute.training.checkpoint import load_checkpoint, save_checkpoint
from reroute.training.modelcard import hardware, write_card
from reroute.training.trainer import close_distributed, init_distributed

__all__ = [
    "FitInitConfig",
    "FitInitNet",
    "init_features",
    "prepare_observations",
    "train_fit_init",
    "load_fit_init",
    "cached_fit_init",
    "learned_pose",
    "in_training_domain",
    "save_fit_init",
    "keypoint_error_cm",
    "FitInitTraining",
    "DEFAULT_CHECKPOINT",
]

#: the committed checkpoint (:func:`~reroute.training.checkpoint.save_checkpoint`'s
#: versioned format, ``kind="fit_init"``: config, ``state_dict``, model ``card``)
DEFAULT_CHECKPOINT = Path(__file__).resolve().parents[2] / "checkpoints" / "fit_init.pt"
#: the torso landmarks (left/right shoulder, left/right hip) of BlazePose's 33
_TORSO_IDS = (11, 12, 23, 24)


def prepare_observations(count: int, seed: int = 0, size: int = 256, progress: bool = False,
                         crop_share: float = 0.0) -> dict[str, np.ndarray]:  # fmt: skip
    """BlazePose on synthetic renders of known pose: the training data of :class:`FitInitNet`.

    Render ``i`` draws its pose (:func:`~reroute.synth.pose.sample_pose`, any kind),
    a yaw uniform in [-180, 180) degrees, phenotypes (:func:`~reroute.synth.engine.
    sample_phenotypes`) and an outfit from ``default_rng(seed * 1_000_003 + i)``;
    with probability ``crop_share`` the render is then cut like a fashion close-up:
    the rows from the top to a uniform 50-95 % of its height, a portrait window
    (width 0.69 x height) about the centre. Renders where BlazePose finds nobody
    are left out.

    Args:
        count: renders to make; seed: the set's seed; size: render side, px.
    Returns:
        dict of arrays over the N kept renders: ``landmarks`` (N, 33, 2) float32 px,
        ``world`` (N, 33, 3) float32 metres, ``visibility`` (N, 33) float32,
        ``image_size`` (N, 2) int32 (H, W), ``rot`` (N, J, 3) float32 the true
        :data:`~reroute.body.fit.POSE_BONES` axis-angles, ``yaw`` (N,) degrees,
        ``index`` (N,) int32 the render's number.
    """
    # the engine and mediapipe load only when data is made
    from reroute.body.detect import detect_person
    from reroute.synth.engine import render_synthetic_person, sample_phenotypes
    from reroute.synth.pose import sample_pose

    keys = ("landmarks", "world", "visibility", "image_size", "rot", "yaw", "index")
    out: dict[str, list] = {k: [] for k in keys}
    for i in range(count):
        rng = np.random.default_rng(seed * 1_000_003 + i)
        pose, _ = sample_pose(rng)
        pose = {b: a for b, a in pose.items() if b in POSE_BONES}
        yaw = float(rng.uniform(-180.0, 180.0))
        r = render_synthetic_person(pose, size=size, yaw_deg=yaw, seed=int(rng.integers(1 << 30)),
                                    phenotypes=sample_phenotypes(rng))  # fmt: skip
        image = r.image
        if rng.random() < crop_share:  # a close-up: legs (and the sides) out of the frame
            rows = int(size * rng.uniform(0.5, 0.95))
            half = int(0.69 * rows / 2)
            image = np.ascontiguousarray(image[:rows, max(0, size // 2 - half): size // 2 + half])
        try:
            obs = detect_person(image)
        except InputError:
            continue
        rot = np.zeros((len(POSE_BONES), 3), np.float32)
        for j, b in enumerate(POSE_BONES):
            if b in pose:
                rot[j] = pose[b]
        for k, v in zip(keys, (obs.landmarks, obs.world, obs.visibility, obs.image_size, rot,
                               yaw, i), strict=True):  # fmt: skip
            out[k].append(v)
        if progress and (i + 1) % 100 == 0:
            print(f"{i + 1}/{count} renders, {len(out['rot'])} kept", file=sys.stderr, flush=True)
    dtypes = {"image_size": np.int32, "index": np.int32}
    return {k: np.asarray(v, dtypes.get(k, np.float32)) for k, v in out.items()}


def init_features(landmarks: np.ndarray, world: np.ndarray, visibility: np.ndarray,
                  image_size: tuple[int, int], R0: np.ndarray, rot0: np.ndarray) -> np.ndarray:  # fmt: skip
    """The input of :class:`FitInitNet` for one photo.

    Args:
        landmarks: (33, 2) BlazePose landmarks, px (x, y); world: (33, 3) metres,
            hip-centred, camera axes; visibility: (33,) in [0, 1];
        image_size: (H, W); R0: (3, 3) the Kabsch facing (anny -> camera) and
        rot0: (J, 3) the closed-form pose (:func:`~reroute.body.fit.closed_form_pose`).
    Returns:
        (F,) float32, F = 99 + 66 + 33 + 9 + 3 J: the world landmarks in anny's
        frame (``world @ R0``), the image landmarks about the torso centre over the
        torso's length (at least 5 % of the image's longer side), visibility, R0 and rot0.
    """
    lm = np.asarray(landmarks, np.float64)
    t = lm[list(_TORSO_IDS)]
    centre = t.mean(0)
    length = max(np.linalg.norm((t[0] + t[1]) / 2 - (t[2] + t[3]) / 2), 0.05 * max(image_size))
    parts = [(np.asarray(world, np.float64) @ R0).ravel(), ((lm - centre) / length).ravel(),
             np.asarray(visibility, np.float64), np.asarray(R0).ravel(), np.asarray(rot0).ravel()]
    return np.concatenate(parts).astype(np.float32)  # fmt: skip


def _feature_count() -> int:
    return 99 + 66 + 33 + 9 + 3 * len(POSE_BONES)


@dataclass
class FitInitConfig:
    """Shape of :class:`FitInitNet` (stored in its checkpoint).

    Attributes:
        hidden: width of the hidden layers; layers: hidden layers (>= 1).
        max_delta: the correction of each axis-angle is ``max_delta * tanh(.)``, radians.
    """

    hidden: int = 256
    layers: int = 2
    max_delta: float = 1.5

    @classmethod
    def preset(cls, name: str) -> FitInitConfig:
        """``tiny`` (tests: 32 wide, 1 layer) or ``cpu`` (the committed network)."""
        presets = {"tiny": cls(hidden=32, layers=1), "cpu": cls()}
        if name not in presets:
            raise InputError(f"unknown preset {name!r}; choose {' or '.join(presets)}")
        return presets[name]


class FitInitNet(nn.Module):
    """MLP: :func:`init_features` -> a correction of the closed-form pose.

    ``forward(x)`` takes (B, F) float32 features and returns (B, J, 3) float32
    :data:`~reroute.body.fit.POSE_BONES` axis-angles, ``rot0 + max_delta *
    tanh(mlp(normalised x))``; the last layer starts at zero, so an untrained
    network returns the closed form. ``mean`` / ``std`` (buffers) normalise x
    (set from the training data).
    """

    def __init__(self, config: FitInitConfig | None = None):
        super().__init__()
        self.config = c = config or FitInitConfig()
        n_in, n_out = _feature_count(), 3 * len(POSE_BONES)
        dims = [n_in] + [c.hidden] * c.layers
        layers: list[nn.Module] = []
        for a, b in zip(dims[:-1], dims[1:], strict=True):
            layers += [nn.Linear(a, b), nn.GELU()]
        self.body = nn.Sequential(*layers)
        self.head = nn.Linear(dims[-1], n_out)
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)
        self.register_buffer("mean", torch.zeros(n_in))
        self.register_buffer("std", torch.ones(n_in))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 2 or x.shape[1] != self.mean.shape[0]:
            raise ValueError(f"features: expected (B, {self.mean.shape[0]}), got {tuple(x.shape)}")
        rot0 = x[:, -3 * len(POSE_BONES):].reshape(len(x), -1, 3)
        delta = self.head(self.body((x - self.mean) / self.std)).reshape(rot0.shape)
        return rot0 + self.config.max_delta * torch.tanh(delta)


def _features_of(data: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """(N, F) float32 features and (N, J, 3) float32 closed-form poses of prepared data."""
    feats, rot0s = [], []
    for i in range(len(data["rot"])):
        obs = PersonObservation(data["landmarks"][i], data["visibility"][i], data["world"][i],
                                np.zeros((1, 1), np.float32), tuple(data["image_size"][i]))  # fmt: skip
        R0, rot0 = closed_form_pose(obs)
        feats.append(init_features(obs.landmarks, obs.world, obs.visibility, obs.image_size, R0, rot0))
        rot0s.append(rot0)
    return np.stack(feats), np.asarray(rot0s, np.float32)


def keypoint_error_cm(rot: torch.Tensor, true_rot: torch.Tensor) -> torch.Tensor:
    """(B,) mean 3-D distance, cm, between anny's 23 keypoints posed by rot and by
    true_rot ((B, J, 3) axis-angles each; anny's frame, so facing and place do not count)."""
    return (pose_keypoints(rot) - pose_keypoints(true_rot)).norm(dim=-1).mean(-1) * 100.0


@dataclass
class FitInitTraining:
    """How :func:`train_fit_init` trains.

    Attributes:
        steps: Adam steps; batch: samples per step and process; lr: learning rate
        (cosine decay to 5 %); heldout: share of the data kept for the metrics;
        seed: initialisation and batch order; w_param: weight of the axis-angle L2
        next to the keypoint L1 (cm).
    """

    steps: int = 3000
    batch: int = 256
    lr: float = 1e-3
    heldout: float = 0.1
    seed: int = 0
    w_param: float = 1.0


def train_fit_init(data: dict[str, np.ndarray], config: FitInitConfig,
                   training: FitInitTraining) -> tuple[FitInitNet, dict]:  # fmt: skip
    """Train :class:`FitInitNet` on prepared observations (:func:`prepare_observations`).

    Loss per sample: mean keypoint distance (cm, :func:`keypoint_error_cm`) plus
    ``w_param`` times the mean squared axis-angle error. Under ``torchrun`` each rank
    draws its own batches and the gradients are averaged (DDP, gloo on CPU, nccl on CUDA).

    Returns:
        the trained network (CPU, eval mode) and metrics: keypoint error (cm) of the
        closed form and of the network on the held-out samples, samples used, seconds.
    Raises:
        InputError: fewer than 10 samples.
    """
    n = len(data["rot"])
    if n < 10:
        raise InputError(f"fit-init training needs at least 10 samples, got {n}")
    t0 = time.perf_counter()
    ctx = init_distributed("cpu")
    torch.manual_seed(training.seed)
    feats, _ = _features_of(data)
    x, y = torch.from_numpy(feats), torch.from_numpy(np.asarray(data["rot"], np.float32))
    order = np.random.default_rng(training.seed).permutation(n)
    n_held = max(1, int(round(training.heldout * n)))
    held, train = order[:n_held], order[n_held:]
    net = FitInitNet(config)
    net.mean.copy_(x[train].mean(0))
    net.std.copy_(x[train].std(0).clamp_min(1e-3))
    model = nn.parallel.DistributedDataParallel(net) if ctx.distributed else net
    opt = torch.optim.Adam(net.parameters(), lr=training.lr)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: 0.05 + 0.95 * 0.5 * (1 + np.cos(np.pi * s / max(training.steps, 1))))
    rng = np.random.default_rng(training.seed * 7919 + ctx.rank)
    for _ in range(training.steps):
        idx = torch.from_numpy(rng.choice(train, size=min(training.batch, len(train))))
        pred = model(x[idx])
        loss = keypoint_error_cm(pred, y[idx]).mean()
        loss = loss + training.w_param * (pred - y[idx]).pow(2).sum(-1).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
    net.eval()
    with torch.no_grad():
        rot0 = x[held, -3 * len(POSE_BONES):].reshape(len(held), -1, 3)
        metrics = {"heldout_samples": int(n_held), "train_samples": int(len(train)),
                   "keypoint_error_cm_closed_form": round(float(keypoint_error_cm(rot0, y[held]).mean()), 3),
                   "keypoint_error_cm_network": round(float(keypoint_error_cm(net(x[held]), y[held]).mean()), 3),
                   "processes": ctx.world_size, "seconds": round(time.perf_counter() - t0, 1)}  # fmt: skip
    close_distributed()
    return net, metrics


def save_fit_init(net: FitInitNet, path: str | Path, card: dict) -> None:
    """Write the checkpoint (``kind="fit_init"``, config, weights, model card as plain
    JSON values, so ``weights_only`` loading reads it) and the card as JSON beside it."""
    save_checkpoint(path, "fit_init", asdict(net.config), int(card.get("steps", 0)),
                    state_dict=net.state_dict(), card=json.loads(json.dumps(card, default=str)))  # fmt: skip
    write_card(path, card)


def load_fit_init(path: str | Path | None = None) -> FitInitNet:
    """The network of a checkpoint (default :data:`DEFAULT_CHECKPOINT`), in eval mode,
    read with ``weights_only=True``.

    Raises:
        InputError: missing, unreadable or foreign checkpoint.
    """
    ck = load_checkpoint(path or DEFAULT_CHECKPOINT, kind="fit_init")
    net = FitInitNet(FitInitConfig(**ck["config"]))
    net.load_state_dict(ck["state_dict"])
    return net.eval()


_NETS: dict[str, FitInitNet] = {}


def cached_fit_init(checkpoint: str | Path | None = None) -> FitInitNet:
    """:func:`load_fit_init`, once per checkpoint path (default :data:`DEFAULT_CHECKPOINT`).

    Raises:
        InputError: the checkpoint cannot be loaded.
    """
    key = str(checkpoint or DEFAULT_CHECKPOINT)
    if key not in _NETS:
        _NETS[key] = load_fit_init(key)
    return _NETS[key]


def in_training_domain(obs: PersonObservation) -> bool:
    """Whether a photo looks like the network's training renders: the whole body in the
    frame (every BlazePose landmark inside the image).

    The network was trained on full-body renders only. On the 100 pg2 pairs, where 163
    of 200 photos cut the body off (thighs, knees or feet outside the frame), applying
    it everywhere twisted the fitted torsos of close-ups and lowered the transfers'
    grayscale SSIM from 0.771 to 0.767 (40 steps), so such photos keep the closed form.
    """
    h, w = obs.image_size
    x, y = obs.landmarks[:, 0], obs.landmarks[:, 1]
    return bool(((x >= 0) & (x <= w) & (y >= 0) & (y <= h)).all())


def learned_pose(obs: PersonObservation, R0: np.ndarray, rot0: np.ndarray,
                 checkpoint: str | Path | None = None) -> np.ndarray:
    """The learned start pose of one photo: (J, 3) float64 axis-angles; ``rot0``
    unchanged for a photo outside the training domain (:func:`in_training_domain`).

    Args:
        obs: the photo's observation; R0, rot0: its closed form (:func:`~reroute.body.fit.
        closed_form_pose`); checkpoint: the network (default :data:`DEFAULT_CHECKPOINT`,
        loaded once per path).
    Raises:
        InputError: the checkpoint cannot be loaded.
    """
    net = cached_fit_init(checkpoint)
    if not in_training_domain(obs):
        return np.asarray(rot0, np.float64)
    f = init_features(obs.landmarks, obs.world, obs.visibility, obs.image_size, R0, rot0)
    with torch.no_grad():
        return net(torch.from_numpy(f)[None])[0].double().numpy()


def main(argv: list[str] | None = None) -> int:
    """``prepare`` (synthetic renders -> BlazePose observations, .npz) and ``train``."""
    ap = argparse.ArgumentParser(prog="python -m reroute.body.fit_init", description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="command", required=True)
    p = sub.add_parser("prepare", help="BlazePose on synthetic renders of known pose")
    p.add_argument("--count", type=int, default=3000)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--crop-share", type=float, default=0.0,
                   help="share of renders cut like fashion close-ups (legs out of the frame)")
    p.add_argument("--out", required=True, help="output .npz")
    t = sub.add_parser("train", help="train the network on prepared .npz files")
    t.add_argument("--data", nargs="+", required=True)
    t.add_argument("--out", required=True, help="checkpoint .pt (a .json model card beside it)")
    t.add_argument("--preset", default="cpu")
    for name, default in asdict(FitInitTraining()).items():
        t.add_argument(f"--{name.replace('_', '-')}", type=type(default), default=default)
    a = ap.parse_args(argv)
    try:
        if a.command == "prepare":
            d = prepare_observations(a.count, seed=a.seed, progress=True, crop_share=a.crop_share)
            np.savez_compressed(a.out, **d)
            print(json.dumps({"out": a.out, "renders": a.count, "kept": len(d["rot"])}))
            return 0
        data = _read_data(a.data)
        training = FitInitTraining(**{k: getattr(a, k) for k in asdict(FitInitTraining())})
        net, metrics = train_fit_init(data, FitInitConfig.preset(a.preset), training)
    except InputError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if int(os.environ.get("RANK", "0")) == 0:
        card = {"model": "FitInitNet", "preset": a.preset, "config": asdict(net.config),
                "training": asdict(training), "steps": training.steps,
                "data": {"files": [Path(f).name for f in a.data], "samples": len(data["rot"]),
                         "source": "synthetic anny renders (reroute.synth.engine), BlazePose "
                                   "landmarks by mediapipe; true pose from the engine"},
                "hardware": hardware(), "wall_time_s": metrics["seconds"], "metrics": metrics}  # fmt: skip
        save_fit_init(net, a.out, card)
        print(json.dumps({"out": a.out, **metrics}))
    return 0


def _read_data(paths: list[str]) -> dict[str, np.ndarray]:
    """Prepared .npz files concatenated.

    Raises:
        InputError: a missing or unreadable file, or one without the prepared arrays.
    """
    parts = []
    for p in paths:
        try:
            with np.load(p) as z:
                parts.append({k: z[k] for k in ("landmarks", "world", "visibility", "image_size", "rot")})
        except (OSError, KeyError, ValueError) as e:
            raise InputError(f"{p} is not a prepared fit-init file: {e}") from None
    return {k: np.concatenate([d[k] for d in parts]) for k in parts[0]}


if __name__ == "__main__":
    sys.exit(main())
