"""Person detection on real photos: BlazePose landmarks and a person mask (mediapipe).

mediapipe 0.10.21 ships its pose, face and selfie-segmentation models inside its
wheel and runs them offline on the CPU (~0.2 s per photo). Only
``model_complexity=1`` is shipped. BlazePose follows one person, so counting
people uses the selfie-segmentation mask (every person in the frame): two or
more large connected components, or two or more faces, mean several persons.

BlazePose's person detector keys on the face, so it misses some back views and
photos whose face the frame cuts off. After padded and mirrored retries
(:data:`RETRIES`), the landmark model runs without the detector on regions of
interest around the person mask and the frame (:func:`_pose_in_mask_rois`).
"""

from __future__ import annotations

import contextlib
import functools
import os
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np

from reroute.body.native import quiet_native
from reroute.errors import NoPersonError, SeveralPersonsError

__all__ = [
    "POSE_GRAPHS", "PersonObservation", "detect_person", "load_detectors", "BLAZEPOSE_NAMES",
    "COCO18_NAMES", "coco18_keypoints",
]  # fmt: skip

#: BlazePose's 33 landmark names, in order.
BLAZEPOSE_NAMES: tuple[str, ...] = (
    "nose", "left_eye_inner", "left_eye", "left_eye_outer", "right_eye_inner", "right_eye",
    "right_eye_outer", "left_ear", "right_ear", "mouth_left", "mouth_right", "left_shoulder",
    "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist", "left_pinky",
    "right_pinky", "left_index", "right_index", "left_thumb", "right_thumb", "left_hip",
    "right_hip", "left_knee", "right_knee", "left_ankle", "right_ankle", "left_heel",
    "right_heel", "left_foot_index", "right_foot_index",
)  # fmt: skip

#: OpenPose's 18 COCO keypoints (COCO 17 plus the neck), in OpenPose's order: the
#: keypoint set of PG2 and Dense Pose Transfer's keypoint conditioning.
COCO18_NAMES: tuple[str, ...] = (
    "nose", "neck", "right_shoulder", "right_elbow", "right_wrist", "left_shoulder", "left_elbow",
    "left_wrist", "right_hip", "right_knee", "right_ankle", "left_hip", "left_knee", "left_ankle",
    "right_eye", "left_eye", "right_ear", "left_ear",
)  # fmt: skip


def coco18_keypoints(points: np.ndarray, confidence: np.ndarray) -> np.ndarray:
    """BlazePose's 33 landmarks as OpenPose's 18 COCO keypoints (:data:`COCO18_NAMES`).

    Args:
        points: (33, 2) float (x, y) in pixels, BlazePose order (:data:`BLAZEPOSE_NAMES`).
        confidence: (33,) float in [0, 1] (BlazePose's visibility score).
    Returns:
        (18, 3) float32 (x, y, confidence): the neck is the midpoint of the
        shoulders with the smaller of their two confidences.
    Raises:
        ValueError: wrong shapes.
    """
    points, confidence = np.asarray(points, np.float32), np.asarray(confidence, np.float32)
    if points.shape != (33, 2) or confidence.shape != (33,):
        raise ValueError(f"expected (33, 2) points and (33,) confidence, got {points.shape} and {confidence.shape}")
    index = {n: i for i, n in enumerate(BLAZEPOSE_NAMES)}
    out = np.zeros((18, 3), np.float32)
    for k, name in enumerate(COCO18_NAMES):
        if name == "neck":
            ls, rs = index["left_shoulder"], index["right_shoulder"]
            out[k, :2] = (points[ls] + points[rs]) / 2
            out[k, 2] = min(confidence[ls], confidence[rs])
        else:
            out[k, :2], out[k, 2] = points[index[name]], confidence[index[name]]
    return out


#: the fallback's graphs (:func:`_roi_models`) run one photo at a time
_ROI_LOCK = threading.Lock()


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


#: BlazePose graphs that may run at once, one per thread (each holds about 110 MB):
#: the photos of one transfer, and concurrent requests, are detected in parallel.
#: mediapipe runs a graph on one core: two DeepFashion photos took 0.073-0.081 s on two
#: graphs at once and 0.11-0.15 s on one graph (2-core CPU, 3 runs each).
POSE_GRAPHS = max(1, min(2, os.cpu_count() or 1))


class _Graph:
    """One mediapipe solution (``process(image) -> result``), used by one thread at a time.

    A graph prints TFLite and absl lines from C++ on its first runs (the XNNPACK
    delegate, the feedback manager and, on the first person it finds, a landmark
    projection warning), so it runs inside :func:`quiet_native` until a run's
    result satisfies ``found`` (default: any result); after that without it, since
    silencing the file descriptors is process-wide and serialises every caller.
    """

    def __init__(self, solution, found: Callable[[object], bool] = lambda res: True):
        self.solution, self.found = solution, found
        self.quiet = True

    def process(self, image):
        """The solution's result for ``image``."""
        if not self.quiet:
            return self.solution.process(image)
        with quiet_native():
            res = self.solution.process(image)
        self.quiet = not self.found(res)
        return res


class _GraphPool:
    """Up to ``size`` instances of one graph, each made when first needed; ``found``
    is their :class:`_Graph` predicate that ends the quiet runs."""

    def __init__(self, make: Callable[[], object], size: int,
                 found: Callable[[object], bool] = lambda res: True):  # fmt: skip
        self._make, self._size, self._found = make, size, found
        self._free: list[_Graph] = []
        self._made = 0
        self._cond = threading.Condition()

    @contextlib.contextmanager
    def borrow(self) -> Iterator[_Graph]:
        """A free graph for the block (waits while all ``size`` are lent out)."""
        with self._cond:
            while not self._free and self._made >= self._size:
                self._cond.wait()
            graph = self._free.pop() if self._free else None
            self._made += graph is None
        if graph is None:
            try:
                with quiet_native():  # TFLite and absl log from C++ at start-up
                    graph = _Graph(self._make(), self._found)
            except BaseException:
                with self._cond:
                    self._made -= 1
                    self._cond.notify()
                raise
        try:
            yield graph
        finally:
            with self._cond:
                self._free.append(graph)
                self._cond.notify()

    def fill(self, image: np.ndarray) -> None:
        """Make every graph of the pool and run each once on ``image`` ((H, W, 3) uint8
        RGB; a blank frame finds no person, so a pose graph stays quiet for its
        first photo with one)."""
        with contextlib.ExitStack() as stack:
            for graph in [stack.enter_context(self.borrow()) for _ in range(self._size)]:
                graph.process(image)


def _mediapipe():
    import mediapipe as mp  # heavy (TFLite, jax): only when a photo is analysed

    return mp


_POSE = _GraphPool(lambda: _mediapipe().solutions.pose.Pose(
    static_image_mode=True, model_complexity=1, enable_segmentation=True,
    min_detection_confidence=0.5,
), POSE_GRAPHS, lambda res: res.pose_landmarks is not None)  # fmt: skip
_SELFIE = _GraphPool(lambda: _mediapipe().solutions.selfie_segmentation.SelfieSegmentation(
    model_selection=0), 1)  # fmt: skip
_FACES = _GraphPool(lambda: _mediapipe().solutions.face_detection.FaceDetection(
    model_selection=1, min_detection_confidence=0.6), 1)  # fmt: skip


def load_detectors() -> None:
    """Make every mediapipe graph :func:`detect_person` uses (:data:`POSE_GRAPHS`
    BlazePose graphs, selfie segmentation, face detection) and run each once on a
    blank frame, so that the first photos do not pay for it."""
    blank = np.zeros((64, 64, 3), np.uint8)
    for pool in (_POSE, _SELFIE, _FACES):
        pool.fill(blank)


def count_persons(image: np.ndarray) -> int:
    """Number of people in an RGB uint8 image (H, W, 3).

    The larger of: connected components of the selfie-segmentation mask (> 0.5)
    whose area is at least 10% of the largest and 0.5% of the image, and faces
    found by mediapipe's full-range face detector (score >= 0.6).
    """
    import scipy.ndimage as ndi

    with _SELFIE.borrow() as selfie:
        seg = selfie.process(image).segmentation_mask
    with _FACES.borrow() as faces:
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
        NoPersonError: no person detected: neither BlazePose (on the photo, then on
            the retries of :data:`RETRIES`) nor its landmark model on regions
            around the person mask finds one.
        SeveralPersonsError: more than one person in the photo.
    """
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"image: expected (H, W, 3) uint8, got {image.shape} {image.dtype}")
    image = np.ascontiguousarray(image)
    n = count_persons(image)
    if n >= 2:
        raise SeveralPersonsError(f"{name} shows {n} persons; reroute needs a photo of exactly one")
    h, w = image.shape[:2]
    found = _pose_with_retries(image)
    if found is None:
        found = _pose_in_mask_rois(image)
    if found is None:
        raise NoPersonError(f"no person found in {name}")
    xy, vis, world, mask = found
    if (mask > 0.5).sum() < 0.002 * h * w:
        raise NoPersonError(f"no person found in {name} (the person mask is empty)")
    return PersonObservation(xy, vis, world, mask, (h, w))


#: BlazePose index of each landmark's left/right counterpart (itself on the midline)
_MIRROR = np.array([0, 4, 5, 6, 1, 2, 3, 8, 7, 10, 9, 12, 11, 14, 13, 16, 15, 18, 17, 20, 19, 22,
                    21, 24, 23, 26, 25, 28, 27, 30, 29, 32, 31])  # fmt: skip

#: retries when BlazePose finds nobody in the photo as it is: (padding as a
#: fraction of the longer side, border mode, mirrored). A padded frame lets its
#: person detector see a person whose head or feet the photo cuts off; a
#: mirrored one sometimes finds a back view it missed.
RETRIES: tuple[tuple[float, str, bool], ...] = (
    (0.0, "constant", False), (0.25, "constant", False), (0.5, "replicate", False),
    (0.0, "constant", True), (0.25, "constant", True),
)  # fmt: skip


def _pose_with_retries(image: np.ndarray):
    """BlazePose on the photo, then on padded and mirrored versions of it (:data:`RETRIES`).

    Returns:
        ``(xy (33, 2) px, visibility (33,), world (33, 3) m, mask (H, W) float32)`` in
        the photo's own frame, or None when no try finds a person.
    """
    import cv2  # OpenCV: only for the padded retries

    h, w = image.shape[:2]
    for frac, border, mirrored in RETRIES:
        pad = int(round(frac * max(h, w)))
        img = image[:, ::-1] if mirrored else image
        if pad:
            mode = cv2.BORDER_CONSTANT if border == "constant" else cv2.BORDER_REPLICATE
            img = cv2.copyMakeBorder(img, pad, pad, pad, pad, mode, value=(255, 255, 255))
        with _POSE.borrow() as pose:
            res = pose.process(np.ascontiguousarray(img))
        if res.pose_landmarks is None or res.pose_world_landmarks is None:
            continue
        xy, vis, world = _landmark_arrays(res.pose_landmarks, res.pose_world_landmarks,
                                          img.shape[:2], pad)  # fmt: skip
        mask = (np.asarray(res.segmentation_mask, np.float32)[pad:pad + h, pad:pad + w]
                if res.segmentation_mask is not None else np.zeros((h, w), np.float32))  # fmt: skip
        if mirrored:  # back to the photo's frame: x flips, the person's left and right swap
            xy[:, 0] = w - xy[:, 0]
            world[:, 0] *= -1
            xy, vis, world = xy[_MIRROR], vis[_MIRROR], world[_MIRROR]
            mask = mask[:, ::-1]
        return xy, vis, world, np.ascontiguousarray(mask)
    return None


def _landmark_arrays(landmarks, world_landmarks, size: tuple[int, int], pad: int = 0):
    """mediapipe's landmark protos -> ``(xy (33, 2) px, visibility (33,), world (33, 3) m)``
    float32; ``size`` (H, W) of the analysed image, ``pad`` px removed from x and y."""
    h, w = size
    xy = np.array([[p.x * w - pad, p.y * h - pad] for p in landmarks.landmark], np.float32)
    vis = np.array([p.visibility for p in landmarks.landmark], np.float32)
    world = np.array([[p.x, p.y, p.z] for p in world_landmarks.landmark], np.float32)
    return xy, vis, world


#: BlazePose's landmark model run on a region of interest chosen from the person
#: mask, without its person detector (mediapipe's ``PoseLandmarkByRoiCpu`` subgraph).
_ROI_GRAPH = """
input_stream: "IMAGE:image"
input_stream: "ROI:roi"
output_stream: "LANDMARKS:landmarks"
output_stream: "WORLD_LANDMARKS:world_landmarks"
output_stream: "SEGMENTATION_MASK:segmentation_mask"
input_side_packet: "MODEL_COMPLEXITY:model_complexity"
input_side_packet: "ENABLE_SEGMENTATION:enable_segmentation"
node {
  calculator: "PoseLandmarkByRoiCpu"
  input_stream: "IMAGE:image"
  input_stream: "ROI:roi"
  output_stream: "LANDMARKS:landmarks"
  output_stream: "AUXILIARY_LANDMARKS:auxiliary_landmarks"
  output_stream: "WORLD_LANDMARKS:world_landmarks"
  output_stream: "SEGMENTATION_MASK:segmentation_image"
  input_side_packet: "MODEL_COMPLEXITY:model_complexity"
  input_side_packet: "ENABLE_SEGMENTATION:enable_segmentation"
}
node {
  calculator: "FromImageCalculator"
  input_stream: "IMAGE:segmentation_image"
  output_stream: "IMAGE_CPU:segmentation_mask"
}
"""

#: regions of interest tried by :func:`_pose_in_mask_rois` around the person
#: mask, as (centre height, side): the centre lies that far down the mask's
#: bounding box (BlazePose centres its region on the hips), the square's side is
#: that many times the box's longer side (BlazePose's is 2.5 times the hip-to-head
#: distance).
MASK_ROIS: tuple[tuple[float, float], ...] = (
    (0.35, 1.6), (0.65, 1.6), (1.0, 1.6), (0.35, 2.5), (0.65, 2.5), (1.0, 2.5),
)  # fmt: skip

#: the same around the whole frame (centre height as a fraction of the image's
#: height, side as a fraction of its longer side, centred horizontally): for photos
#: whose person mask misses part of the person (light clothes on a light background)
FRAME_ROIS: tuple[tuple[float, float], ...] = ((0.5, 2.0), (0.5, 2.5), (0.65, 2.0), (0.65, 2.5))

#: two regions' landmark-model person masks agree when their IoU is at least this
ROI_AGREEMENT_IOU = 0.9


@functools.lru_cache(maxsize=1)
def _roi_models():
    with quiet_native():  # TFLite and absl log from C++ at start-up
        import mediapipe as mp  # heavy: only when the detector found nobody
        from google.protobuf import text_format  # mediapipe's graph configs are protobufs
        from mediapipe.framework import calculator_pb2
        from mediapipe.framework.formats import rect_pb2
        from mediapipe.python.solution_base import SolutionBase

        config = text_format.Parse(_ROI_GRAPH, calculator_pb2.CalculatorGraphConfig())
        landmarks = SolutionBase(
            graph_config=config, side_inputs={"model_complexity": 1, "enable_segmentation": True},
            outputs=["landmarks", "world_landmarks", "segmentation_mask"],
        )  # fmt: skip
        # the landscape model finds light clothes on light backgrounds that model 0 misses
        selfie = mp.solutions.selfie_segmentation.SelfieSegmentation(model_selection=1)
        # the graphs open their models (and log) on their first frame, in their own
        # threads: run one here so those lines land inside quiet_native
        blank = np.zeros((64, 64, 3), np.uint8)
        selfie.process(blank)
        landmarks.process({"image": blank, "roi": rect_pb2.NormalizedRect(
            x_center=0.5, y_center=0.5, width=1.0, height=1.0, rotation=0.0)})
    return landmarks, selfie


def _pose_in_mask_rois(image: np.ndarray):
    """BlazePose's landmark model on regions of interest around the person.

    The fallback for photos whose person BlazePose's detector misses (it keys on
    the face: back views, faces cut off by the frame). The landmark model runs
    directly, without the detector, on each region of :data:`MASK_ROIS` (around
    the selfie-segmentation mask's bounding box) and :data:`FRAME_ROIS` (around
    the frame); a region counts when the model's own presence score passes 0.5.
    The answer is the region whose person mask agrees (IoU >=
    :data:`ROI_AGREEMENT_IOU`) with the most other regions' masks, ties broken by
    IoU with the selfie mask; at least two regions must agree, and the selfie mask
    must cover 2% of the photo, so one hallucinated region never makes a person.

    Returns:
        ``(xy (33, 2) px, visibility (33,), world (33, 3) m, mask (H, W) float32)``
        like :func:`_pose_with_retries`, or None.
    """
    from mediapipe.framework.formats import rect_pb2  # mediapipe's ROI protobuf

    h, w = image.shape[:2]
    with _ROI_LOCK:
        landmarks, selfie = _roi_models()
        with quiet_native():
            person = selfie.process(image).segmentation_mask > 0.5
    if person.sum() < 0.02 * h * w:
        return None
    ys, xs = np.nonzero(person)
    top, height = ys.min(), ys.max() - ys.min() + 1
    longer = max(height, xs.max() - xs.min() + 1)
    rois = [((xs.min() + xs.max()) / 2, top + down * height, side * longer) for down, side in MASK_ROIS]
    rois += [(w / 2, down * h, side * max(h, w)) for down, side in FRAME_ROIS]
    found = []
    for cx, cy, side in rois:
        roi = rect_pb2.NormalizedRect(x_center=cx / w, y_center=cy / h, width=side / w,
                                      height=side / h, rotation=0.0)  # fmt: skip
        with _ROI_LOCK, quiet_native():
            res = landmarks.process({"image": image, "roi": roi})
        if res.landmarks is not None and res.world_landmarks is not None and res.segmentation_mask is not None:
            found.append((res, np.asarray(res.segmentation_mask, np.float32).reshape(h, w).copy()))
    if len(found) < 2:
        return None
    masks = [m > 0.5 for _, m in found]
    iou = np.array([[(a & b).sum() / max((a | b).sum(), 1) for b in masks + [person]] for a in masks])
    support = (iou[:, :-1] >= ROI_AGREEMENT_IOU).sum(1) - 1
    best = int(np.lexsort((iou[:, -1], support))[-1])
    if support[best] < 1:
        return None
    res, mask = found[best]
    return (*_landmark_arrays(res.landmarks, res.world_landmarks, (h, w)), mask)
