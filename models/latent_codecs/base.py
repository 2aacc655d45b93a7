"""The latent-codec layer: how one tile's (or one chunk's) latents become payload parts and back.

A latent codec sits between a model's transforms and the container. The encoder hands it the
scaled latents ``ys`` (float) and the hyper-latents ``z_hat`` (integers) of one coding unit (an
image tile, an audio chunk, a video frame); it returns the payload as a list of *parts* and the
dequantised latents ``ys_hat`` exactly as the decoder will see them (so the encoder can synthesise
its reconstruction without decoding). The decoder hands the parts back with the unit's geometry.

Parts let a multi-pass entropy model (checkerboard anchors then non-anchors, channel slices, or
hyper-latents then latents as today) put one rANS payload per pass into one container segment,
with no new container feature. On the wire (FORMAT.md, "Multi-part payload") every part but the
last is preceded by its length as a LEB128 varint; the last runs to the end of the segment::

    varint(len(p0)) p0 varint(len(p1)) p1 ... p[n-1]

With two parts this is exactly the format-1 tile and chunk payload (z payload, then y payload).

Everything that selects a table or a mean is computed from exactly decoded integers by exact
integer networks (:mod:`ncodec.models.int_hyper`), never from floats that can round differently
on another machine, so a stream decodes to the same symbols everywhere.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import torch
from torch import Tensor

from ncodec.bitstream.errors import CorruptStreamError
from ncodec.entropy.varint import read_varint, write_varint


def join_parts(parts: list[bytes]) -> bytes:
    """Frames ``parts`` as one payload (every part but the last length-prefixed)."""
    if not parts:
        raise ValueError("a payload has at least one part")
    out = bytearray()
    for p in parts[:-1]:
        write_varint(out, len(p))
        out += p
    out += parts[-1]
    return bytes(out)


def split_parts(payload: bytes, n: int) -> list[bytes]:
    """The ``n`` parts of ``payload``.

    Raises:
        CorruptStreamError: a length prefix is damaged or overruns the payload.
    """
    parts, pos = [], 0
    for _ in range(n - 1):
        length, pos = read_varint(payload, pos)
        if pos + length > len(payload):
            raise CorruptStreamError("a payload part overruns its segment")
        parts.append(payload[pos : pos + length])
        pos += length
    parts.append(payload[pos:])
    return parts


@dataclass(frozen=True)
class UnitShape:
    """Geometry of one coding unit, known to the decoder from the header alone.

    Attributes:
        y: shape of the latents, ``[B, M, h, w]`` (images, video frames) or ``[B, M, t]`` (audio).
        z: shape of the hyper-latents, ``[B, N, h/4, w/4]`` or ``[B, N, ceil(t/4)]``.
    """

    y: tuple[int, ...]
    z: tuple[int, ...]


@dataclass
class Coded:
    """One unit coded: its payload ``parts`` and the dequantised scaled latents ``ys_hat``
    (float64, shape ``UnitShape.y``), identical to what :meth:`LatentCodec.decompress` returns."""

    parts: list[bytes]
    ys_hat: Tensor

    @property
    def payload(self) -> bytes:
        return join_parts(self.parts)


class LatentCodec(Protocol):
    """Codes the latents of one unit. Implementations: :class:`~.hyperprior.HyperpriorCodec`
    (format 1); context models add theirs (one module each).

    ``context`` carries what a conditional model may condition on besides the unit itself, for
    example the previous frame's decoded latents (video); ``None`` for intra coding.
    """

    #: number of payload parts this codec writes
    parts: int

    def compress(self, ys: Tensor, z_hat: Tensor, context: object | None = None) -> Coded:
        """``ys`` float ``UnitShape.y``, ``z_hat`` integer ``UnitShape.z`` -> :class:`Coded`."""
        ...

    def decompress(self, parts: list[bytes], shape: UnitShape, context: object | None = None) -> Tensor:
        """Payload parts -> ``ys_hat`` (float64, ``shape.y``).

        Raises:
            CorruptStreamError: damaged payload (rANS framing, bad sizes).
        """
        ...


class StagedCodec:
    """A latent codec in two stages: the hyper-latents ``z_hat`` (part 0) give an exact *prior*,
    a tuple of tensors of the latents' shape (means, table indexes...), under which the latents
    are coded (parts ``1..parts-1``).

    The split lets an image code its hyper-latents once for the whole picture and its latents in
    segments, each under the crop of the prior that covers it (:mod:`ncodec.models.windows`).
    Subclasses implement the four stage methods; :meth:`compress` and :meth:`decompress` code one
    whole unit."""

    #: number of payload parts, the hyper-latents' included
    parts: int

    def code_hyper(self, z_hat: Tensor) -> bytes:
        """Integer hyper-latents ``UnitShape.z`` -> part 0."""
        raise NotImplementedError

    def decode_hyper(self, part: bytes, z_shape: tuple[int, ...]) -> Tensor:
        """Part 0 -> hyper-latents (int64, ``z_shape``)."""
        raise NotImplementedError

    def prior(self, z_hat: Tensor, y_shape: tuple[int, ...]) -> tuple[Tensor, ...]:
        """Exact: hyper-latents -> the prior's tensors, each of ``y_shape``. Every output position
        depends on hyper-latents within :data:`ncodec.models.windows.PRIOR_HALO` of it, so the
        prior of a crop is the crop of the prior (what segments rely on)."""
        raise NotImplementedError

    def compress_latents(self, ys: Tensor, prior: tuple[Tensor, ...]) -> Coded:
        """Latents of the prior's shape -> parts ``1..`` and ``ys_hat``."""
        raise NotImplementedError

    def decompress_latents(self, parts: list[bytes], prior: tuple[Tensor, ...]) -> Tensor:
        """Parts ``1..`` -> ``ys_hat`` (float64, the prior's shape).

        Raises:
            CorruptStreamError: damaged payload.
        """
        raise NotImplementedError

    def compress(self, ys: Tensor, z_hat: Tensor, context: object | None = None) -> Coded:
        z_hat = z_hat.cpu().to(torch.int64)
        coded = self.compress_latents(ys, self.prior(z_hat, tuple(ys.shape)))
        return Coded([self.code_hyper(z_hat), *coded.parts], coded.ys_hat)

    def decompress(self, parts: list[bytes], shape: UnitShape, context: object | None = None) -> Tensor:
        if len(parts) != self.parts:
            raise CorruptStreamError(f"payload of {len(parts)} parts, expected {self.parts}")
        z = self.decode_hyper(parts[0], shape.z)
        prior = self.prior(z, shape.y)
        if tuple(prior[0].shape) != tuple(shape.y):
            raise CorruptStreamError("latent shape does not match the hyper-latents")
        return self.decompress_latents(parts[1:], prior)
