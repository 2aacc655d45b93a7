"""Installation layout: one top-level name, ``ncodec``, and the extension inside the wheel."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BARE = ("codec", "entropy", "models", "bitstream", "eval")


def test_namespaced_imports_only(tmp_path):
    code = (
        "import importlib.util, ncodec.codec, ncodec.entropy, ncodec.models, ncodec.bitstream, ncodec.eval\n"
        f"print([n for n in {BARE!r} if importlib.util.find_spec(n) is not None])"
    )
    r = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=300
    )
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "[]"


@pytest.mark.slow
def test_wheel_holds_only_ncodec_and_the_extension(tmp_path):
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            str(ROOT),
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=900,
    )
    if r.returncode != 0 and "No module named pip" in r.stderr:
        pytest.skip("pip is not available in this environment")
    assert r.returncode == 0, r.stderr[-2000:]
    (wheel,) = tmp_path.glob("ncodec-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    tops = {n.split("/")[0] for n in names}
    assert tops == {"ncodec", wheel.name.split("-")[0] + "-" + wheel.name.split("-")[1] + ".dist-info"}
    assert any(n.startswith("ncodec/entropy/_rans.") for n in names)
    assert "ncodec/models/weights/image-hp-v1.safetensors" in names
