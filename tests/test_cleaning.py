"""IUV cleaning with keypoints (reroute.correspondence.cleaning, Rong et al. ICCV 2019 sec. 3.2)."""

from __future__ import annotations

import numpy as np
import pytest

from reroute.body.detect import COCO18_NAMES
from reroute.correspondence.cleaning import KEYPOINT_PARTS, clean_with_keypoints
from reroute.correspondence.maps import Correspondence


def _corr(part: np.ndarray) -> Correspondence:
    fg = part > 0
    f = fg.astype(np.float32)
    return Correspondence(part.astype(np.uint8), np.stack([f * 0.5, f * 0.25], -1), np.stack([f, f], -1) * 0.3,
                          np.stack([f, f, f], -1) * 0.7, fg, fg.copy())  # fmt: skip


def _kp(**where) -> np.ndarray:
    kp = np.zeros((18, 3))
    for name, (x, y) in where.items():
        kp[COCO18_NAMES.index(name)] = (x, y, 1.0)
    return kp


def test_a_region_on_the_wrong_side_is_dropped_and_nothing_else():
    part = np.zeros((20, 30), np.uint8)
    part[2:18, 10:20] = 2  # torso front
    part[5:8, 0:8] = 20  # a right forearm... where the left wrist is
    part[12:15, 22:30] = 21  # a left forearm
    corr = _corr(part)
    cleaned, report = clean_with_keypoints(corr, _kp(left_wrist=(3, 6), left_elbow=(25, 13), nose=(15, 3)))
    assert report.dropped == [("left_wrist", 20, 24)] and report.pixels == 24
    assert (cleaned.part[5:8, 0:8] == 0).all() and not cleaned.mask[5:8, 0:8].any()
    assert cleaned.part_uv[5:8, 0:8].max() == 0 and cleaned.colour[5:8, 0:8].max() == 0
    assert (cleaned.part[part != 20] == part[part != 20]).all()  # every other pixel as it was
    assert corr.part[6, 3] == 20  # the input is left alone


def test_agreeing_torso_hidden_and_unsure_keypoints_drop_nothing():
    part = np.zeros((20, 30), np.uint8)
    part[2:18, 10:20] = 1
    part[5:8, 0:8] = 19
    corr = _corr(part)
    kp = _kp(left_wrist=(3, 6), right_wrist=(15, 10), right_ankle=(100, 100))  # agrees; on the torso; outside
    kp[COCO18_NAMES.index("right_elbow")] = (3, 6, 0.2)  # would contradict, but unsure
    cleaned, report = clean_with_keypoints(corr, kp)
    assert report.pixels == 0 and cleaned is corr
    with pytest.raises(ValueError, match=r"expected \(18, 3\)"):
        clean_with_keypoints(corr, kp[:17])


def test_every_keypoint_has_a_side_consistent_part_set():
    assert set(KEYPOINT_PARTS) == set(COCO18_NAMES)
    left = {4, 5, 8, 10, 12, 14, 15, 17, 19, 21}
    right = {3, 6, 7, 9, 11, 13, 16, 18, 20, 22}
    for name, parts in KEYPOINT_PARTS.items():
        if name.startswith("left_") and "eye" not in name and "ear" not in name:
            assert parts <= left, name
        if name.startswith("right_") and "eye" not in name and "ear" not in name:
            assert parts <= right, name
