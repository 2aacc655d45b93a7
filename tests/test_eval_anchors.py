"""Loading published anchors (CompressAI JSON schema)."""

from __future__ import annotations

import importlib.util
import sys
import types
from pathlib import Path

if importlib.util.find_spec("ncodec") is None:  # not installed yet: map the source tree as the package
    _pkg = types.ModuleType("ncodec")
    _pkg.__path__ = [str(Path(__file__).resolve().parents[1])]
    sys.modules["ncodec"] = _pkg

import json

import pytest

from ncodec.eval.anchors import anchors_root, find_anchor, load_curve, resolve_anchors  # noqa: E402

ANCHORS = Path(__file__).resolve().parents[1].parent / "shared" / "anchors"


def test_load_curve_roundtrip(tmp_path):
    p = tmp_path / "a.json"
    p.write_text(
        json.dumps({"name": "A", "description": "d", "results": {"bpp": [0.1, 0.2], "psnr-rgb": [30, 32]}})
    )
    c = load_curve(p)
    assert c.name == "A" and c.results["bpp"] == [0.1, 0.2]
    assert find_anchor(str(p)).name == "A"
    bad = tmp_path / "b.json"
    bad.write_text(json.dumps({"results": {}}))
    with pytest.raises(ValueError):
        load_curve(bad)


@pytest.mark.skipif(not ANCHORS.is_dir(), reason=f"shared anchors not found at {ANCHORS}")
def test_shared_anchors_by_name():
    assert anchors_root(ANCHORS) == ANCHORS
    vtm = find_anchor("vtm", root=ANCHORS)
    assert vtm.name == "VTM" and len(vtm.results["bpp"]) == len(vtm.results["psnr-rgb"])
    assert find_anchor("VTM", root=ANCHORS).source == vtm.source
    bpg = find_anchor("bpg_444_x265_ycbcr", root=ANCHORS)
    assert "BPG" in bpg.name
    assert {c.name for c in resolve_anchors(None, root=ANCHORS)} >= {"VTM", "WebP"}
    assert resolve_anchors("none") == []
    with pytest.raises(FileNotFoundError):
        find_anchor("no-such-anchor", root=ANCHORS)
