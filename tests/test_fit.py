"""The front end recovers a known pose: synthetic render -> BlazePose -> anny fit.

The truth is the rendered body itself: anny's COCO keypoints projected with the
render's camera, and its rendered part labels. The fit sees only the picture.
Torch runs single-threaded here: the fit is then deterministic (multi-threaded
reductions change the Adam trajectory from run to run) and, on a busy 2-core
machine, several times faster.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from reroute.body import fit as fit_module
from reroute.body.detect import detect_person
from reroute.body.fit import fit_body
from reroute.correspondence.fitted import render_correspondence
from reroute.synth.engine import render_synthetic_person
from reroute.synth.pose import EXAMPLE_POSES

LIMB_JOINTS = (
    "left_shoulder", "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist",
    "left_hip", "right_hip", "left_knee", "right_knee", "left_ankle", "right_ankle",
)  # fmt: skip


@pytest.mark.parametrize(
    "pose, yaw, seed",
    [("arm_raised", 0.0, 0),  # left arm raised, right elbow bent, right knee bent
     ("turned", 30.0, 1)],  # turned 30 degrees, right elbow bent
)  # fmt: skip
def test_fit_recovers_a_known_pose(one_thread, pose, yaw, seed) -> None:
    truth = render_synthetic_person(EXAMPLE_POSES[pose], size=256, yaw_deg=yaw, seed=seed)
    obs = detect_person(truth.image, name="synthetic render")
    fitted = fit_body(obs)

    idx = [truth.keypoint_names.index(k) for k in LIMB_JOINTS]
    err = np.linalg.norm(fitted.keypoints_2d[idx] - truth.keypoints_2d[idx], axis=1)
    corr = render_correspondence(fitted)
    t_fg, f_fg = truth.correspondence.mask, corr.mask
    iou = float((t_fg & f_fg).sum() / (t_fg | f_fg).sum())
    both = t_fg & f_fg
    agree = float((corr.part[both] == truth.correspondence.part[both]).mean())
    print(f"\nfit on synthetic '{pose}' (yaw {yaw:g}, 256 px): mean limb-joint error "
          f"{err.mean():.2f} px (max {err.max():.1f}), foreground IoU {iou:.3f}, "
          f"part agreement {agree:.3f} on overlapping pixels; "
          f"fit's own landmark error {fitted.keypoint_error_px:.2f} px")  # fmt: skip

    assert fitted.camera.width == 256 and fitted.camera.height == 256
    # measured 2.9-3.9 px mean (<= 7.6 px max) with this FitConfig
    assert err.mean() < 8.0
    assert err.max() < 20.0
    # measured 0.64-0.80: the fit lands ~2-3 px off on thin limbs, which costs IoU
    assert iou > 0.55
    # measured 0.87-0.92
    assert agree > 0.8
    # the fitted body faces the same way as the truth (yaw within ~25 degrees)
    fwd_truth = truth.body.rotation @ np.array([0.0, -1.0, 0.0])
    fwd_fit = fitted.rotation @ np.array([0.0, -1.0, 0.0])
    assert float(fwd_truth @ fwd_fit) > np.cos(np.deg2rad(25))


def test_batched_fit_equals_separate_fits(one_thread) -> None:
    """Adam is element-wise, so one batch of two photos follows each photo's own trajectory
    (with the convergence stop off, both run the same number of steps)."""
    from reroute.body.fit import FitConfig, fit_bodies

    cfg = FitConfig(tol=0.0, steps_pose=12)
    a = detect_person(render_synthetic_person(EXAMPLE_POSES["arm_raised"], size=256).image)
    b = detect_person(render_synthetic_person(None, size=192, yaw_deg=30, seed=1).image)
    batch = fit_bodies([a, b], cfg)
    for obs, got in zip((a, b), batch, strict=True):
        alone = fit_body(obs, cfg)
        assert got.camera == alone.camera and got.steps == alone.steps == 12
        # float summation order differs in the batch; Adam amplifies it a little
        np.testing.assert_allclose(got.pose, alone.pose, atol=0.02)
        np.testing.assert_allclose(got.keypoints_2d, alone.keypoints_2d, atol=1.0)  # pixels


def test_fit_error_names_the_photo() -> None:
    from reroute.body.fit import fit_bodies
    from reroute.errors import FitError

    good = detect_person(render_synthetic_person(None, size=128).image)
    hidden = good.scaled(*good.image_size)
    hidden.visibility = np.zeros_like(hidden.visibility)  # no shoulders or hips visible
    with pytest.raises(FitError, match=r"^target photo: the person's shoulders and hips"):
        fit_bodies([good, hidden], names=["source photo", "target photo"])


def test_fast_skinning_matches_anny_and_ik_starts_near_the_pose(one_thread) -> None:
    """Known answers: the linear skinning through the 18 fitted bones equals anny's own
    104-bone skinning, and the closed-form limb IK lands the limbs closer to the truth than
    anny's reference pose does."""
    from reroute.body import fit as fit_mod
    from reroute.body.posed import axis_angle_to_matrix, posed_vertices
    from reroute.body.raster import Camera

    body = fit_mod._body()
    rot = torch.from_numpy(np.random.default_rng(0).normal(0, 0.4, (18, 3))).float()
    P = torch.eye(4).repeat(body.model.bone_count, 1, 1)
    P[body.pose_ids, :3, :3] = axis_angle_to_matrix(rot)
    with torch.no_grad():
        full = body.full_skin()(rot).numpy()
    np.testing.assert_allclose(full, posed_vertices(P.numpy(), {}), atol=1e-5)

    truth = render_synthetic_person(EXAMPLE_POSES["arm_raised"], size=256, seed=0)
    obs = detect_person(truth.image)
    cam = Camera.centred(256, 256)
    idx = [truth.keypoint_names.index(k) for k in LIMB_JOINTS]

    def start_error(init: str) -> float:
        s = fit_mod._initialise(obs, body, cam, init)
        with torch.no_grad():
            fs = body.fast_skin()
            Ws = fs.transforms(torch.tensor(s.rot, dtype=torch.float32)[None])
            kp = fs.apply(Ws, fs.y_kp, fs.const_kp)[0].double().numpy()
        import cv2

        vc = kp @ cv2.Rodrigues(s.glob)[0].T + s.trans * s.z
        return float(np.linalg.norm(cam.project(vc)[idx] - truth.keypoints_2d[idx], axis=1).mean())

    rest, ik, learned = start_error("rest"), start_error("ik"), start_error("learned")
    print(f"\nlimb-joint error at the start: reference pose {rest:.1f} px, IK {ik:.1f} px, "
          f"learned {learned:.1f} px")  # fmt: skip
    assert ik < 0.6 * rest
    assert learned < ik  # the committed network (checkpoints/fit_init.pt) improves the start


# ------------------------------------------------------------ dense refit (Rong et al. eq. 4)


def test_refit_to_the_true_dense_correspondences_recovers_the_pose(one_thread) -> None:
    """Known answer: 400 pixels that show known vertices of the true body pull the fitted
    body onto it (measured: limb-joint error 1.21 -> 0.53 px, vertex error 3.1 -> 1.5 cm)."""
    from reroute.body.fit import DenseTargets, refit_body

    truth = render_synthetic_person(EXAMPLE_POSES["arm_raised"], size=256, seed=0)
    obs = detect_person(truth.image, name="synthetic render")
    fitted = fit_body(obs)
    ids = np.random.default_rng(0).choice(len(truth.vertices), 400, replace=False)
    dense = DenseTargets(truth.camera.project(truth.vertices[ids]).astype(np.float32),
                         ids.astype(np.int64), np.ones(400, np.float32))  # fmt: skip
    refit = refit_body(obs, fitted, dense)

    idx = [truth.keypoint_names.index(k) for k in LIMB_JOINTS]

    def limb_error(b) -> float:
        return float(np.linalg.norm(b.keypoints_2d[idx] - truth.keypoints_2d[idx], axis=1).mean())

    def vertex_error_cm(b) -> float:
        return float(np.linalg.norm(b.vertices - truth.vertices, axis=1).mean() * 100)

    assert limb_error(refit) < 0.7 * limb_error(fitted)
    assert vertex_error_cm(refit) < 0.7 * vertex_error_cm(fitted)
    assert "dense" in refit.losses and refit.steps > fitted.steps
    assert refit.camera == fitted.camera

    # the wrong correspondences pull the other way: the same pixels, other vertices
    wrong = DenseTargets(dense.pixels, np.roll(dense.vertices, 1), dense.weights)
    assert vertex_error_cm(refit_body(obs, fitted, wrong)) > vertex_error_cm(refit)


def test_refit_refuses_what_it_cannot_use() -> None:
    from reroute.body.fit import DenseTargets, refit_body

    with pytest.raises(ValueError, match=r"expected pixels \(3, 2\) and weights \(3,\)"):
        DenseTargets(np.zeros((2, 2), np.float32), np.zeros(3, np.int64), np.ones(3, np.float32))
    truth = render_synthetic_person(EXAMPLE_POSES["arm_raised"], size=128, seed=0)
    empty = DenseTargets(np.zeros((0, 2), np.float32), np.zeros(0, np.int64), np.zeros(0, np.float32))
    with pytest.raises(ValueError, match="no dense targets"):
        refit_body(None, truth.body, empty)
    shaped = truth.body.resized(128, 128)
    shaped.phenotypes = {"height": 0.7}
    with pytest.raises(ValueError, match="fitted phenotypes"):
        refit_body(None, shaped, empty)


def test_nearest_distance_equals_the_brute_force_minimum() -> None:
    """The one-sided chamfer of the silhouette term: values and gradients equal those of
    differentiating ``min`` over the full distance matrix (torch.cdist)."""
    g = torch.Generator().manual_seed(0)
    pts = torch.rand(3, 50, 2, generator=g).requires_grad_()
    cand = torch.rand(3, 70, 2, generator=g).requires_grad_()
    weights = torch.rand(3, 50, generator=g)
    got = fit_module._nearest_distance(pts, cand)
    (weights * got).sum().backward()
    g_pts, g_cand = pts.grad.clone(), cand.grad.clone()
    pts.grad = cand.grad = None
    want = torch.cdist(pts, cand, compute_mode="donot_use_mm_for_euclid_dist").min(2).values
    (weights * want).sum().backward()
    assert got.shape == (3, 50)
    torch.testing.assert_close(got, want, atol=1e-5, rtol=0)
    torch.testing.assert_close(g_pts, pts.grad, atol=1e-4, rtol=0)
    torch.testing.assert_close(g_cand, cand.grad, atol=1e-4, rtol=0)
    # only the candidates nearest to some point get a gradient
    nearest = torch.zeros(3, 70, dtype=torch.bool)
    exact = torch.cdist(pts.detach(), cand.detach(), compute_mode="donot_use_mm_for_euclid_dist")
    nearest.scatter_(1, exact.argmin(2), True)
    assert torch.equal(g_cand.abs().sum(-1) > 0, nearest)
    # a point on a candidate: distance 1e-5 (the clamp), finite gradients
    on_pts = cand[:, :5].detach().clone().requires_grad_()
    on = fit_module._nearest_distance(on_pts, cand.detach())
    assert torch.allclose(on, torch.full_like(on, 1e-5))
    on.sum().backward()
    assert torch.isfinite(on_pts.grad).all()
