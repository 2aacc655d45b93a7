"""The decoder-only synthesis fine-tune (models/train_synthesis.py): its GDN re-parametrisation."""

from __future__ import annotations

import torch

from ncodec.models.train_synthesis import apply_weights, load_base, to_training, trainable


def test_reparametrised_synthesis_keeps_the_function_and_exports_back():
    torch.set_num_threads(1)
    base, train = load_base(), load_base()
    to_training(train)
    x = torch.randn(1, 192, 4, 4, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert torch.allclose(base.g_s(x), train.g_s(x), atol=1e-5)
    # the training weights (re-parametrised GDN) map back onto the stored ones
    back = load_base()
    with torch.no_grad():
        for v in back.g_s.parameters():
            v.add_(1.0)
    apply_weights(back, {k: v.detach() for k, v in trainable(train).items()})
    tb, t0 = back.tensors(), base.tensors()
    for k in t0:
        if k.startswith("float.g_s."):
            assert torch.allclose(tb[k], t0[k], rtol=1e-5, atol=1e-9), k
