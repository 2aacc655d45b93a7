"""Audio file I/O through PyAV (FFmpeg): read WAV, FLAC, MP3, OGG/Vorbis, Opus, M4A/AAC to float32
``[channels, samples]``; write WAV (16-bit PCM) or FLAC (16-bit) incrementally, block by block."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path
from typing import BinaryIO

import numpy as np

from ncodec.codec.errors import UnsupportedInputError

OUT_FORMATS = {
    ".wav": ("wav", "pcm_s16le"),
    ".flac": ("flac", "flac"),
    ".mp3": ("mp3", "libmp3lame"),
    ".opus": ("opus", "libopus"),
    ".ogg": ("ogg", "libopus"),
    ".m4a": ("ipod", "aac"),
}
"""Output suffix -> (FFmpeg muxer, encoder). WAV and FLAC are 16-bit; the lossy ones use the
encoder's default bit rate and, where it does not take the signal's rate (Opus), the nearest
higher rate it takes."""
_CODEC_OF = {mux: enc for mux, enc in OUT_FORMATS.values()}
MAX_CHANNELS = 8


def _layout(channels: int):
    import av

    names = {1: "mono", 2: "stereo", 3: "2.1", 4: "quad", 5: "5.0", 6: "5.1", 7: "6.1", 8: "7.1"}
    return av.AudioLayout(names[channels])


def read_audio(path: str | Path | BinaryIO) -> tuple[np.ndarray, int]:
    """Decodes the first audio stream of a file to (float32 ``[C, T]`` in about ``[-1, 1]``, rate in Hz).

    Raises:
        UnsupportedInputError: missing or unreadable file, no audio stream, or more than 8 channels.
    """
    import av

    if isinstance(path, str | Path):  # else a binary file object (standard input read into memory)
        path = Path(path)
        if not path.exists():
            raise UnsupportedInputError(f"{path}: no such file")
    try:
        with av.open(str(path) if isinstance(path, Path) else path) as c:
            if not c.streams.audio:
                raise UnsupportedInputError(f"{path}: no audio stream")
            st = c.streams.audio[0]
            chunks: list[np.ndarray] = []
            sr = 0
            nch = 0
            res = None
            for fr in c.decode(st):
                if res is None:
                    sr, nch = fr.sample_rate, len(fr.layout.channels)
                    if not 1 <= nch <= MAX_CHANNELS:
                        raise UnsupportedInputError(f"{path}: {nch} channels (1..{MAX_CHANNELS} supported)")
                    # interleaved float: one plane whatever the channel count (PyAV 18.1 reports
                    # nch + 1 planes for a planar 8-channel frame, and reading the last crashes)
                    res = av.AudioResampler(format="flt", layout=fr.layout, rate=sr)
                for o in res.resample(fr):
                    chunks.append(_interleaved(o, nch))
            if res is not None:
                for o in res.resample(None):
                    chunks.append(_interleaved(o, nch))
    except UnsupportedInputError:
        raise
    except (av.error.FFmpegError, ValueError, OSError) as e:
        raise UnsupportedInputError(f"{path}: cannot read audio ({e})") from None
    if not chunks:
        raise UnsupportedInputError(f"{path}: no audio samples")
    x = np.concatenate(chunks, axis=1).astype(np.float32)
    return np.ascontiguousarray(x), int(sr)


def _interleaved(frame, nch: int) -> np.ndarray:
    """An interleaved float frame (``flt``, one plane of ``samples * nch`` values) as ``[nch, samples]``."""
    a = np.frombuffer(memoryview(frame.planes[0]), dtype=np.float32)[: frame.samples * nch]
    if a.size != frame.samples * nch:
        raise UnsupportedInputError(f"audio frame holds {a.size} values, expected {frame.samples * nch}")
    return a.reshape(frame.samples, nch).T.copy()


class AudioWriter:
    """Writes float32 ``[C, n]`` blocks to a file object as they come, in one of the muxers of
    :data:`OUT_FORMATS` (``wav``, ``flac``: 16-bit samples; ``mp3``, ``opus``, ``ogg``, ``ipod``)."""

    def __init__(self, f: BinaryIO, fmt: str, sample_rate: int, channels: int, kbps: float | None = None):
        """``kbps``: the lossy encoders' target bit rate (default: the encoder's own)."""
        import av

        if fmt not in _CODEC_OF:
            raise ValueError(f"unsupported output format {fmt}")
        self.container = av.open(f, "w", format=fmt)
        codec = av.Codec(_CODEC_OF[fmt], "w")
        rates = sorted(codec.audio_rates or ())
        rate = (
            sample_rate
            if not rates or sample_rate in rates
            else next((r for r in rates if r > sample_rate), rates[-1])
        )
        self.layout = _layout(channels)
        self.stream = self.container.add_stream(codec.name, rate=rate, layout=self.layout)
        if kbps is not None:
            self.stream.bit_rate = int(round(kbps * 1000))
        formats = [x.name for x in codec.audio_formats or ()]
        self.stream.format = "s16" if not formats or "s16" in formats else formats[0]
        self.sample_rate = sample_rate
        self.channels = channels
        self.pts = 0

    def write(self, block: np.ndarray) -> None:
        import av

        block = np.asarray(block, dtype=np.float32)
        if block.shape[1] == 0:
            return
        pcm = np.round(np.clip(block, -1.0, 32767 / 32768) * 32768).astype(np.int16)
        frame = av.AudioFrame.from_ndarray(
            np.ascontiguousarray(pcm.T.reshape(1, -1)), format="s16", layout=self.layout
        )
        frame.sample_rate = self.sample_rate
        frame.pts = self.pts
        frame.time_base = Fraction(1, self.sample_rate)
        self.pts += block.shape[1]
        for pkt in self.stream.encode(frame):
            self.container.mux(pkt)

    def close(self) -> None:
        for pkt in self.stream.encode(None):
            self.container.mux(pkt)
        self.container.close()


def write_audio(path_or_file, x: np.ndarray, sample_rate: int, fmt: str | None = None) -> None:
    """Writes a whole float32 ``[C, T]`` signal to WAV or FLAC (format from the suffix if not given)."""
    if fmt is None:
        fmt = OUT_FORMATS[Path(path_or_file).suffix.lower()][0]
    f = open(path_or_file, "wb") if isinstance(path_or_file, str | Path) else path_or_file
    try:
        w = AudioWriter(f, fmt, sample_rate, x.shape[0])
        w.write(x)
        w.close()
    finally:
        if isinstance(path_or_file, str | Path):
            f.close()
