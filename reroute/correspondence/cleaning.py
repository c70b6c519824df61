"""IUV cleaning with keypoints (Rong, Liu, Loy, ICCV 2019, "Delving Deep into Hybrid
Annotations for 3D Human Recovery in the Wild", sec. 3.2).

Dense correspondences confuse left and right limbs, and one limb segment with the
next, more often than 2-D keypoint detectors do. Rong et al. keep only the IUV
regions that agree with the keypoints. Here, a *region* is a connected component
of one part label. A visible keypoint (confidence >= ``min_confidence``) lands on the
pixel under it. When that pixel's part is a limb or head part the keypoint cannot
lie on (:data:`KEYPOINT_PARTS`: e.g. a left wrist on a right forearm), the region
is dropped: its pixels become background in every field of the
:class:`~reroute.correspondence.maps.Correspondence`. Torso pixels are never
dropped: a limb held in front of the torso puts its keypoints there legitimately.

Keypoints are OpenPose's COCO-18 (:data:`reroute.body.detect.COCO18_NAMES`;
:func:`reroute.body.detect.coco18_keypoints` maps BlazePose's landmarks to them).
Parts are DensePose's numbering (see :mod:`reroute.body.template`).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import cv2
import numpy as np

from reroute.body.detect import COCO18_NAMES
from reroute.correspondence.maps import Correspondence

__all__ = ["KEYPOINT_PARTS", "TORSO_PARTS", "CleaningReport", "clean_with_keypoints"]

TORSO_PARTS = frozenset({1, 2})
_HEAD = {23, 24}
#: COCO-18 keypoint -> the DensePose parts it may lie on (torso always allowed)
KEYPOINT_PARTS: dict[str, frozenset[int]] = {
    "nose": frozenset(_HEAD), "right_eye": frozenset(_HEAD), "left_eye": frozenset(_HEAD),
    "right_ear": frozenset(_HEAD), "left_ear": frozenset(_HEAD), "neck": frozenset(_HEAD),
    "right_shoulder": frozenset({16, 18}), "left_shoulder": frozenset({15, 17}),
    "right_elbow": frozenset({16, 18, 20, 22}), "left_elbow": frozenset({15, 17, 19, 21}),
    "right_wrist": frozenset({20, 22, 3}), "left_wrist": frozenset({19, 21, 4}),
    "right_hip": frozenset({7, 9}), "left_hip": frozenset({8, 10}),
    "right_knee": frozenset({7, 9, 11, 13}), "left_knee": frozenset({8, 10, 12, 14}),
    "right_ankle": frozenset({11, 13, 6}), "left_ankle": frozenset({12, 14, 5}),
}  # fmt: skip


@dataclass
class CleaningReport:
    """What :func:`clean_with_keypoints` dropped.

    Attributes:
        dropped: (keypoint name, part label, pixels) per dropped region.
        pixels: total pixels dropped.
    """

    dropped: list[tuple[str, int, int]]
    pixels: int


def clean_with_keypoints(corr: Correspondence, keypoints: np.ndarray,
                         min_confidence: float = 0.5) -> tuple[Correspondence, CleaningReport]:  # fmt: skip
    """Drop the part regions that contradict a visible keypoint (see the module docstring).

    Args:
        corr: the :class:`Correspondence` (H, W).
        keypoints: (18, 3) float (x, y pixels of the same image, confidence in [0, 1]),
            COCO-18 order; keypoints outside the image are ignored.
        min_confidence: keypoints below it are not used.
    Returns:
        (the cleaned :class:`Correspondence`, a :class:`CleaningReport`); the input is not changed.
    Raises:
        ValueError: ``keypoints`` is not (18, 3).
    """
    kp = np.asarray(keypoints, np.float64)
    if kp.shape != (len(COCO18_NAMES), 3):
        raise ValueError(f"keypoints: expected ({len(COCO18_NAMES)}, 3), got {kp.shape}")
    H, W = corr.shape
    drop = np.zeros((H, W), bool)
    dropped: list[tuple[str, int, int]] = []
    labels_of: dict[int, np.ndarray] = {}
    for name, (x, y, conf) in zip(COCO18_NAMES, kp, strict=True):
        xi, yi = int(round(x)), int(round(y))
        if conf < min_confidence or not (0 <= xi < W and 0 <= yi < H) or drop[yi, xi]:
            continue
        part = int(corr.part[yi, xi])
        if part == 0 or part in TORSO_PARTS or part in KEYPOINT_PARTS[name]:
            continue
        if part not in labels_of:
            labels_of[part] = cv2.connectedComponents((corr.part == part).astype(np.uint8), connectivity=8)[1]
        region = labels_of[part] == labels_of[part][yi, xi]
        drop |= region
        dropped.append((name, part, int(region.sum())))
    if not dropped:
        return corr, CleaningReport([], 0)
    keep = ~drop

    def masked(a: np.ndarray) -> np.ndarray:
        return a * (keep[..., None] if a.ndim == 3 else keep).astype(a.dtype)

    cleaned = replace(corr, part=masked(corr.part), part_uv=masked(corr.part_uv), uv=masked(corr.uv),
                      colour=masked(corr.colour), mask=corr.mask & keep, body_mask=corr.body_mask & keep)  # fmt: skip
    return cleaned, CleaningReport(dropped, int(drop.sum()))
