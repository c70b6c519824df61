"""Batch evaluation: pair readers, the CLI, resume after a kill, torchrun sharding."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from reroute.errors import InputError
from reroute.evaluation import datasets as D

REPO = Path(__file__).resolve().parents[1]
DF = REPO.parent / "shared" / "data" / "deepfashion"
METRICS = ("ssim_patn", "ssim_gfla", "ms_ssim", "masked_ssim", "psnr", "l1")
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "GLOG_minloglevel": "2"}


def _cli(*args: str, env=None, timeout=600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "reroute", *args], cwd=REPO, capture_output=True,
                          text=True, timeout=timeout, env=env or ENV)  # fmt: skip


def _img(path: Path, seed: int, size=(256, 256)) -> None:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[: size[0], : size[1]]
    base = np.stack([(yy * (seed + 1)) % 256, (xx * 3) % 256, (yy + xx) % 256], -1)
    noise = rng.integers(0, 40, (*size, 3))
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(((base + noise) % 256).astype(np.uint8)).save(path)


@pytest.fixture(scope="module")
def synth_df(tmp_path_factory) -> Path:
    """A DeepFashion-layout set: 8 pairs, one with a missing image, one corrupt, keypoints."""
    root = tmp_path_factory.mktemp("df")
    names = [f"fashionWOMENDressesid00000{i:03d}01_1front" for i in range(10)]
    for i, n in enumerate(names[:9]):  # names[9] is never written: missing
        _img(root / "images" / f"{n}.png", i)
    (root / "images" / f"{names[8]}.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")  # corrupt
    rows = [(names[i], names[i + 1]) for i in range(7)] + [
        (names[0], names[9]),
        (names[8], names[1]),
    ]
    with open(root / "fashion-pairs-test.csv", "w") as f:
        f.write("from,to\n" + "".join(f"{a}.jpg,{b}.jpg\n" for a, b in rows))
    with open(root / "fasion-annotation-test.csv", "w") as f:
        f.write("name:keypoints_y:keypoints_x\n")
        ys = [40, 80, 80, 130, 180, 80, 130, 180, 170, -1, -1, 170, -1, -1, 30, 30, 35, 35]
        xs = [128, 128, 100, 95, 90, 156, 160, 165, 110, -1, -1, 146, -1, -1, 120, 136, 112, 144]
        for n in names:
            f.write(f"{n}.jpg: {ys}: {xs}\n")
    return root


def _read_csv(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


# ----------------------------------------------------------------------------- readers


def test_deepfashion_reader_resolves_counts_missing_and_keypoints(synth_df):
    pl = D.read_deepfashion(synth_df, "fashion-pairs-test.csv")
    assert len(pl) == 9 and pl.default_size == (256, 176)
    assert pl.pairs[0].source.name.endswith("_1front.png")  # .jpg in the list, .png on disk
    assert [p.pair_id for p in pl.pairs if p.missing] == [pl.pairs[7].pair_id]
    assert pl.pairs[7].missing == [pl.pairs[7].target_name]
    kp = pl.pairs[0].target_keypoints
    assert kp.shape == (18, 2) and tuple(kp[0]) == (40, 128) and tuple(kp[9]) == (-1, -1)
    # PATN's resize annotation holds x - 40; the offset restores 256x256 coordinates
    res = synth_df / "resize.csv"
    res.write_text((synth_df / "fasion-annotation-test.csv").read_text().replace("[128,", "[88,"))
    pl2 = D.read_deepfashion(synth_df, "fashion-pairs-test.csv", annotation=res,
                             annotation_x_offset=40)  # fmt: skip
    assert tuple(pl2.pairs[0].target_keypoints[0]) == (40, 128)
    assert tuple(pl2.pairs[0].target_keypoints[9]) == (-1, -1)


def test_fit_to_size_is_the_patn_crop_and_maps_keypoints():
    img = np.random.default_rng(0).integers(0, 256, (256, 256, 3), dtype=np.uint8)
    out, crop = D.fit_to_size(img, (256, 176))
    assert np.array_equal(out, img[:, 40:216])
    kp = np.array([[10.0, 50.0]] + [[-1.0, -1.0]] * 17)
    assert D.transform_keypoints(kp, crop)[0].tolist() == [10.0, 10.0]
    big, crop2 = D.fit_to_size(img, (512, 352))  # high-resolution track: crop then enlarge
    assert big.shape == (512, 352, 3) and crop2.sx == crop2.sy == 2.0


def test_test_pairs_txt_variant(tmp_path):
    tree = "img/WOMEN/Dresses/id_00000001/{}.png"
    _img(tmp_path / tree.format("01_1_front"), 1)
    _img(tmp_path / tree.format("02_3_back"), 2)
    pose = tmp_path / "pose/WOMEN/Dresses/id_00000001/02_3_back.txt"
    pose.parent.mkdir(parents=True)
    np.savetxt(pose, np.array([[100, 40]] + [[-1, -1]] * 17))  # x y rows
    # target first, then the source (NTED / PIDM)
    (tmp_path / "test_pairs.txt").write_text(
        f"{tree.format('02_3_back')[:-4]}.jpg,{tree.format('01_1_front')[:-4]}.jpg\n"
    )
    pl = D.read_deepfashion(tmp_path, "test_pairs.txt")
    (p,) = pl.pairs
    assert p.source.name == "01_1_front.png" and p.target.name == "02_3_back.png"
    assert (
        p.pair_id
        == "fashionWOMENDressesid0000000101_1front___fashionWOMENDressesid0000000102_3back"
    )
    assert tuple(p.target_keypoints[0]) == (40, 100) and p.source_keypoints is None
    assert D.deepfashion_flat_name("img/WOMEN/Blouses_Shirts/id_00000337/03_3_back.jpg") == (
        "fashionWOMENBlouses_Shirtsid0000033703_3back.jpg"
    )


def test_mvc_split_is_seeded_and_pairs_all_views(tmp_path):
    for i in range(7):
        for v in D.MVC_VIEWS if i != 3 else D.MVC_VIEWS[:3]:  # item 3 lacks a view
            _img(tmp_path / f"item{i}" / f"{v}.jpg", i)
    pl = D.read_mvc(tmp_path, n_test=4, seed=0)
    assert len(pl) == 4 * 12 and pl.default_size == (256, 256)
    items = {p.pair_id.split("_")[0] for p in pl.pairs}
    assert len(items) == 4 and "item3" not in items
    assert items == set(D.mvc_split([f"item{i}" for i in range(7) if i != 3], n_test=4, seed=0))
    assert D.read_mvc(tmp_path, n_test=4, seed=0).pairs == pl.pairs  # reproducible
    assert D.read_mvc(tmp_path, n_test=4, seed=1).pairs != pl.pairs
    first = pl.pairs[:12]
    assert len({(p.source_name, p.target_name) for p in first}) == 12
    assert all(p.source_name != p.target_name for p in first)
    D.write_pairs_csv(tmp_path / "mvc_pairs.csv", pl, tmp_path)
    again = D.read_mvc(tmp_path, tmp_path / "mvc_pairs.csv")
    assert [(p.source, p.target) for p in again.pairs] == [(p.source, p.target) for p in pl.pairs]


def test_folder_reader_and_bad_lists(tmp_path):
    _img(tmp_path / "source" / "a.png", 1)
    _img(tmp_path / "target" / "a.png", 2)
    _img(tmp_path / "target" / "b.png", 3)
    pl = D.read_folder(tmp_path)
    assert [p.missing for p in pl.pairs] == [[], ["source/b"]]
    (tmp_path / "bad.csv").write_text("src,dst\na,b\n")
    with pytest.raises(InputError, match="header from,to"):
        D.read_folder(tmp_path, "bad.csv")
    with pytest.raises(InputError, match="not found"):
        D.read_folder(tmp_path, "nope.csv")


# ----------------------------------------------------------------------------- CLI


def test_cli_counts_missing_and_corrupt_and_writes_report(synth_df, tmp_path):
    out = tmp_path / "run"
    r = _cli("evaluate", "--dataset", "deepfashion", "--root", str(synth_df), "--pairs",
             "fashion-pairs-test.csv", "--method", "identity", "--out", str(out))  # fmt: skip
    assert r.returncode == 0, r.stderr
    summary = json.loads(r.stdout)
    assert summary["counts"] == {"total": 9, "ok": 7, "missing": 1, "unreadable": 1,
                                 "failed": 0, "pending": 0}  # fmt: skip
    assert "warning:" in r.stderr and ("pair/s" in r.stderr or "s/pair" in r.stderr)  # rate
    rows = _read_csv(out / "per_pair.csv")
    assert [x["status"] for x in rows] == ["ok"] * 7 + ["missing", "unreadable"]
    assert "not a readable image" in rows[8]["reason"]
    m = json.loads((out / "metrics.json").read_text())
    assert m["metrics"]["ssim_patn"]["count"] == 7
    assert "40 px of white" in m["metrics"]["ssim_patn"]["variant"]
    assert set(m["unavailable"]) == {"lpips", "fid", "is", "ds"}
    ok = [x for x in rows if x["status"] == "ok"]
    assert m["metrics"]["psnr"]["mean"] == pytest.approx(np.mean([float(x["psnr"]) for x in ok]))
    assert len(list((out / "images").glob("*.png"))) == 7
    page = (out / "report.html").read_text()
    assert "sortTable" in page and page.count("<tr><td data-v=") == 9 and "grid/" in page
    log = (out / "evaluate.log").read_text()
    assert "missing image(s)" in log and "unreadable" in log


def test_cli_errors_exit_2(synth_df, tmp_path):
    base = ["evaluate", "--dataset", "deepfashion", "--root", str(synth_df), "--pairs",
            "fashion-pairs-test.csv"]  # fmt: skip
    dpt_missing = "none.pt" if (REPO / "checkpoints" / "dpt_cpu256.pt").is_file() else "method dpt is not available"
    for method, extra, expect in (("dpt", ["--dpt-checkpoint", str(tmp_path / "none.pt")], dpt_missing),
                                  ("magic", [], "unknown method")):  # fmt: skip
        r = _cli(*base, "--method", method, "--out", str(tmp_path / method), *extra)
        assert r.returncode == 2, r.stderr
        lines = [ln for ln in r.stderr.splitlines() if ln.startswith("error:")]
        assert len(lines) == 1 and expect in lines[0], r.stderr
        assert not (tmp_path / method).exists()
    r = _cli(*base, "--method", "identity", "--out", str(tmp_path / "o"), "--size", "256by176")
    assert r.returncode == 2 and "error: --size must look like" in r.stderr
    # an --out holding another run's settings is refused
    assert _cli(*base, "--method", "identity", "--out", str(tmp_path / "o"), "--limit", "1",
                "--no-progress").returncode == 0  # fmt: skip
    r = _cli(*base, "--method", "identity", "--out", str(tmp_path / "o"), "--size", "256x256")
    assert r.returncode == 2 and "other settings (size, patn_pad)" in r.stderr


def test_bodymap_method_runs_the_rerenderer_and_records_its_checkpoint(tmp_path):
    from reroute.metrics.image import sha256_file

    ckpt = REPO / "checkpoints" / "rerenderer_cpu256.pt"
    real = REPO.parent / "shared" / "data" / "deepfashion"
    if not ckpt.is_file() or not (real / "pairs.csv").is_file():
        pytest.skip("needs the committed re-renderer and ../shared/data/deepfashion")
    r = _cli("evaluate", "--dataset", "deepfashion", "--root", str(real), "--pairs", "pairs.csv",
             "--method", "bodymap", "--out", str(tmp_path / "bm"), "--limit", "1",
             "--no-progress")  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["counts"]["ok"] == 1, r.stdout
    m = json.loads((tmp_path / "bm" / "metrics.json").read_text())
    assert m["method"] == "bodymap"
    assert m["checkpoints"]["checkpoints/rerenderer_cpu256.pt"] == sha256_file(ckpt)


def test_dpt_method_runs_and_records_its_checkpoint(tmp_path):
    from reroute.metrics.image import sha256_file

    ckpt = REPO / "checkpoints" / "dpt_cpu256.pt"
    real = REPO.parent / "shared" / "data" / "deepfashion"
    if not ckpt.is_file() or not (real / "pairs.csv").is_file():
        pytest.skip("needs the committed Dense Pose Transfer checkpoint and ../shared/data/deepfashion")
    r = _cli("evaluate", "--dataset", "deepfashion", "--root", str(real), "--pairs", "pairs.csv",
             "--method", "dpt", "--out", str(tmp_path / "dpt"), "--limit", "1", "--no-progress")  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["counts"]["ok"] == 1, r.stdout
    m = json.loads((tmp_path / "dpt" / "metrics.json").read_text())
    assert m["method"] == "dpt" and m["checkpoints"]["checkpoints/dpt_cpu256.pt"] == sha256_file(ckpt)
    assert m["metrics"]["ssim_patn"]["mean"] > 0.5


def test_kill_and_resume_gives_each_pair_once_with_the_same_numbers(synth_df, tmp_path):
    base = ["evaluate", "--dataset", "deepfashion", "--root", str(synth_df), "--pairs",
            "fashion-pairs-test.csv", "--method", "identity", "--no-progress"]  # fmt: skip
    full = tmp_path / "full"
    assert _cli(*base, "--out", str(full)).returncode == 0
    killed = tmp_path / "killed"
    # the run dies abruptly (os._exit, no cleanup) after 3 pairs
    r = _cli(*base, "--out", str(killed), env={**ENV, "REROUTE_EVAL_EXIT_AFTER": "3"})
    assert r.returncode == 3
    assert len(list((killed / "records").glob("*.json"))) == 3
    assert not (killed / "per_pair.csv").exists()
    # a temp file as a kill mid-write would leave it is cleaned up on resume
    (killed / "images" / ".x.png.abc.tmp").write_bytes(b"half")
    r = _cli(*base, "--out", str(killed))
    assert r.returncode == 0, r.stderr
    a, b = _read_csv(full / "per_pair.csv"), _read_csv(killed / "per_pair.csv")
    assert len({x["pair_id"] for x in b}) == len(b) == 9
    strip = lambda rows: [{k: v for k, v in x.items() if k != "seconds"} for x in rows]  # noqa: E731
    assert strip(a) == strip(b)
    assert not list(killed.rglob("*.tmp"))
    log = (killed / "evaluate.log").read_text()
    assert log.count("merged") == 1


def test_real_kill_mid_run_then_resume(synth_df, tmp_path):
    """SIGKILL at an arbitrary moment: every record on disk is complete JSON; resume finishes."""
    import signal
    import time

    out = tmp_path / "k"
    cmd = [sys.executable, "-m", "reroute", "evaluate", "--dataset", "deepfashion", "--root",
           str(synth_df), "--pairs", "fashion-pairs-test.csv", "--method", "identity", "--out",
           str(out), "--no-progress"]  # fmt: skip
    p = subprocess.Popen(
        cmd, cwd=REPO, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    t0 = time.time()
    while time.time() - t0 < 120 and len(list((out / "records").glob("*.json"))) < 2:
        time.sleep(0.05)
    p.send_signal(signal.SIGKILL)
    p.wait()
    for rec in (out / "records").glob("*.json"):
        json.loads(rec.read_text())  # complete, never half-written
    for img in (out / "images").glob("*.png"):
        Image.open(img).load()
    assert _cli(*cmd[3:]).returncode == 0
    rows = _read_csv(out / "per_pair.csv")
    assert len(rows) == len({x["pair_id"] for x in rows}) == 9


def test_torchrun_two_processes_match_one(synth_df, tmp_path):
    base = ["evaluate", "--dataset", "deepfashion", "--root", str(synth_df), "--pairs",
            "fashion-pairs-test.csv", "--method", "identity", "--no-progress"]  # fmt: skip
    one = tmp_path / "one"
    assert _cli(*base, "--out", str(one)).returncode == 0
    two = tmp_path / "two"
    r = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone",
                        "--nproc_per_node", "2", "-m", "reroute", *base, "--out", str(two)],
                       cwd=REPO, capture_output=True, text=True, timeout=600, env=ENV)  # fmt: skip
    assert r.returncode == 0, r.stderr[-3000:]
    m1 = json.loads((one / "metrics.json").read_text())
    m2 = json.loads((two / "metrics.json").read_text())
    assert m2["world_size"] == 2 and m1["world_size"] == 1
    assert m1["counts"] == m2["counts"]
    for k in METRICS:
        assert m1["metrics"][k]["mean"] == pytest.approx(m2["metrics"][k]["mean"], abs=1e-12)
        assert m1["metrics"][k]["count"] == m2["metrics"][k]["count"]
    strip = lambda rows: [{k: v for k, v in x.items() if k != "seconds"} for x in rows]  # noqa: E731
    assert strip(_read_csv(one / "per_pair.csv")) == strip(_read_csv(two / "per_pair.csv"))
    log = (two / "evaluate.log").read_text()
    assert "rank0" in log and "rank1" in log


def test_real_deepfashion_identity_and_standard_list_with_missing_images(tmp_path):
    if not (DF / "fashion-pairs-test.csv").is_file():
        pytest.skip(f"{DF} is absent (real DeepFashion test pairs)")
    out = tmp_path / "std"
    # the standard 8,570-pair list: only 18 pairs' images exist here; the rest are counted
    r = _cli("evaluate", "--dataset", "deepfashion", "--root", str(DF), "--pairs",
             "fashion-pairs-test.csv", "--method", "identity", "--out", str(out), "--limit", "40",
             "--no-progress")  # fmt: skip
    assert r.returncode == 0, r.stderr
    c = json.loads(r.stdout)["counts"]
    assert c["total"] == 40 and c["missing"] + c["ok"] == 40 and c["missing"] > 0


@pytest.mark.slow
def test_warp_method_one_real_pair(tmp_path):
    """~25 s: anny start-up and two body fits."""
    if not (DF / "pairs.csv").is_file():
        pytest.skip(f"{DF} is absent (real DeepFashion test pairs)")
    out = tmp_path / "warp"
    r = _cli("evaluate", "--dataset", "deepfashion", "--root", str(DF), "--pairs", "pairs.csv",
             "--method", "warp", "--out", str(out), "--limit", "1", "--no-progress")  # fmt: skip
    assert r.returncode == 0, r.stderr
    m = json.loads((out / "metrics.json").read_text())
    assert m["counts"]["ok"] + m["counts"]["failed"] == 1
    assert any("pose_landmark_full.tflite" in k for k in m["checkpoints"])
    if m["counts"]["ok"]:
        gen = np.asarray(Image.open(next((out / "images").glob("*.png"))))
        assert gen.shape == (256, 176, 3)
        assert 0 < m["metrics"]["ssim_patn"]["mean"] < 1
