"""Entropy coding of integer symbols with frozen integer tables. The only user of constriction.

A typical workflow looks like this::

    tables = EntropyTables(pmfs, offsets)          # integer tables from the weights
    blob = encode(values, table_index, tables)     # values, table_index: int arrays
    assert (decode(blob, table_index, tables) == values).all()

Each table is a list of integer frequencies that sum to ``2**PMF_BITS``; symbol
``i`` of table ``t`` stands for the value ``offsets[t] + i``, and the last
symbol of every table is an *escape*: the value did not fit and is stored in
the overflow part of the blob instead. Values are grouped by table, the groups
coded in increasing table order, and within a group in raster order. Only the
integer table index chooses probabilities, so any decoder that computes the
same indexes decodes the same symbols.

Blob layout (little-endian):

======  =====  ===========================================================
bytes   type   field
======  =====  ===========================================================
4       u32    number W of 32-bit words of ANS-coded data
4 * W   u32[]  constriction ``AnsCoder`` words
rest    bytes  escaped values in decode order, each a zig-zag LEB128 varint
======  =====  ===========================================================
"""

from __future__ import annotations

import importlib
import struct

import numpy as np

from .probability import PMF_BITS  # frequencies of every table sum to 2**PMF_BITS

PERFECT = False  # constriction's fast quantisation; encoder and decoder must agree
MAX_ESCAPE = 1 << 24  # larger escaped magnitudes are refused as corrupt


def _constriction():
    """Imported on first use, so training machines without constriction can still import aecodec."""
    try:
        return importlib.import_module("constriction")
    except ImportError:
        raise RuntimeError("entropy coding needs the 'constriction' package (pip install constriction)") from None


class EntropyError(ValueError):
    """The coded stream is inconsistent with its tables."""


class EntropyTables:
    """Integer tables turned into constriction models once, for many calls."""

    def __init__(self, pmfs: list[np.ndarray], offsets: np.ndarray):
        self.offsets = np.asarray(offsets, dtype=np.int64)
        self.pmfs = [np.asarray(p, dtype=np.int64) for p in pmfs]  # what an encoder prices values with
        self.sizes = np.array([len(p) - 1 for p in pmfs], dtype=np.int64)  # without escape
        self.models = []
        for pmf in pmfs:
            pmf = np.asarray(pmf, dtype=np.int64)
            if pmf.min() < 1 or pmf.sum() != 1 << PMF_BITS:
                raise ValueError("every table needs positive frequencies summing to 2**PMF_BITS")
            # Division by a power of two is exact, so every machine hands constriction the same floats.
            probabilities = pmf.astype(np.float64) / float(1 << PMF_BITS)
            self.models.append(_constriction().stream.model.Categorical(probabilities, perfect=PERFECT))

    def __len__(self) -> int:
        return len(self.models)


def symbol_bits(tables: EntropyTables) -> list[np.ndarray]:
    """Bits of each symbol of each table, -log2 of its probability; the last one is the escape's."""
    return [-np.log2(pmf / float(1 << PMF_BITS)) for pmf in tables.pmfs]


def escape_bits(values: np.ndarray) -> np.ndarray:
    """Bits an escaped value adds after its escape symbol: its zig-zag LEB128 varint, whole bytes of 7
    payload bits each (what _zigzag_varints writes)."""
    values = np.asarray(values, dtype=np.int64)
    zigzag = np.where(values >= 0, 2 * values, -2 * values - 1)
    extra_bytes = sum((zigzag >= 1 << (7 * k)).astype(np.int64) for k in range(1, 9))
    return 8.0 * (1 + extra_bytes)


def value_bits(tables: EntropyTables, values: np.ndarray) -> np.ndarray:
    """(len(values), len(tables)): the bits each table spends on each value, escapes included.
    The symbols' bits are their information content, what ANS spends up to a few bits per stream."""
    values = np.asarray(values, dtype=np.int64)
    escaped = escape_bits(values)
    costs = np.empty((len(values), len(tables)))
    for t, bits in enumerate(symbol_bits(tables)):
        symbol = values - tables.offsets[t]
        inside = (symbol >= 0) & (symbol < tables.sizes[t])
        costs[:, t] = np.where(inside, bits[np.clip(symbol, 0, len(bits) - 1)], bits[-1] + escaped)
    return costs


def _zigzag_varints(values: np.ndarray) -> bytes:
    out = bytearray()
    for v in values.tolist():
        u = 2 * v if v >= 0 else -2 * v - 1
        while True:
            byte = u & 0x7F
            u >>= 7
            out.append(byte | (0x80 if u else 0))
            if not u:
                break
    return bytes(out)


def _read_varints(data: bytes, count: int) -> np.ndarray:
    values, pos = [], 0
    for _ in range(count):
        u, shift = 0, 0
        while True:
            if pos >= len(data):
                raise EntropyError("overflow stream ends early")
            byte = data[pos]
            pos += 1
            u |= (byte & 0x7F) << shift
            shift += 7
            if not byte & 0x80:
                break
            if shift > 28:
                raise EntropyError("overflow value too large")
        value = u >> 1 if u % 2 == 0 else -(u >> 1) - 1
        if abs(value) >= MAX_ESCAPE:  # the encoder never writes one: refuse it before it reaches a network
            raise EntropyError("overflow value too large")
        values.append(value)
    if pos != len(data):
        raise EntropyError("trailing bytes after the overflow values")
    return np.array(values, dtype=np.int64)


def _groups(table_index: np.ndarray, count: int) -> list[tuple[int, np.ndarray]]:
    """Positions (raster order) of the values coded with each table, in coding order."""
    if table_index.size and not 0 <= table_index.min() <= table_index.max() < count:
        raise ValueError(f"table indexes must lie in 0..{count - 1}")
    keys = table_index
    if keys.dtype.itemsize > 2 and count <= 1 << 15:
        keys = keys.astype(np.int16)  # 16-bit keys: radix sort, less memory
    order = np.argsort(keys, kind="stable")
    if order.size < 1 << 31:
        order = order.astype(np.int32)  # half of int64: for a 6000x4000 latent, 60 MB less
    bounds = np.concatenate([[0], np.cumsum(np.bincount(keys, minlength=count))])
    return [(t, order[bounds[t]:bounds[t + 1]]) for t in range(count) if bounds[t + 1] > bounds[t]]


def encode(values: np.ndarray, table_index: np.ndarray, tables: EntropyTables, max_escape: int = MAX_ESCAPE) -> bytes:
    """values coded with the tables that table_index picks; escaped magnitudes must stay below max_escape
    (tests raise it to write streams that a decoder has to refuse)."""
    values = np.asarray(values, dtype=np.int64).ravel()
    table_index = np.asarray(table_index, dtype=np.int64).ravel()
    if values.shape != table_index.shape:
        raise ValueError("values and table_index must have the same number of elements")
    groups = _groups(table_index, len(tables))
    # In place where possible: for a large photo each of these arrays is over 100 MB.
    symbols = tables.offsets[table_index]
    np.subtract(values, symbols, out=symbols)
    sizes = tables.sizes[table_index]
    escaped = (symbols < 0) | (symbols >= sizes)
    np.copyto(symbols, sizes, where=escaped)
    del sizes
    symbols = symbols.astype(np.int32)
    coder = _constriction().stream.stack.AnsCoder()
    for t, positions in reversed(groups):  # a stack: the last group pushed is decoded first
        coder.encode_reverse(symbols[positions], tables.models[t])
    words = coder.get_compressed()
    overflow = values[np.concatenate([p[escaped[p]] for _, p in groups])] if groups else values[:0]
    if np.abs(overflow).max(initial=0) >= max_escape:
        raise ValueError("a value is too large to code; the input is not a plausible latent")
    return struct.pack("<I", len(words)) + words.astype("<u4").tobytes() + _zigzag_varints(overflow)


def decode(blob: bytes, table_index: np.ndarray, tables: EntropyTables) -> np.ndarray:
    """Inverse of encode for the same table_index; raises EntropyError on malformed input.

    Values come back as int32: every value a stream can hold does (escapes stay below MAX_ESCAPE).
    table_index may be any integer type; the codec's uint8 is not widened (for a 6000x4000
    latent, int64 indexes are 120 MB).
    """
    table_index = np.asarray(table_index).ravel()
    if table_index.dtype.kind not in "iu":
        raise ValueError("table indexes must be integers")
    if len(blob) < 4:
        raise EntropyError("entropy-coded stream is truncated")
    (count,) = struct.unpack_from("<I", blob)
    if 4 + 4 * count > len(blob):
        raise EntropyError("entropy-coded stream is shorter than its word count")
    words = np.frombuffer(blob, dtype="<u4", count=count, offset=4).astype(np.uint32)
    if count and words[-1] == 0:
        raise EntropyError("entropy-coded stream is malformed (ends in a zero word)")
    values = np.empty(table_index.shape, dtype=np.int32)
    escaped_positions = []
    try:
        coder = _constriction().stream.stack.AnsCoder(words)
        for t, positions in _groups(table_index, len(tables)):
            symbols = np.asarray(coder.decode(tables.models[t], len(positions)), dtype=np.int32)
            values[positions] = symbols + np.int32(tables.offsets[t])
            escaped_positions.append(positions[symbols == tables.sizes[t]])
        leftover = not coder.is_empty()  # a valid stream is used up exactly; ANS cannot tell otherwise
    except BaseException as error:  # constriction reports some failures as a Rust panic
        if isinstance(error, (KeyboardInterrupt, SystemExit, MemoryError)):
            raise
        raise EntropyError(f"entropy decoding failed: {error}") from None
    if leftover:
        raise EntropyError("entropy-coded stream has data left over after the last symbol")
    escaped = np.concatenate(escaped_positions) if escaped_positions else np.empty(0, np.int64)
    values[escaped] = _read_varints(blob[4 + 4 * count:], len(escaped))
    return values
