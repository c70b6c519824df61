"""Keeping the native libraries' log lines off the user's terminal.

mediapipe (TFLite, absl), warp-lang and anny print start-up banners and
warnings from C/C++ straight to file descriptors 1 and 2 (``INFO: Created
TensorFlow Lite XNNPACK delegate``, ``W0000 ... Feedback manager``, ``Warp
1.19.0 initialized``, ``Warp CUDA warning: ...``). Python's
``contextlib.redirect_stderr`` cannot catch them, and environment variables
such as ``GLOG_minloglevel`` do not reach absl's logger. :func:`quiet_native`
points both descriptors at ``/dev/null`` around the calls that print, so a
bad input gives exactly one ``error:`` line and nothing else.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import os
import sys
import threading
from collections.abc import Iterator

__all__ = ["quiet_native"]

_LOCK = threading.RLock()


@contextlib.contextmanager
def quiet_native() -> Iterator[None]:
    """Silence file descriptors 1 and 2 (C-level stdout and stderr) for the block.

    Python-level output written inside the block is lost too; exceptions pass
    through and print after the descriptors are restored. Process-wide (file
    descriptors are shared by all threads), so keep the block short. Where
    stdout/stderr have no file descriptor (e.g. under pytest's capture), it
    does nothing.
    """
    with _LOCK:
        streams = [s for s in (sys.stdout, sys.stderr) if s is not None]
        try:
            fds = sorted({s.fileno() for s in streams})
        except (AttributeError, OSError, ValueError):
            yield
            return
        for s in streams:
            s.flush()
        saved = [os.dup(fd) for fd in fds]
        devnull = os.open(os.devnull, os.O_WRONLY)
        try:
            for fd in fds:
                os.dup2(devnull, fd)
            yield
        finally:
            for s in streams:
                with contextlib.suppress(Exception):
                    s.flush()
            _flush_c_stdio()
            for fd, keep in zip(fds, saved, strict=True):
                os.dup2(keep, fd)
                os.close(keep)
            os.close(devnull)


@functools.lru_cache(maxsize=1)
def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(None)


def _flush_c_stdio() -> None:
    """``fflush(NULL)``: C stdio buffers written inside the block go to /dev/null too."""
    with contextlib.suppress(Exception):
        _libc().fflush(None)
