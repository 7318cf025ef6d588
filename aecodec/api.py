"""The functions most users need: compress, decompress, info.

A typical workflow looks like this::

    import aecodec
    data = aecodec.compress("photo.png", quality=60)     # bytes of an .aec file
    image = aecodec.decompress(data)                     # PIL.Image
    print(aecodec.info(data))

Each call loads the model afresh; for many images, make one ``aecodec.Codec``
and call its ``compress`` and ``decompress`` methods instead.
"""

from __future__ import annotations

from pathlib import Path

from . import container
from .codec import Codec


def _read_bytes(data_or_path) -> bytes:
    if isinstance(data_or_path, (bytes, bytearray, memoryview)):
        return bytes(data_or_path)
    if hasattr(data_or_path, "read"):
        return data_or_path.read()
    return Path(data_or_path).read_bytes()


def compress(image, quality: float | None = None, target_bpp: float | None = None,
             target_size: int | str | None = None, weights: str | Path | None = None,
             allow_large: bool = False, effort: int = 0, detail: bool = True, deblock: bool = True) -> bytes:
    """Compress a path, PIL.Image or HxWx3 uint8 array into the bytes of an .aec file.

    target_size is in bytes, or a text such as "40KB" or "1.5MB" as on the command line.
    effort above 0 spends encoding time on a smaller file for the same decoder (needs the 'effort' extra).
    detail=False leaves out the detail layer (a faster encode); deblock=False the deblocking filter
    at low qualities. With both off the file is one older aecodec builds can read.
    """
    return Codec(weights).compress(image, quality, target_bpp, target_size, allow_large, effort=effort, detail=detail,
                                   deblock=deblock)


def decompress(data_or_path, weights: str | Path | None = None, allow_large: bool = False):
    """Decode .aec bytes, a path or a binary file object into a PIL.Image.

    A file declaring more pixels than PIL.Image.MAX_IMAGE_PIXELS raises PixelLimitError
    before any work, unless allow_large.
    """
    return Codec(weights).decompress(_read_bytes(data_or_path), allow_large)


def info(data_or_path) -> dict:
    """Header fields and stream sizes of an .aec file, without decoding it."""
    data = _read_bytes(data_or_path)
    parsed = container.unpack(data)
    header = parsed.header
    return {
        "format_version": header.version,
        "model_id": header.model_id.hex(),
        "width": header.width,
        "height": header.height,
        "layout": header.layout,
        "quality": header.quality,
        "deblocked": header.deblocked,
        "streams": parsed.stream_sizes,
        "bytes": len(data),
        "bpp": len(data) * 8 / (header.width * header.height),
    }
