"""The ncodec command: behaviours, exit codes, one-line errors, atomic and forced writes."""

from __future__ import annotations

import json
import random
import subprocess
import sys
from pathlib import Path

import pytest

from ncodec.codec.cli import main

DATA = Path(__file__).parent / "data"
SAMPLE = DATA / "urban100_img012_crop.png"


def run(capsys, *args: str) -> tuple[int, str, str]:
    try:
        code = main([str(a) for a in args])
    except SystemExit as e:  # argparse usage errors
        code = e.code
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def stream(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("cli")
    assert main(["encode", str(SAMPLE), "-o", str(d / "s.ncb"), "--quality", "40"]) == 0
    return d / "s.ncb"


def test_encode_decode_info_models(capsys, tmp_path, stream):
    code, out, _ = run(capsys, "decode", stream, "-o", tmp_path / "y.png")
    assert code == 0 and (tmp_path / "y.png").exists()
    code, out, _ = run(capsys, "info", stream, "--json")
    info = json.loads(out)
    assert code == 0 and info["width"] == 256 and info["model"] == "image-ctx-v2"  # the default image model
    code, out, _ = run(capsys, "models")
    assert code == 0 and "image-hp-v1" in out


def test_no_overwrite_without_force(capsys, tmp_path, stream):
    out = tmp_path / "y.png"
    out.write_bytes(b"keep")
    code, _, err = run(capsys, "decode", stream, "-o", out)
    assert code == 2 and "--force" in err and len(err.strip().splitlines()) == 1
    assert out.read_bytes() == b"keep"
    code, _, _ = run(capsys, "decode", stream, "-o", out, "--force")
    assert code == 0 and out.read_bytes()[:4] == b"\x89PNG"


@pytest.mark.parametrize(
    "args, code",
    [
        (["encode", "missing.png", "-o", "{tmp}/x.ncb"], 3),
        (["encode", "{data}/README.md", "-o", "{tmp}/x.ncb"], 3),
        (["encode", "{sample}", "-o", "{tmp}/x.ncb", "--model", "nope"], 2),
        (["encode", "{sample}", "-o", "{tmp}/x.ncb", "--quality", "150"], 2),
        (["encode", "{sample}"], 2),
        (["decode", "{sample}", "-o", "{tmp}/y.png"], 4),
        (["decode", "{tmp}/empty.ncb", "-o", "{tmp}/y.png"], 4),
        (["bogus"], 2),
    ],
)
def test_exit_codes_and_one_line_errors(capsys, tmp_path, args, code):
    (tmp_path / "empty.ncb").write_bytes(b"")
    args = [a.format(tmp=tmp_path, data=DATA, sample=SAMPLE) for a in args]
    got, _, err = run(capsys, *args)
    assert got == code
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert not (tmp_path / "x.ncb").exists() and not (tmp_path / "y.png").exists()


def test_random_mutations_exit_4_with_one_line(capsys, tmp_path, stream):
    """The issue's check: bit flips, truncations and inserted bytes all exit 4 with one line."""
    data = stream.read_bytes()
    rng = random.Random(1234)
    bad = tmp_path / "bad.ncb"
    for i in range(200):
        d = bytearray(data)
        kind = i % 3
        if kind == 0:
            for _ in range(rng.randint(1, 4)):
                d[rng.randrange(len(d))] ^= 1 << rng.randrange(8)
        elif kind == 1:
            d = d[: rng.randrange(len(d))]
        else:
            at = rng.randrange(len(d) + 1)
            d[at:at] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 8)))
        bad.write_bytes(bytes(d))
        code, _, err = run(capsys, "decode", bad, "-o", tmp_path / "y.png", "--force")
        assert code == 4, (i, err)
        assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert not (tmp_path / "y.png").exists()


def test_console_script_and_module_run(tmp_path, stream):
    """Real processes: no traceback, no signal, exit codes as documented."""
    bad = tmp_path / "bad.ncb"
    bad.write_bytes(stream.read_bytes()[:-30])
    r = subprocess.run(
        [sys.executable, "-m", "ncodec.codec", "decode", str(bad), "-o", str(tmp_path / "y.png")],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 4 and r.stderr.startswith("ncodec: error:") and len(r.stderr.splitlines()) == 1


def test_bench_entropy_json_and_unknown_coder(capsys) -> None:
    code, out, _ = run(
        capsys, "bench", "entropy", "--json", "--symbols", "5000", "--repeat", "1", "--only", "ncodec_cpp_1t"
    )
    assert code == 0
    assert set(json.loads(out)["coders"]) == {"ncodec_cpp_1t"}
    code, _, err = run(capsys, "bench", "entropy", "--only", "no_such_coder")
    assert code == 2 and err.count("\n") == 1
    assert err.startswith("ncodec: error: unknown or unavailable coders")
