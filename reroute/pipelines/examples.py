"""Example photos for demos: synthetic anny renders (our own, no licence question).

The app's bundled examples (``app/examples/synthetic_*.png``) are made with
:func:`render_example_photo` by ``python app/examples/make_examples.py``.
"""

from __future__ import annotations

import numpy as np

from reroute.body.detect import detect_person
from reroute.synth.engine import render_synthetic_person
from reroute.synth.pose import EXAMPLE_POSES

__all__ = ["EXAMPLE_PHOTOS", "render_example_photo"]

#: file stem -> (pose name of :data:`reroute.synth.pose.EXAMPLE_POSES`, yaw in degrees, colour seed)
EXAMPLE_PHOTOS: dict[str, tuple[str, float, int]] = {
    "synthetic_arms_down": ("arms_down", 0.0, 0),
    "synthetic_arm_raised": ("arm_raised", 0.0, 1),
    "synthetic_turned": ("turned", 30.0, 2),
}


def render_example_photo(stem: str, size: int = 256, check: bool = True) -> np.ndarray:
    """One example photo of :data:`EXAMPLE_PHOTOS`, rendered.

    Args:
        stem: a key of :data:`EXAMPLE_PHOTOS`.
        size: image side, px.
        check: run mediapipe's BlazePose on it, so the example is known to work.
    Returns:
        (size, size, 3) uint8 RGB.
    Raises:
        KeyError: unknown stem.
        NoPersonError, SeveralPersonsError: ``check`` and BlazePose does not
            find exactly one person.
    """
    pose, yaw, seed = EXAMPLE_PHOTOS[stem]
    r = render_synthetic_person(EXAMPLE_POSES[pose], size=size, yaw_deg=yaw, seed=seed)
    if check:
        detect_person(r.image, name=stem)
    return r.image
