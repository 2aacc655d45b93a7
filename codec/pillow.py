"""A Pillow plugin for ``.ncb`` image streams: importing this module registers the format.

    >>> import ncodec.codec.pillow  # noqa: F401  (registers "NCODEC" with Pillow)
    >>> from PIL import Image
    >>> img = Image.open("photo.ncb")          # size and mode from the header; pixels on load()
    >>> img.save("copy.ncb", quality=60)       # or target_bpp=0.5, target_psnr=32, model=..., tile=...

``Image.open`` reads the stream's header only (no torch); the pixels are decoded on first access
(``load()``, ``convert``, ``np.asarray``...). Modes are those ncodec decodes to: ``RGB``, ``L``
(grayscale sources) and ``RGBA`` (sources with alpha). Saving takes ``quality`` (0..100, default
50) or one of ``target_bpp``/``target_psnr``, and ``model``, ``device``, ``tile``. Pillow has no
plugin discovery through entry points, so the import is needed once per process.
"""

from __future__ import annotations

import io
from typing import IO, Any

from PIL import Image, ImageFile

from ncodec.bitstream.container import MAGIC, MEDIA_IMAGE, StreamReader
from ncodec.bitstream.errors import BitstreamError

FORMAT = "NCODEC"
EXTENSION = ".ncb"
MIME = "image/x-ncodec"
_SAVE_OPTIONS = ("quality", "target_bpp", "target_psnr", "model", "device", "tile")


def _accept(prefix: bytes) -> bool:
    return prefix[: len(MAGIC)] == MAGIC


class NcodecImageFile(ImageFile.ImageFile):
    """An ``.ncb`` image stream opened by Pillow: the header gives size and mode, ``load()``
    decodes (the whole stream is read then)."""

    format = FORMAT
    format_description = "ncodec learned image codec stream"

    def _open(self) -> None:
        from ncodec.bitstream.params import ImageParams

        assert self.fp is not None
        self._data = self.fp.read()
        try:
            header = StreamReader(io.BytesIO(self._data)).header
            if header.media != MEDIA_IMAGE:
                raise SyntaxError("not an ncodec image stream")
            params = ImageParams.from_bytes(header.params)
        except BitstreamError as e:
            raise SyntaxError(f"not a valid ncodec stream: {e}") from None
        self._size = (params.width, params.height)
        self._mode = "L" if params.channels == 1 else "RGBA" if params.alpha else "RGB"
        self.info["ncodec_model"] = header.model_id
        self.info["quality"] = params.quality / 100
        self.tile = []

    def load(self) -> Any:
        if self._im is None:
            from ncodec.codec.api import decode

            img = decode(self._data)
            if img.mode != self.mode or img.size != self.size:
                raise OSError(
                    f"decoded a {img.mode} {img.size} image, the header says {self.mode} {self.size}"
                )
            self.im = img.im
            self._data = b""
        return Image.Image.load(self)


def _save(im: Image.Image, fp: IO[bytes], filename: str | bytes) -> None:
    from ncodec.codec.api import encode

    options = {k: im.encoderinfo[k] for k in _SAVE_OPTIONS if im.encoderinfo.get(k) is not None}
    fp.write(encode(im, **options))


def register() -> None:
    """Registers the format with Pillow (done on import; idempotent)."""
    Image.register_open(FORMAT, NcodecImageFile, _accept)
    Image.register_save(FORMAT, _save)
    Image.register_extension(FORMAT, EXTENSION)
    Image.register_mime(FORMAT, MIME)


register()

__all__ = ["NcodecImageFile", "register", "FORMAT"]
