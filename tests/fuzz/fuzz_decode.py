"""Coverage-guided fuzzer (atheris / libFuzzer) over the container parser and the symbol-level
decode of every medium: header, parameter block, segments, index, then each tile's / chunk's
entropy decode, exact hyper-synthesis and latent checks; it stops before the float synthesis, so
an execution takes milliseconds. ``make fuzz SECONDS=N`` runs it; ``one(data)`` is also what the
suite replays on ``tests/fuzz/corpus``.

    python tests/fuzz/fuzz_decode.py [libFuzzer flags] CORPUS_DIR [SEED_DIR ...]

Anything but a :class:`BitstreamError` (or a refusal of an unsupported medium) is a finding.
"""

from __future__ import annotations

import io
import sys

MAX_UNIT_LATENTS = 1 << 16  # skip the symbol decode of larger declared units (keeps runs fast)


def _setup():
    import torch

    torch.set_num_threads(1)
    from ncodec.models.registry import load_model

    return {name: load_model(name) for name in ("image-hp-v1", "image-ctx-v1", "audio-hp-v1")}


def one(data: bytes, models: dict) -> None:
    """Parses and symbol-decodes one stream; raises only on a finding."""
    from ncodec.bitstream import AudioParams, BitstreamError, ImageParams, StreamReader
    from ncodec.bitstream.params import PARAMS
    from ncodec.models.latent_codecs import split_parts

    try:
        r = StreamReader(io.BytesIO(data))
        h = r.header
        params = PARAMS[h.media].from_bytes(h.params)
        segments = r.segments()
        m = models.get(h.model_id)
        if m is None or h.media not in (1, 2):
            for _ in segments:  # container only
                pass
            return
        codec = m.latent_codec(threads=1)
        if isinstance(params, ImageParams) and h.media == 1 and params.layout == 1:
            from ncodec.codec.image import Picture, _decode_segments

            pic = Picture(params, m.config["m"], m.config["n"])
            if _latents(m.unit_shape(params.width, params.height)) <= MAX_UNIT_LATENTS:
                _decode_segments(m, pic, zip(range(len(pic.segments)), segments), lambda it: it)
            for _ in segments:
                pass
        elif isinstance(params, ImageParams) and h.media == 1 and m.model_id.startswith("image"):
            from ncodec.codec.image import tiles

            rects = tiles(params)
            for k, payload in enumerate(segments):
                if k < len(rects):
                    shape = m.unit_shape(rects[k][2], rects[k][3])
                    if _latents(shape) <= MAX_UNIT_LATENTS:
                        codec.decompress(split_parts(payload, codec.parts), shape)
        elif isinstance(params, AudioParams) and h.media == 2 and m.model_id.startswith("audio"):
            from ncodec.codec.audio import FRAME, check_layout

            lay = check_layout(params)
            for k, payload in enumerate(segments):
                if k < lay.chunks:
                    shape = m.unit_shape(params.channels, lay.region(k)[2] // FRAME)
                    if _latents(shape) <= MAX_UNIT_LATENTS:
                        codec.decompress(split_parts(payload, codec.parts), shape)
        else:
            for _ in segments:
                pass
    except BitstreamError:
        pass


def _latents(shape) -> int:
    n = 1
    for d in shape.y:
        n *= d
    return n


INSTRUMENTED = (
    "ncodec.bitstream.container",
    "ncodec.bitstream.params",
    "ncodec.models.latent_codecs.base",
    "ncodec.models.latent_codecs.hyperprior",
    "ncodec.entropy.coder",
    "ncodec.entropy.varint",
    "ncodec.codec.audio",
)


def _instrument(atheris) -> int:
    """Instruments every function and method of :data:`INSTRUMENTED` in place (ncodec's editable
    install loads through its own finder, which ``atheris.instrument_imports`` does not see)."""
    import importlib
    import inspect

    n = 0
    for name in INSTRUMENTED:
        mod = importlib.import_module(name)
        for obj in list(vars(mod).values()):
            if getattr(obj, "__module__", None) != name:
                continue
            funcs = [obj] if inspect.isfunction(obj) else []
            if inspect.isclass(obj):
                for v in vars(obj).values():
                    f = getattr(v, "__func__", v)
                    if isinstance(v, property):
                        f = v.fget
                    if inspect.isfunction(f):
                        funcs.append(f)
            for f in funcs:
                atheris.instrument_func(f)
                n += 1
    return n


def fix_checksums(data: bytes) -> bytes:
    """``data`` with its header and segment CRCs recomputed wherever the layout can be followed,
    so that mutations reach the parameter checks, the index checks and the symbol decode instead of
    dying at the first checksum."""
    import struct

    from ncodec.bitstream.container import _SEG, crc32, segment_crc

    b = bytearray(data)
    if len(b) < 12 or b[:4] != b"\x8aNCB":
        return bytes(b)
    version, body = b[4], struct.unpack_from("<H", b, 6)[0]
    end = 8 + body
    if end + 4 > len(b):
        return bytes(b)
    hcrc = crc32(bytes(b[:end]))
    struct.pack_into("<I", b, end, hcrc)
    pos, k = end + 4, 0
    while pos + _SEG.size <= len(b):
        kind, n, _ = _SEG.unpack_from(b, pos)
        if pos + _SEG.size + n > len(b):
            break
        payload = bytes(b[pos + _SEG.size : pos + _SEG.size + n])
        tag = k if kind == 0x53 else 0xFFFFFFFF
        crc = segment_crc(version if version in (1, 2) else 2, hcrc, tag, payload)
        struct.pack_into("<I", b, pos + 5, crc)
        k += kind == 0x53
        pos += _SEG.size + n
    return bytes(b)


def main() -> None:
    import atheris

    models = _setup()
    print(f"instrumented {_instrument(atheris)} functions", file=sys.stderr)

    def mutate(data: bytes, max_size: int, seed: int) -> bytes:
        out = atheris.Mutate(data, max_size)
        return fix_checksums(out) if seed % 8 else out  # 1 in 8 keeps its damaged checksums

    atheris.Setup(sys.argv, lambda data: one(data, models), custom_mutator=mutate)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
