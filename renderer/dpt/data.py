"""Training pairs of Dense Pose Transfer: real photos first, synthetic pairs beside them.

Each item is two photos of one person, the source (appearance) and the target
(pose and truth), with reroute's IUV of each (the fit's correspondences, frozen:
the paper keeps DensePose frozen too):

* ``cross``: DeepFashion ``pg2_pairs`` 000-079 (by sorted name), both directions;
* ``video``: two frames of one video (``video/ubc_fashion_1``, ``video/taichi_1``
  frames 0-199, the iPER pair), as listed by :func:`renderer.data.real_training_pairs`;
* ``synthetic``: two views (different pose and yaw) of one synthetic person of
  :class:`reroute.synth.engine.SyntheticEngine`, with its exact IUV.

Self-reconstruction pairs are left out: with source = target the predictive
stream learns to copy its input. Held out, never read: ``pg2_pairs`` 080-099, the
18 dev pairs and ``video/taichi_1`` frames 200-323 (as for the re-renderer).

``python -m renderer.dpt.data --out DIR [--synthetic N]`` analyses every photo once
(:func:`reroute.correspondence.analyse.analyse_person`, 256 px) and writes one
``NAME.npz`` per pair (:class:`DPTItem` fields, padded bottom/right to 256 x 256);
:class:`DPTDataset` reads them.
"""

from __future__ import annotations

import argparse
import json
import os
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np
import torch
from torch.nn import functional as F

from renderer.data import (
    PairSpec,
    flat_background,
    real_training_pairs,
    synthetic_two_view_samples,
    write_pair_items,
)
from reroute.body.detect import coco18_keypoints
from reroute.errors import InputError
from reroute.io.files import atomic_path

__all__ = ["DPTItem", "DPTDataset", "dpt_training_pairs", "build_items", "item_tensors", "main"]

#: side items are padded to (pixels)
SIDE = 256


@dataclass
class DPTItem:
    """One stored pair, at the working size padded to (H, W) = (256, 256).

    Attributes:
        source, target: (H, W, 3) uint8 RGB photos.
        source_iuv, target_iuv: (H, W, 3) uint8 DensePose IUV (I in 0..24, U and V
            scaled by 255; 0 on background), reroute's correspondences.
        source_mask, target_mask: (H, W) uint8 {0, 1} person masks.
        source_keypoints, target_keypoints: (18, 3) float32 OpenPose COCO-18
            keypoints (x, y pixels, confidence in [0, 1];
            :func:`reroute.body.detect.coco18_keypoints`): BlazePose's landmarks and
            visibility on photos; the engine's keypoints on synthetic people
            (confidence 1 visible, 0.5 occluded, 0 outside the image). None in
            items built before keypoints were stored.
    """

    source: np.ndarray
    target: np.ndarray
    source_iuv: np.ndarray
    target_iuv: np.ndarray
    source_mask: np.ndarray
    target_mask: np.ndarray
    source_keypoints: np.ndarray | None = None
    target_keypoints: np.ndarray | None = None


def dpt_training_pairs(root: Path) -> list[PairSpec]:
    """The real pairs of two different photos (``cross`` and ``video``) under ``root``."""
    return [s for s in real_training_pairs(root) if s.kind != "self"]


def _pad(a: np.ndarray, side: int = SIDE, mode: str = "constant") -> np.ndarray:
    ph, pw = side - a.shape[0], side - a.shape[1]
    if ph < 0 or pw < 0:
        raise ValueError(f"array {a.shape[:2]} is larger than {side} px")
    return np.pad(a, [(0, ph), (0, pw)] + [(0, 0)] * (a.ndim - 2), mode=mode)


def _view(image: np.ndarray, corr, keypoints: np.ndarray) -> tuple:
    """(image, IUV, mask, keypoints) of one view, padded bottom/right to 256 (keypoints unmoved)."""
    return (_pad(image, mode="edge"), _pad(corr.to_iuv()), _pad(corr.mask.astype(np.uint8)),
            np.asarray(keypoints, np.float32))  # fmt: skip


def _pair(src_view, tgt_view) -> tuple:
    """Two (image, IUV, mask, keypoints) views in :class:`DPTItem` field order."""
    return tuple(v[k] for k in range(4) for v in (src_view, tgt_view))


def _photo_view(a) -> tuple:
    """The view of a :class:`~reroute.correspondence.analyse.PersonAnalysis`."""
    return _view(a.image, a.correspondence, coco18_keypoints(a.observation.landmarks, a.observation.visibility))


def _synthetic_view(sample, background: np.ndarray) -> tuple:
    """The view of a synthetic sample over a flat background colour (3,) uint8."""
    kp = sample.keypoints_blazepose
    return _view(flat_background(sample, background), sample.correspondence, coco18_keypoints(kp[:, :2], kp[:, 2] / 2))


def _write(dst: Path, kind: str, src_view, tgt_view) -> None:
    item = DPTItem(*_pair(src_view, tgt_view))
    with atomic_path(dst) as tmp, open(tmp, "wb") as f:
        np.savez_compressed(f, kind=np.array(kind), **{k.name: getattr(item, k.name) for k in fields(item)})


def build_items(specs: list[PairSpec], out_dir: Path, log=print) -> dict:
    """Analyse each photo once (256 px) and write ``out_dir/NAME.npz`` per pair (kept if
    present; :func:`renderer.data.write_pair_items`). Returns counts
    ``{"written", "skipped", "failed"}``."""

    def make(s: PairSpec, a, b) -> dict:
        item = DPTItem(*_pair(_photo_view(a), _photo_view(b)))
        return {k.name: getattr(item, k.name) for k in fields(item)}

    return write_pair_items(specs, out_dir, make, SIDE, log)


def build_synthetic(n: int, out_dir: Path, seed: int = 0) -> int:
    """Write ``n`` synthetic pairs ``synth-XXXX.npz`` (views 0 and 1 of identity i; exact IUV).

    Both views are put on one flat light background (a grey in 200..255 per pair,
    as DeepFashion's studio backgrounds): the engine draws a different background
    per view, which no network could predict from the source.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    written = 0
    for i, a, b, grey in synthetic_two_view_samples(n, SIDE, seed):
        dst = out_dir / f"synth-{i:04d}.npz"
        if dst.is_file():
            continue
        _write(dst, "synthetic", _synthetic_view(a, grey), _synthetic_view(b, grey))
        written += 1
    return written


def item_tensors(z) -> dict[str, torch.Tensor]:
    """A stored item (mapping of :class:`DPTItem` fields) as network tensors.

    Returns ``source``, ``target`` (3, H, W) float32 in [-1, 1];
    ``source_iuv``, ``target_iuv`` (3, H, W) float32: I / 24, U, V in [0, 1];
    ``source_mask``, ``target_mask`` (1, H, W) float32 {0, 1};
    ``source_keypoints``, ``target_keypoints`` (18, 3) float32 when the item has them.
    """

    def chw(a):
        return torch.from_numpy(np.ascontiguousarray(a.transpose(2, 0, 1))).float()

    out = {}
    for v in ("source", "target"):
        out[v] = chw(z[v]) / 127.5 - 1
        iuv = chw(z[f"{v}_iuv"])
        out[f"{v}_iuv"] = torch.cat([iuv[:1] / 24, iuv[1:] / 255])
        out[f"{v}_mask"] = torch.from_numpy(np.ascontiguousarray(z[f"{v}_mask"])).float()[None]
        if z.get(f"{v}_keypoints") is not None:
            out[f"{v}_keypoints"] = torch.from_numpy(np.asarray(z[f"{v}_keypoints"], np.float32))
    return out


def _resized(key: str, t: torch.Tensor, size: int) -> torch.Tensor:
    """One item tensor at ``size`` x ``size``: photos area-resized, IUV and masks nearest,
    keypoint pixel centres scaled."""
    if key.endswith("_keypoints"):
        s = size / SIDE
        return torch.cat([(t[:, :2] + 0.5) * s - 0.5, t[:, 2:]], 1)
    mode = "area" if key in ("source", "target") else "nearest"
    return F.interpolate(t[None], size=(size, size), mode=mode)[0]


class DPTDataset(torch.utils.data.Dataset):
    """Stored pairs (:func:`build_items`, :func:`build_synthetic`) as tensors (:func:`item_tensors`).

    Args:
        root: folder of ``.npz`` items.
        kinds: keep only these kinds ("cross", "video", "synthetic"); default all.
        size: output side (pixels); items are area-resized from 256 (IUV and
            masks nearest) when smaller.
        augment: colour jitter of both photos alike (gain 0.85-1.15, bias +-0.05).
        swap: also serve each pair reversed (target -> source) as a second item.
    """

    def __init__(self, root, kinds: tuple[str, ...] | None = None, size: int = SIDE,
                 augment: bool = True, swap: bool = False, seed: int = 0):  # fmt: skip
        paths = sorted(Path(root).glob("*.npz"))
        if kinds is not None:
            paths = [p for p in paths if str(np.load(p)["kind"]) in kinds]
        if not paths:
            raise InputError(f"no Dense Pose Transfer training items in {root}")
        self.paths, self.size, self.augment, self.swap = paths, int(size), augment, swap
        self.seed, self.epoch = seed, 0
        self._cache: dict[int, dict] = {}

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.paths) * (2 if self.swap else 1)

    def _load(self, i: int) -> dict:
        if i not in self._cache:
            with np.load(self.paths[i]) as z:
                self._cache[i] = item_tensors({f.name: z[f.name] for f in fields(DPTItem) if f.name in z})
        return self._cache[i]

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        n = len(self.paths)
        t = dict(self._load(i % n))
        if i >= n:  # reversed pair
            t = {k.replace("source", "@").replace("target", "source").replace("@", "target"): v
                 for k, v in t.items()}  # fmt: skip
        if self.size != t["source"].shape[-1]:
            t = {k: _resized(k, v, self.size) for k, v in t.items()}
        if self.augment:
            g = torch.Generator().manual_seed(hash((self.seed, self.epoch, i)) % 2**31)
            gain = torch.empty(3, 1, 1).uniform_(0.85, 1.15, generator=g)
            bias = torch.empty(3, 1, 1).uniform_(-0.1, 0.1, generator=g)
            for k in ("source", "target"):
                t[k] = ((t[k] + 1) * gain - 1 + bias).clamp(-1, 1)
        return t


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m renderer.dpt.data", description=__doc__.split("\n")[0])
    p.add_argument("--out", required=True)
    p.add_argument("--root", default=os.environ.get("REROUTE_SHARED_DATA", "../shared/data"))
    p.add_argument("--synthetic", type=int, default=0, help="synthetic pairs to add")
    p.add_argument("--limit", type=int, help="only the first N real pairs")
    a = p.parse_args(argv)
    specs = dpt_training_pairs(Path(a.root))[: a.limit]
    counts = build_items(specs, Path(a.out))
    counts["synthetic"] = build_synthetic(a.synthetic, Path(a.out)) if a.synthetic else 0
    print(json.dumps(counts))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
