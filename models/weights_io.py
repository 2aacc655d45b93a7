"""Weights files: safetensors (never pickle) with a small metadata header, read as untrusted input.

Every shipped model file carries ``format = ncodec-weights``, a ``version``, its ``kind`` (for example
``image-hyperprior``), its ``model_id`` and a JSON ``config``. The model hash that streams carry is
:func:`weights_digest` over all tensors.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save_file
from torch import Tensor

from ncodec.models.errors import ModelFileError

WEIGHTS_FORMAT = "ncodec-weights"
WEIGHTS_VERSION = "1"


def weights_digest(t: dict[str, Tensor]) -> bytes:
    """SHA-256 over every tensor (name, dtype, shape, bytes) in name order: the model hash."""
    h = hashlib.sha256()
    for k in sorted(t):
        v = t[k].contiguous()
        h.update(f"{k}|{v.dtype}|{tuple(v.shape)}|".encode())
        h.update(v.view(torch.uint8).numpy().tobytes() if v.numel() else b"")
    return h.digest()


def save_weights(
    path: Path, tensors: dict[str, Tensor], kind: str, model_id: str, meta: dict[str, str]
) -> None:
    """Writes ``tensors`` and the metadata header to ``path`` atomically (temporary file, rename)."""
    path = Path(path)
    header = {
        "format": WEIGHTS_FORMAT,
        "version": WEIGHTS_VERSION,
        "kind": kind,
        "model_id": model_id,
        **meta,
    }
    tmp = path.with_suffix(".tmp")
    save_file(tensors, str(tmp), metadata=header)
    tmp.replace(path)


def read_weights(path: Path, kind: str) -> tuple[dict[str, str], dict[str, Tensor]]:
    """Reads a weights file of ``kind``; returns its metadata and tensors.

    Raises:
        ModelFileError: unreadable, not an ncodec weights file, another kind or another version.
    """
    path = Path(path)
    try:
        with safe_open(str(path), "pt") as f:
            meta = f.metadata() or {}
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except Exception as e:  # safetensors raises several types for a damaged file
        raise ModelFileError(f"{path}: not a readable safetensors weights file ({e})") from None
    if meta.get("format") != WEIGHTS_FORMAT or meta.get("kind") != kind:
        raise ModelFileError(f"{path}: not an ncodec {kind} weights file")
    if meta.get("version") != WEIGHTS_VERSION:
        raise ModelFileError(f"{path}: weights version {meta.get('version')}, expected {WEIGHTS_VERSION}")
    return meta, tensors


def table_tensors(name: str, tables) -> dict[str, Tensor]:
    """A :class:`~ncodec.entropy.TableSet` as ``{name}.cdf/.sizes/.offsets`` int32 tensors."""
    return {
        f"{name}.cdf": torch.from_numpy(tables.cdf),
        f"{name}.sizes": torch.from_numpy(tables.sizes),
        f"{name}.offsets": torch.from_numpy(tables.offsets),
    }


def tables_from(t: dict[str, Tensor], name: str):
    """The :class:`~ncodec.entropy.TableSet` stored under ``name`` (validated; ``ValueError`` if bad)."""
    from ncodec.entropy.tables import TableSet

    return TableSet(t[f"{name}.cdf"].numpy(), t[f"{name}.sizes"].numpy(), t[f"{name}.offsets"].numpy())


class HyperpriorWeights:
    """``tensors()`` and ``save()`` shared by the shipped hyperprior models (image and audio): float
    state under ``float.*``, the integer hyper-synthesis, the z and y tables and the y thresholds.
    Subclasses (also ``nn.Module``) set ``KIND`` and hold ``model_id``, ``config``, ``h_s_int``,
    ``z_tables``, ``y_tables`` and ``y_thresholds``."""

    KIND = ""

    def tensors(self) -> dict[str, Tensor]:
        t = {f"float.{k}": v.detach().cpu().contiguous() for k, v in self.state_dict().items()}
        t.update(self.h_s_int.state_tensors())
        t.update(table_tensors("z_tables", self.z_tables))
        t.update(table_tensors("y_tables", self.y_tables))
        t["y_thresholds"] = self.y_thresholds
        return t

    def load_entropy(self, t: dict[str, Tensor]) -> None:
        """Sets the integer hyper-synthesis, the z and y tables and the y thresholds from a weights
        file's tensors, checking that they fit each other (``ValueError``/``KeyError`` if not)."""
        from ncodec.models.int_hyper import IntHyperSynthesis

        self.h_s_int = IntHyperSynthesis.from_state_tensors(t)
        self.z_tables = tables_from(t, "z_tables")
        self.y_tables = tables_from(t, "y_tables")
        self.y_thresholds = t["y_thresholds"].to(torch.int64)
        if self.y_thresholds.numel() != len(self.y_tables) - 1:
            raise ValueError("thresholds do not match the Gaussian tables")
        if len(self.z_tables) != self.config["n"]:
            raise ValueError("factorized tables do not match the hyper-latent channels")

    def save(self, path: Path, card: dict | None = None) -> None:
        """Writes a safetensors weights file (no pickle), atomically."""
        import json

        meta = {"config": json.dumps(self.config)}
        if card:
            meta["card"] = json.dumps(card)
        save_weights(path, self.tensors(), self.KIND, self.model_id, meta)
