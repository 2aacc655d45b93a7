"""The ``ncodec`` command line: one parser, one ``fatal()``, exit codes documented in README.

Exit codes: 0 success, 1 internal error (a bug: please report it), 2 usage error (bad arguments,
unknown model, output exists without ``--force``), 3 input unreadable or unsupported, 4 corrupt,
truncated, unsupported-version or mismatched-model stream, 5 output cannot be written (missing or
read-only folder, full disk, a type the medium cannot be written as), 130/143 interrupted
(SIGINT/SIGTERM; no partial output is left). ``-`` names standard input or output.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import traceback
from pathlib import Path

EXIT_OK, EXIT_INTERNAL, EXIT_USAGE, EXIT_INPUT, EXIT_STREAM, EXIT_OUTPUT = 0, 1, 2, 3, 4, 5


class _Parser(argparse.ArgumentParser):
    """argparse that reports a usage error as one line (exit 2)."""

    def error(self, message: str):  # noqa: D102
        sys.stderr.write(f"{self.prog}: error: {message} (see --help)\n")
        raise SystemExit(EXIT_USAGE)


TRAINERS = {"image": "ncodec.models.train", "audio": "ncodec.models.train_audio"}
"""``ncodec train WHAT``: the trainer module, imported only when it runs (each has ``main(argv)``)."""


def _region(text: str) -> tuple[int, int, int, int]:
    """``X,Y,W,H`` -> a region in pixels (argparse type)."""
    try:
        x, y, w, h = (int(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected X,Y,W,H (four integers), not {text!r}") from None
    if min(x, y) < 0 or min(w, h) < 1:
        raise argparse.ArgumentTypeError(f"region {text}: X,Y must be >= 0 and W,H >= 1")
    return x, y, w, h


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("ncodec")
    except PackageNotFoundError:
        return "unknown"


def get_parser() -> argparse.ArgumentParser:
    from ncodec.codec.video_io import add_video_args  # torch- and numpy-free

    """The whole command line. Building it imports neither torch nor the evaluation or training
    code: ``eval`` and ``train`` hand their arguments to their own parsers when they run."""
    p = _Parser(prog="ncodec", description="Neural codecs for images, audio and video.")
    p.add_argument("--version", action="version", version=f"ncodec {_version()}")
    p.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    # --debug is also accepted after the subcommand (SUPPRESS keeps the top-level value otherwise)
    debug = _Parser(add_help=False)
    debug.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)

    def command(name: str, **kw) -> argparse.ArgumentParser:
        return sub.add_parser(name, parents=[debug], **kw)

    def folder_options(c: argparse.ArgumentParser) -> None:
        g = c.add_argument_group("folders (INPUT a folder, OUTPUT a folder)")
        g.add_argument("--jobs", "-j", type=int, default=1, help="files coded at once (processes)")
        g.add_argument("--engine", choices=("local", "ray"), default="local", help="ray: Ray Data tasks")
        g.add_argument("--address", default=None, help="Ray cluster address (default: a local Ray)")
        g.add_argument(
            "--manifest", type=Path, default=None, help="JSON Lines (default OUTPUT/manifest.jsonl)"
        )

    e = command("encode", help="encode a file (or a folder) to .ncb")
    e.add_argument("input", type=Path, help="a media file, a folder, or - (standard input)")
    e.add_argument("-o", "--output", type=Path, required=True, help="a .ncb file, a folder, or - (stdout)")
    rate = e.add_mutually_exclusive_group()
    rate.add_argument("--quality", "-q", type=float, help="0..100, higher is better (default 50)")
    rate.add_argument("--target-bpp", type=float, help="bits per pixel of the whole stream (images)")
    rate.add_argument("--target-psnr", type=float, help="RGB PSNR in dB (images)")
    rate.add_argument("--target-kbps", type=float, help="kbit/s of the whole stream (audio)")
    e.add_argument("--model", help="shipped model name (see 'ncodec models')")
    e.add_argument("--device", default="cpu", help="cpu or cuda")
    e.add_argument(
        "--tile", type=int, default=None, help="image segment edge in pixels (multiple of 64; default 1024)"
    )
    e.add_argument(
        "--effort",
        type=int,
        default=None,
        choices=(0, 1, 2, 3),
        help="encoder effort: 0 one pass (default); images 1-3 optimise the latents "
        "(about 10 s, 1 min, 10 min per 0.4-Mpixel image), audio 1 (about 0.5 s per second "
        "of audio and rate tried); same decoder",
    )
    e.add_argument("--force", "-f", action="store_true", help="overwrite the output")
    add_video_args(e, "encode")
    folder_options(e)

    d = command("decode", help="decode a .ncb file (or a folder of them)")
    d.add_argument("input", type=Path, help="a .ncb file, a folder, or - (standard input)")
    d.add_argument(
        "-o", "--output", type=Path, required=True, help="a file (type from its suffix), a folder, or -"
    )
    d.add_argument(
        "--format",
        default=None,
        help="output type (png, jpg, webp, tif, bmp, ppm; wav, flac, mp3, opus, ogg, m4a); "
        "default: the output's suffix, else png/wav",
    )
    d.add_argument("--device", default="cpu", help="cpu or cuda")
    d.add_argument("--force", "-f", action="store_true", help="overwrite the output")
    d.add_argument(
        "--region",
        type=_region,
        default=None,
        metavar="X,Y,W,H",
        help="image: decode only this rectangle (pixels), reading only the segments under it",
    )
    add_video_args(d, "decode")
    folder_options(d)

    i = command("info", help="describe a .ncb file")
    i.add_argument("input", type=Path)
    i.add_argument("--json", action="store_true")

    m = command("models", help="list the shipped models")
    m.add_argument("--json", action="store_true")

    b = command("bench", help="benchmarks against peers measured in the same run")
    bsub = b.add_subparsers(dest="what", required=True, parser_class=_Parser)
    be = bsub.add_parser("entropy", parents=[debug], help="rANS coders vs constriction and CompressAI")
    be.add_argument("--json", action="store_true")
    be.add_argument("--threads", type=int, default=None)
    be.add_argument("--large", action="store_true", help="code 10^7 symbols")
    be.add_argument("--symbols", type=int, default=None, help="number of symbols (default 192*48*64)")
    be.add_argument("--repeat", type=int, default=3, help="timed repetitions (the best is reported)")
    be.add_argument("--only", default=None, help="comma-separated coder names (default: all)")
    be.add_argument("--lanes", type=int, default=0, help="lanes per segment for ncodec (0: auto)")
    bi = bsub.add_parser(
        "image",
        parents=[debug],
        help="image encode/decode time vs CompressAI mbt2018-mean, and entropy coding on the latents",
    )
    bi.add_argument("--images", type=Path, default=None, help="folder of images (default: Kodak)")
    bi.add_argument("--limit", type=int, default=6)
    bi.add_argument("--device", default="cpu")
    bi.add_argument("--quality", type=float, default=50.0, help="ncodec quality 0..100 (default 50)")
    bi.add_argument("--json", action="store_true")
    bv = bsub.add_parser("video", parents=[debug], help="video fps at 540p/1080p vs x264 and x265 (same run)")
    bv.add_argument("--sizes", default="540p,1080p", help="comma-separated: 540p, 1080p")
    bv.add_argument("--frames", type=int, default=4, help="frames of the synthetic clip (default 4)")
    bv.add_argument("--quality", type=float, default=50.0)
    bv.add_argument("--threads", type=int, default=2)
    bv.add_argument("--device", default="cpu")
    bv.add_argument("--json", action="store_true")
    ba = bsub.add_parser("audio", parents=[debug], help="audio real-time factors on one CPU thread")
    ba.add_argument(
        "--input", type=Path, default=None, help="audio file (default: synthetic speech-like signal)"
    )
    ba.add_argument("--seconds", type=float, default=20.0)
    ba.add_argument("--sample-rate", type=int, default=16000)
    ba.add_argument("--channels", type=int, default=1)
    ba.add_argument("--target-kbps", type=float, default=None)
    ba.add_argument("--threads", type=int, default=1)
    ba.add_argument("--device", default="cpu")
    ba.add_argument("--json", action="store_true")

    t = command("train", help="train a model (ncodec train WHAT --help for its options)")
    t.add_argument("what", choices=sorted(TRAINERS))
    t.add_argument("args", nargs=argparse.REMAINDER, help="the trainer's options")

    ev = command(
        "eval", help="rate-distortion evaluation against classical codecs and anchors", add_help=False
    )
    ev.add_argument("args", nargs=argparse.REMAINDER, help="image|audio|video DIR [options] (see --help)")
    return p


_UNITS = {"bpp": "bpp", "psnr": "dB", "kbps": "kbit/s"}


def _encode_options(args: argparse.Namespace) -> dict:
    options = {
        "quality": args.quality,
        "target_bpp": args.target_bpp,
        "target_psnr": args.target_psnr,
        "target_kbps": args.target_kbps,
        "model": args.model,
        "device": args.device,
    }
    if args.tile is not None:
        options["tile"] = args.tile
    if args.effort:
        options["effort"] = args.effort
    # video options, passed only when given (other media do not take them)
    for k in ("gop", "size", "fps"):
        if getattr(args, k) is not None:
            options[k] = getattr(args, k)
    return options


def _run_folder(args: argparse.Namespace) -> int:
    """``encode DIR -o OUTDIR`` / ``decode DIR -o OUTDIR``: one line per failed file on stderr, a
    summary on stdout; the exit code is the first failure's (0 when every file is done)."""
    from ncodec.codec.folders import run_folder

    if str(args.output) == "-" or args.output.is_file():
        return fatal(f"{args.output}: the output of a folder must be a folder", EXIT_USAGE)
    if args.command == "encode":
        options = _encode_options(args)
    else:
        options = {"device": args.device, "format": args.format}

    def on_row(row: dict) -> None:
        if row["status"] == "error":
            sys.stderr.write(f"ncodec: error: {row['input']}: {row['error']}\n")

    r = run_folder(
        args.command,
        args.input,
        args.output,
        jobs=args.jobs,
        force=args.force,
        engine=args.engine,
        address=args.address,
        manifest=args.manifest,
        progress=True,
        on_row=on_row,
        **options,
    )
    done = "encoded" if args.command == "encode" else "decoded"
    print(
        f"{args.output}: {r.count('ok')} {done}, {r.count('skipped')} skipped (exist; --force redoes them), "
        f"{r.count('error')} failed, {r.seconds:.2f} s; manifest {r.manifest}"
    )
    return r.failed[0]["code"] if r.failed else EXIT_OK


def fatal(message: str, code: int) -> int:
    sys.stderr.write(f"ncodec: error: {message}\n")
    return code


def _run(args: argparse.Namespace) -> int:
    from ncodec.codec import api

    if args.command in ("encode", "decode"):
        if args.input.is_dir():
            return _run_folder(args)
        # the report goes to stderr when the output is standard output
        report = sys.stderr if str(args.output) == api.STDIO else sys.stdout
    if args.command == "encode":
        r = api.encode_file(args.input, args.output, force=args.force, progress=True, **_encode_options(args))
        reached = ""
        if r.target is not None:
            unit = _UNITS.get(r.target, "")
            reached = f", {r.target} {r.reached:.4g} {unit}"
            if r.clamped:
                sys.stderr.write(
                    f"ncodec: warning: the {r.target} target is out of this model's reach; "
                    f"the nearest stream reaches {r.reached:.4g} {unit}\n"
                )
        print(f"{r.output}: {r.bytes} bytes, {r.rate()}{reached}, {r.seconds:.2f} s", file=report)
        return EXIT_OK
    if args.command == "decode":
        r = api.decode_file(
            args.input,
            args.output,
            force=args.force,
            device=args.device,
            progress=True,
            format=args.format,
            start=args.start,
            frames=args.frames,
            region=args.region,
        )
        shape = {
            "audio": lambda s: f"{s[0]} ch x {s[1]} samples",
            "video": lambda s: f"{s[0]}x{s[1]}, {s[2]} frames",
        }.get(r.medium, lambda s: f"{s[0]}x{s[1]}")(r.size)
        print(f"{r.output}: {shape}, {r.seconds:.2f} s", file=report)
        return EXIT_OK
    if args.command == "info":
        inf = api.info(args.input)
        if args.json:
            print(json.dumps(inf))
        else:
            for k, v in inf.items():
                if k != "segment_bytes":
                    print(f"{k:>15}: {v}")
        return EXIT_OK
    if args.command == "models":
        ms = api.models()
        if args.json:
            print(json.dumps(ms, indent=1))
        else:
            for mi in ms:
                print(
                    f"{mi['name']:<14} {mi['medium']:<6} {mi['rate_range']}\n{'':<21}{mi['description']}\n"
                    f"{'':<21}card: {mi['card']}"
                )
        return EXIT_OK
    if args.command == "bench":
        if args.what == "entropy":
            from ncodec.entropy.bench import run_entropy_bench

            only = args.only.split(",") if args.only else None
            try:
                run_entropy_bench(
                    args.symbols,
                    args.threads,
                    args.repeat,
                    args.json,
                    large=args.large,
                    only=only,
                    lanes=args.lanes,
                )
            except ValueError as e:  # an unknown coder name, or bad sizes
                return fatal(str(e), EXIT_USAGE)
            return EXIT_OK
        if args.what == "video":
            from ncodec.codec.bench_video import SIZES, run_video_bench

            sizes = tuple(v.strip() for v in args.sizes.split(",") if v.strip())
            if not sizes or any(v not in SIZES for v in sizes):
                return fatal(f"--sizes: choose from {', '.join(SIZES)}", EXIT_USAGE)
            run_video_bench(
                sizes, args.frames, args.quality, threads=args.threads, device=args.device, as_json=args.json
            )
            return EXIT_OK
        if args.what == "audio":
            from ncodec.codec.bench_audio import run_audio_bench

            run_audio_bench(
                seconds=args.seconds,
                sample_rate=args.sample_rate,
                channels=args.channels,
                kbps=args.target_kbps,
                threads=args.threads,
                device=args.device,
                input=args.input,
                as_json=args.json,
            )
            return EXIT_OK
        from ncodec.codec.bench import run_image_bench

        run_image_bench(
            args.images, limit=args.limit, device=args.device, quality=args.quality, as_json=args.json
        )
        return EXIT_OK
    if args.command == "train":
        import importlib

        return importlib.import_module(TRAINERS[args.what]).main(args.args)
    if args.command == "eval":
        from ncodec.eval.cli import main as eval_main

        return eval_main(args.args)
    return fatal(f"unknown command {args.command}", EXIT_USAGE)


def _parse(argv: list[str]) -> argparse.Namespace:
    """Parses ``argv``; everything after ``eval`` goes to the evaluation's own parser untouched
    (argparse would take its ``--help`` for the top level's)."""
    for i, a in enumerate(argv):
        if not a.startswith("-"):
            if a == "eval":
                args = get_parser().parse_args(argv[: i + 1])
                args.args = argv[i + 1 :]
                return args
            break
    return get_parser().parse_args(argv)


class _Terminated(BaseException):
    """SIGTERM, raised in the main thread so that outputs being written are removed."""


def _on_sigterm(signum, frame):
    raise _Terminated()


def _one_line_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """Warnings (a dropped audio track, an animation's later frames) as one line each."""
    text = str(message).splitlines()[0] if str(message) else category.__name__
    sys.stderr.write(f"ncodec: warning: {text}\n")


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``ncodec`` console script; returns the exit code."""
    args = _parse(list(sys.argv[1:] if argv is None else argv))
    import warnings

    warnings.showwarning = _one_line_warning
    from ncodec.codec.errors import OutputError, OutputExistsError, exit_code

    try:
        previous = signal.signal(signal.SIGTERM, _on_sigterm)
    except ValueError:  # not the main thread: leave signals alone
        previous = None
    try:
        return _run(args)
    except KeyboardInterrupt:
        return fatal("interrupted", 130)
    except _Terminated:
        return fatal("terminated", 128 + signal.SIGTERM)
    except BrokenPipeError:
        return EXIT_OK
    except Exception as e:
        if args.debug:
            traceback.print_exc()
        msg = str(e).splitlines()[0] if str(e) else type(e).__name__
        code = exit_code(e)
        if isinstance(e, OutputExistsError):
            msg += "; use --force to overwrite"
        elif isinstance(e, OSError) and not isinstance(e, OutputError) and code == EXIT_INPUT:
            msg = f"{e.filename or ''}: {e.strerror or e}"
        if code == EXIT_INTERNAL:
            msg = f"internal error: {type(e).__name__}: {msg} (rerun with --debug and report it)"
        return fatal(msg, code)
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


if __name__ == "__main__":
    raise SystemExit(main())
