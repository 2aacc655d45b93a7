"""``ncodec eval {image,audio,video} DIR`` command line.

``add_eval_parser(subparsers)`` adds the ``eval`` subcommand to the main ``ncodec`` CLI;
``run_eval(args)`` executes it and returns an exit code (0 ok, 1 a requested codec failed, 2 usage
error, 3 unreadable input).
``python -m ncodec.eval image DIR ...`` runs it standalone.

Examples::

    ncodec eval image ../shared/data/images/kodak --codecs ncodec,jpeg,webp,avif,x265 --out runs/eval-img
    ncodec eval image kodak/ --codecs jpeg,x265 --limit 2 --crop 256 --qualities "jpeg=20,60;x265=37,27"
    ncodec eval audio ../shared/data/audio/speech/test/cmu_arctic --codecs opus,aac --limit 2
    ncodec eval video ../shared/data/video/openh264_ciscovt2people_320x192.mkv --codecs x264,x265 --frames 5
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

__all__ = ["add_eval_parser", "run_eval", "main"]

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INPUT = 0, 1, 2, 3

_DEFAULT_CODECS = {
    "image": "ncodec,jpeg,jpeg420,webp,avif,x265",
    "audio": "ncodec,opus,aac,mp3",
    "video": "ncodec,ncodec-intra,x264,x265,av1",
}


def _add_common(p: argparse.ArgumentParser, medium: str) -> None:
    p.add_argument("input", metavar="DIR", help=f"{medium} file or directory of {medium} files")
    p.add_argument(
        "--codecs",
        default=_DEFAULT_CODECS[medium],
        help=f"comma-separated codecs (default: {_DEFAULT_CODECS[medium]}); "
        "a requested codec that cannot run fails the evaluation (exit 1)",
    )
    p.add_argument(
        "--anchors",
        default=None,
        help="comma-separated published curves: JSON files or names in ../shared/anchors/<set> "
        "(default for images: vtm,bpg_444_x265_ycbcr,webp,jpeg; 'none' for none)",
    )
    p.add_argument(
        "--anchor",
        default=None,
        help="BD-rate reference: a codec of this run or an anchor name "
        "(default: x265, else the published BPG curve / first codec)",
    )
    p.add_argument("--out", default=None, help=f"output directory (default: ./ncodec-eval-{medium})")
    p.add_argument("--limit", type=int, default=None, help="only the first N files (sorted)")
    p.add_argument(
        "--qualities",
        "--rates",
        dest="qualities",
        default=None,
        help="rate points: '10,50,90' for all codecs or 'jpeg=10,50;x265=37,27' per codec "
        "(image: codec quality/QP; audio: kbps; video: CRF)",
    )
    p.add_argument("--jobs", type=int, default=1, help="parallel worker processes (default 1)")
    p.add_argument("--model", default=None, help="ncodec model name passed to ncodec.codec.encode")
    p.add_argument("--device", default="cpu", help="device for the ncodec codec (default cpu)")
    p.add_argument("--no-progress", action="store_true", help="disable the progress bar")
    p.add_argument("--quiet", action="store_true", help="do not print the summary table")


def add_eval_parser(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``eval`` subcommand (with ``image``, ``audio``, ``video``) to ``subparsers``."""
    ev = subparsers.add_parser(
        "eval",
        help="rate-distortion evaluation against classical codecs and anchors",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = ev.add_subparsers(dest="eval_medium", metavar="{image,audio,video}")
    sub.required = True
    pi = sub.add_parser("image", help="images: bpp vs PSNR / MS-SSIM")
    _add_common(pi, "image")
    pi.add_argument("--crop", type=int, default=None, help="centre-crop images to at most N×N (quick runs)")
    pi.add_argument("--x265-preset", default="slow", help="x265 preset for the HEVC intra baseline")
    pi.add_argument("--avif-speed", type=int, default=6, help="libavif encoder speed 0..10")
    pa = sub.add_parser("audio", help="audio: kbps vs PESQ / SI-SDR / STOI / mel distance")
    _add_common(pa, "audio")
    pa.add_argument("--max-seconds", type=float, default=None, help="truncate each file to N seconds")
    pv = sub.add_parser("video", help="video: bpp/kbps vs PSNR (RGB, YUV 6:1:1) / MS-SSIM")
    _add_common(pv, "video")
    pv.add_argument("--frames", type=int, default=None, help="only the first N frames of each video")
    pv.add_argument("--gop", type=int, default=250, help="intra period in frames (default 250)")


def run_eval(args: argparse.Namespace) -> int:
    """Run ``ncodec eval``; returns 0 on success, 2 on usage errors, 3 when input cannot be read."""
    from .anchors import resolve_anchors
    from .common import parse_rate_points

    medium = getattr(args, "eval_medium", None)
    if medium not in ("image", "audio", "video"):
        print("error: choose one of: image, audio, video", file=sys.stderr)
        return EXIT_USAGE
    inp = Path(args.input)
    if not inp.exists():
        print(f"error: input not found: {inp}", file=sys.stderr)
        return EXIT_INPUT
    codecs = [c.strip().lower() for c in args.codecs.split(",") if c.strip()]
    if not codecs:
        print("error: --codecs is empty", file=sys.stderr)
        return EXIT_USAGE
    if args.jobs < 1 or (args.limit is not None and args.limit < 1):
        print("error: --jobs and --limit must be >= 1", file=sys.stderr)
        return EXIT_USAGE
    out = Path(args.out) if args.out else Path.cwd() / f"ncodec-eval-{medium}"
    subdir = {"image": "image-kodak", "audio": "audio", "video": "video-uvg"}[medium]
    try:
        rate_points = parse_rate_points(args.qualities, codecs)
        anchors = resolve_anchors(args.anchors if (args.anchors or medium == "image") else "none", subdir)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_USAGE
    except FileNotFoundError as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_INPUT
    show = False if args.no_progress else None
    ncodec_kw = {k: v for k, v in (("model", args.model), ("device", args.device)) if v is not None}
    try:
        if medium == "image":
            from .baselines import IMAGE_CODECS
            from .run_image import run_image

            bad = [c for c in codecs if c not in IMAGE_CODECS]
            if bad:
                print(
                    f"error: unknown image codec(s) {bad}; choose from {sorted(IMAGE_CODECS)}",
                    file=sys.stderr,
                )
                return EXIT_USAGE
            kw = {
                "ncodec": ncodec_kw,
                **{f"ncodec-e{e}": ncodec_kw for e in (1, 2, 3)},
                **{f"ncodec-image-{m}": ncodec_kw for m in ("ctx-v1", "ctx-v2", "hp-v1")},
                "x265": {"preset": args.x265_preset},
                "hevc": {"preset": args.x265_preset},
                "avif": {"speed": args.avif_speed},
            }
            run_image(
                inp,
                out,
                codecs,
                anchors,
                args.anchor,
                rate_points,
                args.limit,
                args.crop,
                args.jobs,
                {k: v for k, v in kw.items() if k in codecs},
                show,
                args.quiet,
            )
        elif medium == "audio":
            from .baselines_audio import AUDIO_CODECS
            from .run_audio import run_audio

            bad = [c for c in codecs if c not in AUDIO_CODECS]
            if bad:
                print(
                    f"error: unknown audio codec(s) {bad}; choose from {sorted(AUDIO_CODECS)}",
                    file=sys.stderr,
                )
                return EXIT_USAGE
            run_audio(
                inp,
                out,
                codecs,
                anchors,
                args.anchor,
                rate_points,
                args.limit,
                args.jobs,
                {c: ncodec_kw for c in codecs if c.startswith("ncodec")},
                show,
                args.quiet,
                args.max_seconds,
            )
        else:
            from .baselines_video import VIDEO_CODECS
            from .run_video import NCODEC_VARIANTS, run_video

            bad = [c for c in codecs if c not in VIDEO_CODECS and c not in NCODEC_VARIANTS]
            if bad:
                print(
                    f"error: unknown video codec(s) {bad}; "
                    f"choose from {sorted(VIDEO_CODECS) + list(NCODEC_VARIANTS)}",
                    file=sys.stderr,
                )
                return EXIT_USAGE
            run_video(
                inp,
                out,
                codecs,
                anchors,
                args.anchor,
                rate_points,
                args.limit,
                args.frames,
                args.gop,
                args.jobs,
                show,
                args.quiet,
            )
    except FileNotFoundError as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_INPUT
    except RuntimeError as e:  # a requested codec failed (CodecFailedError)
        print(f"error: {e}", file=sys.stderr)
        return EXIT_FAILED
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_USAGE
    except OSError as e:  # includes PIL.UnidentifiedImageError and av.error.* (OSError subclasses)
        print(f"error: cannot read input: {e}", file=sys.stderr)
        return EXIT_INPUT
    print(f"results written to {out}", file=sys.stderr)
    return EXIT_OK


def main(argv: list[str] | None = None) -> int:
    """Standalone entry point (``python -m ncodec.eval``): ``eval`` is implied."""
    parser = argparse.ArgumentParser(prog="python -m ncodec.eval")
    sub = parser.add_subparsers(dest="command")
    add_eval_parser(sub)
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] != "eval":
        argv = ["eval", *argv]
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:
        return int(e.code or 0) if isinstance(e.code, int) else EXIT_USAGE
    return run_eval(args)
