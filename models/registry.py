"""The shipped models: one fixed table of names, never derived from dict order or file listings.

A stream names its model by this name and carries the hash of its weights, so adding a model
never changes how old streams decode.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"


class UnknownModelError(ValueError):
    """No shipped model has that name, or it serves another medium (CLI exit code 2)."""


@dataclass(frozen=True)
class ModelInfo:
    """A shipped model: ``name`` (stream model id), ``medium``, weights and card file names,
    and its rate range in words."""

    name: str
    medium: str
    weights: str
    card: str
    rate_range: str
    description: str

    @property
    def weights_path(self) -> Path:
        return WEIGHTS_DIR / self.weights

    @property
    def card_path(self) -> Path:
        return WEIGHTS_DIR / self.card


SHIPPED: dict[str, ModelInfo] = {
    "image-hp-v1": ModelInfo(
        name="image-hp-v1",
        medium="image",
        weights="image-hp-v1.safetensors",
        card="image-hp-v1.md",
        rate_range="quality 0-100, about 0.1-1.5 bpp on Kodak",
        description="variable-rate mean-scale hyperprior, exact integer table selection",
    ),
    "audio-hp-v1": ModelInfo(
        name="audio-hp-v1",
        medium="audio",
        weights="audio-hp-v1.safetensors",
        card="audio-hp-v1.md",
        rate_range="about 6-64 kbit/s per channel (--target-kbps, --quality 0-100), 16 kHz model rate",
        description="variable-rate 1-D mean-scale hyperprior on a learned MDCT-like filterbank, exact tables",
    ),
}

DEFAULT_MODEL = {"image": "image-hp-v1", "audio": "audio-hp-v1"}


def model_info(name: str | None, medium: str) -> ModelInfo:
    """The shipped model ``name`` (or the medium's default), checked to serve ``medium``."""
    name = name or DEFAULT_MODEL.get(medium)
    if name is None:
        raise UnknownModelError(f"no {medium} model is shipped yet")
    info = SHIPPED.get(name)
    if info is None:
        raise UnknownModelError(f"unknown model '{name}'; shipped: {', '.join(SHIPPED)}")
    if info.medium != medium:
        raise UnknownModelError(f"model '{name}' codes {info.medium}, not {medium}")
    return info


@lru_cache(maxsize=4)
def load_model(name: str):
    """Loads (once per process) the weights of the shipped model ``name``."""
    info = SHIPPED[name]
    if info.medium == "image":
        from ncodec.models.image_model import ImageModel

        return ImageModel.load(info.weights_path)
    if info.medium == "audio":
        from ncodec.models.audio_model import AudioModel

        return AudioModel.load(info.weights_path)
    raise UnknownModelError(f"no loader for {info.medium} models")
