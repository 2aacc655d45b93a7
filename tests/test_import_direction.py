"""Dependencies point one way: ``codec`` uses ``models``, ``entropy`` and ``bitstream``; ``eval``
and the trainers use ``codec``; nothing below ``codec`` imports it; ``bitstream`` and ``entropy``
know no network. Checked on the source (every import, also those inside functions), and at run
time for the commands that must start fast."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("codec", "entropy", "models", "bitstream", "eval")

# package -> ncodec packages (or modules) it must never import
FORBIDDEN = {
    "bitstream": ("ncodec.codec", "ncodec.models", "ncodec.entropy", "ncodec.eval", "torch", "numpy"),
    "entropy": ("ncodec.codec", "ncodec.models", "ncodec.eval"),
    "models": ("ncodec.codec", "ncodec.eval"),
    "codec": ("ncodec.eval", "ncodec.models.train"),
}

# The CLI is the application on top: it hands `ncodec eval ...` to the evaluation's own parser,
# importing it inside the handler only (as `train` does through its trainer table).
ALLOWED = {("codec/cli.py", "ncodec.eval.cli")}


def _imports(path: Path) -> set[str]:
    """Absolute module names imported anywhere in ``path`` (relative imports resolved)."""
    pkg = path.parent.relative_to(ROOT).parts
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = ["ncodec", *pkg[: len(pkg) - node.level + 1]]
                names.add(".".join(base + ([node.module] if node.module else [])))
            elif node.module:
                names.add(node.module)
    return names


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_no_upward_imports(package):
    bad = []
    for f in sorted((ROOT / package).rglob("*.py")):
        for name in _imports(f):
            for banned in FORBIDDEN[package]:
                hit = name == banned or name.startswith((banned + ".", banned + "_"))
                if hit and (str(f.relative_to(ROOT)), name) not in ALLOWED:
                    bad.append(f"{f.relative_to(ROOT)} imports {name}")
    assert not bad, "\n".join(bad)


def _modules_after(code: str) -> set[str]:
    out = subprocess.run(
        [sys.executable, "-c", code + "\nimport sys; print(' '.join(sys.modules))"],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
    )
    return set(out.stdout.split())


@pytest.mark.parametrize(
    "argv",
    [["--help"], ["info", "tests/golden/image_v1.ncb"], ["train", "--help"], ["models"]],
)
def test_light_commands_import_no_torch(argv):
    code = f"from ncodec.codec.cli import main\ntry:\n    main({argv!r})\nexcept SystemExit:\n    pass"
    mods = _modules_after(code)
    assert not {"torch", "scipy", "matplotlib", "ncodec.eval"} & mods
