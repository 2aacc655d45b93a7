"""The image medium: pixels <-> one picture's latents <-> segments' payload parts <-> container.

Parsing (container), entropy decoding (the model's latent codec, exact) and reconstruction (float
synthesis) stay apart, as in dav1d. Since format 3 an image is one picture (FORMAT.md, "Picture
layout"): the transforms run on overlapping windows (:mod:`ncodec.models.windows`), so the result
is the whole image's and no tile edge shows; the hyper-latents cover the whole picture and go into
segment 0; the latents are entropy-coded in segments of ``tile x tile`` pixels under the crop of
the picture's exact prior, which bounds memory, and lets a region decode read only the segments
under it. Streams of formats 1-2 (independent tiles, ``layout = 0``) still decode.

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
from collections.abc import Iterable, Iterator
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
from ncodec.codec.medium import EffortAnalysis, Encoded, MediumCodec, Progress, Target, no_progress
from ncodec.models.image_model import DOWNSAMPLE, ImageModel
from ncodec.models.latent_codecs import HyperpriorCodec, StagedCodec, join_parts, split_parts
from ncodec.models.latent_codecs.checkerboard import ContextCodec
from ncodec.models.latent_opt import EFFORTS, refine_context, refine_residuals
from ncodec.models.windows import (
    SYNTH_HALO,
    Rect,
    analyse_windowed,
    prior_windowed,
    synthesize_windowed,
)

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
    """Tile (layout 0) or segment (layout 1) rectangles ``(x0, y0, w, h)`` in pixels, raster order."""
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


@dataclass(frozen=True)
class Picture:
    """The geometry of a layout-1 image: the whole picture's latent grid and its segments.

    ``segments[k]`` is segment ``k``'s rectangle in hyper-latent units ``(x0, y0, x1, y1)``
    (latents: 4x, pixels: 64x); the hyper-latents of the whole picture are ``z_shape``."""

    params: ImageParams
    m: int
    n: int

    @property
    def z_shape(self) -> tuple[int, int, int, int]:
        p = self.params
        return (1, self.n, -(-p.height // DOWNSAMPLE), -(-p.width // DOWNSAMPLE))

    @property
    def y_size(self) -> tuple[int, int]:
        """(height, width) of the latent grid."""
        return 4 * self.z_shape[2], 4 * self.z_shape[3]

    @property
    def segments(self) -> list[Rect]:
        _, _, hz, wz = self.z_shape
        t = self.params.tile // DOWNSAMPLE
        return [(x, y, min(x + t, wz), min(y + t, hz)) for y in range(0, hz, t) for x in range(0, wz, t)]

    def parts(self, k: int, codec: StagedCodec) -> int:
        """Payload parts of segment ``k``: its latents' (and, in segment 0, the hyper-latents')."""
        return codec.parts if k == 0 else codec.parts - 1

    def prior(self, codec: StagedCodec, z_hat: torch.Tensor, rect: Rect) -> tuple[torch.Tensor, ...]:
        return prior_windowed(codec.prior, z_hat, rect, self.m)


def _crop(t: torch.Tensor, rect: Rect) -> torch.Tensor:
    """Latents of a hyper-latent-unit rectangle."""
    x0, y0, x1, y1 = rect
    return t[..., 4 * y0 : 4 * y1, 4 * x0 : 4 * x1]


def _assemble(params: ImageParams, rgb: np.ndarray, alpha: np.ndarray | None) -> Image.Image:
    if params.channels == 1:
        gray = np.round(rgb.astype(np.float32).mean(axis=2)).astype(np.uint8)
        return Image.fromarray(gray, "L")
    if alpha is not None:
        return Image.fromarray(np.dstack([rgb, alpha]), "RGBA")
    return Image.fromarray(rgb, "RGB")


class ImageAnalysis(EffortAnalysis):
    """The analysis ``g_a(x)`` of one prepared image (the whole picture, computed in windows),
    kept so that rate control can try many qualities cheaply.

    With an ``effort`` above 0 the residual symbols at each quality are optimised for rate and
    distortion through the synthesis (:mod:`ncodec.models.latent_opt`), segment by segment."""

    def __init__(
        self,
        model: ImageModel,
        prep: PreparedImage,
        tile: int,
        device: str,
        progress: Progress,
        effort: int = 0,
    ):
        self.model, self.prep, self.tile, self.device = model, prep, tile, device
        self.codec: StagedCodec = model.latent_codec()
        m, n = model.config["m"], model.config["n"]
        self.picture = Picture(self._params(0), m, n)
        self.y = analyse_windowed(model, prep.rgb, DOWNSAMPLE, device, progress=progress)
        self.schedule = EFFORTS[effort]
        self.progress = progress
        self.alpha = zlib.compress(prep.alpha.tobytes(), 9) if prep.alpha is not None else None

    def _params(self, centi_quality: int) -> ImageParams:
        h, w = self.prep.rgb.shape[:2]
        p = self.prep
        return ImageParams(w, h, p.channels, p.bit_depth, centi_quality, self.tile, int(p.alpha is not None))

    @property
    def pixels(self) -> int:
        return int(self.prep.rgb.shape[0] * self.prep.rgb.shape[1])

    def _refine(self, ys: torch.Tensor, rect: Rect, z_hat: torch.Tensor, q: float) -> torch.Tensor:
        """Segment ``rect``'s latents optimised against its pixels (the segment alone: its
        neighbours' latents are not seen, which costs a little near segment edges)."""
        x0, y0, x1, y1 = (v * DOWNSAMPLE for v in rect)
        rgb = self.prep.rgb[y0:y1, x0:x1]
        x = torch.from_numpy(np.array(rgb)).permute(2, 0, 1)[None].float().div_(255).to(self.device)
        # one progress bar (tqdm on a terminal) per segment, one step per iteration
        steps = iter(self.progress(range(self.schedule.iters)))

        def tick(_: int) -> None:
            next(steps, None)

        if isinstance(self.codec, ContextCodec):
            # the rate and the rounding of the context model, which codes these latents
            prior = self.picture.prior(self.codec, z_hat, rect)
            out = refine_context(self.model, self.codec, x, ys, prior, q, self.schedule, progress=tick)
        else:
            prior = self.picture.prior(HyperpriorCodec(self.model), z_hat, rect)
            out = refine_residuals(self.model, x, ys, z_hat, q, self.schedule, prior=prior, progress=tick)
        next(steps, None)  # ends (and closes) the bar
        return out

    def encode(self, rate: float) -> Encoded:
        params = self._params(int(round(min(max(rate, 0.0), 100.0) * 100)))
        q = params.quality / 100.0  # the decoder sees only the stored centi-quality
        pic = self.picture
        ys, z_hat = self.model.scale_latents(self.y.to(self.device), q)
        ys, z_hat = ys.cpu(), z_hat.cpu()
        payloads, ys_hat = [], torch.empty(ys.shape, dtype=torch.float32)
        for k, rect in enumerate(pic.segments):
            ys_k = _crop(ys, rect)
            if self.schedule is not None:
                ys_k = self._refine(ys_k, rect, z_hat, q)
            coded = self.codec.compress_latents(ys_k, pic.prior(self.codec, z_hat, rect))
            _crop(ys_hat, rect)[...] = coded.ys_hat
            payloads.append(join_parts(([self.codec.code_hyper(z_hat)] if k == 0 else []) + coded.parts))
        if self.alpha is not None:
            payloads.append(self.alpha)

        def reconstruct() -> Image.Image:
            rgb = synthesize_windowed(self.model, ys_hat, q, (0, 0, params.width, params.height))
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


def check_region(region: tuple[int, int, int, int], params: ImageParams) -> tuple[int, int, int, int]:
    """``(x, y, width, height)`` in pixels, inside the image and not empty.

    Raises:
        InvalidArgumentError: a region outside the image, or empty.
    """
    x, y, w, h = (int(v) for v in region)
    if w < 1 or h < 1 or x < 0 or y < 0 or x + w > params.width or y + h > params.height:
        raise InvalidArgumentError(
            f"region {x},{y},{w},{h} is not inside the {params.width}x{params.height} image"
        )
    return x, y, w, h


def _take(it: Iterator[bytes], n: int) -> Iterator[bytes]:
    for _ in range(n):
        payload = next(it, None)
        if payload is None:
            raise CorruptStreamError(f"stream holds fewer segments than its {n} picture segments")
        yield payload


def _decode_tiles(
    model: ImageModel, params: ImageParams, it: Iterator[bytes], progress: Progress
) -> np.ndarray:
    """Layout 0 (format versions 1-2): independent tiles, each with its own hyper-latents."""
    codec = model.latent_codec()
    out = np.empty((params.height, params.width, 3), dtype=np.uint8)
    q = params.quality / 100.0
    for x0, y0, w, h in progress(tiles(params)):
        payload = next(it, None)
        if payload is None:
            raise CorruptStreamError(f"stream holds fewer segments than its {params.segments} tiles")
        ys_hat = codec.decompress(split_parts(payload, codec.parts), model.unit_shape(w, h))
        out[y0 : y0 + h, x0 : x0 + w] = synthesize_windowed(model, ys_hat, q, (0, 0, w, h))
    return out


def _decode_segments(
    model: ImageModel,
    pic: Picture,
    payloads: Iterable[tuple[int, bytes]],
    progress: Progress,
    area: Rect | None = None,
    z_hat: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Entropy-decodes picture segments ``(k, payload)`` into the latents of ``area`` (hyper-latent
    units; default: the whole picture). Segment 0, which holds the hyper-latents, comes first
    unless ``z_hat`` (decoded before) is given. Returns ``ys_hat`` float32 ``[1, M, 4 h, 4 w]`` of
    the area and the hyper-latents."""
    codec: StagedCodec = model.latent_codec()
    _, _, hz, wz = pic.z_shape
    ax0, ay0, ax1, ay1 = area or (0, 0, wz, hz)
    ys_hat = torch.zeros((1, pic.m, 4 * (ay1 - ay0), 4 * (ax1 - ax0)), dtype=torch.float32)
    for k, payload in progress(payloads):
        parts = split_parts(payload, pic.parts(k, codec))
        if k == 0:
            z_hat = codec.decode_hyper(parts.pop(0), pic.z_shape)
        if z_hat is None:
            raise ValueError("segment 0 (the hyper-latents) must be decoded first")
        x0, y0, x1, y1 = rect = pic.segments[k]
        if x1 <= ax0 or ax1 <= x0 or y1 <= ay0 or ay1 <= y0:
            continue  # segment 0, read only for the hyper-latents
        seg = codec.decompress_latents(parts, pic.prior(codec, z_hat, rect))
        ys_hat[..., 4 * (y0 - ay0) : 4 * (y1 - ay0), 4 * (x0 - ax0) : 4 * (x1 - ax0)] = seg
    assert z_hat is not None
    return ys_hat, z_hat


def _decode_picture(model: ImageModel, pic: Picture, it: Iterator[bytes], progress: Progress) -> np.ndarray:
    """Layout 1: decodes the picture's segments one row of segments at a time and synthesises
    the pixel rows each row completes, so only about two rows of latents are held at once."""
    p = pic.params
    q = p.quality / 100.0
    per_row = p.tiles_x
    out = np.empty((p.height, p.width, 3), dtype=np.uint8)
    buf: torch.Tensor | None = None  # latents of rows [top, top + buf rows), the whole width
    top, done = 0, 0  # first latent row held; first pixel row not yet synthesised
    z_hat = None
    payloads = enumerate(_take(it, len(pic.segments)))
    for r in progress(range(p.tiles_y)):
        row = [next(payloads) for _ in range(per_row)]
        ys_row, z_hat = _decode_segments(model, pic, row, no_progress, _row_area(pic, r), z_hat)
        buf = ys_row if buf is None else torch.cat([buf, ys_row], dim=2)
        last = r == p.tiles_y - 1
        bottom = top + buf.shape[2]
        # pixel rows whose latents (and the synthesis margin below them) are all decoded
        limit = p.height if last else min((bottom - SYNTH_HALO) * 16, p.height)
        if limit > done:
            rect = (0, done - 16 * top, p.width, limit - 16 * top)
            out[done:limit] = synthesize_windowed(model, buf, q, rect)
            done = limit
        keep = max(done // 16 - SYNTH_HALO - top, 0)  # rows the next band's margin still needs
        buf, top = buf[:, :, keep:], top + keep
    return out


def _row_area(pic: Picture, r: int) -> Rect:
    """Segment row ``r`` as a hyper-latent-unit rectangle across the whole width."""
    x0, y0, _, _ = pic.segments[r * pic.params.tiles_x]
    _, _, x1, y1 = pic.segments[(r + 1) * pic.params.tiles_x - 1]
    return x0, y0, x1, y1


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
        it = iter(segments)
        if params.layout == 0:
            rgb = _decode_tiles(model, params, it, progress)
        else:
            rgb = _decode_picture(model, Picture(params, model.config["m"], model.config["n"]), it, progress)
        alpha = None
        if params.alpha:
            payload = next(it, None)
            if payload is None:
                raise CorruptStreamError("stream lacks its alpha segment")
            alpha = _decode_alpha(params, payload)
        if next(it, None) is not None:
            raise CorruptStreamError("stream holds more segments than the image has tiles")
        return _assemble(params, rgb, alpha)

    def decode_range_stream(
        self,
        model: ImageModel,
        params: ImageParams,
        reader: Any,
        *,
        start: float | None = None,
        frames: int | None = None,
        region: tuple[int, int, int, int] | None = None,
        device: str = "cpu",
    ) -> Iterator[Image.Image]:
        """Random access: the pixels ``region = (x, y, width, height)`` (see :meth:`decode_region`)."""
        if start is not None or frames is not None:
            raise InvalidArgumentError("images have no frames: decode a region (x, y, width, height)")
        if region is None:
            return iter([self.decode(model, params, reader.segments(), device=device)])
        return iter([self.decode_region(model, params, reader, region)])

    def decode_region(
        self, model: ImageModel, params: ImageParams, reader: Any, region: tuple[int, int, int, int]
    ) -> Image.Image:
        """The pixels ``region = (x, y, width, height)`` only, read through the index of ``reader``
        (a seekable ``StreamReader``). In a picture-layout stream (version 3) only the segments
        under the region and its synthesis margin are entropy-decoded and only the region is
        synthesised; the result equals the same crop of the whole decode within one level (float
        rounding). Older (tiled) streams are decoded whole, then cropped.

        Raises:
            InvalidArgumentError: a region outside the image, or empty.
        """
        x, y, w, h = check_region(region, params)
        if params.layout == 0:
            return self.decode(model, params, reader.segments()).crop((x, y, x + w, y + h))
        pic = Picture(params, model.config["m"], model.config["n"])
        ly, lx = pic.y_size
        # latents the region's pixels depend on, then the segments (hyper-latent units) holding them
        need = (
            max(x // 16 - SYNTH_HALO, 0),
            max(y // 16 - SYNTH_HALO, 0),
            min(-(-(x + w) // 16) + SYNTH_HALO, lx),
            min(-(-(y + h) // 16) + SYNTH_HALO, ly),
        )
        zneed = (need[0] // 4, need[1] // 4, -(-need[2] // 4), -(-need[3] // 4))
        picked = [
            k
            for k, (x0, y0, x1, y1) in enumerate(pic.segments)
            if x0 < zneed[2] and zneed[0] < x1 and y0 < zneed[3] and zneed[1] < y1
        ]
        area = (
            min(pic.segments[k][0] for k in picked),
            min(pic.segments[k][1] for k in picked),
            max(pic.segments[k][2] for k in picked),
            max(pic.segments[k][3] for k in picked),
        )
        ys_hat, _ = _decode_segments(
            model, pic, ((k, reader.segment(k)) for k in sorted({0, *picked})), no_progress, area
        )
        rgb = synthesize_windowed(
            model,
            ys_hat,
            params.quality / 100,
            (x - 64 * area[0], y - 64 * area[1], x - 64 * area[0] + w, y - 64 * area[1] + h),
        )
        alpha = None
        if params.alpha:
            alpha = _decode_alpha(params, reader.segment(params.segments - 1))[y : y + h, x : x + w]
        crop = ImageParams(w, h, params.channels, params.bit_depth, params.quality, params.tile, params.alpha)
        return _assemble(crop, rgb, alpha)

    def write(self, pieces: Iterable[Image.Image], params: ImageParams, out: BinaryIO, suffix: str) -> None:
        fmt = OUT_FORMATS.get(suffix)
        if fmt is None:
            raise UnsupportedInputError(f"images decode to {', '.join(sorted(OUT_FORMATS))}, not '{suffix}'")
        for img in pieces:
            if fmt == "JPEG" and img.mode not in ("L", "RGB"):
                img = img.convert("RGB")
            img.save(out, format=fmt, **LOSSY_OUT.get(fmt, {}))
