"""The neural re-renderer (renderer/): network, losses, training, checkpoints, data."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from renderer.losses import (
    RerenderLoss,
    RerenderLossWeights,
    face_l1,
    feature_matching_loss,
    gray_ssim,
    gray_ssim_loss,
    ms_ssim_loss,
)
from renderer.network import PRESETS, RerenderConfig, ReRenderer, load_rerenderer, rerender_image
from renderer.train import PRESETS as TRAIN_PRESETS
from renderer.train import ToyRerenderPairs, main
from reroute.errors import InputError
from reroute.training.checkpoint import save_checkpoint

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"


def _inputs(b: int, h: int, w: int, seed: int = 0) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return [torch.rand(b, 3, h, w, generator=g) * 2 - 1, torch.rand(b, 3, h, w, generator=g) * 2 - 1,
            torch.rand(b, 2, h, w, generator=g), torch.rand(b, 3, h, w, generator=g),
            (torch.rand(b, 1, h, w, generator=g) > 0.5).float(),
            torch.rand(b, 3, 64, 64, generator=g) * 2 - 1]  # fmt: skip


@pytest.mark.parametrize("preset,side", [("tiny", 32), ("cpu", 64), ("paper", 64)])
def test_shapes_and_gradients_every_preset(preset, side):
    m = ReRenderer(PRESETS[preset])
    x = _inputs(2, side, side)
    out = m.render(*x)
    assert out.image.shape == (2, 3, side, side)
    assert out.alpha.shape == (2, 1, side, side)
    assert 0 <= float(out.alpha.detach().min()) and float(out.alpha.detach().max()) <= 1
    (out.image.mean() + out.alpha.mean()).backward()
    grads = [p.grad for p in m.parameters() if p.requires_grad]
    assert all(g is not None for g in grads)
    assert any(float(g.abs().sum()) > 0 for g in grads)


def test_untrained_network_returns_its_input():
    """Zero-initialised head: residual 0 and alpha = sigmoid(4 * (2 m - 1)) over the background."""
    m = ReRenderer(PRESETS["tiny"]).eval()
    warped, bg, uv, col, mask, tex = _inputs(1, 32, 32)
    with torch.no_grad():
        out = m(warped, bg, uv, col, mask, tex)
    a = torch.sigmoid(4.0 * (2 * mask - 1))
    torch.testing.assert_close(out, a * warped + (1 - a) * bg)


def test_shape_errors_say_expected_and_actual():
    m = ReRenderer(PRESETS["tiny"])
    x = _inputs(1, 32, 32)
    x[2] = torch.zeros(1, 3, 32, 32)
    with pytest.raises(ValueError, match=r"uv: expected \(1, 2, 32, 32\), got \(1, 3, 32, 32\)"):
        m(*x)
    with pytest.raises(ValueError, match="divisible by 4"):
        m(*_inputs(1, 30, 32))
    with pytest.raises(ValueError, match="divisible by 2\\*\\*depth"):
        RerenderConfig(image_size=100, depth=3).validate()


def test_feature_matching_zero_for_identical_and_matches_hand_computation():
    g = torch.Generator().manual_seed(1)
    real = [[torch.randn(2, 4, 8, 8, generator=g) for _ in range(5)] for _ in range(2)]
    assert float(feature_matching_loss(real, real)) == 0.0
    fake = [[f + 0.5 for f in s] for s in real]
    fake[1][0] = real[1][0] + 2.0  # one layer of scale 1 differs more
    fake[0][4] = real[0][4] + 100.0  # the logits (last output) are never matched
    # 2 scales x 3 layers: five differ by 0.5, one by 2.0
    expected = (5 * 0.5 + 2.0) / 6
    assert float(feature_matching_loss(fake, real, num_layers=3)) == pytest.approx(expected)


def test_face_loss_sees_only_the_face():
    g = torch.Generator().manual_seed(2)
    target = torch.rand(1, 3, 16, 16, generator=g)
    face = torch.zeros(1, 1, 16, 16)
    face[..., 4:8, 4:8] = 1
    pred = target.clone()
    pred[..., 10:, 10:] += 1.0  # outside the face: no loss
    assert float(face_l1(pred, target, face)) == 0.0
    pred[..., 4:6, 4:8] += 0.5  # half the face off by 0.5
    assert float(face_l1(pred, target, face)) == pytest.approx(0.25)


def test_ms_ssim_loss_matches_pytorch_msssim():
    from pytorch_msssim import ms_ssim, ssim

    g = torch.Generator().manual_seed(3)
    a = torch.rand(2, 3, 176, 176, generator=g) * 2 - 1
    b = (a + 0.3 * torch.randn(2, 3, 176, 176, generator=g)).clamp(-1, 1)
    assert float(ms_ssim_loss(a, a)) == pytest.approx(0.0, abs=1e-6)
    want = 1 - ms_ssim((a + 1) / 2, (b + 1) / 2, data_range=1.0)
    assert float(ms_ssim_loss(b, a)) == pytest.approx(float(want), rel=1e-5)
    small = 1 - ssim((a[..., :64, :64] + 1) / 2, (b[..., :64, :64] + 1) / 2, data_range=1.0)
    assert float(ms_ssim_loss(b[..., :64, :64], a[..., :64, :64])) == pytest.approx(float(small), rel=1e-5)


def test_gray_ssim_equals_scikit_image_on_the_same_pair():
    """The training term is the benchmarks' metric: skimage SSIM of rgb2gray images, data_range 1."""
    from skimage.color import rgb2gray
    from skimage.metrics import structural_similarity

    g = torch.Generator().manual_seed(5)
    a = torch.rand(2, 3, 40, 33, generator=g) * 2 - 1
    b = (a + 0.3 * torch.randn(2, 3, 40, 33, generator=g)).clamp(-1, 1)
    got = gray_ssim(b, a)
    for i in range(2):
        A, B = (((t[i] + 1) / 2).permute(1, 2, 0).double().numpy() for t in (a, b))
        want = structural_similarity(rgb2gray(B), rgb2gray(A), data_range=1.0)
        assert float(got[i]) == pytest.approx(want, abs=1e-5)
    assert float(gray_ssim_loss(a, a)) == pytest.approx(0.0, abs=1e-6)
    assert float(gray_ssim_loss(b, a)) == pytest.approx(1 - float(got.mean()), abs=1e-6)
    # more noise, larger loss; gradients reach the prediction
    c = (a + 0.6 * torch.randn(2, 3, 40, 33, generator=g)).clamp(-1, 1).requires_grad_()
    loss = gray_ssim_loss(c, a)
    assert loss.item() > gray_ssim_loss(b, a).item()
    loss.backward()
    assert c.grad is not None and c.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="sides >= 7"):
        gray_ssim(a[..., :6, :6], a[..., :6, :6])
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\)"):
        gray_ssim(a[:, :1], a[:, :1])


def _write_items(folder: Path, names: list[str], kind: str, side: int = 8) -> None:
    from dataclasses import fields

    from renderer.data import RerenderItem

    folder.mkdir(parents=True, exist_ok=True)
    n, t = side, side // 2
    shapes = {"composite": (n, n, 3), "background": (n, n, 3), "target": (n, n, 3), "uv": (n, n, 2),
              "colour": (n, n, 3), "part": (n, n), "mask": (n, n), "texture": (t, t, 3), "seen": (n, n)}  # fmt: skip
    for k, name in enumerate(names):
        arrays = {f.name: np.full(shapes[f.name], k, np.uint16 if f.name == "uv" else np.uint8)
                  for f in fields(RerenderItem)}  # fmt: skip
        np.savez(folder / f"{name}.npz", kind=np.array(kind), **arrays)


def test_synthetic_items_mixed_in_at_the_given_weight(tmp_path):
    from renderer.data import RerenderDataset

    _write_items(tmp_path / "real", [f"r{i}" for i in range(6)], "cross")
    _write_items(tmp_path / "syn", [f"s{i}" for i in range(5)], "synth")
    only_real = RerenderDataset(tmp_path / "real", crop=8, synthetic=tmp_path / "syn")
    assert len(only_real) == 6  # weight 0: the synthetic folder is not read
    ds = RerenderDataset(tmp_path / "real", crop=8, synthetic=tmp_path / "syn", synthetic_weight=0.25)
    assert len(ds) == 8  # 6 real + round(6 * 0.25 / 0.75) = 2 synthetic slots: 2 / 8 = 0.25
    assert [ds.path(i).stem for i in range(8)] == [f"r{i}" for i in range(6)] + ["s0", "s1"]
    ds.set_epoch(1)  # the synthetic slots walk through the synthetic items
    assert [ds.path(i).stem for i in (6, 7)] == ["s2", "s3"]
    ds.set_epoch(2)
    assert [ds.path(i).stem for i in (6, 7)] == ["s4", "s0"]
    assert ds[7]["warped"].shape == (3, 8, 8) and ds[7]["seen"].shape == (1, 8, 8)
    with pytest.raises(InputError, match="synthetic_weight"):
        RerenderDataset(tmp_path / "real", synthetic=tmp_path / "syn", synthetic_weight=1.0)
    with pytest.raises(InputError, match="no synthetic"):
        RerenderDataset(tmp_path / "real", synthetic=tmp_path / "none", synthetic_weight=0.5)


def test_model_card_counts_only_the_item_kinds_trained_on(tmp_path, capsys):
    from renderer.export import main as export_main

    _write_items(tmp_path / "items", ["c0", "c1", "c2"], "cross", side=32)
    _write_items(tmp_path / "items", ["s0", "s1"], "self", side=32)
    run = tmp_path / "run"
    assert main(["--preset", "tiny", "--out", str(run), "--data", str(tmp_path / "items"), "--kinds", "cross",
                 "--crop", "32", "--steps", "1", "--no-progress"]) == 0  # fmt: skip
    assert export_main(["--run", str(run), "--out", str(tmp_path / "rr.pt")]) == 0
    card = json.loads((tmp_path / "rr.json").read_text())
    assert card["data"]["by_kind"] == {"cross": 3} and card["data"]["items"] == 3
    assert card["data"]["kinds"] == ["cross"] and card["steps"] == 1


def test_training_options_store_the_synthetic_mix_and_the_ssim_term():
    from renderer.train import RerenderTask, configs_from_args, parse_args

    a = parse_args(["--preset", "cpu", "--out", "x", "--synthetic", "runs/syn", "--synthetic-weight", "0.2",
                    "--ssim-gray-weight", "2", "--face-weight", "0.5", "--kinds", "cross", "video"])  # fmt: skip
    task, _ = configs_from_args(a)
    assert task.kinds == ("cross", "video")
    assert (task.synthetic, task.synthetic_weight) == ("runs/syn", 0.2)
    assert (task.loss.ssim_gray, task.loss.face) == (2.0, 0.5)
    stored = RerenderTask(task).config_dict()
    assert stored["synthetic_weight"] == 0.2 and stored["loss"]["ssim_gray"] == 2.0
    assert stored["kinds"] == ["cross", "video"]
    plain, _ = configs_from_args(parse_args(["--preset", "cpu", "--out", "x"]))
    assert plain.synthetic_weight == 0.0 and plain.kinds is None
    assert not {"synthetic", "kinds"} & set(RerenderTask(plain).config_dict())
    terms = RerenderLoss(task.loss).generator_terms(torch.zeros(1, 3, 16, 16), torch.zeros(1, 3, 16, 16),
                                                    torch.zeros(1, 1, 16, 16))  # fmt: skip
    assert "ssim_gray" in terms


def test_loss_weights_sum_in_one_place():
    loss = RerenderLoss(RerenderLossWeights(l1=2.0, ssim=0.0, face=0.0, tv=0.0, fm=0.0, adv=0.0))
    pred, target = torch.zeros(1, 3, 16, 16), torch.full((1, 3, 16, 16), 0.5)
    terms = loss.generator_terms(pred, target, torch.ones(1, 1, 16, 16))
    assert set(terms) == {"l1"}
    assert float(loss.total(terms)) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="feature network"):
        RerenderLoss(RerenderLossWeights(perceptual=1.0))


def test_tiny_preset_overfits_one_batch():
    torch.manual_seed(0)
    m = ReRenderer(PRESETS["tiny"])
    ds = ToyRerenderPairs(4, 32)
    batch = {k: torch.stack([ds[i][k] for i in range(4)]) for k in ds[0]}
    # the SSIM term is checked on its own above (and is slow at this size on a CPU)
    loss = RerenderLoss(RerenderLossWeights(adv=0.0, fm=0.0, tv=0.0, ssim=0.0))
    opt = torch.optim.Adam(m.parameters(), 1e-3)

    def step():
        fake = m(batch["warped"], batch["background"], batch["uv"], batch["colour"], batch["mask"],
                 batch["texture"])  # fmt: skip
        return loss.total(loss.generator_terms(fake, batch["target"], batch["face"]))

    with torch.no_grad():
        first = float(step())
    for _ in range(200):
        opt.zero_grad()
        step().backward()
        opt.step()
    with torch.no_grad():
        last = float(step())
    assert last < 0.1 * first, (first, last)


def test_train_main_checkpoint_round_trip(tmp_path, capsys):
    assert main(["--preset", "tiny", "--out", str(tmp_path), "--no-progress"]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["step"] == TRAIN_PRESETS["tiny"][1].steps
    ck = tmp_path / "checkpoints" / "last.pt"
    model = load_rerenderer(ck)
    assert model.config == PRESETS["tiny"]
    raw = torch.load(ck, weights_only=True)
    assert raw["kind"] == "rerenderer" and raw["config"]["model"] == PRESETS["tiny"].to_dict()
    for k, v in model.state_dict().items():
        assert torch.equal(v, raw["generator"][k]), k
    # resuming at the end runs no more steps
    assert main(["--preset", "tiny", "--out", str(tmp_path), "--no-progress"]) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["steps_run"] == 0


def test_foreign_checkpoint_is_refused(tmp_path):
    p = tmp_path / "tex.pt"
    save_checkpoint(p, "texture_completion", {"model": {}}, 0, generator={})
    with pytest.raises(InputError, match="expected 'rerenderer'"):
        load_rerenderer(p)
    with pytest.raises(InputError, match="does not exist"):
        load_rerenderer(tmp_path / "missing.pt")


def test_loaded_rerenderer_is_channels_last_and_computes_what_the_saved_one_did(tmp_path):
    """load_rerenderer hands out NHWC weights; the outputs equal the contiguous network's."""
    torch.manual_seed(0)
    saved = ReRenderer(PRESETS["cpu"])
    for mod in saved.modules():  # nonzero head and BatchNorm statistics, so every layer counts
        if isinstance(mod, torch.nn.BatchNorm2d):
            mod.running_mean.uniform_(-0.2, 0.2)
            mod.running_var.uniform_(0.5, 1.5)
    torch.nn.init.normal_(saved.head.weight, std=0.05)
    saved.eval()
    p = tmp_path / "rr.pt"
    save_checkpoint(p, "rerenderer", {"model": PRESETS["cpu"].to_dict()}, 0, generator=saved.state_dict())
    loaded = load_rerenderer(p)
    convs = [m.weight for m in loaded.modules() if isinstance(m, torch.nn.Conv2d)]
    assert all(w.is_contiguous(memory_format=torch.channels_last) for w in convs)
    assert not saved.stem[0].weight.is_contiguous(memory_format=torch.channels_last)
    x = _inputs(1, 64, 96)
    with torch.no_grad():
        want, got = saved(*x), loaded(*x)
    assert torch.allclose(got, want, atol=1e-5), float((want - got).abs().max())
    assert float((want - x[0]).abs().mean()) > 1e-3  # the network did change its input


def test_widened_network_computes_what_the_original_did():
    """widen_state_dict: the seen channel starts with zero weights, so any seen map changes nothing."""
    from dataclasses import replace

    from renderer.network import widen_state_dict

    torch.manual_seed(0)
    old = ReRenderer(PRESETS["tiny"]).eval()
    with torch.no_grad():  # a trained-looking head (the real one starts at zero)
        old.head.weight.normal_(0, 0.05)
    new = ReRenderer(replace(PRESETS["tiny"], seen_input=True)).eval()
    new.load_state_dict(widen_state_dict(old.state_dict(), new.config))
    x = _inputs(2, 32, 32)
    for seen in (torch.zeros(2, 1, 32, 32), torch.rand(2, 1, 32, 32)):
        torch.testing.assert_close(new(*x, seen), old(*x))
    assert widen_state_dict(new.state_dict(), new.config)["stem.0.weight"].shape[1] == 13
    with pytest.raises(ValueError, match="needs a seen map"):
        new(*x)
    with pytest.raises(ValueError, match="takes no seen map"):
        old(*x, torch.zeros(2, 1, 32, 32))
    with pytest.raises(ValueError, match=r"seen: expected \(2, 1, 32, 32\)"):
        new(*x, torch.zeros(2, 1, 16, 16))
    bad = dict(old.state_dict(), **{"stem.0.weight": torch.zeros(8, 10, 3, 3)})
    with pytest.raises(ValueError, match="stem.0.weight: expected 13 or 12 input channels, got 10"):
        widen_state_dict(bad, new.config)


def test_seen_map_is_the_partial_visibility_at_the_target_uv():
    from renderer.network import seen_map
    from reroute.correspondence.maps import Correspondence
    from reroute.uv.texture import UVTexture, texel_parts, uv_layout_mask

    T = 64
    inside = np.argwhere(uv_layout_mask(T) & (texel_parts(T) > 0))
    picks = inside[np.linspace(0, len(inside) - 1, 12).astype(int)]
    mask = np.zeros((4, 4), bool)
    mask[:3] = True
    uv = np.zeros((4, 4, 2), np.float32)
    uv[:3] = ((picks[:, ::-1] + 0.5) / T).reshape(3, 4, 2)  # texel centres, U along x
    part = np.where(mask, 1, 0).astype(np.uint8)
    corr = Correspondence(part, uv.copy(), uv, np.zeros((4, 4, 3), np.float32), mask, mask)
    vis = np.zeros((T, T), np.float32)
    for y, x in picks[::2]:  # every other picked texel was observed
        vis[max(0, y - 1) : y + 2, max(0, x - 1) : x + 2] = 0.8
    got = seen_map(UVTexture(np.zeros((T, T, 3), np.float32), vis), corr)
    want = np.zeros((4, 4), np.float32)
    want[:3] = np.where(np.arange(12) % 2 == 0, 0.8, 0.0).reshape(3, 4)
    np.testing.assert_allclose(got, want, atol=1e-6)


def test_rerender_image_pads_odd_sizes():
    from reroute.correspondence.maps import Correspondence
    from reroute.uv.texture import UVTexture

    h, w = 37, 26
    rng = np.random.default_rng(0)
    mask = np.zeros((h, w), bool)
    mask[5:30, 5:20] = True
    corr = Correspondence(part=mask.astype(np.uint8) * 2, part_uv=np.zeros((h, w, 2), np.float32),
                          uv=rng.random((h, w, 2), dtype=np.float32), colour=rng.random((h, w, 3), dtype=np.float32),
                          mask=mask, body_mask=mask)  # fmt: skip
    bg = np.full((h, w, 3), 200, np.uint8)
    comp = np.where(mask[..., None], rng.integers(0, 256, (h, w, 3), dtype=np.uint8), bg)  # as composited
    tex = UVTexture(rng.random((64, 64, 3), dtype=np.float32), np.ones((64, 64), np.float32))
    out = rerender_image(ReRenderer(PRESETS["tiny"]), comp, bg, corr, tex)
    assert out.shape == (h, w, 3) and out.dtype == np.uint8
    # untrained: the composite inside the person, the background outside (up to the soft matte)
    inner = mask.copy()
    inner[:7], inner[28:], inner[:, :7], inner[:, 18:] = False, False, False, False
    assert np.abs(out[inner].astype(int) - comp[inner]).max() <= 6
    assert np.abs(out[:3].astype(int) - 200).max() <= 1


@pytest.mark.skipif(not (SHARED / "deepfashion" / "pg2_pairs").is_dir(),
                    reason="needs ../shared/data/deepfashion/pg2_pairs")  # fmt: skip
def test_training_pairs_hold_out_the_evaluation_pairs():
    from renderer.data import heldout_pg2_names, real_training_pairs

    specs = real_training_pairs(SHARED)
    held = heldout_pg2_names(SHARED)
    assert len(held) == 20
    used = {p.name for s in specs for p in (s.source, s.target)}
    assert not any(p.startswith(h + "_") for p in used for h in held)
    assert not any("deepfashion/images" in str(s.source) + str(s.target) for s in specs)
    taichi = [int(p.stem[-4:]) for s in specs for p in (s.source, s.target) if "taichi" in str(p)]
    assert taichi and max(taichi) < 200
    assert {s.kind for s in specs} == {"cross", "self", "video"}


@pytest.mark.skipif(not (SHARED / "deepfashion" / "pg2_pairs").is_dir(),
                    reason="needs ../shared/data/deepfashion/pg2_pairs")  # fmt: skip
def test_built_item_is_the_pipelines_warp_and_the_real_target(tmp_path):
    """One real training item: input = the pipeline's warp-only composite, truth = the target photo."""
    from renderer.data import RerenderDataset, real_training_pairs
    from reroute.evaluation.rerender_pairs import main as build
    from reroute.io.images import load_image

    first = real_training_pairs(SHARED)[0]
    assert build(["--root", str(SHARED), "--out", str(tmp_path), "--limit", "1"]) == 0
    z = np.load(tmp_path / f"{first.name}.npz")
    assert str(z["kind"]) == "cross"
    np.testing.assert_array_equal(z["target"], load_image(first.target).pixels)
    assert z["composite"].shape == (256, 256, 3) and z["uv"].dtype == np.uint16
    assert z["mask"].any() and set(np.unique(z["part"])) <= set(range(25))
    # what the source showed: only on the person, and not everywhere (a cross-pose pair)
    assert z["seen"].dtype == np.uint8 and not z["seen"][z["mask"] == 0].any()
    assert 0.05 < (z["seen"][z["mask"] > 0] > 127).mean() < 0.999
    item = RerenderDataset(tmp_path, augment=False)[0]
    assert item["warped"].shape == (3, 256, 256) and item["texture"].shape == (3, 128, 128)
    # the warp is close to, but not, the real photo
    err = float((item["warped"] - item["target"]).abs().mean())
    assert 0.005 < err < 0.3


def test_torchrun_two_processes_gloo_identical_weights(tmp_path):
    import os
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[1]
    torchrun = Path(sys.executable).with_name("torchrun")
    cmd = [str(torchrun) if torchrun.exists() else "torchrun", "--standalone", "--nproc_per_node", "2",
           "-m", "renderer.train", "--preset", "tiny", "--out", str(tmp_path), "--steps", "2",
           "--no-progress", "--threads", "1"]  # fmt: skip
    env = dict(os.environ, PYTHONPATH=str(root), OMP_NUM_THREADS="1")
    r = subprocess.run(cmd, cwd=root, env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    lines = [x for x in r.stdout.splitlines() if x.startswith("{")]
    assert len(lines) == 1  # only rank 0 prints its summary
    s = json.loads(lines[0])
    assert s["world_size"] == 2 and s["step"] == 2
    model = load_rerenderer(tmp_path / "checkpoints" / "last.pt")
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules())  # plain BN on gloo


def test_paper_preset_needs_vgg_weights(tmp_path, monkeypatch, capsys):
    for name, (task_cfg, train_cfg) in TRAIN_PRESETS.items():
        task_cfg.model.validate()
        train_cfg.validate()
        assert task_cfg.model.image_size == {"tiny": 32, "cpu": 256, "paper": 1024}[name]
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "th"))
    assert main(["--preset", "paper", "--out", str(tmp_path / "p"), "--no-progress"]) == 2
    assert "VGG19 ImageNet weights not found" in capsys.readouterr().err


def test_pipelines_hand_a_seen_model_its_seen_map(tiny_seen_rerenderer):
    """Pose transfer, try-on and novel view give a seen-input re-renderer the seen map.

    The fixture's head adds +0.5 (in [-1, 1] units) to the red channel per unit
    seen, so red rises over the warp-only composite exactly where the source
    showed the surface, and a novel view with every texel observed differs from
    one with none observed.
    """
    from reroute.pipelines.novel_view import NovelViewConfig, render_novel_views
    from reroute.pipelines.pose_transfer import PoseTransferPipeline
    from reroute.pipelines.tryon import TryOnPipeline
    from reroute.synth.engine import render_synthetic_person
    from reroute.synth.pose import EXAMPLE_POSES

    a = render_synthetic_person(EXAMPLE_POSES["arms_down"], seed=0)
    b = render_synthetic_person(EXAMPLE_POSES["arm_raised"], seed=1)
    ck = str(tiny_seen_rerenderer)
    res = PoseTransferPipeline(size=256, rerender="network", rerender_checkpoint=ck)(a.image, b.image)
    assert res.rerendered
    red = res.image[..., 0].astype(int) - res.composite[..., 0]
    person = res.target.correspondence.mask
    assert red[person].mean() > 5 and abs(red[~person].mean()) < 2
    tried = TryOnPipeline(size=128, rerender="network", rerender_checkpoint=ck)(a.image, b.image, "top")
    assert tried.rerendered and tried.image.shape == b.image.shape
    # the wearer's own pixels away from the swap stay the photo's; the swap is re-rendered
    far = cv2.resize((cv2.dilate((tried.mask > 0.05).astype(np.uint8), np.ones((21, 21), np.uint8)) == 0)
                     .astype(np.uint8), b.image.shape[1::-1], interpolation=cv2.INTER_NEAREST) > 0  # fmt: skip
    near = cv2.resize((tried.mask > 0.9).astype(np.uint8), b.image.shape[1::-1], interpolation=cv2.INTER_NEAREST) > 0
    assert far.mean() > 0.3 and near.mean() > 0.02
    assert (tried.image[far] == b.image[far]).all()
    assert np.abs(tried.image[near].astype(int) - b.image[near]).mean() > 5
    tex = np.tile(np.float32([0.2, 0.6, 0.4]), (64, 64, 1))
    cfg = NovelViewConfig(frames=2, size=96)
    frames = [render_novel_views(a.body, tex, cfg, rerender="network", rerender_checkpoint=ck,
                                 observed=np.full((64, 64), v, np.float32)).frames for v in (0.0, 1.0)]  # fmt: skip
    assert (frames[1][..., 0].astype(int) - frames[0][..., 0]).mean() > 1


def test_identity_transfer_keeps_the_photo_through_the_rerenderer(tiny_seen_rerenderer):
    """Where the target shows the source's surface in place, the photo's own pixels win.

    The fixture's re-renderer raises red wherever the surface was seen; on an
    identity transfer (source = target) the flow weight is ~1 on the person, so
    the output is the warp-only composite there; without the direct flow
    (``direct=False``) the re-rendered red comes through.
    """
    from reroute.pipelines.pose_transfer import PoseTransferPipeline
    from reroute.synth.engine import render_synthetic_person
    from reroute.synth.pose import EXAMPLE_POSES

    a = render_synthetic_person(EXAMPLE_POSES["arms_down"], seed=0)
    ck = str(tiny_seen_rerenderer)
    kept = PoseTransferPipeline(size=256, rerender="network", rerender_checkpoint=ck)(a.image, a.image)
    plain = PoseTransferPipeline(size=256, rerender="network", rerender_checkpoint=ck, direct=False)(a.image, a.image)
    person = kept.target.correspondence.mask
    inner = cv2.erode(person.astype(np.uint8), np.ones((5, 5), np.uint8)) > 0
    red_kept = kept.image[..., 0].astype(int) - kept.composite[..., 0]
    red_plain = plain.image[..., 0].astype(int) - plain.composite[..., 0]
    assert abs(red_kept[inner].mean()) < 1.0 and red_plain[inner].mean() > 5
