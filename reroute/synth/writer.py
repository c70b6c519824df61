"""Writing synthetic sets to disk in the DeepFashion layout, and reading them back.

Layout of a set directory (the DeepFashion In-shop test layout of
``../shared/data/deepfashion`` -- ``images/``, ``pairs.csv``, ``annotation.csv``
-- so the same readers serve real and synthetic data, plus ground-truth folders)::

    images/{name}.png        RGB
    pairs.csv                from,to  (pose-transfer pairs: same identity and clothes, other view)
    annotation.csv           name:keypoints_y:keypoints_x, 18 OpenPose/COCO-18 points, -1 = missing
    iuv/{name}.png           DensePose IUV (cv2.imread gives I, U, V; see reroute.io.iuv.write_iuv)
    masks/{name}.png         primary person mask (0/255)
    instances/{name}.png     0 background, 1 primary person, 2.. others
    face_masks/{name}.png    face region (0/255)
    uv/{name}.png            continuous UV, 16-bit RGB PNG: R = u, G = v (x 65535), B = 65535 on the body
    colour/{name}.png        BodyMap colour code, 8-bit RGB
    vertex/{name}.png        nearest template vertex + 1 per pixel (16-bit grey, 0 = background)
    textures/{identity}.png  the identity's full UV texture
    visibility/{name}.png    texels visible in this view (0/255): with textures/, the
                             partial/full texture pairs of texture completion
    samples.jsonl            per image: name, identity, view, pose kind, framing,
                             phenotypes, pose (bone -> axis-angle), camera, rotation,
                             translation, COCO-17 and BlazePose-33 keypoints (x, y, v)
    meta.json                seed, config, counts, layout version

Names are ``synth_s{seed}_id{identity:06d}_v{view:02d}.png``. COCO-18 keypoints
(OpenPose order: nose, neck, r/l shoulder, elbow, wrist, r/l hip, knee, ankle,
r/l eye, r/l ear; neck = shoulder midpoint) are written as ``-1`` when outside
the image, and for the face points (nose, eyes, ears) also when occluded (as
OpenPose misses faces in back views); body joints are kept when self-occluded.
Every file is written atomically (temporary file + rename).
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from reroute.errors import InputError
from reroute.io.files import write_bytes_atomic, write_text_atomic
from reroute.io.images import to_uint8
from reroute.io.iuv import read_iuv, write_iuv
from reroute.synth.engine import SynthConfig, SyntheticEngine, SyntheticSample, pose_batch

__all__ = [
    "write_synthetic_set",
    "SampleWriter",
    "SyntheticRecord",
    "read_synthetic_set",
    "read_annotation_csv",
    "read_pairs_csv",
    "coco17_to_openpose18",
    "LAYOUT_VERSION",
]

LAYOUT_VERSION = 1
# OpenPose COCO-18 order from COCO-17 indices (neck = -1: shoulder midpoint)
_OPENPOSE18 = (0, -1, 6, 8, 10, 5, 7, 9, 12, 14, 16, 11, 13, 15, 2, 1, 4, 3)
_FACE18 = {0, 14, 15, 16, 17}


def coco17_to_openpose18(kp: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """COCO-17 (17, 3) (x, y, v) -> OpenPose COCO-18 (18, 2) integer (y, x), -1 = missing.

    Args:
        kp: (17, 3) float (x, y, visibility 0/1/2) in pixels.
        size: (H, W) of the image.
    Returns:
        (18, 2) int64 (row, column) rounded; -1 where the point is outside the
        image, or a face point (nose, eyes, ears) that is occluded.
    """
    h, w = size
    out = np.full((18, 2), -1, np.int64)
    for j, i in enumerate(_OPENPOSE18):
        if i == -1:
            a, b = kp[5], kp[6]
            if a[2] > 0 and b[2] > 0:
                p, v = (a[:2] + b[:2]) / 2, 2.0
            else:
                continue
        else:
            p, v = kp[i, :2], kp[i, 2]
        if v == 0 or (j in _FACE18 and v < 2):
            continue
        x, y = int(np.clip(np.floor(p[0]), 0, w - 1)), int(np.clip(np.floor(p[1]), 0, h - 1))
        out[j] = (y, x)
    return out


def _png(path: Path, arr: np.ndarray) -> None:
    import cv2

    a = arr[..., ::-1] if arr.ndim == 3 else arr  # RGB -> cv2's BGR
    ok, buf = cv2.imencode(".png", np.ascontiguousarray(a), [cv2.IMWRITE_PNG_COMPRESSION, 3])
    if not ok:
        raise OSError(f"cannot encode {path}")
    write_bytes_atomic(path, buf.tobytes())


def _read_png(path: Path) -> np.ndarray:
    import cv2

    a = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if a is None:
        raise InputError(f"cannot read {path}")
    return a[..., ::-1].copy() if a.ndim == 3 else a


def sample_name(seed: int, identity: int, view: int) -> str:
    """File stem of a sample: ``synth_s{seed}_id{identity:06d}_v{view:02d}``."""
    return f"synth_s{seed}_id{identity:06d}_v{view:02d}"


class SampleWriter:
    """Writes samples of one set; call :meth:`close` to write the CSVs and meta.json."""

    def __init__(self, out: str | Path, seed: int, config: SynthConfig):
        self.out = Path(out)
        self.seed = seed
        self.config = config
        self.rows: list[dict] = []
        self.by_identity: dict[int, list[str]] = {}
        self._textures: set[int] = set()

    def write(self, s: SyntheticSample) -> str:
        """Write one sample's files; returns its image file name."""

        stem = sample_name(self.seed, s.identity, s.view)
        name = stem + ".png"
        o = self.out
        c = s.correspondence
        _png(o / "images" / name, s.image)
        write_iuv(o / "iuv" / name, s.iuv)
        _png(o / "masks" / name, s.mask.astype(np.uint8) * 255)
        _png(o / "instances" / name, s.instance)
        _png(o / "face_masks" / name, s.face_mask.astype(np.uint8) * 255)
        uv16 = np.zeros(c.uv.shape[:2] + (3,), np.uint16)
        uv16[..., :2] = np.rint(np.clip(c.uv, 0, 1) * 65535).astype(np.uint16)
        uv16[..., 2] = np.where(c.mask, 65535, 0)
        _png(o / "uv" / name, uv16)
        _png(o / "colour" / name, to_uint8(c.colour))
        _png(o / "vertex" / name, (s.vertex_index + 1).astype(np.uint16))
        _png(o / "visibility" / name, s.texture_visibility.astype(np.uint8) * 255)
        if s.identity not in self._textures:
            _png(o / "textures" / f"{s.identity:06d}.png", s.texture)
            self._textures.add(s.identity)
        spec = s.spec
        b = s.body
        self.rows.append({
            "name": name, "identity": s.identity, "view": s.view, "pose_kind": s.pose_kind,
            "framing": s.framing, "phenotypes": b.phenotypes,
            "pose": {k: [float(x) for x in v] for k, v in (spec.pose if spec else {}).items()},
            "camera": {"focal": b.camera.focal, "cx": b.camera.cx, "cy": b.camera.cy,
                       "width": b.camera.width, "height": b.camera.height},
            "rotation": b.rotation.tolist(), "translation": b.translation.tolist(),
            "keypoints_coco": np.round(s.keypoints_coco, 3).tolist(),
            "keypoints_blazepose": np.round(s.keypoints_blazepose, 3).tolist(),
            "people": int(s.instance.max()),
        })  # fmt: skip
        self.by_identity.setdefault(s.identity, []).append(name)
        return name

    def close(self) -> None:
        """Write samples.jsonl, pairs.csv, annotation.csv and meta.json (atomically)."""
        o = self.out
        lines = "".join(json.dumps(r) + "\n" for r in self.rows)
        write_text_atomic(o / "samples.jsonl", lines)
        pairs = ["from,to"]
        for names in self.by_identity.values():
            for a in names:
                for b in names:
                    if a != b:
                        pairs.append(f"{a},{b}")
        write_text_atomic(o / "pairs.csv", "\n".join(pairs) + "\n")
        ann = ["name:keypoints_y:keypoints_x"]
        for r in self.rows:
            kp = np.array(r["keypoints_coco"], np.float64)
            op = coco17_to_openpose18(kp, (r["camera"]["height"], r["camera"]["width"]))
            ann.append(f"{r['name']}: {op[:, 0].tolist()}: {op[:, 1].tolist()}")
        write_text_atomic(o / "annotation.csv", "\n".join(ann) + "\n")
        cfg = {k: v for k, v in vars(self.config).items() if k != "pose_bank"}
        meta = {"layout_version": LAYOUT_VERSION, "generator": "reroute.synth.engine",
                "seed": self.seed, "images": len(self.rows),
                "identities": len(self.by_identity), "config": cfg}  # fmt: skip
        txt = json.dumps(meta, indent=1, default=list)
        write_text_atomic(o / "meta.json", txt)


def write_synthetic_set(
    out: str | Path,
    n_identities: int,
    config: SynthConfig | None = None,
    seed: int = 0,
    progress: bool = False,
) -> Path:
    """Render ``n_identities x config.views_per_identity`` images and lay them out in ``out``.

    Args:
        out: destination directory (created; existing files of the same names are replaced).
        n_identities: identities to render (>= 1).
        config: :class:`~reroute.synth.engine.SynthConfig`; ``seed``: master seed.
        progress: show a tqdm progress bar on stderr.
    Returns:
        ``out`` as a Path.
    Raises:
        ValueError: for a bad count or config.
    """
    if n_identities < 1:
        raise ValueError(f"identities must be >= 1, got {n_identities}")
    cfg = (config or SynthConfig()).validate()
    engine = SyntheticEngine(cfg, seed)
    w = SampleWriter(out, seed, cfg)
    total = n_identities * cfg.views_per_identity
    it = engine.samples(n_identities)
    if progress:
        from tqdm import tqdm

        it = tqdm(it, total=total, unit="img", desc="synth")
    for s in it:
        w.write(s)
    w.close()
    return Path(out)


def read_pairs_csv(path: str | Path) -> list[tuple[str, str]]:
    """DeepFashion ``pairs.csv`` (header ``from,to``) -> list of (from, to) names."""
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    if not rows or [c.strip() for c in rows[0]] != ["from", "to"]:
        raise InputError(f"{path}: expected a 'from,to' header")
    return [(a.strip(), b.strip()) for a, b in rows[1:] if a.strip()]


def read_annotation_csv(path: str | Path) -> dict[str, np.ndarray]:
    """DeepFashion keypoint annotation -> name -> (18, 2) int64 (y, x), -1 = missing.

    The format is ``name: [y0, y1, ...]: [x0, x1, ...]`` after a header line
    ``name:keypoints_y:keypoints_x``.
    """
    out = {}
    with open(path) as f:
        lines = f.read().splitlines()
    for line in lines[1:]:
        if not line.strip():
            continue
        name, ys, xs = line.split(":")
        y = json.loads(ys)
        x = json.loads(xs)
        out[name.strip()] = np.stack([np.array(y, np.int64), np.array(x, np.int64)], 1)
    return out


@dataclass
class SyntheticRecord:
    """One sample read back from a set directory (see the module docstring for files).

    Attributes:
        name: image file name; ``row``: its samples.jsonl entry (dict).
        image: (H, W, 3) uint8; iuv: (H, W, 3) uint8 (I, U, V); mask, face_mask: (H, W) bool;
        instance: (H, W) uint8; uv: (H, W, 2) float32; colour: (H, W, 3) uint8;
        vertex_index: (H, W) int64 (-1 background); texture: (T, T, 3) uint8;
        texture_visibility: (T, T) bool.
    """

    name: str
    row: dict
    image: np.ndarray
    iuv: np.ndarray
    mask: np.ndarray
    instance: np.ndarray
    face_mask: np.ndarray
    uv: np.ndarray
    colour: np.ndarray
    vertex_index: np.ndarray
    texture: np.ndarray
    texture_visibility: np.ndarray

    @property
    def keypoints_coco(self) -> np.ndarray:
        """(17, 3) float32 (x, y, v)."""
        return np.array(self.row["keypoints_coco"], np.float32)

    def posed_vertices_2d(self) -> np.ndarray:
        """(V, 2) float64 pixel positions of every template vertex in this image
        (re-poses anny from the stored pose and phenotypes; ~20 ms)."""

        r = self.row
        v = pose_batch([{k: np.array(a) for k, a in r["pose"].items()}], [r["phenotypes"]])[0]
        vc = v.astype(np.float64) @ np.array(r["rotation"]).T + np.array(r["translation"])
        c = r["camera"]
        return vc[:, :2] / vc[:, 2:3] * c["focal"] + np.array([c["cx"], c["cy"]])


def read_synthetic_set(root: str | Path):
    """Iterate the :class:`SyntheticRecord` s of a set written by :func:`write_synthetic_set`.

    Raises:
        InputError: when ``root`` has no ``samples.jsonl`` / ``meta.json`` (not a synthetic set).
    """

    root = Path(root)
    if not (root / "samples.jsonl").is_file() or not (root / "meta.json").is_file():
        raise InputError(f"{root} is not a synthetic set (no samples.jsonl / meta.json)")
    for line in (root / "samples.jsonl").read_text().splitlines():
        r = json.loads(line)
        n = r["name"]
        uv16 = _read_png(root / "uv" / n)
        yield SyntheticRecord(
            name=n, row=r, image=_read_png(root / "images" / n), iuv=read_iuv(root / "iuv" / n),
            mask=_read_png(root / "masks" / n) > 127, instance=_read_png(root / "instances" / n),
            face_mask=_read_png(root / "face_masks" / n) > 127,
            uv=(uv16[..., :2].astype(np.float32) / 65535.0),
            colour=_read_png(root / "colour" / n),
            vertex_index=_read_png(root / "vertex" / n).astype(np.int64) - 1,
            texture=_read_png(root / "textures" / f"{r['identity']:06d}.png"),
            texture_visibility=_read_png(root / "visibility" / n) > 127,
        )  # fmt: skip
