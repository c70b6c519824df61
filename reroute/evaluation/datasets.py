"""Pose-transfer test pairs: DeepFashion In-shop, MVC and plain folders.

Every reader returns a :class:`PairList` of :class:`PosePair` in a fixed,
documented order, resolving image files on disk but never loading them; pairs
whose images are absent keep ``None`` paths so that evaluation can count and
log them instead of failing. The same readers serve synthetic sets written in
these layouts (see the tests).

**DeepFashion, Deformable-GAN / PATN split** (``fashion-pairs-test.csv``,
8,570 pairs; PATN's ``fasion-resize-pairs-test.csv`` is the same list): a CSV
with columns ``from,to`` of flat file names such as
``fashionWOMENDressesid0000262902_3back.jpg``. Keypoints come from the
annotation CSV (``name:keypoints_y:keypoints_x``, ``:``-separated, 18 OpenPose
keypoints, -1 missing) in 256x256 pixel coordinates; PATN's
``fasion-resize-annotation-*.csv`` holds x - 40 (the 256x176 crop): pass
``annotation_x_offset=40`` for those. Images are looked up by file stem (any
of .jpg/.png) under ``root/images``, ``root/test``, ``root/img`` or ``root``.

**DeepFashion, GFLA / NTED / PIDM variant** (``test_pairs.txt``): one line per
pair, ``target,source[,source...]`` (the target comes first), paths in the
original In-shop tree such as ``img/WOMEN/Dresses/id_00002629/02_3_back.jpg``;
the first source is used. Keypoints, when present, are in ``pose/...txt``
beside ``img/`` (18 rows ``x y`` in 256x256 coordinates). Images are found at
their tree path (``.jpg`` or ``.png``) or by their flat Deformable-GAN name.
The 512x352 high-resolution track uses the same lists with larger images.

**MVC** (Liu et al., SIGIR 2016): four views per item. No public pose-transfer
pair list exists, so reroute defines one, following Dense Pose Transfer's
setup (256x256 images, 1,000 test items): images are
``root/<item>/<view>.<jpg|png>`` with view in ``front, back, left, right``;
items having all four views are sorted by name, permuted by
``numpy.random.default_rng(seed)`` (seed 0 by default) and the first
``n_test`` (1,000) form the test split; the pairs are all 12 ordered view
pairs of each test item, items in permuted order, views in the order above.
:func:`write_pairs_csv` saves the list for other tools.

**Folder**: ``--pairs`` is a CSV ``from,to`` of paths relative to ``root``;
without it, ``root/source/<name>`` is paired with ``root/target/<name>``.
Optional keypoints: an annotation CSV as for DeepFashion.
"""

from __future__ import annotations

import csv
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from reroute.errors import InputError
from reroute.io.files import write_text_atomic

__all__ = [
    "PosePair",
    "PairList",
    "IMAGE_EXTS",
    "MVC_VIEWS",
    "read_deepfashion",
    "read_mvc",
    "read_folder",
    "read_annotations",
    "deepfashion_flat_name",
    "mvc_split",
    "write_pairs_csv",
    "fit_to_size",
    "transform_keypoints",
]

IMAGE_EXTS = (".jpg", ".jpeg", ".png", ".bmp", ".webp")
MVC_VIEWS = ("front", "back", "left", "right")
_SAFE = re.compile(r"[^A-Za-z0-9_.-]+")


@dataclass(frozen=True)
class PosePair:
    """One source -> target pair.

    Attributes:
        pair_id: stable, filesystem-safe id, ``<source stem>___<target stem>``.
        source_name, target_name: the names as written in the pair list.
        source, target: resolved image paths, or None when the file is absent.
        source_keypoints, target_keypoints: ``(18, 2)`` float (y, x) OpenPose-18
            keypoints in the image's own pixel coordinates (-1 = missing), or None.
    """

    pair_id: str
    source_name: str
    target_name: str
    source: Path | None
    target: Path | None
    source_keypoints: np.ndarray | None = field(default=None, compare=False, repr=False)
    target_keypoints: np.ndarray | None = field(default=None, compare=False, repr=False)

    @property
    def missing(self) -> list[str]:
        """Names of the absent images (empty when both exist)."""
        return [n for n, p in ((self.source_name, self.source), (self.target_name, self.target))
                if p is None]  # fmt: skip


@dataclass
class PairList:
    """Pairs of a test split, in evaluation order.

    Attributes:
        pairs: the :class:`PosePair` list.
        dataset: ``deepfashion``, ``mvc`` or ``folder``.
        protocol: one sentence saying which split / list this is.
        pairs_file: the list read (or written, for MVC), if any.
        default_size: (H, W) the protocol evaluates at.
    """

    pairs: list[PosePair]
    dataset: str
    protocol: str
    pairs_file: str | None
    default_size: tuple[int, int]

    def __len__(self) -> int:
        return len(self.pairs)


def _pair_id(src: str, tgt: str) -> str:
    s = _SAFE.sub("_", Path(src).stem)
    t = _SAFE.sub("_", Path(tgt).stem)
    return f"{s}___{t}"


def _index_images(dirs: list[Path]) -> dict[str, Path]:
    """Map file stem -> path for the images directly inside ``dirs`` (first dir wins)."""
    index: dict[str, Path] = {}
    for d in dirs:
        if not d.is_dir():
            continue
        with os.scandir(d) as it:
            for e in sorted(it, key=lambda e: e.name):
                if e.is_file() and Path(e.name).suffix.lower() in IMAGE_EXTS:
                    index.setdefault(Path(e.name).stem, Path(e.path))
    return index


def _check_root(root) -> Path:
    r = Path(root)
    if not r.is_dir():
        raise InputError(f"dataset root {root} is not a directory")
    return r


def _check_file(path, what: str) -> Path:
    p = Path(path)
    if not p.is_file():
        raise InputError(f"{what} {path} not found")
    return p


def read_annotations(path, *, x_offset: float = 0.0) -> dict[str, np.ndarray]:
    """Read a Deformable-GAN annotation CSV (``name:keypoints_y:keypoints_x``).

    Args:
        path: the ``:``-separated file; each row's keypoint fields are JSON lists of 18 ints.
        x_offset: added to every present x (40 turns PATN's ``fasion-resize``
            256x176 coordinates back into 256x256 ones).
    Returns:
        dict file stem -> ``(18, 2)`` float64 (y, x), -1 for missing joints.
    Raises:
        InputError: the file is missing or a row is malformed.
    """
    p = _check_file(path, "annotation file")
    out: dict[str, np.ndarray] = {}
    with open(p, newline="") as f:
        header = f.readline().strip()
        if header.replace(" ", "") != "name:keypoints_y:keypoints_x":
            raise InputError(
                f"{path}: expected the header name:keypoints_y:keypoints_x, got {header!r}"
            )
        for n, line in enumerate(f, start=2):
            line = line.strip()
            if not line:
                continue
            try:
                name, ys, xs = line.split(":")
                y = np.asarray(json.loads(ys), dtype=np.float64)
                x = np.asarray(json.loads(xs), dtype=np.float64)
                if y.shape != (18,) or x.shape != (18,):
                    raise ValueError("need 18 keypoints")
            except ValueError as e:
                raise InputError(f"{path} line {n} is not 'name: [18 y]: [18 x]' ({e})") from e
            missing = (y == -1) | (x == -1)
            x = np.where(missing, -1.0, x + x_offset)
            y = np.where(missing, -1.0, y)
            out[Path(name.strip()).stem] = np.stack([y, x], axis=1)
    return out


def _read_from_to(path: Path) -> list[tuple[str, str]]:
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    if not rows:
        raise InputError(f"pair list {path} is empty")
    head = [c.strip().lower() for c in rows[0]]
    if head[:2] != ["from", "to"]:
        raise InputError(f"pair list {path}: expected a CSV with header from,to, got {rows[0]!r}")
    out = []
    for n, r in enumerate(rows[1:], start=2):
        if not r or not "".join(r).strip():
            continue
        if len(r) < 2:
            raise InputError(f"pair list {path} line {n}: expected 'from,to', got {r!r}")
        out.append((r[0].strip(), r[1].strip()))
    return out


def deepfashion_flat_name(tree_path: str) -> str:
    """In-shop tree path -> Deformable-GAN flat name.

    ``img/WOMEN/Blouses_Shirts/id_00000337/03_3_back.jpg`` ->
    ``fashionWOMENBlouses_Shirtsid0000033703_3back.jpg`` (NTED/PIDM ``path_to_fashion_name``).
    """
    p = tree_path.replace("\\", "/").split("img/")[-1]
    parts = ["fashion"] + p.split("/")
    if len(parts) != 5:
        raise InputError(
            f"{tree_path!r} is not an In-shop path like img/WOMEN/Dresses/id_00000001/01_1_front.jpg"
        )
    parts[3] = parts[3].replace("_", "")
    head, *rest = parts[4].split("_")
    parts[4] = head + "_" + "".join(rest)
    return "".join(parts)


def _read_test_pairs_txt(path: Path) -> list[tuple[str, str]]:
    out = []
    with open(path) as f:
        for n, line in enumerate(f, start=1):
            line = line.strip()
            if not line:
                continue
            items = [s.strip() for s in line.split(",")]
            if len(items) < 2:
                raise InputError(
                    f"{path} line {n}: expected 'target,source[,source...]', got {line!r}"
                )
            out.append((items[1], items[0]))  # (source, target)
    return out


def _read_pose_txt(path: Path) -> np.ndarray | None:
    if not path.is_file():
        return None
    a = np.loadtxt(path, dtype=np.float64)
    a = np.atleast_2d(a)[:, :2]
    if a.shape != (18, 2):
        return None
    missing = (a == -1).any(axis=1)
    yx = a[:, ::-1].copy()
    yx[missing] = -1
    return yx


def read_deepfashion(
    root, pairs_file, *, annotation=None, annotation_x_offset: float = 0.0
) -> PairList:
    """DeepFashion In-shop pose-transfer pairs (either list format, detected from the file).

    Args:
        root: the dataset folder (images in ``root/images``, ``root/test``,
            ``root/img`` or ``root`` itself, or the In-shop tree for ``test_pairs.txt``).
        pairs_file: ``fashion-pairs-test.csv`` / ``fasion-resize-pairs-test.csv``
            (``from,to``), or a GFLA/NTED/PIDM ``test_pairs.txt``; a relative
            path is tried under ``root`` too.
        annotation: keypoint CSV; by default ``fasion-annotation-test.csv`` or
            ``annotation.csv`` in ``root`` when present (256x256 coordinates).
        annotation_x_offset: see :func:`read_annotations`.
    Returns:
        :class:`PairList` (default size 256x176, the PATN / GFLA protocol).
    Raises:
        InputError: missing root or list, malformed list or annotation file.
    """
    root = _check_root(root)
    pf = Path(pairs_file)
    if not pf.is_file() and (root / pf).is_file():
        pf = root / pf
    pf = _check_file(pf, "pair list")
    with open(pf) as f:
        first = f.readline().strip().lower()
    tree = not first.startswith("from,")
    raw = _read_test_pairs_txt(pf) if tree else _read_from_to(pf)
    index = _index_images([root / "images", root / "test", root / "img", root])
    kps: dict[str, np.ndarray] = {}
    if annotation is not None:
        kps = read_annotations(annotation, x_offset=annotation_x_offset)
    else:
        for cand in ("fasion-annotation-test.csv", "fashion-annotation-test.csv", "annotation.csv"):
            if (root / cand).is_file():
                kps = read_annotations(root / cand)
                break

    def resolve(name: str) -> tuple[Path | None, np.ndarray | None, str]:
        if tree:
            rel = Path(name)
            for ext in ("", ".png", ".jpg"):
                cand = root / (rel.with_suffix(ext) if ext else rel)
                if cand.is_file():
                    break
            else:
                cand = None
            flat = deepfashion_flat_name(name)
            if cand is None:
                cand = index.get(Path(flat).stem)
            pose = root / str(rel.with_suffix(".txt")).replace("img/", "pose/", 1)
            kp = _read_pose_txt(pose)
            if kp is None:
                kp = kps.get(Path(flat).stem)
            return cand, kp, flat
        stem = Path(name).stem
        return index.get(stem), kps.get(stem), name

    pairs = []
    for s, t in raw:
        sp, skp, sflat = resolve(s)
        tp, tkp, tflat = resolve(t)
        pairs.append(PosePair(_pair_id(sflat, tflat), s, t, sp, tp, skp, tkp))
    proto = ("DeepFashion In-shop, GFLA/NTED/PIDM test_pairs.txt" if tree
             else "DeepFashion In-shop, Deformable-GAN/PATN from,to pair list")  # fmt: skip
    return PairList(
        pairs, "deepfashion", f"{proto} ({pf.name}, {len(pairs)} pairs)", str(pf), (256, 176)
    )


def mvc_split(items: list[str], *, seed: int = 0, n_test: int = 1000) -> list[str]:
    """The test items of reroute's MVC protocol: sorted, permuted by ``default_rng(seed)``, first ``n_test``."""
    items = sorted(items)
    perm = np.random.default_rng(seed).permutation(len(items))
    return [items[i] for i in perm[:n_test]]


def read_mvc(root, pairs_file=None, *, seed: int = 0, n_test: int = 1000) -> PairList:
    """MVC four-view pairs (reroute's protocol, see the module docstring).

    Args:
        root: folder of ``<item>/<view>.<jpg|png>``.
        pairs_file: an explicit ``from,to`` CSV of paths relative to ``root``
            (e.g. one written by :func:`write_pairs_csv`); None builds the split.
        seed, n_test: the split's seed and number of test items.
    Returns:
        :class:`PairList` (default size 256x256), no keypoints.
    """
    root = _check_root(root)
    if pairs_file is not None:
        pl = read_folder(root, pairs_file)
        pl.dataset, pl.default_size = "mvc", (256, 256)
        pl.protocol = f"MVC, explicit pair list ({Path(pairs_file).name}, {len(pl)} pairs)"
        return pl
    items = {}
    for d in sorted(p for p in root.iterdir() if p.is_dir()):
        idx = _index_images([d])
        if all(v in idx for v in MVC_VIEWS):
            items[d.name] = idx
    test = mvc_split(list(items), seed=seed, n_test=n_test)
    pairs = []
    for it in test:
        for a in MVC_VIEWS:
            for b in MVC_VIEWS:
                if a != b:
                    sp, tp = items[it][a], items[it][b]
                    pairs.append(PosePair(_pair_id(f"{it}_{a}", f"{it}_{b}"), f"{it}/{sp.name}",
                                          f"{it}/{tp.name}", sp, tp))  # fmt: skip
    proto = (f"MVC, reroute split: {len(test)} of {len(items)} four-view items "
             f"(default_rng({seed}) permutation), all 12 ordered view pairs per item")  # fmt: skip
    return PairList(pairs, "mvc", proto, None, (256, 256))


def read_folder(root, pairs_file=None, *, annotation=None) -> PairList:
    """Pairs from a plain folder (see the module docstring).

    Args:
        root: the folder.
        pairs_file: ``from,to`` CSV of paths relative to ``root``; None pairs
            ``root/source/<name>`` with ``root/target/<name>`` (sorted by name).
        annotation: optional keypoint CSV keyed by file stem.
    Returns:
        :class:`PairList` (default size 256x256).
    """
    root = _check_root(root)
    kps = read_annotations(annotation) if annotation is not None else {}
    pairs = []
    if pairs_file is not None:
        pf = Path(pairs_file)
        if not pf.is_file() and (root / pf).is_file():
            pf = root / pf
        pf = _check_file(pf, "pair list")
        for s, t in _read_from_to(pf):
            sp, tp = root / s, root / t
            pairs.append(PosePair(_pair_id(s, t), s, t, sp if sp.is_file() else None,
                                  tp if tp.is_file() else None, kps.get(Path(s).stem),
                                  kps.get(Path(t).stem)))  # fmt: skip
        proto = f"folder, pair list {pf.name} ({len(pairs)} pairs)"
    else:
        if not (root / "source").is_dir() or not (root / "target").is_dir():
            raise InputError(f"{root} needs source/ and target/ subfolders, or give --pairs")
        src = _index_images([root / "source"])
        tgt = _index_images([root / "target"])
        for stem in sorted(set(src) | set(tgt)):
            sp, tp = src.get(stem), tgt.get(stem)
            sn = f"source/{sp.name if sp else stem}"
            tn = f"target/{tp.name if tp else stem}"
            pairs.append(PosePair(_pair_id(f"{stem}_s", f"{stem}_t"), sn, tn, sp, tp,
                                  kps.get(stem), kps.get(stem)))  # fmt: skip
        proto = f"folder, source/ and target/ matched by name ({len(pairs)} pairs)"
        pf = None
    return PairList(pairs, "folder", proto, str(pf) if pf else None, (256, 256))


def write_pairs_csv(path, pairs: PairList, root) -> None:
    """Write ``from,to`` paths relative to ``root`` (atomically), e.g. the MVC split."""
    lines = ["from,to"]
    for p in pairs.pairs:
        lines.append(f"{p.source_name},{p.target_name}")
    write_text_atomic(path, "\n".join(lines) + "\n")


@dataclass(frozen=True)
class Crop:
    """How :func:`fit_to_size` mapped an image: crop box (y0, x0, h, w), then scale (sy, sx)."""

    y0: int
    x0: int
    h: int
    w: int
    sy: float
    sx: float


def fit_to_size(image: np.ndarray, size: tuple[int, int]) -> tuple[np.ndarray, Crop]:
    """Bring an image to the evaluation size: centre crop to the aspect ratio, then resize.

    The crop keeps the full height when the image is relatively wider (and vice
    versa), centred; for a 256x256 DeepFashion image and 256x176 this is exactly
    PATN's ``img[:, 40:216]``. The resize (only when needed) uses OpenCV
    ``INTER_AREA`` when shrinking and ``INTER_CUBIC`` when enlarging.

    Args:
        image: ``(h, w, 3)`` uint8.
        size: target (H, W).
    Returns:
        (``(H, W, 3)`` uint8, :class:`Crop`).
    """
    import cv2

    H, W = size
    h, w = image.shape[:2]
    if h * W > w * H:  # too tall: crop rows
        ch, cw = round(w * H / W), w
    else:
        ch, cw = h, round(h * W / H)
    y0, x0 = (h - ch) // 2, (w - cw) // 2
    out = image[y0 : y0 + ch, x0 : x0 + cw]
    if (ch, cw) != (H, W):
        interp = cv2.INTER_AREA if ch * cw > H * W else cv2.INTER_CUBIC
        out = cv2.resize(np.ascontiguousarray(out), (W, H), interpolation=interp)
    return np.ascontiguousarray(out), Crop(y0, x0, ch, cw, H / ch, W / cw)


def transform_keypoints(kp: np.ndarray | None, crop: Crop) -> np.ndarray | None:
    """Map (18, 2) (y, x) keypoints through a :class:`Crop`; -1 stays -1."""
    if kp is None:
        return None
    kp = np.asarray(kp, dtype=np.float64)
    missing = (kp == -1).any(axis=1)
    out = np.stack([(kp[:, 0] - crop.y0) * crop.sy, (kp[:, 1] - crop.x0) * crop.sx], axis=1)
    out[missing] = -1
    return out
