"""The ``ncodec`` command line: one parser, one ``fatal()``, exit codes documented in README.

Exit codes: 0 success, 1 internal error (a bug: please report it), 2 usage error (bad arguments,
unknown model, output exists without ``--force``), 3 input unreadable or unsupported, 4 corrupt,
truncated, unsupported-version or mismatched-model stream.
"""

from __future__ import annotations

import argparse
import json
import sys
import traceback
from pathlib import Path

EXIT_OK, EXIT_INTERNAL, EXIT_USAGE, EXIT_INPUT, EXIT_STREAM = 0, 1, 2, 3, 4


class _Parser(argparse.ArgumentParser):
    """argparse that reports a usage error as one line (exit 2)."""

    def error(self, message: str):  # noqa: D102
        sys.stderr.write(f"{self.prog}: error: {message} (see --help)\n")
        raise SystemExit(EXIT_USAGE)


def get_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="ncodec", description="Neural codecs for images and audio (video to come).")
    p.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)

    e = sub.add_parser("encode", help="encode a file to .ncb")
    e.add_argument("input", type=Path)
    e.add_argument("-o", "--output", type=Path, required=True)
    rate = e.add_mutually_exclusive_group()
    rate.add_argument("--quality", "-q", type=float, help="0..100, higher is better (default 50)")
    rate.add_argument("--target-bpp", type=float, help="bits per pixel of the whole stream")
    rate.add_argument("--target-psnr", type=float, help="RGB PSNR in dB (images)")
    rate.add_argument("--target-kbps", type=float, help="kbit/s (audio, video)")
    e.add_argument("--model", help="shipped model name (see 'ncodec models')")
    e.add_argument("--device", default="cpu", help="cpu or cuda")
    e.add_argument("--tile", type=int, default=1024, help="tile edge in pixels (multiple of 64)")
    e.add_argument("--force", "-f", action="store_true", help="overwrite the output")

    d = sub.add_parser("decode", help="decode a .ncb file")
    d.add_argument("input", type=Path)
    d.add_argument("-o", "--output", type=Path, required=True)
    d.add_argument("--device", default="cpu")
    d.add_argument("--force", "-f", action="store_true")

    i = sub.add_parser("info", help="describe a .ncb file")
    i.add_argument("input", type=Path)
    i.add_argument("--json", action="store_true")

    m = sub.add_parser("models", help="list the shipped models")
    m.add_argument("--json", action="store_true")

    b = sub.add_parser("bench", help="benchmarks against peers measured in the same run")
    bsub = b.add_subparsers(dest="what", required=True, parser_class=_Parser)
    be = bsub.add_parser("entropy", help="rANS coders vs constriction and CompressAI")
    be.add_argument("--json", action="store_true")
    be.add_argument("--threads", type=int, default=None)
    be.add_argument("--large", action="store_true", help="code 10^7 symbols")
    be.add_argument("--symbols", type=int, default=None, help="number of symbols (default 192*48*64)")
    be.add_argument("--repeat", type=int, default=3, help="timed repetitions (the best is reported)")
    be.add_argument("--only", default=None, help="comma-separated coder names (default: all)")
    be.add_argument("--lanes", type=int, default=0, help="lanes per segment for ncodec (0: auto)")
    bi = bsub.add_parser(
        "image", help="image encode/decode time vs CompressAI mbt2018-mean, and entropy coding on the latents"
    )
    bi.add_argument("--images", type=Path, default=None, help="folder of images (default: Kodak)")
    bi.add_argument("--limit", type=int, default=6)
    bi.add_argument("--device", default="cpu")
    bi.add_argument("--quality", type=float, default=50.0, help="ncodec quality 0..100 (default 50)")
    bi.add_argument("--json", action="store_true")
    ba = bsub.add_parser("audio", help="audio real-time factors on one CPU thread")
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

    t = sub.add_parser("train", help="train a model")
    tsub = t.add_subparsers(dest="what", required=True, parser_class=_Parser)
    from ncodec.models import train, train_audio

    train.add_train_args(tsub.add_parser("image", help="the image codec"))
    train_audio.add_train_args(tsub.add_parser("audio", help="the audio codec"))

    try:
        from ncodec.eval.cli import add_eval_parser

        add_eval_parser(sub)
    except ImportError:  # evaluation extras missing: the codec itself still works
        pass
    return p


def fatal(message: str, code: int) -> int:
    sys.stderr.write(f"ncodec: error: {message}\n")
    return code


def _run(args: argparse.Namespace) -> int:
    from ncodec.codec import api

    if args.command == "encode":
        r = api.encode_file(
            args.input,
            args.output,
            force=args.force,
            quality=args.quality,
            target_bpp=args.target_bpp,
            target_psnr=args.target_psnr,
            target_kbps=args.target_kbps,
            model=args.model,
            device=args.device,
            tile=args.tile,
            progress=True,
        )
        print(f"{r.output}: {r.bytes} bytes, {r.rate()}, {r.seconds:.2f} s")
        return EXIT_OK
    if args.command == "decode":
        r = api.decode_file(args.input, args.output, force=args.force, device=args.device, progress=True)
        shape = f"{r.size[0]} ch x {r.size[1]} samples" if r.medium == "audio" else f"{r.size[0]}x{r.size[1]}"
        print(f"{r.output}: {shape}, {r.seconds:.2f} s")
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
        if args.what == "audio":
            from ncodec.models.train_audio import run_train
        else:
            from ncodec.models.train import run_train
        return run_train(args)
    if args.command == "eval":
        from ncodec.eval.cli import run_eval

        return run_eval(args)
    return fatal(f"unknown command {args.command}", EXIT_USAGE)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``ncodec`` console script; returns the exit code."""
    args = get_parser().parse_args(argv)
    from ncodec.bitstream.errors import BitstreamError
    from ncodec.codec.errors import OutputExistsError, UnknownModelError, UnsupportedInputError
    from ncodec.models.image_model import ModelFileError

    try:
        return _run(args)
    except KeyboardInterrupt:
        return fatal("interrupted", 130)
    except BrokenPipeError:
        return EXIT_OK
    except Exception as e:
        if args.debug:
            traceback.print_exc()
        msg = str(e).splitlines()[0] if str(e) else type(e).__name__
        if isinstance(e, BitstreamError):
            return fatal(msg, EXIT_STREAM)
        if isinstance(e, UnsupportedInputError | ModelFileError):
            return fatal(msg, EXIT_INPUT)
        if isinstance(e, OutputExistsError | UnknownModelError | ValueError):
            return fatal(msg, EXIT_USAGE)
        if isinstance(e, OSError):
            return fatal(f"{e.filename or ''}: {e.strerror or e}", EXIT_INPUT)
        return fatal(
            f"internal error: {type(e).__name__}: {msg} (rerun with --debug and report it)", EXIT_INTERNAL
        )


if __name__ == "__main__":
    raise SystemExit(main())
