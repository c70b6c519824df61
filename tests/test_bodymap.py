"""The BodyMap correspondence network (reroute/correspondence/bodymap/): network, losses, data, training."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from reroute.correspondence.bodymap import network as bodymap_network
from reroute.correspondence.bodymap.data import BodyMapDataset, InitPerturbation, perturbed_init
from reroute.correspondence.bodymap.decode import colour_targets, decode_logits, part_lookup
from reroute.correspondence.bodymap.export import main as export_main
from reroute.correspondence.bodymap.losses import (
    BodyMapLoss,
    BodyMapLossWeights,
    BodyMapTargets,
    consistency_loss,
    detail_weights,
    gather_targets,
    geodesic_loss,
    part_ce_loss,
    sample_pixels,
    silhouette_iou_loss,
    surface_landmarks,
)
from reroute.correspondence.bodymap.network import (
    PRESETS,
    VARIANTS,
    BodyMapConfig,
    BodyMapNet,
    BodyMapOutput,
    init_tensor,
    parameter_count,
)
from reroute.correspondence.bodymap.predict import load_bodymap, refine_correspondence
from reroute.correspondence.bodymap.train import main
from reroute.correspondence.fitted import render_correspondence
from reroute.metrics.correspondence import part_iou

ROOT = Path(__file__).resolve().parents[1]


def _net(preset: str, variant: str, **over) -> BodyMapNet:
    return BodyMapNet(BodyMapConfig.from_dict({**PRESETS[preset].to_dict(), "variant": variant, **over}))


@pytest.mark.parametrize("preset, side", [("tiny", 32), ("cpu", 64)])
def test_every_variant_shapes_and_gradients(preset, side):
    torch.manual_seed(0)
    for variant in VARIANTS:
        m = _net(preset, variant)
        image, init = torch.rand(2, 3, side, side) * 2 - 1, torch.rand(2, 4, side, side)
        out = m(image, init)
        assert out.logits.shape == (2, 3, 256, side, side) and out.foreground.shape == (2, 1, side, side)
        (out.logits.logsumexp(2).mean() + out.foreground.mean()).backward()
        first = m.backbone.down[0][0] if variant == "unet" else m.rgb.embed
        assert first.weight.grad is not None and first.weight.grad.abs().sum() > 0, variant
        if variant == "full":
            assert m.corr.embed.weight.grad.abs().sum() > 0  # the initial correspondences are used
        if variant == "rgb":  # the RGB-only network ignores them
            with torch.no_grad():
                a, b = m(image, init), m(image, torch.zeros_like(init))
            assert torch.equal(a.logits, b.logits)
        pixels = torch.tensor([[0, 5, side * side - 1]] * 2)
        sel = m(image, init, pixels)
        assert sel.logits.shape == (2, 3, 256, 3, 1)
        with torch.no_grad():
            full = m.eval()(image, init).logits.flatten(3)
            assert torch.allclose(m(image, init, pixels).logits[..., 0], full[..., pixels[0]], atol=1e-5)


def test_paper_sizes_and_shape_errors():
    m = _net("paper", "full")
    assert m.rgb.embed.weight.shape == (768, 3, 16, 16) and len(m.rgb.blocks) == 12
    assert m.rgb.pos.shape == (1, 1 + 24 * 24, 768) and m.corr.embed.in_channels == 4
    assert 150e6 < parameter_count(m) < 250e6  # two ViT-B/16 encoders and the decoder
    with torch.no_grad():
        out = m(torch.zeros(1, 3, 64, 96), torch.zeros(1, 4, 64, 96))  # positional embeddings resized
    assert out.logits.shape == (1, 3, 256, 64, 96)
    tiny = _net("tiny", "full")
    with pytest.raises(ValueError, match=r"init: expected \(1, 4, 32, 32\), got \(1, 3, 32, 32\)"):
        tiny(torch.zeros(1, 3, 32, 32), torch.zeros(1, 3, 32, 32))
    with pytest.raises(ValueError, match="multiples of 16"):
        tiny(torch.zeros(1, 3, 40, 40), torch.zeros(1, 4, 40, 40))
    with pytest.raises(ValueError, match="variant must be one of"):
        BodyMapConfig(variant="cnn").validate()


@pytest.fixture(scope="module")
def sample():
    from reroute.synth.engine import SynthConfig, SyntheticEngine  # noqa: PLC0415 - anny loads only here

    return SyntheticEngine(SynthConfig(size=128, multi_person_prob=0.0), seed=0).sample(0, 0)


def _perfect(sample, noise: int = 0, seed: int = 0):
    """Targets of ``sample`` and an output whose argmax levels are the truth +- ``noise``."""
    c = sample.correspondence
    colour = colour_targets(torch.from_numpy(c.colour).permute(2, 0, 1)[None].float())
    vertex = torch.from_numpy(sample.vertex_index.astype(np.int64))[None]
    part = torch.from_numpy(c.part.astype(np.int64))[None]
    mask = torch.from_numpy(c.mask.astype(np.float32))[None, None]
    g = torch.Generator().manual_seed(seed)
    levels = (colour + torch.randint(-noise, noise + 1, colour.shape, generator=g)).clamp(0, 255)
    logits = torch.nn.functional.one_hot(levels, 256).permute(0, 1, 4, 2, 3).float() * 30
    return BodyMapOutput(logits, (mask * 2 - 1) * 30), BodyMapTargets(colour, mask, part, vertex)


def test_losses_minimal_on_the_truth_and_growing_with_error(sample):
    lm = surface_landmarks()
    loss = BodyMapLoss(landmarks=lm)
    values = []
    for noise in (0, 4, 16, 48):
        out, t = _perfect(sample, noise)
        values.append({k: float(v) for k, v in loss.terms(out, t).items()})
    exact = values[0]
    assert exact["ce"] < 1e-6 and exact["silhouette"] < 1e-6
    # the geodesic terms' floor is the soft assignment's spread over ~3 cm-apart landmarks
    assert exact["geodesic"] < 0.04 and exact["consistency"] < 0.03
    for k in ("ce", "geodesic", "consistency"):
        assert all(a[k] < b[k] for a, b in zip(values, values[1:], strict=False)), (k, values)
    assert values[-1]["geodesic"] > 0.1  # +-48 of 256 levels: decimetres off
    out, t = _perfect(sample)
    assert silhouette_iou_loss(-out.foreground, t.mask) > 0.99  # everything wrong
    assert float(geodesic_loss(out.logits, torch.full_like(t.vertex, -1), lm)) == 0.0
    assert float(consistency_loss(out.logits, torch.full_like(t.vertex, -1), lm)) == 0.0


def test_detail_weights_and_pixel_sampling():
    part = torch.tensor([[[0, 3, 4, 2], [23, 24, 1, 0]]])
    assert detail_weights(part, 3.0).tolist() == [[[1, 3, 3, 1], [3, 3, 1, 1]]]
    vertex = torch.tensor([[[-1, 7, -1, 9]], [[-1, -1, -1, -1]]])
    px = sample_pixels(vertex, 50, torch.Generator().manual_seed(0))
    assert px.shape == (2, 50) and set(px[0].tolist()) == {1, 3}  # only body pixels
    assert set(px[1].tolist()) <= {0, 1, 2, 3}  # no body: anywhere
    t = BodyMapTargets(torch.arange(24).reshape(1, 3, 2, 4), torch.ones(1, 1, 2, 4), part,
                       torch.arange(8).reshape(1, 2, 4))  # fmt: skip
    g = gather_targets(t, torch.tensor([[5, 0]]))
    assert g.colour[0, :, :, 0].tolist() == [[5, 0], [13, 8], [21, 16]] and g.part[0, :, 0].tolist() == [24, 0]
    assert g.vertex.shape == (1, 2, 1) and g.mask.shape == (1, 1, 2, 4)


def test_perturbed_init_is_a_realistic_fit(sample):
    true = np.where(sample.mask, sample.correspondence.part, 0)
    none = perturbed_init(sample, InitPerturbation(0, 0, 0, 0, 0, 0, 0), np.random.default_rng(0))
    # no noise: the true body rendered as the fit's maps are (only grazing slivers relabelled)
    assert np.array_equal(none.part, render_correspondence(sample.body, sample.mask).part)
    assert (none.part == true).mean() > 0.99
    noisy = perturbed_init(sample, InitPerturbation(), np.random.default_rng(0))
    iou = part_iou(noisy.part, true)
    assert 0.3 < iou < 0.9, iou
    assert (noisy.mask == sample.mask).mean() > 0.97  # extended to the (eroded or dilated) silhouette


def test_dataset_items_and_reduction():
    ds = BodyMapDataset(4, size=64, seed=1)
    t = ds[1]
    assert t["image"].shape == (3, 64, 64) and t["init"].shape == (4, 64, 64)
    assert t["colour"].dtype == torch.int64 and t["colour"].shape == (3, 64, 64) and int(t["colour"].max()) < 256
    assert t["vertex"].dtype == torch.int64 and int(t["vertex"].min()) == -1
    fg = t["vertex"] >= 0
    assert bool((t["mask"][0][fg] == 1).all()) and bool((t["part"][fg] > 0).all())
    again = BodyMapDataset(4, size=64, seed=1)[1]
    assert all(torch.equal(t[k], again[k]) for k in t)  # deterministic per (seed, index)


def test_tiny_overfits_one_batch():
    torch.manual_seed(0)
    ds = BodyMapDataset(2, size=32, seed=2)
    batch = {k: torch.stack([ds[i][k] for i in range(2)]) for k in ds[0]}
    m = _net("tiny", "full", init_prior=False)  # learning from scratch, not from the initialisation
    loss_fn = BodyMapLoss(landmarks=surface_landmarks())
    opt = torch.optim.Adam(m.parameters(), 2e-3)
    t = BodyMapTargets(batch["colour"], batch["mask"], batch["part"], batch["vertex"])
    losses = []
    for _ in range(200):
        opt.zero_grad()
        terms = loss_fn.terms(m(batch["image"], batch["init"]), t)
        loss_fn.total(terms).backward()
        opt.step()
        losses.append({k: float(v.detach()) for k, v in terms.items()})
    first, last = losses[0], losses[-1]
    assert last["ce"] < 0.1 * first["ce"] and last["silhouette"] < 0.6 * first["silhouette"], (first, last)
    assert last["geodesic"] < 0.2 * first["geodesic"] and last["consistency"] < 0.2 * first["consistency"]


def test_training_command_and_checkpoint(tmp_path, capsys):
    assert main(["--preset", "tiny", "--out", str(tmp_path), "--no-progress", "--steps", "2"]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["step"] == 2 and {"g/ce", "g/silhouette", "g/geodesic", "g/consistency"} <= set(summary["final_terms"])
    ck = torch.load(tmp_path / "checkpoints" / "last.pt", weights_only=True)
    assert ck["kind"] == "bodymap" and BodyMapConfig.from_dict(ck["config"]["model"]) == PRESETS["tiny"]
    assert export_main(["--run", str(tmp_path), "--out", str(tmp_path / "bm.pt"), "--extra", '{"note": "x"}']) == 0
    card = json.loads((tmp_path / "bm.json").read_text())
    assert card["steps"] == 2 and card["parameters"] == parameter_count(load_bodymap(tmp_path / "bm.pt"))
    assert card["hardware"]["cpu_count"] == os.cpu_count() and card["note"] == "x" and card["variant"] == "full"
    assert main(["--preset", "tiny", "--out", str(tmp_path / "u"), "--size", "40", "--variant", "unet"]) == 2
    assert "multiple of 16" in capsys.readouterr().err


_RANKS = """
import json, sys, torch, torch.distributed as dist
from reroute.correspondence.bodymap.train import BodyMapTask, build_dataset, configs_from_args, parse_args
from reroute.training.trainer import GANTrainer, close_distributed
task_cfg, train_cfg = configs_from_args(parse_args(sys.argv[1:]))
tr = GANTrainer(BodyMapTask(task_cfg), build_dataset(task_cfg), train_cfg)
tr.fit()
v = torch.cat([p.detach().flatten() for p in tr.G.parameters()])
everyone = [torch.zeros_like(v) for _ in range(dist.get_world_size())]
dist.all_gather(everyone, v)
result = {"rank": dist.get_rank(), "identical": all(torch.equal(everyone[0], x) for x in everyone)}
with open(f"{train_cfg.out_dir}/rank{dist.get_rank()}.json", "w") as f:  # two ranks' stdout lines may interleave
    json.dump(result, f)
close_distributed()
"""


def test_torchrun_two_processes_gloo_identical_weights(tmp_path):
    script = tmp_path / "ranks.py"
    script.write_text(_RANKS)
    torchrun = Path(sys.executable).with_name("torchrun")
    cmd = [str(torchrun) if torchrun.exists() else "torchrun", "--standalone", "--nproc_per_node", "2", str(script),
           "--preset", "tiny", "--out", str(tmp_path / "run"), "--steps", "2", "--no-progress"]  # fmt: skip
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    r = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    ranks = [json.loads((tmp_path / f"run/rank{i}.json").read_text()) for i in range(2)]
    assert sorted(x["rank"] for x in ranks) == [0, 1] and all(x["identical"] for x in ranks), r.stdout
    assert torch.load(tmp_path / "run/checkpoints/last.pt", weights_only=True)["step"] == 2


def test_refine_correspondence_equals_decoding_the_full_output(sample):
    from reroute.correspondence.maps import Correspondence  # noqa: PLC0415 - only this test crops a map

    torch.manual_seed(0)
    m = _net("tiny", "full").eval()
    H, W = 56, 40  # not multiples of the network's step: padded and cropped back
    c = sample.correspondence
    init = Correspondence(*(getattr(c, k)[40 : 40 + H, 44 : 44 + W]
                            for k in ("part", "part_uv", "uv", "colour", "mask", "body_mask")))  # fmt: skip
    image = np.ascontiguousarray(sample.image[40 : 40 + H, 44 : 44 + W])
    x = torch.from_numpy(image.transpose(2, 0, 1).copy()).float()[None] / 127.5 - 1
    pad = (0, -W % 16, 0, -H % 16)
    inputs = torch.nn.functional.pad(x, pad, mode="replicate"), torch.nn.functional.pad(init_tensor(init), pad)
    with torch.no_grad():
        m.fg.bias -= m(*inputs).foreground[..., :H, :W].median()  # about half the pixels foreground
        out = m(*inputs)
    a = refine_correspondence(m, image, init, min_island=0)  # decode_logits keeps part islands
    b = decode_logits(out.logits[..., :H, :W], out.foreground[..., :H, :W])[0]
    assert 0 < a.correspondence.mask.sum() < H * W
    assert np.array_equal(a.correspondence.mask, b.correspondence.mask) and np.array_equal(a.vertex, b.vertex)
    assert np.allclose(a.confidence, b.confidence, atol=1e-6)
    with pytest.raises(ValueError, match="differ"):
        refine_correspondence(m, image[:-1], init)


@pytest.mark.parametrize("colours", ["prior only", "learned"])
def test_refine_correspondence_shortcuts_equal_the_full_heads(sample, colours):
    """refine_correspondence's shortcuts change no output: the colours' expectation from
    the prior alone (``colour_is_prior``) or chunk by chunk at the foreground pixels, and
    the part scores in the foreground's box, against decoding the full-size output (with
    parts, no island clean-up); ``timings`` gets both stages."""
    torch.manual_seed(0)
    m = _net("tiny", "full", part_head=True).eval()
    c, image = sample.correspondence, sample.image
    with torch.no_grad():
        m.part_prior.fill_(0.5)
        m.part[0].weight.normal_(0, 1.0)  # parts other than the initial ones, which read
        m.part[-1].weight.normal_(0, 1.0)  # the neighbours' features (a 3 x 3 convolution)
        if colours == "learned":
            m.scores.weight.normal_(0, 2.0)
    assert m.colour_is_prior == (colours == "prior only")
    tm: dict[str, float] = {}
    a = refine_correspondence(m, image, c, min_island=0, keep_torso_side=False, timings=tm)
    with torch.no_grad():
        x = torch.from_numpy(image.transpose(2, 0, 1).copy()).float()[None] / 127.5 - 1
        out = m(x, init_tensor(c))
    b = decode_logits(out.logits, out.foreground, parts=out.parts)[0]
    fg = a.correspondence.mask
    assert fg.sum() > 100 and np.array_equal(fg, b.correspondence.mask)
    assert (a.correspondence.part[fg] != c.part[fg]).mean() > 0.05  # the head moved parts
    assert np.array_equal(a.correspondence.part, b.correspondence.part)
    assert (a.vertex != b.vertex).mean() < 1e-3  # float rounding may flip a tie on an edge
    assert np.allclose(a.confidence, b.confidence, atol=1e-5)
    assert set(tm) == {"network", "decode"} and all(v > 0 for v in tm.values())


def test_encoder_block_equals_the_transformer_layer():
    """``network._encoder_block`` computes ``nn.TransformerEncoderLayer``'s output: the same
    operations in training, and within 1e-5 of PyTorch's fused eval fast path."""
    torch.manual_seed(0)
    m = _net("tiny", "full")
    t = torch.randn(2, 17, m.config.dim)
    for block in m.rgb.blocks:
        assert torch.equal(block.train()(t), bodymap_network._encoder_block(block, t))
        with torch.no_grad():
            assert torch.allclose(block.eval()(t), bodymap_network._encoder_block(block, t), atol=1e-5)


def test_untrained_network_reproduces_its_initialisation():
    """The init prior: before training, the scores peak at the initial colour code's level
    on the initial mask (the free scores start at zero), and the foreground is the initial
    mask."""
    torch.manual_seed(0)
    t = BodyMapDataset(2, size=64, seed=2)[0]
    for variant in ("full", "unet"):
        m = _net("tiny", variant).eval()
        with torch.no_grad():
            out = m(t["image"][None], t["init"][None])
        on = t["init"][3] > 0
        off = (out.logits.argmax(2)[0] - colour_targets(t["init"][None, :3])[0]).abs()[:, on]
        assert int(off.max()) == 0, variant
        assert torch.equal(out.foreground[0, 0] > 0, on), variant
    rgb = _net("tiny", "rgb")
    assert not rgb.uses_prior and not hasattr(rgb, "prior_log_sharpness")


def test_prior_offset_starts_at_the_initialisation_and_moves_its_peak():
    """``prior_offset``: the predicted centre offsets start at zero (the untrained network
    still returns its initialisation), and an offset of ``max_offset * tanh(o)`` moves the
    peak of the scores by that many colour units; gradients reach the offset head."""
    torch.manual_seed(0)
    t = BodyMapDataset(2, size=64, seed=2)[0]
    m = _net("tiny", "full", prior_offset=True).eval()
    on = t["init"][3] > 0
    with torch.no_grad():
        base = m(t["image"][None], t["init"][None]).logits.argmax(2)[0]
        target = colour_targets(t["init"][None, :3])[0]
        assert int((base - target).abs()[:, on].max()) <= 5
        m.prior_shift.bias[:3] = float(np.arctanh(0.5))  # +0.5 * max_offset = +0.05 = +12.8 levels
        moved = m(t["image"][None], t["init"][None]).logits.argmax(2)[0]
    inside = on & (t["init"][:3] < 0.9).all(0)
    shift = (moved - base)[:, inside].float()
    assert abs(float(shift.median()) - 12.8) <= 1.0, float(shift.median())
    out = m.train()(t["image"][None], t["init"][None])
    out.logits.logsumexp(2).mean().backward()
    assert m.prior_shift.weight.grad.abs().sum() > 0


def test_prior_flow_reads_the_initial_map_where_the_flow_points():
    """``prior_flow``: a zero flow reads the initial map at each pixel exactly; a flow of
    one pixel along x reads its right-hand neighbour; scoring at ``pixels`` equals the full
    output there."""
    torch.manual_seed(0)
    m = _net("tiny", "full", prior_offset=True, prior_flow=True).eval()
    image = torch.rand(2, 3, 32, 32) * 2 - 1
    init = torch.rand(2, 4, 32, 32)
    init[:, 3] = (torch.rand(2, 32, 32) > 0.3).float()
    init[:, :3] *= init[:, 3:4]  # colour is 0 off the mask, as init_tensor gives it
    with torch.no_grad():
        x = m.pixel_features(image, init)
        torch.testing.assert_close(m._init_at(init, x)[:, 3], init[:, 3])
        torch.testing.assert_close(m._init_at(init, x)[:, :3] * init[:, 3:4], init[:, :3])
        pix = torch.randint(0, 32 * 32, (2, 40))
        full, part = m(image, init).logits, m(image, init, pix).logits
        picked = torch.gather(full.flatten(3), 3, pix[:, None, None].expand(-1, 3, 256, -1))[..., None]
        torch.testing.assert_close(picked, part)
        m.flow_head.bias[0] = float(np.arctanh((2 / 32) / (2 * m.config.max_flow)))  # +1 px along x
        moved = m._init_at(init, m.pixel_features(image, init))
    torch.testing.assert_close(moved[:, 3, :, :-1], init[:, 3, :, 1:])
    on = init[:, 3:4, :, 1:] > 0
    torch.testing.assert_close((moved[:, :3, :, :-1] * on), init[:, :3, :, 1:] * on)


def test_part_head_starts_at_the_initial_parts_and_learns():
    """``part_head``: (B, 24, H, W) part scores; untrained, their argmax on the initial mask
    is the initial colour code's part (:func:`part_lookup`), and the RGB-only variant (no
    prior) still has the head; at ``pixels`` they equal the full map there; with a
    colour-space table (zero at the start) the untrained scores are the same; the part
    cross-entropy trains the head, the prior's weight and the table, and a tiny network
    overfits the parts of one batch."""
    torch.manual_seed(0)
    t = BodyMapDataset(2, size=32, seed=2)
    batch = {k: torch.stack([t[i][k] for i in range(2)]) for k in t[0]}
    lut = part_lookup()
    q = (batch["init"][:, :3] * lut.shape[0]).long().clamp(0, lut.shape[0] - 1)
    first = lut[q[:, 0], q[:, 1], q[:, 2]].long()
    on = (batch["init"][:, 3] > 0.5) & (first > 0)
    for variant in VARIANTS:
        m = _net("tiny", variant, part_head=True)
        with torch.no_grad():
            out = m.eval()(batch["image"], batch["init"])
            pix = torch.tensor([[0, 7, 1023]] * 2)
            sel = m(batch["image"], batch["init"], pix).parts
        assert out.parts.shape == (2, 24, 32, 32) and sel.shape == (2, 24, 3, 1), variant
        torch.testing.assert_close(sel[..., 0], out.parts.flatten(2)[..., pix[0]])
        if variant != "rgb":
            assert torch.equal(out.parts.argmax(1)[on] + 1, first[on]), variant
    assert _net("tiny", "full").eval()(batch["image"], batch["init"]).parts is None
    with pytest.raises(RuntimeError, match="no part head"):
        _net("tiny", "full").part_scores(torch.zeros(1, 32, 32, 32), batch["init"][:1])
    m = _net("tiny", "full", part_head=True, part_table=4, part_gain=10.0)
    with torch.no_grad():  # the colour-space table starts at zero: still the initial parts
        assert torch.equal(m.eval()(batch["image"], batch["init"]).parts.argmax(1)[on] + 1, first[on])
    loss_fn = BodyMapLoss(BodyMapLossWeights(ce=0, geodesic=0, consistency=0, part_ce=1))
    targets = BodyMapTargets(batch["colour"], batch["mask"], batch["part"], batch["vertex"])
    opt = torch.optim.Adam(m.parameters(), 2e-3)
    losses = []
    for _ in range(60):
        opt.zero_grad()
        terms = loss_fn.terms(m(batch["image"], batch["init"]), targets)
        loss_fn.total(terms).backward()
        if not losses:
            assert m.part[-1].weight.grad.abs().sum() > 0 and m.part_prior.grad is not None
            assert m.part_table.grad.abs().sum() > 0
        opt.step()
        losses.append(float(terms["part_ce"].detach()))
    assert losses[-1] < 0.5 * losses[0], losses[::10]
    with pytest.raises(ValueError, match="needs a network with a part head"):
        loss_fn.terms(_net("tiny", "full")(batch["image"], batch["init"]), targets)


def test_part_ce_loss_zero_on_the_truth_and_growing_with_error():
    g = torch.Generator().manual_seed(0)
    part = torch.randint(0, 25, (2, 8, 8), generator=g)
    w = detail_weights(part, 3.0)
    values = []
    for wrong in (0.0, 0.2, 0.5, 0.9):
        flip = torch.rand(part.shape, generator=g) < wrong
        guess = torch.where(flip, (part % 24) + 1, part)  # another part where flipped
        scores = torch.nn.functional.one_hot((guess - 1).clamp_min(0), 24).permute(0, 3, 1, 2).float() * 30
        values.append(float(part_ce_loss(scores, part, w)))
    assert values[0] < 1e-6 and all(a < b for a, b in zip(values, values[1:], strict=False)), values
    # unlabelled pixels (part 0) do not count: changing their scores changes nothing
    noise = torch.randn(2, 24, 8, 8, generator=g) * (part == 0)[:, None]
    assert abs(float(part_ce_loss(scores + noise, part, w)) - values[-1]) < 1e-5
    with pytest.raises(ValueError, match=r"parts: expected \(B, 24, H, W\)"):
        part_ce_loss(scores[:, :5], part, w)
    with pytest.raises(ValueError, match="part and weights: expected"):
        part_ce_loss(scores, part[:, :4], w)


def test_refine_correspondence_uses_the_predicted_parts(sample):
    """With a part head, each foreground pixel's decoded part is the head's argmax (no
    island clean-up), which can differ from the colour's own nearest part."""
    torch.manual_seed(0)
    m = _net("tiny", "full", part_head=True).eval()
    c = sample.correspondence
    image = np.ascontiguousarray(sample.image[:64, :64])
    from reroute.correspondence.maps import Correspondence  # noqa: PLC0415 - only these tests crop a map

    init = Correspondence(*(getattr(c, k)[:64, :64] for k in ("part", "part_uv", "uv", "colour", "mask", "body_mask")))
    with torch.no_grad():  # the head says part 4 (left hand) everywhere
        m.part_prior.fill_(0.0)
        m.part[-1].bias[3] = 5.0
    d = refine_correspondence(m, image, init, min_island=0)
    fg = d.correspondence.mask
    assert fg.sum() > 50 and (d.correspondence.part[fg] == 4).all()
    assert (d.vertex[fg] >= 0).all()


def test_refine_correspondence_keeps_the_fits_torso_side(sample):
    """A head that calls every pixel torso front (2) does not turn the fit's torso back (1)
    into front unless asked to: the fit's facing decides front from back."""
    torch.manual_seed(0)
    m = _net("tiny", "full", part_head=True).eval()
    c = sample.correspondence
    from reroute.correspondence.maps import Correspondence  # noqa: PLC0415 - only these tests crop a map

    init = Correspondence(*(getattr(c, k) for k in ("part", "part_uv", "uv", "colour", "mask", "body_mask")))
    init.part[init.part == 2] = 1  # the fit sees the torso from the back
    with torch.no_grad():
        m.part_prior.fill_(0.0)
        m.part[-1].bias[1] = 5.0  # torso front everywhere
    kept = refine_correspondence(m, sample.image, init, min_island=0)
    swapped = refine_correspondence(m, sample.image, init, min_island=0, keep_torso_side=False)
    back = (init.part == 1) & kept.correspondence.mask
    assert back.sum() > 50
    assert (kept.correspondence.part[back] == 1).all()
    assert (swapped.correspondence.part[back & swapped.correspondence.mask] == 2).all()
    other = kept.correspondence.mask & ~np.isin(init.part, (1, 2))
    assert (kept.correspondence.part[other] == 2).all()  # only the torso is held
    rgb = _net("tiny", "rgb", part_head=True).eval()  # reads no initial map: no rule either
    with torch.no_grad():
        rgb.part[-1].bias[1] = 50.0
        rgb.fg.bias.fill_(50.0)
    alone = refine_correspondence(rgb, sample.image, init, min_island=0)
    assert (alone.correspondence.part[back] == 2).all()
