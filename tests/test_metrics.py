"""Image metrics: agreement with scikit-image and pytorch-msssim, known answers, weight handling."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import torch

from reroute.metrics import image as M

REPO = Path(__file__).resolve().parents[1]
DF = REPO.parent / "shared" / "data" / "deepfashion"


def _real_pairs():
    if not (DF / "pairs.csv").is_file():
        pytest.skip(f"{DF} is absent (real DeepFashion test pairs)")
    from PIL import Image

    out = []
    with open(DF / "pairs.csv") as f:
        for r in csv.DictReader(f):
            a = DF / "images" / (Path(r["from"]).stem + ".png")
            b = DF / "images" / (Path(r["to"]).stem + ".png")
            # the PATN 256x176 crop of the 256x256 images
            out.append(
                (
                    np.asarray(Image.open(a).convert("RGB"))[:, 40:216],
                    np.asarray(Image.open(b).convert("RGB"))[:, 40:216],
                )
            )
    return out


@pytest.fixture(scope="module")
def real_pairs():
    return _real_pairs()


def test_ssim_variants_agree_with_skimage_on_real_pairs(real_pairs):
    from skimage.metrics import peak_signal_noise_ratio, structural_similarity

    assert len(real_pairs) == 18
    gen = np.stack([b for _, b in real_pairs])  # the target of each pair plays "generated"
    ref = np.stack([a for a, _ in real_pairs])
    patn = M.ssim_patn(gen, ref)  # batched
    gfla = M.ssim_gfla(gen, ref)
    for i, (g, r) in enumerate(zip(gen, ref, strict=True)):
        gp, rp = M._pad_white(g, 40), M._pad_white(r, 40)
        want = structural_similarity(rp, gp, gaussian_weights=True, sigma=1.5,
                                     use_sample_covariance=False, channel_axis=2,
                                     data_range=float(gp.max()) - float(gp.min()))  # fmt: skip
        assert abs(patn[i] - want) < 1e-4 and abs(M.ssim_patn(g, r) - want) < 1e-9
        want = structural_similarity(r.astype(np.float32) / 255, g.astype(np.float32) / 255,
                                     data_range=1, win_size=51, channel_axis=2)  # fmt: skip
        assert abs(gfla[i] - want) < 1e-4
        want = peak_signal_noise_ratio(r, g, data_range=255)
        assert abs(M.psnr(g, r) - want) < 1e-4
    # no padding is a different number: the variant matters
    assert abs(M.ssim_patn(gen[0], ref[0], pad=0) - patn[0]) > 1e-3


def test_ms_ssim_agrees_with_pytorch_msssim_on_real_pairs(real_pairs):
    pytest.importorskip("pytorch_msssim")
    from pytorch_msssim import ms_ssim

    gen = np.stack([b for _, b in real_pairs])
    ref = np.stack([a for a, _ in real_pairs])
    mine = M.ms_ssim(gen, ref)
    to_t = lambda a: torch.from_numpy(a).permute(0, 3, 1, 2).double()  # noqa: E731
    theirs = ms_ssim(to_t(gen), to_t(ref), data_range=255, size_average=False).numpy()
    np.testing.assert_allclose(mine, theirs, atol=1e-4)
    # with the same float64 window (theirs is built in float32) they agree to rounding
    win = M._gaussian_kernel(1.5, 5).view(1, 1, 1, -1).repeat(3, 1, 1, 1)
    theirs64 = ms_ssim(to_t(gen), to_t(ref), data_range=255, size_average=False, win=win)
    np.testing.assert_allclose(mine, theirs64.numpy(), atol=1e-10)


def test_known_answers():
    rng = np.random.default_rng(0)
    a = rng.integers(0, 256, (192, 176, 3), dtype=np.uint8)
    assert M.ssim_patn(a, a) == pytest.approx(1.0, abs=1e-12)
    assert M.ssim_gfla(a, a) == pytest.approx(1.0, abs=1e-12)
    assert M.ms_ssim(a, a) == pytest.approx(1.0, abs=1e-12)
    assert M.psnr(a, a) == float("inf")
    assert M.l1(a, a) == 0.0
    b = np.zeros_like(a)
    c = np.full_like(a, 255)
    assert M.l1(b, c) == 1.0
    assert M.psnr(b, c) == pytest.approx(0.0, abs=1e-12)
    d = b.copy()
    d[0, 0, 0] = 255  # MSE = 255^2 / N  ->  PSNR = 10 log10(N)
    assert M.psnr(d, b) == pytest.approx(10 * np.log10(b.size))
    with pytest.raises(ValueError, match="differ in shape"):
        M.ssim_patn(a, a[:-1])
    with pytest.raises(ValueError, match="above 160"):
        M.ms_ssim(a[:150], a[:150])


def test_keypoint_mask_and_masked_ssim():
    kp = np.full((18, 2), -1.0)
    assert not M.keypoint_mask(kp, (64, 48)).any()
    kp[1] = (10, 20)  # neck
    kp[2] = (40, 20)  # right shoulder: one limb 2-3, 30 px long, 8 px wide
    m = M.keypoint_mask(kp, (64, 48))
    assert m[25, 20] and m[25, 17] and not m[25, 30] and not m[60, 20]
    assert 200 < m.sum() < 400
    rng = np.random.default_rng(1)
    a = rng.integers(0, 256, (64, 48, 3), dtype=np.uint8)
    b = a.copy()
    b[~m] = 0  # differences outside the mask do not count
    assert M.masked_ssim(a, b, m) == pytest.approx(1.0, abs=1e-12)
    assert np.isnan(M.masked_ssim(a, b, np.zeros((64, 48), bool)))


def test_frechet_distance_and_inception_score_known_answers():
    rng = np.random.default_rng(2)
    x = rng.normal(size=(500, 4))
    mu, cov = x.mean(0), np.cov(x, rowvar=False)
    assert M.frechet_distance(mu, cov, mu, cov) == pytest.approx(0.0, abs=1e-8)
    # diagonal Gaussians: |dmu|^2 + sum (s1 - s2)^2 with s the standard deviations
    s1, s2 = np.array([1.0, 2.0]), np.array([3.0, 1.0])
    d = M.frechet_distance([0, 0], np.diag(s1**2), [1, 2], np.diag(s2**2))
    assert d == pytest.approx(5 + ((s1 - s2) ** 2).sum())
    # IS: confident and uniformly spread over K classes -> K; all alike -> 1
    K = 10
    assert M.inception_score_from_probs(np.eye(K), splits=1)[0] == pytest.approx(K, rel=1e-6)
    same = np.tile(np.eye(K)[0], (K, 1))
    assert M.inception_score_from_probs(same, splits=2)[0] == pytest.approx(1.0)


@pytest.fixture
def empty_torch_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))

    def no_download(*a, **k):
        raise AssertionError("a metric tried to download weights")

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", no_download)
    monkeypatch.setattr(torch.hub, "download_url_to_file", no_download)
    return tmp_path / "torch" / "hub" / "checkpoints"


def test_network_metrics_unavailable_without_weights(empty_torch_cache):
    nm = M.NetworkMetrics()
    assert nm.available == {"lpips": False, "fid": False, "is": False, "ds": False}
    assert "alexnet-owt-7be5be79.pth" in nm.reasons["lpips"]
    assert "pt_inception-2015-12-05-6726825d.pth" in nm.reasons["fid"]
    assert "ssd300_vgg16_coco-b556d3b4.pth" in nm.reasons["ds"]
    a = np.zeros((64, 64, 3), np.uint8)
    assert nm.pair(a, a) == {}
    nm = M.NetworkMetrics(lpips_alexnet="/nonexistent/alexnet.pth")
    assert "not found" in nm.reasons["lpips"]


def test_network_metrics_load_from_path_and_reject_bad_files(empty_torch_cache, tmp_path):
    """Plumbing only: weights come from the given file (random ones here, never reported)."""
    import torchvision

    torch.manual_seed(0)
    alex = tmp_path / "alex.pth"
    # the convolutional trunk is all LPIPS uses (the full 233 MB file loads the same way)
    feats = torchvision.models.alexnet(weights=None).features.state_dict()
    torch.save({f"features.{k}": v for k, v in feats.items()}, alex)
    bad = tmp_path / "bad.pth"
    bad.write_bytes(b"not a checkpoint")
    nm = M.NetworkMetrics(lpips_alexnet=str(alex), ssd=str(bad), enabled=("lpips", "ds"))
    assert nm.available["lpips"] and not nm.available["ds"]
    assert nm.reasons["ds"].startswith(f"cannot load {bad}")
    assert nm.reasons["fid"] == "disabled by the user"
    assert nm.weights[str(alex)] == M.sha256_file(alex)
    rng = np.random.default_rng(3)
    a = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
    b = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
    out = nm.pair(a, a)
    assert set(out) == {"lpips"} and out["lpips"] == pytest.approx(0.0, abs=1e-6)
    assert nm.pair(a, b)["lpips"] > 0
    # the trunk really is the file's: the first conv of LPIPS equals AlexNet's
    st = torch.load(alex, weights_only=True)
    assert torch.equal(nm._lpips.model.net.slice1[0].weight, st["features.0.weight"])


def test_fid_inception_architecture_matches_weight_layout():
    """The TF-FID Inception (1008 classes) and torchvision's (1000) build without weights."""
    tf = M._fid_inception(1008)
    keys = set(tf.state_dict())
    assert "Mixed_7c.branch_pool.conv.weight" in keys and tf.fc.weight.shape == (1008, 2048)
    assert not any(k.startswith("AuxLogits") for k in keys)
    tv = M._fid_inception(1000)
    assert tv.fc.weight.shape == (1000, 2048)
