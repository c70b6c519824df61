"""How far the BodyMap network's initial correspondences are from the truth: the real
template fit versus the training perturbation, on the same synthetic renders.

For ``--count`` held-out synthetic images (engine seed 1000, 256 px, one person):

* ``fit``: the photo pipeline's correspondences (BlazePose, anny fit, render,
  extension to the mediapipe mask: :func:`reroute.correspondence.analyse.analyse_person`);
* ``perturbed``: :func:`reroute.correspondence.bodymap.data.perturbed_init` with the
  perturbation given on the command line (default: the training default).

Metrics against the render's truth (primary person): ``part_iou`` over the 25 labels,
``part_agreement`` on pixels both call person, ``foreground_iou``, and BodyMap's
2-D accuracy at 5 / 10 / 20 px (each predicted pixel's surface point, decoded from
its colour code, projected by the true pose and camera). Matching the two rows is
how the perturbation is chosen. Prints JSON.

    python benchmarks/bodymap_init_error.py [--count 40] [--pose-deg 8 --yaw-deg 8 ...]
"""

from __future__ import annotations

import argparse
import time
from dataclasses import asdict, fields

from _common import emit


def _metrics(corr, sample, vertices_2d) -> dict:
    import numpy as np

    from reroute.correspondence.bodymap.decode import decode_colour_map
    from reroute.metrics.correspondence import accuracy_2d, part_iou

    true = np.where(sample.mask, sample.correspondence.part, 0)
    both = sample.mask & corr.mask
    vertex = decode_colour_map(corr.colour, corr.mask).vertex
    acc = accuracy_2d(sample.mask, vertex, vertices_2d)
    return {"part_iou": part_iou(corr.part, true),
            "part_agreement": float((corr.part[both] == true[both]).mean()) if both.any() else 0.0,
            "foreground_iou": float(both.sum() / max(1, (sample.mask | corr.mask).sum())),
            **{k: v for k, v in acc.items() if k.startswith("acc")}}  # fmt: skip


def main() -> None:
    from reroute.correspondence.bodymap.data import InitPerturbation

    ap = argparse.ArgumentParser()
    ap.add_argument("--count", type=int, default=40)
    ap.add_argument("--no-fit", action="store_true", help="only the perturbed row")
    for f in fields(InitPerturbation):
        ap.add_argument(f"--{f.name.replace('_', '-')}", type=type(f.default), default=f.default)
    a = ap.parse_args()
    import numpy as np

    from reroute.correspondence.analyse import analyse_person
    from reroute.correspondence.bodymap.data import perturbed_init
    from reroute.errors import InputError
    from reroute.synth.engine import SynthConfig, SyntheticEngine

    p = InitPerturbation(**{f.name: getattr(a, f.name) for f in fields(InitPerturbation)})
    eng = SyntheticEngine(SynthConfig(size=256, texture_size=256, multi_person_prob=0.0), seed=1000)
    rows = {"fit": [], "perturbed": []}
    failed, t0 = 0, time.perf_counter()
    for i in range(a.count):
        s = eng.sample(i, 0)
        v2d = s.body.camera.project(s.body.vertices.astype(np.float64))
        rows["perturbed"].append(_metrics(perturbed_init(s, p, np.random.default_rng([5, i])), s, v2d))
        if a.no_fit:
            continue
        try:
            rows["fit"].append(_metrics(analyse_person(s.image, size=256).correspondence, s, v2d))
        except InputError:
            failed += 1
    out = {"images": a.count, "fit_failed": failed, "perturbation": asdict(p), "wall_s": round(time.perf_counter() - t0, 1)}
    for name, rs in rows.items():
        if rs:
            out[name] = {k: round(float(np.mean([r[k] for r in rs])), 4) for k in rs[0]}
            out[name]["part_iou_quartiles"] = [round(float(q), 3) for q in np.percentile([r["part_iou"] for r in rs], [25, 50, 75])]
    emit(out)


if __name__ == "__main__":
    main()
