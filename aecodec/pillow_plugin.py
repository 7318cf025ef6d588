"""Pillow support for .aec files, registered by ``import aecodec``.

A typical workflow looks like this::

    import aecodec                                        # registers the AEC format
    from PIL import Image
    Image.open("photo.png").save("photo.aec", quality=60)
    image = Image.open("photo.aec")                       # header only: size, mode, info
    image.load()                                          # decodes now

Which weights decode a file: the file names its model by id, so plain
``Image.open`` decodes with the installed bundle of that id (``weights/``,
as ``bundle.find_bundle`` finds them). To decode with a folder of your own, say
so for that one image: ``open_with("photo.aec", weights="my/weights")``, or
``codec=`` to reuse a loaded ``aecodec.Codec`` across many images. Saving
takes the same ``weights=`` or ``codec=`` next to ``quality=``, ``target_bpp=``,
``target_size=``, ``effort=``, ``detail=`` and ``deblock=``; without them it uses the
default model.

Size: ``Image.open`` applies Pillow's decompression-bomb check to the size in
the header, as for every format; ``open_with(..., allow_large=True)`` lifts it
for one image.

ONNX Runtime is imported on the first load or save, never on open.
"""

from __future__ import annotations

import contextlib
import warnings

from PIL import Image, ImageFile

from . import container
from .limits import pixel_limit

HEADER_READ = 64  # bytes read by _open: more than the longest header (45)


def _accept(prefix: bytes) -> bool:
    return prefix[:4] == container.MAGIC


class AecImageFile(ImageFile.ImageFile):
    format = "AEC"
    format_description = "aecodec learned image"

    def _open(self) -> None:
        head = self.fp.read(HEADER_READ)
        if not _accept(head):
            msg = "not an AEC file"
            raise SyntaxError(msg)
        try:
            self._header = container.read_header(head)
        except container.FormatError as error:
            raise SyntaxError(str(error)) from error
        self._size = (self._header.width, self._header.height)
        self._mode = self._header.layout
        # what aecodec.info() calls them; icc_profile and exif join them when the image is loaded
        self.info.update(format_version=self._header.version, model_id=self._header.model_id.hex(),
                         quality=self._header.quality)
        self._weights = None  # set per image by decode_with; None: the installed model the file names
        self._codec = None
        self.tile = [("aec", (0, 0, *self._size), 0, None)]  # a marker: decoded by load(), not by a tile decoder

    def load(self):
        if self.tile:  # still coded: decode once, then this is an ordinary loaded image
            self._decode()
        return super().load()

    def _decode(self) -> None:
        self.fp.seek(0)
        data = self.fp.read()
        try:
            # Image.open has applied Pillow's own decompression-bomb check, as for any format; lifted
            # there (MAX_IMAGE_PIXELS, open_with(allow_large=True)), it is not applied a second time
            image = self._decoder().decompress(data, allow_large=True)
        except ValueError as error:  # FormatError and friends; Pillow's load() contract is OSError
            raise OSError(f"cannot decode AEC file: {error}") from error
        self.im = image.im
        self.info.update(image.info)  # icc_profile and exif
        self.tile = []
        self.readonly = 0
        if self._exclusive_fp and self._close_exclusive_fp_after_loading:
            self.fp.close()
        self.fp = None

    def decode_with(self, weights=None, codec=None) -> None:
        """Decode with a weights folder or a loaded Codec instead of the installed model the file names."""
        if weights is not None and codec is not None:
            raise ValueError("give weights or codec, not both")
        self._weights, self._codec = weights, codec

    def _decoder(self):
        if self._codec is not None:
            return self._codec
        from .codec import Codec
        return Codec(self._weights) if self._weights else _installed_codec(self._header.model_id)


def _installed_codec(model_id: bytes):
    from .bundle import ModelNotFound, find_bundle
    from .codec import Codec
    try:
        return Codec(find_bundle(model_id))
    except ModelNotFound as error:
        raise OSError(f"{error}; use open_with()") from None


def open_with(fp, weights=None, codec=None, allow_large: bool = False) -> AecImageFile:
    """``Image.open`` for an .aec file that decodes with a weights folder or a loaded Codec.

    Still lazy: the Codec is built (or used) only when the image is loaded. ``allow_large``
    lifts Pillow's decompression-bomb limit (PIL.Image.MAX_IMAGE_PIXELS) for this image only.
    """
    if weights is not None and codec is not None:
        raise ValueError("give weights or codec, not both")
    with pixel_limit(allow_large) if allow_large else contextlib.nullcontext():
        image = Image.open(fp, formats=["AEC"])
    image.decode_with(weights, codec)
    return image


def _save(im: Image.Image, fp, filename) -> None:
    info = im.encoderinfo
    if info.get("weights") is not None and info.get("codec") is not None:
        raise ValueError("give weights or codec, not both")
    codec = info.get("codec")
    if codec is None:
        from .codec import Codec
        codec = Codec(info.get("weights"))
    side = {key: info[key] for key in ("icc_profile", "exif") if info.get(key)}
    if side:  # Pillow's convention: these keywords override what the image carries
        im = im.copy()
        im.info.update({k: v.tobytes() if isinstance(v, Image.Exif) else v for k, v in side.items()})
    encoded = codec.encode(im, info.get("quality"), info.get("target_bpp"), info.get("target_size"),
                           effort=info.get("effort", 0), detail=info.get("detail", True),
                           deblock=info.get("deblock", True))
    fp.write(encoded.data)
    for note in encoded.warnings:  # e.g. frames dropped, 16 bits reduced to 8
        warnings.warn(note, stacklevel=3)


Image.register_open(AecImageFile.format, AecImageFile, _accept)
Image.register_save(AecImageFile.format, _save)
Image.register_extension(AecImageFile.format, ".aec")
Image.register_mime(AecImageFile.format, "image/x-aec")
