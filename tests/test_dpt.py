"""Dense Pose Transfer (renderer/dpt/): streams, atlas transformers, losses, training, integration."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from renderer.dpt.blending import BlendingConfig, BlendingModule
from renderer.dpt.data import DPTDataset
from renderer.dpt.losses import (
    DPTLoss,
    DPTLossWeights,
    gram_matrix,
    lsgan_d_loss,
    lsgan_g_loss,
    multiview_l1,
    style_loss,
)
from renderer.dpt.model import PRESETS, VARIANTS, DensePoseTransfer, DPTConfig, load_dpt
from renderer.dpt.predictive import (
    CONDITIONINGS,
    PredictiveConfig,
    PredictiveStream,
    encode_iuv,
    encode_view,
    keypoint_heatmaps,
)
from renderer.dpt.train import PRESETS as TRAIN_PRESETS
from renderer.dpt.train import ToyDPTPairs, main
from renderer.dpt.warping import (
    Atlas,
    InpaintingAutoencoder,
    InpaintingConfig,
    atlas_parts,
    atlas_to_image,
    image_to_atlas,
    parts_atlas,
)
from reroute.body.detect import BLAZEPOSE_NAMES, COCO18_NAMES, coco18_keypoints
from reroute.errors import InputError

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
PG2 = SHARED / "deepfashion" / "pg2_pairs"


def _iuv(b: int, s: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    part = torch.randint(0, 25, (b, 1, s, s), generator=g).float() / 24
    return torch.cat([part, torch.rand(b, 2, s, s, generator=g)], 1)


@pytest.mark.parametrize("preset, side", [("tiny", 32), ("cpu", 64)])
def test_every_variant_shapes_and_gradients(preset, side):
    for variant in VARIANTS:
        cfg = DPTConfig.from_dict({**PRESETS[preset].to_dict(), "variant": variant})
        m = DensePoseTransfer(cfg)
        src = torch.rand(2, 3, side, side) * 2 - 1
        out = m.run(src, _iuv(2, side), _iuv(2, side, 1))
        assert out.image.shape == (2, 3, side, side) and out.image.abs().max() <= 1
        assert (out.atlas is not None) == cfg.uses_warping
        out.image.mean().backward()
        assert m.predictive.encoder[0][0].weight.grad is not None
        assert (m.blending is None) == (variant == "predictive")
        assert (m.inpainting is None) == (variant != "full")


def test_paper_sizes():
    """The paper's stream sizes at 256 x 256 (sec. 3.1; Appendix Table 6)."""
    p = PredictiveStream(PredictiveConfig())
    assert [m[0].out_channels for m in p.encoder] == [64, 128, 256] and len(p.res) == 6
    assert p.encoder[0][0].in_channels == 9  # image + two IUV maps
    src = torch.rand(1, 3, 256, 256) * 2 - 1
    with torch.no_grad():
        h = p.encoder(torch.cat([src, _iuv(1, 256), _iuv(1, 256)], 1))
        assert h.shape == (1, 256, 64, 64)
        assert p(src, _iuv(1, 256), _iuv(1, 256)).shape == (1, 3, 256, 256)
        ae = InpaintingAutoencoder(InpaintingConfig())
        assert ae.context[0].in_features == 24 * 128 * 16 * 16 and ae.context[2].out_features == 256
        atlas = Atlas(torch.zeros(1, 3, 1024, 1536), torch.zeros(1, 1, 1024, 1536))
        e = ae.encoders(atlas_parts(torch.cat([atlas.pixels, atlas.visibility], 1)).reshape(1, 96, 256, 256))
        assert e.shape == (1, 24 * 128, 16, 16)
        assert ae(atlas).pixels.shape == (1, 3, 1024, 1536)
        b = BlendingModule(BlendingConfig())
        assert len(b.res) == 3
        assert b(src, src, src[:, :1], _iuv(1, 256)).shape == (1, 3, 256, 256)


def test_conditionings_and_shape_errors():
    iuv = _iuv(2, 8)
    kp = torch.rand(2, 18, 3) * 8
    for mode, ch in CONDITIONINGS.items():
        enc = encode_view(iuv, mode, kp)
        assert enc.shape == (2, ch, 8, 8)
    with pytest.raises(ValueError, match="needs keypoints"):
        encode_view(iuv, "keypoints")
    with pytest.raises(ValueError, match=r"keypoints: expected \(2, 18, 3\), got \(2, 17, 3\)"):
        encode_view(iuv, "keypoints", kp[:, :17])
    parts = encode_iuv(iuv, "parts")
    assert torch.equal(parts.argmax(1), torch.round(iuv[:, 0] * 24).long())
    with pytest.raises(ValueError, match=r"expected \(B, 3, H, W\), got \(2, 2, 8, 8\)"):
        encode_iuv(iuv[:, :2])
    m = PredictiveStream(PredictiveConfig((4, 4, 4), 1))
    with pytest.raises(ValueError, match=r"target_iuv: expected \(1, 3, 8, 8\), got \(1, 3, 4, 4\)"):
        m(torch.zeros(1, 3, 8, 8), _iuv(1, 8), _iuv(1, 4))
    with pytest.raises(ValueError, match="divisible by 4"):
        m(torch.zeros(1, 3, 6, 6), _iuv(1, 6), _iuv(1, 6))
    with pytest.raises(ValueError, match=r"atlas pixels: expected \(1, 3, 64, 96\)"):
        InpaintingAutoencoder(InpaintingConfig(16, (4, 8), 8))(Atlas(torch.zeros(1, 3, 32, 48), torch.zeros(1, 1, 32, 48)))


def test_keypoint_heatmaps_known_answers():
    kp = torch.tensor([[[10.0, 20.0, 1.0], [40.0, 5.0, 0.5], [3.0, 3.0, 0.0]]])
    h = keypoint_heatmaps(kp, 32, 64, sigma=2.0)
    assert h.shape == (1, 3, 32, 64)
    assert h[0, 0, 20, 10] == pytest.approx(1.0) and h[0, 0].argmax() == 20 * 64 + 10
    assert h[0, 0, 20, 12] == pytest.approx(float(torch.exp(torch.tensor(-0.5))), abs=1e-6)  # one sigma
    assert h[0, 1, 5, 40] == pytest.approx(0.5) and h[0, 2].abs().max() == 0
    assert keypoint_heatmaps(kp, 256, 256)[0, 0, 20, 14] == pytest.approx(float(torch.exp(torch.tensor(-0.5))))
    with pytest.raises(ValueError, match=r"expected \(B, K, 3\), got \(3, 3\)"):
        keypoint_heatmaps(kp[0], 8, 8)


def test_coco18_keypoints_from_blazepose():
    pts = torch.arange(66, dtype=torch.float32).reshape(33, 2).numpy()
    conf = torch.linspace(0, 1, 33).numpy()
    kp = coco18_keypoints(pts, conf)
    assert kp.shape == (18, 3) and kp.dtype.name == "float32"
    for k, name in enumerate(COCO18_NAMES):
        if name != "neck":
            i = BLAZEPOSE_NAMES.index(name)
            assert kp[k].tolist() == [*pts[i].tolist(), pytest.approx(float(conf[i]))]
    ls, rs = BLAZEPOSE_NAMES.index("left_shoulder"), BLAZEPOSE_NAMES.index("right_shoulder")
    assert kp[1, :2].tolist() == ((pts[ls] + pts[rs]) / 2).tolist() and kp[1, 2] == pytest.approx(conf[ls])
    with pytest.raises(ValueError, match=r"\(33, 2\)"):
        coco18_keypoints(pts[:17], conf[:17])


def test_keypoint_conditioning_reads_keypoints_not_iuv():
    torch.manual_seed(0)
    m = DensePoseTransfer(DPTConfig.from_dict({**PRESETS["tiny"].to_dict(), "variant": "predictive",
                                               "predictive": {"channels": [8, 8, 16], "res_blocks": 1,
                                                              "conditioning": "keypoints"}})).eval()  # fmt: skip
    assert m.needs_keypoints and m.predictive.encoder[0][0].in_channels == 3 + 2 * 18
    ds = ToyDPTPairs(1, 32)
    b = {k: v[None] for k, v in ds[0].items()}
    args = (b["source"], b["source_iuv"])
    with torch.no_grad():
        out = m(*args, b["target_iuv"], b["source_keypoints"], b["target_keypoints"])
        other_iuv = m(*args, _iuv(1, 32, 5), b["source_keypoints"], b["target_keypoints"])
        moved = m(*args, b["target_iuv"], b["source_keypoints"], b["target_keypoints"] + 6)
    assert torch.equal(out, other_iuv)  # the predictive stream sees no IUV
    assert (out - moved).abs().max() > 1e-3
    with pytest.raises(ValueError, match="needs keypoints"):
        m(*args, b["target_iuv"])


def test_dataset_keypoints_resize_swap_and_old_items(tmp_path, capsys):
    rng = np.random.default_rng(0)
    item = {f"{v}{k}": a for v in ("source", "target") for k, a in (
        ("", rng.integers(0, 256, (256, 256, 3), dtype=np.uint8)),
        ("_iuv", rng.integers(0, 25, (256, 256, 3), dtype=np.uint8)),
        ("_mask", rng.integers(0, 2, (256, 256), dtype=np.uint8)))}  # fmt: skip
    kp_s, kp_t = np.float32([[127.5, 63.5, 1.0]] * 18), np.float32([[31.5, 0.0, 0.5]] * 18)
    np.savez(tmp_path / "a.npz", kind=np.array("cross"), source_keypoints=kp_s, target_keypoints=kp_t, **item)
    ds = DPTDataset(tmp_path, size=128, augment=False, swap=True)
    assert ds[0]["source_keypoints"][0].tolist() == [63.5, 31.5, 1.0]  # pixel centres scale by 1/2
    assert ds[1]["source_keypoints"][0].tolist() == [15.5, -0.25, 0.5]  # reversed pair
    old = tmp_path / "old"
    old.mkdir()
    np.savez(old / "b.npz", kind=np.array("cross"), **item)
    assert "source_keypoints" not in DPTDataset(old, augment=False)[0]
    assert main(["--stage", "predictive", "--preset", "tiny", "--data", str(old),
                 "--conditioning", "keypoints", "--out", str(tmp_path / "run"), "--no-progress"]) == 2  # fmt: skip
    assert "needs items with keypoints" in capsys.readouterr().err


def test_atlas_layout_round_trip():
    x = torch.rand(2, 5, 4 * 8, 6 * 8)
    parts = atlas_parts(x)
    assert parts.shape == (2, 24, 5, 8, 8)
    assert torch.equal(parts_atlas(parts), x)
    # part 8 (index 7) is tile row 1, column 1
    assert torch.equal(parts[:, 7], x[:, :, 8:16, 8:16])


def test_atlas_transformer_is_seam_free_per_part():
    """Colour as a function of the part: scattered and sampled back, every pixel gets exactly
    its own part's colour (no bleeding between tiles or from empty texels)."""
    iuv = _iuv(1, 48, 3)
    part = torch.round(iuv[:, 0] * 24).long()
    lut = torch.rand(25, 3) * 2 - 1
    image = lut[part[0]].permute(2, 0, 1)[None]
    atlas = image_to_atlas(image, iuv, tile=16)
    assert atlas.pixels.shape == (1, 3, 64, 96) and atlas.visibility.max() == 1
    back, cover = atlas_to_image(atlas, iuv)
    on = part[:, None] > 0
    assert torch.allclose(back.masked_select(on.expand_as(back)), image.masked_select(on.expand_as(image)),
                          atol=1e-5)  # fmt: skip
    assert torch.all(back.masked_select(~on.expand_as(back)) == 0) and torch.all(cover[~on] == 0)


@pytest.mark.skipif(not (SHARED / "deepfashion").is_dir(), reason="needs ../shared/data")
def test_atlas_round_trip_on_a_synthetic_render():
    """A synthetic person scattered into the atlas and sampled back at the same IUV
    returns the photo: at the paper's tile (256) the mean error is under 2.5 levels
    (measured 2.06; 8-bit IUV), and it grows as the tile shrinks (64: 8.5 levels)."""
    from renderer.dpt.model import iuv_tensor
    from reroute.synth.engine import SynthConfig, SyntheticEngine

    s = SyntheticEngine(SynthConfig(size=256, multi_person_prob=0.0, upper_body_prob=0.0,
                                    fill_range=(0.85, 0.9)), seed=3).sample(0, 0)  # fmt: skip
    image = torch.from_numpy(s.image.transpose(2, 0, 1).copy()).float()[None] / 127.5 - 1
    iuv = iuv_tensor(s.correspondence)
    on = torch.from_numpy(s.correspondence.mask)[None, None].expand_as(image)
    errs = []
    for tile in (256, 64):
        back, cover = atlas_to_image(image_to_atlas(image, iuv, tile), iuv)
        errs.append((back - image).abs().masked_select(on).mean().item() * 127.5)
        assert cover[on[:, :1]].min() > 0.99
    assert errs[0] < 2.5 < errs[0] * 2 < errs[1], errs


def test_losses_known_answers():
    f = torch.ones(1, 2, 2, 2)
    assert torch.allclose(gram_matrix(f), torch.full((1, 2, 2), 0.5))  # 4 / (2 * 2 * 2)
    feats = [torch.rand(2, 4, 8, 8), torch.rand(2, 8, 4, 4)]
    assert style_loss(feats, [x.clone() for x in feats]).item() == 0
    assert style_loss(feats, [x * 2 for x in feats]) > style_loss(feats, [x * 1.1 for x in feats]) > 0
    ones, zeros = [torch.ones(1, 1, 4, 4)], [torch.zeros(1, 1, 4, 4)]
    assert lsgan_d_loss(ones, zeros).item() == 0 and lsgan_d_loss(zeros, ones).item() == 1.0
    assert lsgan_g_loss(ones).item() == 0 and lsgan_g_loss(zeros).item() == 1.0
    pred = torch.zeros(1, 3, 4, 6)
    view = torch.ones(1, 3, 4, 6)
    vis = torch.zeros(1, 1, 4, 6)
    vis[..., 0, 0] = 1
    assert multiview_l1(pred, [(pred.clone(), torch.ones_like(vis))]).item() == 0
    assert multiview_l1(pred, [(view, vis), (pred, vis)]).item() == 0.5  # 3 errors of 1 over 6 values
    with pytest.raises(ValueError, match="feature network"):
        DPTLoss(DPTLossWeights())
    loss = DPTLoss(DPTLossWeights(perceptual=0, style=0, adv=0.1))
    terms = loss.generator_terms(pred, view, [torch.zeros(1, 1, 2, 2)])
    assert set(terms) == {"l1", "adv"} and abs(loss.total(terms).item() - (1.0 + 0.1)) < 1e-6


def test_untrained_blending_returns_the_predictive_output():
    b = BlendingModule(BlendingConfig(8, 1))
    pred = torch.rand(1, 3, 16, 16) * 2 - 1
    assert torch.equal(b(pred, torch.rand_like(pred), torch.ones(1, 1, 16, 16), _iuv(1, 16)), pred)


def test_tiny_full_model_overfits_one_batch():
    torch.manual_seed(0)
    ds = ToyDPTPairs(2, 32)
    batch = {k: torch.stack([ds[i][k] for i in range(2)]) for k in ds[0]}
    m = DensePoseTransfer(PRESETS["tiny"])
    opt = torch.optim.Adam(m.parameters(), 3e-3)
    losses = []
    for _ in range(150):
        opt.zero_grad()
        loss = (m(batch["source"], batch["source_iuv"], batch["target_iuv"]) - batch["target"]).abs().mean()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.2 * losses[0], (losses[0], losses[-1])


def test_stages_train_and_chain_through_checkpoints(tmp_path, capsys):
    base = ["--preset", "tiny", "--no-progress", "--steps", "2"]
    assert main(["--stage", "predictive", "--out", str(tmp_path / "p"), *base]) == 0
    assert main(["--stage", "inpainting", "--out", str(tmp_path / "i"), *base]) == 0
    p, i = tmp_path / "p/checkpoints/last.pt", tmp_path / "i/checkpoints/last.pt"
    assert main(["--stage", "full", "--out", str(tmp_path / "f"), "--predictive", str(p), "--inpainting", str(i),
                 "--freeze", *base]) == 0  # fmt: skip
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["step"] == 2 and "g/adv" in summary["final_terms"]
    pred, full = load_dpt(p), load_dpt(tmp_path / "f/checkpoints/last.pt")
    assert pred.config.variant == "predictive" and full.config.variant == "full"
    # frozen: the full model's predictive stream is the stage checkpoint's, unchanged
    for k, v in pred.predictive.state_dict().items():
        assert torch.equal(v, full.predictive.state_dict()[k]), k
    # a resumed run at its step count runs 0 steps
    assert main(["--stage", "predictive", "--out", str(tmp_path / "p"), *base]) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["steps_run"] == 0
    with pytest.raises(InputError, match="'dpt_inpainting' checkpoint, expected 'dpt'"):
        load_dpt(i)
    # the keypoints conditioning trains on items with keypoints (the toy pairs have them)
    assert main(["--stage", "predictive", "--out", str(tmp_path / "k"), "--conditioning", "keypoints", *base]) == 0
    assert load_dpt(tmp_path / "k/checkpoints/last.pt").needs_keypoints


def test_presets_are_valid_and_vgg_terms_need_weights(tmp_path, monkeypatch, capsys):
    for _name, (task_cfg, train_cfg) in TRAIN_PRESETS.items():
        task_cfg.model.validate()
        train_cfg.validate()
    assert TRAIN_PRESETS["paper"][1].batch_size == 8 and TRAIN_PRESETS["paper"][0].loss == DPTLossWeights()
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "th"))
    assert main(["--stage", "predictive", "--preset", "tiny", "--out", str(tmp_path / "x"), "--no-progress",
                 "--feature-net", "vgg19", "--style-weight", "1"]) == 2  # fmt: skip
    assert "VGG19 ImageNet weights not found" in capsys.readouterr().err
    assert main(["--stage", "predictive", "--preset", "tiny", "--out", str(tmp_path / "y"), "--no-progress",
                 "--perceptual-weight", "1"]) == 2  # fmt: skip
    assert "needs --feature-net" in capsys.readouterr().err


def test_torchrun_two_processes_gloo_identical_weights(tmp_path):
    torchrun = Path(sys.executable).with_name("torchrun")
    cmd = [str(torchrun) if torchrun.exists() else "torchrun", "--standalone", "--nproc_per_node", "2",
           "-m", "renderer.dpt.train", "--stage", "full", "--preset", "tiny", "--out", str(tmp_path),
           "--steps", "2", "--no-progress", "--threads", "1"]  # fmt: skip
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    r = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    lines = [x for x in r.stdout.splitlines() if x.startswith("{")]
    assert len(lines) == 1 and json.loads(lines[0])["world_size"] == 2


@pytest.fixture(scope="module")
def tiny_dpt(tmp_path_factory) -> Path:
    """A tiny, briefly trained ``dpt`` checkpoint named like the committed one."""
    run = tmp_path_factory.mktemp("dpt_run")
    assert main(["--stage", "full", "--preset", "tiny", "--out", str(run), "--steps", "2", "--no-progress"]) == 0
    folder = tmp_path_factory.mktemp("checkpoints")
    (folder / "dpt_cpu256.pt").write_bytes((run / "checkpoints" / "last.pt").read_bytes())
    return folder / "dpt_cpu256.pt"


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "reroute", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=600)  # fmt: skip


@pytest.mark.skipif(not PG2.is_dir(), reason="needs ../shared/data/deepfashion/pg2_pairs")
def test_cli_transfer_method_dpt(tiny_dpt, tmp_path):
    src, tgt = sorted(PG2.glob("*_source.png"))[0], sorted(PG2.glob("*_target.png"))[0]
    out = tmp_path / "out.png"
    r = _cli("transfer", "--source", str(src), "--target", str(tgt), "--out", str(out), "--method", "dpt",
             "--dpt-checkpoint", str(tiny_dpt), "--debug-dir", str(tmp_path / "dbg"))  # fmt: skip
    assert r.returncode == 0, r.stderr
    res = json.loads(r.stdout.strip().splitlines()[-1])
    assert res["method"] == "dpt" and "dpt" in res["timings_s"]
    from reroute.io.images import load_image

    assert load_image(out).pixels.shape == load_image(tgt).pixels.shape
    assert {"dpt_predicted.png", "dpt_warped.png", "dpt_atlas.png"} <= {p.name for p in (tmp_path / "dbg").iterdir()}
    r = _cli("transfer", "--source", str(src), "--target", str(tgt), "--out", str(out), "--method", "magic")
    assert r.returncode == 2 and r.stderr.strip().splitlines()[-1].startswith("error: unknown --method 'magic'")
    r = _cli("transfer", "--source", str(src), "--target", str(tgt), "--out", str(out), "--method", "dpt",
             "--dpt-checkpoint", str(tmp_path / "none.pt"))  # fmt: skip
    assert r.returncode == 2 and "none.pt" in r.stderr and len(r.stderr.strip().splitlines()) == 1


@pytest.mark.skipif(not PG2.is_dir(), reason="needs ../shared/data/deepfashion/pg2_pairs")
def test_pipeline_feeds_blazepose_keypoints_to_a_keypoint_model(tmp_path):
    from dataclasses import replace  # noqa: PLC0415 - this test alone edits an analysis

    from reroute.pipelines.dpt import DensePoseTransferPipeline  # noqa: PLC0415 - loads mediapipe

    assert main(["--stage", "predictive", "--preset", "tiny", "--conditioning", "keypoints", "--out",
                 str(tmp_path), "--steps", "2", "--no-progress"]) == 0  # fmt: skip
    pipe = DensePoseTransferPipeline(size=128, checkpoint=str(tmp_path / "checkpoints/last.pt"))
    src, tgt = sorted(PG2.glob("*_source.png"))[0], sorted(PG2.glob("*_target.png"))[0]
    res = pipe(src, tgt)
    assert res.image.shape[:2] == res.target.original_size
    obs = res.target.observation
    moved = replace(res.target, observation=replace(obs, landmarks=obs.landmarks + 10))
    assert not np.array_equal(pipe.transfer(res.source, moved).predicted, res.predicted)


def test_app_offers_dpt_when_its_checkpoint_loads(tiny_dpt, tmp_path):
    from app.services import Services, network_status

    status = network_status(tiny_dpt.parent)
    assert status["Dense Pose Transfer"] is None
    (tmp_path / "dpt_broken.pt").write_bytes(b"x")
    reason = network_status(tmp_path)["Dense Pose Transfer"]
    assert reason.startswith("dpt_broken.pt is there, but reroute cannot load it"), reason
    svc = Services(checkpoints=tiny_dpt.parent, workdir=tmp_path / "work")
    pipe = svc.dpt_pipeline_for(192)
    assert svc.dpt_pipeline_for(192) is pipe and pipe.cache is svc.analysis_cache and pipe.size == 192
