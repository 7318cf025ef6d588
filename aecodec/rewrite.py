"""Rewriting a valid `.aec` file's streams, to make hostile ones: for tests and bench/fuzz_decoder.py.

Neither encoding nor decoding uses this module. A typical use looks like this::

    header, length_at, streams = split_streams(data)
    streams[1] = streams[1][:3]                         # the latent stream cut short
    hostile = join_streams(header, length_at, streams)  # its length field and the CRC made to match
    hostile = restream(codec, data, hyper=hyper)        # or the file coded from other integers

The byte offsets here are container.py's layout (its docstring's table).
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import replace

import numpy as np

from . import container, transform

UNLIMITED_ESCAPE = 1 << 62  # lets a rewritten stream carry values the real encoder refuses
FIRST_LENGTHS = (25, 29)  # offsets of the hyper-latent's and the latent's length fields
OPTIONAL_LENGTHS = 33  # where the optional streams' length fields begin, four bytes each


def fix_crc(data: bytes) -> bytes:
    """The bytes with their last four replaced by the CRC32 of the rest, as a valid file has."""
    body = bytes(data[:-4])
    return body + struct.pack("<I", zlib.crc32(body))


def split_streams(data: bytes) -> tuple[bytes, list[int], list[bytes]]:
    """(header bytes, offsets of the length fields, streams in file order) of a valid file."""
    _, _, lengths, offset = container._read_fixed(data)
    length_at = [*FIRST_LENGTHS] + [OPTIONAL_LENGTHS + 4 * i for i in range(len(lengths) - 2)]
    streams, position = [], offset
    for length in lengths:
        streams.append(data[position:position + length])
        position += length
    return data[:offset], length_at, streams


def join_streams(header: bytes, length_at: list[int], streams: list[bytes]) -> bytes:
    """split_streams undone for any streams: each length field and the CRC made to match them."""
    head = bytearray(header)
    for at, stream in zip(length_at, streams):
        struct.pack_into("<I", head, at, len(stream))
    return fix_crc(bytes(head) + b"".join(streams) + b"\0\0\0\0")


def restream(codec, data: bytes, hyper: np.ndarray | None = None, residual: np.ndarray | None = None) -> bytes:
    """The file coded again from (changed) integers: its hyper-latent and its latent residual.

    codec is the Codec whose model wrote data. The entropy coder writes whatever values it is
    given, however large, so that what reaches the decoder is limited only by the decoder's own checks.
    """
    parsed = container.unpack(data)
    old_hyper, _, old_residual = transform.decode_latent(codec.model, parsed)
    hyper = old_hyper if hyper is None else hyper
    residual = old_residual if residual is None else residual
    streams = replace(parsed.streams, hyper=transform.hyper_stream(codec.model, hyper, UNLIMITED_ESCAPE),
                      latent=transform.latent_stream(codec.model, hyper, residual, parsed.header.quality,
                                                     UNLIMITED_ESCAPE))
    return container.pack(parsed.header, streams)
