"""The ncodec command as a Unix tool: ``-`` for stdin/stdout (content sniffed), outputs that
respect the umask, exit code 5 for the output side, no temporary file left by SIGTERM, no stream
under a media suffix, decoding to JPEG/WebP/MP3/Opus, progress bars, ``python -m ncodec``."""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import ncodec
from ncodec.codec import api
from ncodec.codec.cli import main

DATA = Path(__file__).parent / "data"
SAMPLE = DATA / "urban100_img012_crop.png"
SPEECH = DATA / "librispeech_103-1240-0000_4s.flac"
ROOT = Path(__file__).resolve().parents[1]


def run(capsys, *args) -> tuple[int, str, str]:
    try:
        code = main([str(a) for a in args])
    except SystemExit as e:
        code = e.code
    out, err = capsys.readouterr()
    return code, out, err


class _Stdin:
    def __init__(self, data: bytes):
        self.buffer = io.BytesIO(data)


@pytest.fixture(scope="module")
def small(tmp_path_factory) -> Path:
    """A 64x64 crop (fast to code) and its stream."""
    d = tmp_path_factory.mktemp("unix")
    Image.open(SAMPLE).crop((0, 0, 64, 64)).save(d / "small.png")
    assert main(["encode", str(d / "small.png"), "-o", str(d / "small.ncb"), "-q", "40"]) == 0
    return d


def test_stdin_to_stdout_and_back(capsysbinary, monkeypatch, small):
    png = (small / "small.png").read_bytes()
    monkeypatch.setattr(sys, "stdin", _Stdin(png))
    assert main(["encode", "-", "-o", "-", "-q", "40"]) == 0
    out, err = capsysbinary.readouterr()
    assert out == (small / "small.ncb").read_bytes()  # the same stream as from the file
    assert b"bytes" in err  # the report goes to stderr when the stream goes to stdout
    assert not Path("-").exists()
    monkeypatch.setattr(sys, "stdin", _Stdin(out))
    assert main(["decode", "-", "-o", "-"]) == 0  # no suffix: the medium's default (PNG)
    out, _ = capsysbinary.readouterr()
    assert out[:8] == b"\x89PNG\r\n\x1a\n" and Image.open(io.BytesIO(out)).size == (64, 64)
    monkeypatch.setattr(sys, "stdin", _Stdin((small / "small.ncb").read_bytes()))
    assert main(["decode", "-", "-o", "-", "--format", "jpg"]) == 0
    assert capsysbinary.readouterr()[0][:3] == b"\xff\xd8\xff"


def test_stdin_is_sniffed_not_named(capsys, monkeypatch, tmp_path, small):
    monkeypatch.setattr(sys, "stdin", _Stdin((small / "small.ncb").read_bytes()))
    code, _, err = run(capsys, "encode", "-", "-o", tmp_path / "x.ncb")
    assert code == 3 and "ncodec stream already" in err
    monkeypatch.setattr(sys, "stdin", _Stdin(b"hello, world\n" * 10))
    code, _, err = run(capsys, "encode", "-", "-o", tmp_path / "x.ncb")
    assert code == 3 and err.count("\n") == 1
    # a file without a suffix is sniffed too
    (tmp_path / "noext").write_bytes((small / "small.png").read_bytes())
    code, _, _ = run(capsys, "encode", tmp_path / "noext", "-o", tmp_path / "y.ncb", "-q", "40")
    assert code == 0 and (tmp_path / "y.ncb").read_bytes() == (small / "small.ncb").read_bytes()


def test_binary_output_to_a_terminal_is_refused(monkeypatch, tmp_path, small):
    class Tty(io.BytesIO):
        def isatty(self) -> bool:
            return True

    class Out:
        buffer = Tty()

    monkeypatch.setattr(sys, "stdout", Out())
    with pytest.raises(api.InvalidArgumentError, match="terminal"):
        api.decode_file(small / "small.ncb", "-")
    assert Out.buffer.getvalue() == b""


def test_outputs_respect_the_umask(capsys, tmp_path, small):
    old = os.umask(0o027)
    try:
        assert main(["encode", str(small / "small.png"), "-o", str(tmp_path / "a.ncb")]) == 0
        assert main(["decode", str(small / "small.ncb"), "-o", str(tmp_path / "a.png")]) == 0
    finally:
        os.umask(old)
    assert (tmp_path / "a.ncb").stat().st_mode & 0o777 == 0o640
    assert (tmp_path / "a.png").stat().st_mode & 0o777 == 0o640
    # overwriting keeps the replaced file's permissions
    (tmp_path / "a.png").chmod(0o604)
    assert main(["decode", str(small / "small.ncb"), "-o", str(tmp_path / "a.png"), "--force"]) == 0
    assert (tmp_path / "a.png").stat().st_mode & 0o777 == 0o604
    capsys.readouterr()


@pytest.mark.parametrize(
    "args, code, says",
    [
        (["encode", "{sample}", "-o", "{tmp}/missing/x.ncb"], 5, "missing/x.ncb: cannot write"),
        (["decode", "{stream}", "-o", "{tmp}/missing/y.png"], 5, "missing/y.png: cannot write"),
        (["decode", "{stream}", "-o", "{tmp}/y.xyz"], 5, "not '.xyz'"),
        (["decode", "{stream}", "-o", "{tmp}/y.png", "--format", "wav"], 5, "not '.wav'"),
        (["encode", "{sample}", "-o", "{tmp}/b.png"], 2, "name the output b.ncb"),
        (["encode", "{sample}", "-o", "{tmp}/b.WAV"], 2, "name the output b.ncb"),
        (["encode", "{tmp}/missing.png", "-o", "{tmp}/x.ncb"], 3, "missing.png"),
    ],
)
def test_output_side_exit_codes(capsys, tmp_path, small, args, code, says):
    args = [a.format(tmp=tmp_path, sample=small / "small.png", stream=small / "small.ncb") for a in args]
    got, _, err = run(capsys, *args)
    assert got == code, err
    assert says in err and len(err.strip().splitlines()) == 1
    assert ".tmp" not in err  # no temporary file name in messages
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_decode_to_jpeg_webp_tiff(tmp_path, small):
    for suffix, magic in ((".jpg", b"\xff\xd8\xff"), (".webp", b"RIFF"), (".tif", b"II*\x00")):
        api.decode_file(small / "small.ncb", tmp_path / f"y{suffix}")
        data = (tmp_path / f"y{suffix}").read_bytes()
        assert data.startswith(magic) and Image.open(tmp_path / f"y{suffix}").size == (64, 64)
    # alpha cannot go to JPEG: dropped, the colour kept
    rgba = Image.open(small / "small.png").convert("RGBA")
    api.atomic_write(tmp_path / "a.ncb", lambda f: f.write(api.encode(rgba, quality=30)), False)
    api.decode_file(tmp_path / "a.ncb", tmp_path / "a.jpg")
    assert Image.open(tmp_path / "a.jpg").mode == "RGB"


@pytest.fixture(scope="module")
def speech(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("speech")
    api.encode_file(SPEECH, d / "s.ncb", quality=30)
    return d / "s.ncb"


@pytest.mark.parametrize("suffix", [".mp3", ".opus", ".ogg", ".m4a", ".flac"])
def test_audio_decodes_to_lossy_formats(tmp_path, speech, suffix):
    from ncodec.codec.audio_io import read_audio

    r = api.decode_file(speech, tmp_path / f"s{suffix}")
    x, rate = read_audio(tmp_path / f"s{suffix}")
    assert r.size == (1, 64000) and x.shape[0] == 1
    # Opus runs at 48 kHz (the nearest rate it takes); the others keep the source's 16 kHz
    assert rate == (48000 if suffix in (".opus", ".ogg") else 16000)
    assert abs(x.shape[1] / rate - 4.0) < 0.1


def test_audio_from_stdin_is_sniffed(monkeypatch, tmp_path, speech):
    monkeypatch.setattr(sys, "stdin", _Stdin(SPEECH.read_bytes()))
    r = api.encode_file("-", tmp_path / "s.ncb", quality=30)
    assert r.medium == "audio" and (tmp_path / "s.ncb").read_bytes() == speech.read_bytes()


def test_progress_bars_on_a_terminal(capsys, monkeypatch, tmp_path, small):
    """Target searches show a bar (after PROGRESS_DELAY: 0 here) and then what they reached."""
    monkeypatch.setattr(api, "PROGRESS_DELAY", 0.0)
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    code, out, err = run(capsys, "encode", small / "small.png", "-o", tmp_path / "t.ncb", "--target-bpp", "1")
    assert code == 0 and "bpp search" in err and "try" in err
    assert ", bpp " in out  # the rate, then what the target reached
    code, out, err = run(
        capsys, "encode", small / "small.png", "-o", tmp_path / "u.ncb", "--target-psnr", "60"
    )
    assert code == 0 and "warning: the psnr target is out of this model's reach" in err


def test_sigterm_during_a_write_leaves_nothing(tmp_path):
    """A decode writes as it goes (a temporary file beside the output); SIGTERM removes it."""
    rng = np.random.default_rng(0)
    img = Image.fromarray(rng.integers(0, 256, (512, 1024, 3), dtype=np.uint8))
    src = tmp_path / "big.ncb"
    src.write_bytes(api.encode(img, quality=10, tile=128))  # 32 tiles: seconds to decode
    out = tmp_path / "out" / "big.png"
    out.parent.mkdir()
    p = subprocess.Popen(
        [sys.executable, "-m", "ncodec", "decode", str(src), "-o", str(out)],
        stderr=subprocess.PIPE,
        text=True,
        env=dict(os.environ, OMP_NUM_THREADS="1"),
    )
    deadline = time.monotonic() + 240
    while not list(out.parent.glob(".big.png.*.tmp")) and p.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    if p.poll() is not None:
        pytest.skip("the decode finished before it could be interrupted")
    p.send_signal(signal.SIGTERM)
    _, err = p.communicate(timeout=120)
    assert p.returncode == 128 + signal.SIGTERM, err
    assert err.strip() == "ncodec: error: terminated"
    assert list(out.parent.iterdir()) == []


def test_python_m_ncodec_version_and_py_typed():
    r = subprocess.run(
        [sys.executable, "-m", "ncodec", "--version"], capture_output=True, text=True, timeout=120, cwd="/"
    )
    assert r.returncode == 0 and r.stdout.strip() == f"ncodec {ncodec.__version__}"
    assert ncodec.__version__ not in ("", "unknown")
    assert (Path(ncodec.__file__).parent / "py.typed").exists()


def test_help_is_fast_and_imports_no_torch():
    code = "import sys\nfrom ncodec.codec.cli import main\n"
    code += "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
    code += "assert 'torch' not in sys.modules and 'tqdm' not in sys.modules, sorted(sys.modules)"
    t0 = time.perf_counter()
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert time.perf_counter() - t0 < 5.0  # 0.1-0.5 s; generous for a loaded machine


def test_warnings_are_one_line(tmp_path, capsys):
    """An animation's later frames are dropped with one `ncodec: warning:` line, no traceback-like
    location lines."""
    from PIL import Image

    from ncodec.codec.cli import main

    frames = [Image.new("RGB", (32, 32), (40 * i, 0, 0)) for i in range(3)]
    frames[0].save(tmp_path / "anim.gif", save_all=True, append_images=frames[1:])
    assert main(["encode", str(tmp_path / "anim.gif"), "-o", str(tmp_path / "a.ncb")]) == 0
    err = [ln for ln in capsys.readouterr().err.splitlines() if ln]
    assert len(err) == 1 and err[0].startswith("ncodec: warning: ") and "3 frames" in err[0]
