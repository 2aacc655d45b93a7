"""Errors of the model layer (no torch, so that the CLI can name them without importing it)."""

from __future__ import annotations


class ModelFileError(ValueError):
    """A weights file is unknown, damaged or of another kind (CLI exit code 3)."""


class UnknownModelError(ValueError):
    """No shipped model has that name, or it serves another medium (CLI exit code 2)."""
