"""Contact sheets of try-on and novel view on real DeepFashion photos (judged by eye).

* ``tryon``: 8 donor/wearer pairs from different identities of
  ``../shared/data/deepfashion/images`` (top swaps for the first 4, bottom for
  the rest); each row: donor | wearer | result.
* ``novel``: 4 photos (front, side, back, full), 8 views each over a full turn
  (:func:`reroute.pipelines.novel_view.render_novel_views`, the fitted body only);
  each row: photo | 8 frames.

``--rerender network`` runs the committed neural re-renderer on the try-on
results and on every novel-view frame (with the photo's seen map), to compare
with the default ``none``.

Writes PNGs; prints JSON with the pairs used and the seconds taken.

    python benchmarks/real_sheets.py --tryon-out docs/tryon_real.png --novel-out docs/novel_view_real.png
        [--rerender none|network]
"""

from __future__ import annotations

import argparse
import json
import time

from _common import SHARED_DATA, require

TRYON = [  # (donor, wearer, region)
    ("fashionMENTees_Tanksid0000501302_1front", "fashionMENShirts_Polosid0000154003_1front", "top"),
    ("fashionMENShirts_Polosid0000186605_1front", "fashionMENSweatersid0000132901_1front", "top"),
    ("fashionWOMENBlouses_Shirtsid0000349801_1front", "fashionWOMENDressesid0000080304_1front", "top"),
    ("fashionMENSweatersid0000321602_1front", "fashionMENTees_Tanksid0000662101_1front", "top"),
    ("fashionMENShirts_Polosid0000180202_4full", "fashionMENTees_Tanksid0000501302_4full", "bottom"),
    ("fashionWOMENBlouses_Shirtsid0000374902_4full", "fashionWOMENBlouses_Shirtsid0000427404_4full", "bottom"),
    ("fashionMENTees_Tanksid0000662101_4full", "fashionMENShirts_Polosid0000186605_4full", "bottom"),
    ("fashionWOMENDressesid0000080304_4full", "fashionWOMENBlouses_Shirtsid0000398701_4full", "bottom"),
]  # fmt: skip
NOVEL = [
    "fashionMENShirts_Polosid0000154003_1front",
    "fashionWOMENBlouses_Shirtsid0000374902_2side",
    "fashionMENShirts_Polosid0000186605_3back",
    "fashionWOMENDressesid0000080304_4full",
]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tryon-out", required=True)
    ap.add_argument("--novel-out", required=True)
    ap.add_argument("--rerender", choices=["none", "network"], default="none")
    args = ap.parse_args()
    root = require(SHARED_DATA / "deepfashion" / "images")
    import cv2
    import numpy as np

    from reroute.io.images import load_image, save_image_atomic
    from reroute.pipelines.novel_view import NovelViewConfig, render_novel_views
    from reroute.pipelines.retexture import extract_texture
    from reroute.pipelines.tryon import TryOnPipeline

    t0 = time.perf_counter()
    rows, pipe = [], TryOnPipeline(rerender=args.rerender)
    for donor, wearer, region in TRYON:
        d, w = root / f"{donor}.png", root / f"{wearer}.png"
        res = pipe(d, w, region)
        rows.append(np.concatenate([load_image(d).pixels, load_image(w).pixels, res.image], 1))
    save_image_atomic(args.tryon_out, np.concatenate(rows, 0))
    t1 = time.perf_counter()
    rows = []
    for name in NOVEL:
        ex = extract_texture(root / f"{name}.png", atlas_tile=None)
        a = ex.analysis
        video = render_novel_views(a.body, ex.texture, NovelViewConfig(frames=8, size=256),
                                   rerender=args.rerender, observed=ex.partial.visibility)  # fmt: skip
        tiles = [cv2.resize(f, (192, 192), interpolation=cv2.INTER_AREA) for f in video.frames]
        photo = cv2.resize(a.image, (192, 192), interpolation=cv2.INTER_AREA)
        rows.append(np.concatenate([photo, *tiles], 1))
    save_image_atomic(args.novel_out, np.concatenate(rows, 0))
    print(json.dumps({"tryon": TRYON, "novel_view": NOVEL, "rerender": args.rerender,
                      "seconds": {"tryon": round(t1 - t0, 1),
                                  "novel_view": round(time.perf_counter() - t1, 1)}}))  # fmt: skip


if __name__ == "__main__":
    main()
