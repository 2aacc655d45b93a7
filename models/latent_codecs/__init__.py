"""Latent codecs: the z -> y payload coding of one unit (tile, chunk, frame) behind one interface.

See :mod:`.base` for the interface, the two-stage codecs (hyper-latents, then latents under their
prior) that pictures code in segments, and the multi-part payload; :mod:`.hyperprior` is format 1's.
"""

from ncodec.models.latent_codecs.base import (
    Coded,
    LatentCodec,
    StagedCodec,
    UnitShape,
    join_parts,
    split_parts,
)
from ncodec.models.latent_codecs.hyperprior import Y_LIMIT, HyperpriorCodec, HyperpriorModel

__all__ = [
    "Coded",
    "LatentCodec",
    "StagedCodec",
    "UnitShape",
    "join_parts",
    "split_parts",
    "HyperpriorCodec",
    "HyperpriorModel",
    "Y_LIMIT",
]
