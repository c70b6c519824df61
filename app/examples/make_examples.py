"""Write the demo's example photos: synthetic anny renders (our own, no licence question).

Run from the repository root::

    python app/examples/make_examples.py

It writes ``app/examples/synthetic_*.png`` (256 x 256 px): one body with the
arms down, one with an arm raised and a leg bent, one turned by 30 degrees.
Each is checked with mediapipe's BlazePose so the examples are known to work.
"""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1]))

from reroute.io.images import save_image_atomic  # noqa: E402
from reroute.synth.engine import render_synthetic_person  # noqa: E402
from reroute.synth.pose import EXAMPLE_POSES  # noqa: E402

#: file stem -> (pose name, yaw in degrees, colour seed)
EXAMPLES = {
    "synthetic_arms_down": ("arms_down", 0.0, 0),
    "synthetic_arm_raised": ("arm_raised", 0.0, 1),
    "synthetic_turned": ("turned", 30.0, 2),
}


def main(size: int = 256, check: bool = True) -> list[Path]:
    written = []
    for stem, (pose, yaw, seed) in EXAMPLES.items():
        r = render_synthetic_person(EXAMPLE_POSES[pose], size=size, yaw_deg=yaw, seed=seed)
        if check:
            from reroute.body.detect import detect_person

            detect_person(r.image, name=stem)  # raises if BlazePose does not find the person
        path = HERE / f"{stem}.png"
        save_image_atomic(path, r.image)
        written.append(path)
        print(path)
    return written


if __name__ == "__main__":
    main()
