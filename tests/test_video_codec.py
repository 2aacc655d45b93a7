"""Video medium: PyAV I/O, GOP container, seeking, rate control, P-frame plumbing and damaged streams.

Small synthetic clips (128x96, 10 frames of a moving gradient) keep the whole file well under a
minute on one CPU thread.
"""

from __future__ import annotations

import argparse
import io
import random
import struct
import warnings
from fractions import Fraction

import numpy as np
import pytest
import torch

from ncodec.bitstream.container import StreamReader, read_stream, write_stream
from ncodec.bitstream.errors import BitstreamError, CorruptStreamError
from ncodec.bitstream.params import VideoParams
from ncodec.codec import video as V
from ncodec.codec.errors import UnsupportedInputError
from ncodec.codec.video_io import Colour, DroppedAudioWarning, VideoReader, write_video
from ncodec.models.latent_codecs import Y_LIMIT, Coded, UnitShape
from ncodec.models.registry import load_model

W, H, N, FPS = 128, 96, 10, Fraction(25)


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def frames(n: int = N, w: int = W, h: int = H) -> list[np.ndarray]:
    """A moving colour gradient with a grey square crossing it."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    out = []
    for t in range(n):
        r = 40 + 1.2 * xx + 5 * t
        g = 30 + 1.6 * yy + 3 * t
        b = 220 - 0.6 * (xx + yy) - 2 * t
        f = np.stack([r, g, b], -1)
        x0, y0 = 10 + 7 * t, 20 + 3 * t
        f[y0 : y0 + 24, x0 : x0 + 24] = 200
        out.append(np.clip(np.rint(f), 0, 255).astype(np.uint8))
    return out


@pytest.fixture(scope="module")
def model():
    return load_model("image-hp-v1")


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    p = tmp_path_factory.mktemp("video") / "clip.mkv"
    write_video(p, frames(), FPS, Colour(rgb=True))  # FFV1 RGB: lossless
    return p


@pytest.fixture(scope="module")
def stream(model, clip) -> bytes:
    buf = io.BytesIO()
    V.encode_file(model, clip, buf, quality=50, gop=4)
    return buf.getvalue()


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b) ** 2))
    return 10 * np.log10(255**2 / max(mse, 1e-12))


def decode_all(model, data: bytes) -> list[np.ndarray]:
    r = StreamReader(io.BytesIO(data))
    return list(V.decode_frames(model, VideoParams.from_bytes(r.header.params), r.segments()))


# ---- I/O ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("suffix", [".mkv", ".mp4", ".y4m"])
def test_io_round_trip(tmp_path, suffix):
    src = frames(6)
    p = tmp_path / f"a{suffix}"
    write_video(p, src, Fraction(30000, 1001))
    r = VideoReader(p)
    back = list(r)
    assert (r.width, r.height, r.count_frames(), len(back)) == (W, H, 6, 6)
    assert r.fps == Fraction(30000, 1001)
    assert back[0].shape == (H, W, 3) and back[0].dtype == np.uint8
    # 4:2:0 (and x264 at crf 10) are lossy, but close
    assert min(psnr(a, b) for a, b in zip(src, back)) > 30


def test_io_rgb_mkv_is_lossless(clip):
    assert all(np.array_equal(a, b) for a, b in zip(frames(), VideoReader(clip)))


def test_io_yuv420_round_trip_is_exact(tmp_path):
    """4:2:0 source -> RGB (nearest chroma) -> 4:2:0 (area chroma) gives the source's planes back
    (but where the YUV lies outside the RGB gamut)."""
    y4m = tmp_path / "a.y4m"
    write_video(y4m, frames(3), FPS)
    first = list(VideoReader(y4m))
    assert VideoReader(y4m).colour == Colour("bt601")  # Y4M: untagged, SD
    r = VideoReader(y4m)
    out = tmp_path / "b.y4m"
    write_video(out, first, FPS, r.colour)
    a = np.frombuffer(y4m.read_bytes(), np.uint8).astype(int)
    b = np.frombuffer(out.read_bytes(), np.uint8).astype(int)
    assert a.shape == b.shape and np.abs(a - b).max() <= 4
    assert np.count_nonzero(a - b) < a.size // 1000  # only YUV outside the RGB gamut (clipped) moves


def test_io_raw_yuv(tmp_path):
    y4m = tmp_path / "a.y4m"
    write_video(y4m, frames(4), FPS)
    raw = y4m.read_bytes()
    # strip the Y4M stream and frame headers to get planar 4:2:0
    body = raw[raw.index(b"\n") + 1 :]
    fsize = W * H * 3 // 2
    planes = b"".join(body[i + 6 : i + 6 + fsize] for i in range(0, len(body), fsize + 6))
    p = tmp_path / "a.yuv"
    p.write_bytes(planes)
    with pytest.raises(UnsupportedInputError):
        VideoReader(p)
    r = VideoReader(p, size="128x96", fps="25")
    got = list(r)
    assert r.count_frames() == 4 and len(got) == 4
    assert all(np.array_equal(a, b) for a, b in zip(VideoReader(y4m), got[:1]))


def test_io_file_objects_and_sniff(clip, tmp_path):
    from ncodec.codec.video_io import sniff

    data = clip.read_bytes()
    r = VideoReader(io.BytesIO(data))
    assert r.count_frames() == N and np.array_equal(next(iter(r)), frames(1)[0])
    assert sniff(data) and V.VideoCodec().sniff(data)
    y4m = tmp_path / "s.y4m"
    write_video(y4m, frames(1), FPS)
    assert sniff(y4m.read_bytes())
    assert not sniff(b"RIFF\x00\x00\x00\x00WAVEfmt ") and not sniff(b"\x89PNG\r\n")


def test_io_audio_dropped_with_warning(tmp_path):
    import av

    p = tmp_path / "av.mkv"
    with av.open(str(p), "w") as c:
        vs = c.add_stream("ffv1", rate=25)
        vs.width, vs.height, vs.pix_fmt = W, H, "yuv420p"
        aus = c.add_stream("pcm_s16le", rate=8000, layout="mono")
        for i, f in enumerate(frames(2)):
            fr = av.VideoFrame.from_ndarray(f, format="rgb24").reformat(format="yuv420p")
            fr.pts = i
            for pk in vs.encode(fr):
                c.mux(pk)
        af = av.AudioFrame.from_ndarray(np.zeros((1, 640), np.int16), format="s16", layout="mono")
        af.sample_rate, af.pts = 8000, 0
        for pk in aus.encode(af):
            c.mux(pk)
        for s in (vs, aus):
            for pk in s.encode(None):
                c.mux(pk)
    with pytest.warns(DroppedAudioWarning):
        r = VideoReader(p)
    assert r.has_audio and r.count_frames() == 2


def test_io_missing_and_bad_files(tmp_path):
    with pytest.raises(UnsupportedInputError):
        VideoReader(tmp_path / "none.mkv")
    bad = tmp_path / "bad.mkv"
    bad.write_bytes(b"not a video at all" * 10)
    with pytest.raises(UnsupportedInputError):
        VideoReader(bad)


# ---- coding ---------------------------------------------------------------------------------------


def test_params_block():
    p = VideoParams(1920, 1080, 30000, 1001, 300, 5000, 16, 7)
    assert VideoParams.from_bytes(p.to_bytes()) == p and len(p.to_bytes()) == 24
    assert p.segments == 19 and p.shape == (1920, 1080, 300)
    d = p.describe(1_000_000)
    assert d["frames"] == 300 and d["fps"] == "30000/1001" and d["colour"] == "bt601 full rgb"
    assert abs(d["kbps"] - 8000 / (300 * 1001 / 30000)) < 1e-6
    with pytest.raises(BitstreamError):
        VideoParams.from_bytes(p.to_bytes()[:-1])
    with pytest.raises(BitstreamError):
        VideoParams.from_bytes(VideoParams._S.pack(16, 16, 25, 1, 0, 0, 0, 0, 1))  # no frames


def test_round_trip(model, stream, tmp_path):
    r = StreamReader(io.BytesIO(stream))
    p = VideoParams.from_bytes(r.header.params)
    assert (p.width, p.height, p.frames, p.gop, p.fps_num, p.fps_den, p.segments) == (W, H, N, 4, 25, 1, 3)
    assert Colour.from_byte(p.colour).rgb
    dec = decode_all(model, stream)
    assert len(dec) == N and dec[0].shape == (H, W, 3)
    assert min(psnr(a, b) for a, b in zip(frames(), dec)) > 25
    # file outputs through the medium interface
    codec = V.VideoCodec()
    for suffix in (".mkv", ".mp4", ".y4m"):
        out = tmp_path / f"o{suffix}"
        with open(out, "wb") as f:
            params, n = codec.decode_file(io.BytesIO(stream), f, suffix, model=model)
        rd = VideoReader(out)
        assert n == N and rd.count_frames() == N and (rd.width, rd.height, rd.fps) == (W, H, FPS)
        back = list(rd)
        if suffix == ".mkv":  # RGB source -> lossless RGB FFV1
            assert all(np.array_equal(a, b) for a, b in zip(dec, back))


def test_in_memory_interface(model):
    codec = V.VideoCodec()
    arr = np.stack(frames(5))
    assert codec.accepts(arr) and codec.accepts(V.Video(arr)) and not codec.accepts(arr[0])
    an = codec.analyse(model, V.Video(arr, Fraction(24)), gop=2)
    enc = an.encode(40.0)
    assert enc.params.segments == len(enc.payloads) == 3
    header = StreamReader(io.BytesIO(_stream(model, enc.params, enc.payloads))).header
    video = codec.decode(model, VideoParams.from_bytes(header.params), enc.payloads)
    rec = enc.reconstruct()
    assert video.frames.shape == (5, H, W, 3) and video.fps == Fraction(24)
    assert np.array_equal(video.frames, rec.frames)  # the encoder's reconstruction is the decoder's
    kbps = codec.targets(an)["kbps"]
    assert kbps.mode == "nearest"


def _stream(model, params, payloads) -> bytes:
    from ncodec.bitstream.container import MEDIA_VIDEO, Header

    return write_stream(Header(MEDIA_VIDEO, model.model_id, model.digest[:16], params.to_bytes()), payloads)


def test_seek_matches_full_decode(model, stream, tmp_path):
    full = decode_all(model, stream)
    p = tmp_path / "s.ncb"
    p.write_bytes(stream)
    # 0.2 s at 25 fps is frame 5 (GOP 1, in-GOP 1); 3 frames cross into GOP 2
    got = list(V.decode_range(p, 0.2, 3, model=model))
    assert len(got) == 3 and all(np.array_equal(a, full[5 + i]) for i, a in enumerate(got))
    got = list(V.decode_range(p, 0.39, None, model=model))  # frame 9 only
    assert len(got) == 1 and np.array_equal(got[0], full[9])
    # the medium interface, on a reader whose header the caller has read
    r = StreamReader(io.BytesIO(stream))
    params = VideoParams.from_bytes(r.header.params)
    got = list(V.VideoCodec().decode_range_stream(model, params, r, start=0.2, frames=2))
    assert len(got) == 2 and all(np.array_equal(a, full[5 + i]) for i, a in enumerate(got))
    # through the registry (the stream names image-hp-v1)
    assert np.array_equal(next(V.decode_range(p, 0.0, 1)), full[0])
    with pytest.raises(ValueError):
        list(V.decode_range(p, 0.4, 1, model=model))  # frame 10: past the end


def test_seek_reads_only_needed_gops(model, stream, monkeypatch):
    seen = []
    orig = V.decode_gop

    def spy(vm, params, payload, k, first=0, last=None):
        seen.append((k, first, last))
        return orig(vm, params, payload, k, first, last)

    monkeypatch.setattr(V, "decode_gop", spy)
    assert len(list(V.decode_range(io.BytesIO(stream), 0.24, 2, model=model))) == 2  # frames 6, 7
    assert seen == [(1, 2, 4)]


def test_target_kbps(model, clip):
    for target in (80.0, 200.0):
        buf = io.BytesIO()
        st = V.encode_file(model, clip, buf, target_kbps=target, gop=4)
        kbps = len(buf.getvalue()) * 8 / (N / 25) / 1000
        assert abs(kbps / target - 1) < 0.1, (target, kbps, st.qualities)
        assert st.kbps == pytest.approx(kbps)


def test_streaming_bounded(model):
    """The encoder pulls at most one GOP of frames ahead of what it has written; the decoder
    yields a GOP's frames after reading only that GOP's segment."""
    pulled, at_write = [0], []

    def gen():
        for f in frames():
            pulled[0] += 1
            yield f

    class Out(io.BytesIO):
        def write(self, b):
            at_write.append(pulled[0])
            return super().write(b)

    out = Out()
    V.encode_frames(model, gen(), out, n_frames=N, fps=FPS, quality=30, gop=3)
    # header and every segment are written as soon as their GOP is coded: 3, 6, 9, 10 frames pulled
    assert sorted(set(at_write)) == [3, 6, 9, 10]
    read = [0]
    r = StreamReader(io.BytesIO(out.getvalue()))

    def segs():
        for s in r.segments():
            read[0] += 1
            yield s

    it = V.decode_frames(model, VideoParams.from_bytes(r.header.params), segs())
    next(it)
    assert read[0] == 1
    assert sum(1 for _ in it) == N - 1
    with pytest.raises(UnsupportedInputError):  # fewer frames than announced
        V.encode_frames(model, iter(frames(4)), io.BytesIO(), n_frames=5, fps=FPS, gop=2)


def test_video_args():
    p = argparse.ArgumentParser()
    V.add_video_args(p)
    a = p.parse_args(
        ["--gop", "8", "--start", "0.5", "--frames", "5", "--size", "64x48", "--fps", "30000/1001"]
    )
    assert (a.gop, a.start, a.frames, a.size, a.fps) == (8, 0.5, 5, "64x48", "30000/1001")


# ---- P-frames through a pluggable latent codec ------------------------------------------------------


class ResidualPCodec:
    """A stand-in P-frame codec: the latents' residual against the previous frame's ``ys_hat``
    (exact), under the frame's own hyperprior tables. Enough to exercise the P-frame plumbing."""

    parts = 2

    def __init__(self, image):
        self.m = image

    def make_context(self, quality, refs):
        return refs[0][0]

    def compress(self, ys, z_hat, context=None) -> Coded:
        from ncodec import entropy

        m = self.m
        _, idx = m.hyper(z_hat.cpu())
        sym = torch.round(ys.cpu().double() - context).clamp(-Y_LIMIT, Y_LIMIT).to(torch.int32)
        z = entropy.encode(
            z_hat.to(torch.int32).numpy().reshape(-1), m.z_indexes(tuple(z_hat.shape)), m.z_tables
        )
        y = entropy.encode(sym.numpy().reshape(-1), idx.to(torch.int32).numpy().reshape(-1), m.y_tables)
        return Coded([z, y], sym.double() + context)

    def decompress(self, parts, shape: UnitShape, context=None):
        from ncodec import entropy

        m = self.m
        z = entropy.decode(parts[0], m.z_indexes(shape.z), m.z_tables)
        _, idx = m.hyper(torch.from_numpy(z.astype(np.int64)).view(shape.z))
        sym = entropy.decode(parts[1], idx.to(torch.int32).numpy().reshape(-1), m.y_tables)
        return torch.from_numpy(sym.astype(np.int64)).view(shape.y).double() + context


@pytest.fixture(scope="module")
def p_model(model):
    return V.VideoModel(model, ResidualPCodec(model))


def test_p_frames_round_trip_and_seek(p_model, model):
    buf = io.BytesIO()
    V.encode_frames(p_model, iter(frames()), buf, n_frames=N, fps=FPS, quality=50, gop=5, p_offset=10)
    data = buf.getvalue()
    _, payloads = read_stream(data)
    heads = [fp[:3] for fp in V.split_parts(payloads[0], 5)]
    assert [h[0] for h in heads] == [0, 1, 1, 1, 1]
    assert int.from_bytes(heads[0][1:], "little") == 5000 and int.from_bytes(heads[1][1:], "little") == 4000
    full = decode_all(p_model, data)
    assert len(full) == N and min(psnr(a, b) for a, b in zip(frames(), full)) > 22
    got = list(V.decode_range(io.BytesIO(data), 0.12, 4, model=p_model))  # frames 3..6
    assert all(np.array_equal(a, full[3 + i]) for i, a in enumerate(got))
    # an all-intra decoder refuses P-frames with a typed error
    with pytest.raises(CorruptStreamError):
        decode_all(model, data)


# ---- damaged streams -------------------------------------------------------------------------------


def test_truncated_streams_raise(model, stream):
    cuts = sorted(set(range(0, len(stream), max(1, len(stream) // 10))) | {len(stream) - 1, 5, 40})
    for cut in cuts:
        with pytest.raises(BitstreamError):
            decode_all(model, stream[:cut])


def test_damaged_payloads_raise_typed_errors(model, stream):
    """GOP bytes changed behind valid checksums: a typed error or a decode, never a crash."""
    header, payloads = read_stream(stream)
    params = VideoParams.from_bytes(header.params)
    vm = V.video_model(model)
    rnd = random.Random(7)
    typed = 0
    for trial in range(12):
        k = rnd.randrange(len(payloads))
        p = bytearray(payloads[k])
        i = rnd.randrange(min(8, len(p))) if trial % 3 == 0 else rnd.randrange(len(p))  # heads, lengths
        p[i] ^= 1 << rnd.randrange(8)
        if trial % 4 == 0:
            p = p[: rnd.randrange(len(p))]
        try:
            assert len(list(V.decode_gop(vm, params, bytes(p), k))) == V.gop_frames(params, k)
        except BitstreamError:
            typed += 1
    assert typed > 0
    # a GOP starting with a P-frame, an unknown frame type, a segment too many or too few
    for bad in (bytes([1]) + payloads[0][1:], bytes([7]) + payloads[0][1:]):
        with pytest.raises(CorruptStreamError):
            list(V.decode_gop(vm, params, bad, 0))
    with pytest.raises(CorruptStreamError):
        decode_all(model, write_stream(header, payloads + payloads[:1]))
    with pytest.raises(CorruptStreamError):
        decode_all(model, write_stream(header, payloads[:-1]))


def test_bad_index_raises(model, stream):
    data = bytearray(stream)
    data[-8] ^= 0xFF  # the end record's index offset (its checksum no longer matches)
    with pytest.raises(BitstreamError):
        list(V.decode_range(io.BytesIO(bytes(data)), 0.0, 1, model=model))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(BitstreamError):
            list(V.decode_range(io.BytesIO(stream[:-30]), 0.0, 1, model=model))


def test_cli_video_round_trip_and_range(tmp_path):
    """The CLI end to end: encode a clip, decode it whole and a range through the index."""
    import av

    from ncodec.codec.cli import main

    src = tmp_path / "clip.mp4"
    with av.open(str(src), "w") as c:
        s = c.add_stream("libx264", rate=25)
        s.width, s.height, s.pix_fmt = 64, 64, "yuv420p"
        for t in range(6):
            a = np.zeros((64, 64, 3), np.uint8)
            a[..., 0] = (np.arange(64)[None, :] * 3 + 7 * t) % 256
            for p in s.encode(av.VideoFrame.from_ndarray(a, format="rgb24")):
                c.mux(p)
        for p in s.encode(None):
            c.mux(p)
    assert main(["encode", str(src), "-o", str(tmp_path / "x.ncb"), "--gop", "3", "--quality", "30"]) == 0
    assert main(["decode", str(tmp_path / "x.ncb"), "-o", str(tmp_path / "y.y4m")]) == 0
    args = [
        "decode",
        str(tmp_path / "x.ncb"),
        "-o",
        str(tmp_path / "z.y4m"),
        "--start",
        "0.12",
        "--frames",
        "2",
    ]
    assert main(args) == 0
    with av.open(str(tmp_path / "y.y4m")) as a, av.open(str(tmp_path / "z.y4m")) as b:
        full = [f.to_ndarray(format="rgb24") for f in a.decode(video=0)]
        part = [f.to_ndarray(format="rgb24") for f in b.decode(video=0)]
    assert len(full) == 6 and len(part) == 2
    assert all(np.array_equal(p, f) for p, f in zip(part, full[3:5]))
    assert main(["encode", str(src), "-o", str(tmp_path / "t.ncb"), "--target-bpp", "0.5"]) == 2


# ---- presentation timestamps (variable-rate sources) ------------------------------------------------

VFR_PTS = [0, 1, 2, 4, 5, 8, 9, 12]  # in 1/25 s: gaps of 1, 2, 3 frame times


def _write_vfr(path, pts, tb=Fraction(1, 25), enc="ffv1", w=64, h=48):
    import av

    with av.open(str(path), "w") as c:
        s = c.add_stream(enc, rate=25)
        s.width, s.height, s.pix_fmt = w, h, "yuv420p"
        s.time_base = s.codec_context.time_base = tb
        for t, f in zip(pts, frames(len(pts), w, h)):
            fr = av.VideoFrame.from_ndarray(f, format="rgb24").reformat(format="yuv420p")
            fr.pts, fr.time_base = t, tb
            for p in s.encode(fr):
                c.mux(p)
        for p in s.encode(None):
            c.mux(p)


def _times(path) -> list[float]:
    import av

    with av.open(str(path)) as c:
        return [float(f.time) for f in c.decode(video=0)]


@pytest.fixture(scope="module")
def vfr(model, tmp_path_factory):
    """(source .mkv, its stream): 8 frames at the pts above, GOPs of 3."""
    p = tmp_path_factory.mktemp("vfr") / "vfr.mkv"
    _write_vfr(p, VFR_PTS)
    buf = io.BytesIO()
    V.encode_file(model, p, buf, quality=30, gop=3)
    return p, buf.getvalue()


def test_timestamps_params_block():
    p = VideoParams(64, 48, 25, 1, 8, 3000, 3, 0, 1, 1000)
    b = p.to_bytes()
    assert len(b) == 32 and b[19] == 1 and VideoParams.from_bytes(b) == p and p.timestamps
    assert p.describe(100)["timestamps"] == "stored (time base 1/1000 s)"
    q = VideoParams(64, 48, 25, 1, 8, 3000, 3)
    assert len(q.to_bytes()) == 24 and not q.timestamps and q.describe(100)["timestamps"].startswith("none")
    for bad in (
        b[:24],  # flag set, no time base
        q.to_bytes() + b[24:],  # time base, flag clear
        b[:19] + bytes([3]) + b[20:],  # an unknown flag
        b[:24] + bytes(8),  # a zero time base
        b[:24] + struct.pack("<II", 1, 1 << 31),
        b + bytes(1),
    ):
        with pytest.raises(CorruptStreamError):
            VideoParams.from_bytes(bad)


def test_vfr_round_trip_keeps_timestamps(model, vfr, tmp_path):
    src, data = vfr
    tb, ticks = VideoReader(src).timestamps()
    assert tb == Fraction(1, 1000) and list(ticks) == [40 * t for t in VFR_PTS]
    header, payloads = read_stream(data)
    params = VideoParams.from_bytes(header.params)
    assert header.version >= 3 and params.timestamps and (params.tb_num, params.tb_den) == (1, 1000)
    # each GOP starts with u64 first tick, then varint deltas (in ms): GOPs 0-2, 3-5, 6-7
    assert payloads[1][:10] == struct.pack("<Q", 160) + bytes([40, 120])
    want = [t / 25 for t in VFR_PTS]
    codec = V.VideoCodec()
    for suffix in (".mkv", ".mp4"):
        out = tmp_path / f"o{suffix}"
        with open(out, "wb") as f:
            assert codec.decode_file(io.BytesIO(data), f, suffix, model=model)[1] == 8
        got = _times(out)
        assert len(got) == 8 and all(abs(a - b) <= 1 / 25 / 2 for a, b in zip(got, want)), got
        assert VideoReader(out).timestamps() is not None  # still variable-rate: re-encodes keep them
    out = tmp_path / "o.y4m"  # no timestamps in Y4M: the nominal rate
    with open(out, "wb") as f:
        codec.decode_file(io.BytesIO(data), f, ".y4m", model=model)
    assert _times(out) == pytest.approx([i / 25 for i in range(8)])
    # in memory: Video.times; the frames are the ones decode_frames yields
    video = codec.decode(model, params, payloads)
    assert video.times == [Fraction(t, 25) for t in VFR_PTS] and type(video.frames) is np.ndarray
    dec = decode_all(model, data)
    assert [f.time for f in dec] == video.times and np.array_equal(np.stack(dec), video.frames)
    assert min(psnr(a, b) for a, b in zip(VideoReader(src), dec)) > 22
    # the in-memory path (a file read whole, then coded) stores the same timestamps
    from ncodec.codec import api

    assert api.encode(src, quality=30, gop=3, model="image-hp-v1") == data
    # an fps override forces a constant rate (nothing stored)
    buf = io.BytesIO()
    V.encode_file(model, src, buf, quality=30, gop=3, fps=25)
    assert not VideoParams.from_bytes(read_stream(buf.getvalue())[0].params).timestamps


def test_constant_rate_stores_no_timestamps(model, clip, stream, tmp_path):
    """A constant-rate source writes exactly the stream it wrote before timestamps existed."""
    header, payloads = read_stream(stream)
    assert len(header.params) == 24 and header.params[19] == 0
    params = VideoParams.from_bytes(header.params)
    assert not params.timestamps
    buf = io.BytesIO()  # the same frames without timestamps: the same bytes
    colour = Colour.from_byte(params.colour)
    V.encode_frames(model, iter(frames()), buf, n_frames=N, fps=FPS, colour=colour, quality=50, gop=4)
    assert buf.getvalue() == stream
    # NTSC rates in Matroska's milliseconds round, but stay within a tick of the grid
    p = tmp_path / "ntsc.mkv"
    write_video(p, frames(5, 64, 48), Fraction(30000, 1001))
    assert VideoReader(p).timestamps() is None
    p = tmp_path / "cfr.mp4"
    _write_vfr(p, [0, 1, 2, 3, 4], enc="libx264")
    assert VideoReader(p).timestamps() is None


def test_vfr_seek_by_timestamps(model, vfr, tmp_path):
    from ncodec.codec.cli import main

    src, data = vfr
    r = StreamReader(io.BytesIO(data))
    params = VideoParams.from_bytes(r.header.params)
    # on screen at t: the last frame whose pts <= t (pts 0 .04 .08 .16 .2 .32 .36 .48 s)
    at = {0: 0, 0.1: 2, 0.159: 2, 0.16: 3, 0.31: 4, 0.33: 5, 0.47: 6, 0.48: 7, 0.51: 7}
    for t, n in at.items():
        assert V.seek_frame(r, params, t) == n, t
    assert V.seek_frame(r, params, 0.52) == 8  # past the last frame's nominal duration
    full = decode_all(model, data)
    got = list(V.decode_range(io.BytesIO(data), 0.17, 3, model=model))  # frames 3, 4, 5
    assert all(np.array_equal(a, full[3 + i]) for i, a in enumerate(got))
    assert [g.pts for g in got] == [160, 200, 320]
    with pytest.raises(ValueError):
        list(V.decode_range(io.BytesIO(data), 0.6, 1, model=model))
    # the CLI: --start seeks by the stored timestamps, and the range keeps its spacing from 0
    (tmp_path / "x.ncb").write_bytes(data)
    out = tmp_path / "z.mkv"
    assert main(["decode", str(tmp_path / "x.ncb"), "-o", str(out), "--start", "0.3", "--frames", "3"]) == 0
    assert _times(out) == pytest.approx([0.0, 0.12, 0.16])  # frames 4, 5, 6: pts .2 .32 .36, from 0
    for i, a in enumerate(VideoReader(out)):  # 4:2:0 out: the nearest of the decoded frames
        assert max(range(8), key=lambda j: psnr(a, full[j])) == 4 + i
    # ncodec info says whether timestamps are stored
    from ncodec.codec import api

    assert api.info(tmp_path / "x.ncb")["timestamps"] == "stored (time base 1/1000 s)"


def test_corrupt_timestamp_blocks_raise(model, vfr):
    from ncodec.bitstream.container import Header

    _, data = vfr
    header, payloads = read_stream(data)
    params = VideoParams.from_bytes(header.params)
    vm = V.video_model(model)
    p0, p1 = payloads[0], payloads[1]
    huge = struct.pack("<Q", 1 << 60)
    bad_gops = [
        (0, struct.pack("<Q", 5) + p0[8:]),  # GOP 0 not at 0
        (0, p0[:8] + bytes([0]) + p0[9:]),  # a zero delta
        (0, p0[:8] + b"\xff\xff\xff\xff\xff" + p0[9:]),  # an overlong varint
        (0, p0[:8] + b"\x80\x80\x80\x80\x10" + p0[9:]),  # a delta of 2**32
        (0, p0[:9]),  # truncated: the block overruns the segment
        (0, b""),
        (1, huge + p1[8:]),  # beyond 2**53 ticks
        (1, struct.pack("<Q", (1 << 53) - 2) + p1[8:]),  # deltas run past 2**53
    ]
    for k, bad in bad_gops:
        with pytest.raises(CorruptStreamError):
            list(V.decode_gop(vm, params, bad, k))
    # GOP 1 starting before GOP 0 ends: refused by the sequential and the range decoder
    back = write_stream(header, [p0, struct.pack("<Q", 40) + p1[8:], payloads[2]])
    with pytest.raises(CorruptStreamError):
        decode_all(model, back)
    with pytest.raises(CorruptStreamError):
        list(V.decode_range(io.BytesIO(back), 0.0, 6, model=model))
    # a flipped byte in a stored stream: its checksum catches it
    flipped = bytearray(data)
    flipped[data.index(p1) + 3] ^= 0x40
    with pytest.raises(CorruptStreamError):
        decode_all(model, bytes(flipped))
    # a version 2 stream cannot hold timestamps
    old = write_stream(Header(header.media, header.model_id, header.model_hash, header.params, 2), payloads)
    with pytest.raises(CorruptStreamError):
        list(V.decode_range(io.BytesIO(old), 0.0, 1))
