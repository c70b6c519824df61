"""Person detection rate on every real photo of a person in ``../shared/data``.

Runs :func:`reroute.body.detect.detect_person` (BlazePose with its padded and
mirrored retries, then its landmark model on regions around the person) on the DeepFashion images, single views, PIDM samples, the
photos with DensePose IUV, the pg2 pairs (sources and targets, not PG2's
outputs) and the video frames (UBC Fashion and Tai-Chi every ``--stride``-th
frame, iPER, TikTok). Counts photos where it finds the one person; lists the
misses. Prints JSON.

    python benchmarks/detection_rate.py [--stride 4]
"""

from __future__ import annotations

import argparse
import time

from _common import SHARED_DATA, emit, require

IMAGE_EXTS = (".png", ".jpg", ".jpeg")


def _photos(root, stride: int) -> dict[str, list]:
    def listed(folder, keep=lambda p: True):
        d = root / folder
        if not d.exists():
            return []
        return sorted(p for p in d.iterdir() if p.suffix.lower() in IMAGE_EXTS and keep(p))

    def not_map(p):  # IUV maps, silhouettes and person-index maps are not photos
        return not any(t in p.stem.lower() for t in ("_iuv", "_inds", "_sil", "_dp", "_mask"))

    sets = {
        "deepfashion/images": listed("deepfashion/images"),
        "deepfashion/single_views": listed("deepfashion/single_views"),
        "deepfashion/pidm_samples": listed("deepfashion/pidm_samples"),
        "deepfashion/with_densepose_iuv": listed("deepfashion/with_densepose_iuv", not_map),
        "deepfashion/pg2_pairs": listed("deepfashion/pg2_pairs", lambda p: not p.stem.endswith("_pg2")),
        "video/ubc_fashion_1": listed("video/ubc_fashion_1", not_map)[::stride],
        "video/taichi_1": listed("video/taichi_1", not_map)[::stride],
        "video/iper_frames": listed("video/iper_frames", not_map),
        "video/tiktok_frame": listed("video/tiktok_frame", not_map),
    }
    return {k: v for k, v in sets.items() if v}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--stride", type=int, default=4, help="every n-th video frame")
    args = ap.parse_args()
    root = require(SHARED_DATA)
    from reroute.body.detect import detect_person
    from reroute.errors import InputError
    from reroute.io.images import load_image

    t0 = time.perf_counter()
    per_set, misses = {}, []
    for name, paths in _photos(root, args.stride).items():
        found = 0
        for p in paths:
            try:
                detect_person(load_image(p).pixels, name=p.name)
                found += 1
            except InputError as e:
                misses.append({"photo": f"{name}/{p.name}", "error": str(e)})
        per_set[name] = {"found": found, "of": len(paths)}
    total = sum(v["of"] for v in per_set.values())
    found = sum(v["found"] for v in per_set.values())
    emit({"photos": total, "found": found, "rate": round(found / max(total, 1), 4),
          "per_set": per_set, "misses": misses,
          "wall_seconds": round(time.perf_counter() - t0, 1)})  # fmt: skip


if __name__ == "__main__":
    main()
