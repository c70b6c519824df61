"""Front/back accuracy of the correspondences on real photos whose names say the view.

For every DeepFashion dev photo named ``*_1front`` or ``*_3back``
(``../shared/data/deepfashion/images``), ``correspond``'s torso label decides the
facing: DensePose part 2 (torso front) or 1 (torso back), whichever covers more
pixels. Prints JSON: accuracy per view and per photo.

    python benchmarks/facing.py [--correspondence fit|bodymap] [--bodymap-checkpoint CKPT]
"""

from __future__ import annotations

import argparse
import time

from _common import SHARED_DATA, emit, require


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--correspondence", choices=["fit", "bodymap"], default="fit")
    ap.add_argument("--bodymap-checkpoint", default=None)
    args = ap.parse_args()
    root = require(SHARED_DATA / "deepfashion" / "images")
    import numpy as np

    from reroute.correspondence.analyse import analyse_person

    rows = []
    t0 = time.perf_counter()
    for path in sorted(root.glob("*.png")):
        view = "front" if path.stem.endswith("_1front") else "back" if path.stem.endswith("_3back") else None
        if view is None:
            continue
        a = analyse_person(path, correspondence=args.correspondence, bodymap_checkpoint=args.bodymap_checkpoint)
        part = a.correspondence.part
        front, back = int((part == 2).sum()), int((part == 1).sum())
        said = "front" if front >= back else "back"
        rows.append({"photo": path.stem, "view": view, "torso_front_px": front,
                     "torso_back_px": back, "correct": said == view})  # fmt: skip
    acc = {v: [r["correct"] for r in rows if r["view"] == v] for v in ("front", "back")}
    emit({"photos": len(rows), "correspondence": args.correspondence,
          "accuracy": round(float(np.mean([r["correct"] for r in rows])), 3),
          "accuracy_per_view": {v: {"correct": int(sum(c)), "of": len(c)} for v, c in acc.items()},
          "wall_seconds": round(time.perf_counter() - t0, 1), "per_photo": rows})  # fmt: skip


if __name__ == "__main__":
    main()
