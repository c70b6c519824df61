"""Training data for texture completion: partial/full UV texture pairs.

Pairs come from the synthetic engine (:mod:`reroute.synth.engine`): an identity's
full albedo texture is the target and the texels one rendered view sees
(per-triangle visibility, :attr:`SyntheticSample.texture_visibility`) make the
partial input. Rendering costs ~0.2 s per view on this CPU, so
:func:`build_texture_cache` renders the views once into a compact ``.npz``
(uint8 textures, bit-packed visibilities) that :class:`TexturePairDataset` reads;
:class:`SyntheticTexturePairs` streams the same pairs straight from the engine.

Every item is a :class:`dict` of tensors (default collate works):

* ``partial`` (3, T, T) float32 in [-1, 1], 0 where not observed;
* ``mask`` (1, T, T) float32 {0, 1}, observed texels;
* ``target`` (3, T, T) float32 in [-1, 1], the full texture;
* ``target_mask`` (1, T, T) float32 {0, 1}, texels the loss may use (the UV
  islands for synthetic pairs; for real multi-view data, what the other views
  observe: the masked L1 over several views of Dense Pose Transfer).

Multi-view items (:class:`MultiViewTexturePairs`) also carry ``full_target`` (scalar
float32: 1 for a complete synthetic target, 0 for a union of other views). Real
multi-view sets are stored by :func:`build_multiview_set` (``python -m texture.data
multiview --frames DIR_or_video_or_glob --out DIR``) and read by :func:`load_multiview_set`.
"""

from __future__ import annotations

import glob
import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from reroute.correspondence.analyse import analyse_person
from reroute.errors import InputError
from reroute.io.files import write_atomic, write_text_atomic
from reroute.synth.engine import SynthConfig, SyntheticEngine
from reroute.uv.texture import UVTexture, uv_layout_mask
from reroute.uv.warp import image_to_uv
from texture.classical import complete_classical

__all__ = [
    "TextureCache",
    "build_texture_cache",
    "load_texture_cache",
    "TexturePairDataset",
    "SyntheticTexturePairs",
    "pair_from_arrays",
    "classical_prior",
    "MultiViewTexturePairs",
    "MultiViewSet",
    "MixedTexturePairs",
    "select_frames",
    "build_multiview_set",
    "synthetic_multiview_set",
    "load_multiview_set",
    "MULTIVIEW_FORMAT",
]


@dataclass
class TextureCache:
    """Rendered partial/full pairs.

    Attributes:
        textures: (N, T, T, 3) uint8 full textures, one per identity.
        visibility: (N, K, T, T) bool texels seen by view k of identity n.
        layout: (T, T) bool texels inside the UV islands.
        seed: the synthetic engine's master seed; ``start``: first identity index.
    """

    textures: np.ndarray
    visibility: np.ndarray
    layout: np.ndarray
    seed: int
    start: int

    @property
    def size(self) -> int:
        return int(self.textures.shape[1])

    def __len__(self) -> int:
        return int(self.visibility.shape[0] * self.visibility.shape[1])


def build_texture_cache(path: str | os.PathLike, identities: int, views: int = 4,
                        texture_size: int = 256, image_size: int = 256, seed: int = 0,
                        start: int = 0, progress: bool = True) -> TextureCache:  # fmt: skip
    """Render ``identities x views`` synthetic views and store their texture pairs.

    Args:
        path: output ``.npz`` (written atomically).
        identities: number of identities N (indices ``start .. start + N - 1``).
        views: views K per identity (random yaw, pose, framing each).
        texture_size: texture side T; image_size: render side in px (128..1024).
        seed: engine seed (use a different seed or ``start`` for held-out data).
    Returns:
        the :class:`TextureCache` written.
    """
    from tqdm import tqdm

    cfg = SynthConfig(size=image_size, texture_size=texture_size, views_per_identity=views,
                      cluttered_prob=0.0)  # fmt: skip
    eng = SyntheticEngine(cfg, seed=seed)
    tex = np.zeros((identities, texture_size, texture_size, 3), np.uint8)
    vis = np.zeros((identities, views, texture_size, texture_size), bool)
    layout = None
    for i in tqdm(range(identities), disable=not progress, desc="render texture pairs"):
        ident = eng.identity(start + i)
        for k in range(views):
            s = eng.render(ident, k)
            vis[i, k] = s.texture_visibility
            layout = s.texture_mask
        tex[i] = s.texture
    out = TextureCache(tex, vis, layout, seed, start)
    _save_cache(out, path)
    return out


def _save_cache(c: TextureCache, path) -> None:
    write_atomic(path, lambda f: np.savez_compressed(
        f, textures=c.textures, visibility=np.packbits(c.visibility, axis=-1),
        layout=c.layout, meta=np.array([c.seed, c.start])))  # fmt: skip


def load_texture_cache(path: str | os.PathLike) -> TextureCache:
    """Read a cache written by :func:`build_texture_cache` (no pickles)."""
    with np.load(path, allow_pickle=False) as z:
        tex = z["textures"]
        vis = np.unpackbits(z["visibility"], axis=-1)[..., : tex.shape[2]].astype(bool)
        return TextureCache(tex, vis, z["layout"].astype(bool), int(z["meta"][0]),
                            int(z["meta"][1]))  # fmt: skip


def pair_from_arrays(texture: np.ndarray, visibility: np.ndarray, layout: np.ndarray,
                     gain: np.ndarray | None = None) -> dict[str, torch.Tensor]:  # fmt: skip
    """One training item from a full texture and a visibility mask.

    Args:
        texture: (T, T, 3) uint8 or float in [0, 1]; visibility, layout: (T, T) bool.
        gain: optional (3,) per-channel colour gain applied to input and target alike.
    Returns:
        the item dict described in the module docstring.
    """
    t = texture.astype(np.float32) / 255.0 if texture.dtype == np.uint8 else texture
    if gain is not None:
        t = np.clip(t * gain[None, None, :], 0.0, 1.0)
    vis = (visibility & layout).astype(np.float32)[None]
    full = torch.from_numpy(np.ascontiguousarray(t.transpose(2, 0, 1), np.float32)) * 2 - 1
    lay = torch.from_numpy(layout.astype(np.float32)[None])
    full = full * lay
    m = torch.from_numpy(vis)
    return {"partial": full * m, "mask": m, "target": full, "target_mask": lay}


class TexturePairDataset(torch.utils.data.Dataset):
    """Partial/full pairs from a :class:`TextureCache`.

    Item ``i`` is view ``i % K`` of identity ``i // K``. With ``augment`` a
    random per-channel gain in [0.8, 1.2] and, with probability 0.5, the union
    of two views' visibilities vary the input (seeded by ``seed`` and ``i``).
    """

    def __init__(self, cache: TextureCache, augment: bool = False, seed: int = 0,
                 prior: bool = False):  # fmt: skip
        self.cache = cache
        self.augment = augment
        self.prior = prior
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Change the augmentation draw (the trainer calls this per pass over the data)."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.cache)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        c = self.cache
        k = c.visibility.shape[1]
        n, v = divmod(int(index), k)
        vis = c.visibility[n, v]
        gain = None
        if self.augment:
            rng = np.random.default_rng([self.seed, self.epoch, int(index)])
            gain = rng.uniform(0.8, 1.2, 3).astype(np.float32)
            if k > 1 and rng.random() < 0.5:
                vis = vis | c.visibility[n, (v + int(rng.integers(1, k))) % k]
        item = pair_from_arrays(c.textures[n], vis, c.layout, gain)
        if self.prior:
            item["prior"] = classical_prior(item)
        return item


def classical_prior(item: dict[str, torch.Tensor]) -> torch.Tensor:
    """The classical fill (:func:`texture.classical.complete_classical`) of an item's
    partial texture, (3, T, T) in [-1, 1] (the optional ``prior`` input of the U-Net)."""

    pix = ((item["partial"] + 1) * 0.5).permute(1, 2, 0).numpy()
    out = complete_classical(UVTexture(pix, item["mask"][0].numpy())).pixels
    return torch.from_numpy(np.ascontiguousarray(out.transpose(2, 0, 1))) * 2 - 1


class MultiViewTexturePairs(torch.utils.data.Dataset):
    """Real multi-view supervision (as in Dense Pose Transfer's warping stream).

    Each person has several lifted partial textures (one per photo of the same
    person and clothes, e.g. :func:`reroute.uv.warp.image_to_uv` of video frames).
    Item ``(person, view)`` takes that view as the input and, as the target, the
    mean of what the *other* views observe, with ``target_mask`` their union:
    the masked L1 then supervises unseen texels by other views.

    Args:
        people: list (one entry per person) of lists of
            :class:`reroute.uv.texture.UVTexture` (T, T), at least 2 views each.
        layout: (T, T) bool UV-island mask.
        prior: add the classical fill of the input as ``prior`` (see :func:`classical_prior`).

    Items also hold ``full_target`` = 0 (the target is partial).
    """

    def __init__(self, people: list, layout: np.ndarray, prior: bool = False):
        self.index = []
        for p, views in enumerate(people):
            if len(views) < 2:
                raise ValueError(f"person {p}: need at least 2 views, got {len(views)}")
            self.index += [(p, v) for v in range(len(views))]
        self.people = people
        self.layout = layout.astype(bool)
        self.prior = prior

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        p, v = self.index[int(i)]
        views = self.people[p]
        lay = self.layout
        acc = np.zeros(lay.shape + (3,), np.float64)
        cnt = np.zeros(lay.shape, np.float64)
        for k, t in enumerate(views):
            if k != v:
                seen = (t.visibility > 0.5) & lay
                acc[seen] += t.pixels[seen]
                cnt[seen] += 1
        other = cnt > 0
        tgt = np.where(other[..., None], acc / np.maximum(cnt, 1)[..., None], 0.0)
        vis = (views[v].visibility > 0.5) & lay
        item = pair_from_arrays(views[v].pixels.astype(np.float32), vis, lay)
        item["target"] = torch.from_numpy(
            np.ascontiguousarray(tgt.transpose(2, 0, 1), np.float32) * 2 - 1
        ) * torch.from_numpy(other[None].astype(np.float32))
        item["target_mask"] = torch.from_numpy(other[None].astype(np.float32))
        item["full_target"] = torch.tensor(0.0)
        if self.prior:
            item["prior"] = classical_prior(item)
        return item


class SyntheticTexturePairs(torch.utils.data.Dataset):
    """Partial/full pairs rendered on access by :class:`reroute.synth.engine.SyntheticEngine`.

    Args:
        length: items; ``texture_size``: T; ``image_size``: render side in px;
        ``views``: views per identity; ``seed``: engine seed; ``prior``: add the
        classical fill of the input as ``prior`` (see :func:`classical_prior`).
    """

    def __init__(self, length: int, texture_size: int = 256, image_size: int = 256,
                 views: int = 4, seed: int = 0, prior: bool = False):  # fmt: skip

        self.length = int(length)
        self.config = SynthConfig(size=image_size, texture_size=texture_size,
                                  views_per_identity=views, cluttered_prob=0.0).validate()  # fmt: skip
        self.seed = seed
        self.prior = prior
        self._engine = None

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:

        if self._engine is None:
            self._engine = SyntheticEngine(self.config, self.seed)
        k = self.config.views_per_identity
        s = self._engine.sample(int(index) // k, int(index) % k)
        item = pair_from_arrays(s.texture, s.texture_visibility, s.texture_mask)
        if self.prior:
            item["prior"] = classical_prior(item)
        return item


# --------------------------------------------------------------------------------------------
# real multi-view sets (Dense Pose Transfer's multi-view supervision)

#: ``format`` of a multi-view set's ``manifest.json``.
MULTIVIEW_FORMAT = "reroute.multiview"
MULTIVIEW_VERSION = 1
_IMAGE_EXTS = (".png", ".jpg", ".jpeg", ".webp", ".bmp")
_VIDEO_EXTS = (".mp4", ".avi", ".mov", ".mkv", ".webm")


@dataclass
class MultiViewSet:
    """Partial UV textures of several people, several views each (read from a set folder).

    Attributes:
        root: the set folder; texture_size: T.
        names: person names; view_names: per person, view names (frames).
        people: per person, :class:`reroute.uv.texture.UVTexture` (T, T) per view (pixels in
            [0, 1], stored as uint8, so quantised to 1/255; visibility {0, 1}).
        layout: (T, T) bool UV islands.
        manifest: the parsed ``manifest.json``.
    """

    root: Path
    texture_size: int
    names: list[str]
    view_names: list[list[str]]
    people: list = field(repr=False)
    layout: np.ndarray = field(repr=False)
    manifest: dict = field(repr=False)

    def summary(self) -> dict:
        """Plain values describing the set (recorded in checkpoints and model cards)."""
        digest = hashlib.sha256((self.root / "manifest.json").read_bytes()).hexdigest()[:16]
        return {"kind": "multiview", "root": str(self.root.resolve()), "people": len(self.names),
                "views": sum(len(v) for v in self.view_names), "texture_size": self.texture_size,
                "image_size": self.manifest.get("image_size"),
                "sources": [p["source"] for p in self.manifest["people"]],
                "manifest_sha256_16": digest}  # fmt: skip


def _save_view(path: Path, tex, image_size: int) -> None:
    vis = tex.visibility > 0.5
    px = tex.to_uint8() * vis[..., None]

    write_atomic(path, lambda f: np.savez_compressed(
        f, texture=px, visibility=np.packbits(vis, axis=-1),
        meta=np.array([tex.size, image_size])))  # fmt: skip


def _load_view(path: Path, texture_size: int | None = None, image_size: int | None = None):
    """A stored view as a UVTexture, or None when missing or made with other sizes."""

    if not path.is_file():
        return None
    with np.load(path, allow_pickle=False) as z:
        T, size = (int(x) for x in z["meta"])
        if (texture_size is not None and T != texture_size) or (
            image_size is not None and size != image_size
        ):
            return None
        vis = np.unpackbits(z["visibility"], axis=-1)[..., :T].astype(np.float32)
        return UVTexture(z["texture"].astype(np.float32) / 255.0, vis)


def _safe_name(s: str) -> str:
    out = "".join(c if c.isalnum() or c in "-_." else "_" for c in s).strip("._")
    return out or "view"


def select_frames(source: str | os.PathLike, views: int) -> tuple[str, list[tuple[str, object]]]:
    """The ``views`` frames of one person: evenly spaced over a folder, a video or a glob.

    Args:
        source: a folder of images (sorted by name; files whose stem ends in ``_IUV``,
            DensePose maps, are skipped), a video file (.mp4, .avi, .mov, .mkv, .webm) or
            a glob pattern (e.g. ``images/fashionWOMENDressesid0000080304_*``).
        views: how many (all when there are fewer); indices ``rint(linspace(0, n-1, views))``.
    Returns:
        (person name, [(view name, path or (H, W, 3) uint8 RGB frame), ...]).
    Raises:
        InputError: nothing to read, or an unreadable video.
    """

    src = str(source)
    p = Path(src)
    if views < 1:
        raise InputError(f"--views must be >= 1, got {views}")

    def pick(n: int) -> list[int]:
        return sorted(set(np.rint(np.linspace(0, n - 1, min(views, n))).astype(int).tolist()))

    if p.is_file() and p.suffix.lower() in _VIDEO_EXTS:
        import cv2

        cap = cv2.VideoCapture(src)
        n = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
        if not cap.isOpened() or n < 1:
            raise InputError(f"{src}: not a readable video")
        out = []
        for i in pick(n):
            cap.set(cv2.CAP_PROP_POS_FRAMES, i)
            ok, bgr = cap.read()
            if ok:
                out.append((f"{p.stem}_f{i:05d}", np.ascontiguousarray(bgr[..., ::-1])))
        cap.release()
        return _safe_name(p.stem), out
    if p.is_dir():
        files = sorted(f for f in p.iterdir()
                       if f.suffix.lower() in _IMAGE_EXTS and not f.stem.endswith("_IUV"))  # fmt: skip
        name = p.name
    else:
        files = sorted(Path(f) for f in glob.glob(src) if Path(f).suffix.lower() in _IMAGE_EXTS)
        name = os.path.commonprefix([f.stem for f in files]).rstrip("_-") if files else ""
    if not files:
        raise InputError(f"{src}: no images (a folder, a video or a glob pattern of images)")
    return _safe_name(name or "person"), [(files[i].stem, files[i]) for i in pick(len(files))]


def _write_manifest(root: Path, manifest: dict) -> None:
    write_text_atomic(root / "manifest.json", json.dumps(manifest, indent=1))


def build_multiview_set(sources: list, out: str | os.PathLike, views: int = 8,
                        texture_size: int = 256, image_size: int = 256, progress: bool = True,
                        log=print) -> dict:  # fmt: skip
    """Lift partial textures of several views per person and store them as a multi-view set.

    Each view goes through :func:`reroute.correspondence.analyse.analyse_person` (BlazePose + anny fit,
    ~10 s per frame on this CPU) and :func:`reroute.uv.warp.image_to_uv`. Layout of ``out``:
    ``manifest.json`` (written last, atomically) and ``people/<person>/<view>.npz``
    (uint8 texture, bit-packed visibility). Views already stored with the same sizes are
    reused (a rerun after an interruption only fits the missing ones). Frame choice and
    fits are deterministic.

    Args:
        sources: one entry per person, see :func:`select_frames`.
        views: frames per person; texture_size: T; image_size: working size of the fit (px).
    Returns:
        the manifest (people with their views, failed frames, skipped people).
    Raises:
        InputError: no person ended with at least 2 lifted views.
    """
    from tqdm import tqdm

    root = Path(out)
    people, failed, skipped, seen = [], [], [], set()
    for src in sources:
        name, frames = select_frames(src, views)
        while name in seen:
            name += "_"
        seen.add(name)
        got = []
        for vname, frame in tqdm(frames, desc=name, disable=not progress):
            vname = _safe_name(vname)
            path = root / "people" / name / f"{vname}.npz"
            if _load_view(path, texture_size, image_size) is None:
                try:
                    pa = analyse_person(frame, size=image_size, name=vname)
                    tex = image_to_uv(pa.image, pa.correspondence, texture_size)
                except InputError as e:  # a frame without a usable fit is listed, not fatal
                    failed.append({"person": name, "view": vname, "error": str(e)})
                    log(f"skipped {name}/{vname}: {e}")
                    continue
                _save_view(path, tex, image_size)
            got.append({"name": vname, "source": str(frame) if isinstance(frame, Path) else vname})
        if len(got) < 2:
            skipped.append({"person": name, "reason": f"{len(got)} usable view(s), need 2"})
            continue
        people.append({"name": name, "source": str(src), "views": got})
    if not people:
        raise InputError(f"no person with at least 2 usable views in {list(map(str, sources))}")
    manifest = {"format": MULTIVIEW_FORMAT, "version": MULTIVIEW_VERSION,
                "texture_size": texture_size, "image_size": image_size,
                "lifting": "reroute.correspondence.analyse.analyse_person + reroute.uv.warp.image_to_uv",
                "people": people, "failed": failed, "skipped": skipped}  # fmt: skip
    _write_manifest(root, manifest)
    return manifest


def synthetic_multiview_set(out: str | os.PathLike, identities: int, views: int = 3,
                            texture_size: int = 64, image_size: int = 128, seed: int = 0,
                            start: int = 0) -> dict:  # fmt: skip
    """A multi-view set from the synthetic engine: each view's exact partial texture
    (identity texture where :attr:`SyntheticSample.texture_visibility`), no lifting.
    For tests and for checking the multi-view path against known textures. Same
    folder layout and manifest as :func:`build_multiview_set`."""

    cfg = SynthConfig(size=image_size, texture_size=texture_size, views_per_identity=views,
                      cluttered_prob=0.0)  # fmt: skip
    eng = SyntheticEngine(cfg, seed=seed)
    root = Path(out)
    people = []
    for i in range(start, start + identities):
        got = []
        for k in range(views):
            s = eng.sample(i, k)
            vis = s.texture_visibility & s.texture_mask
            tex = UVTexture(np.where(vis[..., None], s.texture / 255.0, 0).astype(np.float32),
                            vis.astype(np.float32))  # fmt: skip
            vname = f"view{k}"
            _save_view(root / "people" / f"synth{i:05d}" / f"{vname}.npz", tex, image_size)
            got.append({"name": vname, "source": f"synth seed {seed} identity {i} view {k}"})
        people.append({"name": f"synth{i:05d}", "source": f"synthetic engine seed {seed}",
                       "views": got})  # fmt: skip
    manifest = {"format": MULTIVIEW_FORMAT, "version": MULTIVIEW_VERSION,
                "texture_size": texture_size, "image_size": image_size,
                "lifting": "synthetic engine texture visibility", "people": people,
                "failed": [], "skipped": []}  # fmt: skip
    _write_manifest(root, manifest)
    return manifest


def load_multiview_set(root: str | os.PathLike) -> MultiViewSet:
    """Read a set written by :func:`build_multiview_set` / :func:`synthetic_multiview_set`.

    Raises:
        InputError: no manifest, a foreign or newer format, a missing view file.
    """

    root = Path(root)
    mpath = root / "manifest.json"
    if not mpath.is_file():
        raise InputError(f"{root} is not a multi-view set (no manifest.json); "
                         "make one with python -m texture.data multiview")  # fmt: skip
    m = json.loads(mpath.read_text())
    if m.get("format") != MULTIVIEW_FORMAT or int(m.get("version", 0)) > MULTIVIEW_VERSION:
        raise InputError(f"{mpath}: not a {MULTIVIEW_FORMAT} v<={MULTIVIEW_VERSION} manifest")
    T = int(m["texture_size"])
    names, vnames, people = [], [], []
    for p in m["people"]:
        texs = []
        for v in p["views"]:
            f = root / "people" / p["name"] / f"{v['name']}.npz"
            t = _load_view(f, T)
            if t is None:
                raise InputError(f"{f}: missing or not a {T}px view of this set")
            texs.append(t)
        names.append(p["name"])
        vnames.append([v["name"] for v in p["views"]])
        people.append(texs)
    return MultiViewSet(root, T, names, vnames, people, uv_layout_mask(T), m)


class MixedTexturePairs(torch.utils.data.Dataset):
    """Multi-view items followed by complete-target pairs (synthetic or a cache).

    Items ``0 .. len(multiview) - 1`` are the multi-view items; the next
    ``round(len(multiview) * fraction / (1 - fraction))`` come from ``full`` (index
    modulo its length) with ``full_target`` = 1, so ``fraction`` of an epoch has
    complete targets. ``prior``: add the classical fill where an item lacks it.
    """

    def __init__(self, multiview, full, fraction: float, prior: bool = False):
        if not 0.0 < fraction < 1.0:
            raise ValueError(f"mix fraction must be in (0, 1), got {fraction}")
        self.mv, self.full, self.prior = multiview, full, prior
        self.n_mv = len(multiview)
        self.n_full = max(1, round(self.n_mv * fraction / (1.0 - fraction)))

    def set_epoch(self, epoch: int) -> None:
        for d in (self.mv, self.full):
            if hasattr(d, "set_epoch"):
                d.set_epoch(epoch)

    def __len__(self) -> int:
        return self.n_mv + self.n_full

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        i = int(i)
        if i < self.n_mv:
            item = self.mv[i]
        else:
            item = dict(self.full[(i - self.n_mv) % len(self.full)])
            item["full_target"] = torch.tensor(1.0)
        if self.prior and "prior" not in item:
            item["prior"] = classical_prior(item)
        return item


def multiview_main(argv=None) -> int:
    """``python -m texture.data multiview --frames SRC [--frames SRC ...] --out DIR
    [--views 8 --texture-size 256 --image-size 256]`` (one ``--frames`` per person: a
    folder, a video or a quoted glob), or ``--synthetic N`` identities from the engine."""
    import argparse

    p = argparse.ArgumentParser(prog="python -m texture.data multiview",
                                description=multiview_main.__doc__)  # fmt: skip
    p.add_argument("--out", required=True, help="set folder (manifest.json, people/)")
    p.add_argument("--frames", action="append", default=[], help="one person's frames")
    p.add_argument("--synthetic", type=int, default=0, help="N synthetic identities instead")
    p.add_argument("--views", type=int, default=8)
    p.add_argument("--texture-size", type=int, default=256)
    p.add_argument("--image-size", type=int, default=256)
    p.add_argument("--seed", type=int, default=0, help="synthetic engine seed")
    a = p.parse_args(argv)
    torch.set_num_threads(1)
    try:
        if bool(a.frames) == bool(a.synthetic):
            raise InputError("give --frames (one per person) or --synthetic N, not both")
        if a.synthetic:
            m = synthetic_multiview_set(a.out, a.synthetic, a.views, a.texture_size,
                                        a.image_size, a.seed)  # fmt: skip
        else:
            m = build_multiview_set(a.frames, a.out, a.views, a.texture_size, a.image_size)
    except InputError as e:
        import sys

        print(f"error: {e}", file=sys.stderr)
        return 2
    print(json.dumps({"out": str(a.out), "people": len(m["people"]),
                      "views": [len(x["views"]) for x in m["people"]],
                      "failed": len(m["failed"]), "skipped": len(m["skipped"])}))  # fmt: skip
    return 0


def main(argv=None) -> int:
    """``python -m texture.data --out F.npz --identities N [--views K --seed S --start I]``
    (synthetic pairs), or ``python -m texture.data multiview ...`` (see :func:`multiview_main`)."""
    import argparse
    import sys

    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["multiview"]:
        return multiview_main(argv[1:])
    p = argparse.ArgumentParser(description=main.__doc__)
    p.add_argument("--out", required=True)
    p.add_argument("--identities", type=int, required=True)
    p.add_argument("--views", type=int, default=4)
    p.add_argument("--texture-size", type=int, default=256)
    p.add_argument("--image-size", type=int, default=256)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--start", type=int, default=0)
    a = p.parse_args(argv)
    torch.set_num_threads(1)
    build_texture_cache(a.out, a.identities, a.views, a.texture_size, a.image_size, a.seed, a.start)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
