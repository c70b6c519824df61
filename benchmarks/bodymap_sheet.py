"""Contact sheet of the BodyMap network against the fit on real photos (judged by eye).

Rows: 8 DeepFashion dev photos (``../shared/data/deepfashion/images``: front, side,
back and full views, several identities). Columns: photo | fit IUV | network IUV |
network confidence (grey) | network colour code. IUV as DensePose draws it
(:func:`reroute.correspondence.maps.iuv_to_rgb`). Real photos: write it outside git.

    python benchmarks/bodymap_sheet.py --checkpoint CKPT --out /tmp/bodymap_sheet.png
"""

from __future__ import annotations

import argparse
import json
import time

from _common import SHARED_DATA, require

PHOTOS = (
    "fashionMENShirts_Polosid0000186605_1front", "fashionMENShirts_Polosid0000186605_2side",
    "fashionMENShirts_Polosid0000186605_3back", "fashionMENShirts_Polosid0000679009_3back",
    "fashionMENShirts_Polosid0000154003_2side", "fashionMENShirts_Polosid0000180202_4full",
    "fashionWOMENBlouses_Shirtsid0000374902_4full", "fashionMENTees_Tanksid0000662101_1front",
)  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--checkpoint", default=None, help="bodymap checkpoint (default: the committed one)")
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    root = require(SHARED_DATA / "deepfashion" / "images")
    import cv2
    import numpy as np

    from reroute.correspondence.analyse import analyse_person
    from reroute.correspondence.bodymap.predict import load_default_bodymap, refine_correspondence
    from reroute.correspondence.maps import iuv_to_rgb

    model = load_default_bodymap(a.checkpoint)
    rows, used, t0 = [], [], time.perf_counter()
    for name in PHOTOS:
        path = root / f"{name}.png"
        if not path.is_file():
            continue
        fit = analyse_person(path, size=256, name=name)
        net = refine_correspondence(model, fit.image, fit.correspondence)
        conf = (np.clip(net.confidence, 0, 1) * 255).astype(np.uint8)
        colour = (net.correspondence.colour * 255).astype(np.uint8)
        cells = [fit.image, iuv_to_rgb(fit.correspondence.to_iuv()), iuv_to_rgb(net.correspondence.to_iuv()),
                 np.repeat(conf[..., None], 3, 2), colour]  # fmt: skip
        rows.append(np.concatenate(cells, 1))
        used.append(name)
    width = max(r.shape[1] for r in rows)
    sheet = np.concatenate([np.pad(r, ((0, 0), (0, width - r.shape[1]), (0, 0))) for r in rows], 0)
    cv2.imwrite(a.out, sheet[..., ::-1])
    print(json.dumps({"out": a.out, "photos": used, "seconds": round(time.perf_counter() - t0, 1)}))


if __name__ == "__main__":
    main()
