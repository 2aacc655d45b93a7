"""The audio medium: samples <-> 16 kHz chunks <-> latents <-> payload parts <-> container segments.

* **Model rate.** The model runs at 16 kHz mono (:data:`ncodec.models.audio.SAMPLE_RATE`). Input at
  any rate (8-192 kHz) is resampled to 16 kHz with ``torchaudio.functional.resample`` (windowed sinc,
  zero phase) and the decoder resamples back, so the output has the input's rate and length; content
  above 8 kHz is not coded.
* **Channels.** Stereo is coded as mid/side (``M = (L+R)/2``, ``S = (L-R)/2``; channel mode 1); other
  channel counts code each channel independently (mode 0). The coded signals of a chunk are one batch.
* **Chunks.** The stream is cut into chunks of ``chunk`` input samples (default 2 s; ``chunk * 16000
  / sample_rate`` must be an integer ``Cm >= 640``). Chunk ``k`` codes the model-rate samples
  ``[k*Cm - O, min((k+1)*Cm, T16) + O)`` with ``O = 320`` (20 ms) of real neighbouring signal on each
  side (zeros outside the signal), padded with zeros to a multiple of ``FRAME`` = 160 samples
  (10 ms, one latent frame). Every chunk decodes on its own (random access through the index); a
  sequential decoder crossfades the ``2*O`` samples two neighbouring chunks share with a sin^2
  window, so no seam is audible. Memory is bounded by one
  chunk; a decoder emits chunk ``k`` up to ``(k+1)*Cm - O`` as soon as it has read segment ``k``.
* **Chunk payload** (FORMAT.md, "Audio data segments"): the model's latent-codec payload; for
  ``audio-hp-v1`` the hyper-latent part, then the latent part, as for an image tile.
* **Rate.** The header's ``rate`` (kbit/s x 10) is the nominal bitrate of one 16 kHz mono signal; the
  decoder derives its gains from this integer alone.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import torch

from ncodec.bitstream.container import MEDIA_AUDIO
from ncodec.bitstream.errors import CorruptStreamError, LimitExceededError
from ncodec.bitstream.params import MAX_AUDIO_SAMPLES, AudioParams
from ncodec.codec.audio_io import OUT_FORMATS
from ncodec.codec.errors import InvalidArgumentError, UnsupportedInputError
from ncodec.codec.medium import EffortAnalysis, Encoded, MediumCodec, Progress, Target, no_progress
from ncodec.models.audio_latent_opt import AUDIO_EFFORTS, applies, refine_audio
from ncodec.models.audio_model import FRAME, SAMPLE_RATE, AudioModel
from ncodec.models.latent_codecs import LatentCodec, split_parts

AUDIO_EXTS = frozenset({".wav", ".flac", ".mp3", ".ogg", ".opus", ".m4a", ".aac"})

CHUNK_SECONDS = 2
MAX_CHUNK_16K = 10 * SAMPLE_RATE  # decoder limit: chunks of at most 10 s (bounds memory per chunk)
OVERLAP = 320  # model-rate samples shared with each neighbouring chunk
MIN_RATE, MAX_RATE = 20, 2000  # rate field range the encoder searches (2-200 kbit/s nominal)
Q_LO, Q_HI = 60, 640  # --quality 0..100 maps onto 6-64 kbit/s nominal
DEFAULT_QUALITY = 50.0


def quality_to_rate(quality: float) -> int:
    """Quality 0..100 -> rate field (kbit/s x 10), log-linear from 6 to 64 kbit/s."""
    q = min(max(float(quality), 0.0), 100.0) / 100.0
    return int(round(Q_LO * (Q_HI / Q_LO) ** q))


# ---- resampling ------------------------------------------------------------------------------


class StreamResampler:
    """Block-wise ``torchaudio.functional.resample`` with enough context that the result equals
    resampling the whole signal (up to float rounding). Blocks are cut at multiples of
    ``sr_in / gcd``, where input and output sample times coincide."""

    def __init__(self, sr_in: int, sr_out: int, channels: int):
        g = math.gcd(sr_in, sr_out)
        self.sr_in, self.sr_out = sr_in, sr_out
        self.p_in, self.p_out = sr_in // g, sr_out // g
        need = 8 * max(1, math.ceil(sr_in / min(sr_in, sr_out))) + 16
        self.ctx = -(-need // self.p_in) * self.p_in
        self.buf = np.zeros((channels, self.ctx), dtype=np.float32)  # ctx zeros of left context
        self.done = 0  # input samples already turned into output (position of buf[:, ctx])

    def _run(self, x: np.ndarray, n_in: int) -> np.ndarray:
        if self.sr_in == self.sr_out:
            return x[:, self.ctx : self.ctx + n_in]
        import torchaudio.functional as AF

        y = AF.resample(torch.from_numpy(np.ascontiguousarray(x)), self.sr_in, self.sr_out).numpy()
        o = self.ctx // self.p_in * self.p_out
        return y[:, o : o + n_in // self.p_in * self.p_out]

    def push(self, x: np.ndarray) -> np.ndarray:
        self.buf = np.concatenate([self.buf, np.asarray(x, dtype=np.float32)], axis=1)
        avail = self.buf.shape[1] - 2 * self.ctx
        n = max(0, avail // self.p_in * self.p_in)
        if n == 0:
            return np.zeros((self.buf.shape[0], 0), dtype=np.float32)
        out = self._run(self.buf[:, : n + 2 * self.ctx], n)
        self.buf = self.buf[:, n:]
        self.done += n
        return out

    def flush(self) -> np.ndarray:
        """The rest (zeros after the end), rounded up to whole periods: trim to the expected length."""
        rest = self.buf.shape[1] - self.ctx
        n = -(-rest // self.p_in) * self.p_in
        x = np.concatenate([self.buf, np.zeros((self.buf.shape[0], n - rest + self.ctx), np.float32)], axis=1)
        self.buf = self.buf[:, :0]
        return self._run(x, n) if n else np.zeros((x.shape[0], 0), dtype=np.float32)


# ---- geometry --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Layout:
    """Chunk geometry of a stream at the model rate (see the module docstring)."""

    samples: int  # per channel, input rate
    sample_rate: int
    chunk: int  # input samples per chunk

    @property
    def cm(self) -> int:
        return self.chunk * SAMPLE_RATE // self.sample_rate

    @property
    def t16(self) -> int:
        return -(-self.samples * SAMPLE_RATE // self.sample_rate)

    @property
    def chunks(self) -> int:
        return -(-self.samples // self.chunk)

    def region(self, k: int) -> tuple[int, int, int]:
        """Chunk ``k``: model-rate start, end (exclusive, unpadded) and padded length."""
        s = k * self.cm - OVERLAP
        e = min((k + 1) * self.cm, self.t16) + OVERLAP
        return s, e, -(-(e - s) // FRAME) * FRAME


def check_layout(p: AudioParams) -> Layout:
    """The chunk geometry of checked params (``AudioParams.check`` validates the fields alone;
    this adds what depends on the model rate).

    Raises:
        LimitExceededError: a chunk that is not a whole number of model-rate samples, or too long.
    """
    lay = Layout(p.samples, p.sample_rate, p.chunk)
    if p.chunk * SAMPLE_RATE % p.sample_rate or not 2 * OVERLAP <= lay.cm <= MAX_CHUNK_16K:
        raise LimitExceededError(f"chunk of {p.chunk} samples at {p.sample_rate} Hz is not supported")
    return lay


def default_chunk(sample_rate: int) -> int:
    return CHUNK_SECONDS * sample_rate


# ---- encoder ---------------------------------------------------------------------------------


def prepare(samples: np.ndarray, sample_rate: int) -> np.ndarray:
    """Checks and normalises an input signal to float32 ``[C, T]``."""
    x = np.asarray(samples)
    if x.ndim == 1:
        x = x[None]
    if x.ndim != 2 or not np.issubdtype(x.dtype, np.number):
        raise UnsupportedInputError("audio must be a numeric array [channels, samples] or [samples]")
    if x.shape[0] > 8 and x.shape[1] <= 8:
        x = x.T  # [T, C] given: more rows than any channel count ([C, T] with T < C stays as is)
    if np.issubdtype(x.dtype, np.integer):
        x = x.astype(np.float32) / float(np.iinfo(x.dtype).max + 1)
    x = np.ascontiguousarray(x, dtype=np.float32)
    if x.shape[1] == 0:
        raise UnsupportedInputError("empty audio (no samples)")
    if not 1 <= x.shape[0] <= 8:
        raise UnsupportedInputError(f"{x.shape[0]} channels (1..8 supported)")
    if not 8000 <= int(sample_rate) <= 192000:
        raise UnsupportedInputError(f"sample rate {sample_rate} Hz outside 8000..192000")
    if x.shape[1] > MAX_AUDIO_SAMPLES:
        raise UnsupportedInputError("audio too long")
    if not np.isfinite(x).all():
        raise UnsupportedInputError("audio holds NaN or infinite samples")
    return x


def to_coded(x: np.ndarray, mode: int) -> np.ndarray:
    if mode == 1:
        return np.stack([(x[0] + x[1]) * 0.5, (x[0] - x[1]) * 0.5])
    return x


def from_coded(x: np.ndarray, mode: int) -> np.ndarray:
    if mode == 1:
        return np.stack([x[0] + x[1], x[0] - x[1]])
    return x


def model_chunks(x: np.ndarray, sample_rate: int, lay: Layout) -> Iterator[np.ndarray]:
    """Yields chunk regions at the model rate, ``[C, padded length]``, resampling block by block."""
    rs = StreamResampler(sample_rate, SAMPLE_RATE, x.shape[0])
    have = np.zeros((x.shape[0], OVERLAP), dtype=np.float32)  # model samples from -OVERLAP on
    have_start = -OVERLAP
    pos, flushed = 0, False
    for k in range(lay.chunks):
        s, e, n = lay.region(k)
        while have_start + have.shape[1] < e and pos < x.shape[1]:
            have = np.concatenate([have, rs.push(x[:, pos : pos + lay.chunk])], axis=1)
            pos += lay.chunk
        if have_start + have.shape[1] < e and not flushed:
            have = np.concatenate([have, rs.flush()], axis=1)
            have = have[:, : lay.t16 - have_start]  # zeros after the end of the signal
            flushed = True
        region = np.zeros((x.shape[0], n), dtype=np.float32)
        seg = have[:, s - have_start : e - have_start]
        region[:, : seg.shape[1]] = seg
        yield region
        cut = (k + 1) * lay.cm - OVERLAP - have_start
        have, have_start = have[:, cut:], have_start + cut


class ChunkAnalysis:
    """One chunk's analysis ``y`` (rate independent), kept so rate control can try many rates;
    with ``keep`` also its waveform (what the encoder effort optimises against)."""

    def __init__(self, model: AudioModel, region: np.ndarray, device: str, keep: bool = False):
        self.model = model
        self.frames = region.shape[1] // FRAME
        self.region = torch.from_numpy(region)[:, None] if keep else None
        with torch.no_grad():
            self.y = model.analyze(torch.from_numpy(region)[:, None].to(device))

    def latents(self, rate: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Scaled latents ``ys`` and hyper-latents ``z_hat`` at ``rate`` (kbit/s x 10)."""
        return self.model.scale(self.y, rate / 10)


class AudioAnalysis(EffortAnalysis):
    """Every chunk's analysis of one prepared signal; :meth:`encode` takes the rate field
    (kbit/s x 10, clamped to 1..65535)."""

    def __init__(
        self,
        model: AudioModel,
        x: np.ndarray,
        sample_rate: int,
        chunk: int | None,
        device: str,
        progress: Progress = no_progress,
        effort: int = 0,
    ):
        chunk = chunk or default_chunk(sample_rate)
        self.schedule = AUDIO_EFFORTS[effort]
        self.model, self.device = model, device
        self.mode = 1 if x.shape[0] == 2 else 0
        self.base = (sample_rate, x.shape[0], self.mode, x.shape[1], chunk)
        self.seconds = x.shape[1] / sample_rate
        lay = Layout(x.shape[1], sample_rate, chunk)
        if chunk * SAMPLE_RATE % sample_rate or not 2 * OVERLAP <= lay.cm <= MAX_CHUNK_16K or lay.cm % FRAME:
            raise InvalidArgumentError(f"chunk of {chunk} samples at {sample_rate} Hz is not whole 10 ms")
        self.codec: LatentCodec = model.latent_codec()
        regions = model_chunks(to_coded(x, self.mode), sample_rate, lay)
        keep = self.schedule is not None
        self.chunks = [ChunkAnalysis(model, r, device, keep) for r in progress(regions)]

    def _latents(self, c: ChunkAnalysis, rate: int) -> tuple[torch.Tensor, torch.Tensor]:
        """A chunk's ``(ys, z_hat)`` to code at ``rate``: optimised at an effort above 0
        (:mod:`ncodec.models.audio_latent_opt`; same hyper-latents, decoder unchanged)."""
        ys, z_hat = c.latents(rate)
        if self.schedule is not None and applies(self.model, rate / 10):
            ys = refine_audio(self.model, c.region, ys, z_hat, rate / 10, self.schedule)
        return ys, z_hat

    def encode(self, rate: float) -> Encoded:
        sr, ch, mode, samples, chunk = self.base
        params = AudioParams(sr, ch, mode, int(min(max(round(rate), 1), 65535)), samples, chunk)
        coded = [self.codec.compress(*self._latents(c, params.rate)) for c in self.chunks]

        def reconstruct() -> tuple[np.ndarray, int]:
            regions = (_synthesize_chunk(self.model, c.ys_hat, params, k) for k, c in enumerate(coded))
            blocks = list(_overlap_add(params, regions))
            return np.concatenate(blocks, axis=1), params.sample_rate

        return Encoded(params, [c.payload for c in coded], reconstruct)


# ---- decoder ---------------------------------------------------------------------------------


def decode_chunk_latents(model: AudioModel, payload: bytes, params: AudioParams, k: int) -> torch.Tensor:
    """Entropy-decodes chunk ``k`` (exact): the dequantised latents ``ys_hat`` ``[C, M, frames]``
    (float64)."""
    frames = check_layout(params).region(k)[2] // FRAME
    codec = model.latent_codec()
    return codec.decompress(split_parts(payload, codec.parts), model.unit_shape(params.channels, frames))


def _synthesize_chunk(model: AudioModel, ys_hat: torch.Tensor, params: AudioParams, k: int) -> np.ndarray:
    """Chunk ``k``'s latents -> its model-rate region ``[C, e - s]`` (coded channels, unpadded)."""
    s, e, _ = check_layout(params).region(k)
    x = model.decode_latents(ys_hat, params.rate / 10)[:, 0, : e - s]
    return x.cpu().numpy().astype(np.float32)


def _fade(n: int) -> np.ndarray:
    return (np.sin(0.5 * np.pi * (np.arange(n) + 0.5) / n) ** 2).astype(np.float32)


def _overlap_add(params: AudioParams, regions: Iterable[np.ndarray]) -> Iterator[np.ndarray]:
    """Crossfades chunk regions (model rate, in order) and resamples them to the stream's rate;
    yields output blocks ``[channels, n]`` float32, ``params.samples`` per channel in all.

    Raises:
        CorruptStreamError: fewer or more regions than the stream's chunks.
    """
    lay = check_layout(params)
    rs = StreamResampler(SAMPLE_RATE, params.sample_rate, params.channels)
    fade = _fade(2 * OVERLAP)
    tail = None
    emitted = 0
    it = iter(regions)

    def out(block: np.ndarray) -> np.ndarray:
        nonlocal emitted
        y = from_coded(block, params.channel_mode)[:, : params.samples - emitted]
        emitted += y.shape[1]
        return y

    for k in range(lay.chunks):
        r = next(it, None)
        if r is None:
            raise CorruptStreamError(f"stream holds fewer segments than its {lay.chunks} chunks")
        s, e, _ = lay.region(k)
        if k == 0:
            r, base = r[:, OVERLAP:], 0
        else:
            r = r.copy()
            r[:, : 2 * OVERLAP] = tail * (1 - fade) + r[:, : 2 * OVERLAP] * fade
            base = s
        if k == lay.chunks - 1:
            final = r[:, : lay.t16 - base]
        else:
            cut = (k + 1) * lay.cm - OVERLAP - base
            final, tail = r[:, :cut], r[:, cut : cut + 2 * OVERLAP]
        y = rs.push(final)
        if y.shape[1]:
            yield out(y)
    if next(it, None) is not None:
        raise CorruptStreamError("stream holds more segments than the audio has chunks")
    y = rs.flush()
    if y.shape[1]:
        yield out(y)
    if emitted < params.samples:
        yield out(np.zeros((params.channels, params.samples - emitted), dtype=np.float32))


def decode_blocks(
    model: AudioModel, params: AudioParams, segments: Iterable[bytes], progress: Progress = no_progress
) -> Iterator[np.ndarray]:
    """Decodes segments as they come; yields output blocks ``[channels, n]`` float32 at the stream's
    sample rate, ``params.samples`` per channel in all."""
    check_layout(params)
    regions = (
        _synthesize_chunk(model, decode_chunk_latents(model, payload, params, k), params, k)
        for k, payload in enumerate(progress(segments))
    )
    yield from _overlap_add(params, regions)


def decode_chunk_at(model: AudioModel, params: AudioParams, payload: bytes, k: int) -> np.ndarray:
    """Random access: chunk ``k`` alone, at the stream's rate: ``[channels, n]`` covering input samples
    ``k*chunk .. min((k+1)*chunk, samples)`` (no crossfade with the neighbours)."""
    lay = check_layout(params)
    if not 0 <= k < lay.chunks:
        raise IndexError(f"chunk {k} out of range 0..{lay.chunks - 1}")
    r = _synthesize_chunk(model, decode_chunk_latents(model, payload, params, k), params, k)
    rs = StreamResampler(SAMPLE_RATE, params.sample_rate, params.channels)
    a = OVERLAP // rs.p_out * rs.p_out  # keep aligned left context for the resampler
    r = r[:, OVERLAP - a :]
    y = np.concatenate([rs.push(r), rs.flush()], axis=1)
    skip = a // rs.p_out * rs.p_in
    n = min(params.chunk, params.samples - k * params.chunk)
    y = y[:, skip : skip + n]
    return from_coded(y, params.channel_mode)


# ---- the medium ------------------------------------------------------------------------------


class AudioCodec(MediumCodec):
    """Audio signals (``(samples [C, T], sample_rate)`` tuples); the rate parameter is the header's
    rate field, kbit/s x 10 of one 16 kHz mono signal."""

    name = "audio"
    media = MEDIA_AUDIO
    extensions = AUDIO_EXTS
    out_formats = {k: v[0] for k, v in OUT_FORMATS.items()}
    rate_unit = "kbit/s x 10"
    rate_range = (MIN_RATE, MAX_RATE)
    rate_step = 1.0
    rate_geometric = True

    def accepts(self, obj: Any) -> bool:
        return isinstance(obj, tuple)

    def sniff(self, data: bytes) -> bool:
        import io

        import av

        try:
            with av.open(io.BytesIO(data)) as c:
                return bool(c.streams.audio) and not c.streams.video
        except Exception:
            return False

    def read(self, path: Path) -> tuple[np.ndarray, int]:
        from ncodec.codec.audio_io import read_audio

        return read_audio(path)

    def analyse(
        self,
        model: AudioModel,
        obj: Any,
        *,
        device: str = "cpu",
        progress: Progress = no_progress,
        chunk: int | None = None,
        effort: int = 0,
        **options: Any,
    ) -> AudioAnalysis:
        """``obj``: ``(samples [C, T] or [T], sample_rate in Hz)``; ``chunk``: samples per chunk;
        ``effort``: 0 one pass, 1 latent optimisation (:mod:`ncodec.models.audio_latent_opt`,
        about 0.5 CPU-seconds per second of audio at each rate tried; same decoder)."""
        if effort not in AUDIO_EFFORTS:
            raise InvalidArgumentError(f"audio effort must be one of {sorted(AUDIO_EFFORTS)}")
        if len(obj) != 2:
            raise UnsupportedInputError("audio must be a (samples [C, T], sample_rate) tuple")
        try:
            sample_rate = int(obj[1])
        except (TypeError, ValueError):
            raise UnsupportedInputError("audio sample rate must be an integer") from None
        x = prepare(obj[0], sample_rate)
        return AudioAnalysis(model, x, sample_rate, chunk, device, progress, effort)

    def rate_of(self, quality: float) -> float:
        return float(quality_to_rate(quality))

    def targets(self, analysis: AudioAnalysis) -> dict[str, Target]:
        kbps = Target("kbps", "kbit/s", lambda data, enc: len(data) * 8 / analysis.seconds / 1000, "nearest")
        return {"kbps": kbps}

    def decode(
        self,
        model: AudioModel,
        params: AudioParams,
        segments: Iterable[bytes],
        *,
        device: str = "cpu",
        progress: Progress = no_progress,
    ) -> tuple[np.ndarray, int]:
        """The whole signal: ``(float32 [channels, samples], sample_rate)``."""
        blocks = list(decode_blocks(model, params, segments, progress))
        x = np.concatenate(blocks, axis=1) if blocks else np.zeros((params.channels, 0), np.float32)
        return x, params.sample_rate

    def decode_stream(
        self,
        model: AudioModel,
        params: AudioParams,
        segments: Iterable[bytes],
        *,
        device: str = "cpu",
        progress: Progress = no_progress,
    ) -> Iterator[np.ndarray]:
        """Blocks ``[channels, n]`` as the segments are read (bounded memory)."""
        return decode_blocks(model, params, segments, progress)

    def write(self, pieces: Iterable[np.ndarray], params: AudioParams, out: BinaryIO, suffix: str) -> None:
        from ncodec.codec.audio_io import AudioWriter

        fmt = OUT_FORMATS.get(suffix)
        if fmt is None:
            raise UnsupportedInputError(f"audio decodes to {', '.join(sorted(OUT_FORMATS))}, not '{suffix}'")
        w = AudioWriter(out, fmt[0], params.sample_rate, params.channels)
        for b in pieces:
            w.write(b)
        w.close()
