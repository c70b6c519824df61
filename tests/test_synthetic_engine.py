"""The synthetic data engine: ground truth agrees with re-rendering, determinism,
keypoints, texture visibility, the DeepFashion-layout writer/reader round trip,
the streaming Dataset and the ``synth`` CLI (all at 128 px, few samples)."""

from __future__ import annotations

import numpy as np
import pytest

from reroute.synth.engine import (
    BLAZEPOSE33_NAMES,
    COCO17_NAMES,
    SynthConfig,
    SyntheticEngine,
    SyntheticPeopleDataset,
)
from reroute.synth.pose import JOINT_LIMITS, POSE_KINDS, clip_pose, mirror_pose, sample_pose

CFG = SynthConfig(size=128, texture_size=256, views_per_identity=2)


@pytest.fixture(scope="module")
def engine() -> SyntheticEngine:
    return SyntheticEngine(CFG, seed=11)


@pytest.fixture(scope="module")
def sample(engine):
    return engine.sample(0, 0)


def test_gt_correspondence_agrees_with_re_rendering(engine) -> None:
    from reroute.body.raster import rasterize
    from reroute.body.template import get_template

    t = get_template()
    for view in range(2):
        s = engine.sample(1, view)
        r = rasterize(s.body.vertices, t.faces, s.body.camera)  # reroute's reference renderer
        assert s.instance.max() == 1  # single person: the maps are the primary's
        assert (r.mask == s.mask).mean() > 0.999
        both = r.mask & s.mask
        assert (r.face_values(t.face_part.astype(np.uint8))[both]
                == s.correspondence.part[both]).mean() > 0.999  # fmt: skip
        assert np.abs(r.interpolate(t.face_uv)[both] - s.correspondence.uv[both]).max() < 1e-3
        assert s.mask.sum() > 200  # the person is actually in the picture


def test_determinism_given_a_seed(sample) -> None:
    other = SyntheticEngine(CFG, seed=11).sample(0, 0)
    assert np.array_equal(other.image, sample.image)
    assert np.array_equal(other.iuv, sample.iuv)
    assert np.array_equal(other.keypoints_blazepose, sample.keypoints_blazepose)
    different = SyntheticEngine(CFG, seed=12).sample(0, 0)
    assert not np.array_equal(different.image, sample.image)


def test_ground_truth_maps_are_consistent(sample) -> None:
    c = sample.correspondence
    h, w = sample.image.shape[:2]
    assert (h, w) == (128, 128) and sample.image.dtype == np.uint8
    assert set(np.unique(c.part[sample.mask])) <= set(range(1, 25))
    assert (c.part[~c.mask] == 0).all() and (sample.vertex_index[~c.mask] == -1).all()
    assert ((c.uv >= 0) & (c.uv <= 1)).all() and ((c.colour >= 0) & (c.colour <= 1)).all()
    # face mask: inside the person, on the head parts only
    assert not (sample.face_mask & ~sample.mask).any()
    assert set(np.unique(c.part[sample.face_mask])) <= {23, 24}
    # the colour code is the canonical position of the pixel's vertex (within a triangle)
    from reroute.body.template import get_template

    t = get_template()
    ys, xs = np.nonzero(sample.mask)
    code = t.colour_code(t.vertices[sample.vertex_index[ys, xs]])
    assert np.abs(code - c.colour[ys, xs]).max() < 0.05


def test_keypoints_layouts(sample) -> None:
    assert sample.keypoints_coco.shape == (17, 3) and sample.keypoints_blazepose.shape == (33, 3)
    for name in ("nose", "left_shoulder", "right_knee", "left_ankle"):
        a = sample.keypoints_coco[COCO17_NAMES.index(name)]
        b = sample.keypoints_blazepose[BLAZEPOSE33_NAMES.index(name)]
        assert np.allclose(a, b)
    # keypoints are projected regressed points: they match the body's keypoints_2d
    assert np.allclose(sample.body.keypoints_2d, sample.keypoints_coco[:, :2])
    assert set(np.unique(sample.keypoints_coco[:, 2])) <= {0.0, 1.0, 2.0}
    # BlazePose hand/face landmarks lie near their COCO neighbours (within 12 cm-ish in px)
    kb = sample.keypoints_blazepose
    wrist = kb[BLAZEPOSE33_NAMES.index("left_wrist"), :2]
    index = kb[BLAZEPOSE33_NAMES.index("left_index"), :2]
    span = np.ptp(sample.keypoints_coco[:, 1])
    assert np.linalg.norm(wrist - index) < 0.1 * span


def test_texture_and_visibility(sample) -> None:
    T = CFG.texture_size
    assert sample.texture.shape == (T, T, 3) and sample.texture_visibility.shape == (T, T)
    vis = sample.texture_visibility
    assert vis.any() and not (vis & ~sample.texture_mask).any()
    # a view never sees the whole body
    assert vis.sum() < 0.8 * sample.texture_mask.sum()
    part = sample.partial_texture
    assert (part[~vis] == 0).all() and np.array_equal(part[vis], sample.texture[vis])


def test_multi_person_frames_have_occluders() -> None:
    eng = SyntheticEngine(SynthConfig(size=128, texture_size=256, views_per_identity=1,
                                      multi_person_prob=1.0), seed=5)  # fmt: skip
    s = eng.sample(0, 0)
    assert s.instance.max() >= 2
    assert not (s.mask & (s.instance != 1)).any()
    assert (s.correspondence.mask == (s.instance > 0)).all()


def test_pose_prior_stays_inside_joint_limits() -> None:
    rng = np.random.default_rng(0)
    for kind in POSE_KINDS:
        for _ in range(5):
            pose, k = sample_pose(rng, kind)
            assert k == kind
            for name, aa in pose.items():
                lim = JOINT_LIMITS.get(name)
                if lim is not None:
                    assert ((aa >= lim[:, 0] - 1e-9) & (aa <= lim[:, 1] + 1e-9)).all(), (kind, name)
    left = {"upperarm01.L": np.array([0.1, 0.5, 0.2])}
    assert np.allclose(mirror_pose(left)["upperarm01.R"], [0.1, -0.5, -0.2])
    assert np.allclose(clip_pose({"lowerleg01.L": np.array([-1.0, 0, 0])})["lowerleg01.L"], 0)
    with pytest.raises(ValueError, match="pose kind"):
        sample_pose(rng, "flying")


def test_config_validation() -> None:
    with pytest.raises(ValueError, match="128..1024"):
        SynthConfig(size=64).validate()
    with pytest.raises(ValueError, match="pose_kinds"):
        SynthConfig(pose_kinds=("dance",)).validate()


def test_writer_reader_round_trip(tmp_path, engine) -> None:
    from reroute.synth.writer import (
        SampleWriter,
        coco17_to_openpose18,
        read_annotation_csv,
        read_pairs_csv,
        read_synthetic_set,
    )

    w = SampleWriter(tmp_path, 11, CFG)
    written = [engine.sample(0, v) for v in range(2)]
    names = [w.write(s) for s in written]
    w.close()
    recs = list(read_synthetic_set(tmp_path))
    assert [r.name for r in recs] == names
    for s, r in zip(written, recs, strict=True):
        assert np.array_equal(r.image, s.image)
        assert np.array_equal(r.iuv, s.iuv)
        assert np.array_equal(r.mask, s.mask) and np.array_equal(r.face_mask, s.face_mask)
        assert np.array_equal(r.vertex_index, s.vertex_index)
        assert np.abs(r.uv - s.correspondence.uv).max() <= 1.0 / 65535 + 1e-7
        assert np.array_equal(r.texture, s.texture)
        assert np.array_equal(r.texture_visibility, s.texture_visibility)
        # the stored pose and camera re-create the projected body
        v2 = r.posed_vertices_2d()
        assert np.abs(v2 - s.body.camera.project(s.body.vertices.astype(np.float64))).max() < 0.05
    assert read_pairs_csv(tmp_path / "pairs.csv") == [(names[0], names[1]), (names[1], names[0])]
    ann = read_annotation_csv(tmp_path / "annotation.csv")
    for s, n in zip(written, names, strict=True):
        assert np.array_equal(ann[n], coco17_to_openpose18(s.keypoints_coco, (128, 128)))


def test_annotation_reader_reads_the_real_deepfashion_file() -> None:
    from pathlib import Path

    from reroute.synth.writer import read_annotation_csv, read_pairs_csv

    root = Path(__file__).resolve().parents[2] / "shared" / "data" / "deepfashion"
    if not (root / "annotation.csv").is_file():
        pytest.skip(f"{root} is absent")
    ann = read_annotation_csv(root / "annotation.csv")
    pairs = read_pairs_csv(root / "pairs.csv")
    assert ann and pairs
    assert all(a.shape == (18, 2) for a in ann.values())


def test_streaming_dataset_matches_the_engine(engine) -> None:
    import torch

    ds = SyntheticPeopleDataset(4, CFG, seed=11)
    assert len(ds) == 4
    item = ds[1]  # identity 0, view 1
    s = engine.sample(0, 1)
    assert item["image"].shape == (3, 128, 128) and item["image"].dtype == torch.float32
    assert torch.equal(item["part"], torch.from_numpy(s.correspondence.part.astype(np.int64)))
    assert int(item["identity"]) == 0 and int(item["view"]) == 1
    batch = torch.utils.data.default_collate([ds[0], ds[1]])
    assert batch["keypoints_blazepose"].shape == (2, 33, 3)
    with pytest.raises(IndexError):
        ds[4]


def test_synth_cli(tmp_path, capsys) -> None:
    import json

    from reroute.cli import main

    out = tmp_path / "set"
    rc = main(["synth", "--out", str(out), "--identities", "1", "--views-per-identity", "2",
               "--size", "128", "--texture-size", "256", "--seed", "4", "--no-progress"])  # fmt: skip
    assert rc == 0
    res = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert res["images"] == 2
    assert len(list((out / "images").glob("*.png"))) == 2
    assert (out / "annotation.csv").read_text().startswith("name:keypoints_y:keypoints_x")
    assert main(["synth", "--out", str(tmp_path / "x"), "--identities", "1", "--size", "64"]) == 2
    assert "error: size must be in 128..1024" in capsys.readouterr().err
