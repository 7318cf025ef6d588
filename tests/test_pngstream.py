"""aecodec/pngstream.py: a PNG written band by band holds what Pillow writes, row filters included."""

from __future__ import annotations

import io
import struct
import tracemalloc
import zlib

import numpy as np
import pytest
from PIL import Image

from aecodec.pngstream import PngWriter

ICC = b"not a real profile " * 20


def exif() -> bytes:
    tags = Image.Exif()
    tags[0x010F] = "pngstream"
    return tags.tobytes()  # with the "Exif\0\0" prefix, as a decoded .aec file hands it over


EXIF = exif()


def chunks(png: bytes) -> list[tuple[bytes, bytes]]:
    out, pos = [], 8
    while pos < len(png):
        (length,) = struct.unpack_from(">I", png, pos)
        out.append((png[pos + 4:pos + 8], png[pos + 8:pos + 8 + length]))
        pos += 12 + length
    return out


def scanlines(png: bytes) -> bytes:
    """The filtered rows, each a filter type and its bytes: what the IDAT chunks inflate to."""
    return zlib.decompress(b"".join(data for kind, data in chunks(png) if kind == b"IDAT"))


def sample_image(mode: str, height: int = 41, width: int = 37) -> np.ndarray:
    """Smooth rows, noisy rows, a repeated row, a flat one and a plane: each of Pillow's filters wins somewhere."""
    rng = np.random.default_rng(len(mode))
    shape = (height, width) if mode == "L" else (height, width, len(mode))
    smooth = np.cumsum(rng.integers(-3, 4, shape), axis=1) % 256
    pixels = np.where(rng.random(shape) < 0.3, rng.integers(0, 256, shape), smooth).astype(np.uint8)
    pixels[5], pixels[9] = pixels[4], 77
    pixels[20:30] = np.cumsum(rng.integers(-2, 3, pixels[20:30].shape), axis=0) % 256
    rows, cols = np.mgrid[30:height, :width]
    ramp = (3 * cols + 5 * rows) % 256  # a plane: exactly what Paeth predicts
    pixels[30:] = ramp if mode == "L" else ramp[..., None]
    return pixels


def write(pixels: np.ndarray, mode: str, level: int, bands=(7, 1)) -> bytes:
    """A PNG written in bands of the given heights, then the rest."""
    out = io.BytesIO()
    writer = PngWriter(out, pixels.shape[1], pixels.shape[0], mode, level, ICC, EXIF)
    top = 0
    for rows in bands:
        writer.write(pixels[top:top + rows])
        top += rows
    writer.write(pixels[top:])
    writer.close()
    return out.getvalue()


@pytest.mark.parametrize("level", [1, 9])
@pytest.mark.parametrize("mode", ["L", "LA", "RGB", "RGBA"])
def test_what_pillow_writes(mode, level):
    pixels = sample_image(mode)
    reference = io.BytesIO()
    Image.fromarray(pixels, mode).save(reference, "PNG", compress_level=level, icc_profile=ICC, exif=EXIF)
    reference, png = reference.getvalue(), write(pixels, mode, level)
    assert scanlines(png) == scanlines(reference)  # Pillow's filter for every row, so files alike in size
    assert [c for c in chunks(png) if c[0] != b"IDAT"] == [c for c in chunks(reference) if c[0] != b"IDAT"]
    with Image.open(io.BytesIO(png)) as back:
        assert back.mode == mode and np.array_equal(np.asarray(back), pixels)
        assert back.info["icc_profile"] == ICC and back.getexif()[0x010F] == "pngstream"


def test_every_filter_is_used():
    lines = scanlines(write(sample_image("RGB"), "RGB", 6))
    kinds = {lines[row * (1 + 37 * 3)] for row in range(41)}
    assert kinds == {0, 1, 2, 4}  # None, Sub, Up, Paeth; Pillow tries Average only when optimizing


def test_wrong_rows_are_refused():
    writer = PngWriter(io.BytesIO(), 4, 3, "RGB")
    with pytest.raises(ValueError, match="do not fit"):
        writer.write(np.zeros((1, 5, 3), np.uint8))
    writer.write(np.zeros((2, 4, 3), np.uint8))
    with pytest.raises(ValueError, match="do not fit"):
        writer.write(np.zeros((2, 4, 3), np.uint8))
    with pytest.raises(ValueError, match="3 rows was given 2"):
        writer.close()


class Sink:
    """A file that keeps only the count of what it is given."""

    size = 0

    def write(self, data: bytes) -> None:
        self.size += len(data)


def test_memory_follows_the_band_not_the_image():
    band = sample_image("RGB", 64, 512)
    writer = PngWriter(Sink(), 512, 64 * 40, "RGB", 1)
    tracemalloc.start()
    try:
        for _ in range(40):
            writer.write(band)
        writer.close()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 20 * band.nbytes, f"{peak / 1e6:.1f} MB for bands of {band.nbytes / 1e6:.2f} MB"
