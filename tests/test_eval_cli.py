"""End-to-end ``ncodec eval`` runs on small slices of the shared test sets."""

from __future__ import annotations

import importlib.util
import sys
import types
from pathlib import Path

if importlib.util.find_spec("ncodec") is None:  # not installed yet: map the source tree as the package
    _pkg = types.ModuleType("ncodec")
    _pkg.__path__ = [str(Path(__file__).resolve().parents[1])]
    sys.modules["ncodec"] = _pkg

import argparse
import csv
import json
import shutil
import subprocess

import numpy as np
import pytest
from PIL import Image

from ncodec.eval.anchors import load_curve  # noqa: E402
from ncodec.eval.cli import add_eval_parser, main, run_eval  # noqa: E402

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
KODAK = DATA / "images" / "kodak"
SPEECH = DATA / "audio" / "speech" / "test" / "cmu_arctic"
VIDEO = DATA / "video" / "openh264_ciscovt2people_320x192.mkv"


def _need(path: Path) -> None:
    if not path.exists():
        pytest.skip(f"shared test data not found: {path}")


@pytest.fixture(scope="module")
def image_run(tmp_path_factory):
    _need(KODAK)
    out = tmp_path_factory.mktemp("eval-image")
    rc = main(
        [
            "image", str(KODAK), "--codecs", "jpeg,x265", "--limit", "2", "--crop", "192",
            "--qualities", "jpeg=20,50,85;x265=37,30,24", "--x265-preset", "fast", "--out", str(out),
            "--no-progress",
        ]
    )  # fmt: skip
    assert rc == 0
    return out


def test_image_run_outputs(image_run):
    out = image_run
    for name in ("per_image.csv", "jpeg.json", "x265.json", "summary.md", "summary.csv", "rd_psnr.png",
                 "rd_msssim.png", "report.html"):  # fmt: skip
        assert (out / name).is_file(), name
    rows = list(csv.DictReader((out / "per_image.csv").open()))
    assert len(rows) == 2 * 2 * 3
    for r in rows:
        assert int(r["bytes"]) > 0
        assert float(r["bpp"]) == pytest.approx(
            8 * int(r["bytes"]) / (int(r["width"]) * int(r["height"])), rel=1e-4
        )
    d = json.loads((out / "x265.json").read_text())
    assert set(d) >= {"name", "description", "results"}
    res = d["results"]
    for key in ("bpp", "psnr-rgb", "psnr-y", "ms-ssim-rgb", "encoding_time", "decoding_time"):
        assert len(res[key]) == 3, key
    assert res["bpp"] == sorted(res["bpp"]) and res["psnr-rgb"] == sorted(res["psnr-rgb"])
    meta = d["meta"]
    assert len(meta["dataset"]["sha256"]) == 64 and meta["machine"]["cores"]
    assert meta["libraries"]["pillow"] and "libx265" in meta["codec_versions"]
    assert load_curve(out / "jpeg.json").name == "jpeg"
    summary = (out / "summary.md").read_text()
    assert "jpeg" in summary and "bd-rate" in summary
    assert Image.open(out / "rd_psnr.png").size[0] > 200
    html = (out / "report.html").read_text()
    assert "data:image/png;base64," in html and "<table>" in html


def _chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        p = shutil.which(name) or (f"/usr/bin/{name}" if Path(f"/usr/bin/{name}").exists() else None)
        if p:
            return p
    return None


def test_report_renders_in_headless_chromium(image_run, tmp_path):
    exe = _chromium()
    if exe is None:
        pytest.skip("chromium not found (apt-get install -y chromium)")
    shot = tmp_path / "shot.png"
    cmd = [
        exe, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run",
        f"--user-data-dir={tmp_path / 'prof'}",
        "--window-size=1000,1400", f"--screenshot={shot}", (image_run / "report.html").resolve().as_uri(),
    ]  # fmt: skip
    subprocess.run(cmd, capture_output=True, timeout=90, check=False)
    assert shot.is_file(), "chromium wrote no screenshot"
    px = np.asarray(Image.open(shot).convert("L"))
    assert px.std() > 5 and (px < 128).mean() > 0.005  # not blank: text, plots and crops rendered


def test_audio_run_opus(tmp_path):
    _need(SPEECH)
    rc = main(["audio", str(SPEECH), "--codecs", "opus,mp3", "--limit", "1",
               "--qualities", "opus=12,24;mp3=16,24", "--max-seconds", "3", "--out", str(tmp_path),
               "--quiet"])  # fmt: skip
    assert rc == 0
    rows = list(csv.DictReader((tmp_path / "per_file.csv").open()))
    opus12 = [r for r in rows if r["codec"] == "opus" and r["kbps-target"] == "12"][0]
    assert 9 < float(opus12["kbps"]) < 16 and float(opus12["pesq-wb"]) > 2.5 and float(opus12["stoi"]) > 0.8
    d = json.loads((tmp_path / "opus.json").read_text())
    assert len(d["results"]["kbps"]) == 2
    assert (tmp_path / "report.html").is_file() and (tmp_path / "rd_pesq.png").is_file()


def test_video_run_5_frames(tmp_path):
    _need(VIDEO)
    rc = main(["video", str(VIDEO), "--codecs", "x264,x265", "--frames", "5", "--qualities", "22,32,42",
               "--out", str(tmp_path), "--quiet"])  # fmt: skip
    assert rc == 0
    rows = list(csv.DictReader((tmp_path / "per_video.csv").open()))
    assert len(rows) == 6
    for r in rows:
        assert int(r["frames"]) == 5 and float(r["kbps"]) > 0
        assert 25 < float(r["psnr-yuv"]) < 60 and 20 < float(r["psnr-rgb"]) < 60
        assert 0.5 < float(r["ms-ssim-rgb"]) <= 1 and float(r["encoding_fps"]) > 0
    d = json.loads((tmp_path / "x264.json").read_text())
    assert d["results"]["bpp"][0] > d["results"]["bpp"][-1]  # CRF 22 costs more than CRF 42
    assert (tmp_path / "summary.md").read_text().count("x264") >= 1


def test_exit_codes(tmp_path):
    assert main(["image", str(tmp_path / "missing")]) == 3
    assert main(["image", str(tmp_path), "--codecs", "nosuchcodec"]) == 2
    (tmp_path / "broken.png").write_bytes(b"not an image")
    assert main(["image", str(tmp_path), "--codecs", "jpeg", "--out", str(tmp_path / "o"), "--quiet"]) == 3
    assert main(["bogus"]) == 2


def test_add_eval_parser_integrates():
    parser = argparse.ArgumentParser(prog="ncodec")
    sub = parser.add_subparsers(dest="command")
    add_eval_parser(sub)
    args = parser.parse_args(["eval", "image", "x", "--codecs", "jpeg", "--limit", "1", "--jobs", "2"])
    assert args.eval_medium == "image" and args.limit == 1 and args.jobs == 2
    assert run_eval(args) == 3  # input "x" does not exist


def test_broken_or_missing_ncodec_fails_the_run(tmp_path, monkeypatch, capsys):
    """A requested codec that fails is an error (exit 1), never silently dropped from the table."""
    _need(KODAK)
    import types as _types

    import ncodec.eval.baselines as B

    def boom(*a, **k):
        raise NotImplementedError("model not trained yet")

    fake = _types.SimpleNamespace(encode=boom, decode=boom)
    monkeypatch.setattr(B, "ncodec_api", lambda: fake)
    args = ["image", str(KODAK / "kodim01.png"), "--codecs", "ncodec,jpeg", "--crop", "64",
            "--qualities", "30,80", "--out", str(tmp_path / "a"), "--quiet", "--anchors", "none"]  # fmt: skip
    assert main(args) == 1
    assert "codec ncodec failed" in capsys.readouterr().err
    assert not (tmp_path / "a" / "ncodec.json").exists()
    monkeypatch.setattr(B, "ncodec_api", lambda: None)
    args[args.index(str(tmp_path / "a"))] = str(tmp_path / "b")
    assert main(args) == 1
    assert "codec ncodec failed" in capsys.readouterr().err
