"""Person detection on real photos: BlazePose landmarks and a person mask (mediapipe).

mediapipe 0.10.21 ships its pose, face and selfie-segmentation models inside its
wheel and runs them offline on the CPU (~0.2 s per photo). Only
``model_complexity=1`` is shipped. BlazePose follows one person, so counting
people uses the selfie-segmentation mask (every person in the frame): two or
more large connected components, or two or more faces, mean several persons.
"""

from __future__ import annotations

import functools
import threading
from dataclasses import dataclass

import numpy as np

from reroute.errors import NoPersonError, SeveralPersonsError

__all__ = ["PersonObservation", "detect_person", "BLAZEPOSE_NAMES"]

#: BlazePose's 33 landmark names, in order.
BLAZEPOSE_NAMES: tuple[str, ...] = (
    "nose", "left_eye_inner", "left_eye", "left_eye_outer", "right_eye_inner", "right_eye",
    "right_eye_outer", "left_ear", "right_ear", "mouth_left", "mouth_right", "left_shoulder",
    "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist", "left_pinky",
    "right_pinky", "left_index", "right_index", "left_thumb", "right_thumb", "left_hip",
    "right_hip", "left_knee", "right_knee", "left_ankle", "right_ankle", "left_heel",
    "right_heel", "left_foot_index", "right_foot_index",
)  # fmt: skip

_LOCK = threading.Lock()


@dataclass
class PersonObservation:
    """What mediapipe sees of the one person in a photo.

    Attributes:
        landmarks: (33, 2) float32 BlazePose landmarks in pixels (x, y) of the
            analysed image; may lie outside the image for cut-off limbs.
        visibility: (33,) float32 in [0, 1], BlazePose's visibility score.
        world: (33, 3) float32 metric 3-D landmarks in metres, hip-centred,
            axes aligned with the camera (x right, y down, z away from the camera).
        mask: (H, W) float32 person-segmentation probability in [0, 1].
        image_size: (H, W) of the analysed image.
    """

    landmarks: np.ndarray
    visibility: np.ndarray
    world: np.ndarray
    mask: np.ndarray
    image_size: tuple[int, int]

    def scaled(self, height: int, width: int) -> PersonObservation:
        """The observation for the same photo resized to ``height x width`` (mask: bilinear)."""
        import cv2

        sy, sx = height / self.image_size[0], width / self.image_size[1]
        mask = cv2.resize(self.mask, (width, height), interpolation=cv2.INTER_LINEAR)
        return PersonObservation(self.landmarks * np.float32([sx, sy]), self.visibility,
                                 self.world, mask, (height, width))  # fmt: skip


@functools.lru_cache(maxsize=1)
def _models():
    import mediapipe as mp

    pose = mp.solutions.pose.Pose(
        static_image_mode=True, model_complexity=1, enable_segmentation=True,
        min_detection_confidence=0.5,
    )  # fmt: skip
    selfie = mp.solutions.selfie_segmentation.SelfieSegmentation(model_selection=0)
    faces = mp.solutions.face_detection.FaceDetection(
        model_selection=1, min_detection_confidence=0.6
    )
    return pose, selfie, faces


def count_persons(image: np.ndarray) -> int:
    """Number of people in an RGB uint8 image (H, W, 3).

    The larger of: connected components of the selfie-segmentation mask (> 0.5)
    whose area is at least 10% of the largest and 0.5% of the image, and faces
    found by mediapipe's full-range face detector (score >= 0.6).
    """
    import scipy.ndimage as ndi

    with _LOCK:
        _, selfie, faces = _models()
        seg = selfie.process(image).segmentation_mask
        det = faces.process(image).detections or []
    labels, n = ndi.label(seg > 0.5)
    comps = 0
    if n:
        areas = np.bincount(labels.ravel())[1:]
        comps = int(((areas >= 0.1 * areas.max()) & (areas >= 0.005 * seg.size)).sum())
    return max(comps, len(det))


def detect_person(image: np.ndarray, *, name: str = "photo") -> PersonObservation:
    """BlazePose landmarks (2-D and 3-D) and the person mask of the one person in a photo.

    Args:
        image: (H, W, 3) uint8 RGB.
        name: how to call the photo in error messages.
    Returns:
        :class:`PersonObservation`.
    Raises:
        NoPersonError: no person detected.
        SeveralPersonsError: more than one person in the photo.
    """
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"image: expected (H, W, 3) uint8, got {image.shape} {image.dtype}")
    image = np.ascontiguousarray(image)
    n = count_persons(image)
    if n >= 2:
        raise SeveralPersonsError(f"{name} shows {n} persons; reroute needs a photo of exactly one")
    with _LOCK:
        pose, _, _ = _models()
        res = pose.process(image)
    if res.pose_landmarks is None or res.pose_world_landmarks is None:
        raise NoPersonError(f"no person found in {name}")
    h, w = image.shape[:2]
    lm = res.pose_landmarks.landmark
    xy = np.array([[p.x * w, p.y * h] for p in lm], np.float32)
    vis = np.array([p.visibility for p in lm], np.float32)
    world = np.array([[p.x, p.y, p.z] for p in res.pose_world_landmarks.landmark], np.float32)
    mask = (
        np.asarray(res.segmentation_mask, np.float32)
        if res.segmentation_mask is not None
        else np.zeros((h, w), np.float32)
    )
    if (mask > 0.5).sum() < 0.002 * h * w:
        raise NoPersonError(f"no person found in {name} (the person mask is empty)")
    return PersonObservation(xy, vis, world, mask, (h, w))
