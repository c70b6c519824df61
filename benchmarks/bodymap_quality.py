"""The BodyMap network against the template fit on a held-out synthetic set (the
paper's Tables 2 and 5): GPS AP / AR, mean GPS, 2-D accuracy at 5 / 10 / 20 px,
part IoU and UV error, through reroute's 8-bit IUV
(:func:`reroute.metrics.correspondence.evaluate_synthetic_set`).

Rows: ``fit`` (the photo pipeline's correspondences:
:func:`reroute.correspondence.analyse.analyse_person` on the rendered image) and one
row per ``--model NAME=CKPT`` (a ``bodymap`` checkpoint refining that fit:
:func:`reroute.correspondence.bodymap.predict.refine_correspondence`; an ``rgb``
network ignores the fit). The fit of each image is computed once.

    python -m reroute synth --out runs/bodymap_heldout --identities 15 --seed 1000 --texture-size 256
    python benchmarks/bodymap_quality.py --set runs/bodymap_heldout --model full=checkpoints/bodymap_cpu256.pt
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from _common import emit

KEYS = ("AP", "AR", "AP50", "AP75", "gps_mean", "acc@5px", "acc@10px", "acc@20px", "part_iou", "uv_abs_error",
        "geodesic_error_cm")  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--set", required=True, help="a synthetic set (python -m reroute synth)")
    ap.add_argument("--model", action="append", default=[], help="NAME=CKPT of a bodymap checkpoint")
    ap.add_argument("--limit", type=int)
    ap.add_argument("--out", help="also write the full JSON (per image rows) here")
    a = ap.parse_args()
    import json

    from reroute.correspondence.analyse import analyse_person
    from reroute.correspondence.bodymap.predict import load_bodymap, refine_correspondence
    from reroute.errors import InputError
    from reroute.metrics.correspondence import evaluate_synthetic_set

    fits: dict[str, object] = {}

    def fit(rec):
        if rec.name not in fits:
            try:
                fits[rec.name] = analyse_person(rec.image, size=rec.image.shape[0], name=rec.name).correspondence
            except InputError:
                fits[rec.name] = None
        return fits[rec.name]

    methods = {"fit": lambda rec: None if fit(rec) is None else fit(rec).to_iuv()}
    for spec in a.model:
        name, _, path = spec.partition("=")
        model = load_bodymap(path)

        def predict(rec, model=model):
            init = fit(rec)
            if init is None:
                return None
            return refine_correspondence(model, rec.image, init).correspondence.to_iuv()

        methods[name] = predict
    out, full = {"set": str(Path(a.set)), "limit": a.limit}, {}
    for name, predict in methods.items():
        t0 = time.perf_counter()
        res = evaluate_synthetic_set(a.set, predict, limit=a.limit)
        full[name] = res
        out[name] = {k: round(float(res[k]), 4) for k in KEYS if res.get(k) is not None}
        out[name] |= {"images": res["images"], "failed": res["failed"], "seconds": round(time.perf_counter() - t0, 1)}
    if a.out:
        Path(a.out).write_text(json.dumps(full, indent=1))
    emit(out)


if __name__ == "__main__":
    main()
