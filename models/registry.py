"""Models: the architectures (keyed by the ``kind`` their weights files name) and the shipped
weights (one fixed table of names, never derived from dict order or file listings).

A stream names its model by its shipped name and carries the hash of its weights, so adding a
model never changes how old streams decode. A weights file names its architecture in its metadata
(``kind``, for example ``image-hyperprior``); a class registers for its kind with
:func:`register_architecture`. A second architecture is one new module (its class, registered)
plus one row in :data:`SHIPPED` naming that module. This module imports no torch.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from ncodec.models.errors import ModelFileError, UnknownModelError

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"

ARCHITECTURES: dict[str, type] = {}
"""Weights-file ``kind`` -> model class (filled by :func:`register_architecture`)."""


def register_architecture(kind: str):
    """Class decorator: ``kind`` weights files load with this class's ``load(path)``."""

    def deco(cls: type) -> type:
        if ARCHITECTURES.get(kind, cls) is not cls:
            raise ValueError(f"architecture '{kind}' registered twice")
        ARCHITECTURES[kind] = cls
        return cls

    return deco


@dataclass(frozen=True)
class ModelInfo:
    """A shipped model: ``name`` (stream model id), ``medium``, weights and card file names, its
    rate range in words, the module defining its architecture, and the first 16 bytes of its
    weights hash (hex), which streams carry and loading checks."""

    name: str
    medium: str
    weights: str
    card: str
    rate_range: str
    description: str
    module: str
    digest: str
    also: tuple[str, ...] = ()  #: other media it codes (the image model codes all-intra video)
    #: ``(rate, model)``: this model's encoder and payload are ``model``'s, and above ``rate`` (the
    #: medium's rate parameter) ``model``'s decoder is the better one, so such streams are written
    #: under ``model``'s name (the payload is the same bytes)
    decoder_above: tuple[float, str] | None = None

    @property
    def media(self) -> tuple[str, ...]:
        """Every medium this model codes."""
        return (self.medium, *self.also)

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
        module="ncodec.models.image_model",
        digest="002ff99d9f458a42fb5fb7299ee02427",
        also=("video",),
    ),
    "image-ctx-v1": ModelInfo(
        name="image-ctx-v1",
        medium="image",
        weights="image-ctx-v1.safetensors",
        card="image-ctx-v1.md",
        rate_range="quality 0-100, as image-hp-v1 (same transforms), 2.5-4.6 % fewer bytes",
        description="image-hp-v1's frozen transforms with a channel-conditional context model (5 slices), "
        "exact integer context networks",
        module="ncodec.models.image_context",
        digest="91244fff05a7d0189de0dac43c4eb649",
    ),
    "image-ctx-v2": ModelInfo(
        name="image-ctx-v2",
        medium="image",
        weights="image-ctx-v2.safetensors",
        card="image-ctx-v2.md",
        rate_range="quality 0-100, as image-hp-v1 (same transforms), 4.0-5.8 % fewer bytes",
        description="image-ctx-v1's context model widened to 128 channels and trained 7x longer, "
        "exact integer context networks",
        module="ncodec.models.image_context",
        digest="f942159834b8e1d7f421435c4df8a735",
    ),
    "audio-hp-v1": ModelInfo(
        name="audio-hp-v1",
        medium="audio",
        weights="audio-hp-v1.safetensors",
        card="audio-hp-v1.md",
        rate_range="about 6-64 kbit/s per channel (--target-kbps, --quality 0-100), 16 kHz model rate",
        description="variable-rate 1-D mean-scale hyperprior on a learned MDCT-like filterbank, exact tables",
        module="ncodec.models.audio_model",
        digest="2ffc8f14a2164c88c511cc3236e09caf",
    ),
    "audio-pd-v1": ModelInfo(
        name="audio-pd-v1",
        medium="audio",
        weights="audio-pd-v1.safetensors",
        card="audio-pd-v1.md",
        rate_range="as audio-hp-v1 (same encoder and bitstream), 16 kHz model rate",
        description="audio-hp-v1's encoder and entropy model with a perceptually trained decoder "
        "(frame-rate enhancer fed by the hyperprior's scales)",
        module="ncodec.models.audio_pd",
        digest="9850e2e77d320a59028b96e79bac869e",
        decoder_above=(320.0, "audio-hp-v1"),  # 32 kbit/s nominal (rate in 0.1 kbit/s): see its card
    ),
    "audio-ctx-v1": ModelInfo(
        name="audio-ctx-v1",
        medium="audio",
        weights="audio-ctx-v1.safetensors",
        card="audio-ctx-v1.md",
        rate_range="as audio-pd-v1 (same symbols and decoder), fewer bytes at the same rate field",
        description="audio-pd-v1 with a checkerboard context entropy model over its latents "
        "(exact integer networks); audio-hp-v1's decoder above 32 kbit/s",
        module="ncodec.models.audio_context",
        digest="39c80854e4adcf5ed4f96516a8c17180",
    ),
    "video-st-v1": ModelInfo(
        name="video-st-v1",
        medium="video",
        weights="video-st-v1.safetensors",
        card="video-st-v1.md",
        rate_range="quality 0-100 (image-hp-v1's transforms); P-frames 2-8.5 % below intra",
        description="temporal entropy model for P-frame latents over image-hp-v1, exact integer networks",
        module="ncodec.models.video_model",
        digest="b6fad26675985f493510074ee3ad01f7",
    ),
}

DEFAULT_MODEL = {"image": "image-ctx-v2", "audio": "audio-ctx-v1", "video": "video-st-v1"}


def model_info(name: str | None, medium: str) -> ModelInfo:
    """The shipped model ``name`` (or the medium's default), checked to serve ``medium``."""
    name = name or DEFAULT_MODEL.get(medium)
    if name is None:
        raise UnknownModelError(f"no {medium} model is shipped yet")
    info = SHIPPED.get(name)
    if info is None:
        raise UnknownModelError(f"unknown model '{name}'; shipped: {', '.join(SHIPPED)}")
    if medium not in info.media:
        raise UnknownModelError(f"model '{name}' codes {' and '.join(info.media)}, not {medium}")
    return info


def weights_kind(path: Path) -> str:
    """The architecture a weights file names (its ``kind``), read from the metadata alone.

    Raises:
        ModelFileError: unreadable or not an ncodec weights file.
    """
    from safetensors import safe_open

    WEIGHTS_FORMAT = "ncodec-weights"  # as weights_io writes (which imports torch)

    try:
        with safe_open(str(path), "numpy") as f:
            meta = f.metadata() or {}
    except Exception as e:  # safetensors raises several types for a damaged file
        raise ModelFileError(f"{path}: not a readable safetensors weights file ({e})") from None
    if meta.get("format") != WEIGHTS_FORMAT or "kind" not in meta:
        raise ModelFileError(f"{path}: not an ncodec weights file")
    return meta["kind"]


def load_weights(path: Path, module: str | None = None):
    """Loads any ncodec weights file with the class registered for the architecture it names
    (importing ``module`` first, where that class lives)."""
    if module:
        importlib.import_module(module)
    kind = weights_kind(path)
    cls = ARCHITECTURES.get(kind)
    if cls is None:
        raise ModelFileError(f"{path}: unknown architecture '{kind}'")
    return cls.load(path)


@lru_cache(maxsize=4)
def load_model(name: str):
    """Loads (once per process) the weights of the shipped model ``name``, checking their hash.

    Raises:
        UnknownModelError: no such shipped model.
        ModelFileError: the file is missing, damaged, or not the shipped weights.
    """
    info = SHIPPED.get(name)
    if info is None:
        raise UnknownModelError(f"unknown model '{name}'; shipped: {', '.join(SHIPPED)}")
    m = load_weights(info.weights_path, info.module)
    if m.digest[:16].hex() != info.digest:
        raise ModelFileError(f"{info.weights_path}: weights hash differs from the shipped '{name}'")
    return m
