"""The decode fuzzer's seeds and corpus (tests/fuzz/: real streams of every medium and model, and
the inputs ``make fuzz`` found interesting or crashing) replay without a finding: every one parses
and symbol-decodes, or raises a BitstreamError."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

FUZZ = Path(__file__).parent / "fuzz"
CASES = sorted(p for d in ("seeds", "corpus") for p in (FUZZ / d).iterdir() if p.is_file())


@pytest.fixture(scope="module")
def harness():
    spec = importlib.util.spec_from_file_location("fuzz_decode", FUZZ / "fuzz_decode.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod, mod._setup()


@pytest.mark.parametrize("case", CASES, ids=[f"{p.parent.name}/{p.name}" for p in CASES])
def test_replay(harness, case: Path) -> None:
    mod, models = harness
    data = case.read_bytes()
    mod.one(data, models)
    mod.one(mod.fix_checksums(data), models)


def test_seeds_cover_every_shipped_medium() -> None:
    names = {p.name.split("_")[0] for p in (FUZZ / "seeds").iterdir()}
    assert {"image", "audio"} <= names


@pytest.mark.slow
def test_short_fuzz_run(tmp_path: Path) -> None:
    """A bounded run of the coverage-guided fuzzer from the seeds: no finding."""
    pytest.importorskip("atheris")
    run = subprocess.run(
        [
            sys.executable,
            str(FUZZ / "fuzz_decode.py"),
            "-runs=1500",
            "-seed=1",
            f"-artifact_prefix={tmp_path}/",
            str(tmp_path),
            str(FUZZ / "seeds"),
        ],
        capture_output=True,
        text=True,
        timeout=900,
        env={"OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"},
    )
    assert run.returncode == 0, run.stderr[-3000:]
    assert "Done 1500 runs" in run.stderr
