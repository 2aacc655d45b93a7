"""Folders: ``ncodec encode DIR -o OUTDIR`` / ``decode DIR -o OUTDIR``, resumable, with a JSON Lines
manifest, in processes (``--jobs``) and on Ray Data (``--engine ray``, when Ray is installed)."""

from __future__ import annotations

import importlib.util
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ncodec.codec.cli import main

DATA = Path(__file__).parent / "data"
SAMPLE = DATA / "urban100_img012_crop.png"
SPEECH = DATA / "librispeech_103-1240-0000_4s.flac"


def run(capsys, *args) -> tuple[int, str, str]:
    try:
        code = main([str(a) for a in args])
    except SystemExit as e:
        code = e.code
    out, err = capsys.readouterr()
    return code, out, err


def rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.fixture()
def tree(tmp_path) -> Path:
    """in/a.png, in/sub/b.jpg (64x64 crops), in/sub/speech.flac (1 s), in/notes.txt (ignored)."""
    src = tmp_path / "in"
    (src / "sub").mkdir(parents=True)
    img = Image.open(SAMPLE).convert("RGB")
    img.crop((0, 0, 64, 64)).save(src / "a.png")
    img.crop((64, 64, 128, 128)).save(src / "sub" / "b.jpg", quality=90)
    from ncodec.codec.audio_io import read_audio, write_audio

    x, rate = read_audio(SPEECH)
    write_audio(src / "sub" / "speech.flac", x[:, :rate], rate)
    (src / "notes.txt").write_text("not a medium")
    return src


def test_encode_decode_resume_and_manifest(capsys, tmp_path, tree):
    out, back = tmp_path / "out", tmp_path / "back"
    code, stdout, err = run(capsys, "encode", tree, "-o", out, "-q", "30")
    assert code == 0, err
    assert "3 encoded, 0 skipped" in stdout
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*.ncb")) == [
        "a.ncb",
        "sub/b.ncb",
        "sub/speech.ncb",
    ]
    m = rows(out / "manifest.jsonl")
    assert {r["status"] for r in m} == {"ok"} and len(m) == 3
    by = {Path(r["input"]).name: r for r in m}
    assert by["a.png"]["rate_unit"] == "bpp" and by["a.png"]["quality"] == 30.0
    assert by["speech.flac"]["rate_unit"] == "kbps" and by["speech.flac"]["medium"] == "audio"
    for r in m:
        assert set(r) >= {"input", "output", "bytes", "rate", "quality", "seconds", "status"}
        assert r["bytes"] == Path(r["output"]).stat().st_size

    # a rerun resumes: everything exists, nothing is coded again
    before = (out / "a.ncb").stat().st_mtime_ns
    code, stdout, _ = run(capsys, "encode", tree, "-o", out, "-q", "30")
    assert code == 0 and "0 encoded, 3 skipped" in stdout
    assert (out / "a.ncb").stat().st_mtime_ns == before
    assert [r["status"] for r in rows(out / "manifest.jsonl")[3:]] == ["skipped"] * 3
    (out / "sub" / "b.ncb").unlink()
    code, stdout, _ = run(capsys, "encode", tree, "-o", out, "-q", "30")
    assert "1 encoded, 2 skipped" in stdout

    # decode the folder: each medium's default type, the tree mirrored
    code, stdout, err = run(capsys, "decode", out, "-o", back)
    assert code == 0, err
    assert sorted(p.relative_to(back).as_posix() for p in back.rglob("*") if p.is_file()) == [
        "a.png",
        "manifest.jsonl",
        "sub/b.png",
        "sub/speech.wav",
    ]
    assert Image.open(back / "sub" / "b.png").size == (64, 64)
    code, stdout, _ = run(capsys, "decode", out, "-o", tmp_path / "jpg", "--format", "jpg")
    assert code == 5  # audio cannot be written as JPEG: that file fails (output side), the others pass
    assert (tmp_path / "jpg" / "a.jpg").exists() and "2 decoded" in stdout


def test_failures_are_reported_per_file(capsys, tmp_path, tree):
    (tree / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    code, stdout, err = run(capsys, "encode", tree, "-o", tmp_path / "out", "--force")
    assert code == 3
    assert err.count("ncodec: error:") == 1 and "broken.png" in err
    assert "3 encoded, 0 skipped (exist; --force redoes them), 1 failed" in stdout
    bad = [r for r in rows(tmp_path / "out" / "manifest.jsonl") if r["status"] == "error"]
    assert len(bad) == 1 and bad[0]["code"] == 3 and not list((tmp_path / "out").glob("broken*"))


def test_usage_errors(capsys, tmp_path, tree):
    code, _, err = run(capsys, "encode", tree, "-o", "-")
    assert code == 2 and "must be a folder" in err
    (tree / "a.jpg").write_bytes((tree / "sub" / "b.jpg").read_bytes())
    code, _, err = run(capsys, "encode", tree, "-o", tmp_path / "out")
    assert code == 2 and "would both be written to" in err
    empty = tmp_path / "empty"
    empty.mkdir()
    code, _, err = run(capsys, "decode", empty, "-o", tmp_path / "x")
    assert code == 3 and "no .ncb streams" in err


def test_jobs_in_processes(capsys, tmp_path, tree):
    (tree / "sub" / "speech.flac").unlink()
    code, stdout, err = run(capsys, "encode", tree, "-o", tmp_path / "p", "-q", "30", "--jobs", "2")
    assert code == 0, err
    assert "2 encoded" in stdout
    code, _, _ = run(capsys, "encode", tree, "-o", tmp_path / "s", "-q", "30")
    for name in ("a.ncb", "sub/b.ncb"):  # the same streams as in one process
        assert (tmp_path / "p" / name).read_bytes() == (tmp_path / "s" / name).read_bytes()


@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("ray") is None, reason="Ray is an optional extra: ncodec[ray]")
def test_ray_engine_folder_and_dataset(capsys, tmp_path, tree):
    """The folder jobs on a local Ray (started in this process), then a map over a Dataset."""
    import ray

    from ncodec.codec.ray_engine import decode_dataset, encode_dataset

    (tree / "sub" / "speech.flac").unlink()
    shutil.copy(tree / "a.png", tree / "c.png")
    code, stdout, err = run(
        capsys, "encode", tree, "-o", tmp_path / "r", "-q", "30", "--engine", "ray", "--jobs", "1"
    )
    assert code == 0, err
    assert "3 encoded" in stdout and not ray.is_initialized()  # the local Ray is stopped again
    code, _, _ = run(capsys, "encode", tree, "-o", tmp_path / "s", "-q", "30")
    for name in ("a.ncb", "c.ncb", "sub/b.ncb"):
        assert (tmp_path / "r" / name).read_bytes() == (tmp_path / "s" / name).read_bytes()

    ray.init(num_cpus=1, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    try:
        ray.data.DataContext.get_current().enable_progress_bars = False
        pixels = np.asarray(Image.open(tree / "a.png"))
        ds = ray.data.from_items([{"image": pixels}, {"image": pixels[::-1].copy()}])
        out = decode_dataset(encode_dataset(ds, quality=30)).take_all()
        assert out[0]["ncb"] == (tmp_path / "s" / "a.ncb").read_bytes()
        assert out[1]["image"].shape == (64, 64, 3)
    finally:
        ray.shutdown()
