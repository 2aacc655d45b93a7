"""Weight export end to end on tiny random models: float training model -> integer hyper-synthesis
and tables (export) -> weights file -> loaded through the architecture registry -> encode ->
decode. Guards the path a retrained model takes to ship, without the shipped weights."""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image

from ncodec.codec.audio import AudioCodec
from ncodec.codec.image import ImageCodec
from ncodec.models.registry import ARCHITECTURES, load_weights


def _image_model(tmp_path):
    from ncodec.models.image import ImageHyperprior
    from ncodec.models.image_model import export

    torch.manual_seed(0)
    trained = ImageHyperprior(n=16, m=24, lambdas=(0.01, 0.05))
    out = export(trained, torch.rand(2, 3, 64, 64), "tiny-image")
    path = tmp_path / "tiny-image.safetensors"
    out.save(path)
    return out, load_weights(path)


def test_image_export_round_trip(tmp_path):
    exported, m = _image_model(tmp_path)
    assert type(m) is ARCHITECTURES["image-hyperprior"] and m.digest == exported.digest
    rng = np.random.default_rng(0)
    img = Image.fromarray(rng.integers(0, 256, (70, 90, 3), dtype=np.uint8))
    codec = ImageCodec()
    for quality in (0.0, 60.0, 100.0):
        enc = codec.analyse(m, img, tile=64).encode(quality)
        assert len(enc.payloads) == enc.params.segments == 4
        out = codec.decode(m, enc.params, enc.payloads)
        assert out.size == img.size
        # the encoder's reconstruction is what the decoder rebuilds
        assert np.array_equal(np.asarray(out), np.asarray(enc.reconstruct()))


def test_audio_export_round_trip(tmp_path):
    from ncodec.models.audio import AudioHyperprior
    from ncodec.models.audio_model import export

    torch.manual_seed(0)
    trained = AudioHyperprior(c=16, n=8)
    exported = export(trained, torch.randn(2, 1, 1280) * 0.1, "tiny-audio")
    path = tmp_path / "tiny-audio.safetensors"
    exported.save(path)
    m = load_weights(path)
    assert type(m) is ARCHITECTURES["audio-hyperprior"] and m.digest == exported.digest
    x = (np.random.default_rng(1).standard_normal((2, 24000)) * 0.1).astype(np.float32)
    codec = AudioCodec()
    enc = codec.analyse(m, (x, 16000), chunk=16000).encode(120)
    assert len(enc.payloads) == enc.params.segments == 2
    y, sr = codec.decode(m, enc.params, enc.payloads)
    assert sr == 16000 and y.shape == x.shape
    assert np.array_equal(y, enc.reconstruct()[0])
