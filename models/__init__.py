"""Transforms, entropy-model glue, training and the shipped weights (``weights/``)."""

from ncodec.models.registry import (
    DEFAULT_MODEL,
    SHIPPED,
    ModelInfo,
    UnknownModelError,
    load_model,
    model_info,
)

__all__ = ["DEFAULT_MODEL", "SHIPPED", "ModelInfo", "UnknownModelError", "load_model", "model_info"]
