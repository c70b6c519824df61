"""Prepared BodyMap training sets: the real template fit as the initialisation.

The on-the-fly stream of :mod:`reroute.correspondence.bodymap.data` imitates the
fit's errors by perturbing the true body; its errors are larger than the fit's at
20 px and smaller at 5 px (``benchmarks/bodymap_init_error.py``), so a network
trained on it learns corrections the real fit does not need. A prepared set runs
the photo pipeline's fit once per image and stores the result:

* ``synthetic``: renders of :class:`reroute.synth.engine.SyntheticEngine` (training
  identities, BodyMap's upper-body framings and extra people) with
  :func:`reroute.correspondence.analyse.analyse_person`'s correspondences as
  ``init``; targets are the render's exact colour code, part, vertex and silhouette
  (images where the fit finds no person, or several, are left out and counted);
* ``video``: real frames with DensePose R-CNN's ``_IUV.png`` (BodyMap sec. 3.6: a
  part-label term on real data). Their ``part`` is DensePose's part index,
  ``mask`` its foreground; they have no colour or vertex target (``vertex`` = -1,
  ``colour`` = 0, ``real`` = 1), so only the part and silhouette terms see them.

A set is one ``torch.save`` file of stacked tensors (``image`` uint8 (N, 3, H, W),
``init`` float16 (N, 4, H, W), ``colour`` uint8 (N, 3, H, W), ``mask`` uint8
(N, 1, H, W), ``part`` uint8 (N, H, W), ``vertex`` int32 (N, H, W), ``real`` uint8 (N,))
and a ``meta`` dict (what was run on which images), read back with
``weights_only=True``.

    python -m reroute.correspondence.bodymap.prepared synthetic --count 800 --seed 0 --out runs/bm/synth.pt
    python -m reroute.correspondence.bodymap.prepared video --video ../shared/data/video/taichi_1 \\
        --last 199 --step 2 --out runs/bm/taichi.pt
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import torch

from reroute.correspondence.bodymap.data import (
    Augment,
    augment_sample,
    default_synth_config,
    sample_tensors,
)
from reroute.correspondence.bodymap.network import init_tensor
from reroute.errors import InputError

__all__ = ["prepare_synthetic", "prepare_video", "video_frames", "PreparedDataset", "main"]

#: stored dtype of each field (converted back by :class:`PreparedDataset`)
_STORED = {"image": torch.uint8, "init": torch.float16, "colour": torch.uint8, "mask": torch.uint8,
           "part": torch.uint8, "vertex": torch.int32, "real": torch.uint8}  # fmt: skip


def _stack(items: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    return {k: torch.stack([it[k] for it in items]).to(dt) for k, dt in _STORED.items()}


def prepare_synthetic(count: int, seed: int = 0, size: int = 256, progress: bool = True) -> dict:
    """``count`` training renders with the real fit as ``init`` (see the module docstring).

    Returns the set: stacked tensors plus ``meta`` (``seed``, ``size``, ``tried``,
    ``kept``, ``skipped`` with reasons counted, ``wall_s``). Render ``i`` is view
    ``i % views_per_identity`` of identity ``i // views_per_identity`` of engine ``seed``.
    Raises ``InputError`` when the fit finds no single person in any render.
    """
    # the photo pipeline (mediapipe, the fit) and the engine load only when a set is prepared, not to train
    from reroute.correspondence.analyse import analyse_person
    from reroute.synth.engine import SyntheticEngine

    config = default_synth_config(size)
    engine, k = SyntheticEngine(config, seed=seed), config.views_per_identity
    items, skipped, t0 = [], {}, time.perf_counter()
    for i in range(count):
        s = engine.sample(i // k, i % k)
        try:
            corr = analyse_person(s.image, size=size, name=f"render {i}").correspondence
        except InputError as e:
            reason = str(e).replace(f"render {i}", "render")[:80]
            skipped[reason] = skipped.get(reason, 0) + 1
            continue
        t = sample_tensors(s, corr)
        # stored as the render's own uint8 pixels (sample_tensors scales them to [-1, 1])
        t["image"] = torch.from_numpy(np.ascontiguousarray(s.image.transpose(2, 0, 1)))
        t["real"] = torch.tensor(0)
        items.append(t)
        if progress and (i + 1) % 50 == 0:
            print(
                f"synthetic {i + 1}/{count}: kept {len(items)} ({time.perf_counter() - t0:.0f} s)",
                file=sys.stderr,
            )
    meta = {"kind": "synthetic", "seed": seed, "size": size, "tried": count, "kept": len(items),
            "skipped": skipped, "wall_s": round(time.perf_counter() - t0, 1)}  # fmt: skip
    if not items:
        raise InputError(f"every image was skipped: {skipped}")
    return {**_stack(items), "meta": meta}


def video_frames(video: Path, first: int = 0, last: int | None = None, step: int = 1) -> list[Path]:
    """``frameNNNN.png`` files of ``video`` that have a ``frameNNNN_IUV.png``, numbered in
    ``[first, last]`` (inclusive), every ``step``-th of them, in order."""
    frames = sorted(p for p in Path(video).glob("frame*.png") if not p.stem.endswith("_IUV"))
    frames = [p for p in frames if (p.parent / f"{p.stem}_IUV.png").exists()]
    frames = [
        p for p in frames if int(p.stem[5:]) >= first and (last is None or int(p.stem[5:]) <= last)
    ]
    return frames[::step]


def prepare_video(frames: list[Path], progress: bool = True) -> dict:
    """Real ``frames`` (square, any side) with DensePose's part labels (see the module docstring).

    The ``_IUV.png`` is read with OpenCV (channels I, U, V; I in 0..24, 0 background).
    Returns the set with ``meta`` (``frames`` used, ``skipped`` with reasons, ``wall_s``).
    Raises ``InputError`` when a frame is not square, its ``_IUV.png`` is another size,
    or no frame has a person.
    """
    # the photo pipeline (mediapipe, the fit) loads only when a set is prepared, not to train
    from reroute.correspondence.analyse import analyse_person
    from reroute.io.images import load_image

    items, used, skipped, t0 = [], [], {}, time.perf_counter()
    for n, p in enumerate(frames):
        image = load_image(p, name=p.name).pixels
        if image.shape[0] != image.shape[1]:
            raise InputError(
                f"{p.name}: expected a square frame, got {image.shape[1]}x{image.shape[0]}"
            )
        try:
            corr = analyse_person(image, size=None, name=p.name).correspondence
        except InputError as e:
            skipped[p.name] = str(e)[:80]
            continue
        part = cv2.imread(str(p.parent / f"{p.stem}_IUV.png"))[..., 0].astype(np.int64)
        H, W = part.shape
        if (H, W) != image.shape[:2]:
            raise InputError(f"{p.stem}_IUV.png is {W}x{H}, its frame {image.shape[1]}x{image.shape[0]}")
        items.append({"image": torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1))),
                      "init": init_tensor(corr)[0], "colour": torch.zeros(3, H, W),
                      "mask": torch.from_numpy((part > 0).astype(np.uint8))[None],
                      "part": torch.from_numpy(part), "vertex": torch.full((H, W), -1),
                      "real": torch.tensor(1)})  # fmt: skip
        used.append(p.stem)
        if progress and (n + 1) % 25 == 0:
            print(
                f"video {n + 1}/{len(frames)} ({time.perf_counter() - t0:.0f} s)", file=sys.stderr
            )
    meta = {"kind": "video", "video": frames[0].parent.name if frames else "", "frames": used,
            "skipped": skipped, "wall_s": round(time.perf_counter() - t0, 1)}  # fmt: skip
    if not items:
        raise InputError(f"every image was skipped: {skipped}")
    return {**_stack(items), "meta": meta}


class PreparedDataset(torch.utils.data.Dataset):
    """Prepared sets as training samples (the tensors of
    :func:`reroute.correspondence.bodymap.data.sample_tensors`, plus ``real`` () float32).

    Args:
        paths: files written by :func:`main` (``torch.save``; read with ``weights_only=True``).
        augment: :class:`Augment` applied to every sample (different each epoch; the seed
            is ``(seed, index, epoch)``), or ``None``.
        repeat_real: each real (video) frame counts this many times per epoch (the sets
            are smaller than the synthetic ones).
        seed: seeds the augmentation.
    Raises:
        InputError: a file is missing or not a prepared set.
    """

    def __init__(
        self, paths: list, augment: Augment | None = None, repeat_real: int = 1, seed: int = 0
    ):
        self.sets, self.meta = [], []
        for p in paths:
            try:
                d = torch.load(p, map_location="cpu", weights_only=True)
            except (OSError, RuntimeError, EOFError) as e:
                raise InputError(f"{p}: not a prepared BodyMap set ({e.__class__.__name__})") from e
            if not isinstance(d, dict) or set(_STORED) - set(d):
                raise InputError(
                    f"{p}: not a prepared BodyMap set (fields {sorted(_STORED)} expected)"
                )
            self.sets.append(d)
            self.meta.append(d.get("meta", {}))
        self.index = [(s, i) for s, d in enumerate(self.sets) for i in range(len(d["real"]))
                      for _ in range(repeat_real if int(d["real"][i]) else 1)]  # fmt: skip
        self.augment, self.seed, self.epoch = augment, seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, n: int) -> dict[str, torch.Tensor]:
        s, i = self.index[n]
        d = self.sets[s]
        t = {"image": d["image"][i].float() / 127.5 - 1, "init": d["init"][i].float(),
             "colour": d["colour"][i].long(), "mask": d["mask"][i].float(), "part": d["part"][i].long(),
             "vertex": d["vertex"][i].long()}  # fmt: skip
        if self.augment is not None:
            t = augment_sample(
                t, self.augment, np.random.default_rng([self.seed, n, self.epoch, 11])
            )
        t["real"] = d["real"][i].float()
        return t


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m reroute.correspondence.bodymap.prepared",
                                description=__doc__.split("\n")[0])  # fmt: skip
    sub = p.add_subparsers(dest="kind", required=True)
    s = sub.add_parser("synthetic", help="training renders with the real fit as init")
    s.add_argument("--count", type=int, required=True)
    s.add_argument("--seed", type=int, default=0, help="engine seed (held-out sets use 1000)")
    s.add_argument("--size", type=int, default=256)
    v = sub.add_parser("video", help="real frames with DensePose part labels")
    v.add_argument("--video", required=True, help="folder of frameNNNN.png with frameNNNN_IUV.png")
    v.add_argument("--first", type=int, default=0)
    v.add_argument("--last", type=int, help="last frame number used (inclusive)")
    v.add_argument("--step", type=int, default=1)
    for q in (s, v):
        q.add_argument("--out", required=True)
    a = p.parse_args(argv)
    try:
        if a.kind == "synthetic":
            d = prepare_synthetic(a.count, a.seed, a.size)
        else:
            frames = video_frames(Path(a.video), a.first, a.last, a.step)
            if not frames:
                raise InputError(f"{a.video}: no frameNNNN.png with an _IUV.png in the range given")
            d = prepare_video(frames)
    except InputError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    torch.save(d, a.out)
    print({k: v for k, v in d["meta"].items() if k != "frames"})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
