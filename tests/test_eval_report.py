"""The HTML report and what feeds it, on tiny synthetic results (no codec runs but two 64 px images).

Data-set header, BD cells against published curves only for runs over the whole data set (flagged in
red otherwise), crossing curves flagged, crops at matched rate with integer zoom and error maps, audio
players with spectrograms, SVG plots, units on every column, the optional ViSQOL metric, and (where
headless Chromium exists) a rendered screenshot that shows the flags.
"""

from __future__ import annotations

import importlib.util
import sys
import types
from pathlib import Path

if importlib.util.find_spec("ncodec") is None:  # not installed yet: map the source tree as the package
    _pkg = types.ModuleType("ncodec")
    _pkg.__path__ = [str(Path(__file__).resolve().parents[1])]
    sys.modules["ncodec"] = _pkg

import base64
import io
import math
import re
import shutil
import subprocess
import wave

import numpy as np
import pytest
from PIL import Image

from ncodec.eval import metrics as M  # noqa: E402
from ncodec.eval.anchors import Curve, coverage_problem  # noqa: E402
from ncodec.eval.common import summary_rows  # noqa: E402
from ncodec.eval.plots import ERROR_MAP_MAX, error_map, rd_plot  # noqa: E402
from ncodec.eval.report import _table, build_report, wav_bytes, zoom_png  # noqa: E402
from ncodec.eval.runner import dataset_info  # noqa: E402

RATES = [0.25, 0.5, 1.0, 2.0]
KODAK_ANCHOR = "/anywhere/anchors/image-kodak/vtm.json"  # the folder names the data set; no file needed


def _curve(name, rates, psnr, source=""):
    return Curve(name, f"{name} curve", {"bpp": list(rates), "psnr-rgb": list(psnr)}, source=source)


def _lines(slope, offset=40.0):
    return [slope * math.log2(r) + offset for r in RATES]


def _kodak(items=24, name="kodak", crop=None):
    return {"name": name, "path": f"data/{name}", "items": items, "unit": "images", "sha256": "ab" * 32,
            "crop": crop, "frames": None, "max_seconds": None}  # fmt: skip


# ------------------------------------------------------------------------------ anchor coverage


def test_full_kodak_run_gets_bd_against_published_curves():
    anchor = _curve("VTM", RATES, _lines(10), KODAK_ANCHOR)
    (row,) = summary_rows([_curve("ours", [0.9 * r for r in RATES], _lines(10))], anchor, "bpp",
                          ["psnr-rgb"], _kodak())  # fmt: skip
    assert row["bd-rate psnr-rgb (%)"] == pytest.approx(-10.0, abs=1e-6)
    assert row["bd psnr-rgb (dB)"] > 0 and row["crossing psnr-rgb"] == ""


@pytest.mark.parametrize(
    "ds,reason",
    [
        (_kodak(items=3), "3 of 24 images"),
        (_kodak(crop=256), "images cropped to 256×256 px"),
        (_kodak(name="clic"), "run on 'clic', anchor measured on Kodak"),
    ],
)
def test_partial_run_flags_bd_against_published_curves(ds, reason):
    anchor = _curve("VTM", RATES, _lines(10), KODAK_ANCHOR)
    published = _curve("BPG", RATES, _lines(10, 39), "/x/anchors/image-kodak/bpg.json")
    rows = summary_rows([_curve("ours", RATES, _lines(10)), published], anchor, "bpp", ["psnr-rgb"], ds)
    ours, bpg = rows
    assert ours["bd-rate psnr-rgb (%)"] == ours["bd psnr-rgb (dB)"] == f"not computed: {reason}"
    assert isinstance(bpg["bd-rate psnr-rgb (%)"], float)  # published against published: same data set
    # a run-measured anchor compares with the run's codecs whatever the data set
    (row,) = summary_rows([published], _curve("ours", RATES, _lines(10)), "bpp", ["psnr-rgb"], ds)
    assert row["bd-rate psnr-rgb (%)"].startswith("not computed")
    (row,) = summary_rows([_curve("b", RATES, _lines(10))], _curve("a", RATES, _lines(10)), "bpp",
                          ["psnr-rgb"], ds)  # fmt: skip
    assert row["bd-rate psnr-rgb (%)"] == pytest.approx(0.0, abs=1e-9)


def test_anchor_from_an_earlier_run_needs_the_same_files_and_crop():
    old = _curve("jpeg-old", RATES, _lines(10), "/runs/old/jpeg.json")
    old.meta = {"dataset": {"n_files": 2, "sha256": "ab" * 32}, "run_settings": {"crop": 256}}
    assert coverage_problem(old, _kodak(items=2, crop=256)) is None
    assert "other files" in coverage_problem(old, dict(_kodak(items=2, crop=256), sha256="cd" * 32))
    assert "crop" in coverage_problem(old, _kodak(items=2, crop=None))
    assert coverage_problem(_curve("x", RATES, RATES, "/elsewhere/mine.json"), _kodak(items=1)) is None


def test_dataset_info_names_the_folder(tmp_path):
    d = tmp_path / "kodak"
    d.mkdir()
    f = d / "kodim01.png"
    Image.new("RGB", (8, 8)).save(f)
    info = dataset_info(f, [f], "images", "00", crop=64)
    assert info["name"] == "kodak" and info["items"] == 1 and info["crop"] == 64
    assert coverage_problem(_curve("VTM", RATES, RATES, KODAK_ANCHOR), info) == (
        "1 of 24 images; images cropped to 64×64 px"
    )


# ------------------------------------------------------------------------------ crossing curves


def test_crossing_curves_are_flagged_beside_the_bd_rate(tmp_path):
    anchor = _curve("anchor", RATES, _lines(10))
    steeper = _curve("steeper", RATES, _lines(12))  # worse below 1 bpp, better above: cross at 1 bpp
    parallel = _curve("parallel", [0.8 * r for r in RATES], _lines(10))
    rows = summary_rows([steeper, parallel], anchor, "bpp", ["psnr-rgb"], _kodak())
    assert rows[0]["crossing psnr-rgb"] == "curves cross at 1 bpp (40.00 dB)"
    assert rows[1]["crossing psnr-rgb"] == ""
    html = build_report(tmp_path / "r.html", "t", [], rows, [anchor]).read_text()
    cells = re.findall(r"<td class='warn'[^>]*>([^<]*)</td>", html)
    assert cells[0].startswith("&#9888; ") and cells[1].startswith("&#9888; ")  # BD-rate, BD-PSNR
    assert cells[2] == "&#9888; curves cross at 1 bpp (40.00 dB)"
    assert len(cells) == 3  # BD-rate and BD-PSNR of the crossing row, and its crossing cell; none else


# ------------------------------------------------------------------------------ report content


def _report(tmp_path, **kw):
    anchor = _curve("VTM", RATES, _lines(10), KODAK_ANCHOR)
    run = [_curve("jpeg", RATES, _lines(9)), _curve("webp", RATES, _lines(12))]
    for c in run:
        c.results["encoding_time"] = [0.01] * 4
        c.results["quality"] = [10, 30, 60, 90]
    ds = _kodak(items=3, crop=256)
    plot = rd_plot(run + [anchor], tmp_path / "rd_psnr.png", "bpp", "psnr-rgb")
    rows = summary_rows(run, run[0], "bpp", ["psnr-rgb"], ds) + summary_rows(
        run, anchor, "bpp", ["psnr-rgb"], ds
    )
    return build_report(tmp_path / "report.html", "ncodec test report", [plot], rows, run + [anchor],
                        dataset=ds, **kw).read_text()  # fmt: skip


def test_header_names_dataset_count_and_crop(tmp_path):
    html = _report(tmp_path)
    head = html[: html.index("Rate-distortion curves")]
    assert "kodak" in head and "data/kodak" in head and "3 images" in head
    assert "centre crop 256×256 px" in head


def test_flagged_cells_are_red_with_the_reason(tmp_path):
    html = _report(tmp_path)
    flagged = re.findall(r"<td class='flag'[^>]*>([^<]*)</td>", html)
    assert len(flagged) == 4  # jpeg and webp against VTM: BD-rate and BD-PSNR each
    assert all("3 of 24 images" in f and "cropped to 256×256 px" in f for f in flagged)
    assert "td.flag{background:#fde2e2;color:#b00000" in html


def test_plots_are_svg_beside_png_and_embedded(tmp_path):
    html = _report(tmp_path)
    assert (tmp_path / "rd_psnr.png").is_file() and (tmp_path / "rd_psnr.svg").is_file()
    assert (tmp_path / "rd_psnr.svg").read_text().lstrip().startswith("<?xml")
    assert "data:image/svg+xml;base64," in html


def test_every_column_names_its_unit(tmp_path):
    html = _report(tmp_path)
    labels = {"codec", "anchor", "note", "data set", "path", "items", "crop / limits", "sha256"}
    headers = re.findall(r"<th>([^<]*)</th>", html)
    assert headers
    for h in headers:
        if h in labels or h.startswith("crossing "):
            continue
        assert re.search(r"\[(bpp|dB|kbps|s|ms|%|codec setting|0-1|MOS-LQO)\]$|\((%|dB|kbps)\)$", h), h
    assert "bpp [bpp]" in headers and "psnr-rgb [dB]" in headers and "encoding_time [s]" in headers
    assert "bd-rate psnr-rgb (%)" in headers and "bd psnr-rgb (dB)" in headers


# ------------------------------------------------------------------------------ crops


def test_zoom_is_integer_nearest_neighbour():
    a = np.arange(2 * 3 * 3, dtype=np.uint8).reshape(2, 3, 3) * 10
    z = np.asarray(Image.open(io.BytesIO(zoom_png(a, 3))))
    assert z.shape == (6, 9, 3)
    assert np.array_equal(z, a.repeat(3, axis=0).repeat(3, axis=1))
    with pytest.raises(ValueError, match="integer"):
        zoom_png(a, 1.5)


def test_error_map_scale():
    ref = np.full((4, 4, 3), 100, np.uint8)
    dec = ref.copy()
    dec[0, 0] = 100 + ERROR_MAP_MAX
    dec[1, 1] = 255
    m = error_map(ref, dec)
    assert m.shape == (4, 4, 3) and m.dtype == np.uint8
    assert sum(m[2, 2].tolist()) < 10  # no error: black (inferno's darkest)
    assert m[0, 0].tolist() == m[1, 1].tolist() and m[0, 0].sum() > 600  # saturates at ERROR_MAP_MAX


def _png(a):
    buf = io.BytesIO()
    Image.fromarray(a).save(buf, format="PNG")
    return buf.getvalue()


def test_matched_crops_pick_the_nearest_point_and_state_its_rate(tmp_path):
    from ncodec.eval.run_image import CROP_DISPLAY, CROP_SIZE, matched_crops

    rng = np.random.default_rng(0)
    ref = rng.integers(0, 256, (200, 300, 3), dtype=np.uint8)
    box = ref[36:164, 86:214]  # the centre 128 px crop
    results = []
    for codec, bpps in (("jpeg", [0.3, 0.6, 1.2]), ("webp", [0.2, 0.45, 0.9, 1.8])):
        for q, b in enumerate(bpps):
            noisy = np.clip(box.astype(int) + rng.integers(-8, 9, box.shape) // (q + 1), 0, 255).astype(
                np.uint8
            )
            results.append(
                ({"file": "a.png", "codec": codec, "quality": q, "bpp": b, "psnr-rgb": 30.0 + q}, _png(noisy))
            )
            results.append(({"file": "b.png", "codec": codec, "quality": q, "bpp": b, "psnr-rgb": 1.0}, None))
    crops, caption = matched_crops(Image.fromarray(ref), results, ["jpeg", "webp"])
    assert [c.label for c in crops] == ["original", "jpeg q=1", "webp q=1"]  # 0.6 and 0.45 nearest 0.5
    assert [c.bpp for c in crops[1:]] == [0.6, 0.45]
    assert "nearest to 0.500 bpp" in caption and f"{CROP_DISPLAY // CROP_SIZE}×" in caption
    for c in crops:
        assert c.zoom == CROP_DISPLAY // CROP_SIZE == 2
        assert Image.open(io.BytesIO(c.png)).size == (CROP_SIZE * 2, CROP_SIZE * 2)
    assert crops[0].error_png is None and all(c.error_png for c in crops[1:])
    html = build_report(tmp_path / "r.html", "t", [], [], [], crops=crops, crop_caption=caption).read_text()
    sizes = re.findall(r"<img alt='[^']*' width='(\d+)' height='(\d+)'", html)
    assert sizes and set(sizes) == {("256", "256")}  # shown at the PNG's own size: no browser scaling
    assert "0.600 bpp" in html and "0.450 bpp" in html and "error map" in html


# ------------------------------------------------------------------------------ audio


def _tone(sr=16000, seconds=1.0):
    t = np.arange(int(sr * seconds)) / sr
    return (0.3 * np.sin(2 * np.pi * 440 * t) * (1 + np.sin(2 * np.pi * 3 * t)) / 2).astype(np.float32)[None]


def test_wav_bytes_roundtrip():
    x = _tone()
    with wave.open(io.BytesIO(wav_bytes(x, 16000))) as w:
        assert (w.getframerate(), w.getnchannels(), w.getsampwidth(), w.getnframes()) == (16000, 1, 2, 16000)
        y = np.frombuffer(w.readframes(16000), "<i2") / 32767.0
    assert np.max(np.abs(y - x[0])) < 1e-4


def test_audio_players_and_spectrograms_at_matched_rate(tmp_path):
    from ncodec.eval.run_audio import matched_clips

    x = _tone()
    rng = np.random.default_rng(1)
    results = []
    for codec, rates in (("opus", [6.2, 12.1, 24.3]), ("mp3", [16.5, 24.0, 32.2])):
        for k in rates:
            y = (x + rng.normal(0, 0.3 / k, x.shape)).astype(np.float32)
            row = {"file": "a.flac", "codec": codec, "kbps-target": round(k), "kbps": k, "pesq-wb": 3.0,
                   "si-sdr": 10.0, "visqol": math.nan}  # fmt: skip
            results.append((row, y))
    clips, caption = matched_clips(x, 16000, results, ["opus", "mp3"])
    # shared range 16.5..24.3 kbps, target its geometric middle 20.0: opus 24.3, mp3 24.0 (nearest in log)
    assert [c.label for c in clips] == ["original", "opus (24 kbps setting)", "mp3 (24 kbps setting)"]
    assert [c.kbps for c in clips[1:]] == [24.3, 24.0] and "20.0 kbps" in caption
    assert all(c.spectrogram and Image.open(io.BytesIO(c.spectrogram)).size[0] > 200 for c in clips)
    assert "visqol" not in clips[1].stats and "pesq-wb 3.00" in clips[1].stats
    html = build_report(tmp_path / "a.html", "t", [], [], [], clips=clips, clip_caption=caption).read_text()
    players = re.findall(r"<audio controls[^>]*src='data:audio/wav;base64,([^']+)'", html)
    assert len(players) == 3
    with wave.open(io.BytesIO(base64.b64decode(players[1]))) as w:
        assert w.getframerate() == 16000 and w.getnframes() == 16000
    assert html.count("spectrogram' src='data:image/png;base64,") == 3
    assert "24.3 kbps" in html and "24.0 kbps" in html


def test_log_mel_db_shape():
    s = M.log_mel_db(_tone(), 16000)
    assert s.shape[0] == 80 and s.shape[1] > 10 and s.max() > -20 and s.min() >= -100.01


# ------------------------------------------------------------------------------ ViSQOL (optional)


def test_visqol_is_optional(monkeypatch):
    import ncodec.eval.run_audio as RA

    monkeypatch.setattr(M, "visqol_available", lambda: False)
    assert math.isnan(M.visqol(_tone(), _tone(), 16000))
    assert "visqol" not in RA._metrics()
    monkeypatch.setattr(M, "visqol_available", lambda: True)
    assert RA._metrics()[-1] == "visqol"


@pytest.mark.skipif(
    not M.visqol_available(), reason="visqol-python not installed (optional, not in the lock)"
)
def test_visqol_scores_clean_above_noisy():
    x = _tone(seconds=3.0)
    noisy = (x + np.random.default_rng(0).normal(0, 0.05, x.shape)).astype(np.float32)
    clean, bad = M.visqol(x, x, 16000), M.visqol(x, noisy, 16000)
    assert 4.0 < clean <= 5.0 and 1.0 <= bad < clean


# ------------------------------------------------------------------------------ end to end, tiny


def test_run_image_on_two_synthetic_images(tmp_path):
    from ncodec.eval.run_image import run_image

    d = tmp_path / "tiny"
    d.mkdir()
    rng = np.random.default_rng(2)
    for i in range(2):
        base = np.linspace(0, 255, 96 * 96 * 3).reshape(96, 96, 3)
        Image.fromarray(np.clip(base + rng.normal(0, 20, base.shape), 0, 255).astype(np.uint8)).save(
            d / f"{i}.png"
        )
    pts = {"jpeg": [20, 60, 90], "webp": [20, 60, 90]}
    fin = run_image(d, tmp_path / "out", ["jpeg", "webp"], rate_points=pts, quiet=True, show_progress=False)
    html = Path(fin["report"]).read_text()
    assert "<td>tiny</td>" in html and "2 images" in html and "none (full items)" in html
    assert (tmp_path / "out" / "rd_psnr.svg").is_file()
    assert html.count("error map' width='192' height='192'") == 2  # 96 px crops at 2×, one map per codec


# ------------------------------------------------------------------------------ rendered


def _chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        p = shutil.which(name)
        if p:
            return p
    return None


def test_report_renders_with_visible_flags(tmp_path):
    exe = _chromium()
    if exe is None:
        pytest.skip("chromium not found (apt-get install -y chromium)")
    anchor = _curve("anchor", RATES, _lines(10))
    crossing = _curve("steeper", RATES, _lines(12))
    rows = summary_rows([crossing], anchor, "bpp", ["psnr-rgb"], _kodak())
    _report(tmp_path)
    html_path = tmp_path / "report.html"  # add a table with a crossing row after the data-set header
    text = html_path.read_text().replace("</table>", "</table>" + _table(rows), 1)
    html_path.write_text(text)
    shot = tmp_path / "shot.png"
    cmd = [exe, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--hide-scrollbars",
           f"--user-data-dir={tmp_path / 'prof'}", "--window-size=1200,1600", f"--screenshot={shot}",
           html_path.resolve().as_uri()]  # fmt: skip
    subprocess.run(cmd, capture_output=True, timeout=90, check=False)
    assert shot.is_file(), "chromium wrote no screenshot"
    px = np.asarray(Image.open(shot).convert("RGB")).reshape(-1, 3).astype(int)
    red_cell = (np.abs(px - [0xFD, 0xE2, 0xE2]).sum(axis=1) < 6).sum()
    warn_cell = (np.abs(px - [0xFF, 0xF1, 0xD6]).sum(axis=1) < 6).sum()
    assert red_cell > 2000 and warn_cell > 500, (red_cell, warn_cell)
