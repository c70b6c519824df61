"""A cache of analysed photos, keyed by pixel content, so the same photo is analysed once.

:class:`AnalysisCache` wraps :func:`~reroute.correspondence.analyse.analyse_people`
(detect, fit, render; the photos not cached are fitted in one batch). The key is the SHA-1 of the loaded
pixels and their shape, the working size, every field of the
:class:`~reroute.body.fit.FitConfig` (``None`` means the default config) and,
for a correspondence method other than ``fit``, the method and the SHA-256 of its
checkpoint's bytes (so a ``bodymap`` analysis is never served for a ``fit``
request, nor one of another BodyMap checkpoint; a ``fit`` key is the same as
before the option existed, so older folders stay valid), so
the same photo uploaded twice, used as source and as target, or repeated
across an evaluation's pairs is analysed once. The cache keeps the
``max_items`` most recently used analyses in memory (the app's, shared by all
its tabs and pipelines) and, when given a ``directory``, also one
``<key>.npz`` file per analysis (batch evaluation: a second run reads them back
instead of fitting again).

What a caller gets back: a shallow copy of the stored
:class:`~reroute.correspondence.analyse.PersonAnalysis` with its own
``notices`` list and ``timings`` dict, and ``cached`` telling where it came
from. Served from the cache, ``cached`` is True and ``timings`` is
``{"pose": 0.0, "fit": 0.0, "render": 0.0, "cache": s}`` (``s``: seconds spent
finding it, memory or disk; a ``bodymap`` analysis also has ``"bodymap": 0.0``); freshly analysed, ``cached`` is False and
``timings`` are the analysis's own. The arrays are shared with the stored
analysis: treat them as read-only (every pipeline does). Notices that come from
loading the photo (e.g. that it was downscaled) are re-made with the caller's
``name``, so a hit says "target photo: ..." when the photo was first analysed
as the source.

Disk format (``format_version`` 1): an uncompressed ``.npz`` with one entry
per array field (``image``, ``observation.landmarks``, ``body.vertices``,
``correspondence.part``, ...; see :data:`ARRAY_FIELDS`), dtypes and shapes as
in the dataclasses, plus ``meta``: a JSON string with ``format_version`` and
the scalar fields (sizes, camera, the body's :data:`BODY_SCALARS`, the
analysis's own notices and timings, and ``correspondence_method``; a file
without it, written before the option existed, reads back as ``fit``). Files are written atomically
(:func:`reroute.io.files.write_atomic`) and read with
``np.load(..., allow_pickle=False)``; an unreadable, incomplete or
other-version file is a miss and is overwritten. The files do not notice a
change of the analysis code (mediapipe, the fit, the renderer): use a new
folder after changing it.
"""

from __future__ import annotations

import functools
import hashlib
import io
import json
import logging
import threading
import time
from collections import OrderedDict
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import numpy as np

from reroute.body.detect import PersonObservation
from reroute.body.fit import FitConfig
from reroute.body.posed import FittedBody
from reroute.body.raster import Camera
from reroute.correspondence.analyse import (
    DEFAULT_CORRESPONDENCE,
    LEARNED_CORRESPONDENCES,
    PersonAnalysis,
    analyse_people,
    check_correspondence,
    load_correspondence_model,
)
from reroute.correspondence.bodymap.predict import DEFAULT_CHECKPOINT as BODYMAP_CHECKPOINT
from reroute.correspondence.maps import Correspondence
from reroute.errors import InputError
from reroute.io.files import write_atomic
from reroute.io.images import LoadedImage, load_image
from reroute.metrics.image import sha256_file

__all__ = [
    "AnalysisCache",
    "analysis_key",
    "checkpoint_digest",
    "to_arrays",
    "from_arrays",
    "ARRAY_FIELDS",
    "BODY_SCALARS",
    "FORMAT_VERSION",
]

log = logging.getLogger(__name__)

FORMAT_VERSION = 1
"""Version of the ``.npz`` layout; files of any other version are misses."""

#: npz entry prefix -> the array fields of that part of a PersonAnalysis ("" = the analysis itself)
ARRAY_FIELDS: dict[str, tuple[str, ...]] = {
    "": ("image",),
    "observation": ("landmarks", "visibility", "world", "mask"),
    "body": ("pose", "rotation", "translation", "vertices", "keypoints_2d"),
    "correspondence": ("part", "part_uv", "uv", "colour", "mask", "body_mask"),
}

#: FittedBody's scalar fields kept in ``meta`` as ``body.<name>`` (a file without one
#: of them, e.g. written before ``steps`` existed, is a miss)
BODY_SCALARS: tuple[str, ...] = ("phenotypes", "keypoint_error_px", "losses", "steps")

_CACHED_TIMINGS = ("pose", "fit", "render")


@functools.lru_cache(maxsize=16)
def _file_digest(path: str, mtime_ns: int, size: int) -> str:
    """:func:`~reroute.metrics.image.sha256_file` cached per path, modification time and size."""
    return sha256_file(path)


def checkpoint_digest(path: str | Path | None = None) -> str:
    """SHA-256 (64 hex digits) of a BodyMap checkpoint's bytes; ``None``: the committed
    default (:data:`~reroute.correspondence.bodymap.predict.DEFAULT_CHECKPOINT`).

    Computed once per (path, modification time, size), so a checkpoint trained
    again under the same name gets a new digest.

    Raises:
        InputError: the file does not exist (one line naming it).
    """
    p = Path(path) if path else BODYMAP_CHECKPOINT
    try:
        st = p.stat()
    except OSError:
        raise InputError(f"checkpoint {p} does not exist") from None
    return _file_digest(str(p.resolve()), st.st_mtime_ns, st.st_size)


def analysis_key(photo: LoadedImage, size: int | None, fit_config: FitConfig | None = None,
                 correspondence: str = DEFAULT_CORRESPONDENCE,
                 bodymap_checkpoint: str | Path | None = None) -> str:  # fmt: skip
    """The cache key of ``photo`` analysed at ``size`` with ``fit_config`` and
    ``correspondence``: 40 hex digits.

    SHA-1 of the pixels (``(H, W, 3)`` uint8) and their shape, the working size,
    every :class:`~reroute.body.fit.FitConfig` field (``None``: the defaults;
    ``compile`` only when True) and,
    for a learned correspondence method (``bodymap``), the method and
    :func:`checkpoint_digest` of ``bodymap_checkpoint`` (ignored for ``fit``, whose
    keys are those of format 1 before the option existed).

    Raises:
        InputError: an unknown method, or a learned one whose checkpoint does not exist.
    """
    check_correspondence(correspondence)
    cfg = asdict(fit_config if fit_config is not None else FitConfig())
    if not cfg["compile"]:  # an eager fit keeps the keys it had before the option existed
        del cfg["compile"]
    fields: list[Any] = [list(photo.pixels.shape), str(photo.pixels.dtype), size, cfg]
    if correspondence in LEARNED_CORRESPONDENCES:
        fields.append({"correspondence": correspondence,
                       "checkpoint_sha256": checkpoint_digest(bodymap_checkpoint)})  # fmt: skip
    h = hashlib.sha1(np.ascontiguousarray(photo.pixels).tobytes())
    h.update(json.dumps(fields, sort_keys=True).encode())
    return h.hexdigest()


def _zero_timings(hit: PersonAnalysis, **extra: float) -> dict[str, float]:
    """The timings of a cache hit: every stage of ``hit`` (at least :data:`_CACHED_TIMINGS`,
    ``bodymap`` too for a refined one) at 0, then ``extra``."""
    stages = (*_CACHED_TIMINGS, *(k for k in hit.timings if k not in _CACHED_TIMINGS))
    return dict.fromkeys((k for k in stages if k != "cache"), 0.0) | extra


def _load_notice(photo: LoadedImage, name: str) -> list[str]:
    """The notice :func:`analyse_person` makes from loading ``photo`` (as it names it)."""
    return [f"{name}: {photo.notice}"] if photo.notice else []


class AnalysisCache:
    """:func:`~reroute.correspondence.analyse.analyse_person`, analysed once per photo.

    Thread-safe: one lock guards the in-memory LRU and the counters; analyses
    and disk reads/writes run outside it, so two requests for the same new
    photo may both analyse it (the later store wins; nothing is corrupted).

    Args:
        max_items: analyses kept in memory (least recently used dropped first), >= 1.
            One 256 px analysis takes about 2 MB.
        directory: a folder for ``<key>.npz`` files (created on the first write), or
            ``None`` for memory only.

    Attributes:
        hits: lookups served from memory or disk.
        disk_hits: those of ``hits`` read from ``directory``.
        misses: lookups that ran the analysis (including those that raised).
    Raises:
        ValueError: ``max_items`` < 1.
    """

    def __init__(self, max_items: int = 16, directory: str | Path | None = None):
        if max_items < 1:
            raise ValueError(f"max_items must be at least 1, got {max_items}")
        self.max_items = max_items
        self.directory = Path(directory) if directory is not None else None
        self._lock = threading.Lock()
        self._items: OrderedDict[str, PersonAnalysis] = OrderedDict()
        self.hits = 0
        self.disk_hits = 0
        self.misses = 0

    # ------------------------------------------------------------ lookups

    def get_or_analyse(self, photo: Any, *, size: int | None = 256, name: str = "photo",
                       fit_config: FitConfig | None = None,
                       correspondence: str = DEFAULT_CORRESPONDENCE,
                       bodymap_checkpoint: str | Path | None = None) -> PersonAnalysis:  # fmt: skip
        """The analysis of ``photo`` at ``size``: from memory, from disk, else analysed now.

        Args:
            photo: a :class:`~reroute.io.images.LoadedImage` (anything else is loaded
                with :func:`~reroute.io.images.load_image` first).
            size, name, fit_config, correspondence, bodymap_checkpoint: as for
                :func:`~reroute.correspondence.analyse.analyse_person` (the method and
                checkpoint are part of the key: see :func:`analysis_key`).
        Returns:
            :class:`~reroute.correspondence.analyse.PersonAnalysis` (a copy; see the module
            docstring for ``cached`` and ``timings``).
        Raises:
            InputError: as :func:`~reroute.correspondence.analyse.analyse_person` (unknown
                correspondence method or missing checkpoint, not an image, no person,
                several persons, failed fit); nothing is cached then.
        """
        return self.get_or_analyse_many([photo], size=size, names=[name], fit_config=fit_config,
                                        correspondence=correspondence,
                                        bodymap_checkpoint=bodymap_checkpoint)[0]  # fmt: skip

    def get_or_analyse_many(self, photos: list, *, size: int | None = 256,
                            names: list[str] | None = None, fit_config: FitConfig | None = None,
                            correspondence: str = DEFAULT_CORRESPONDENCE,
                            bodymap_checkpoint: str | Path | None = None) -> list[PersonAnalysis]:  # fmt: skip
        """:meth:`get_or_analyse` for several photos; those not cached are analysed
        together (:func:`~reroute.correspondence.analyse.analyse_people`: one batched
        fit), a photo given twice once.

        Args:
            photos: as ``photo`` of :meth:`get_or_analyse`, one per entry.
            names: how to call each photo in messages (default ``"photo 1"``, ...).
            size, fit_config, correspondence, bodymap_checkpoint: as for :meth:`get_or_analyse`.
        Returns:
            one analysis (a copy) per photo, in order.
        Raises:
            InputError: as :func:`~reroute.correspondence.analyse.analyse_people` (the
                method and its checkpoint are checked first); nothing from this call is
                cached then.
        """
        t0 = time.perf_counter()
        # an unknown method or a missing checkpoint fails here, before any photo is read
        load_correspondence_model(correspondence, bodymap_checkpoint)
        how = {"fit_config": fit_config, "correspondence": correspondence,
               "bodymap_checkpoint": bodymap_checkpoint}  # fmt: skip
        names = list(names) if names is not None else [f"photo {i + 1}" for i in range(len(photos))]
        loaded = [p if isinstance(p, LoadedImage) else load_image(p, name=n)
                  for p, n in zip(photos, names, strict=True)]  # fmt: skip
        keys = [analysis_key(p, size, **how) for p in loaded]
        out: list[PersonAnalysis | None] = [None] * len(loaded)
        todo: dict[str, int] = {}  # key -> first photo that needs analysing
        for i, key in enumerate(keys):
            hit = self._lookup(key)
            if hit is None:
                todo.setdefault(key, i)
                continue
            timings = _zero_timings(hit)
            timings["cache"] = time.perf_counter() - t0
            out[i] = replace(hit, notices=_load_notice(loaded[i], names[i]) + hit.notices,
                             timings=timings, cached=True)  # fmt: skip
        if todo:
            with self._lock:
                self.misses += len(todo)
            first = list(todo.values())
            stored_by_key: dict[str, PersonAnalysis] = {}
            fresh = analyse_people([loaded[i] for i in first], size=size,
                                   names=[names[i] for i in first], **how)  # fmt: skip
            for i, res in zip(first, fresh, strict=True):
                own = _load_notice(loaded[i], names[i])
                stored = replace(res, notices=[n for n in res.notices if n not in own],
                                 timings=dict(res.timings), cached=False)  # fmt: skip
                stored_by_key[keys[i]] = stored
                with self._lock:
                    self._store(keys[i], stored)
                if self.directory is not None:
                    self._write(keys[i], stored)
                out[i] = replace(res, notices=list(res.notices), timings=dict(res.timings),
                                 cached=False)  # fmt: skip
            for i, key in enumerate(keys):  # a photo given twice: the second is a hit
                if out[i] is None:
                    with self._lock:
                        self.hits += 1
                    out[i] = replace(stored_by_key[key],
                                     notices=_load_notice(loaded[i], names[i])
                                     + stored_by_key[key].notices,
                                     timings=_zero_timings(stored_by_key[key], cache=0.0),
                                     cached=True)  # fmt: skip
        return out  # type: ignore[return-value]

    def _lookup(self, key: str) -> PersonAnalysis | None:
        """The stored analysis of ``key`` from memory, else from disk (counted as a hit)."""
        with self._lock:
            hit = self._items.get(key)
            if hit is not None:
                self._items.move_to_end(key)
                self.hits += 1
                return hit
        if self.directory is None:
            return None
        hit = self._read(key)
        if hit is not None:
            with self._lock:
                self._store(key, hit)
                self.hits += 1
                self.disk_hits += 1
        return hit

    def contains(self, photo: LoadedImage, size: int | None = 256,
                 fit_config: FitConfig | None = None, correspondence: str = DEFAULT_CORRESPONDENCE,
                 bodymap_checkpoint: str | Path | None = None) -> bool:  # fmt: skip
        """Whether :meth:`get_or_analyse` would serve ``photo`` at ``size`` (with
        ``fit_config`` and ``correspondence``) without analysing.

        True when it is in memory or has a file in ``directory`` (not opened:
        an unreadable file still says True).

        Raises:
            InputError: see :func:`analysis_key`.
        """
        key = analysis_key(photo, size, fit_config, correspondence, bodymap_checkpoint)
        with self._lock:
            if key in self._items:
                return True
        return self.directory is not None and self._path(key).is_file()

    def __contains__(self, item: LoadedImage | tuple) -> bool:
        """``photo in cache`` (default size 256) or ``(photo, size[, fit_config[,
        correspondence[, bodymap_checkpoint]]]) in cache``."""
        if isinstance(item, tuple):
            return self.contains(*item)
        return self.contains(item)

    def __len__(self) -> int:
        """Analyses held in memory."""
        with self._lock:
            return len(self._items)

    def clear(self) -> None:
        """Drop every analysis held in memory and reset the counters (files stay)."""
        with self._lock:
            self._items.clear()
            self.hits = self.disk_hits = self.misses = 0

    # ------------------------------------------------------------ memory

    def _store(self, key: str, analysis: PersonAnalysis) -> None:
        """Insert as most recently used and evict beyond ``max_items`` (caller holds the lock)."""
        self._items[key] = analysis
        self._items.move_to_end(key)
        while len(self._items) > self.max_items:
            self._items.popitem(last=False)

    # ------------------------------------------------------------ disk

    def _path(self, key: str) -> Path:
        assert self.directory is not None
        return self.directory / f"{key}.npz"

    def _write(self, key: str, analysis: PersonAnalysis) -> None:
        """Write ``<key>.npz`` atomically; a failure is logged, never raised."""
        arrays = to_arrays(analysis)
        try:
            write_atomic(self._path(key), lambda f: np.savez(f, **arrays))
        except InputError as exc:  # a full or read-only disk must not fail the analysis
            log.warning("analysis cache: %s", exc)

    def _read(self, key: str) -> PersonAnalysis | None:
        """The analysis in ``<key>.npz``, or None when absent, unreadable or of another version."""
        path = self._path(key)
        if not path.is_file():
            return None
        try:
            data = path.read_bytes()
            with np.load(io.BytesIO(data), allow_pickle=False) as npz:
                return from_arrays({k: npz[k] for k in npz.files})
        except Exception as exc:  # noqa: BLE001 - any damage makes the file a miss
            log.warning("analysis cache: ignoring %s (%s)", path.name, str(exc)[:200])
            return None


# ---------------------------------------------------------------- (de)serialisation


def to_arrays(a: PersonAnalysis) -> dict[str, np.ndarray]:
    """``a`` as the entries of a format-1 ``.npz`` (see the module docstring)."""
    parts = {"": a, "observation": a.observation, "body": a.body,
             "correspondence": a.correspondence}  # fmt: skip
    out = {(f"{p}.{f}" if p else f): np.asarray(getattr(parts[p], f))
           for p, names in ARRAY_FIELDS.items() for f in names}  # fmt: skip
    b, cam = a.body, a.body.camera
    meta: dict[str, Any] = {
        "format_version": FORMAT_VERSION,
        "original_size": [int(v) for v in a.original_size],
        "notices": [str(n) for n in a.notices],
        "timings": {str(k): float(v) for k, v in a.timings.items()},
        "correspondence_method": str(a.correspondence_method),
        "observation.image_size": [int(v) for v in a.observation.image_size],
        "body.camera": {
            "focal": float(cam.focal),
            "cx": float(cam.cx),
            "cy": float(cam.cy),
            "width": int(cam.width),
            "height": int(cam.height),
        },
    }
    for f in BODY_SCALARS:  # dicts of floats, a float, an int
        v = getattr(b, f)
        meta[f"body.{f}"] = ({str(k): float(x) for k, x in v.items()} if isinstance(v, dict)
                             else int(v) if isinstance(v, int | np.integer) else float(v))  # fmt: skip
    out["meta"] = np.array(json.dumps(meta))
    return out


def from_arrays(d: dict[str, np.ndarray]) -> PersonAnalysis:
    """The :class:`PersonAnalysis` of a format-1 ``.npz``'s entries (``cached`` False).

    Raises:
        ValueError: another ``format_version``.
        KeyError: an entry is missing.
    """
    meta = json.loads(str(d["meta"]))
    if meta.get("format_version") != FORMAT_VERSION:
        raise ValueError(f"format_version {meta.get('format_version')!r}, not {FORMAT_VERSION}")

    def arrays(prefix: str) -> dict[str, np.ndarray]:
        return {f: d[f"{prefix}.{f}" if prefix else f] for f in ARRAY_FIELDS[prefix]}

    obs = PersonObservation(**arrays("observation"),
                            image_size=tuple(meta["observation.image_size"]))  # fmt: skip
    body = FittedBody(**arrays("body"), camera=Camera(**meta["body.camera"]),
                      **{f: meta[f"body.{f}"] for f in BODY_SCALARS})  # fmt: skip
    corr = Correspondence(**arrays("correspondence"))
    return PersonAnalysis(arrays("")["image"], tuple(meta["original_size"]), obs, body, corr,
                          list(meta["notices"]), dict(meta["timings"]),
                          correspondence_method=meta.get("correspondence_method",
                                                         DEFAULT_CORRESPONDENCE))  # fmt: skip
