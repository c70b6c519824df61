"""BodyMap network inference time on this CPU at 256 and 512 px, and its parameter count.

What is timed is :func:`~reroute.correspondence.bodymap.predict.refine_correspondence`
(batch 1, ``torch.no_grad``, median of ``--repeats`` after one warm-up): the network's
foreground, colour and part heads and the expectation of its colours (``network_s``),
then decoding to the nearest surface points and the part-island clean-up
(``decode_s``), and their sum (``refine_correspondence_s``). The template fit that makes
the network's initial input is not included (see ``transfer_stages.py``). The
architecture is the committed checkpoint's (or the ``cpu`` preset's, untrained, when it
is absent).

Two kinds of input per size:

* ``synthetic``: a render of the synthetic engine (a whole body, about 11 % of a 256 px
  image), with its true correspondences as the initialisation;
* ``photos``: the first ``--photos`` DeepFashion photos of ``../shared/data`` (a
  person filling 15-40 % of the frame, so more pixels to decode), each with its template
  fit (:func:`~reroute.correspondence.analyse.analyse_person`, not timed) as the
  initialisation: the median over photos of each photo's median, with the range and the
  foreground pixel counts. Left out, with the reason, when the data is absent.

    python benchmarks/bodymap_speed.py [--checkpoint CKPT] [--sizes 256 512] [--threads 2] [--repeats 5] [--photos 6]
"""

from __future__ import annotations

import argparse
import os

from _common import SHARED_DATA, emit, peak_rss_mb


def _time_refine(model, image, init, repeats: int) -> dict:
    """Median seconds of the whole call and of its two parts, and the foreground pixels."""
    import numpy as np

    from reroute.correspondence.bodymap.predict import refine_correspondence

    rows = []
    for i in range(repeats + 1):
        tm: dict[str, float] = {}
        out = refine_correspondence(model, image, init, timings=tm)
        if i:  # the first call warms up
            rows.append((tm["network"], tm["decode"], tm["network"] + tm["decode"]))
    net, dec, tot = (round(float(v), 4) for v in np.median(np.array(rows), 0))
    return {"network_s": net, "decode_s": dec, "refine_correspondence_s": tot,
            "foreground_pixels": int(out.correspondence.mask.sum())}  # fmt: skip


def _photos(model, size: int, n: int, repeats: int) -> dict:
    import numpy as np

    from reroute.correspondence.analyse import analyse_person

    paths = sorted((SHARED_DATA / "deepfashion" / "images").glob("*.png"))[:n]
    if not paths:
        return {"skipped": f"no DeepFashion photos under {SHARED_DATA}"}
    rows = []
    for p in paths:
        a = analyse_person(p, size=size)
        rows.append(_time_refine(model, a.image, a.correspondence, repeats))
    total = [r["refine_correspondence_s"] for r in rows]
    return {"photos": len(rows),
            "network_s": round(float(np.median([r["network_s"] for r in rows])), 4),
            "decode_s": round(float(np.median([r["decode_s"] for r in rows])), 4),
            "refine_correspondence_s": round(float(np.median(total)), 4),
            "refine_correspondence_s_range": [round(min(total), 4), round(max(total), 4)],
            "foreground_pixels": sorted(r["foreground_pixels"] for r in rows)}  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--checkpoint", default=None)
    ap.add_argument("--sizes", type=int, nargs="+", default=[256, 512])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--photos", type=int, default=6, help="DeepFashion photos timed per size (0: none)")
    a = ap.parse_args()
    import torch

    from reroute.correspondence.bodymap.network import PRESETS, BodyMapNet, parameter_count
    from reroute.correspondence.bodymap.predict import DEFAULT_CHECKPOINT, load_bodymap
    from reroute.synth.engine import SynthConfig, SyntheticEngine

    torch.set_num_threads(a.threads)
    path = str(a.checkpoint or DEFAULT_CHECKPOINT)
    trained = os.path.isfile(path)
    model = load_bodymap(path) if trained else BodyMapNet(PRESETS["cpu"]).eval()
    out = {"checkpoint": path if trained else "cpu preset (untrained)", "variant": model.config.variant,
           "parameters": parameter_count(model), "threads": a.threads}  # fmt: skip
    for size in a.sizes:
        s = SyntheticEngine(SynthConfig(size=size, texture_size=256), seed=7).sample(0, 0)
        out[f"{size}px"] = {"synthetic": _time_refine(model, s.image, s.correspondence, a.repeats)}
        if a.photos:
            out[f"{size}px"]["photos"] = _photos(model, size, a.photos, a.repeats)
    out["peak_rss_mb"] = round(peak_rss_mb(), 1)
    emit(out)


if __name__ == "__main__":
    main()
