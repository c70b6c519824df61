"""``python -m reroute``: see :mod:`reroute.cli`."""

import os
import sys

os.environ.setdefault("GLOG_minloglevel", "2")  # keep mediapipe's C++ logging quiet
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from reroute.cli import main  # noqa: E402

sys.exit(main())
