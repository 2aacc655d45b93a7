"""Errors of the codec layer (input and output files); stream errors live in ``ncodec.bitstream``."""

from __future__ import annotations

from ncodec.models.registry import UnknownModelError


class UnsupportedInputError(ValueError):
    """The input cannot be read or is not a supported medium (CLI exit code 3)."""


class InvalidArgumentError(ValueError):
    """An argument is out of range or conflicts with another (CLI exit code 2)."""


class OutputExistsError(FileExistsError):
    """The output file exists and ``force`` was not given (CLI exit code 2)."""


__all__ = ["UnsupportedInputError", "InvalidArgumentError", "OutputExistsError", "UnknownModelError"]
