"""Image pipeline: pixels <-> tiles <-> integer symbols <-> rANS payloads <-> container segments.

Parsing (container), entropy decoding (rANS, exact) and reconstruction (float synthesis) stay
apart, as in dav1d. Each tile (``tile x tile`` pixels, edge tiles smaller) is coded on its own, so
memory is bounded by the tile, not the image. Tile payload (FORMAT.md, "Image tile"): varint length
of the hyper-latent payload, the hyper-latent rANS payload, then the latent rANS payload.

Input handling (documented in README):
* RGB is coded as is; grayscale (L, I;16) is replicated to RGB and decoded back to L;
* RGBA / LA / P with transparency: colour coded lossy, alpha losslessly (zlib) in one extra segment;
* 16-bit input is reduced to 8 bits (most significant byte) and decodes as 8-bit; the header keeps
  the source depth.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image

from ncodec import entropy
from ncodec.bitstream.container import MEDIA_IMAGE, Header
from ncodec.bitstream.errors import CorruptStreamError
from ncodec.bitstream.params import MAX_PIXELS, ImageParams
from ncodec.codec.errors import UnsupportedInputError
from ncodec.entropy.varint import read_varint, write_varint
from ncodec.models.image_model import DOWNSAMPLE, Y_LIMIT, ImageModel

DEFAULT_TILE = 1024


@dataclass
class PreparedImage:
    """An image normalised for coding: ``rgb`` uint8 ``[H, W, 3]``, optional ``alpha`` uint8 ``[H, W]``,
    the source channel count (1, 3, 4) and bit depth (8, 16)."""

    rgb: np.ndarray
    alpha: np.ndarray | None
    channels: int
    bit_depth: int


def prepare(img: Image.Image) -> PreparedImage:
    """Converts any PIL image to 8-bit RGB (+ alpha); see the module docstring for the rules."""
    w, h = img.size
    if w < 1 or h < 1:
        raise UnsupportedInputError("empty image (zero width or height)")
    if w * h > MAX_PIXELS or max(w, h) > 65535:
        raise UnsupportedInputError(f"image of {w}x{h} pixels exceeds the {MAX_PIXELS}-pixel limit")
    mode = img.mode
    if mode in ("I;16", "I;16B", "I;16L", "I", "I;16N"):
        a = np.asarray(img)
        a = (a.astype(np.uint32) >> 8).clip(0, 255).astype(np.uint8) if a.dtype != np.uint8 else a
        return PreparedImage(np.repeat(a[..., None], 3, axis=2), None, 1, 16)
    if mode == "F":
        raise UnsupportedInputError("floating-point images are not supported")
    if mode == "P":
        img = img.convert("RGBA" if "transparency" in img.info else "RGB")
    elif mode == "PA":
        img = img.convert("RGBA")
    if img.mode == "L" or img.mode == "1":
        a = np.asarray(img.convert("L"))
        return PreparedImage(np.repeat(a[..., None], 3, axis=2), None, 1, 8)
    if img.mode in ("RGBA", "LA", "RGBa", "La"):
        rgba = np.asarray(img.convert("RGBA"))
        return PreparedImage(np.ascontiguousarray(rgba[..., :3]), np.ascontiguousarray(rgba[..., 3]), 4, 8)
    return PreparedImage(np.asarray(img.convert("RGB")), None, 3, 8)


def _tiles(params: ImageParams) -> Iterable[tuple[int, int, int, int]]:
    """Tile rectangles ``(x0, y0, w, h)`` in raster order."""
    t = params.tile
    for ty in range(params.tiles_y):
        for tx in range(params.tiles_x):
            x0, y0 = tx * t, ty * t
            yield x0, y0, min(t, params.width - x0), min(t, params.height - y0)


def _to_tensor(rgb: np.ndarray, device: str) -> torch.Tensor:
    """uint8 ``[h, w, 3]`` -> float ``[1, 3, H, W]`` in [0, 1], replicate-padded to multiples of 64."""
    h, w = rgb.shape[:2]
    ph, pw = (-h) % DOWNSAMPLE, (-w) % DOWNSAMPLE
    a = np.pad(rgb, ((0, ph), (0, pw), (0, 0)), mode="edge")
    return torch.from_numpy(np.ascontiguousarray(a)).permute(2, 0, 1)[None].float().div_(255.0).to(device)


class TileAnalysis:
    """One tile's analysis ``g_a(x)``, kept so rate control can try many qualities cheaply."""

    def __init__(self, model: ImageModel, rgb: np.ndarray, device: str):
        self.model = model
        with torch.no_grad():
            self.y = model.analysis(_to_tensor(rgb, device))

    def symbols(self, quality: float) -> tuple[torch.Tensor, np.ndarray, np.ndarray]:
        """At ``quality``: the hyper-latent ``z_hat`` (int32 ``[1, N, h/64, w/64]``, CPU), and the
        latent's symbols and table indexes (int32 numpy ``[M * h/16 * w/16]``, for ``y_tables``)."""
        m = self.model
        ys, z_hat = m.scale_latents(self.y, quality)
        z_hat = z_hat.cpu()
        mu, idx = m.hyper(z_hat)
        sym = torch.round(ys.cpu().double() - mu).clamp(-Y_LIMIT, Y_LIMIT).to(torch.int32)
        return z_hat.to(torch.int32), sym.numpy().reshape(-1), idx.to(torch.int32).numpy().reshape(-1)

    def encode(self, quality: float, threads: int | None = None) -> bytes:
        """The tile payload at ``quality`` (0..100)."""
        m = self.model
        z_hat, sym, idx = self.symbols(quality)
        z_data = entropy.encode(z_hat.numpy(), m.z_indexes(tuple(z_hat.shape)), m.z_tables, threads=threads)
        y_data = entropy.encode(sym, idx, m.y_tables, threads=threads)
        out = bytearray()
        write_varint(out, len(z_data))
        return bytes(out) + z_data + y_data


def decode_tile(
    model: ImageModel, payload: bytes, w: int, h: int, quality: float, device: str, threads: int | None = None
) -> np.ndarray:
    """Decodes one tile payload to uint8 ``[h, w, 3]``."""
    hp, wp = -(-h // DOWNSAMPLE) * DOWNSAMPLE, -(-w // DOWNSAMPLE) * DOWNSAMPLE
    z_shape = (1, model.config["n"], hp // DOWNSAMPLE, wp // DOWNSAMPLE)
    z_len, pos = read_varint(payload, 0)
    if pos + z_len > len(payload):
        raise CorruptStreamError("tile's hyper-latent payload overruns the segment")
    z = entropy.decode(payload[pos : pos + z_len], model.z_indexes(z_shape), model.z_tables, threads=threads)
    mu, idx = model.hyper(torch.from_numpy(z.astype(np.int64)).view(z_shape))
    sym = entropy.decode(
        payload[pos + z_len :], idx.to(torch.int32).numpy().reshape(-1), model.y_tables, threads=threads
    )
    ys_hat = torch.from_numpy(sym).view(mu.shape).double() + mu
    x = model.synthesize(ys_hat, quality)[0, :, :h, :w]
    return (x.mul(255).round_().to(torch.uint8)).permute(1, 2, 0).cpu().numpy()


def image_params(prep: PreparedImage, quality: float, tile: int) -> ImageParams:
    h, w = prep.rgb.shape[:2]
    return ImageParams(
        w,
        h,
        prep.channels,
        prep.bit_depth,
        int(round(quality * 100)),
        tile,
        1 if prep.alpha is not None else 0,
    )


def encode_segments(
    model: ImageModel,
    prep: PreparedImage,
    quality: float,
    *,
    tile: int = DEFAULT_TILE,
    device: str = "cpu",
    analyses: list[TileAnalysis] | None = None,
    progress: Callable[[Iterable], Iterable] = lambda it: it,
) -> tuple[ImageParams, list[bytes]]:
    """Codes every tile (and alpha) of ``prep`` at ``quality``; returns the header block and the
    segment payloads. Pass ``analyses`` (from :func:`analyze_tiles`) to reuse ``g_a``."""
    params = image_params(prep, quality, tile)
    q = params.quality / 100.0  # the decoder sees only the stored centi-quality
    if analyses is None:
        analyses = analyze_tiles(model, prep, tile, device, progress)
    payloads = [a.encode(q) for a in analyses]
    if prep.alpha is not None:
        payloads.append(zlib.compress(prep.alpha.tobytes(), 9))
    return params, payloads


def analyze_tiles(
    model: ImageModel,
    prep: PreparedImage,
    tile: int,
    device: str,
    progress: Callable[[Iterable], Iterable] = lambda it: it,
) -> list[TileAnalysis]:
    params = image_params(prep, 0.0, tile)
    return [
        TileAnalysis(model, prep.rgb[y0 : y0 + h, x0 : x0 + w], device)
        for x0, y0, w, h in progress(list(_tiles(params)))
    ]


def decode_segments(
    model: ImageModel,
    params: ImageParams,
    segments: Iterable[bytes],
    *,
    device: str = "cpu",
    progress: Callable[[Iterable], Iterable] = lambda it: it,
) -> Image.Image:
    """Rebuilds the image from its segments (consumed one at a time)."""
    out = np.empty((params.height, params.width, 3), dtype=np.uint8)
    q = params.quality / 100.0
    it = iter(segments)
    for x0, y0, w, h in progress(list(_tiles(params))):
        payload = next(it, None)
        if payload is None:
            raise CorruptStreamError(f"stream holds fewer segments than its {params.segments} tiles")
        out[y0 : y0 + h, x0 : x0 + w] = decode_tile(model, payload, w, h, q, device)
    alpha = None
    if params.alpha:
        payload = next(it, None)
        if payload is None:
            raise CorruptStreamError("stream lacks its alpha segment")
        try:
            d = zlib.decompressobj()
            raw = d.decompress(payload, params.width * params.height + 1)
        except zlib.error as e:
            raise CorruptStreamError(f"alpha plane is damaged ({e})") from None
        if len(raw) != params.width * params.height or d.unconsumed_tail or not d.eof:
            raise CorruptStreamError("alpha plane has the wrong size")
        alpha = np.frombuffer(raw, dtype=np.uint8).reshape(params.height, params.width)
    if next(it, None) is not None:
        raise CorruptStreamError("stream holds more segments than the image has tiles")
    if params.channels == 1:
        gray = np.round(out.astype(np.float32).mean(axis=2)).astype(np.uint8)
        return Image.fromarray(gray, "L")
    if alpha is not None:
        return Image.fromarray(np.dstack([out, alpha]), "RGBA")
    return Image.fromarray(out, "RGB")


def make_header(model_id: str, digest: bytes, params: ImageParams) -> Header:
    return Header(MEDIA_IMAGE, model_id, digest[:16], params.to_bytes())
