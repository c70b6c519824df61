"""Training data for texture completion: partial/full UV texture pairs.

Pairs come from the synthetic engine (:mod:`reroute.synth_engine`): an identity's
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
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

__all__ = [
    "TextureCache",
    "build_texture_cache",
    "load_texture_cache",
    "TexturePairDataset",
    "SyntheticTexturePairs",
    "pair_from_arrays",
    "classical_prior",
    "MultiViewTexturePairs",
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

    from reroute.synth_engine import SynthConfig, SyntheticEngine

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
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".npz")
    os.close(fd)
    np.savez_compressed(tmp, textures=c.textures, visibility=np.packbits(c.visibility, axis=-1),
                        layout=c.layout, meta=np.array([c.seed, c.start]))  # fmt: skip
    os.replace(tmp, path)


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
    """The classical fill (:func:`reroute.completion.complete_classical`) of an item's
    partial texture, (3, T, T) in [-1, 1] (the optional ``prior`` input of the U-Net)."""
    from reroute.completion import complete_classical
    from reroute.warp import UVTexture

    pix = ((item["partial"] + 1) * 0.5).permute(1, 2, 0).numpy()
    out = complete_classical(UVTexture(pix, item["mask"][0].numpy())).pixels
    return torch.from_numpy(np.ascontiguousarray(out.transpose(2, 0, 1))) * 2 - 1


class MultiViewTexturePairs(torch.utils.data.Dataset):
    """Real multi-view supervision (as in Dense Pose Transfer's warping stream).

    Each person has several lifted partial textures (one per photo of the same
    person and clothes, e.g. :func:`reroute.warp.image_to_uv` of video frames).
    Item ``(person, view)`` takes that view as the input and, as the target, the
    mean of what the *other* views observe, with ``target_mask`` their union:
    the masked L1 then supervises unseen texels by other views.

    Args:
        people: list (one entry per person) of lists of
            :class:`reroute.warp.UVTexture` (T, T), at least 2 views each.
        layout: (T, T) bool UV-island mask.
    """

    def __init__(self, people: list, layout: np.ndarray):
        self.index = []
        for p, views in enumerate(people):
            if len(views) < 2:
                raise ValueError(f"person {p}: need at least 2 views, got {len(views)}")
            self.index += [(p, v) for v in range(len(views))]
        self.people = people
        self.layout = layout.astype(bool)

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
        return item


class SyntheticTexturePairs(torch.utils.data.Dataset):
    """Partial/full pairs rendered on access by :class:`reroute.synth_engine.SyntheticEngine`.

    Args:
        length: items; ``texture_size``: T; ``image_size``: render side in px;
        ``views``: views per identity; ``seed``: engine seed.
    """

    def __init__(self, length: int, texture_size: int = 256, image_size: int = 256,
                 views: int = 4, seed: int = 0):  # fmt: skip
        from reroute.synth_engine import SynthConfig

        self.length = int(length)
        self.config = SynthConfig(size=image_size, texture_size=texture_size,
                                  views_per_identity=views, cluttered_prob=0.0).validate()  # fmt: skip
        self.seed = seed
        self._engine = None

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        from reroute.synth_engine import SyntheticEngine

        if self._engine is None:
            self._engine = SyntheticEngine(self.config, self.seed)
        k = self.config.views_per_identity
        s = self._engine.sample(int(index) // k, int(index) % k)
        return pair_from_arrays(s.texture, s.texture_visibility, s.texture_mask)


def main(argv=None) -> int:
    """``python -m texture.data --out F.npz --identities N [--views K --seed S --start I]``."""
    import argparse

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
