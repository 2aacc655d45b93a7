"""Classical image codecs behind one interface, plus the ncodec image codec.

Every image codec has ``name``, ``description``, ``qualities`` (default rate points, codec-specific units),
``settings`` (dict recorded in result files), ``encode(img: PIL.Image.Image, q) -> bytes`` (the complete
file / elementary stream whose length is the rate), ``decode(data: bytes) -> PIL.Image.Image`` (RGB) and
``versions() -> dict[str, str]``.

HEVC intra (``x265``) reproduces BPG's default pipeline: RGB is converted in numpy to full-range BT.601
YCbCr 4:4:4 (``Y = 0.299 R + 0.587 G + 0.114 B``, ``Cb = (B - Y) / 1.772 + 128``,
``Cr = (R - Y) / 1.402 + 128``), encoded as a single intra frame with constant QP, and the decoded planes
are converted back with the inverse full-range matrix. The byte count is the raw HEVC Annex-B
elementary stream (VPS/SPS/PPS + slice; x265's informational SEI is disabled as in BPG).

Audio and video baselines live in :mod:`ncodec.eval.baselines_audio` and
:mod:`ncodec.eval.baselines_video`.
"""

from __future__ import annotations

import io
import re
import sys
import warnings
from fractions import Fraction
from functools import lru_cache
from typing import Any, Protocol

import numpy as np
from PIL import Image, features

__all__ = [
    "ImageCodec",
    "JPEGCodec",
    "WebPCodec",
    "AVIFCodec",
    "X265IntraCodec",
    "NcodecImageCodec",
    "IMAGE_CODECS",
    "get_image_codec",
    "rgb_to_ycbcr_full",
    "ycbcr_full_to_rgb",
    "ncodec_api",
]


class ImageCodec(Protocol):
    """Interface shared by all image codecs used in the evaluation."""

    name: str
    description: str
    qualities: list[Any]
    settings: dict[str, Any]

    def encode(self, img: Image.Image, q: Any) -> bytes: ...

    def decode(self, data: bytes) -> Image.Image: ...

    def versions(self) -> dict[str, str]: ...


def _pil_versions() -> dict[str, str]:
    import PIL

    out = {"pillow": PIL.__version__}
    for feat in ("jpg", "webp", "avif"):
        try:
            v = features.version(feat)
        except Exception:  # noqa: BLE001
            v = None
        if v:
            out[f"pillow-{feat}"] = str(v)
    return out


def _pil_encode(img: Image.Image, fmt: str, **kw: Any) -> bytes:
    buf = io.BytesIO()
    img.convert("RGB").save(buf, format=fmt, **kw)
    return buf.getvalue()


def _pil_decode(data: bytes) -> Image.Image:
    with Image.open(io.BytesIO(data)) as im:
        return im.convert("RGB")


class JPEGCodec:
    """Baseline JPEG via Pillow/libjpeg(-turbo), ``optimize=True`` Huffman tables.

    ``subsampling=0`` is 4:4:4, ``2`` is 4:2:0. Quality ``q`` in 1..100.
    """

    def __init__(self, subsampling: int = 0, qualities: list[int] | None = None) -> None:
        self.subsampling = subsampling
        tag = {0: "444", 1: "422", 2: "420"}[subsampling]
        self.name = "jpeg" if subsampling == 0 else f"jpeg{tag}"
        self.description = f"JPEG 4:{tag[1]}:{tag[2]} (Pillow, optimize=True)"
        self.qualities = qualities or [5, 10, 20, 30, 40, 50, 60, 70, 80, 90, 95]
        self.settings = {"format": "JPEG", "subsampling": subsampling, "optimize": True}

    def encode(self, img: Image.Image, q: Any) -> bytes:
        return _pil_encode(img, "JPEG", quality=int(q), subsampling=self.subsampling, optimize=True)

    def decode(self, data: bytes) -> Image.Image:
        return _pil_decode(data)

    def versions(self) -> dict[str, str]:
        return _pil_versions()


class WebPCodec:
    """Lossy WebP via Pillow/libwebp, ``method=6`` (slowest, best). Quality ``q`` in 0..100."""

    name = "webp"
    description = "WebP lossy (Pillow/libwebp, method=6, 4:2:0)"

    def __init__(self, qualities: list[int] | None = None) -> None:
        self.qualities = qualities or [5, 15, 30, 45, 60, 75, 85, 95]
        self.settings = {"format": "WEBP", "method": 6, "lossless": False}

    def encode(self, img: Image.Image, q: Any) -> bytes:
        return _pil_encode(img, "WEBP", quality=int(q), method=6, lossless=False)

    def decode(self, data: bytes) -> Image.Image:
        return _pil_decode(data)

    def versions(self) -> dict[str, str]:
        return _pil_versions()


class AVIFCodec:
    """AVIF still image via Pillow (libavif), 4:4:4 full range, ``speed`` 0..10. Quality ``q`` 0..100."""

    name = "avif"

    def __init__(
        self, qualities: list[int] | None = None, speed: int = 6, subsampling: str = "4:4:4"
    ) -> None:
        if not features.check("avif"):
            raise RuntimeError("Pillow was built without AVIF support")
        self.qualities = qualities or [10, 25, 40, 55, 70, 80, 90, 95]
        self.speed = speed
        self.subsampling = subsampling
        self.description = f"AVIF (Pillow/libavif, {subsampling}, full range, speed={speed})"
        self.settings = {"format": "AVIF", "subsampling": subsampling, "speed": speed, "range": "full"}

    def encode(self, img: Image.Image, q: Any) -> bytes:
        return _pil_encode(
            img, "AVIF", quality=int(q), subsampling=self.subsampling, speed=self.speed, range="full"
        )

    def decode(self, data: bytes) -> Image.Image:
        return _pil_decode(data)

    def versions(self) -> dict[str, str]:
        return _pil_versions()


# ------------------------------------------------------------------------------------------ HEVC intra


def rgb_to_ycbcr_full(rgb: np.ndarray) -> np.ndarray:
    """RGB ``[H, W, 3]`` uint8 → planar YCbCr ``[3, H, W]`` uint8, BT.601 full range (JFIF / BPG default)."""
    x = np.asarray(rgb, dtype=np.float64)
    y = 0.299 * x[..., 0] + 0.587 * x[..., 1] + 0.114 * x[..., 2]
    cb = (x[..., 2] - y) / 1.772 + 128.0
    cr = (x[..., 0] - y) / 1.402 + 128.0
    return np.clip(np.rint(np.stack([y, cb, cr])), 0, 255).astype(np.uint8)


def ycbcr_full_to_rgb(ycc: np.ndarray) -> np.ndarray:
    """Planar YCbCr ``[3, H, W]`` uint8 (BT.601 full range) → RGB ``[H, W, 3]`` uint8 (inverse matrix)."""
    y, cb, cr = (np.asarray(p, dtype=np.float64) for p in ycc)
    r = y + 1.402 * (cr - 128.0)
    b = y + 1.772 * (cb - 128.0)
    g = (y - 0.299 * r - 0.114 * b) / 0.587
    return np.clip(np.rint(np.stack([r, g, b], axis=-1)), 0, 255).astype(np.uint8)


def frame_planes(frame: Any) -> list[np.ndarray]:
    """Planes of a PyAV ``VideoFrame`` as uint8 arrays with the line padding removed."""
    out = []
    for p in frame.planes:
        a = np.frombuffer(bytes(p), dtype=np.uint8).reshape(p.height, p.line_size)
        out.append(a[:, : p.width].copy())
    return out


@lru_cache(maxsize=4)
def encoder_banner(codec_name: str) -> str:
    """Version string an x264/x265 encoder writes into its SEI (``"x265 (build 216) - 4.2+1"``) or ``""``."""
    import av

    try:
        ctx = av.CodecContext.create(codec_name, "w")
        ctx.width, ctx.height, ctx.pix_fmt = 64, 64, "yuv420p"
        ctx.time_base = Fraction(1, 25)
        if codec_name == "libx265":
            ctx.options = {"x265-params": "log-level=none:info=1"}
        frame = av.VideoFrame.from_ndarray(np.zeros((96, 64), np.uint8), format="yuv420p")
        data = b"".join(bytes(p) for p in list(ctx.encode(frame)) + list(ctx.encode(None)))
    except Exception:  # noqa: BLE001
        return ""
    m = re.search(rb"(x26[45][ -][^\x00]{0,80}?)(?::\[| - H\.26|\x00)", data)
    return m.group(1).decode("ascii", "replace").strip() if m else ""


def av_versions() -> dict[str, str]:
    """PyAV and libav* versions."""
    import av

    out = {"av": av.__version__}
    for k, v in av.library_versions.items():
        out[k] = ".".join(str(x) for x in v)
    return out


class X265IntraCodec:
    """HEVC intra (libx265 through PyAV), 4:4:4 full-range BT.601 YCbCr as BPG does; ``q`` = QP 0..51."""

    name = "x265"

    def __init__(
        self, qualities: list[int] | None = None, preset: str = "slow", tune: str = "psnr", threads: int = 0
    ) -> None:
        self.qualities = qualities or [47, 42, 37, 32, 27, 22, 17, 12]
        self.preset = preset
        self.tune = tune
        self.threads = threads
        self.description = (
            f"HEVC intra libx265 via PyAV, yuv444p BT.601 full range (BPG-like), preset={preset}, "
            f"tune={tune}, constant QP"
        )
        self.settings = {
            "codec": "libx265",
            "pix_fmt": "yuv444p",
            "color": "BT.601 full range (numpy)",
            "preset": preset,
            "tune": tune,
            "rate_control": "constant QP",
            "x265-params": "keyint=1:info=0:qp=<q>",
            "bitstream": "raw HEVC Annex-B elementary stream",
        }

    def encode(self, img: Image.Image, q: Any) -> bytes:
        import av

        rgb = np.asarray(img.convert("RGB"))
        h, w = rgb.shape[:2]
        ycc = rgb_to_ycbcr_full(rgb)
        frame = av.VideoFrame.from_ndarray(ycc, format="yuv444p")
        frame.color_range = 2  # AVCOL_RANGE_JPEG (full)
        frame.pts = 0
        ctx = av.CodecContext.create("libx265", "w")
        ctx.width, ctx.height, ctx.pix_fmt = w, h, "yuv444p"
        ctx.time_base = Fraction(1, 25)
        ctx.color_range = 2
        params = f"keyint=1:min-keyint=1:info=0:log-level=error:qp={int(q)}"
        if self.threads:
            params += f":pools={self.threads}:frame-threads=1"
        ctx.options = {"preset": self.preset, "tune": self.tune, "x265-params": params}
        packets = list(ctx.encode(frame)) + list(ctx.encode(None))
        return b"".join(bytes(p) for p in packets)

    def decode(self, data: bytes) -> Image.Image:
        import av

        ctx = av.CodecContext.create("hevc", "r")
        frames = list(ctx.decode(av.Packet(data))) + list(ctx.decode(None))
        if not frames:
            raise RuntimeError("HEVC decoder returned no frame")
        f = frames[0]
        if f.format.name != "yuv444p":
            f = f.reformat(format="yuv444p")
        return Image.fromarray(ycbcr_full_to_rgb(np.stack(frame_planes(f))), "RGB")

    def versions(self) -> dict[str, str]:
        v = av_versions()
        v["libx265"] = encoder_banner("libx265")
        return v


# ---------------------------------------------------------------------------------------- ncodec


_NCODEC_WARNED: set[str] = set()


def ncodec_api() -> Any | None:
    """Return the ``ncodec.codec`` module if it provides ``encode``/``decode``, else ``None``.

    Prints a warning to stderr once per process when it is missing.
    """
    try:
        import ncodec.codec as api

        if not (hasattr(api, "encode") and hasattr(api, "decode")):
            raise ImportError("ncodec.codec has no encode/decode yet")
        return api
    except Exception as e:  # noqa: BLE001 - any import-time failure means "not available"
        if "ncodec" not in _NCODEC_WARNED:
            _NCODEC_WARNED.add("ncodec")
            print(
                f"warning: ncodec codec unavailable, skipping it ({type(e).__name__}: {e})", file=sys.stderr
            )
        return None


class NcodecImageCodec:
    """The project's learned image codec (``ncodec.codec.encode/decode``); ``q`` = quality 0..100."""

    name = "ncodec"

    def __init__(
        self,
        qualities: list[float] | None = None,
        model: str | None = None,
        device: str = "cpu",
        effort: int = 0,
    ):
        api = ncodec_api()
        if api is None:
            raise ImportError("ncodec.codec is not available")
        self._api = api
        self.model = model
        self.device = device
        self.effort = effort
        if effort:
            self.name = f"ncodec-e{effort}"
        elif model and model != "image-hp-v1":
            self.name = f"ncodec-{model}"
        self.qualities = qualities or [2, 10, 20, 35, 50, 65, 80, 95]
        self.description = (
            f"ncodec learned image codec (model={model or 'default'}, device={device}, effort={effort})"
        )
        self.settings = {"model": model, "device": device, "rate_control": "quality", "effort": effort}

    def encode(self, img: Image.Image, q: Any) -> bytes:
        kw = {"effort": self.effort} if self.effort else {}
        return self._api.encode(
            img.convert("RGB"), quality=float(q), model=self.model, device=self.device, **kw
        )

    def decode(self, data: bytes) -> Image.Image:
        out = self._api.decode(data, device=self.device)
        return out.convert("RGB")

    def versions(self) -> dict[str, str]:
        import torch

        v = {"torch": torch.__version__}
        try:
            from importlib.metadata import version

            v["ncodec"] = version("ncodec")
        except Exception:  # noqa: BLE001
            v["ncodec"] = getattr(self._api, "__version__", "unknown")
        return v


def _named(codec: NcodecImageCodec) -> NcodecImageCodec:
    """``codec`` named after its model (``ncodec-image-hp-v1``), whatever the default model is."""
    codec.name = f"ncodec-{codec.model}"
    return codec


IMAGE_CODECS: dict[str, Any] = {
    "ncodec": NcodecImageCodec,
    # encoder effort levels (latent optimisation; same decoder), as separate curves
    "ncodec-e1": lambda **kw: NcodecImageCodec(effort=1, **kw),
    "ncodec-e2": lambda **kw: NcodecImageCodec(effort=2, **kw),
    "ncodec-e3": lambda **kw: NcodecImageCodec(effort=3, **kw),
    # the context model (image-hp-v1's transforms, channel-conditional entropy model)
    "ncodec-image-ctx-v1": lambda **kw: NcodecImageCodec(**{**kw, "model": "image-ctx-v1"}),
    "ncodec-image-ctx-v2": lambda **kw: NcodecImageCodec(**{**kw, "model": "image-ctx-v2"}),
    # the hyperprior model by name (a curve beside the default once the default is another model)
    "ncodec-image-hp-v1": lambda **kw: _named(NcodecImageCodec(**{**kw, "model": "image-hp-v1"})),
    "jpeg": lambda **kw: JPEGCodec(subsampling=0, **kw),
    "jpeg444": lambda **kw: JPEGCodec(subsampling=0, **kw),
    "jpeg420": lambda **kw: JPEGCodec(subsampling=2, **kw),
    "webp": WebPCodec,
    "avif": AVIFCodec,
    "x265": X265IntraCodec,
    "hevc": X265IntraCodec,
}


def get_image_codec(name: str, **kwargs: Any) -> Any:
    """Instantiate an image codec by name (``ncodec, jpeg, jpeg420, webp, avif, x265``)."""
    try:
        factory = IMAGE_CODECS[name.lower()]
    except KeyError:
        raise ValueError(f"unknown image codec {name!r}; choose from {sorted(IMAGE_CODECS)}") from None
    codec = factory(**kwargs)
    if name.lower() == "jpeg444":
        codec.name = "jpeg444"
    return codec


def _silence_warnings() -> None:
    warnings.filterwarnings("ignore", message=".*AVIF.*")
