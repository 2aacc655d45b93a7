"""Classical audio codecs (Opus, AAC, MP3 through PyAV) and the ncodec audio codec, one interface.

Audio is ``numpy.ndarray`` float32 ``[C, T]`` in ``[-1, 1]`` with a sample rate in Hz. Each codec has
``name``, ``description``, ``rates`` (target bitrates in kbps), ``settings``,
``encode(samples, sample_rate, kbps) -> bytes`` (a complete in-memory file: Ogg/Opus, ADTS/AAC, MP3; its
length is the rate), ``decode(data) -> (samples [C, T'], sample_rate)`` and ``versions()``.

Decoded audio generally has a different length than the input (encoder priming/delay, frame padding);
use :func:`align` before computing metrics.
"""

from __future__ import annotations

import io
from typing import Any

import numpy as np

from .baselines import av_versions, ncodec_api

__all__ = ["AVAudioCodec", "NcodecAudioCodec", "AUDIO_CODECS", "get_audio_codec", "load_audio", "align"]

_LAYOUTS = {1: "mono", 2: "stereo"}


def load_audio(path: str) -> tuple[np.ndarray, int]:
    """Decode an audio file with PyAV → (float32 ``[C, T]`` in ``[-1, 1]``, sample rate in Hz)."""
    import av

    with av.open(str(path)) as c:
        st = c.streams.audio[0]
        sr = st.rate
        nch = st.channels
        res = av.AudioResampler(format="fltp", layout=_LAYOUTS.get(nch, "stereo"), rate=sr)
        chunks = []
        for fr in c.decode(st):
            for o in res.resample(fr):
                chunks.append(o.to_ndarray())
        for o in res.resample(None):
            chunks.append(o.to_ndarray())
    x = np.concatenate(chunks, axis=1).astype(np.float32)
    return x, int(sr)


def align(
    ref: np.ndarray, dec: np.ndarray, sample_rate: int, max_lag_s: float = 0.15
) -> tuple[np.ndarray, int]:
    """Compensate codec delay: shift ``dec`` [C, T'] to best match ``ref`` [C, T], crop/pad to length T.

    The lag in ``[-max_lag, max_lag]`` samples (at least 4096) maximising the cross-correlation of the mono
    mix-downs is used. Returns (aligned ``dec`` of shape ``ref.shape``, lag in samples; positive lag
    means ``dec`` was delayed).
    """
    ref = np.asarray(ref, dtype=np.float32)
    dec = np.asarray(dec, dtype=np.float32)
    if dec.shape[0] != ref.shape[0]:
        dec = np.repeat(dec.mean(axis=0, keepdims=True), ref.shape[0], axis=0)
    a = ref.mean(axis=0).astype(np.float64)
    b = dec.mean(axis=0).astype(np.float64)
    max_lag = max(4096, int(max_lag_s * sample_rate))
    n = 1 << int(np.ceil(np.log2(len(a) + len(b) + 1)))
    xc = np.fft.irfft(np.fft.rfft(b, n) * np.conj(np.fft.rfft(a, n)), n)
    lags = np.concatenate([np.arange(0, max_lag + 1), np.arange(-max_lag, 0)])
    vals = np.concatenate([xc[: max_lag + 1], xc[n - max_lag :]])
    lag = int(lags[int(np.argmax(vals))]) if np.any(vals != 0) else 0
    t = ref.shape[1]
    out = np.zeros_like(ref)
    if lag >= 0:
        seg = dec[:, lag : lag + t]
        out[:, : seg.shape[1]] = seg
    else:
        seg = dec[:, : t + lag]
        out[:, -lag : -lag + seg.shape[1]] = seg
    return out, lag


class AVAudioCodec:
    """A PyAV/FFmpeg audio encoder writing an in-memory container (constant target bitrate)."""

    def __init__(
        self,
        name: str,
        codec: str,
        container: str,
        description: str,
        rates: list[float] | None = None,
        options: dict[str, str] | None = None,
    ) -> None:
        self.name = name
        self.codec = codec
        self.container = container
        self.description = description
        self.rates = rates or [6, 12, 24, 32]
        self.options = options or {}
        self.settings = {"codec": codec, "container": container, "options": self.options, "rc": "target kbps"}

    def _enc_rate(self, sr: int) -> int:
        import av

        supported = sorted(av.codec.Codec(self.codec, "w").audio_rates or [sr])
        if sr in supported:
            return sr
        higher = [r for r in supported if r >= sr]
        return higher[0] if higher else supported[-1]

    def encode(self, samples: np.ndarray, sample_rate: int, kbps: float) -> bytes:
        """Encode float32 ``[C, T]`` at ``kbps`` kilobits/s target → the bytes of a complete file."""
        import av

        x = np.ascontiguousarray(np.asarray(samples, dtype=np.float32))
        if x.ndim == 1:
            x = x[None]
        nch = min(x.shape[0], 2)
        x = x[:nch]
        layout = _LAYOUTS[nch]
        buf = io.BytesIO()
        with av.open(buf, "w", format=self.container) as out:
            st = out.add_stream(self.codec, rate=self._enc_rate(sample_rate), layout=layout)
            st.bit_rate = int(round(kbps * 1000))
            if self.options:
                st.codec_context.options = dict(self.options)
            frame = av.AudioFrame.from_ndarray(x, format="fltp", layout=layout)
            frame.sample_rate = sample_rate
            frame.pts = 0
            frame.time_base = _fraction(1, sample_rate)
            for pkt in st.encode(frame):
                out.mux(pkt)
            for pkt in st.encode(None):
                out.mux(pkt)
        return buf.getvalue()

    def decode(self, data: bytes) -> tuple[np.ndarray, int]:
        """Decode a file produced by :meth:`encode` → (float32 ``[C, T']``, sample rate of the stream)."""
        import av

        with av.open(io.BytesIO(data), format=self.container) as c:
            st = c.streams.audio[0]
            nch = st.codec_context.channels or 1
            sr = st.codec_context.sample_rate
            res = av.AudioResampler(format="fltp", layout=_LAYOUTS.get(nch, "stereo"), rate=sr)
            chunks = [o.to_ndarray() for fr in c.decode(st) for o in res.resample(fr)]
            chunks += [o.to_ndarray() for o in res.resample(None)]
        return np.concatenate(chunks, axis=1).astype(np.float32), int(sr)

    def versions(self) -> dict[str, str]:
        return av_versions()


def _fraction(a: int, b: int):
    from fractions import Fraction

    return Fraction(a, b)


class NcodecAudioCodec:
    """The project's learned audio codec (``ncodec.codec`` with ``target_kbps``)."""

    name = "ncodec"

    def __init__(
        self, rates: list[float] | None = None, model: str | None = None, device: str = "cpu", effort: int = 0
    ):
        api = ncodec_api()
        if api is None:
            raise ImportError("ncodec.codec is not available")
        self._api = api
        self.model = model
        self.device = device
        self.rates = rates or [6, 12, 24, 32]
        self.effort = effort
        if effort:
            self.name = f"ncodec-e{effort}"
        self.description = f"ncodec learned audio codec (model={model or 'default'}, effort={effort})"
        self.settings = {"model": model, "device": device, "rc": "target_kbps", "effort": effort}

    def encode(self, samples: np.ndarray, sample_rate: int, kbps: float) -> bytes:
        return self._api.encode(
            (np.asarray(samples, np.float32), int(sample_rate)),
            target_kbps=float(kbps),
            model=self.model,
            device=self.device,
            **({"effort": self.effort} if self.effort else {}),
        )

    def decode(self, data: bytes) -> tuple[np.ndarray, int]:
        x, sr = self._api.decode(data, device=self.device)
        return np.asarray(x, dtype=np.float32), int(sr)

    def versions(self) -> dict[str, str]:
        import torch

        return {"torch": torch.__version__}


def _opus(**kw: Any) -> AVAudioCodec:
    return AVAudioCodec(
        "opus", "libopus", "ogg", "Opus (libopus via PyAV, Ogg, VBR, application=audio)", **kw
    )


def _aac(**kw: Any) -> AVAudioCodec:
    kw.setdefault("rates", [12, 24, 32, 48])
    return AVAudioCodec("aac", "aac", "adts", "AAC-LC (FFmpeg native encoder via PyAV, ADTS)", **kw)


def _mp3(**kw: Any) -> AVAudioCodec:
    kw.setdefault("rates", [8, 16, 24, 32])
    return AVAudioCodec("mp3", "libmp3lame", "mp3", "MP3 (libmp3lame via PyAV, CBR)", **kw)


def _ncodec_model(model: str):
    """A factory of the ncodec codec with ``model``, named ``ncodec-<model>`` (several ncodec
    models compared in one run)."""

    def make(**kw: Any) -> NcodecAudioCodec:
        codec = NcodecAudioCodec(**{**kw, "model": model})
        codec.name = f"ncodec-{model}"
        return codec

    return make


AUDIO_CODECS: dict[str, Any] = {
    "ncodec": NcodecAudioCodec,
    **{f"ncodec-{m}": _ncodec_model(m) for m in ("audio-hp-v1", "audio-pd-v1", "audio-ctx-v1")},
    # encoder latent optimisation (same decoder), as its own curve
    "ncodec-e1": lambda **kw: NcodecAudioCodec(effort=1, **kw),
    "opus": _opus,
    "aac": _aac,
    "mp3": _mp3,
}


def get_audio_codec(name: str, **kwargs: Any) -> Any:
    """Instantiate an audio codec by name (``ncodec, opus, aac, mp3``); ``rates`` overrides the kbps list."""
    if "qualities" in kwargs:
        kwargs["rates"] = kwargs.pop("qualities")
    try:
        factory = AUDIO_CODECS[name.lower()]
    except KeyError:
        raise ValueError(f"unknown audio codec {name!r}; choose from {sorted(AUDIO_CODECS)}") from None
    return factory(**kwargs)
