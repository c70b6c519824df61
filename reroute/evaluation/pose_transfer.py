"""Batch evaluation of pose transfer: generate and score a whole test split.

``python -m reroute evaluate --dataset deepfashion --root DIR --pairs FILE
--method warp --out OUT`` runs :func:`run_evaluation`, which

1. reads the pair list (:mod:`reroute.evaluation.datasets`), keeps the first ``--limit``;
2. under ``torchrun`` gives rank ``r`` of ``W`` the pairs ``r, r + W, ...``
   (gloo process group; one process otherwise);
3. for each pair not already done, loads both photos, brings them to the
   evaluation size (:func:`~reroute.evaluation.datasets.fit_to_size`), runs the method,
   writes ``OUT/images/<pair_id>.png`` and then ``OUT/records/<pair_id>.json``
   (each atomically: temporary file + rename). A pair is done when its record
   exists, so a rerun with the same ``--out`` resumes where a killed run
   stopped, and a killed run never leaves a half-written image or row;
4. logs and counts missing images (``missing``), unreadable ones
   (``unreadable``) and inputs the method rejects (``failed``, e.g. no person
   found) instead of stopping;
5. on rank 0, after all ranks finish, merges the records in pair-list order
   into ``OUT/per_pair.csv``, ``OUT/metrics.json`` (means, standard deviations,
   counts, exact metric variants, versions, checkpoint hashes, unavailable
   metrics with reasons, FID/IS when their weights exist) and
   ``OUT/report.html`` (sortable table, best and worst pairs).

Methods live in a registry (:func:`register_method`): ``identity`` (the source
photo unchanged: the floor every method must beat), ``warp`` (reroute's
classical pipeline, :class:`~reroute.pipelines.pose_transfer.PoseTransferPipeline`), and
``bodymap`` / ``dpt``, registered as unavailable until their trained networks
exist; selecting them is an :class:`~reroute.errors.InputError` saying so.
"""

from __future__ import annotations

import csv
import html
import io
import json
import math
import os
import platform
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from reroute.errors import InputError
from reroute.evaluation.datasets import (
    IMAGE_EXTS,
    PairList,
    PosePair,
    fit_to_size,
    read_deepfashion,
    read_folder,
    read_mvc,
    transform_keypoints,
)
from reroute.io.files import write_text_atomic
from reroute.io.images import load_image, save_image_atomic
from reroute.metrics.image import (
    METRIC_VARIANTS,
    NetworkMetrics,
    frechet_distance,
    inception_score_from_probs,
    pair_metrics,
)
from reroute.pipelines.registry import METHODS

__all__ = [
    "EvalConfig",
    "EvalSummary",
    "build_method",
    "parse_size",
    "load_pairs",
    "run_evaluation",
    "PER_PAIR_METRICS",
]

PER_PAIR_METRICS = ("ssim_patn", "ssim_gfla", "ms_ssim", "masked_ssim", "psnr", "l1", "lpips", "ds")
"""Per-pair metric columns of ``per_pair.csv``, in order."""

CSV_COLUMNS = ("pair_id", "source", "target", "status", "reason", *PER_PAIR_METRICS, "seconds")

EXIT_AFTER_ENV = "REROUTE_EVAL_EXIT_AFTER"
"""Test hook: ``os._exit(3)`` right after this many pairs were newly completed (kill simulation)."""

_REPO = Path(__file__).resolve().parents[1]


# ----------------------------------------------------------------------------- configuration


def parse_size(text: str) -> tuple[int, int]:
    """``"256x176"`` -> (256, 176) as (H, W); both sides 64..4096.

    Raises:
        InputError: not of the form HxW with integers in range.
    """
    try:
        h, w = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise InputError(f"--size must look like 256x176 (height x width), got {text!r}") from None
    if not (64 <= h <= 4096 and 64 <= w <= 4096):
        raise InputError(f"--size sides must lie in 64..4096 px, got {text}")
    return h, w


@dataclass
class EvalConfig:
    """One evaluation run.

    Attributes:
        dataset: ``deepfashion``, ``mvc`` or ``folder``.
        root: dataset folder.
        out: output folder (created; reused to resume).
        method: a name in :data:`METHODS`.
        pairs: pair list file (required for deepfashion; optional otherwise).
        annotation: keypoint CSV (DeepFashion layout); None: auto for deepfashion.
        limit: evaluate only the first N pairs of the list.
        size: (H, W) evaluation size; None: the protocol's (256x176 DeepFashion, 256x256 MVC/folder).
        patn_pad: white padding of PATN SSIM; None: 40 at width 176, else 0.
        mvc_seed, mvc_test_items: the MVC split.
        fid_reference: folder of real images for FID; None: the evaluated targets.
        lpips_weights, inception_weights, ssd_weights: weight files (else the torch cache).
        texture_size: UV texture side for the ``warp`` method.
        analysis_cache: folder of analysed photos (``<key>.npz``, see
            :mod:`reroute.correspondence.cache`) the ``warp`` and ``bodymap`` methods read
            and write, so a second run fits no photo again; None: memory only (each
            distinct photo of one run is still analysed once); ``dpt`` reads it too.
        dpt_checkpoint: the ``dpt`` method's checkpoint (e.g. a Table 4 variant);
            None: the committed ``checkpoints/dpt_cpu256.pt``.
        correspondence: ``fit`` (the rendered template fit) or ``bodymap`` (the fit
            refined by the BodyMap network) for the ``warp``, ``bodymap`` and ``dpt``
            methods; part of the analysis cache's key and, when not ``fit``, of the
            run's settings (``run.json``: a resumed run must use the same).
        bodymap_checkpoint: the BodyMap checkpoint; None: the committed
            ``checkpoints/bodymap_cpu256.pt`` (a missing file fails before any pair).
        progress: show a progress bar on stderr.
    """

    dataset: str
    root: str
    out: str
    method: str
    pairs: str | None = None
    annotation: str | None = None
    limit: int | None = None
    size: tuple[int, int] | None = None
    patn_pad: int | None = None
    mvc_seed: int = 0
    mvc_test_items: int = 1000
    fid_reference: str | None = None
    lpips_weights: str | None = None
    inception_weights: str | None = None
    ssd_weights: str | None = None
    texture_size: int = 256
    analysis_cache: str | None = None
    dpt_checkpoint: str | None = None
    correspondence: str = "fit"
    bodymap_checkpoint: str | None = None
    progress: bool = True


@dataclass
class EvalSummary:
    """What :func:`run_evaluation` returns (on every rank; ``metrics`` only on rank 0).

    Attributes:
        out: the output folder.
        counts: pairs per status over the whole run (rank 0) or this rank's shard.
        metrics: the ``metrics.json`` content (rank 0), else None.
        rank, world_size: this process's place under torchrun.
    """

    out: Path
    counts: dict[str, int]
    metrics: dict | None
    rank: int = 0
    world_size: int = 1


# ----------------------------------------------------------------------------- methods


def build_method(config: EvalConfig, size: tuple[int, int]):
    """Instantiate ``config.method``.

    Raises:
        InputError: unknown method, or one whose networks do not exist yet.
    """
    info = METHODS.get(config.method)
    if info is None:
        raise InputError(f"unknown method {config.method!r}; choose one of {', '.join(METHODS)}")
    if info.factory is None:
        raise InputError(f"method {info.name} is not available: {info.unavailable}")
    return info.factory(config, size)


# ----------------------------------------------------------------------------- pairs


def load_pairs(config: EvalConfig) -> PairList:
    """Read the pair list of ``config`` (all pairs; ``limit`` is applied by the caller).

    Raises:
        InputError: unknown dataset, missing root or list, malformed files.
    """
    if config.dataset == "deepfashion":
        if config.pairs is None:
            raise InputError("--pairs is required for --dataset deepfashion "
                             "(fashion-pairs-test.csv or test_pairs.txt)")  # fmt: skip
        return read_deepfashion(config.root, config.pairs, annotation=config.annotation)
    if config.dataset == "mvc":
        return read_mvc(config.root, config.pairs, seed=config.mvc_seed,
                        n_test=config.mvc_test_items)  # fmt: skip
    if config.dataset == "folder":
        return read_folder(config.root, config.pairs, annotation=config.annotation)
    raise InputError(f"unknown dataset {config.dataset!r}; choose deepfashion, mvc or folder")


# ----------------------------------------------------------------------------- distributed


def _dist_setup() -> tuple[int, int, bool]:
    """(rank, world_size, initialised_here) from torchrun's environment (gloo backend)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return 0, 1, False
    import torch.distributed as dist

    if not dist.is_initialized():
        dist.init_process_group("gloo")
        return dist.get_rank(), dist.get_world_size(), True
    return dist.get_rank(), dist.get_world_size(), False


def _barrier(world: int) -> None:
    if world > 1:
        import torch.distributed as dist

        dist.barrier()


# ----------------------------------------------------------------------------- IO helpers


class _Log:
    """Appends one line per event to ``OUT/evaluate.log`` (O_APPEND) and echoes warnings."""

    def __init__(self, path: Path, rank: int, quiet: bool):
        self.path, self.rank, self.quiet = path, rank, quiet

    def __call__(self, msg: str, *, warn: bool = False) -> None:
        line = f"{time.strftime('%Y-%m-%d %H:%M:%S')} rank{self.rank} {msg}\n"
        with open(self.path, "a") as f:
            f.write(line)
        if warn and not self.quiet:
            print(f"warning: {msg}", file=sys.stderr)


def _fmt(v) -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        return repr(v)
    return str(v)


# ----------------------------------------------------------------------------- one pair


def _process_pair(pair: PosePair, size, patn_pad, method, netm) -> tuple[dict, np.ndarray | None]:
    rec: dict = {"pair_id": pair.pair_id, "source": pair.source_name, "target": pair.target_name}
    try:
        src = load_image(pair.source).pixels
        tgt = load_image(pair.target).pixels
    except InputError as e:
        rec.update(status="unreadable", reason=str(e))
        return rec, None
    src, _ = fit_to_size(src, size)
    tgt, crop = fit_to_size(tgt, size)

    tkp = transform_keypoints(pair.target_keypoints, crop)
    t0 = time.perf_counter()
    try:
        gen = method(src, tgt, tkp)
    except InputError as e:
        rec.update(status="failed", reason=str(e), seconds=time.perf_counter() - t0)
        return rec, None
    seconds = time.perf_counter() - t0
    gen = np.asarray(gen)
    if gen.dtype != np.uint8 or gen.ndim != 3 or gen.shape[2] != 3:
        raise TypeError(f"method returned {gen.dtype} {gen.shape}; expected (H, W, 3) uint8")
    if gen.shape[:2] != size:
        gen, _ = fit_to_size(gen, size)

    rec.update(status="ok", reason="")
    rec.update(pair_metrics(gen, tgt, target_keypoints=tkp, patn_pad=patn_pad))
    rec.update(netm.pair(gen, tgt))
    rec["seconds"] = seconds
    return rec, gen


# ----------------------------------------------------------------------------- the run


def _run_settings(config: EvalConfig, pl: PairList, size, patn_pad) -> dict:
    settings = {
        "dataset": config.dataset,
        "root": str(Path(config.root).resolve()),
        "pairs_file": str(Path(pl.pairs_file).resolve()) if pl.pairs_file else None,
        "method": config.method,
        "size": list(size),
        "patn_pad": patn_pad,
        "mvc_seed": config.mvc_seed if config.dataset == "mvc" else None,
        "mvc_test_items": config.mvc_test_items if config.dataset == "mvc" else None,
    }
    # correspondences other than the fit are recorded; a fit run's settings stay as they
    # were before the option existed, so older runs still resume
    if config.correspondence != "fit":
        ck = config.bodymap_checkpoint
        settings["correspondence"] = config.correspondence
        settings["bodymap_checkpoint"] = str(Path(ck).resolve()) if ck else None
    return settings


def _prepare_out(out: Path, settings: dict) -> None:
    """Create the folders, refuse an --out holding another run, drop stale temp files."""
    for d in (out, out / "images", out / "records"):
        if d.exists() and not d.is_dir():
            raise InputError(f"{d} exists and is not a directory")
        d.mkdir(parents=True, exist_ok=True)
    run = out / "run.json"
    if run.exists():
        try:
            old = json.loads(run.read_text())
        except (OSError, ValueError):
            old = None
        if old != settings:
            diff = [k for k in settings if old is None or old.get(k) != settings[k]]
            raise InputError(f"--out {out} holds a run with other settings ({', '.join(diff)}); "
                             f"use a new --out or the same settings to resume")  # fmt: skip
    else:
        write_text_atomic(run, json.dumps(settings, indent=1))
    for d in (out / "images", out / "records", out / "grid", out):
        if d.is_dir():
            for p in d.glob(".*.tmp"):
                p.unlink(missing_ok=True)


def run_evaluation(config: EvalConfig) -> EvalSummary:
    """Generate and score the pairs of ``config`` (see the module docstring).

    Returns:
        :class:`EvalSummary`.
    Raises:
        InputError: bad dataset, pair list, size, method or output folder.
    """
    pl = load_pairs(config)
    size = config.size or pl.default_size
    patn_pad = config.patn_pad if config.patn_pad is not None else (40 if size[1] == 176 else 0)
    pairs = pl.pairs[: config.limit] if config.limit is not None else list(pl.pairs)
    if config.limit is not None and config.limit < 1:
        raise InputError(f"--limit must be at least 1, got {config.limit}")
    method = build_method(config, size)  # fails fast for unavailable methods
    out = Path(config.out)
    settings = _run_settings(config, pl, size, patn_pad)
    rank, world, owned = _dist_setup()
    try:
        if rank == 0:
            _prepare_out(out, settings)
        _barrier(world)
        if rank != 0 and json.loads((out / "run.json").read_text()) != settings:
            raise InputError(f"--out {out} holds a run with other settings")
        log = _Log(out / "evaluate.log", rank, quiet=not config.progress)

        netm = NetworkMetrics(config.lpips_weights, config.inception_weights, config.ssd_weights)
        shard = pairs[rank::world]
        counts = _run_shard(shard, out, size, patn_pad, method, netm, log, config.progress,
                            rank, world)  # fmt: skip
        _barrier(world)
        metrics = None
        if rank == 0:
            metrics = _merge(config, pl, pairs, out, size, patn_pad, method, netm, world, log)
            counts = metrics["counts"]
        _barrier(world)
        return EvalSummary(out, counts, metrics, rank, world)
    finally:
        if owned:
            import torch.distributed as dist

            dist.destroy_process_group()


def _run_shard(shard, out, size, patn_pad, method, netm, log, progress, rank, world) -> dict:
    from tqdm import tqdm

    counts = {"ok": 0, "missing": 0, "unreadable": 0, "failed": 0, "skipped_done": 0}
    todo = []
    for p in shard:
        if (out / "records" / f"{p.pair_id}.json").exists():
            counts["skipped_done"] += 1
        elif p.missing:
            counts["missing"] += 1
            log(f"{p.pair_id}: missing image(s) {', '.join(p.missing)}")
        else:
            todo.append(p)
    if counts["missing"]:
        log(f"{counts['missing']} pair(s) of this shard have missing images (see evaluate.log)",
            warn=True)  # fmt: skip
    exit_after = int(os.environ.get(EXIT_AFTER_ENV, "0") or 0)
    bar = tqdm(todo, desc=f"evaluate rank {rank}" if world > 1 else "evaluate", unit="pair",
               disable=not progress, file=sys.stderr, mininterval=1.0, dynamic_ncols=True)  # fmt: skip
    done_now = 0
    for p in bar:
        rec, gen = _process_pair(p, size, patn_pad, method, netm)
        if gen is not None:
            save_image_atomic(out / "images" / f"{p.pair_id}.png", gen)
        else:
            log(f"{p.pair_id}: {rec['status']}: {rec['reason']}", warn=True)
        write_text_atomic(out / "records" / f"{p.pair_id}.json", json.dumps(rec))
        counts[rec["status"]] += 1
        done_now += 1
        if exit_after and done_now >= exit_after:
            bar.close()
            os._exit(3)
    bar.close()
    cache = getattr(method, "cache", None)  # warp, bodymap: an AnalysisCache
    if cache is not None and todo:
        log(f"analysis cache: {cache.hits} hits ({cache.disk_hits} from disk), "
            f"{cache.misses} analyses")  # fmt: skip
    return counts


# ----------------------------------------------------------------------------- merge


def _versions() -> dict:
    import importlib.metadata as md

    v = {"python": platform.python_version()}
    for pkg in ("reroute", "torch", "torchvision", "numpy", "scikit-image", "scipy", "lpips",
                "opencv-contrib-python", "mediapipe", "anny"):  # fmt: skip
        try:
            v[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            pass
    try:
        r = subprocess.run(["git", "-C", str(_REPO), "rev-parse", "HEAD"], capture_output=True,
                           text=True, timeout=10)  # fmt: skip
        if r.returncode == 0:
            v["git_commit"] = r.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        pass
    return v


def _stats(values: list[float]) -> dict:
    a = np.asarray([v for v in values if v is not None], dtype=np.float64)
    fin = a[np.isfinite(a)]
    d = {"mean": float(fin.mean()) if fin.size else None,
         "std": float(fin.std(ddof=1)) if fin.size > 1 else None,
         "count": int(fin.size)}  # fmt: skip
    if a.size - fin.size:
        d["non_finite"] = int(a.size - fin.size)
    return d


def _merge(config, pl, pairs, out, size, patn_pad, method, netm, world, log) -> dict:

    rows = []
    counts = {
        "total": len(pairs),
        "ok": 0,
        "missing": 0,
        "unreadable": 0,
        "failed": 0,
        "pending": 0,
    }
    for p in pairs:
        rp = out / "records" / f"{p.pair_id}.json"
        if rp.exists():
            rec = json.loads(rp.read_text())
        elif p.missing:
            rec = {"pair_id": p.pair_id, "source": p.source_name, "target": p.target_name,
                   "status": "missing", "reason": "missing image(s): " + ", ".join(p.missing)}  # fmt: skip
        else:
            counts["pending"] += 1
            continue
        counts[rec["status"]] += 1
        rows.append(rec)
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(CSV_COLUMNS)
    for r in rows:
        w.writerow([_fmt(r.get(c)) for c in CSV_COLUMNS])
    write_text_atomic(out / "per_pair.csv", buf.getvalue())

    ok = [r for r in rows if r["status"] == "ok"]
    metrics: dict = {}
    for m in PER_PAIR_METRICS:
        if m in ("lpips", "ds") and not netm.available.get(m):
            continue
        st = _stats([r.get(m) for r in ok])
        st["variant"] = METRIC_VARIANTS[m].format(pad=patn_pad)
        metrics[m] = st
    unavailable = {k: v for k, v in netm.reasons.items() if not netm.available.get(k)}
    set_metrics = _set_metrics(config, ok, out, size, netm, log)
    for k in ("fid", "is"):
        if k in set_metrics:
            metrics[k] = set_metrics[k]
    secs = [r.get("seconds") for r in ok]
    result = {
        "dataset": pl.dataset,
        "protocol": pl.protocol,
        "pairs_file": pl.pairs_file,
        "limit": config.limit,
        "method": config.method,
        "method_description": METHODS[config.method].description,
        "size": {"height": size[0], "width": size[1]},
        "image_preparation": "centre crop to the evaluation aspect ratio, then OpenCV INTER_AREA "
        "(shrink) / INTER_CUBIC (enlarge) resize; generated images saved as PNG (lossless)",
        "counts": counts,
        "metrics": metrics,
        "unavailable": unavailable,
        "seconds_per_pair": _stats(secs),
        "world_size": world,
        "versions": _versions(),
        "checkpoints": {**getattr(method, "checkpoints", {}), **netm.weights},
    }
    write_text_atomic(out / "metrics.json", json.dumps(result, indent=1))
    _write_report(out, result, rows, pairs)
    log(f"merged {len(rows)} rows: {counts}")
    return result


def _set_metrics(config, ok, out, size, netm, log) -> dict:
    """FID and IS over the generated images, when the Inception weights exist."""

    if not (netm.available.get("fid") or netm.available.get("is")) or not ok:
        return {}

    def feats(paths):
        pools, probs = [], []
        for i in range(0, len(paths), 16):
            batch = np.stack(
                [fit_to_size(load_image(p).pixels, size)[0] for p in paths[i : i + 16]]
            )
            a, b = netm.inception_features(batch)
            pools.append(a)
            probs.append(b)
        return np.concatenate(pools), np.concatenate(probs)

    gen_paths = [out / "images" / f"{r['pair_id']}.png" for r in ok]
    g_pool, g_prob = feats(gen_paths)
    res = {}
    net = netm.inception_network
    if netm.available.get("is"):
        splits = min(10, len(ok))
        mean, std = inception_score_from_probs(g_prob, splits)
        res["is"] = {"mean": mean, "std": std, "count": len(ok),
                     "variant": METRIC_VARIANTS["is"].format(classes=1000, splits=splits, network=net)}  # fmt: skip
    if netm.available.get("fid"):
        if config.fid_reference:
            ref_paths = sorted(p for p in Path(config.fid_reference).iterdir()
                               if p.suffix.lower() in IMAGE_EXTS)  # fmt: skip
            ref_desc = f"all images in {config.fid_reference}"
        else:
            root = Path(config.root)
            pl = load_pairs(config)
            by_id = {p.pair_id: p for p in pl.pairs}
            ref_paths = [by_id[r["pair_id"]].target for r in ok]
            ref_desc = f"the {len(ref_paths)} real target images of the evaluated pairs ({root})"
        if len(ok) < 2 or len(ref_paths) < 2:
            res["fid"] = {
                "mean": None,
                "count": len(ok),
                "variant": "needs at least 2 images per set",
            }
        else:
            r_pool, _ = feats(ref_paths)
            fid = frechet_distance(g_pool.mean(0), np.cov(g_pool, rowvar=False),
                                   r_pool.mean(0), np.cov(r_pool, rowvar=False))  # fmt: skip
            res["fid"] = {"mean": fid, "count": len(ok), "reference_count": len(ref_paths),
                          "variant": METRIC_VARIANTS["fid"].format(network=net)
                          + f"; reference: {ref_desc}, prepared like the targets"}  # fmt: skip
    return res


# ----------------------------------------------------------------------------- HTML


_JS = """
function sortTable(t, col) {
  const tb = t.tBodies[0], rows = Array.from(tb.rows);
  const asc = t.dataset.col == col ? t.dataset.asc != "1" : false;
  rows.sort((a, b) => {
    const x = a.cells[col].dataset.v ?? a.cells[col].textContent;
    const y = b.cells[col].dataset.v ?? b.cells[col].textContent;
    const nx = parseFloat(x), ny = parseFloat(y);
    const c = (isNaN(nx) || isNaN(ny)) ? x.localeCompare(y) : nx - ny;
    return asc ? c : -c;
  });
  rows.forEach(r => tb.appendChild(r));
  t.dataset.col = col; t.dataset.asc = asc ? "1" : "0";
}
"""


def _write_report(out: Path, result: dict, rows: list[dict], pairs: list[PosePair]) -> None:
    """``report.html``: summary, sortable per-pair table, best and worst pairs by PATN SSIM."""
    e = html.escape
    ok = [r for r in rows if r["status"] == "ok" and r.get("ssim_patn") is not None]
    ranked = sorted(ok, key=lambda r: r["ssim_patn"])
    k = min(6, len(ranked) // 2) if len(ranked) > 1 else len(ranked)
    worst, best = ranked[:k], ranked[::-1][:k]
    by_id = {p.pair_id: p for p in pairs}
    (out / "grid").mkdir(exist_ok=True)
    size = (result["size"]["height"], result["size"]["width"])
    for r in {r["pair_id"]: r for r in worst + best}.values():
        p = by_id[r["pair_id"]]
        try:
            s = fit_to_size(load_image(p.source).pixels, size)[0]
            t = fit_to_size(load_image(p.target).pixels, size)[0]
            g = load_image(out / "images" / f"{p.pair_id}.png").pixels
        except InputError:
            continue
        save_image_atomic(out / "grid" / f"{p.pair_id}.jpg", np.concatenate([s, g, t], axis=1))

    def fmtv(v):
        if v is None or (isinstance(v, float) and not math.isfinite(v)):
            return "" if v is None else str(v)
        return f"{v:.4f}" if isinstance(v, float) else str(v)

    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>reroute evaluation: {e(result['method'])} on {e(result['dataset'])}</title>",
        "<style>body{font-family:sans-serif;margin:1em}table{border-collapse:collapse}"
        "td,th{border:1px solid #ccc;padding:2px 6px;font-size:13px}th{cursor:pointer;"
        "background:#eee}.grid img{height:160px;margin:2px}.fig{display:inline-block;"
        "margin:4px;font-size:12px}</style>",
        f"<script>{_JS}</script></head><body>",
        f"<h1>{e(result['method'])} on {e(result['protocol'])}</h1>",
        f"<p>size {size[0]}x{size[1]}; counts {e(json.dumps(result['counts']))}</p>",
        "<h2>Means</h2><table><tr><th>metric</th><th>mean</th><th>std</th><th>count</th>"
        "<th>variant</th></tr>",
    ]
    for name, st in result["metrics"].items():
        parts.append(f"<tr><td>{e(name)}</td><td>{fmtv(st.get('mean'))}</td>"
                     f"<td>{fmtv(st.get('std'))}</td><td>{st.get('count')}</td>"
                     f"<td>{e(st.get('variant', ''))}</td></tr>")  # fmt: skip
    parts.append("</table>")
    if result["unavailable"]:
        parts.append("<h2>Unavailable</h2><ul>")
        parts += [f"<li>{e(k)}: {e(v)}</li>" for k, v in result["unavailable"].items()]
        parts.append("</ul>")
    for title, group in (("Best pairs (PATN SSIM)", best), ("Worst pairs (PATN SSIM)", worst)):
        parts.append(f"<h2>{title}</h2><p>source | generated | target</p><div class='grid'>")
        for r in group:
            if (out / "grid" / f"{r['pair_id']}.jpg").exists():
                parts.append(f"<div class='fig'><img src='grid/{e(r['pair_id'])}.jpg'><br>"
                             f"{e(r['pair_id'])} SSIM {r['ssim_patn']:.4f}</div>")  # fmt: skip
        parts.append("</div>")
    cols = [c for c in CSV_COLUMNS if c not in ("source", "target")]
    parts.append("<h2>Pairs</h2><p>click a header to sort</p><table id='pairs'><thead><tr>")
    parts += [f"<th onclick='sortTable(this.closest(\"table\"),{i})'>{e(c)}</th>"
              for i, c in enumerate(cols)]  # fmt: skip
    parts.append("</tr></thead><tbody>")
    for r in rows:
        cells = []
        for c in cols:
            v = r.get(c)
            dv = "" if v is None else repr(v) if isinstance(v, float) else str(v)
            cells.append(f"<td data-v='{e(dv)}'>{e(fmtv(v))}</td>")
        parts.append("<tr>" + "".join(cells) + "</tr>")
    parts.append("</tbody></table></body></html>")
    write_text_atomic(out / "report.html", "\n".join(parts))


def config_dict(config: EvalConfig) -> dict:
    """The configuration as a plain dict (for logging)."""
    return asdict(config)
