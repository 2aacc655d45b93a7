"""A checked-in audio-hp-v1 stream must keep decoding to the same latents and (nearly) the same samples,
and the encoder must keep writing its bytes.

Regenerate only with a format version bump or a new model id:
``NCODEC_REGEN_GOLDEN=1 pytest tests/test_golden_audio.py``.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np
import pytest

import ncodec.codec as nc
from ncodec.bitstream import AudioParams, read_stream
from ncodec.bitstream.container import upgrade
from ncodec.codec import audio
from ncodec.codec.audio_io import read_audio, write_audio
from ncodec.models.registry import load_model

GOLDEN = Path(__file__).parent / "golden"
SAMPLE = Path(__file__).parent / "data" / "librispeech_103-1240-0000_4s.flac"
SECONDS = 2.5  # two chunks: the crossfade is covered


def latent_digest(data: bytes) -> str:
    """SHA-256 over every chunk's dequantised latents in 2**-8 units (exact integers)."""
    m = load_model("audio-hp-v1")
    header, segments = read_stream(data)
    p = AudioParams.from_bytes(header.params)
    h = hashlib.sha256()
    for k, payload in enumerate(segments):
        ys_hat = audio.decode_chunk_latents(m, payload, p, k)
        h.update((ys_hat * 256).numpy().astype("<i8").tobytes())
    return h.hexdigest()


def _source() -> tuple[np.ndarray, int]:
    x, sr = read_audio(SAMPLE)
    return x[:, : int(SECONDS * sr)], sr


def test_golden_audio_stream():
    stream, meta, ref = GOLDEN / "audio_v1.ncb", GOLDEN / "audio_v1.json", GOLDEN / "audio_v1.flac"
    if os.environ.get("NCODEC_REGEN_GOLDEN") == "1":
        data = nc.encode(_source(), quality=50, model="audio-hp-v1")
        stream.write_bytes(data)
        y, sr = nc.decode(data)
        write_audio(ref, y, sr)
        meta.write_text(
            json.dumps({"latents_sha256": latent_digest(data), "bytes": len(data)}, indent=1) + "\n"
        )
    if not stream.exists():
        pytest.fail("golden stream missing: regenerate with NCODEC_REGEN_GOLDEN=1")
    data = stream.read_bytes()
    expect = json.loads(meta.read_text())
    assert len(data) == expect["bytes"]
    assert latent_digest(data) == expect["latents_sha256"]
    y, sr = nc.decode(data)
    r, sr_ref = read_audio(ref)
    assert sr == sr_ref and y.shape == r.shape
    assert np.abs(y - r).max() <= 3 / 32768  # 16-bit reference; float synthesis may round differently


def test_golden_audio_reencodes_to_the_same_bytes():
    # the golden is format version 1: the same header fields and payloads in today's version
    assert nc.encode(_source(), quality=50, model="audio-hp-v1") == upgrade(
        (GOLDEN / "audio_v1.ncb").read_bytes()
    )
