"""README's examples run as written, on the bundled samples: every ``ncodec`` command of its
``sh`` blocks (photo.png, speech.flac and the folder photos are the samples in tests/data) and its
Python blocks, in a scratch folder. Commands that need ``../shared`` run only where it is present;
the long-running ones (training, benchmarks, evaluations, Ray) are covered by their own tests and
listed in SKIP with the reason."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "tests" / "data"
README = (ROOT / "README.md").read_text()
SHARED = (ROOT / ".." / "shared").resolve()

SKIP = {
    "ncodec train": "trains for hours (tests/test_train_*.py run the trainers briefly)",
    "ncodec bench": "benchmarks run for minutes (tests/test_cli.py runs a short entropy bench)",
    "ncodec eval": "evaluations run for minutes (tests/test_eval_cli.py)",
    "--engine ray": "starting Ray takes a minute (tests/test_folders.py runs this engine)",
}


def _blocks(lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", README, flags=re.S)


def _commands() -> list[str]:
    out = []
    for block in _blocks("sh"):
        for line in block.splitlines():
            line = re.sub(r"\s+#.*$", "", line).strip()
            if "ncodec " in line and not line.startswith("make"):
                out.append(re.sub(r"\s*\[[^\]]*\]", "", line))  # optional parts left out
    return out


COMMANDS = _commands()


def _clip(path: Path, frames: int = 6, size: int = 64) -> None:
    """A small panning clip (x264) for the video examples."""
    import av
    import numpy as np

    with av.open(str(path), "w") as c:
        s = c.add_stream("libx264", rate=25)
        s.width, s.height, s.pix_fmt = size, size, "yuv420p"
        for t in range(frames):
            a = np.zeros((size, size, 3), np.uint8)
            a[..., 0] = (np.arange(size)[None, :] * 3 + 7 * t) % 256
            a[..., 1] = np.arange(size)[:, None] * 2
            for p in s.encode(av.VideoFrame.from_ndarray(a, format="rgb24")):
                c.mux(p)
        for p in s.encode(None):
            c.mux(p)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("readme")
    shutil.copy(DATA / "urban100_img012_crop.png", d / "photo.png")
    shutil.copy(DATA / "librispeech_103-1240-0000_4s.flac", d / "speech.flac")
    _clip(d / "clip.mp4")
    (d / "photos").mkdir()
    shutil.copy(DATA / "urban100_img012_crop.png", d / "photos" / "urban.png")
    shutil.copy(DATA / "bsds500_100007_crop.png", d / "photos" / "bsds.png")
    return d


def test_readme_has_the_examples():
    text = "\n".join(COMMANDS)
    for needle in ("encode - -o -", "--jobs", "--engine ray", "decode photos_ncb", "--format jpg"):
        assert needle in text, needle
    assert any("ncodec.codec.pillow" in b for b in _blocks("python"))


@pytest.mark.parametrize("command", COMMANDS)
def test_command(workdir, command):
    for needle, reason in SKIP.items():
        if needle in command:
            pytest.skip(reason)
    if "../shared" in command and not SHARED.exists():
        pytest.skip("needs ../shared data, absent here")
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    env["OMP_NUM_THREADS"] = "1"
    r = subprocess.run(
        ["bash", "-o", "pipefail", "-c", command],
        cwd=workdir,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert r.returncode == 0, f"{command}\n{r.stdout}\n{r.stderr}"


@pytest.mark.parametrize("index", range(len(_blocks("python"))))
def test_python_block(workdir, index, monkeypatch):
    code = _blocks("python")[index]
    if "import ray" in code:
        pytest.skip(SKIP["--engine ray"])
    monkeypatch.chdir(workdir)
    exec(compile(code, f"README.md python block {index}", "exec"), {"__name__": "readme"})
