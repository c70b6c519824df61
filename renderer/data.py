"""Training data of the neural re-renderer: real photos first.

Each item is one warp-only pose transfer and the photo it should have been:

* ``cross``: DeepFashion ``pg2_pairs`` 000-079 (by sorted name), both
  directions: the source re-posed as the target, target = the real target photo;
* ``video``: two frames of one video (``video/ubc_fashion_1`` frames,
  ``video/taichi_1`` frames 0-199, the iPER pair ``009_5_1_000`` /
  ``009_5_2_0100``): texture from one frame, target the other;
* ``synth``: two views (different pose and yaw) of one synthetic person of
  :class:`reroute.synth.engine.SyntheticEngine` on one flat light background,
  rendered to photos (:func:`write_synthetic_photos`) and sent through the same
  pipeline as the real photos, so the warp carries the fit's real errors;
  both directions. Mixed in by :class:`RerenderDataset`'s ``synthetic_weight``;
* ``self``: self-reconstruction of a single photo (every real photo in
  ``../shared/data`` except the held-out pairs): texture lifted from the
  photo, warped back to the same photo's correspondences through the texture
  only (``direct=False``: the photo's own pixels would make it trivial).

Held out, never read here: ``pg2_pairs`` 080-099 and the 18 dev pairs of
``deepfashion/pairs.csv`` (``deepfashion/images``), and ``video/taichi_1``
frames 200-323 (the BodyMap network's validation frames).

``python -m reroute.evaluation.rerender_pairs --out DIR [--shard I/N]`` runs
the pipeline (:meth:`reroute.pipelines.pose_transfer.PoseTransferPipeline.transfer`,
handed to :func:`build_items`: this package sits below the pipelines) on every
pair and writes one ``.npz`` per item (:class:`RerenderItem` fields) into
``DIR``; :class:`RerenderDataset` reads them with augmentation.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, fields
from pathlib import Path

import cv2
import numpy as np
import torch

from renderer.network import seen_map
from reroute.correspondence.analyse import PersonAnalysis, analyse_person
from reroute.correspondence.maps import soft_mask
from reroute.errors import InputError
from reroute.io.files import atomic_path

__all__ = [
    "PairSpec",
    "RerenderItem",
    "real_training_pairs",
    "synthetic_two_view_samples",
    "flat_background",
    "write_synthetic_photos",
    "heldout_pg2_names",
    "build_items",
    "write_pair_items",
    "RerenderDataset",
    "FACE_PARTS",
    "TEXTURE_SIDE",
]

#: DensePose part indices of the head (23 right, 24 left): the face loss's region
FACE_PARTS = (23, 24)
#: side of the stored full texture (the texture encoder's input)
TEXTURE_SIDE = 128
#: the first N pg2 pairs (by sorted name) may be trained on; the rest are held out
PG2_TRAIN = 80


@dataclass(frozen=True)
class PairSpec:
    """One training pair: ``source`` gives the texture, ``target`` the pose and the truth.

    ``kind``: "cross", "video" or "self"; ``group``: items sharing photos (one shard).
    """

    name: str
    source: Path
    target: Path
    kind: str
    group: str


@dataclass
class RerenderItem:
    """One stored training item, at the target's working size (H, W) = (256, 256) after padding.

    Attributes:
        composite: (H, W, 3) uint8, the warp-only result (network input).
        background: (H, W, 3) uint8, the inpainted source background at the target size.
        target: (H, W, 3) uint8, the real target photo (the truth).
        uv: (H, W, 2) uint16, continuous UV * 65535 (U along x), 0 on background.
        colour: (H, W, 3) uint8, the BodyMap colour code * 255.
        part: (H, W) uint8, DensePose part index (0 background).
        mask: (H, W) uint8 {0, 1}, the target person mask.
        texture: (128, 128, 3) uint8, the completed texture.
        seen: (H, W) uint8, what the source showed of each target pixel * 255
            (:func:`renderer.network.seen_map`); None in items built before it
            was stored (they still train networks without the seen input).
    """

    composite: np.ndarray
    background: np.ndarray
    target: np.ndarray
    uv: np.ndarray
    colour: np.ndarray
    part: np.ndarray
    mask: np.ndarray
    texture: np.ndarray
    seen: np.ndarray | None = None


def _pg2_rows(root: Path) -> list[dict]:
    with open(root / "deepfashion" / "pg2_pairs" / "pairs.csv", newline="") as f:
        return sorted(csv.DictReader(f), key=lambda r: r["name"].strip())


def heldout_pg2_names(root: Path) -> list[str]:
    """Names of the held-out pg2 pairs (080-099 by sorted name)."""
    return [r["name"].strip() for r in _pg2_rows(root)[PG2_TRAIN:]]


def _photos(d: Path, skip=("_iuv", "_IUV", "_sil", "_INDS")) -> list[Path]:
    if not d.is_dir():
        return []
    return sorted(p for p in d.iterdir() if p.suffix.lower() in (".png", ".jpg", ".jpeg")
                  and not any(s in p.stem for s in skip))  # fmt: skip


def _video_pairs(frames: list[Path], every: int, gap: int, tag: str) -> list[PairSpec]:
    picked = frames[::every]
    out = []
    for i, f in enumerate(picked):
        group = f"{tag}-{i // 8}"
        out.append(PairSpec(f"{tag}-self-{f.stem}", f, f, "self", group))
        j = i + gap if (i // 8) == ((i + gap) // 8) and i + gap < len(picked) else i - gap
        if 0 <= j < len(picked) and j // 8 == i // 8:
            out.append(PairSpec(f"{tag}-{f.stem}-{picked[j].stem}", picked[j], f, "video", group))
    return out


def real_training_pairs(root: Path) -> list[PairSpec]:
    """Every training pair available under ``root`` (``../shared/data``); see the module docstring."""
    out: list[PairSpec] = []
    d = root / "deepfashion" / "pg2_pairs"
    for r in _pg2_rows(root)[:PG2_TRAIN]:
        n = r["name"].strip()
        s, t = d / r["source"].strip(), d / r["target"].strip()
        out += [PairSpec(f"pg2-{n}-st", s, t, "cross", n), PairSpec(f"pg2-{n}-ts", t, s, "cross", n),
                PairSpec(f"pg2-{n}-s", s, s, "self", n), PairSpec(f"pg2-{n}-t", t, t, "self", n)]  # fmt: skip
    for sub in ("deepfashion/single_views", "deepfashion/pidm_samples",
                "deepfashion/with_densepose_iuv", "video/iper_frames", "video/tiktok_frame"):  # fmt: skip
        for p in _photos(root / sub):
            out.append(PairSpec(f"self-{p.stem}", p, p, "self", p.stem))
    iper = root / "video" / "iper_frames"
    a, b = iper / "imper_A_Pose__009_5_1_000.jpg", iper / "imper_Random_Pose__009_5_2_0100.jpg"
    if a.is_file() and b.is_file():
        out += [PairSpec("iper-009-ab", a, b, "video", a.stem), PairSpec("iper-009-ba", b, a, "video", b.stem)]
    ubc = _photos(root / "video" / "ubc_fashion_1")
    out += _video_pairs(ubc, every=3, gap=3, tag="ubc")
    taichi = [p for p in _photos(root / "video" / "taichi_1") if int(p.stem[-4:]) < 200]
    out += _video_pairs(taichi, every=8, gap=3, tag="taichi")
    return out


def synthetic_two_view_samples(n: int, size: int = 256, seed: int = 0):
    """Yield ``(i, view_0, view_1, grey)`` for synthetic identities ``i < n``.

    Views 0 and 1 of identity ``i`` (:class:`reroute.synth.engine.SyntheticSample`,
    ``size`` x ``size`` px, whole body, one person) and one flat light grey
    (3,) uint8 in 200..255 for both views' backgrounds, as DeepFashion's studio
    backgrounds: the engine draws a different background per view, which no
    network could predict from the source. Deterministic in ``(seed, i)``.
    """
    # imports anny: only when synthetic pairs are asked for
    from reroute.synth.engine import SynthConfig, SyntheticEngine

    eng = SyntheticEngine(SynthConfig(size=size, views_per_identity=2, upper_body_prob=0.0,
                                      multi_person_prob=0.0, texture_size=256,
                                      fill_range=(0.8, 0.95), cluttered_prob=0.3), seed=seed)  # fmt: skip
    for i in range(n):
        grey = np.random.default_rng((seed, i)).integers(200, 256, 1).astype(np.uint8).repeat(3)
        yield i, eng.sample(i, 0), eng.sample(i, 1), grey


def flat_background(sample, colour: np.ndarray) -> np.ndarray:
    """A synthetic sample's (H, W, 3) uint8 image with every background pixel set to ``colour`` (3,) uint8."""
    m = sample.correspondence.mask[..., None]
    return np.where(m, sample.image, colour).astype(np.uint8)


def write_synthetic_photos(n: int, out_dir: Path, seed: int = 0) -> list[PairSpec]:
    """Render ``n`` synthetic two-view identities to ``out_dir/synth-XXXX_{a,b}.png``
    (:func:`synthetic_two_view_samples`, 256 px; files already there are kept) and
    return their pairs in both directions (kind ``synth``, one group per identity)."""
    from reroute.io.images import save_image_atomic  # only the synthetic path writes photos

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    specs: list[PairSpec] = []
    todo = [i for i in range(n) if not (out_dir / f"synth-{i:04d}_b.png").is_file()]
    for i, a, b, grey in synthetic_two_view_samples(max(todo) + 1 if todo else 0, seed=seed):
        if i in todo:
            save_image_atomic(out_dir / f"synth-{i:04d}_a.png", flat_background(a, grey))
            save_image_atomic(out_dir / f"synth-{i:04d}_b.png", flat_background(b, grey))
    for i in range(n):
        pa, pb, g = out_dir / f"synth-{i:04d}_a.png", out_dir / f"synth-{i:04d}_b.png", f"synth-{i:04d}"
        specs += [PairSpec(f"{g}-ab", pa, pb, "synth", g), PairSpec(f"{g}-ba", pb, pa, "synth", g)]
    return specs


def _square(a: np.ndarray, side: int, mode: str) -> np.ndarray:
    """Pad (H, W, ...) to (side, side, ...): bottom/right, ``edge`` or ``constant`` 0."""
    ph, pw = side - a.shape[0], side - a.shape[1]
    pad = [(0, ph), (0, pw)] + [(0, 0)] * (a.ndim - 2)
    return np.pad(a, pad, mode=mode)


def item_from_transfer(res, side: int = 256) -> RerenderItem:
    """A :class:`RerenderItem` from a :class:`~reroute.pipelines.pose_transfer.TransferResult` (working size <= side)."""
    corr = res.target.correspondence
    m = corr.mask
    seen = np.round(np.clip(seen_map(res.partial_texture, corr), 0, 1) * 255).astype(np.uint8)
    tex = cv2.resize(res.texture.pixels, (TEXTURE_SIDE, TEXTURE_SIDE), interpolation=cv2.INTER_AREA)
    return RerenderItem(
        composite=_square(res.composite, side, "edge"),
        background=_square(res.background, side, "edge"),
        target=_square(res.target.image, side, "edge"),
        uv=_square(np.where(m[..., None], np.round(corr.uv * 65535), 0).astype(np.uint16), side, "constant"),
        colour=_square(np.where(m[..., None], np.round(corr.colour * 255), 0).astype(np.uint8), side, "constant"),
        part=_square(corr.part.astype(np.uint8), side, "constant"),
        mask=_square(m.astype(np.uint8), side, "constant"),
        texture=np.round(np.clip(tex, 0, 1) * 255).astype(np.uint8),
        seen=_square(seen, side, "constant"),
    )  # fmt: skip


def write_pair_items(specs: list[PairSpec], out_dir: Path, make_item, size: int = 256, log=print) -> dict:
    """Analyse each photo of ``specs`` once and write ``out_dir/NAME.npz`` per pair.

    Args:
        specs: the pairs.
        make_item: ``f(spec, source_analysis, target_analysis) -> dict`` of arrays
            to store (``kind`` is added).
        size: working size of the analyses (longer side, pixels).
    A photo with no usable person is skipped (logged); items already on disk are
    kept. Returns counts ``{"written", "skipped", "failed"}``.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    cache: dict[Path, PersonAnalysis | str] = {}

    def analysis(p: Path):
        if p not in cache:
            try:
                cache[p] = analyse_person(p, size=size, name=p.name)
            except InputError as e:
                cache[p] = str(e)
        return cache[p]

    counts = {"written": 0, "skipped": 0, "failed": 0}
    for s in specs:
        dst = out_dir / f"{s.name}.npz"
        if dst.is_file():
            counts["skipped"] += 1
            continue
        a, b = analysis(s.source), analysis(s.target)
        if isinstance(a, str) or isinstance(b, str):
            log(f"skip {s.name}: {a if isinstance(a, str) else b}")
            counts["failed"] += 1
            continue
        arrays = make_item(s, a, b)
        with atomic_path(dst) as tmp, open(tmp, "wb") as f:
            np.savez_compressed(f, kind=np.array(s.kind), **arrays)
        counts["written"] += 1
    return counts


def build_items(specs: list[PairSpec], out_dir: Path, transfer, texture_only, size: int = 256,
                log=print) -> dict:  # fmt: skip
    """Run the warp-only pipeline on every pair and write ``out_dir/NAME.npz``
    (:func:`write_pair_items`).

    Args:
        specs: the pairs (:func:`real_training_pairs`).
        transfer, texture_only: ``f(source_analysis, target_analysis) -> TransferResult``
            (with and without the direct photo path; "self" items use ``texture_only``).
        size: working size (longer side); items are padded to ``size`` x ``size``.
    Returns counts {"written", "skipped", "failed"}.
    """

    def make(s: PairSpec, a, b) -> dict:
        item = item_from_transfer((texture_only if s.kind == "self" else transfer)(a, b), size)
        return {k.name: getattr(item, k.name) for k in fields(item)}

    return write_pair_items(specs, out_dir, make, size, log)


def _augment(arrs: dict, rng: np.random.Generator, crop: int) -> dict:
    """Flip, scale (0.5-1) and crop every spatial array alike; jitter the colours of the images alike."""
    if rng.random() < 0.5:  # a mirrored photo: the uv/colour maps still name the same surface points
        arrs = {k: (v if k == "texture" else v[:, ::-1]) for k, v in arrs.items()}
    H = arrs["target"].shape[0]
    s = rng.uniform(crop / H, 1.0) if crop < H else 1.0
    n = max(crop, int(round(H * s)))
    if n != H:
        lin = {"composite", "background", "target", "seen"}
        arrs = {k: (v if k == "texture" else cv2.resize(
            np.ascontiguousarray(v), (n, n), interpolation=cv2.INTER_AREA if k in lin else cv2.INTER_NEAREST))
            for k, v in arrs.items()}  # fmt: skip
    y, x = rng.integers(0, n - crop + 1, 2)
    arrs = {k: (v if k == "texture" else v[y : y + crop, x : x + crop]) for k, v in arrs.items()}
    gain = rng.uniform(0.85, 1.15, 3).astype(np.float32)
    bias = rng.uniform(-0.05, 0.05, 3).astype(np.float32)
    for k in ("composite", "background", "target", "texture"):
        arrs[k] = np.clip(arrs[k].astype(np.float32) / 255 * gain + bias, 0, 1)
    return arrs


class RerenderDataset(torch.utils.data.Dataset):
    """Stored items (``build_items``) as training tensors, with augmentation.

    Args:
        root: folder of ``.npz`` items; kinds: which kinds to keep (default all).
        crop: output side (pixels; random scale 0.5-1 then crop when < 256).
        augment: flips, scale/crop and colour jitter (off: centre, unscaled).
        names: keep only these item names (e.g. a train/validation split).
        synthetic: a second folder of items (kind ``synth``) mixed in so that a
            fraction ``synthetic_weight`` in [0, 1) of the items of an epoch are
            synthetic: every item of ``root`` once, plus
            ``round(n_root * w / (1 - w))`` synthetic slots that walk through the
            synthetic items from epoch to epoch.

    Items (dict of tensors): ``warped``, ``background``, ``target`` (3, c, c)
    float32 in [-1, 1]; ``uv`` (2, c, c) in [0, 1]; ``colour`` (3, c, c) in
    [0, 1]; ``mask`` (1, c, c) soft person mask in [0, 1]; ``face`` (1, c, c)
    {0, 1} head-part pixels; ``texture`` (3, 128, 128) in [-1, 1]; ``seen``
    (1, c, c) in [0, 1] when the items store it.

    Raises:
        InputError: no item in ``root`` (or in ``synthetic`` when its weight is
            above 0), or a weight outside [0, 1).
    """

    def __init__(self, root, kinds: tuple[str, ...] | None = None, crop: int = 256,
                 augment: bool = True, names: list[str] | None = None, seed: int = 0,
                 synthetic=None, synthetic_weight: float = 0.0):  # fmt: skip
        self.paths = sorted(Path(root).glob("*.npz"))
        if names is not None:
            keep = set(names)
            self.paths = [p for p in self.paths if p.stem in keep]
        if kinds is not None:
            self.paths = [p for p in self.paths if str(np.load(p)["kind"]) in kinds]
        if not self.paths:
            raise InputError(f"no re-renderer training items in {root}")
        if not 0.0 <= synthetic_weight < 1.0:
            raise InputError(f"synthetic_weight must be in [0, 1), got {synthetic_weight}")
        self.synthetic_paths = sorted(Path(synthetic).glob("*.npz")) if synthetic and synthetic_weight > 0 else []
        if synthetic_weight > 0 and not self.synthetic_paths:
            raise InputError(f"no synthetic re-renderer items in {synthetic}")
        w = synthetic_weight if self.synthetic_paths else 0.0
        self.synthetic_slots = int(round(len(self.paths) * w / (1 - w)))
        self.crop, self.augment, self.seed, self.epoch = crop, augment, seed, 0
        self._cache: dict[Path, dict] = {}

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.paths) + self.synthetic_slots

    def path(self, i: int) -> Path:
        """The item file behind index ``i`` in the current epoch."""
        n = len(self.paths)
        if i < n:
            return self.paths[i]
        return self.synthetic_paths[(i - n + self.epoch * self.synthetic_slots) % len(self.synthetic_paths)]

    def _load(self, i: int) -> dict:
        p = self.path(i)
        if p not in self._cache:
            with np.load(p) as z:
                self._cache[p] = {f.name: z[f.name] for f in fields(RerenderItem) if f.name in z.files}
        return self._cache[p]

    def __getitem__(self, i: int) -> dict:
        a = dict(self._load(i))
        rng = np.random.default_rng((self.seed, self.epoch, i))
        if self.augment:
            a = _augment(a, rng, self.crop)
        else:
            for k in ("composite", "background", "target", "texture"):
                a[k] = a[k].astype(np.float32) / 255

        def t(x):
            return torch.from_numpy(np.ascontiguousarray(x.transpose(2, 0, 1) if x.ndim == 3 else x[None]))

        mask = soft_mask(a["mask"] > 0)
        face = np.isin(a["part"], FACE_PARTS).astype(np.float32)
        out = {"warped": t(a["composite"]) * 2 - 1, "background": t(a["background"]) * 2 - 1,
                "target": t(a["target"]) * 2 - 1, "uv": t(a["uv"].astype(np.float32) / 65535),
                "colour": t(a["colour"].astype(np.float32) / 255), "mask": t(mask), "face": t(face),
                "texture": t(a["texture"]) * 2 - 1}  # fmt: skip
        if "seen" in a:
            out["seen"] = t(a["seen"].astype(np.float32) / 255)
        return out
