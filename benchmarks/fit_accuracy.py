"""Accuracy and time of the body fit on synthetic renders with a known pose.

Renders ``--count`` posed anny bodies (pose kinds standing, walking, arms raised
and the pose bank in turn, facings from front through side to back), finds the
person with BlazePose as a photo would be, fits anny (:func:`reroute.body.fit.fit_body`)
and compares with the render's truth:

* ``limb_error_px``: mean over renders of the mean 2-D distance (pixels at
  ``--size``) between the fitted and true positions of the 12 limb joints
  (shoulders, elbows, wrists, hips, knees, ankles);
* ``part_agreement``: share of pixels covered by both the true and the fitted
  body whose DensePose part labels agree; ``foreground_iou`` of the two bodies;
* ``fit_s``: median seconds per fit (one torch thread, as the pipelines run it)
  and ``steps`` the median Adam steps taken.

The renders are deterministic (seeded), so runs of two versions of the code
(e.g. ``python /path/to/old/checkout/benchmarks/fit_accuracy.py``) compare on
the same set. Prints JSON.

    python benchmarks/fit_accuracy.py [--count 24] [--size 256] [--init ik|learned|rest]
        [--steps-pose 40] [--init-checkpoint PATH]
"""

from __future__ import annotations

import argparse
import time

from _common import emit

LIMB_JOINTS = (
    "left_shoulder", "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist",
    "left_hip", "right_hip", "left_knee", "right_knee", "left_ankle", "right_ankle",
)  # fmt: skip
KINDS = ("standing", "walking", "arms_raised", "bank")
YAWS = (0.0, 25.0, -40.0, 60.0, -90.0, 135.0, 180.0, -160.0)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--count", type=int, default=24)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--init", default=None, help="FitConfig.init (default: the default config's)")
    ap.add_argument("--steps-pose", type=int, default=None, help="FitConfig.steps_pose")
    ap.add_argument("--init-checkpoint", default=None, help="the learned init's checkpoint")
    ap.add_argument("--compile-fit", action="store_true", help="FitConfig.compile (torch.compile)")
    args = ap.parse_args()
    import numpy as np

    from reroute.body.detect import detect_person
    from reroute.body.fit import POSE_BONES, FitConfig, fit_body
    from reroute.correspondence.fitted import render_correspondence
    from reroute.errors import InputError
    from reroute.synth.engine import render_synthetic_person
    from reroute.synth.pose import sample_pose

    cfg = FitConfig()
    cfg.init = args.init or cfg.init
    cfg.steps_pose = args.steps_pose if args.steps_pose is not None else cfg.steps_pose
    cfg.init_checkpoint = args.init_checkpoint
    cfg.compile = args.compile_fit
    rows, failed = [], []
    for i in range(args.count):
        rng = np.random.default_rng(1000 + i)
        pose, kind = sample_pose(rng, KINDS[i % len(KINDS)])
        pose = {b: a for b, a in pose.items() if b in POSE_BONES}  # the bones a render takes
        yaw = YAWS[i % len(YAWS)]
        truth = render_synthetic_person(pose, size=args.size, yaw_deg=yaw, seed=i)
        try:
            obs = detect_person(truth.image, name=f"render {i}")
            fit_body(obs, cfg) if i == 0 else None  # warm-up: anny and the fast skinning load once
            t = time.perf_counter()
            fitted = fit_body(obs, cfg)
            dt = time.perf_counter() - t
        except InputError as e:
            failed.append(f"render {i} ({kind}, yaw {yaw:g}): {e}")
            continue
        idx = [truth.keypoint_names.index(k) for k in LIMB_JOINTS]
        err = np.linalg.norm(fitted.keypoints_2d[idx] - truth.keypoints_2d[idx], axis=1)
        corr = render_correspondence(fitted)
        t_fg, f_fg = truth.correspondence.mask, corr.mask
        both = t_fg & f_fg
        rows.append(
            {
                "kind": kind,
                "yaw": yaw,
                "limb_error_px": float(err.mean()),
                "foreground_iou": float(both.sum() / max((t_fg | f_fg).sum(), 1)),
                "part_agreement": float(
                    (corr.part[both] == truth.correspondence.part[both]).mean()
                ),
                "fit_s": dt,
                "steps": getattr(fitted, "steps", None),  # absent before the step count
            }
        )

    def mean(k: str) -> float:
        return round(float(np.mean([r[k] for r in rows])), 4)

    steps = [r["steps"] for r in rows if r["steps"] is not None]
    emit(
        {
            "renders": args.count,
            "init": cfg.init,
            "steps_pose": cfg.steps_pose,
            "compile": cfg.compile,
            "fitted": len(rows),
            "size": args.size,
            "limb_error_px": mean("limb_error_px"),
            "limb_error_px_median": round(float(np.median([r["limb_error_px"] for r in rows])), 3),
            "limb_error_px_worst": round(float(np.max([r["limb_error_px"] for r in rows])), 2),
            "foreground_iou": mean("foreground_iou"),
            "part_agreement": mean("part_agreement"),
            "fit_s_median": round(float(np.median([r["fit_s"] for r in rows])), 4),
            "fit_s_mean": mean("fit_s"),
            "steps_median": float(np.median(steps)) if steps else None,
            "failed": failed,
            "per_render": [
                {k: (round(v, 3) if isinstance(v, float) else v) for k, v in r.items()}
                for r in rows
            ],
        }
    )


if __name__ == "__main__":
    main()
