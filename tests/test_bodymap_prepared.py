"""BodyMap training on prepared sets: the real fit as initialisation and DensePose part labels
of real frames (reroute/correspondence/bodymap/prepared.py), the part and colour-L1 terms
(losses.py) and the part-island clean-up of decoding (decode.remove_part_islands)."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from reroute.correspondence.bodymap.decode import (
    DecodedCorrespondence,
    colour_targets,
    remove_part_islands,
)
from reroute.correspondence.bodymap.export import main as export_main
from reroute.correspondence.bodymap.losses import (
    BodyMapLoss,
    BodyMapLossWeights,
    BodyMapTargets,
    colour_l1_loss,
    part_loss,
    surface_landmarks,
)
from reroute.correspondence.bodymap.network import BodyMapOutput
from reroute.correspondence.bodymap.prepared import (
    PreparedDataset,
    main,
    video_frames,
)
from reroute.correspondence.bodymap.train import main as train_main
from reroute.correspondence.maps import Correspondence
from reroute.synth.engine import SynthConfig, SyntheticEngine

TAICHI = Path(__file__).resolve().parents[2] / "shared" / "data" / "video" / "taichi_1"


def _one_hot_logits(sample, noise: int = 0):
    """(1, 3, 256, H, W) logits peaked at the render's colour code (+- noise levels)."""
    colour = colour_targets(
        torch.from_numpy(sample.correspondence.colour).permute(2, 0, 1)[None].float()
    )
    g = torch.Generator().manual_seed(0)
    levels = (colour + torch.randint(-noise, noise + 1, colour.shape, generator=g)).clamp(0, 255)
    return torch.nn.functional.one_hot(levels, 256).permute(0, 1, 4, 2, 3).float() * 30


def test_part_loss_is_low_on_the_true_parts_and_grows_with_error():
    s = SyntheticEngine(SynthConfig(size=128, multi_person_prob=0.0), seed=0).sample(0, 0)
    lm = surface_landmarks()
    part = torch.from_numpy(s.correspondence.part.astype(np.int64))[None]
    exact = float(part_loss(_one_hot_logits(s), part, lm))
    noisy = float(part_loss(_one_hot_logits(s, 24), part, lm))
    wrong = float(part_loss(_one_hot_logits(s), torch.where(part > 0, part % 24 + 1, 0), lm))
    # the floor: landmarks ~3 cm apart blur the part borders (0.2 nats = 82% on the true part)
    assert exact < 0.3 < noisy < wrong and wrong > 5, (exact, noisy, wrong)
    assert float(part_loss(_one_hot_logits(s), torch.zeros_like(part), lm)) == 0.0
    with pytest.raises(ValueError, match="part: expected"):
        part_loss(_one_hot_logits(s), part[:, :10], lm)
    # in BodyMapLoss the term sees real images only
    mask = torch.from_numpy(s.correspondence.mask.astype(np.float32))[None, None]
    out = BodyMapOutput(_one_hot_logits(s), mask * 60 - 30)
    t = BodyMapTargets(torch.zeros(1, 3, *part.shape[1:], dtype=torch.long), mask, torch.where(part > 0, part % 24 + 1, 0),
                       torch.full_like(part, -1))  # fmt: skip
    loss = BodyMapLoss(BodyMapLossWeights(part=1.0, geodesic=0, consistency=0), lm)
    assert float(loss.terms(out, t)["part"]) == 0.0  # real=None: all synthetic
    t.real = torch.ones(1)
    assert float(loss.terms(out, t)["part"]) == pytest.approx(wrong, rel=1e-5)


def test_colour_l1_is_the_mean_colour_error_of_the_soft_argmax():
    s = SyntheticEngine(SynthConfig(size=128, multi_person_prob=0.0), seed=0).sample(0, 0)
    target = colour_targets(torch.from_numpy(s.correspondence.colour).permute(2, 0, 1)[None].float())
    w = torch.from_numpy(s.correspondence.mask.astype(np.float32))[None]
    assert float(colour_l1_loss(_one_hot_logits(s), target, w)) < 1e-6
    shifted = torch.nn.functional.one_hot((target + 8).clamp(max=255), 256).permute(0, 1, 4, 2, 3).float() * 30
    err = float(colour_l1_loss(shifted, target, w))
    # 8 levels = 8 / 256 colour units, less where the shift was clipped at level 255
    assert 0.9 * 8 / 256 < err <= 8 / 256 + 1e-6
    assert float(colour_l1_loss(shifted, target, torch.zeros_like(w))) == 0.0
    with pytest.raises(ValueError, match="expected"):
        colour_l1_loss(shifted, target[:, :2], w)


@pytest.mark.skipif(not TAICHI.exists(), reason=f"real frames not found at {TAICHI}")
def test_video_set_round_trip_and_training_on_it(tmp_path, capsys):
    frames = video_frames(TAICHI, first=10, last=12)
    assert [p.stem for p in frames] == ["frame0010", "frame0011", "frame0012"]
    assert [p.stem for p in video_frames(TAICHI, first=10, last=14, step=2)] == [
        "frame0010",
        "frame0012",
        "frame0014",
    ]
    out = tmp_path / "taichi.pt"
    assert (
        main(["video", "--video", str(TAICHI), "--first", "10", "--last", "11", "--out", str(out)])
        == 0
    )
    ds = PreparedDataset([out], repeat_real=3)
    assert len(ds) == 6 and ds.meta[0]["frames"] == ["frame0010", "frame0011"]
    t = ds[0]
    iuv = cv2.imread(str(TAICHI / "frame0010_IUV.png"))
    assert torch.equal(t["part"], torch.from_numpy(iuv[..., 0].astype(np.int64)))
    assert torch.equal(t["mask"][0], (t["part"] > 0).float()) and float(t["real"]) == 1.0
    assert (t["vertex"] == -1).all() and t["init"].shape == (4, 256, 256)
    assert t["init"][3].sum() > 1000 and set(t["init"][3].unique().tolist()) <= {
        0.0,
        1.0,
    }  # the fit's mask
    # a tiny network trains on it at 256 px, and the part term is reported
    assert train_main(["--preset", "tiny", "--out", str(tmp_path / "run"), "--no-progress", "--steps", "2",
                       "--prepared", str(out), "--part-weight", "1", "--size", "256"]) == 0  # fmt: skip
    terms = json.loads(capsys.readouterr().out.strip().splitlines()[-1])["final_terms"]
    assert terms["g/part"] > 0 and terms["g/ce"] == 0.0  # no colour target on real frames
    ck = torch.load(tmp_path / "run" / "checkpoints" / "last.pt", weights_only=True)
    assert ck["config"]["prepared"] == [str(out)] and ck["config"]["loss"]["part"] == 1.0
    assert export_main(["--run", str(tmp_path / "run"), "--out", str(tmp_path / "bm.pt")]) == 0
    data = json.loads((tmp_path / "bm.json").read_text())["data"]  # the model card names the frames used
    assert data["sets"][0]["frames"] == ["frame0010", "frame0011"] and data["sets"][0]["kind"] == "video"
    assert (
        train_main(["--preset", "tiny", "--out", str(tmp_path / "r2"), "--prepared", str(out)]) == 2
    )
    assert "prepared sets are [256] px" in capsys.readouterr().err


def test_bad_prepared_files_are_one_line_errors(tmp_path, capsys):
    bad = tmp_path / "bad.pt"
    torch.save({"image": torch.zeros(1)}, bad)
    assert (
        train_main(["--preset", "tiny", "--out", str(tmp_path / "r"), "--prepared", str(bad)]) == 2
    )
    assert "not a prepared BodyMap set" in capsys.readouterr().err
    assert main(["video", "--video", str(tmp_path), "--out", str(tmp_path / "x.pt")]) == 2
    assert "no frameNNNN.png" in capsys.readouterr().err


def test_part_islands_are_refilled_from_their_surroundings():
    H, W = 40, 40
    mask = np.zeros((H, W), bool)
    mask[5:35, 5:35] = True  # 900 px
    part = np.where(mask, 2, 0).astype(np.uint8)
    part[5:35, 20:35] = 1  # two halves, both large
    part[10:12, 10] = 5  # a 2-px island of part 5 inside part 2
    uv = np.zeros((H, W, 2), np.float32)
    uv[..., 0] = np.arange(W)[None] / W
    colour = np.repeat(uv[..., :1], 3, 2)
    vertex = np.where(mask, np.arange(H * W).reshape(H, W), -1)
    d = DecodedCorrespondence(Correspondence(part, uv, uv, colour, mask, mask), mask.astype(np.float32), vertex)
    out = remove_part_islands(d, min_fraction=0.004)  # 3.6 px
    c = out.correspondence
    assert (c.part[10:12, 10] == 2).all() and (c.part[mask] != 5).all()
    assert np.array_equal(c.mask, mask) and np.array_equal(c.part[5:35, 20:35], part[5:35, 20:35])
    # refilled from the nearest kept pixel: a horizontal neighbour (x = 9 or 11)
    assert set(np.round(c.uv[10:12, 10, 0] * W).tolist()) <= {9.0, 11.0}
    assert set(out.vertex[10:12, 10].tolist()) <= {10 * W + 9, 10 * W + 11, 11 * W + 9, 11 * W + 11}
    untouched = ~np.zeros_like(mask)
    untouched[10:12, 10] = False
    for k in ("part_uv", "uv", "colour"):
        assert np.array_equal(getattr(c, k)[untouched], getattr(d.correspondence, k)[untouched]), k
    assert remove_part_islands(d, min_fraction=0.001) is d  # nothing below 0.9 px
