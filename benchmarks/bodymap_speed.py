"""BodyMap network inference time on this CPU at 256 and 512 px, and its parameter count.

Per size (batch 1, ``torch.no_grad``, median of ``--repeats`` after one warm-up),
the two steps of :func:`~reroute.correspondence.bodymap.predict.refine_correspondence`
on a synthetic render: ``network`` (per-pixel features, foreground, colour scores
at the person's pixels) and ``decode`` (windowed expectation and nearest surface
point, :func:`~reroute.correspondence.bodymap.decode.decode_colour_map`, then the
part-island clean-up, :func:`~reroute.correspondence.bodymap.decode.remove_part_islands`, of scores
peaked at the render's true colour code: the colours a trained network gives; an
untrained network's off-body colours decode far slower), and their sum. The architecture is the committed checkpoint's (or the ``cpu``
preset's, untrained, when it is absent). The template fit that makes the
network's initial input is not included (see ``transfer_stages.py``). With a part
head, ``network`` includes the part scores and ``decode`` searches within the render's
true parts. ``refine_correspondence_s`` times the whole of
:func:`~reroute.correspondence.bodymap.predict.refine_correspondence` (the network's own
foreground, colours and parts, then decoding) on the render with its true map as the
initialisation.

    python benchmarks/bodymap_speed.py [--checkpoint CKPT] [--sizes 256 512] [--threads 2] [--repeats 5]
"""

from __future__ import annotations

import argparse
import os

from _common import emit, median_seconds, peak_rss_mb


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--checkpoint", default=None)
    ap.add_argument("--sizes", type=int, nargs="+", default=[256, 512])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=5)
    a = ap.parse_args()
    import numpy as np
    import torch

    from reroute.correspondence.bodymap.decode import (
        colour_targets,
        decode_colour_map,
        expected_colour,
        remove_part_islands,
    )
    from reroute.correspondence.bodymap.network import (
        PRESETS,
        BodyMapNet,
        init_tensor,
        parameter_count,
    )
    from reroute.correspondence.bodymap.predict import (
        DEFAULT_CHECKPOINT,
        load_bodymap,
        refine_correspondence,
    )
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
        c = s.correspondence
        ys, xs = np.nonzero(c.mask)
        pixels = torch.from_numpy(ys * size + xs)[None]
        bins = colour_targets(torch.from_numpy(c.colour[ys, xs].T.copy())[None, :, :, None])  # (1, 3, N, 1)
        scores = torch.nn.functional.one_hot(bins, 256).permute(0, 1, 4, 2, 3).float() * 10

        def network(image=image, init=init, pixels=pixels):
            feats = model.pixel_features(image, init)
            parts = model.part_scores(feats, init) if model.config.part_head else None
            return model.foreground(feats, init), model.score_pixels(feats, pixels, init), parts

        def decode(scores=scores, c=c, ys=ys, xs=xs):
            colour, _ = expected_colour(scores)
            cmap = np.zeros(c.mask.shape + (3,), np.float32)
            cmap[ys, xs] = colour[0, :, :, 0].T.numpy()
            part = c.part.astype(np.int64) if model.config.part_head else None
            return remove_part_islands(decode_colour_map(cmap, c.mask, part=part))

        def end_to_end(image=s.image, c=c):
            return refine_correspondence(model, image, c)

        with torch.no_grad():
            net, dec = median_seconds(network, a.repeats), median_seconds(decode, a.repeats)
        out[f"{size}px"] = {"network_s": net, "decode_s": dec, "total_s": round(net + dec, 4),
                            "refine_correspondence_s": median_seconds(end_to_end, a.repeats),
                            "foreground_pixels": int(len(ys))}  # fmt: skip
    out["peak_rss_mb"] = round(peak_rss_mb(), 1)
    emit(out)


if __name__ == "__main__":
    main()
