"""BodyMap network inference time on this CPU at 256 and 512 px, and its parameter count.

Per size (batch 1, ``torch.no_grad``, median of ``--repeats`` after one warm-up):
``network`` (:class:`~reroute.correspondence.bodymap.network.BodyMapNet` forward,
all pixels scored), ``decode`` (:func:`~reroute.correspondence.bodymap.decode.decode_logits`
of scores peaked at a synthetic render's true colour code: the colours a trained
network gives; an untrained network's off-body colours decode far slower) and
their sum. The architecture is the committed checkpoint's (or the ``cpu``
preset's, untrained, when it is absent). The template fit that makes the
network's initial input is not included (see ``transfer_stages.py``).

    python benchmarks/bodymap_speed.py [--checkpoint CKPT] [--sizes 256 512] [--threads 2] [--repeats 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

from _common import emit, peak_rss_mb


def _median_s(fn, repeats: int) -> float:
    fn()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return round(statistics.median(times), 4)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--checkpoint", default=None)
    ap.add_argument("--sizes", type=int, nargs="+", default=[256, 512])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=5)
    a = ap.parse_args()
    import torch

    from reroute.correspondence.bodymap.decode import colour_targets, decode_logits
    from reroute.correspondence.bodymap.network import (
        PRESETS,
        BodyMapNet,
        init_tensor,
        parameter_count,
    )
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
        image = torch.from_numpy(s.image.transpose(2, 0, 1).copy()).float()[None] / 127.5 - 1
        init = init_tensor(s.correspondence)
        colour = torch.from_numpy(s.correspondence.colour.transpose(2, 0, 1).copy())[None]
        logits = torch.nn.functional.one_hot(colour_targets(colour), 256).permute(0, 1, 4, 2, 3).float() * 10
        fg = torch.from_numpy(s.correspondence.mask.astype("float32"))[None, None] * 20 - 10
        with torch.no_grad():
            net = _median_s(lambda image=image, init=init: model(image, init), a.repeats)
            dec = _median_s(lambda logits=logits, fg=fg: decode_logits(logits, fg), a.repeats)
        out[f"{size}px"] = {"network_s": net, "decode_s": dec, "total_s": round(net + dec, 4),
                            "foreground_pixels": int(s.correspondence.mask.sum())}  # fmt: skip
    out["peak_rss_mb"] = round(peak_rss_mb(), 1)
    emit(out)


if __name__ == "__main__":
    main()
