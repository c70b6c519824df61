"""Texture completion network: U-Net, discriminator, losses, VGG loading, data, integration.

Known answers for the losses; shapes for the networks; the committed checkpoint
loads with ``weights_only=True`` and completes a texture keeping what was observed.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from reroute.errors import InputError
from reroute.training.trainer import DistContext, use_sync_batchnorm
from reroute.training.vgg import VGGWeightsMissing, load_vgg19_features
from texture.data import (
    TextureCache,
    TexturePairDataset,
    load_texture_cache,
    pair_from_arrays,
)
from texture.discriminator import DiscriminatorConfig, MultiScaleDiscriminator
from texture.losses import (
    LossWeights,
    TextureLoss,
    hinge_d_loss,
    hinge_g_loss,
    masked_l1,
    total_variation,
)
from texture.network import (
    TextureNetConfig,
    TextureUNet,
    _revert_sync_batchnorm,
    convert_sync_batchnorm,
)

TINY = TextureNetConfig(texture_size=32, base_channels=8, max_channels=32, depth=3)


def _inputs(b=2, t=32, seed=0):
    g = torch.Generator().manual_seed(seed)
    m = (torch.rand(b, 1, t, t, generator=g) > 0.5).float()
    return (torch.rand(b, 3, t, t, generator=g) * 2 - 1) * m, m


# ----------------------------------------------------------------------------- U-Net
def test_unet_output_shape_and_range():
    net = TextureUNet(TINY).eval()
    p, m = _inputs()
    out = net(p, m)
    assert out.shape == (2, 3, 32, 32)
    assert out.min() >= -1 and out.max() <= 1


def test_unet_rejects_bad_shapes():
    net = TextureUNet(TINY)
    p, m = _inputs()
    with pytest.raises(ValueError, match=r"mask: expected \(2, 1, 32, 32\)"):
        net(p, m[:, :, :16])
    with pytest.raises(ValueError, match="divisible by 8"):
        net(p[..., :28, :28], m[..., :28, :28])
    with pytest.raises(ValueError, match="depth"):
        TextureNetConfig(texture_size=100, depth=3).validate()


def test_unet_classical_prior_channels():
    net = TextureUNet(
        TextureNetConfig(texture_size=32, base_channels=8, depth=3, prior="classical")
    )
    p, m = _inputs()
    assert net.stem[0].in_channels == 7
    with pytest.raises(ValueError, match="prior"):
        net(p, m)
    assert net(p, m, torch.zeros_like(p)).shape == (2, 3, 32, 32)


def test_batchnorm_on_cpu_sync_conversion_only_when_asked():
    net = TextureUNet(TINY)
    bns = [m for m in net.modules() if isinstance(m, nn.BatchNorm2d)]
    assert bns and not any(isinstance(m, nn.SyncBatchNorm) for m in net.modules())
    assert convert_sync_batchnorm(net, enabled=False) is net
    synced = convert_sync_batchnorm(TextureUNet(TINY), enabled=True)
    n_sync = sum(isinstance(m, nn.SyncBatchNorm) for m in synced.modules())
    assert n_sync == len(bns)
    # back to plain BatchNorm for single-device inference, same statistics
    with torch.no_grad():
        for m in synced.modules():
            if isinstance(m, nn.SyncBatchNorm):
                m.running_mean.fill_(0.25)
    plain = _revert_sync_batchnorm(synced)
    assert not any(isinstance(m, nn.SyncBatchNorm) for m in plain.modules())
    assert all(
        torch.all(m.running_mean == 0.25) for m in plain.modules() if isinstance(m, nn.BatchNorm2d)
    )
    # the trainer's rule: SyncBatchNorm only for several CUDA processes, never on CPU/gloo
    assert not use_sync_batchnorm(DistContext(0, 2, 0, torch.device("cpu")))
    assert not use_sync_batchnorm(DistContext(0, 1, 0, torch.device("cuda", 0)))
    assert use_sync_batchnorm(DistContext(0, 2, 0, torch.device("cuda", 0)))


def test_instance_norm_option():
    net = TextureUNet(TextureNetConfig(texture_size=32, base_channels=8, depth=3, norm="instance"))
    assert any(isinstance(m, nn.InstanceNorm2d) for m in net.modules())
    assert not any(isinstance(m, nn.BatchNorm2d) for m in net.modules())
    with pytest.raises(ValueError, match="norm"):
        TextureNetConfig(norm="group").validate()


# ----------------------------------------------------------------------------- discriminator
def test_discriminator_per_scale_feature_lists():
    cfg = DiscriminatorConfig(base_channels=8, num_layers=3, num_scales=3)
    d = MultiScaleDiscriminator(cfg)
    p, m = _inputs(2, 64)
    out = d(torch.zeros_like(p), p, m)
    assert len(out) == 3
    for s, feats in enumerate(out):
        size = 64 // 2**s
        assert len(feats) == cfg.num_layers + 2
        chans = [8, 16, 32, 64, 1]
        for f, c, stride in zip(feats, chans, (2, 2, 2, 1, 1), strict=True):
            size = (size + 4 - 4) // stride + 1  # 4x4 conv, padding 2
            assert f.shape == (2, c, size, size)
    with pytest.raises(ValueError, match="7 input channels"):
        d(torch.zeros_like(p), p, torch.cat([m, m], 1))


# ----------------------------------------------------------------------------- losses
def test_masked_l1_known_answer():
    pred = torch.zeros(1, 3, 4, 4)
    target = torch.full((1, 3, 4, 4), 2.0)
    target[..., :2, :] = 10.0  # ignored rows
    mask = torch.zeros(1, 1, 4, 4)
    mask[..., 2:, :] = 1.0
    assert masked_l1(pred, target, mask).item() == pytest.approx(2.0)
    assert masked_l1(pred, target, torch.zeros_like(mask)).item() == 0.0
    with pytest.raises(ValueError, match="expected"):
        masked_l1(pred, target, mask[:, :, :2])


def test_total_variation_known_answers():
    ramp = torch.arange(5.0).view(1, 1, 1, 5).expand(1, 1, 4, 5)
    assert total_variation(ramp).item() == pytest.approx(1.0)  # |dx| = 1, dy = 0
    checker = (torch.arange(4).view(4, 1) + torch.arange(4).view(1, 4)) % 2
    assert total_variation(checker.float().view(1, 1, 4, 4)).item() == pytest.approx(2.0)
    assert total_variation(torch.ones(1, 3, 8, 8)).item() == 0.0


def test_hinge_losses_known_answers():
    real = [torch.full((2, 1, 3, 3), 2.0), [torch.zeros(1), torch.full((2, 1, 2, 2), 1.0)]]
    fake = [torch.full((2, 1, 3, 3), -2.0), [torch.zeros(1), torch.full((2, 1, 2, 2), -1.0)]]
    assert hinge_d_loss(real, fake).item() == 0.0  # margins met at every scale
    zeros = [torch.zeros(2, 1, 3, 3)]
    assert hinge_d_loss(zeros, zeros).item() == pytest.approx(2.0)
    assert hinge_g_loss([torch.full((1, 1, 2, 2), 0.5), torch.full((1, 1, 1, 1), 1.5)]).item() == (
        pytest.approx(-1.0)
    )


def test_loss_terms_weighted_in_one_place():
    loss = TextureLoss(LossWeights(l1=2.0, adv=0.5, perceptual=0.0, tv=0.1))
    fake = torch.zeros(1, 3, 4, 4)
    target = torch.ones(1, 3, 4, 4)
    terms = loss.generator_terms(
        fake, target, torch.ones(1, 1, 4, 4), [torch.full((1, 1, 2, 2), 2.0)]
    )
    assert set(terms) == {"l1", "tv", "adv"}
    assert loss.total(terms).item() == pytest.approx(2.0 * 1.0 + 0.5 * -2.0 + 0.1 * 0.0)
    with pytest.raises(ValueError, match="feature network"):
        TextureLoss(LossWeights(perceptual=1.0), None)


# ----------------------------------------------------------------------------- VGG
def test_missing_vgg_weights_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "th"))
    with pytest.raises(VGGWeightsMissing) as e:
        load_vgg19_features("vgg19")
    msg = str(e.value)
    assert str(tmp_path / "th" / "hub" / "checkpoints" / "vgg19-dcbb9e9d.pth") in msg
    assert "--vgg-weights" in msg and "untrained-vgg19" in msg
    with pytest.raises(InputError, match="feature_net must be one of"):
        load_vgg19_features("resnet")


def test_vgg_weights_file_loaded_and_untrained_choice_named(tmp_path):
    from torchvision.models.vgg import cfgs, make_layers

    torch.manual_seed(3)
    ref = make_layers(cfgs["E"])
    state = {f"features.{k}": v for k, v in ref.state_dict().items()}
    state["classifier.0.weight"] = torch.zeros(2, 2)  # ignored
    path = tmp_path / "vgg19-dcbb9e9d.pth"
    torch.save(state, path)
    net = load_vgg19_features("vgg19", path)
    assert net.feature_net == "vgg19"
    assert torch.equal(net.features[0].weight, ref[0].weight)
    feats = net(torch.zeros(1, 3, 32, 32))
    assert [f.shape[1] for f in feats] == [64, 128, 256, 512, 512]
    assert [f.shape[-1] for f in feats] == [32, 16, 8, 4, 2]
    un = load_vgg19_features("untrained-vgg19")
    assert un.feature_net == "untrained-vgg19"
    assert not any(p.requires_grad for p in un.parameters())


# ----------------------------------------------------------------------------- data
def test_pair_from_arrays_and_cache_round_trip(tmp_path):
    from texture.data import _save_cache

    T = 20  # not a multiple of 8: bit packing must round-trip
    rng = np.random.default_rng(0)
    tex = rng.integers(0, 256, (2, T, T, 3), dtype=np.uint8)
    vis = rng.random((2, 3, T, T)) > 0.5
    lay = np.ones((T, T), bool)
    lay[:, :2] = False
    c = TextureCache(tex, vis, lay, seed=5, start=7)
    _save_cache(c, tmp_path / "c.npz")
    c2 = load_texture_cache(tmp_path / "c.npz")
    assert np.array_equal(c2.visibility, vis) and np.array_equal(c2.textures, tex)
    assert (c2.seed, c2.start, len(c2)) == (5, 7, 6)
    item = pair_from_arrays(tex[1], vis[1, 2], lay)
    v = vis[1, 2] & lay
    assert torch.equal(item["mask"][0], torch.from_numpy(v.astype(np.float32)))
    expect = tex[1].astype(np.float32) / 255 * 2 - 1
    np.testing.assert_allclose(item["target"].permute(1, 2, 0).numpy()[lay], expect[lay], atol=1e-6)
    assert torch.all(item["target"][:, ~torch.from_numpy(lay)] == 0)
    assert torch.all(item["partial"][:, ~torch.from_numpy(v)] == 0)
    ds = TexturePairDataset(c2)
    assert torch.equal(ds[5]["mask"], item["mask"])  # item 5 = identity 1, view 2


# ----------------------------------------------------------------------------- integration
def test_committed_checkpoint_completes_keeping_observed():
    from reroute.uv.texture import UVTexture, uv_layout_mask
    from texture import DEFAULT_CHECKPOINT, complete_texture

    if not DEFAULT_CHECKPOINT.is_file():
        pytest.skip(f"{DEFAULT_CHECKPOINT} not present")
    ck = torch.load(DEFAULT_CHECKPOINT, weights_only=True)
    T = ck["config"]["model"]["texture_size"]
    lay = uv_layout_mask(T)
    rng = np.random.default_rng(1)
    pix = rng.random((T, T, 3)).astype(np.float32)
    vis = (np.arange(T)[None, :] < T // 2).repeat(T, 0) & lay
    partial = UVTexture(np.where(vis[..., None], pix, 0).astype(np.float32), vis.astype(np.float32))
    out = complete_texture(partial, "network")
    assert out.pixels.shape == (T, T, 3)
    np.testing.assert_allclose(out.pixels[vis], pix[vis], atol=1e-6)
    assert np.all(out.pixels[~lay] == 0) and out.pixels.min() >= 0 and out.pixels.max() <= 1
    assert np.array_equal(out.visibility, lay.astype(np.float32))
    with pytest.raises(InputError, match="classical, network|one of"):
        complete_texture(partial, "magic")


def test_pipeline_texture_option_checked_first(tmp_path):
    from reroute.cli import build_parser
    from reroute.pipelines.pose_transfer import PoseTransferPipeline

    assert PoseTransferPipeline().texture == "classical"
    with pytest.raises(InputError, match="--texture must be classical or network"):
        PoseTransferPipeline(texture="magic")
    with pytest.raises(InputError, match="does not exist"):
        PoseTransferPipeline(texture="network", texture_checkpoint=str(tmp_path / "none.pt"))
    a = build_parser().parse_args(["transfer", "--source", "a", "--target", "b", "--out", "o.png",
                                   "--texture", "network"])  # fmt: skip
    assert a.texture == "network"


def test_multiview_pairs_supervise_by_other_views():
    from reroute.uv.texture import UVTexture
    from texture.data import MultiViewTexturePairs

    T = 8
    lay = np.ones((T, T), bool)
    a_vis = np.zeros((T, T), bool)
    a_vis[:, :4] = True
    b_vis = np.zeros((T, T), bool)
    b_vis[:, 2:6] = True
    c_vis = np.zeros((T, T), bool)
    c_vis[:, 5:] = True

    def view(vis, value):
        return UVTexture(
            np.where(vis[..., None], value, 0).astype(np.float32), vis.astype(np.float32)
        )

    ds = MultiViewTexturePairs([[view(a_vis, 0.2), view(b_vis, 0.6), view(c_vis, 1.0)]], lay)
    assert len(ds) == 3
    it = ds[0]  # input view a; targets from b and c
    assert torch.equal(it["mask"][0], torch.from_numpy(a_vis.astype(np.float32)))
    other = b_vis | c_vis
    assert torch.equal(it["target_mask"][0], torch.from_numpy(other.astype(np.float32)))
    t = (it["target"][0].numpy() + 1) / 2
    np.testing.assert_allclose(t[:, 2:5], 0.6, atol=1e-6)  # only b sees columns 2-4
    np.testing.assert_allclose(t[:, 5], 0.8, atol=1e-6)  # b and c: mean
    np.testing.assert_allclose(t[:, 6:], 1.0, atol=1e-6)
    assert np.all(t[:, :2] == 0.5)  # (0 + 1) / 2: unobserved by others, masked out
    with pytest.raises(ValueError, match="at least 2 views"):
        MultiViewTexturePairs([[view(a_vis, 0.1)]], lay)


def test_synthetic_engine_pairs():
    from texture.data import SyntheticTexturePairs

    it = SyntheticTexturePairs(2, texture_size=64, image_size=128, views=2, seed=3)[1]
    assert it["partial"].shape == it["target"].shape == (3, 64, 64)
    m, lay = it["mask"], it["target_mask"]
    assert 0 < m.sum() < lay.sum()  # one view sees part of the islands
    assert torch.all(m <= lay)
    assert torch.equal(it["partial"], it["target"] * m)
    assert it["target"].min() >= -1 and it["target"].max() <= 1
    # the cpu preset's U-Net takes the classical fill as a prior input
    from texture.data import classical_prior

    with_prior = SyntheticTexturePairs(2, texture_size=64, image_size=128, views=2, seed=3,
                                       prior=True)[1]  # fmt: skip
    assert torch.equal(with_prior["prior"], classical_prior(it))


def test_multiview_set_trains_with_loss_masked_to_other_views(tmp_path, capsys):
    """A synthetic multi-view set (exact per-view partial textures) through the
    ``multiview:DIR`` training path: the masked L1 ignores texels no other view sees."""
    from dataclasses import replace

    from torch.utils.data import default_collate

    from texture.data import load_multiview_set
    from texture.data import main as data_main
    from texture.train import PRESETS, TextureCompletionTask, build_dataset
    from texture.train import main as train_main

    root = tmp_path / "mv"
    assert data_main(["multiview", "--synthetic", "2", "--views", "3", "--texture-size", "64",
                      "--image-size", "128", "--seed", "4", "--out", str(root)]) == 0  # fmt: skip
    mv = load_multiview_set(root)
    assert mv.texture_size == 64 and [len(v) for v in mv.people] == [3, 3]
    cfg, _ = PRESETS["tiny"]
    cfg = replace(cfg, model=replace(cfg.model, texture_size=64), data=f"multiview:{root}")
    ds = build_dataset(cfg)
    assert len(ds) == 6 and ds.info["people"] == 2
    batch = default_collate([ds[0], ds[4]])
    tm = batch["target_mask"].bool().expand(-1, 3, -1, -1)
    lay = torch.from_numpy(mv.layout)
    assert tm.any() and (~tm[:, 0] & lay).any()  # islands texels no other view observes
    assert torch.all(batch["full_target"] == 0)
    task = TextureCompletionTask(cfg)
    fake = batch["target"].clone()
    fake[~tm] = 0.9  # anything where the other views see nothing
    assert task.generator_loss(None, batch, fake).terms["l1"].item() == 0.0
    b, y, x = tm[:, 0].nonzero()[0].tolist()
    fake[b, :, y, x] += 0.3  # one texel the other views observe
    expect = 0.3 / batch["target_mask"].sum().item()
    assert task.generator_loss(None, batch, fake).terms["l1"].item() == pytest.approx(expect)

    out = tmp_path / "run"
    rc = train_main(["--preset", "tiny", "--texture-size", "64", "--data", f"multiview:{root}",
                     "--steps", "2", "--log-every", "1", "--out", str(out), "--no-progress"])  # fmt: skip
    assert rc == 0
    assert "adversarial term off" in capsys.readouterr().err
    ck = torch.load(out / "checkpoints" / "last.pt", weights_only=True)
    assert ck["step"] == 2 and "discriminator" not in ck and ck["config"]["loss"]["adv"] == 0.0
    info = ck["config"]["data_info"]
    assert (info["kind"], info["people"], info["views"]) == ("multiview", 2, 6)
    assert train_main(["--preset", "tiny", "--data", f"multiview:{tmp_path / 'none'}",
                       "--out", str(tmp_path / "r2")]) == 2  # fmt: skip
    assert "no manifest.json" in capsys.readouterr().err
