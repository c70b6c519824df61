"""Contact sheet of pose transfer on pg2 pairs with side and back targets.

Rows: source | target | PG2 | reroute before | reroute after, for 16 pairs of
``../shared/data/deepfashion/pg2_pairs`` whose target is a side or back view
(decided from BlazePose: back = the person's left shoulder on the image's
left; side = shoulder width under 45% of the shoulder-hip distance): up to
half backs, the rest sides, then front views to fill up. The
reroute columns are folders of ``NNNNN.png`` outputs written by
``benchmarks/pose_transfer_quality.py --save-dir``.

    python benchmarks/pg2_contact_sheet.py BEFORE_DIR AFTER_DIR --out docs/pose_transfer_pg2_pairs.png
"""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

from _common import SHARED_DATA, require


def _view(obs) -> str:
    import numpy as np

    from reroute.body.detect import BLAZEPOSE_NAMES as N

    lm = obs.landmarks
    sh = np.linalg.norm(lm[N.index("left_shoulder")] - lm[N.index("right_shoulder")])
    mid_s = (lm[N.index("left_shoulder")] + lm[N.index("right_shoulder")]) / 2
    mid_h = (lm[N.index("left_hip")] + lm[N.index("right_hip")]) / 2
    if sh < 0.45 * np.linalg.norm(mid_s - mid_h):
        return "side"
    return "back" if lm[N.index("left_shoulder"), 0] < lm[N.index("right_shoulder"), 0] else "front"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("before")
    ap.add_argument("after")
    ap.add_argument("--out", required=True)
    ap.add_argument("--rows", type=int, default=16)
    args = ap.parse_args()
    root = require(SHARED_DATA / "deepfashion" / "pg2_pairs")
    import numpy as np

    from reroute.body.detect import detect_person
    from reroute.errors import InputError
    from reroute.io.images import load_image, save_image_atomic

    with open(root / "pairs.csv", newline="") as f:
        names = sorted(r["name"] for r in csv.DictReader(f))
    views = {}
    for n in names:
        try:
            views[n] = _view(detect_person(load_image(root / f"{n}_target.png").pixels))
        except InputError:
            views[n] = "none"
    backs = [n for n in names if views[n] == "back"][: args.rows // 2]
    order = backs + [n for n in names if views[n] == "side"]
    order += [n for n in names if n not in order]
    rows = []
    for n in order[: args.rows]:
        cols = [load_image(root / f"{n}_{k}.png").pixels for k in ("source", "target", "pg2")]
        cols += [load_image(Path(d) / f"{n}.png").pixels for d in (args.before, args.after)]
        rows.append(np.concatenate(cols, 1))
    half = (len(rows) + 1) // 2
    left, right = rows[:half], rows[half:]
    if len(right) < len(left):
        right.append(np.full_like(left[0], 255))
    sheet = np.concatenate([np.concatenate(left, 0), np.full((half * 256, 16, 3), 255, np.uint8),
                            np.concatenate(right, 0)], 1)  # fmt: skip
    save_image_atomic(args.out, sheet)
    print(json.dumps({"out": args.out, "pairs": order[: args.rows],
                      "views": {n: views[n] for n in order[: args.rows]}}))  # fmt: skip


if __name__ == "__main__":
    main()
