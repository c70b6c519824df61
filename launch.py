"""Start the reroute Gradio app.

``python launch.py [--host H] [--port P] [--share] [--device D] [--checkpoints DIR]
[--concurrency N] [--max-upload-mb MB] [--timeout S] [--compile-fit]``.

Thin on purpose: it parses the options, quiets the native libraries' logs,
builds the app with :func:`app.ui.build_app` (limits: :class:`app.services.AppLimits`)
and serves it.
"""

from __future__ import annotations

import argparse
import ctypes
import os
import sys


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="Serve the reroute Gradio app.")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=7860, help="port (default 7860)")
    p.add_argument("--share", action="store_true", help="also open a public Gradio share link")
    p.add_argument("--device", default="cpu", help="torch device for the models (default cpu)")
    p.add_argument(
        "--checkpoints", default="checkpoints", metavar="DIR",
        help="folder of trained weights (default checkpoints); decides which networks are offered",
    )  # fmt: skip
    p.add_argument("--concurrency", type=int, default=8,
                   help="requests processed at the same time (default 8; their body fits "
                        "share batches)")  # fmt: skip
    p.add_argument("--max-upload-mb", type=int, default=20,
                   help="largest upload in MB (default 20)")  # fmt: skip
    p.add_argument("--timeout", type=float, default=300.0,
                   help="seconds after which a request is stopped between stages (default 300)")  # fmt: skip
    p.add_argument("--compile-fit", action="store_true",
                   help="compile the body fit's step with torch.compile at start-up (needs a C++ "
                        "compiler; about 2 minutes the first time on a machine, about 10 s "
                        "after): each transfer's fit then takes about half the time")  # fmt: skip
    return p.parse_args(argv)


#: seconds a thread may hold the GIL before a waiting thread gets it (Python's default
#: is 0.005). Under concurrent requests the body fit's thread gives the GIL up at
#: every torch call and then waited up to 5 ms to get it back; at 0.5 ms the
#: 8-request load test's p95 fell from 10.2 to 8.3 s (``benchmarks/app_load.py``).
GIL_SWITCH_INTERVAL_S = 0.0005


#: glibc malloc arenas the server may use (glibc's default: 8 per core). Each request
#: thread otherwise takes an arena of its own, and memory freed in one arena is not
#: reused by the others: under the 8-request load test (``benchmarks/app_load.py
#: --bursts 3``, alternating) the server's peak RSS was 1.78-1.80 GB with 2 arenas
#: against 2.00-2.06 GB with the default, at the same latency (p95 per burst 3.25-4.81 s
#: with, 3.46-4.96 s without).
MALLOC_ARENAS = 2

#: ``M_ARENA_MAX`` of glibc's ``<malloc.h>``
_M_ARENA_MAX = -8


def limit_malloc_arenas(n: int = MALLOC_ARENAS) -> bool:
    """Cap glibc's malloc arenas at ``n`` (``mallopt(M_ARENA_MAX, n)``) for the threads
    started from now on. Returns False, changing nothing, when the environment variable
    ``MALLOC_ARENA_MAX`` already decides it or the C library has no ``mallopt`` (not glibc)."""
    if "MALLOC_ARENA_MAX" in os.environ:
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    return bool(mallopt(_M_ARENA_MAX, n))


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    sys.setswitchinterval(GIL_SWITCH_INTERVAL_S)
    limit_malloc_arenas()  # before any worker thread exists
    # Before mediapipe / TensorFlow Lite load: keep their native logs to errors.
    os.environ.setdefault("GLOG_minloglevel", "2")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    if args.compile_fit:  # reroute.body.fit.COMPILE_ENV: every default FitConfig compiles
        os.environ["REROUTE_COMPILE_FIT"] = "1"

    import torch  # here: heavy, and only needed once the options are parsed

    try:
        device = torch.device(args.device)
    except (RuntimeError, ValueError):
        print(
            f"error: --device {args.device!r} is not a torch device (e.g. cpu, cuda)",
            file=sys.stderr,
        )
        return 2
    if device.type == "cuda" and not torch.cuda.is_available():
        print(f"error: --device {args.device}: no CUDA device is available here", file=sys.stderr)
        return 2

    # here, after the log settings above: the app loads gradio, torch and mediapipe
    from app.services import AppLimits
    from app.ui import build_app

    limits = AppLimits(max_upload_mb=args.max_upload_mb, timeout_s=args.timeout)
    demo = build_app(device=args.device, checkpoints=args.checkpoints, limits=limits,
                     concurrency=args.concurrency)  # fmt: skip
    _, local_url, share_url = demo.launch(
        server_name=args.host, server_port=args.port, share=args.share,
        prevent_thread_lock=True, quiet=True, max_file_size=f"{args.max_upload_mb}mb",
    )  # fmt: skip
    print(f"reroute app running at {local_url}", flush=True)
    if share_url:
        print(f"public link: {share_url}", flush=True)
    try:
        demo.block_thread()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
