"""How large an image aecodec agrees to work on: Pillow's decompression-bomb limit, both ways.

A typical workflow looks like this::

    with pixel_limit(allow_large=False):          # compressing: Pillow opens the input
        image = Image.open(path)
    check_pixels(header.width, header.height)     # decompressing: before any work on an .aec file

A file's cost follows the size it declares, not its length: a 170 KB .aec file
can describe a 16-megapixel picture, and a few MB one of 268 megapixels. So
decoding refuses what Pillow's ``Image.open`` would refuse for any other
format, ``PIL.Image.MAX_IMAGE_PIXELS`` (about 89 megapixels by default),
unless the caller lifts the limit for that call with ``allow_large``.
"""

from __future__ import annotations

import contextlib
import threading
import warnings

from PIL import Image

LIFT = "--allow-large, or allow_large=True, lifts the limit"

# Pillow's pixel limit and Python's warning machinery belong to the whole process, and a Codec may be
# shared between threads: whoever changes either holds this lock. Re-entrant, as its holders nest
# (loading an .aec input decodes it, which reads its alpha plane under pixel_limit).
PROCESS_STATE = threading.RLock()


class PixelLimitError(ValueError):
    """An image is larger than PIL.Image.MAX_IMAGE_PIXELS and allow_large was not given."""


def check_pixels(width: int, height: int, allow_large: bool = False) -> None:
    """PixelLimitError for a width x height image above Pillow's limit, unless allow_large."""
    limit = Image.MAX_IMAGE_PIXELS
    if allow_large or limit is None or width * height <= limit:
        return
    raise PixelLimitError(f"image of {width}x{height} pixels is above the decompression-bomb limit of "
                          f"{limit} pixels (PIL.Image.MAX_IMAGE_PIXELS; {LIFT})")


@contextlib.contextmanager
def pixel_limit(allow_large: bool):
    """Pillow's decompression-bomb guard as an error, or lifted for this call only (under PROCESS_STATE)."""
    with PROCESS_STATE, warnings.catch_warnings():
        saved = Image.MAX_IMAGE_PIXELS
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        if allow_large:
            Image.MAX_IMAGE_PIXELS = None
        try:
            yield
        finally:
            Image.MAX_IMAGE_PIXELS = saved
