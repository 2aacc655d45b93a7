"""Whole-picture transforms in bounded memory: each transform runs on overlapping windows whose
overlap covers its reach, so the result is the whole-image result (up to float rounding for the
float transforms, exactly for the integer prior) while peak memory is set by the window.

Reaches, measured on ``image-hp-v1``'s architecture (four 5x5 stride-2 layers each way):

* ``g_a``: a latent depends on pixels less than 32 away from its 16x16 cell -> :data:`ANALYSIS_HALO`;
* ``g_s``: a pixel depends on latents at most 2 away -> :data:`SYNTH_HALO`;
* the integer hyper-synthesis: a latent's prior depends on hyper-latents at most 2 away
  (8 latents) -> :data:`PRIOR_HALO`.

Windows start on multiples of 64 pixels (4 latents, 1 hyper-latent), so every crop lines up with
the coarser grids. Rectangles are ``(x0, y0, x1, y1)``, end-exclusive, in the units named.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from torch import Tensor

ANALYSIS_WINDOW = 1024
"""Pixels per side that ``g_a`` runs on at once (plus the halo)."""
ANALYSIS_HALO = 32
"""Pixels of context on each side of an analysis window (``g_a``'s reach: a latent sees pixels
less than 32 away from its 16 x 16 cell; measured equal to the whole-image transform)."""
SYNTH_BLOCK = 64
"""Latents per side that ``g_s`` runs on at once (1024 pixels)."""
SYNTH_HALO = 3
"""Latents of context on each side of a synthesis block (``g_s``'s reach is 2; one more for margin)."""
PRIOR_BLOCK = 16
"""Hyper-latents per side that the integer hyper-synthesis runs on at once (1024 pixels)."""
PRIOR_HALO = 2
"""Hyper-latents of context on each side of a prior block (the reach, measured: 2)."""
UP = 16
"""Pixels per latent (the stride of ``g_a`` and ``g_s``)."""

Rect = tuple[int, int, int, int]


def _spans(lo: int, hi: int, step: int) -> list[tuple[int, int]]:
    return [(a, min(a + step, hi)) for a in range(lo, hi, step)]


def padded_window(rgb: np.ndarray, rect: Rect, padded: tuple[int, int]) -> np.ndarray:
    """The pixels of ``rect`` (within the image padded by edge replication to ``padded`` =
    ``(height, width)``) without building the padded image: rows and columns beyond the image
    repeat its last ones, as ``numpy.pad(mode="edge")`` would."""
    x0, y0, x1, y1 = rect
    h, w = rgb.shape[:2]
    assert 0 <= x0 < x1 <= padded[1] and 0 <= y0 < y1 <= padded[0]
    rows = np.minimum(np.arange(y0, y1), h - 1)
    cols = np.minimum(np.arange(x0, x1), w - 1)
    if y1 <= h and x1 <= w:
        return rgb[y0:y1, x0:x1]
    return rgb[rows[:, None], cols[None, :]]


def analyse_windowed(
    model,
    rgb: np.ndarray,
    multiple: int,
    device: str = "cpu",
    window: int = ANALYSIS_WINDOW,
    halo: int = ANALYSIS_HALO,
    progress: Callable | None = None,
) -> Tensor:
    """``g_a`` of a whole image, in windows.

    Args:
        model: an image model (``analysis``: ``[1,3,H,W]`` in [0, 1] -> ``[1,M,H/16,W/16]``).
        rgb: uint8 ``[H, W, 3]``; it is edge-padded to multiples of ``multiple`` pixels.
        window, halo: window edge and overlap in pixels, multiples of 16.

    Returns:
        float32 latents ``[1, M, Hp/16, Wp/16]`` on the CPU, equal to ``model.analysis`` of the
        whole padded image up to float rounding.
    """
    h, w = rgb.shape[:2]
    hp, wp = -(-h // multiple) * multiple, -(-w // multiple) * multiple
    out: Tensor | None = None
    cells = [(ys, xs) for ys in _spans(0, hp, window) for xs in _spans(0, wp, window)]
    for (y0, y1), (x0, x1) in progress(cells) if progress else cells:
        wy0, wx0 = max(y0 - halo, 0), max(x0 - halo, 0)
        wy1, wx1 = min(y1 + halo, hp), min(x1 + halo, wp)
        a = padded_window(rgb, (wx0, wy0, wx1, wy1), (hp, wp))
        a = np.array(a)  # a writable copy: the caller's pixels may be read-only
        x = torch.from_numpy(a).permute(2, 0, 1)[None].float().div_(255.0)
        with torch.no_grad():
            y = model.analysis(x.to(device)).float().cpu()
        if out is None:
            out = torch.empty((1, y.shape[1], hp // UP, wp // UP), dtype=torch.float32)
        oy, ox = (y0 - wy0) // UP, (x0 - wx0) // UP
        out[..., y0 // UP : y1 // UP, x0 // UP : x1 // UP] = y[
            ..., oy : oy + (y1 - y0) // UP, ox : ox + (x1 - x0) // UP
        ]
    assert out is not None
    return out


def prior_windowed(
    prior: Callable[[Tensor, tuple[int, ...]], tuple[Tensor, ...]],
    z_hat: Tensor,
    rect: Rect,
    m: int,
    block: int = PRIOR_BLOCK,
    halo: int = PRIOR_HALO,
) -> tuple[Tensor, ...]:
    """The exact prior of the latents in ``rect`` (hyper-latent units: latents ``4 * rect``) from
    the whole picture's hyper-latents ``z_hat`` ``[1, N, hz, wz]``, computed in blocks of ``block``
    hyper-latents with ``halo`` of context: bit for bit the crop of ``prior(z_hat)``.

    ``prior`` is a latent codec's :meth:`~ncodec.models.latent_codecs.StagedCodec.prior`; ``m``
    the latent channel count. Returns its tensors, each ``[1, m, 4 * h, 4 * w]`` of the rect."""
    x0, y0, x1, y1 = rect
    hz, wz = z_hat.shape[-2:]
    out: list[Tensor] | None = None
    for by0, by1 in _spans(y0, y1, block):
        for bx0, bx1 in _spans(x0, x1, block):
            wy0, wx0 = max(by0 - halo, 0), max(bx0 - halo, 0)
            wy1, wx1 = min(by1 + halo, hz), min(bx1 + halo, wz)
            zw = z_hat[..., wy0:wy1, wx0:wx1]
            parts = prior(zw, (1, m, 4 * (wy1 - wy0), 4 * (wx1 - wx0)))
            if out is None:
                out = [torch.empty((1, m, 4 * (y1 - y0), 4 * (x1 - x0)), dtype=t.dtype) for t in parts]
            oy, ox = 4 * (by0 - wy0), 4 * (bx0 - wx0)
            ty, tx, th, tw = 4 * (by0 - y0), 4 * (bx0 - x0), 4 * (by1 - by0), 4 * (bx1 - bx0)
            for o, t in zip(out, parts):
                o[..., ty : ty + th, tx : tx + tw] = t[..., oy : oy + th, ox : ox + tw]
    assert out is not None
    return tuple(out)


def synthesize_windowed(
    model,
    ys_hat: Tensor,
    quality: float,
    rect: Rect,
    block: int = SYNTH_BLOCK,
    halo: int = SYNTH_HALO,
) -> np.ndarray:
    """``g_s`` of the pixels ``rect`` (pixels, relative to ``ys_hat``'s origin) in blocks of
    ``block`` latents a side plus ``halo``: uint8 ``[y1 - y0, x1 - x0, 3]``.

    ``ys_hat`` ``[1, M, h, w]`` is the whole picture's dequantised scaled latents, or a crop of
    them with at least ``halo`` latents beyond ``rect`` wherever the crop is not the picture's
    edge; either way the result equals the whole picture's synthesis (up to float rounding)."""
    x0, y0, x1, y1 = rect
    lh, lw = ys_hat.shape[-2:]
    out = np.empty((y1 - y0, x1 - x0, 3), dtype=np.uint8)
    step = block * UP
    for py0, py1 in _spans(y0 - y0 % UP, y1, step):
        for px0, px1 in _spans(x0 - x0 % UP, x1, step):
            ly0, ly1 = py0 // UP, -(-py1 // UP)
            lx0, lx1 = px0 // UP, -(-px1 // UP)
            wy0, wx0 = max(ly0 - halo, 0), max(lx0 - halo, 0)
            wy1, wx1 = min(ly1 + halo, lh), min(lx1 + halo, lw)
            x = model.synthesize(ys_hat[..., wy0:wy1, wx0:wx1], quality)[0]
            # the part of this block inside rect, in the window's pixel coordinates
            cy0, cy1 = max(py0, y0), min(py1, y1)
            cx0, cx1 = max(px0, x0), min(px1, x1)
            piece = x[:, cy0 - wy0 * UP : cy1 - wy0 * UP, cx0 - wx0 * UP : cx1 - wx0 * UP]
            out[cy0 - y0 : cy1 - y0, cx0 - x0 : cx1 - x0] = (
                piece.mul(255).round_().to(torch.uint8).permute(1, 2, 0).cpu().numpy()
            )
            del x, piece
    return out
