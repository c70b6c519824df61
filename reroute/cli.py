"""Command line: ``python -m reroute {transfer, correspond}``.

Errors caused by the input print one line ``error: ...`` on stderr and exit
with code 2; nothing is written at the output path in that case (outputs are
written to a temporary file and renamed into place).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .errors import InputError

EXIT_INPUT = 2


def _check_out(path: str, *, png_only: bool = False) -> Path:
    p = Path(path)
    ext = p.suffix.lower()
    allowed = (".png",) if png_only else (".png", ".jpg", ".jpeg")
    if ext not in allowed:
        raise InputError(f"output {path} must end in {' or '.join(allowed)}")
    if p.is_dir():
        raise InputError(f"output {path} is a directory")
    return p


def _cmd_transfer(args) -> int:
    from .correspondence import iuv_to_rgb
    from .imageio import save_image_atomic, write_iuv
    from .pipeline import PoseTransferPipeline
    from .warp import continuous_to_atlas

    out = _check_out(args.out)
    pipe = PoseTransferPipeline(size=args.size, texture_size=args.texture_size)
    res = pipe(args.source, args.target)
    for n in res.notices:
        print(f"note: {n}", file=sys.stderr)
    if args.debug_dir:
        d = Path(args.debug_dir)
        d.mkdir(parents=True, exist_ok=True)
        for who, a in (("source", res.source), ("target", res.target)):
            iuv = a.correspondence.to_iuv()
            write_iuv(d / f"iuv_{who}.png", iuv)
            save_image_atomic(d / f"iuv_{who}_vis.png", iuv_to_rgb(iuv))
        save_image_atomic(d / "texture_partial.png", res.partial_texture.to_uint8())
        save_image_atomic(d / "texture_completed.png", res.texture.to_uint8())
        atlas = continuous_to_atlas(res.texture.pixels, tile=128)
        save_image_atomic(
            d / "atlas_completed.png", (atlas.clip(0, 1) * 255).round().astype("uint8")
        )
        save_image_atomic(d / "warped.png", res.warped)
        (d / "timings.json").write_text(json.dumps(res.timings, indent=1))
    save_image_atomic(out, res.image)
    print(
        json.dumps({"out": str(out), "timings_s": {k: round(v, 3) for k, v in res.timings.items()}})
    )
    return 0


def _cmd_correspond(args) -> int:
    import cv2

    from .imageio import load_image, write_iuv
    from .pipeline import analyse_person

    out = _check_out(args.out, png_only=True)
    loaded = load_image(args.image, name=args.image)
    a = analyse_person(loaded, size=args.size, name=args.image)
    for n in a.notices:
        print(f"note: {n}", file=sys.stderr)
    corr = a.correspondence
    H, W = a.original_size
    if corr.shape != (H, W):
        # re-render at the photo's resolution: exact, not an upsampled label map
        from .correspondence import render_correspondence

        mask = cv2.resize(a.observation.mask, (W, H), interpolation=cv2.INTER_LINEAR) > 0.5
        corr = render_correspondence(a.body.resized(W, H), mask)
    write_iuv(out, corr.to_iuv())
    print(json.dumps({"out": str(out), "keypoint_error_px": round(a.body.keypoint_error_px, 2)}))
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m reroute", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True)
    t = sub.add_parser("transfer", help="re-render the source person in the target person's pose")
    t.add_argument("--source", required=True, help="photo of the person to re-render")
    t.add_argument("--target", required=True, help="photo of the person whose pose to take")
    t.add_argument("--out", required=True, help="output image (.png/.jpg), target's resolution")
    t.add_argument("--size", type=int, default=256, help="working size, longer side in px")
    t.add_argument("--texture-size", type=int, default=256, help="UV texture side in texels")
    t.add_argument("--debug-dir", help="write intermediate maps (IUV, textures, warp) here")
    t.set_defaults(func=_cmd_transfer)
    c = sub.add_parser("correspond", help="write a photo's IUV map (DensePose on-disk convention)")
    c.add_argument("image", help="photo of one person")
    c.add_argument("--out", required=True, help="IUV PNG: cv2.imread gives channels I, U, V")
    c.add_argument("--size", type=int, default=256, help="working size for pose fitting, px")
    c.set_defaults(func=_cmd_correspond)
    return p


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the process exit code (0 ok, 2 bad input)."""
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except InputError as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_INPUT
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
