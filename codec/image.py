"""The image medium: pixels <-> tiles <-> latents <-> payload parts <-> container segments.

Parsing (container), entropy decoding (the model's latent codec, exact) and reconstruction (float
synthesis) stay apart, as in dav1d. Each tile (``tile x tile`` pixels, edge tiles smaller) is coded
on its own, so memory is bounded by the tile, not the image. A tile's payload is its latent
codec's multi-part payload (FORMAT.md, "Image tile"; for ``image-hp-v1``: the hyper-latent part,
then the latent part).

Input handling (documented in README):
* RGB is coded as is; grayscale (L, I;16) is replicated to RGB and decoded back to L;
* RGBA / LA / P with transparency: colour coded lossy, alpha losslessly (zlib) in one extra segment;
* 16-bit input (gray, or 16 bits per channel: 48-bit PNG/TIFF) is reduced to 8 bits (most
  significant byte) and decodes as 8-bit; the header keeps the source depth (16);
* 32-bit integer images are refused (a mode "I" image in memory whose values fit 0..65535 is a 16-bit
  image, as Pillow reads 16-bit files); float images are refused;
* animated images: the first frame is coded, with one :class:`AnimationWarning`.
"""

from __future__ import annotations

import warnings
import zlib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from ncodec.bitstream.container import MEDIA_IMAGE
from ncodec.bitstream.errors import CorruptStreamError
from ncodec.bitstream.params import MAX_PIXELS, ImageParams
from ncodec.codec.errors import InvalidArgumentError, UnsupportedInputError
from ncodec.codec.medium import Analysis, Encoded, MediumCodec, Progress, Target, no_progress
from ncodec.models.image_model import DOWNSAMPLE, ImageModel
from ncodec.models.latent_codecs import LatentCodec, split_parts
from ncodec.models.latent_opt import EFFORTS, refine_residuals

DEFAULT_TILE = 1024
IMAGE_EXTS = frozenset({".png", ".jpg", ".jpeg", ".webp", ".tif", ".tiff", ".bmp", ".ppm", ".pgm", ".gif"})
OUT_FORMATS = {
    ".png": "PNG",
    ".tif": "TIFF",
    ".tiff": "TIFF",
    ".bmp": "BMP",
    ".ppm": "PPM",
    ".jpg": "JPEG",
    ".jpeg": "JPEG",
    ".webp": "WEBP",
}
"""Output suffix -> Pillow format. Lossy formats are written at quality 95 (JPEG drops alpha)."""
LOSSY_OUT = {"JPEG": {"quality": 95}, "WEBP": {"quality": 95}}


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
        if img.info.get(SOURCE_BITS) == 32:
            raise UnsupportedInputError("32-bit integer images are not supported (convert to 16 bits)")
        a = np.asarray(img)
        if a.dtype != np.uint8:
            lo, hi = int(a.min()), int(a.max())
            if lo < 0 or hi > 65535:  # mode "I" holds Pillow's 16-bit images too, but not these
                raise UnsupportedInputError(
                    f"32-bit integer pixel values ({lo}..{hi}) beyond 16 bits are not supported"
                )
            a = (a.astype(np.uint32) >> 8).astype(np.uint8)
        return PreparedImage(np.repeat(a[..., None], 3, axis=2), None, 1, 16)
    # 16 bits per channel (48-bit PNG, 64-bit RGBA): Pillow reads the high bytes; say so in the header
    depth = 16 if img.info.get(SOURCE_BITS) == 16 else 8
    if mode == "F":
        raise UnsupportedInputError("floating-point images are not supported")
    if mode == "P":
        img = img.convert("RGBA" if "transparency" in img.info else "RGB")
    elif mode == "PA":
        img = img.convert("RGBA")
    if img.mode == "L" or img.mode == "1":
        a = np.asarray(img.convert("L"))
        return PreparedImage(np.repeat(a[..., None], 3, axis=2), None, 1, depth)
    if img.mode in ("RGBA", "LA", "RGBa", "La"):
        rgba = np.asarray(img.convert("RGBA"))
        rgb, alpha = np.ascontiguousarray(rgba[..., :3]), np.ascontiguousarray(rgba[..., 3])
        return PreparedImage(rgb, alpha, 4, depth)
    return PreparedImage(np.asarray(img.convert("RGB")), None, 3, depth)


def _to_uint8(a: np.ndarray) -> np.ndarray:
    """uint8 as is; floats in 0..1 scaled to 0..255 (rounded, clipped)."""
    if a.dtype == np.uint8:
        return a
    if np.issubdtype(a.dtype, np.floating):
        if not np.isfinite(a).all():
            raise UnsupportedInputError("float pixels must be finite (in 0..1)")
        return np.round(np.clip(a, 0.0, 1.0) * 255.0).astype(np.uint8)
    raise UnsupportedInputError(f"pixels must be uint8 or float in 0..1, not {a.dtype}")


def to_image(a: Any) -> Image.Image:
    """A PIL image; a numpy array ``[H, W]`` / ``[H, W, 3|4]``; or a torch tensor ``[3|1|4, H, W]``
    (channels first), uint8 or float in 0..1, as a PIL image."""
    if isinstance(a, Image.Image):
        return a
    if isinstance(a, torch.Tensor):
        if a.ndim != 3 or a.shape[0] not in (1, 3, 4):
            raise UnsupportedInputError(f"image tensors must be [3, H, W] or [N, 3, H, W]: {list(a.shape)}")
        t = a.detach().cpu()
        a = t.permute(1, 2, 0).numpy() if t.dtype == torch.uint8 else t.float().permute(1, 2, 0).numpy()
        a = a[..., 0] if a.shape[2] == 1 else a
    if isinstance(a, np.ndarray) and a.dtype != np.uint8 and np.issubdtype(a.dtype, np.floating):
        a = _to_uint8(a)
    if (
        not isinstance(a, np.ndarray)
        or a.dtype != np.uint8
        or a.ndim not in (2, 3)
        or (a.ndim == 3 and a.shape[2] not in (3, 4))
    ):
        raise UnsupportedInputError("arrays must be uint8 (or float in 0..1) [H, W], [H, W, 3] or [H, W, 4]")
    return Image.fromarray(np.ascontiguousarray(a))


SOURCE_BITS = "ncodec_source_bits"
"""``Image.info`` key :func:`read_image` sets where the file holds more than 8 bits per sample
(16, or 32 for integer images, which :func:`prepare` refuses)."""


class AnimationWarning(UserWarning):
    """An animated image (GIF, APNG, WebP): only its first frame is coded."""


def _source_bits(img: Image.Image) -> int:
    """Bits per sample of the file behind an opened (not yet loaded) image, from Pillow's raw mode:
    ``RGB;16B`` (48-bit PNG), ``I;16`` (16-bit gray) -> 16; ``I;32S`` (32-bit integer TIFF) -> 32."""
    raw = " ".join(str(t[3]) for t in getattr(img, "tile", None) or ())
    if ";32" in raw:
        return 32
    return 16 if ";16" in raw else 8


def read_image(path: Path) -> Image.Image:
    """Opens and loads an image file (Pillow). The size is checked from the file's header before
    any pixel is decoded; Pillow's own decompression-bomb guard (process-wide, left as the user
    set it) also applies."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # we check the size below
            img = Image.open(path)
        with img:
            w, h = img.size
            if w * h > MAX_PIXELS:
                raise UnsupportedInputError(f"{path}: image of {w}x{h} pixels exceeds the {MAX_PIXELS} limit")
            bits = _source_bits(img)
            frames = getattr(img, "n_frames", 1)
            img.load()
            if bits != 8:
                img.info[SOURCE_BITS] = bits
            if frames > 1:
                name = Path(path).name if isinstance(path, str | Path) else "input"
                warnings.warn(
                    f"{name}: animated image, only the first of {frames} frames is coded "
                    "(animations will be coded as video)",
                    AnimationWarning,
                    stacklevel=2,
                )
            return img
    except FileNotFoundError:
        raise UnsupportedInputError(f"{path}: no such file") from None
    except (UnidentifiedImageError, OSError, Image.DecompressionBombError, ValueError) as e:
        if isinstance(e, UnsupportedInputError):
            raise
        raise UnsupportedInputError(f"{path}: cannot read image ({e})") from None


def tiles(params: ImageParams) -> list[tuple[int, int, int, int]]:
    """Tile rectangles ``(x0, y0, w, h)`` in raster order."""
    t = params.tile
    return [
        (tx * t, ty * t, min(t, params.width - tx * t), min(t, params.height - ty * t))
        for ty in range(params.tiles_y)
        for tx in range(params.tiles_x)
    ]


def _to_tensor(rgb: np.ndarray, device: str) -> torch.Tensor:
    """uint8 ``[h, w, 3]`` -> float ``[1, 3, H, W]`` in [0, 1], replicate-padded to multiples of 64."""
    h, w = rgb.shape[:2]
    ph, pw = (-h) % DOWNSAMPLE, (-w) % DOWNSAMPLE
    a = np.pad(rgb, ((0, ph), (0, pw), (0, 0)), mode="edge")
    return torch.from_numpy(np.ascontiguousarray(a)).permute(2, 0, 1)[None].float().div_(255.0).to(device)


SYNTH_BLOCK = 64
"""Latents per side that ``g_s`` runs on at once (1024 pixels): a larger tile (streams may declare
up to 4096) is synthesised in blocks, so its memory is that of a 1024-pixel tile, not 16 times it."""
SYNTH_HALO = 6
"""Latents of context on each side of a block, more than ``g_s``'s reach (four stride-2
transposed 5x5 convolutions: under 4 latents), so blocks give the whole tile's pixels (up to
float rounding)."""


def synthesize_tile(
    model: ImageModel, ys_hat: torch.Tensor, w: int, h: int, quality: float, block: int = SYNTH_BLOCK
) -> np.ndarray:
    """Dequantised scaled latents of one tile -> uint8 ``[h, w, 3]``, in blocks of at most
    ``block`` latents a side (plus :data:`SYNTH_HALO`)."""
    lh, lw = ys_hat.shape[-2:]
    if lh <= block and lw <= block:
        x = model.synthesize(ys_hat, quality)[0, :, :h, :w]
        return (x.mul(255).round_().to(torch.uint8)).permute(1, 2, 0).cpu().numpy()
    out = np.empty((h, w, 3), dtype=np.uint8)
    up = 16  # g_s's stride
    for by in range(0, lh, block):
        for bx in range(0, lw, block):
            ph, pw = min(block * up, h - by * up), min(block * up, w - bx * up)
            if ph <= 0 or pw <= 0:  # padding only
                continue
            y0, x0 = max(by - SYNTH_HALO, 0), max(bx - SYNTH_HALO, 0)
            y1, x1 = min(by + block + SYNTH_HALO, lh), min(bx + block + SYNTH_HALO, lw)
            x = model.synthesize(ys_hat[..., y0:y1, x0:x1], quality)[0]
            oy, ox = (by - y0) * up, (bx - x0) * up
            x = x[:, oy : oy + ph, ox : ox + pw]
            out[by * up : by * up + ph, bx * up : bx * up + pw] = (
                x.mul(255).round_().to(torch.uint8).permute(1, 2, 0).cpu().numpy()
            )
            del x
    return out


def _assemble(params: ImageParams, rgb: np.ndarray, alpha: np.ndarray | None) -> Image.Image:
    if params.channels == 1:
        gray = np.round(rgb.astype(np.float32).mean(axis=2)).astype(np.uint8)
        return Image.fromarray(gray, "L")
    if alpha is not None:
        return Image.fromarray(np.dstack([rgb, alpha]), "RGBA")
    return Image.fromarray(rgb, "RGB")


class TileAnalysis:
    """One tile's analysis ``g_a(x)``, kept so rate control can try many qualities cheaply.

    With an ``effort`` above 0 the residual symbols at each quality are optimised for rate and
    distortion through the synthesis (:mod:`ncodec.models.latent_opt`), once per quality."""

    def __init__(self, model: ImageModel, rgb: np.ndarray, device: str, effort: int = 0):
        self.model = model
        with torch.no_grad():
            self.y = model.analysis(_to_tensor(rgb, device))
        self.schedule = EFFORTS[effort]
        # the target pixels, kept only when refining (the float copy is 4x the tile)
        self.x = torch.from_numpy(np.array(rgb)).permute(2, 0, 1)[None].float() / 255 if effort else None
        self._refined: dict[float, tuple[torch.Tensor, torch.Tensor]] = {}

    def latents(self, quality: float) -> tuple[torch.Tensor, torch.Tensor]:
        """Scaled latents ``ys`` and hyper-latents ``z_hat`` at ``quality``."""
        ys, z_hat = self.model.scale_latents(self.y, quality)
        if self.schedule is None:
            return ys, z_hat
        if quality not in self._refined:
            x = self.x.to(self.y.device)
            ys = refine_residuals(self.model, x, ys, z_hat, quality, self.schedule)
            self._refined[quality] = (ys, z_hat)
        return self._refined[quality]


class ImageAnalysis(Analysis):
    """Every tile's analysis of one prepared image."""

    def __init__(
        self,
        model: ImageModel,
        prep: PreparedImage,
        tile: int,
        device: str,
        progress: Progress,
        effort: int = 0,
    ):
        self.model, self.prep, self.tile = model, prep, tile
        self.codec: LatentCodec = model.latent_codec()
        self.rects = tiles(self._params(0))
        self.tiles = [
            TileAnalysis(model, prep.rgb[y0 : y0 + h, x0 : x0 + w], device, effort)
            for x0, y0, w, h in progress(self.rects)
        ]
        self.alpha = zlib.compress(prep.alpha.tobytes(), 9) if prep.alpha is not None else None

    def _params(self, centi_quality: int) -> ImageParams:
        h, w = self.prep.rgb.shape[:2]
        p = self.prep
        return ImageParams(w, h, p.channels, p.bit_depth, centi_quality, self.tile, int(p.alpha is not None))

    @property
    def pixels(self) -> int:
        return int(self.prep.rgb.shape[0] * self.prep.rgb.shape[1])

    def encode(self, rate: float) -> Encoded:
        params = self._params(int(round(min(max(rate, 0.0), 100.0) * 100)))
        q = params.quality / 100.0  # the decoder sees only the stored centi-quality
        coded = [self.codec.compress(*t.latents(q)) for t in self.tiles]
        payloads = [c.payload for c in coded] + ([self.alpha] if self.alpha is not None else [])

        def reconstruct() -> Image.Image:
            rgb = np.empty_like(self.prep.rgb)
            for (x0, y0, w, h), c in zip(self.rects, coded):
                rgb[y0 : y0 + h, x0 : x0 + w] = synthesize_tile(self.model, c.ys_hat, w, h, q)
            return _assemble(params, rgb, self.prep.alpha)

        return Encoded(params, payloads, reconstruct)


def _psnr(ref: np.ndarray, img: Image.Image) -> float:
    out = np.asarray(img.convert("RGB"), dtype=np.float64)
    mse = float(np.mean((out - ref) ** 2))
    return float("inf") if mse == 0 else 10 * np.log10(255**2 / mse)


def _decode_alpha(params: ImageParams, payload: bytes) -> np.ndarray:
    try:
        d = zlib.decompressobj()
        raw = d.decompress(payload, params.width * params.height + 1)
    except zlib.error as e:
        raise CorruptStreamError(f"alpha plane is damaged ({e})") from None
    if len(raw) != params.width * params.height or d.unconsumed_tail or not d.eof:
        raise CorruptStreamError("alpha plane has the wrong size")
    return np.frombuffer(raw, dtype=np.uint8).reshape(params.height, params.width)


class ImageCodec(MediumCodec):
    """Still images (PIL images or uint8 arrays); the rate parameter is quality 0..100."""

    name = "image"
    media = MEDIA_IMAGE
    extensions = IMAGE_EXTS
    out_formats = OUT_FORMATS
    rate_unit = "quality"
    rate_range = (0.0, 100.0)
    rate_step = 0.01

    def accepts(self, obj: Any) -> bool:
        # 4-D arrays are video frames [T, H, W, 3]; 4-D tensors are batches [N, 3, H, W]
        return (
            isinstance(obj, Image.Image)
            or (isinstance(obj, np.ndarray) and obj.ndim in (2, 3))
            or (isinstance(obj, torch.Tensor) and obj.ndim in (3, 4))
        )

    def batch(self, obj: Any) -> list[Any] | None:
        """``[N, 3, H, W]`` tensors are batches of N images."""
        return list(obj) if isinstance(obj, torch.Tensor) and obj.ndim == 4 else None

    def sniff(self, data: bytes) -> bool:
        import io

        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                Image.open(io.BytesIO(data)).close()
            return True
        except Exception:
            return False

    def read(self, path: Path | BinaryIO) -> Image.Image:
        return read_image(path)

    def analyse(
        self,
        model: ImageModel,
        obj: Any,
        *,
        device: str = "cpu",
        progress: Progress = no_progress,
        tile: int = DEFAULT_TILE,
        effort: int = 0,
        **options: Any,
    ) -> ImageAnalysis:
        """``tile``: tile edge in pixels, a multiple of 64 in 64..4096. ``effort``: encoder effort
        ``0..3`` (0: one pass; higher: latent optimisation, see :mod:`ncodec.models.latent_opt`;
        the decoder is the same). Each quality a rate search tries is optimised anew."""
        if tile % 64 or not 64 <= tile <= 4096:
            raise InvalidArgumentError("tile must be a multiple of 64 in 64..4096")
        if effort not in EFFORTS:
            raise InvalidArgumentError(f"effort must be one of {sorted(EFFORTS)}")
        return ImageAnalysis(model, prepare(to_image(obj)), tile, device, progress, effort)

    def targets(self, analysis: ImageAnalysis) -> dict[str, Target]:
        ref = analysis.prep.rgb.astype(np.float64)
        return {
            "bpp": Target("bpp", "bpp", lambda data, enc: len(data) * 8 / analysis.pixels),
            # each try synthesises the image: 2 ends + 9 bisections reach 0.2 quality units
            "psnr": Target("psnr", "dB", lambda data, enc: _psnr(ref, enc.reconstruct()), "at_least", 11),
        }

    def decode(
        self,
        model: ImageModel,
        params: ImageParams,
        segments: Iterable[bytes],
        *,
        device: str = "cpu",
        progress: Progress = no_progress,
    ) -> Image.Image:
        """Rebuilds the image from its segments (consumed one at a time)."""
        codec = model.latent_codec()
        out = np.empty((params.height, params.width, 3), dtype=np.uint8)
        q = params.quality / 100.0
        it = iter(segments)
        for x0, y0, w, h in progress(tiles(params)):
            payload = next(it, None)
            if payload is None:
                raise CorruptStreamError(f"stream holds fewer segments than its {params.segments} tiles")
            ys_hat = codec.decompress(split_parts(payload, codec.parts), model.unit_shape(w, h))
            out[y0 : y0 + h, x0 : x0 + w] = synthesize_tile(model, ys_hat, w, h, q)
        alpha = None
        if params.alpha:
            payload = next(it, None)
            if payload is None:
                raise CorruptStreamError("stream lacks its alpha segment")
            alpha = _decode_alpha(params, payload)
        if next(it, None) is not None:
            raise CorruptStreamError("stream holds more segments than the image has tiles")
        return _assemble(params, out, alpha)

    def write(self, pieces: Iterable[Image.Image], params: ImageParams, out: BinaryIO, suffix: str) -> None:
        fmt = OUT_FORMATS.get(suffix)
        if fmt is None:
            raise UnsupportedInputError(f"images decode to {', '.join(sorted(OUT_FORMATS))}, not '{suffix}'")
        for img in pieces:
            if fmt == "JPEG" and img.mode not in ("L", "RGB"):
                img = img.convert("RGB")
            img.save(out, format=fmt, **LOSSY_OUT.get(fmt, {}))
