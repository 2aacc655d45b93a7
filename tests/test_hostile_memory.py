"""The decoder's memory budget (issue 20, item 3; README "Memory", FORMAT.md): crafted streams
that declare the largest tile, audio chunk, channel count and sample rate the format allows decode
in a child process whose peak RSS stays under :data:`BOUND`, or are refused with a typed error."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

BOUND = 3 << 30
"""Bytes of peak RSS of a whole decoding process, torch and models included (README, "Memory").
Measured on 2026-12-02: a 4096 tile 2.48 GB (9.6 GB before block synthesis; about 1.7 GB of it is
the exact hyper-synthesis of the whole tile), 2**28 pixels declared 2.51 GB, 8 x 192 kHz audio in
10 s chunks 1.07 GB."""

CHILD = textwrap.dedent(
    """
    import sys
    import numpy as np
    import torch

    torch.set_num_threads(1)
    from ncodec import entropy
    from ncodec.bitstream import AudioParams, Header, ImageParams, write_stream
    from ncodec.entropy.varint import write_varint
    from ncodec.models.registry import load_model

    def zero_payload(m, shape):
        z = np.zeros(int(np.prod(shape.z)), np.int32)
        zd = entropy.encode(z, m.z_indexes(shape.z), m.z_tables)
        _, idx = m.hyper(torch.zeros(shape.z, dtype=torch.int64), shape.y)
        idx = idx.to(torch.int32).numpy().reshape(-1)
        yd = entropy.encode(np.zeros(idx.size, np.int32), idx, m.y_tables)
        head = bytearray()
        write_varint(head, len(zd))
        return bytes(head) + zd + yd

    case, out = sys.argv[1], sys.argv[2]
    if case.startswith("picture"):  # version 3: one picture, zero latents in segments of 4096
        from ncodec.codec.image import Picture
        from ncodec.models.latent_codecs import join_parts
        m = load_model("image-hp-v1")
        w, present = {"picture_8000": (8000, 4), "picture_max_pixels": (16384, 1)}[case]
        p = ImageParams(w, w, 3, 8, 5000, 4096)
        pic = Picture(p, m.config["m"], m.config["n"])
        codec = m.latent_codec()
        z = torch.zeros(pic.z_shape, dtype=torch.int64)
        payloads = []
        for k, rect in enumerate(pic.segments[:present]):
            prior = pic.prior(codec, z, rect)
            parts = codec.compress_latents(prior[0], prior).parts
            payloads.append(join_parts(([codec.code_hyper(z)] if k == 0 else []) + parts))
    elif case.startswith("image"):
        m = load_model("image-hp-v1")
        w, h, tile, present = {"image_tile4096": (4096, 4096, 4096, 1),
                               "image_max_pixels": (16384, 16384, 4096, 1)}[case]
        p = ImageParams(w, h, 3, 8, 5000, tile, layout=0)  # versions 1-2: independent tiles
        payloads = [zero_payload(m, m.unit_shape(tile, tile))] * present
    else:
        from ncodec.codec.audio import FRAME, check_layout
        m = load_model("audio-hp-v1")
        sr = 192000
        p = AudioParams(sr, 8, 0, 120, 2 * 10 * sr, 10 * sr)  # 8 channels, 192 kHz, two 10 s chunks
        lay = check_layout(p)
        payloads = [zero_payload(m, m.unit_shape(8, lay.region(k)[2] // FRAME)) for k in range(2)]
    data = write_stream(Header(2 if case.startswith("audio") else 1, m.model_id, m.digest[:16],
                               p.to_bytes()), payloads)
    open(out + ".ncb", "wb").write(data)
    """
)

DECODE = textwrap.dedent(
    """
    import json, resource, sys, time
    import torch

    torch.set_num_threads(1)
    import ncodec.codec as nc
    from ncodec.bitstream import BitstreamError

    out = sys.argv[2]
    data = open(out + ".ncb", "rb").read()
    t0 = time.time()
    nc.decode(open(sys.argv[3], "rb").read()) if len(sys.argv) > 3 else None  # warm up: models loaded
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    try:
        r = nc.decode(data)
        outcome = "decoded"
    except BitstreamError as e:
        outcome = type(e).__name__
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    json.dump({"outcome": outcome, "peak": peak, "before_decode": base, "seconds": time.time() - t0,
               "stream_bytes": len(data)}, open(out, "w"))
    """
)


def _run(case: str, tmp_path: Path) -> dict:
    """Crafts the stream in one child, decodes it in another (whose peak RSS is the decoder's,
    models and torch included)."""
    out = tmp_path / f"{case}.json"
    medium = "audio" if case.startswith("audio") else "image"
    golden = Path(__file__).parent / "golden" / f"{medium}_v1.ncb"
    env = {"OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"}
    for script, extra in ((CHILD, []), (DECODE, [str(golden)])):
        run = subprocess.run(
            [sys.executable, "-c", script, case, str(out), *extra],
            capture_output=True,
            text=True,
            timeout=1800,
            env=env,
        )
        assert run.returncode == 0, run.stderr[-3000:]
    res = json.loads(out.read_text())
    print(case, res)
    return res


@pytest.mark.slow
def test_largest_tile_decodes_within_the_bound(tmp_path: Path) -> None:
    """One 4096 x 4096 tile (the largest a header may declare; 9.6 GB before block synthesis)."""
    res = _run("image_tile4096", tmp_path)
    assert res["outcome"] == "decoded" and res["peak"] < BOUND, res


@pytest.mark.slow
def test_largest_audio_chunk_decodes_within_the_bound(tmp_path: Path) -> None:
    """8 channels at 192 kHz in 10 s chunks (the largest chunk a decoder accepts)."""
    res = _run("audio_max", tmp_path)
    assert res["outcome"] == "decoded" and res["peak"] < BOUND, res


@pytest.mark.slow
def test_largest_image_with_missing_tiles_is_refused_within_the_bound(tmp_path: Path) -> None:
    """2**28 pixels declared, one tile present: CorruptStreamError after that tile, and the
    header's size was not turned into touched memory on the way."""
    res = _run("image_max_pixels", tmp_path)
    assert res["outcome"] == "CorruptStreamError" and res["peak"] < BOUND, res


@pytest.mark.slow
def test_largest_picture_segments_decode_within_the_bound(tmp_path: Path) -> None:
    """Version 3: an 8000 x 8000 picture in four 4096-pixel segments (the largest a header may
    declare); latents are decoded a row of segments at a time and synthesised in windows."""
    res = _run("picture_8000", tmp_path)
    assert res["outcome"] == "decoded" and res["peak"] < BOUND, res


@pytest.mark.slow
def test_largest_picture_with_missing_segments_is_refused_within_the_bound(tmp_path: Path) -> None:
    """2**28 pixels declared as one picture, one segment present: CorruptStreamError."""
    res = _run("picture_max_pixels", tmp_path)
    assert res["outcome"] == "CorruptStreamError" and res["peak"] < BOUND, res
