"""Command line: python -m reroute COMMAND, one command per workflow.

Commands: ``transfer``, ``try-on``, ``novel-view``, ``correspond``, ``synth``,
``eval-correspondence``, ``evaluate``.

Errors caused by the input print one line ``error: ...`` on stderr and exit
with code 2; nothing is written at the output path in that case (outputs are
written to a temporary file and renamed into place). Argument errors follow the
same rule (one ``error:`` line, exit 2).

Start-up stays light: torch, anny and mediapipe are imported inside the command
functions, so ``python -m reroute --help`` and argument errors answer in well under a
second. The names ``--texture``, ``--rerender``, ``--correspondence`` and ``--region`` take come from
:mod:`reroute.pipelines.registry`, which imports torch (~3-4 s): a command checks them
after its cheap checks (output extension, ranges, the photos), and a command's
``--help`` lists them (so ``try-on --help`` takes a few seconds).
"""

from __future__ import annotations

import argparse
import functools
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path

import cv2

from reroute.errors import InputError
from reroute.io.files import write_text_atomic
from reroute.io.images import MAX_SIDE, MIN_SIDE, load_image, save_image_atomic
from reroute.io.iuv import read_iuv, write_iuv
from reroute.io.video import write_mp4

EXIT_INPUT = 2
#: ``correspond --coverage densepose``: extension beyond the rendered body, as a
#: share of the longer image side (4 px at 256 px; measured on UBC Fashion
#: against DensePose R-CNN, benchmarks/ubc_correspondence.py)
DENSEPOSE_EXTEND = 4.0 / 256
#: ``novel-view --size`` upper bound: 360 frames of 1024 px are ~1.1 GB in memory
MAX_VIDEO_SIDE = 1024
#: ``novel-view --fps`` range (what :func:`reroute.io.video.write_mp4` accepts)
FPS_RANGE = (1.0, 120.0)
IMAGE_EXTS = (".png", ".jpg", ".jpeg")
#: ``transfer --rerender`` default (kept here, not imported from :mod:`renderer`: building
#: the parser must not import torch): the re-renderer raised SSIM over the warp on every
#: held-out pair (checkpoints/rerenderer_cpu256.json). ``try-on`` and ``novel-view`` keep
#: "none": the re-renderer was trained and measured on pose transfer only.
DEFAULT_RERENDER = "network"

#: ``transfer --method`` choices (``bodymap``: the UV warp then ``--rerender``; ``dpt``:
#: Dense Pose Transfer, renderer/dpt)
TRANSFER_METHODS = ("bodymap", "dpt")


def _check_out(path: str, exts: tuple[str, ...] = IMAGE_EXTS) -> Path:
    p = Path(path)
    if p.suffix.lower() not in exts:
        raise InputError(f"output {path} must end in {' or '.join(exts)}")
    if p.is_dir():
        raise InputError(f"output {path} is a directory")
    return p


def _check_range(option: str, value: float, lo: float, hi: float, unit: str = "") -> None:
    if not lo <= value <= hi:
        raise InputError(f"{option} must be between {lo:g} and {hi:g}{unit}, got {value:g}")


def _completion(method: str, checkpoint: str | None) -> Callable:
    """``complete(partial UVTexture) -> UVTexture`` for a texture completion name."""
    # the completions import torch
    from reroute.pipelines.completion import completion_function, load_completion

    _check_choice("--texture", method, _registry().TEXTURE_COMPLETIONS)
    load_completion(method, checkpoint)  # a missing checkpoint fails here, before any fit
    return completion_function(method, checkpoint)


def _correspondence(args) -> dict:
    """``{"correspondence": NAME, "bodymap_checkpoint": PATH}`` of ``--correspondence`` and
    ``--bodymap-checkpoint``, the name checked and a BodyMap network loaded now, so a missing
    checkpoint fails (one ``error:`` line) before any photo is processed."""
    # the correspondence methods import torch
    from reroute.pipelines.correspondences import load_correspondence

    method = _check_choice("--correspondence", args.correspondence, _registry().CORRESPONDENCES)
    load_correspondence(method, args.bodymap_checkpoint)
    return {"correspondence": method, "bodymap_checkpoint": args.bodymap_checkpoint}


def _notes(notices: list[str]) -> None:
    for n in notices:
        print(f"note: {n}", file=sys.stderr)


def _timings(timings: dict[str, float]) -> dict[str, float]:
    return {k: round(v, 3) for k, v in timings.items()}


def _cmd_transfer(args) -> int:
    out = _check_out(args.out)
    _check_range("--size", args.size, MIN_SIDE, MAX_SIDE, " px")
    _check_choice("--method", args.method, TRANSFER_METHODS)
    how = _correspondence(args)
    if args.method == "dpt":
        return _transfer_dpt(args, out, how)
    # these import torch, anny and mediapipe: not at start-up
    from reroute.pipelines.pose_transfer import PoseTransferPipeline
    from reroute.uv.atlas import continuous_to_atlas

    pipe = PoseTransferPipeline(
        size=args.size,
        texture_size=args.texture_size,
        texture=args.texture,
        texture_checkpoint=args.texture_checkpoint,
        rerender=_check_choice("--rerender", args.rerender, _registry().RERENDERINGS),
        rerender_checkpoint=args.rerender_checkpoint,
        **how,
    )
    res = pipe(args.source, args.target)
    _notes(res.notices)
    if args.debug_dir:
        d = _debug_iuv(Path(args.debug_dir), res)
        save_image_atomic(d / "texture_partial.png", res.partial_texture.to_uint8())
        save_image_atomic(d / "texture_completed.png", res.texture.to_uint8())
        atlas = continuous_to_atlas(res.texture.pixels, tile=128)
        save_image_atomic(
            d / "atlas_completed.png", (atlas.clip(0, 1) * 255).round().astype("uint8")
        )
        save_image_atomic(d / "warped.png", res.warped)
        save_image_atomic(d / "composite_warp_only.png", res.composite)
        (d / "timings.json").write_text(json.dumps(res.timings, indent=1))
    save_image_atomic(out, res.image)
    print(json.dumps({"out": str(out), "rerendered": res.rerendered,
                      "correspondence": how["correspondence"],
                      "timings_s": _timings(res.timings)}))  # fmt: skip
    return 0


def _debug_iuv(d: Path, res) -> Path:
    """Create ``d`` and write both photos' IUV maps there (raw ``iuv_*.png``, viewable ``iuv_*_vis.png``)."""
    # imports torch: not at start-up
    from reroute.correspondence.maps import iuv_to_rgb

    d.mkdir(parents=True, exist_ok=True)
    for who, a in (("source", res.source), ("target", res.target)):
        iuv = a.correspondence.to_iuv()
        write_iuv(d / f"iuv_{who}.png", iuv)
        save_image_atomic(d / f"iuv_{who}_vis.png", iuv_to_rgb(iuv))
    return d


def _transfer_dpt(args, out: Path, how: dict) -> int:
    """``transfer --method dpt``: Dense Pose Transfer (texture and re-render options unused;
    ``how``: the correspondence options of :func:`_correspondence`)."""
    # imports torch, anny and mediapipe: not at start-up
    from reroute.pipelines.dpt import DensePoseTransferPipeline

    if len(args.source) > 1:
        raise InputError("--method dpt takes one --source photo (several are fused by bodymap)")
    pipe = DensePoseTransferPipeline(size=args.size, checkpoint=args.dpt_checkpoint, **how)
    res = pipe(args.source[0], args.target)
    _notes(res.notices)
    if args.debug_dir:
        d = _debug_iuv(Path(args.debug_dir), res)
        save_image_atomic(d / "dpt_predicted.png", res.predicted)
        save_image_atomic(d / "dpt_warped.png", res.warped)
        if res.atlas is not None:
            save_image_atomic(d / "dpt_atlas.png", res.atlas)
        (d / "timings.json").write_text(json.dumps(res.timings, indent=1))
    save_image_atomic(out, res.image)
    print(json.dumps({"out": str(out), "method": "dpt", "correspondence": how["correspondence"],
                      "timings_s": _timings(res.timings)}))  # fmt: skip
    return 0


def _cmd_correspond(args) -> int:
    out = _check_out(args.out, (".png",))
    how = _correspondence(args)  # a missing BodyMap checkpoint fails before the photo is read
    # these import torch, anny and mediapipe: not at start-up
    from reroute.correspondence.analyse import analyse_person
    from reroute.correspondence.fitted import render_correspondence

    loaded = load_image(args.image, name=args.image)
    a = analyse_person(loaded, size=args.size, name=args.image, **how)
    _notes(a.notices)

    H, W = a.original_size
    if how["correspondence"] == "fit":
        # render at the photo's resolution: exact, not an upsampled label map
        mask = cv2.resize(a.observation.mask, (W, H), interpolation=cv2.INTER_LINEAR) > 0.5
        extend = DENSEPOSE_EXTEND * max(H, W) if args.coverage == "densepose" else None
        corr = render_correspondence(a.body.resized(W, H), mask, extend_px=extend)
    else:  # the network's map at the working size (its own foreground), nearest-neighbour resized
        corr = a.correspondence.resized(H, W)
    write_iuv(out, corr.to_iuv())
    print(json.dumps({"out": str(out), "correspondence": how["correspondence"],
                      "keypoint_error_px": round(a.body.keypoint_error_px, 2),
                      "timings_s": _timings(a.timings)}))  # fmt: skip
    return 0


def _cmd_evaluate(args) -> int:
    # imports torch: not at start-up
    from reroute.evaluation.pose_transfer import EvalConfig, parse_size, run_evaluation

    cfg = EvalConfig(
        dataset=args.dataset, root=args.root, out=args.out, method=args.method,
        pairs=args.pairs, annotation=args.annotation, limit=args.limit,
        size=parse_size(args.size) if args.size else None, patn_pad=args.patn_pad,
        mvc_seed=args.mvc_seed, mvc_test_items=args.mvc_test_items,
        fid_reference=args.fid_reference, lpips_weights=args.lpips_weights,
        inception_weights=args.inception_weights, ssd_weights=args.ssd_weights,
        texture_size=args.texture_size, analysis_cache=args.analysis_cache,
        dpt_checkpoint=args.dpt_checkpoint, progress=not args.no_progress, **_correspondence(args),
    )  # fmt: skip
    summary = run_evaluation(cfg)
    if summary.rank == 0 and summary.metrics is not None:
        m = summary.metrics
        means = {k: (round(v["mean"], 4) if v.get("mean") is not None else None)
                 for k, v in m["metrics"].items()}  # fmt: skip
        print(json.dumps({"out": str(summary.out), "counts": m["counts"], "means": means,
                          "unavailable": sorted(m["unavailable"])}))  # fmt: skip
    return 0


def _cmd_synth(args) -> int:
    # these import torch and anny: not at start-up
    from reroute.synth.engine import SynthConfig
    from reroute.synth.pose import load_pose_bank
    from reroute.synth.writer import write_synthetic_set

    if args.identities < 1:
        raise InputError(f"--identities must be >= 1, got {args.identities}")
    try:
        cfg = SynthConfig(
            size=args.size, texture_size=args.texture_size,
            views_per_identity=args.views_per_identity, poses_per_identity=args.poses_per_identity,
            multi_person_prob=args.multi_person_prob, upper_body_prob=args.upper_body_prob,
        ).validate()  # fmt: skip
        if args.pose_bank:
            cfg.pose_bank = load_pose_bank(args.pose_bank)
    except ValueError as e:
        raise InputError(str(e)) from None
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise InputError(f"--out {out} exists and is not a directory")
    t0 = time.perf_counter()
    write_synthetic_set(out, args.identities, cfg, seed=args.seed, progress=not args.no_progress)
    dt = time.perf_counter() - t0
    n = args.identities * args.views_per_identity
    print(json.dumps({"out": str(out), "images": n, "seconds": round(dt, 2),
                      "images_per_s": round(n / dt, 2)}))  # fmt: skip
    return 0


def _cmd_eval_correspondence(args) -> int:
    # imports torch: not at start-up
    from reroute.metrics.correspondence import evaluate_iuv_folders, evaluate_synthetic_set

    out = Path(args.out)
    if out.suffix.lower() != ".json":
        raise InputError(f"--out {out} must end in .json")
    if args.temporal:
        return _eval_temporal(args, out)
    if not args.gt:
        raise InputError("--gt DIR is required (or --temporal for a synthetic sequence)")
    gt = Path(args.gt)
    if not gt.is_dir():
        raise InputError(f"--gt {gt} is not a directory")
    if (gt / "samples.jsonl").is_file():
        if args.method == "pred":
            if not args.pred:
                raise InputError("--pred DIR is required with --method pred")
            pred_dir = Path(args.pred)
            if not pred_dir.is_dir():
                raise InputError(f"--pred {pred_dir} is not a directory")

            def predict(rec):
                p = pred_dir / rec.name
                return read_iuv(p) if p.is_file() else None

        elif args.method == "ground-truth":

            def predict(rec):
                return rec.iuv

        else:  # reroute's own front end: BlazePose + anny fit + render (+ the BodyMap network)
            how = _front_end(args)

            def predict(rec):
                # imports anny and mediapipe, only for this method
                from reroute.correspondence.analyse import analyse_person

                try:
                    a = analyse_person(rec.image, size=rec.image.shape[0], name=rec.name, **how)
                except InputError:  # no person found, several persons, failed fit
                    return None
                return a.correspondence.to_iuv()

        res = evaluate_synthetic_set(gt, predict, limit=args.limit)
        res["method"] = args.method
    else:
        if not args.pred:
            raise InputError(f"{gt} is not a synthetic set: give --pred DIR of IUV maps to compare")
        res = evaluate_iuv_folders(gt, args.pred)

    write_text_atomic(out, json.dumps(res, indent=1))
    print(json.dumps({k: v for k, v in res.items() if k != "per_image"}))
    return 0


def _front_end(args) -> dict:
    """The analysis options of ``eval-correspondence --method reroute|bodymap``: the fit, or
    the fit refined by the BodyMap network (``--bodymap-checkpoint``, loaded now so a missing
    file fails before any image is analysed)."""
    # the correspondence methods import torch
    from reroute.pipelines.correspondences import load_correspondence

    method = "bodymap" if args.method == "bodymap" else "fit"
    load_correspondence(method, args.bodymap_checkpoint)
    return {"correspondence": method, "bodymap_checkpoint": args.bodymap_checkpoint}


def _eval_temporal(args, out: Path) -> int:
    """``eval-correspondence --temporal``: consistency over frame intervals on a synthetic
    walking sequence (reroute.synth.video, reroute.metrics.temporal)."""
    # these import torch and anny: not at start-up
    from reroute.metrics.correspondence import vertices_from_iuv
    from reroute.metrics.temporal import evaluate_video
    from reroute.synth.video import SyntheticVideo, VideoConfig

    if args.method == "pred":
        raise InputError("--temporal needs --method ground-truth, reroute or bodymap")
    try:
        intervals = tuple(int(k) for k in args.intervals.split(","))
    except ValueError:
        raise InputError(
            f"--intervals must be comma-separated integers, got {args.intervals!r}"
        ) from None
    if any(k < 1 for k in intervals):
        raise InputError(f"--intervals must be positive, got {args.intervals!r}")
    try:
        video = SyntheticVideo(VideoConfig(frames=args.frames, size=args.size), seed=args.seed)
    except ValueError as e:
        raise InputError(str(e)) from None
    if args.method == "ground-truth":  # through 8-bit IUV, as the still-image evaluation

        def predict(s):
            return vertices_from_iuv(s.iuv)

    else:
        how = _front_end(args)

        def predict(s):
            # imports mediapipe, only for this method
            from reroute.correspondence.analyse import analyse_person

            try:
                a = analyse_person(s.image, size=s.image.shape[0], name=f"frame {s.view}", **how)
            except InputError:
                return None
            return vertices_from_iuv(a.correspondence.to_iuv())

    t0 = time.perf_counter()
    res = {"method": args.method, "seed": args.seed, "size": args.size,
           **evaluate_video(video, predict, intervals)}  # fmt: skip
    res["seconds"] = round(time.perf_counter() - t0, 2)

    write_text_atomic(out, json.dumps(res, indent=1))
    print(json.dumps(res))
    return 0


def _cmd_try_on(args) -> int:
    out = _check_out(args.out)
    _check_range("--size", args.size, MIN_SIDE, MAX_SIDE, " px")
    donors = [load_image(p, name=p) for p in args.donor]  # every photo before any model runs
    wearer = load_image(args.wearer, name=args.wearer)
    region = _cli_regions()[_check_choice("--region", args.region, _cli_regions())]
    rerender = _check_choice("--rerender", args.rerender, _registry().RERENDERINGS)
    # imports torch, anny and mediapipe: not at start-up
    from reroute.pipelines.tryon import TryOnPipeline

    complete = _completion(args.texture, args.texture_checkpoint)
    # a missing re-renderer or BodyMap checkpoint fails here, before any fit
    pipe = TryOnPipeline(size=args.size, texture_size=args.texture_size, complete=complete,
                         rerender=rerender, rerender_checkpoint=args.rerender_checkpoint,
                         **_correspondence(args))  # fmt: skip
    res = pipe([d.pixels for d in donors], wearer.pixels, region)
    _notes([f"{a.path}: {a.notice}" for a in (*donors, wearer) if a.notice] + res.notices)
    save_image_atomic(out, res.image)
    print(json.dumps({"out": str(out), "region": region, "rerendered": res.rerendered,
                      "timings_s": _timings(res.timings)}))  # fmt: skip
    return 0


def _cmd_novel_view(args) -> int:
    out = _check_out(args.out, (".mp4",))
    _check_range("--size", args.size, MIN_SIDE, MAX_VIDEO_SIDE, " px")
    _check_range("--fps", args.fps, *FPS_RANGE)
    # these import torch, anny and mediapipe: not at start-up
    from reroute.correspondence.analyse import analyse_people
    from reroute.pipelines.novel_view import NovelViewConfig, render_novel_views
    from reroute.pipelines.rerendering import load_rerendering
    from reroute.uv.texture import fuse_textures
    from reroute.uv.warp import image_to_uv

    cfg = NovelViewConfig(frames=args.frames, turn_deg=args.turn, elevation_deg=args.elevation,
                          size=args.size)  # fmt: skip
    try:
        cfg.check()
    except ValueError as e:
        raise InputError(str(e)) from None
    loaded = [load_image(p, name=p) for p in args.photo]  # the photos before any model runs
    complete = _completion(args.texture, args.texture_checkpoint)
    rerender = _check_choice("--rerender", args.rerender, _registry().RERENDERINGS)
    # a missing re-renderer or BodyMap checkpoint fails here, before the fit
    load_rerendering(rerender, args.rerender_checkpoint)
    how = _correspondence(args)
    t0 = time.perf_counter()
    views = analyse_people(loaded, size=args.size, names=args.photo, **how)
    a = views[0]
    _notes([n for v in views for n in v.notices])
    t = time.perf_counter()
    partial = fuse_textures([image_to_uv(v.image, v.correspondence, args.texture_size)
                             for v in views])  # fmt: skip
    texture = complete(partial)
    timings = {k: sum(v.timings.get(k, 0.0) for v in views) for k in a.timings}
    timings["completion"] = time.perf_counter() - t
    video = render_novel_views(a.body, texture, cfg, rerender=rerender,
                               rerender_checkpoint=args.rerender_checkpoint,
                               observed=partial.visibility)  # fmt: skip
    t = time.perf_counter()
    write_mp4(video.frames, out, fps=args.fps)
    timings.update(render=video.timings["render"], rerender=video.timings["rerender"],
                   encode=time.perf_counter() - t, total=time.perf_counter() - t0)  # fmt: skip
    n, h, w = video.frames.shape[:3]
    print(json.dumps({"out": str(out), "frames": n, "width": w, "height": h,
                      "rerendered": video.rerendered, "timings_s": _timings(timings)}))  # fmt: skip
    return 0


# ------------------------------------------------------------------ the parser


def _registry():
    """:mod:`reroute.pipelines.registry`, imported on first use."""
    # imports torch (~3-4 s): only when a command runs or its --help lists the names
    from reroute.pipelines import registry

    return registry


@functools.lru_cache(maxsize=1)
def _cli_regions() -> dict[str, str]:
    """CLI spelling -> try-on region of the registry: its first word (``full outfit`` -> ``full``)."""
    names = {r.split()[0]: r for r in _registry().TRYON_REGIONS}
    assert len(names) == len(_registry().TRYON_REGIONS), "two regions share a first word"
    return names


#: option dest -> the registry's names that its help text lists as ``{names}``
_LISTED: dict[str, Callable[[], object]] = {
    "texture": lambda: _registry().TEXTURE_COMPLETIONS,
    "rerender": lambda: _registry().RERENDERINGS,
    "correspondence": lambda: _registry().CORRESPONDENCES,
    "region": _cli_regions,
}


def _check_choice(option: str, value: str, names) -> str:
    if value not in names:
        raise InputError(f"unknown {option} {value!r}; choose one of {', '.join(names)}")
    return value


class _HelpFormatter(argparse.HelpFormatter):
    """Fills ``{names}`` in help texts from the registry (:data:`_LISTED`) when a command's
    ``--help`` is shown; the command checks the value itself after its cheap checks, so
    neither building the parser nor an argument error imports torch."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if action.dest in _LISTED and "{names}" in text:
            text = text.replace("{names}", ", ".join(_LISTED[action.dest]()))
        return text


class _Parser(argparse.ArgumentParser):
    """Argument errors as one ``error: ...`` line and exit code 2, like input errors."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("formatter_class", _HelpFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str):
        self.exit(EXIT_INPUT, f"error: {message} (see {self.prog} --help)\n")


def _add_texture_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--texture-size", type=int, default=256, help="UV texture side in texels")
    p.add_argument("--texture", default="classical", metavar="NAME",
                   help="texture completion: {names} (default %(default)s)")  # fmt: skip
    p.add_argument(
        "--texture-checkpoint", help="texture network checkpoint (default: the committed one)"
    )


def _add_rerender_options(p: argparse.ArgumentParser, default: str = "none") -> None:
    p.add_argument("--rerender", default=default, metavar="NAME",
                   help="neural re-rendering: {names} (default %(default)s)")  # fmt: skip
    p.add_argument("--rerender-checkpoint", help="re-renderer checkpoint (default: the committed one)")


def _add_correspondence_options(p: argparse.ArgumentParser, default: str = "fit") -> None:
    p.add_argument("--correspondence", default=default, metavar="NAME",
                   help="how the correspondences are made: {names} (default %(default)s; "
                   "bodymap refines the fit with the BodyMap network)")  # fmt: skip
    p.add_argument("--bodymap-checkpoint", metavar="PATH",
                   help="BodyMap network checkpoint (default: checkpoints/bodymap_cpu256.pt)")  # fmt: skip


def _add_transfer(sub) -> None:
    t = sub.add_parser("transfer", help="re-render the source person in the target person's pose")
    t.add_argument("--source", required=True, action="append",
                   help="photo of the person to re-render; give it again for more photos of "
                   "that person in the same clothes (e.g. front and back): their textures are "
                   "fused, and the first gives the background")  # fmt: skip
    t.add_argument("--target", required=True, help="photo of the person whose pose to take")
    t.add_argument("--out", required=True, help="output image (.png/.jpg), target's resolution")
    t.add_argument("--size", type=int, default=256, help="working size, longer side in px")
    _add_texture_options(t)
    _add_rerender_options(t, DEFAULT_RERENDER)
    t.add_argument("--method", default="bodymap", metavar="NAME",
                   help="bodymap (UV texture warp + re-renderer) or dpt (Dense Pose Transfer; "
                   "--texture and --rerender do not apply) (default %(default)s)")  # fmt: skip
    t.add_argument("--dpt-checkpoint", help="Dense Pose Transfer checkpoint (default: the committed one)")
    t.add_argument("--debug-dir", help="write intermediate maps (IUV, textures, warp) here")
    _add_correspondence_options(t)
    t.set_defaults(func=_cmd_transfer)


def _add_try_on(sub) -> None:
    t = sub.add_parser("try-on", help="the wearer in the donor's top, bottom, shoes or full outfit")
    t.add_argument("--donor", required=True, action="append",
                   help="photo of the person whose garments to take; give it again for more "
                   "photos of the donor in the same clothes (e.g. the back), fused")  # fmt: skip
    t.add_argument("--wearer", required=True, help="photo of the person who puts them on")
    t.add_argument("--region", required=True,
                   help="what to swap: {names}; the wearer keeps face, hair and hands")  # fmt: skip
    t.add_argument("--out", required=True, help="output image (.png/.jpg), wearer's resolution")
    t.add_argument("--size", type=int, default=256, help="working size, longer side in px")
    _add_texture_options(t)
    _add_rerender_options(t)
    _add_correspondence_options(t)
    t.set_defaults(func=_cmd_try_on)


def _add_novel_view(sub) -> None:
    v = sub.add_parser("novel-view", help="H.264 MP4 of the camera turning around the person")
    v.add_argument("photo", nargs="+",
                   help="photo of one person; more photos of that person in the same clothes "
                   "(e.g. the back) fill in what the first does not show, whose body turns")  # fmt: skip
    v.add_argument("--out", required=True, help="output video (.mp4)")
    v.add_argument("--frames", type=int, default=72, help="number of frames")
    v.add_argument("--size", type=int, default=256,
                   help="working size and video resolution, longer side in px")  # fmt: skip
    v.add_argument("--turn", type=float, default=360.0, help="total turn, degrees")
    v.add_argument("--elevation", type=float, default=0.0,
                   help="camera elevation, degrees (positive: from above)")  # fmt: skip
    v.add_argument("--fps", type=float, default=24.0, help="frame rate")
    _add_texture_options(v)
    _add_rerender_options(v)
    _add_correspondence_options(v)
    v.set_defaults(func=_cmd_novel_view)


def _add_correspond(sub) -> None:
    c = sub.add_parser("correspond", help="write a photo's IUV map (DensePose on-disk convention)")
    c.add_argument("image", help="photo of one person")
    c.add_argument("--out", required=True, help="IUV PNG: cv2.imread gives channels I, U, V")
    c.add_argument("--size", type=int, default=256, help="working size for pose fitting, px")
    c.add_argument(
        "--coverage", choices=["densepose", "mask"], default="densepose",
        help="densepose: body surface plus 1.6%% of the image size around it, as DensePose "
        "R-CNN labels; mask: the whole person mask (hair, loose clothes); --correspondence "
        "fit only (bodymap writes the network's own foreground)",
    )  # fmt: skip
    # the network's map by default: closer to DensePose's than the fit's (part IoU 0.635
    # against 0.534 on held-out UBC frames); transfers keep the fit (pg2 SSIM is lower with it)
    _add_correspondence_options(c, default="bodymap")
    c.set_defaults(func=_cmd_correspond)


def _add_synth(sub) -> None:
    s = sub.add_parser("synth", help="render a synthetic set (DeepFashion layout + ground truth)")
    s.add_argument("--out", required=True, help="output directory")
    s.add_argument("--identities", type=int, required=True, help="number of synthetic people")
    s.add_argument("--views-per-identity", type=int, default=4, help="images per person")
    s.add_argument("--poses-per-identity", type=int, default=0,
                   help="distinct poses per person (0 = one per view)")  # fmt: skip
    s.add_argument("--size", type=int, default=256, help="image side, 128..1024 px")
    s.add_argument("--texture-size", type=int, default=512, help="UV texture side")
    s.add_argument("--seed", type=int, default=0, help="master seed (output is deterministic)")
    s.add_argument("--multi-person-prob", type=float, default=0.0,
                   help="share of images with 1-2 extra people (occluders)")  # fmt: skip
    s.add_argument(
        "--upper-body-prob", type=float, default=0.25, help="share of upper-body framings"
    )
    s.add_argument(
        "--pose-bank", help=".npz of fitted anny poses to perturb (synth_pose.save_pose_bank)"
    )
    s.add_argument("--no-progress", action="store_true", help="no progress bar")
    s.set_defaults(func=_cmd_synth)


def _add_eval_correspondence(sub) -> None:
    e = sub.add_parser(
        "eval-correspondence",
        help="GPS, AP/AR, 2-D accuracy, part IoU on a synthetic set or IUV folders",
    )
    e.add_argument("--gt", help="a synthetic set (reroute synth) or a folder of reference IUV PNGs")
    e.add_argument("--pred", help="folder of predicted IUV PNGs (same file names)")
    e.add_argument(
        "--method", choices=("pred", "reroute", "bodymap", "ground-truth"), default="pred",
        help="on a synthetic set: read --pred, run reroute's front end (the fit), the fit "
        "refined by the BodyMap network, or the GT itself",
    )  # fmt: skip
    e.add_argument("--bodymap-checkpoint", metavar="PATH",
                   help="--method bodymap: the network's checkpoint "
                   "(default: checkpoints/bodymap_cpu256.pt)")  # fmt: skip
    e.add_argument("--limit", type=int, help="evaluate the first N images only")
    e.add_argument(
        "--temporal", action="store_true",
        help="temporal consistency on a synthetic walking sequence instead of --gt",
    )  # fmt: skip
    e.add_argument("--frames", type=int, default=13, help="--temporal: sequence length")
    e.add_argument("--seed", type=int, default=0, help="--temporal: sequence seed")
    e.add_argument("--size", type=int, default=256, help="--temporal: frame side, px")
    e.add_argument(
        "--intervals", default="1,12,120", help="--temporal: frame intervals (BodyMap Table 4)"
    )
    e.add_argument("--out", required=True, help="metrics JSON")
    e.set_defaults(func=_cmd_eval_correspondence)


def _add_evaluate(sub) -> None:
    e = sub.add_parser("evaluate", help="generate and score a pose-transfer test split")
    e.add_argument("--dataset", required=True, choices=["deepfashion", "mvc", "folder"])
    e.add_argument("--root", required=True, help="dataset folder")
    e.add_argument(
        "--pairs", help="pair list (fashion-pairs-test.csv, test_pairs.txt, from,to CSV)"
    )
    # checked by run_evaluation against reroute.pipelines.registry.METHODS ("unknown method ...")
    e.add_argument("--method", required=True, help="identity, warp, bodymap or dpt")
    e.add_argument("--out", required=True, help="output folder; rerunning with it resumes")
    e.add_argument("--limit", type=int, help="evaluate only the first N pairs of the list")
    e.add_argument("--size", help="evaluation size HxW, e.g. 256x176 (default: the protocol's)")
    e.add_argument("--annotation", help="keypoint CSV (name:keypoints_y:keypoints_x)")
    e.add_argument(
        "--patn-pad", type=int, help="white padding of PATN SSIM (default 40 at width 176)"
    )
    e.add_argument("--mvc-seed", type=int, default=0, help="seed of the MVC item split")
    e.add_argument("--mvc-test-items", type=int, default=1000, help="MVC test items")
    e.add_argument("--fid-reference", help="folder of real images for FID (default: the targets)")
    e.add_argument("--lpips-weights", help="AlexNet weights alexnet-owt-7be5be79.pth for LPIPS")
    e.add_argument(
        "--inception-weights",
        help="Inception-v3 weights for FID/IS "
        "(pt_inception-2015-12-05-6726825d.pth or inception_v3_google-0cc3c7bd.pth)",
    )
    e.add_argument(
        "--ssd-weights", help="SSD300-VGG16 COCO weights for DS (ssd300_vgg16_coco-b556d3b4.pth)"
    )
    e.add_argument("--texture-size", type=int, default=256, help="UV texture side (warp method)")
    e.add_argument(
        "--analysis-cache", metavar="DIR",
        help="keep each photo's analysis (pose, fit, correspondences) here as <sha1>.npz so a "
        "later run reads it instead of fitting again (warp, bodymap); empty it after changing "
        "the fit",
    )  # fmt: skip
    e.add_argument("--dpt-checkpoint", help="Dense Pose Transfer checkpoint of the dpt method "
                   "(default: checkpoints/dpt_cpu256.pt)")  # fmt: skip
    _add_correspondence_options(e)
    e.add_argument("--no-progress", action="store_true", help="no progress bar or warnings")
    e.set_defaults(func=_cmd_evaluate)


def build_parser() -> argparse.ArgumentParser:
    """The ``python -m reroute`` parser: one subcommand per workflow."""
    p = _Parser(prog="python -m reroute", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True)
    for add in (_add_transfer, _add_try_on, _add_novel_view, _add_correspond, _add_synth,
                _add_eval_correspondence, _add_evaluate):  # fmt: skip
        add(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the process exit code (0 ok, 2 bad input)."""
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except InputError as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_INPUT
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
