"""Latent codecs: the z -> y payload coding of one unit (tile, chunk, frame) behind one interface.

See :mod:`.base` for the interface and the multi-part payload; :mod:`.hyperprior` is format 1's.
"""

from ncodec.models.latent_codecs.base import Coded, LatentCodec, UnitShape, join_parts, split_parts
from ncodec.models.latent_codecs.hyperprior import Y_LIMIT, HyperpriorCodec, HyperpriorModel

__all__ = [
    "Coded",
    "LatentCodec",
    "UnitShape",
    "join_parts",
    "split_parts",
    "HyperpriorCodec",
    "HyperpriorModel",
    "Y_LIMIT",
]
