"""Start the reroute Gradio app: ``python launch.py [--host H] [--port P] [--share]``.

Thin on purpose: it parses the options, quiets the native libraries' logs,
builds the app with :func:`app.ui.build_app` and serves it.
"""

from __future__ import annotations

import argparse
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
        help="folder of trained weights (default checkpoints; not used yet)",
    )  # fmt: skip
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    # Before mediapipe / TensorFlow Lite load: keep their native logs to errors.
    os.environ.setdefault("GLOG_minloglevel", "2")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

    from app.ui import build_app

    demo = build_app(device=args.device)
    _, local_url, share_url = demo.launch(
        server_name=args.host, server_port=args.port, share=args.share,
        prevent_thread_lock=True, quiet=True,
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
