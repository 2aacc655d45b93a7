"""Training resumes from shipped weights: the float parts are copied and the integer
hyper-synthesis turns back into an equivalent float network."""

from __future__ import annotations

from pathlib import Path

import torch

from ncodec.models.int_hyper import OUT_FRAC_BITS
from ncodec.models.registry import load_model
from ncodec.models.train import warm_start

WEIGHTS = Path(__file__).resolve().parents[1] / "models" / "weights"


def test_image_warm_start_reproduces_the_shipped_model():
    from ncodec.models.image import ImageHyperprior

    shipped = load_model("image-hp-v1")
    model = ImageHyperprior(shipped.config["n"], shipped.config["m"])
    assert warm_start(model, WEIGHTS / "image-hp-v1.safetensors") > 30
    x = torch.rand(1, 3, 128, 192, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert torch.allclose(model.g_a(x), shipped.g_a(x), atol=1e-5)
        y = torch.randn(1, shipped.config["m"], 8, 12, generator=torch.Generator().manual_seed(1))
        assert torch.allclose(model.g_s(y), shipped.g_s(y), atol=1e-5)
        _, z = shipped.analyze(x, 50.0)
        mu_fx, sigma_fx = shipped.h_s_int(z)
        mu, sigma = model.h_s(z.float()).double().chunk(2, dim=1)
    # the integer network rounds each layer; its float twin does not
    unit = 2.0**-OUT_FRAC_BITS
    assert (mu - mu_fx * unit).abs().max() < 8 * unit
    assert (sigma - sigma_fx * unit).abs().max() < 8 * unit


def test_audio_warm_start_reproduces_the_shipped_model():
    from ncodec.models.audio import AudioHyperprior
    from ncodec.models.train_audio import warm_start as audio_warm_start

    shipped = load_model("audio-hp-v1")
    c = shipped.config
    model = AudioHyperprior(c["c"], c["m"], c["n"])
    assert audio_warm_start(model, WEIGHTS / "audio-hp-v1.safetensors") > 10
    assert torch.allclose(model.log_mu.exp(), torch.tensor(c["mu"], dtype=torch.float64))
    z = torch.randint(-4, 5, (1, c["n"], 6), generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        mu_fx, sigma_fx = shipped.h_s_int(z)
        out = model.h_s(z.float()).double()[..., : mu_fx.shape[-1]]
    mu, sigma = out.chunk(2, dim=1)
    unit = 2.0**-OUT_FRAC_BITS
    assert (mu - mu_fx * unit).abs().max() < 8 * unit
    assert (sigma - sigma_fx * unit).abs().max() < 8 * unit


def test_warm_start_refuses_another_kind_of_weights():
    import pytest

    from ncodec.models.image import ImageHyperprior
    from ncodec.models.weights_io import ModelFileError

    with pytest.raises(ModelFileError, match="not an ncodec image-hyperprior"):
        warm_start(ImageHyperprior(), WEIGHTS / "audio-hp-v1.safetensors")


def test_compact_corpus_round_trip(tmp_path):
    import numpy as np

    from ncodec.models.train_audio import SEGMENT, compact_corpus, load_corpus

    rng = np.random.default_rng(0)
    signals = [(0.3 * rng.standard_normal(3 * SEGMENT)).astype(np.float32) for _ in range(4)]
    out = tmp_path / "corpus.npz"
    compact_corpus(signals, out, minutes=4 * 2 * SEGMENT / 16000 / 60)
    back = load_corpus([], out)
    assert len(back) == 4 and all(a.dtype == np.float32 and a.size == 2 * SEGMENT for a in back)
    # int16 storage: within one quantisation step of some excerpt of the originals
    a = back[0]
    best = min(
        np.abs(np.clip(s[o : o + a.size], -1, 1) - a).max()
        for s in signals
        for o in range(0, s.size - a.size + 1)
        if np.abs(s[o] - a[0]) < 1e-4
    )
    assert best <= 1 / 32768 + 1e-7
