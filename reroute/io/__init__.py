"""Input and output: every byte reroute reads from or writes to disk goes through here.

* :mod:`reroute.io.images`: :func:`~reroute.io.images.load_image` (any photo
  -> (H, W, 3) uint8 RGB, or a one-line :class:`~reroute.errors.InputError`),
  the size limits, :func:`~reroute.io.images.save_image_atomic` and
  :func:`~reroute.io.images.to_uint8`, the one float->uint8 conversion;
* :mod:`reroute.io.iuv`: DensePose IUV maps (uint8 PNG, ``cv2.imread`` gives
  I, U, V with U, V scaled by 255);
* :mod:`reroute.io.files`: the one atomic writer
  (:func:`~reroute.io.files.atomic_path`, :func:`~reroute.io.files.write_atomic`);
* :mod:`reroute.io.video`: H.264 MP4 writing and probing (PyAV).
"""

from reroute.io.files import atomic_path, write_atomic, write_bytes_atomic, write_text_atomic
from reroute.io.images import LoadedImage, load_image, save_image_atomic, to_uint8
from reroute.io.iuv import read_iuv, write_iuv
from reroute.io.video import probe_video, write_mp4

__all__ = [
    "LoadedImage",
    "load_image",
    "save_image_atomic",
    "to_uint8",
    "read_iuv",
    "write_iuv",
    "atomic_path",
    "write_atomic",
    "write_bytes_atomic",
    "write_text_atomic",
    "write_mp4",
    "probe_video",
]
