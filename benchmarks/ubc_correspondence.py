"""`correspond` against DensePose R-CNN's IUV maps on the UBC Fashion frames.

For each ``frameNNNN.png`` with a ``frameNNNN_IUV.png`` (read with OpenCV:
channels I, U, V), reroute's IUV is computed at the frame's resolution and
compared, with ``correspond``'s default DensePose coverage (body plus 4 px
at 256 px; also reported: the whole-person-mask coverage transfer uses):
part-label IoU per class over the 24 parts + background (mean over
the classes present in either map, then over frames), foreground IoU, and the
UV error (mean |dU|, |dV| in [0, 1] units) on pixels where the parts agree.
reroute's per-part charts are its own unwrap of anny, not DensePose's SMPL
charts, so the UV error measures chart disagreement, not only fit error.

    python benchmarks/ubc_correspondence.py [--stride 4]

``body_part_iou`` scores the (refitted, with ``--refit``) body's own rendered map
with the DensePose coverage, whatever ``--correspondence`` is: with ``--correspondence
bodymap --refit`` it shows whether the dense refit (Rong et al. eq. 4) moved the body
towards DensePose's labels.
"""

from __future__ import annotations

import argparse
import time

from _common import SHARED_DATA, emit, peak_rss_mb, require


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--stride", type=int, default=4, help="use every k-th annotated frame")
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--coverage", choices=["densepose", "mask"], default="densepose",
                    help="as `correspond --coverage` (the headline part IoU uses it)")  # fmt: skip
    ap.add_argument("--correspondence", choices=["fit", "bodymap"], default="fit",
                    help="bodymap: the network's own foreground (--coverage does not apply)")
    ap.add_argument("--bodymap-checkpoint", default=None)
    ap.add_argument("--video", default="ubc_fashion_1", help="a folder of ../shared/data/video with *_IUV.png")
    ap.add_argument("--first", type=int, default=0, help="only frames numbered from this one (held-out frames)")
    ap.add_argument("--clean-keypoints", action="store_true",
                    help="drop regions that contradict BlazePose's keypoints (Rong et al. 2019) before scoring")
    ap.add_argument("--compile-fit", action="store_true", help="FitConfig(compile=True)")
    ap.add_argument("--refit", action="store_true",
                    help="with --correspondence bodymap: refit the body to the network's map (RefitConfig())")
    args = ap.parse_args()
    root = require(SHARED_DATA / "video" / args.video)
    import cv2
    import numpy as np

    from reroute.body.detect import coco18_keypoints
    from reroute.body.fit import FitConfig, RefitConfig
    from reroute.cli import DENSEPOSE_EXTEND
    from reroute.correspondence.analyse import analyse_person
    from reroute.correspondence.bodymap.prepared import video_frames
    from reroute.correspondence.cleaning import clean_with_keypoints
    from reroute.correspondence.fitted import render_correspondence
    from reroute.metrics.correspondence import part_iou

    frames = video_frames(root, first=args.first, step=args.stride)
    rows = []
    t0 = time.perf_counter()
    for p in frames:
        ref = cv2.imread(str(root / f"{p.stem}_IUV.png"))
        try:
            a = analyse_person(p, size=args.size, name=p.name, correspondence=args.correspondence,
                               bodymap_checkpoint=args.bodymap_checkpoint,
                               fit_config=FitConfig(compile=args.compile_fit),
                               refit=RefitConfig() if args.refit else None)  # fmt: skip
        except Exception as e:  # a failed frame counts, with its reason
            rows.append({"frame": p.stem, "error": str(e)})
            continue
        H, W = ref.shape[:2]
        m = cv2.resize(a.observation.mask, (W, H)) > 0.5
        body = a.body.resized(W, H)
        # full person-mask coverage (what transfer uses), scored on labels only
        full = render_correspondence(body, m).to_iuv()[..., 0]
        extend = DENSEPOSE_EXTEND * max(H, W) if args.coverage == "densepose" else None
        # the body's own map with DensePose's coverage (the fit's scored map, for `fit`)
        own = render_correspondence(body, m, extend_px=DENSEPOSE_EXTEND * max(H, W))
        if args.correspondence != "fit":
            corr = a.correspondence.resized(H, W)
        else:
            corr = own if args.coverage == "densepose" else render_correspondence(body, m, extend_px=extend)
        if args.clean_keypoints:
            obs = a.observation.scaled(H, W)
            corr, _ = clean_with_keypoints(corr, coco18_keypoints(obs.landmarks, obs.visibility))
        iuv = corr.to_iuv()
        agree = (iuv[..., 0] == ref[..., 0]) & (ref[..., 0] > 0)
        uv_err = (np.abs(iuv[..., 1:].astype(float) - ref[..., 1:]) / 255.0)[agree]
        fg = (iuv[..., 0] > 0), (ref[..., 0] > 0)
        rows.append(
            {
                "frame": p.stem,
                "part_iou": round(part_iou(iuv[..., 0], ref[..., 0]), 4),
                "part_iou_mask_coverage": round(part_iou(full, ref[..., 0]), 4),
                "body_part_iou": round(part_iou(own.to_iuv()[..., 0], ref[..., 0]), 4),
                "refit_seconds": round(a.timings.get("refit", 0.0), 3),
                "foreground_iou": round(
                    float((fg[0] & fg[1]).sum() / max((fg[0] | fg[1]).sum(), 1)), 4
                ),
                "label_agreement": round(float(agree.sum() / max((fg[0] & fg[1]).sum(), 1)), 4),
                "uv_abs_error": round(float(uv_err.mean()) if uv_err.size else float("nan"), 4),
                "keypoint_error_px": round(a.body.keypoint_error_px, 2),
            }
        )
    ok = [r for r in rows if "error" not in r]
    emit(
        {
            "frames": len(rows),
            "failed": len(rows) - len(ok),
            "mean_part_iou": round(float(np.mean([r["part_iou"] for r in ok])), 4) if ok else None,
            "mean_part_iou_mask_coverage": round(
                float(np.mean([r["part_iou_mask_coverage"] for r in ok])), 4
            )
            if ok
            else None,
            "mean_body_part_iou": round(float(np.mean([r["body_part_iou"] for r in ok])), 4) if ok else None,
            "refit": args.refit,
            "coverage": args.coverage,
            "clean_keypoints": args.clean_keypoints,
            "correspondence": args.correspondence,
            "video": args.video,
            "mean_foreground_iou": round(float(np.mean([r["foreground_iou"] for r in ok])), 4)
            if ok
            else None,
            "mean_label_agreement": round(float(np.mean([r["label_agreement"] for r in ok])), 4)
            if ok
            else None,
            "mean_uv_abs_error": round(float(np.nanmean([r["uv_abs_error"] for r in ok])), 4)
            if ok
            else None,
            "wall_seconds": round(time.perf_counter() - t0, 1),
            "peak_rss_mb": round(peak_rss_mb(), 1),
            "per_frame": rows,
        }
    )


if __name__ == "__main__":
    main()
