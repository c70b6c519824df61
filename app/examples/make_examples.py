"""Write the demo's example photos: synthetic anny renders (our own, no licence question).

Run from the repository root::

    python app/examples/make_examples.py

It writes ``app/examples/synthetic_*.png`` (256 x 256 px): one body with the
arms down, one with an arm raised and a leg bent, one turned by 30 degrees
(:data:`reroute.pipelines.examples.EXAMPLE_PHOTOS`). Each is checked with
mediapipe's BlazePose so the examples are known to work.
"""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1]))

from reroute.io.images import save_image_atomic  # noqa: E402
from reroute.pipelines.examples import EXAMPLE_PHOTOS, render_example_photo  # noqa: E402


def main(size: int = 256, check: bool = True) -> list[Path]:
    written = []
    for stem in EXAMPLE_PHOTOS:
        image = render_example_photo(stem, size=size, check=check)
        path = HERE / f"{stem}.png"
        save_image_atomic(path, image)
        written.append(path)
        print(path)
    return written


if __name__ == "__main__":
    main()
