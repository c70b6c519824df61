"""Shared GAN trainer (reroute/training/trainer.py) through the texture network's tiny preset.

Checkpoint round trips with ``weights_only=True``, exact resumption, resume after
SIGKILL, EMA, the VGG choice rules, AMP on CPU, and a 2-process torchrun (gloo) run.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from reroute.errors import InputError
from reroute.training.checkpoint import load_checkpoint, save_checkpoint
from reroute.training.modelcard import export_main
from reroute.training.trainer import EMA, GANTrainer, TrainConfig, measure_matmul_gflops
from texture.network import load_texture_net
from texture.train import PRESETS, TextureCompletionTask, ToyTexturePairs, main

ROOT = Path(__file__).resolve().parents[1]


def _env():
    env = dict(os.environ, OMP_NUM_THREADS="1")
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    return env


def _trainer(out, steps, **kw):
    task_cfg, train_cfg = PRESETS["tiny"]
    cfg = replace(train_cfg, steps=steps, out_dir=str(out), progress=False, device="cpu", **kw)
    return GANTrainer(TextureCompletionTask(task_cfg), ToyTexturePairs(16, 32), cfg)


def test_tiny_preset_trains_and_checkpoint_round_trips(tmp_path):
    tr = _trainer(tmp_path, steps=4)
    summary = tr.fit()
    assert summary["steps_run"] == 4 and tr.step == 4
    rows = [json.loads(x) for x in (tmp_path / "scalars.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [2, 4]
    assert {"g/l1", "g/tv", "g/adv", "d/hinge"} <= set(rows[0])
    from PIL import Image

    grid = Image.open(tmp_path / "images" / "step_0000004.png")
    assert grid.size == (2 + 2 * 34, 2 + 3 * 34)  # rows partial/output/target, batch 2 per row
    # versioned, config inside, plain torch.load with weights_only=True works
    ck = torch.load(tmp_path / "checkpoints" / "last.pt", weights_only=True)
    assert (ck["format"], ck["version"], ck["kind"], ck["step"]) == (
        "reroute.checkpoint", 1, "texture_completion", 4)  # fmt: skip
    assert ck["config"]["model"]["texture_size"] == 32 and ck["config"]["feature_net"] == "none"
    loaded = load_texture_net(tmp_path / "checkpoints" / "last.pt")
    tr.G.eval()
    b = torch.utils.data.default_collate([ToyTexturePairs(16, 32)[i] for i in range(3)])
    with torch.no_grad():
        assert torch.equal(loaded(b["partial"], b["mask"]), tr.G(b["partial"], b["mask"]))


def test_loss_decreases_on_toy_data(tmp_path):
    task_cfg, train_cfg = PRESETS["tiny"]
    task_cfg = replace(task_cfg, loss=replace(task_cfg.loss, adv=0.0))  # D off: pure regression
    cfg = replace(train_cfg, steps=40, log_every=10, lr_g=2e-3, out_dir=str(tmp_path),
                  progress=False, device="cpu", image_every=0)  # fmt: skip
    tr = GANTrainer(TextureCompletionTask(task_cfg), ToyTexturePairs(8, 32), cfg)
    assert tr.D is None
    tr.fit()
    rows = [json.loads(x) for x in (tmp_path / "scalars.jsonl").read_text().splitlines()]
    assert rows[-1]["g/l1"] < 0.7 * rows[0]["g/l1"]


def test_resume_continues_exactly(tmp_path):
    full = _trainer(tmp_path / "a", steps=6, ckpt_every=3)
    full.fit()
    half = _trainer(tmp_path / "b", steps=3, ckpt_every=3)
    half.fit()
    resumed = _trainer(tmp_path / "b", steps=6, ckpt_every=3)
    assert resumed.resumed_from == 3
    s = resumed.fit()
    assert s["start_step"] == 3 and s["steps_run"] == 3
    for k, v in full.G.state_dict().items():
        torch.testing.assert_close(resumed.G.state_dict()[k], v, msg=k)
    fresh = _trainer(tmp_path / "b", steps=6, resume=False)
    assert fresh.step == 0
    slower = _trainer(tmp_path / "b", steps=9, lr_g=1e-5, lr_d=2e-5)  # a last phase at a lower rate
    assert slower.resumed_from == 6
    assert {g["lr"] for g in slower.opt_g.param_groups} == {1e-5}
    assert slower.opt_d is None or {g["lr"] for g in slower.opt_d.param_groups} == {2e-5}


def test_resume_after_kill(tmp_path):
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "texture.train", "--preset", "tiny", "--out", str(out),
           "--steps", "100000", "--ckpt-every", "5", "--no-progress", "--threads", "1"]  # fmt: skip
    p = subprocess.Popen(cmd, cwd=ROOT, env=_env(), stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL)  # fmt: skip
    last = out / "checkpoints" / "last.pt"
    try:
        t0 = time.time()
        while time.time() - t0 < 120:
            if last.is_file() and load_checkpoint(last)["step"] >= 10:
                break
            time.sleep(0.2)
        else:
            pytest.fail("no checkpoint at step >= 10 within 120 s")
    finally:
        p.send_signal(signal.SIGKILL)
        p.wait()
    assert p.returncode == -signal.SIGKILL
    step = load_checkpoint(last)["step"]  # atomic writes: always a complete file
    assert step % 5 == 0 and step >= 10
    r = subprocess.run(cmd[:8] + [str(step + 3)] + cmd[9:], cwd=ROOT, env=_env(),
                       capture_output=True, text=True, timeout=120)  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert f"resumed from step {step}" in r.stdout
    summary = json.loads(r.stdout.strip().splitlines()[-1])
    assert (summary["start_step"], summary["step"], summary["steps_run"]) == (step, step + 3, 3)


def test_ema_option_known_answer(tmp_path):
    lin = torch.nn.Linear(1, 1, bias=False)
    with torch.no_grad():
        lin.weight.fill_(1.0)
    ema = EMA(lin, 0.75)
    with torch.no_grad():
        lin.weight.fill_(5.0)
    ema.update(lin)
    assert ema.state["weight"].item() == pytest.approx(0.75 * 1 + 0.25 * 5)
    tr = _trainer(tmp_path, steps=2, ema_decay=0.5)
    tr.fit()
    ck = load_checkpoint(tmp_path / "checkpoints" / "last.pt")
    assert "ema" in ck and ck["config"]["train"]["ema_decay"] == 0.5
    net = load_texture_net(tmp_path / "checkpoints" / "last.pt")  # EMA weights preferred
    k = "head.weight"
    assert torch.equal(net.state_dict()[k], ck["ema"][k])
    assert not torch.equal(ck["ema"][k], ck["generator"][k])


def test_amp_ignored_on_cpu_with_note(tmp_path):
    tr = _trainer(tmp_path, steps=1, amp="bf16")
    assert tr.amp_dtype is None and any("AMP runs on CUDA only" in n for n in tr.notes)
    with pytest.raises(InputError, match="amp must be"):
        TrainConfig(amp="int8").validate()


def test_untrained_vgg_choice_recorded_in_checkpoint_and_card(tmp_path, capsys):
    from texture.export import export

    rc = main(["--preset", "tiny", "--out", str(tmp_path / "r"), "--steps", "2",
               "--perceptual-weight", "1", "--feature-net", "untrained-vgg19", "--no-progress"])  # fmt: skip
    assert rc == 0
    ck = load_checkpoint(tmp_path / "r" / "checkpoints" / "last.pt")
    assert ck["config"]["feature_net"] == "untrained-vgg19"
    assert ck["config"]["loss"]["perceptual"] == 1.0
    rows = [json.loads(x) for x in (tmp_path / "r" / "scalars.jsonl").read_text().splitlines()]
    assert "g/perceptual" in rows[-1]
    card = export(tmp_path / "r", tmp_path / "texture_completion_tiny.pt", heldout=None)
    saved = json.loads((tmp_path / "texture_completion_tiny.json").read_text())
    assert saved["config"]["feature_net"] == card["config"]["feature_net"] == "untrained-vgg19"
    assert saved["steps"] == 2
    assert load_texture_net(tmp_path / "texture_completion_tiny.pt").config.texture_size == 32


def test_missing_vgg_and_bad_choices_exit_2(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "th"))
    rc = main(["--preset", "tiny", "--out", str(tmp_path / "r"), "--perceptual-weight", "1",
               "--feature-net", "vgg19", "--no-progress"])  # fmt: skip
    err = capsys.readouterr().err
    assert rc == 2 and err.startswith("error: VGG19 ImageNet weights not found at")
    assert "vgg19-dcbb9e9d.pth" in err
    rc = main(["--preset", "tiny", "--out", str(tmp_path / "r"), "--perceptual-weight", "1",
               "--no-progress"])  # fmt: skip
    assert rc == 2 and "needs --feature-net" in capsys.readouterr().err
    assert not (tmp_path / "r" / "checkpoints").exists()


def test_load_checkpoint_rejects_foreign_files(tmp_path):
    torch.save({"a": torch.zeros(1)}, tmp_path / "x.pt")
    with pytest.raises(InputError, match="not a reroute checkpoint"):
        load_checkpoint(tmp_path / "x.pt")
    save_checkpoint(tmp_path / "y.pt", "renderer", {}, 0)
    with pytest.raises(InputError, match="expected 'texture_completion'"):
        load_checkpoint(tmp_path / "y.pt", kind="texture_completion")
    torch.save({"format": "reroute.checkpoint", "version": 99, "kind": "x"}, tmp_path / "z.pt")
    with pytest.raises(InputError, match="version 99"):
        load_checkpoint(tmp_path / "z.pt")

    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    torch.save({"format": "reroute.checkpoint", "obj": Evil()}, tmp_path / "e.pt")
    with pytest.raises(InputError, match="could not be read safely"):
        load_checkpoint(tmp_path / "e.pt")
    with pytest.raises(InputError, match="does not exist"):
        load_checkpoint(tmp_path / "missing.pt")


def test_matmul_peak_is_positive():
    assert measure_matmul_gflops(n=128, repeats=2) > 0.1


def test_torchrun_two_processes_gloo(tmp_path):
    torchrun = Path(sys.executable).with_name("torchrun")
    cmd = [str(torchrun) if torchrun.exists() else "torchrun", "--standalone",
           "--nproc_per_node", "2", "-m", "texture.train", "--preset", "tiny", "--out",
           str(tmp_path), "--steps", "2", "--no-progress", "--threads", "1"]  # fmt: skip
    r = subprocess.run(cmd, cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    lines = [x for x in r.stdout.splitlines() if x.startswith("{")]
    assert len(lines) == 1  # only rank 0 prints its summary
    s = json.loads(lines[0])
    assert s["world_size"] == 2 and s["step"] == 2
    ck = load_checkpoint(tmp_path / "checkpoints" / "last.pt")
    assert ck["config"]["world_size"] == 2
    # gloo/CPU: plain BatchNorm kept (no SyncBatchNorm buffers renamed)
    net = load_texture_net(tmp_path / "checkpoints" / "last.pt")
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in net.modules())


def test_presets_valid_and_paper_needs_vgg(tmp_path, monkeypatch, capsys):
    for name, (task_cfg, train_cfg) in PRESETS.items():
        task_cfg.model.validate()
        train_cfg.validate()
        assert task_cfg.model.texture_size == {"tiny": 32, "cpu": 256, "paper": 1024}[name]
    assert PRESETS["paper"][0].loss.perceptual > 0 and PRESETS["paper"][1].amp == "bf16"
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "th"))
    assert main(["--preset", "paper", "--out", str(tmp_path / "p"), "--no-progress"]) == 2
    assert "VGG19 ImageNet weights not found" in capsys.readouterr().err
    assert not (tmp_path / "p").exists()


def test_export_command_reads_extra_inline_or_from_a_file(tmp_path, capsys):
    seen = []

    def export_fn(run, out, metrics, extra):
        seen.append((metrics, extra))
        return {"file": Path(out).name}

    (tmp_path / "extra.json").write_text('{"training": [{"phase": 1}]}')
    (tmp_path / "q.json").write_text('{"pg2": {"ssim": 0.8, "per_pair": [1, 2]}, "n": 3}')
    args = ["--run", "r", "--out", "o.pt"]
    assert export_main(args + ["--extra", str(tmp_path / "extra.json"), "--metrics", str(tmp_path / "q.json")],
                       "x", "d", export_fn, ("file",)) == 0  # fmt: skip
    assert seen[-1] == ({"pg2": {"ssim": 0.8}, "n": 3}, {"training": [{"phase": 1}]})  # per-pair rows dropped
    assert export_main(args + ["--extra", '{"note": "x"}'], "x", "d", export_fn, ("file",)) == 0
    assert seen[-1] == (None, {"note": "x"})
    for bad, msg in (("[1]", "is not a file"), (str(tmp_path / "q.txt"), "is not a file")):
        assert export_main(args + ["--extra", bad], "x", "d", export_fn, ("file",)) == 2
        err = capsys.readouterr().err
        assert err.startswith("error: --extra") and msg in err and err.count("\n") == 1
    (tmp_path / "list.json").write_text("[1]")
    assert export_main(args + ["--metrics", str(tmp_path / "list.json")], "x", "d", export_fn, ("file",)) == 2
    assert "expected a JSON object, got list" in capsys.readouterr().err
    assert len(seen) == 2  # nothing exported after a bad option
