"""The `.aec` container: a small fixed header, the coded streams, a CRC32.

Standard library only: reading a header needs nothing else, and the paths
that only read one (``aecodec info``, Pillow's ``Image.open``) load no ONNX
Runtime, which tests/test_imports.py checks. All integers are little-endian.

Format version 3 (version 2 is the same with the latent stream of ``aecodec/entropy.py``; version 1 is
version 2 without flag bits 2 and 3 and the detail stream):

======  =====  ==============================================================
offset  bytes  field
======  =====  ==============================================================
0       4      magic ``b"AEC\\x1a"``
4       1      format version, ``1``, ``2`` or ``3``
5       1      colour layout: 0 RGB, 1 L (grey), 2 RGBA, 3 LA
6       1      flags: bit 0 ICC profile present, bit 1 EXIF present,
               bit 2 detail layer present, bit 3 deblocking filter on
               (both version 2 and 3 only); other bits must be zero
7       8      model id: first 8 bytes of the SHA-256 of the weights
15      4      width in pixels, 1 .. MAX_SIDE
19      4      height in pixels, 1 .. MAX_SIDE
23      2      quality x 100, 100 .. 10000
25      4      length of the hyper-latent stream
29      4      length of the latent stream
33      4      length of the alpha stream: only for layouts RGBA and LA
..      4      length of the ICC profile: only when flag bit 0 is set
..      4      length of the EXIF block: only when flag bit 1 is set
..      4      length of the detail stream: only when flag bit 2 is set
..      ..     the streams, in the order above
end-4   4      CRC32 of every byte before it
======  =====  ==============================================================

The streams themselves are described in ``aecodec/entropy.py`` (hyper-latent,
and the latent of versions 1 and 2), ``aecodec/bandstream.py`` (the latent of
version 3: two passes over a checkerboard, band by band), ``aecodec/detail.py``
(detail) and ``docs/format.md`` (alpha: a PNG of the alpha plane).

Version 3 is the format of models with a checkerboard context (``aecodec/context.py``):
every file of such a model is version 3. A file of a model without one, with no
detail layer or deblocking filter, is written as version 1, byte for byte what
earlier builds wrote, so they can still read it; only a file that needs version 2
is written as version 2.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass, field

from .quality import from_hundredths, to_hundredths

MAGIC = b"AEC\x1a"
VERSION = 3  # the newest version this build reads and writes
READABLE = (1, 2, 3)
MAX_SIDE = 65535  # per side; the pixel count is capped separately
MAX_PIXELS = 1 << 28
LAYOUTS = ("RGB", "L", "RGBA", "LA")
FLAG_ICC = 1
FLAG_EXIF = 2
FLAG_DETAIL = 4  # versions 2 and 3
FLAG_DEBLOCK = 8  # versions 2 and 3: the decoder runs aecodec/deblock.py at the file's quality

_FIXED = struct.Struct("<4sBBB8sIIHII")
_LENGTH = struct.Struct("<I")
_CRC = struct.Struct("<I")


class FormatError(ValueError):
    """The bytes are not a valid .aec file of a version this build can read."""


@dataclass(frozen=True)
class Header:
    layout: str
    model_id: bytes
    width: int
    height: int
    quality: float
    version: int = VERSION
    deblocked: bool = False  # flag bit 3: the synthesis' output goes through the deblocking filter
    two_pass: bool = False  # version 3: the latent is coded in two passes with the model's checkerboard context

    @property
    def has_alpha(self) -> bool:
        return self.layout in ("RGBA", "LA")


@dataclass(frozen=True)
class Streams:
    hyper: bytes
    latent: bytes
    alpha: bytes = b""
    icc: bytes = b""
    exif: bytes = b""
    detail: bytes = b""  # pixel corrections on top of the synthesis (aecodec/detail.py); needs version 2


@dataclass(frozen=True)
class Container:
    header: Header
    streams: Streams
    stream_sizes: dict = field(default_factory=dict)


def check_dimensions(width: int, height: int) -> None:
    if not (1 <= width <= MAX_SIDE and 1 <= height <= MAX_SIDE):
        raise FormatError(f"image dimensions {width}x{height} are outside 1..{MAX_SIDE} per side")
    if width * height > MAX_PIXELS:
        raise FormatError(f"image of {width}x{height} pixels exceeds the limit of {MAX_PIXELS} pixels")


def pack(header: Header, streams: Streams) -> bytes:
    check_dimensions(header.width, header.height)
    if header.layout not in LAYOUTS:
        raise ValueError(f"unknown colour layout {header.layout!r}")
    if header.has_alpha != bool(streams.alpha):
        raise ValueError("an alpha stream goes with layouts RGBA and LA, and only with them")
    quality = to_hundredths(header.quality)
    flags = ((FLAG_ICC if streams.icc else 0) | (FLAG_EXIF if streams.exif else 0)
             | (FLAG_DETAIL if streams.detail else 0) | (FLAG_DEBLOCK if header.deblocked else 0))
    # The oldest version that holds the file, for older readers.
    version = 3 if header.two_pass else 2 if flags & (FLAG_DETAIL | FLAG_DEBLOCK) else 1
    parts = [_FIXED.pack(MAGIC, version, LAYOUTS.index(header.layout), flags, header.model_id,
                         header.width, header.height, quality, len(streams.hyper), len(streams.latent))]
    optional = [s for s in (streams.alpha, streams.icc, streams.exif, streams.detail) if s]
    parts += [_LENGTH.pack(len(s)) for s in optional]
    parts += [streams.hyper, streams.latent, *optional]
    body = b"".join(parts)
    return body + _CRC.pack(zlib.crc32(body))


def _read_fixed(data: bytes) -> tuple[Header, int, list[int], int]:
    """Parse the header only: (header, flags, stream lengths, offset of the first stream)."""
    if len(data) < 4 or data[:4] != MAGIC:
        raise FormatError("not an .aec file (bad magic)")
    if len(data) < 5:
        raise FormatError("truncated .aec file: no version")
    if data[4] not in READABLE:
        raise FormatError(f"unsupported .aec format version {data[4]}: this build reads versions "
                          f"{', '.join(map(str, READABLE))}; a newer aecodec may read it")
    if len(data) < _FIXED.size:
        raise FormatError(f"truncated .aec file: {len(data)} bytes, the header alone needs {_FIXED.size}")
    _, version, layout, flags, model_id, width, height, quality, hyper_len, latent_len = \
        _FIXED.unpack_from(data)
    if layout >= len(LAYOUTS):
        raise FormatError(f"unknown colour layout {layout}")
    known = FLAG_ICC | FLAG_EXIF | (FLAG_DETAIL | FLAG_DEBLOCK if version >= 2 else 0)
    if flags & ~known:
        raise FormatError(f"unknown flags 0x{flags:02x} for format version {version}; a newer aecodec may read it")
    try:
        quality = from_hundredths(quality)
    except ValueError as error:
        raise FormatError(str(error)) from None
    check_dimensions(width, height)
    header = Header(LAYOUTS[layout], model_id, width, height, quality, version, bool(flags & FLAG_DEBLOCK),
                    version == 3)
    optional = (int(header.has_alpha) + int(bool(flags & FLAG_ICC)) + int(bool(flags & FLAG_EXIF))
                + int(bool(flags & FLAG_DETAIL)))
    offset = _FIXED.size + optional * _LENGTH.size
    if len(data) < offset:
        raise FormatError("truncated .aec file: header cut short")
    lengths = [hyper_len, latent_len]
    lengths += [_LENGTH.unpack_from(data, _FIXED.size + i * _LENGTH.size)[0] for i in range(optional)]
    return header, flags, lengths, offset


def read_header(data: bytes) -> Header:
    """Just the header: cheap, checks no CRC and needs only the first bytes of a file."""
    return _read_fixed(data)[0]


def unpack(data: bytes) -> Container:
    """Parse and verify a whole file; raises FormatError on anything malformed."""
    header, flags, lengths, offset = _read_fixed(data)
    expected = offset + sum(lengths) + _CRC.size
    if len(data) != expected:
        raise FormatError(f"stream lengths add up to {expected} bytes but the file has {len(data)}")
    (crc,) = _CRC.unpack_from(data, len(data) - _CRC.size)
    if zlib.crc32(data[:-_CRC.size]) != crc:
        raise FormatError("CRC mismatch: the file is corrupt")
    chunks = []
    for length in lengths:
        chunks.append(data[offset:offset + length])
        offset += length
    hyper, latent, *rest = chunks
    alpha = rest.pop(0) if header.has_alpha else b""
    icc = rest.pop(0) if flags & FLAG_ICC else b""
    exif = rest.pop(0) if flags & FLAG_EXIF else b""
    detail = rest.pop(0) if flags & FLAG_DETAIL else b""
    names = ["hyper", "latent", "alpha", "icc", "exif"] + (["detail"] if flags & FLAG_DETAIL else [])
    sizes = {n: len(c) for n, c in zip(names, [hyper, latent, alpha, icc, exif, detail])}
    sizes["header"] = len(data) - sum(sizes.values())
    return Container(header, Streams(hyper, latent, alpha, icc, exif, detail), sizes)
