"""Errors of the codec layer (input and output files); stream errors live in ``ncodec.bitstream``."""

from __future__ import annotations

from ncodec.models.registry import UnknownModelError


class UnsupportedInputError(ValueError):
    """The input cannot be read or is not a supported medium (CLI exit code 3)."""


class InvalidArgumentError(ValueError):
    """An argument is out of range or conflicts with another (CLI exit code 2)."""


class OutputExistsError(FileExistsError):
    """The output file exists and ``force`` was not given (CLI exit code 2)."""


class OutputError(OSError):
    """The output cannot be written: a missing or read-only folder, a full disk, a type the
    medium cannot be written as (CLI exit code 5)."""


EXIT_OK, EXIT_INTERNAL, EXIT_USAGE, EXIT_INPUT, EXIT_STREAM, EXIT_OUTPUT = 0, 1, 2, 3, 4, 5
"""The CLI's exit codes (README, "Exit codes")."""


def exit_code(e: BaseException) -> int:
    """The exit code of an error: 4 stream, 3 input, 5 output, 2 usage, 1 anything else (a bug)."""
    from ncodec.bitstream.errors import BitstreamError
    from ncodec.models.errors import ModelFileError

    if isinstance(e, BitstreamError):
        return EXIT_STREAM
    if isinstance(e, UnsupportedInputError | ModelFileError):
        return EXIT_INPUT
    if isinstance(e, OutputExistsError | UnknownModelError | InvalidArgumentError):
        return EXIT_USAGE
    if isinstance(e, OutputError):
        return EXIT_OUTPUT
    if isinstance(e, OSError):
        return EXIT_INPUT
    return EXIT_INTERNAL


__all__ = [
    "UnsupportedInputError",
    "InvalidArgumentError",
    "OutputExistsError",
    "OutputError",
    "UnknownModelError",
    "exit_code",
]
