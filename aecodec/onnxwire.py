"""The few pieces of ONNX's protobuf wire format that aecodec writes and edits itself.

The runtime has ONNX Runtime but not the onnx package, so the float64 MatMul model
(``exactgemm.py``) is written, and the shipped networks are rewritten at load
(``graphs.py``), field by field. Field numbers are those of onnx/onnx.proto.
"""

from __future__ import annotations

from typing import Iterator

import numpy as np

VARINT, FIXED64, LENGTH_DELIMITED, FIXED32 = 0, 1, 2, 5
FLOAT, INT64, DOUBLE = 1, 7, 11  # TensorProto.DataType
ATTRIBUTE_INTS = 7  # AttributeProto.AttributeType


def varint(value: int) -> bytes:
    value &= (1 << 64) - 1  # negative int64s are ten-byte two's complement varints
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def read_varint(data: bytes | memoryview, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return value, pos


def fields(message: bytes | memoryview) -> Iterator[tuple[int, int, memoryview | int, memoryview]]:
    """(field number, wire type, value, the field's own bytes) for each field of a message, in order.

    value is the payload of a length-delimited field and the integer of a varint; both are
    views into message, not copies (a network's weights are megabytes).
    """
    message = memoryview(message)
    pos = 0
    while pos < len(message):
        start = pos
        key, pos = read_varint(message, pos)
        number, wire_type = key >> 3, key & 7
        if wire_type == VARINT:
            value, pos = read_varint(message, pos)
        elif wire_type == LENGTH_DELIMITED:
            length, pos = read_varint(message, pos)
            value, pos = message[pos:pos + length], pos + length
        elif wire_type in (FIXED64, FIXED32):
            size = 8 if wire_type == FIXED64 else 4
            value, pos = message[pos:pos + size], pos + size
        else:
            raise ValueError(f"unsupported protobuf wire type {wire_type}")
        yield number, wire_type, value, message[start:pos]


def string_field(message: bytes, number: int) -> str | None:
    """The first length-delimited field with this number, as text; None if absent."""
    for n, wire_type, value, _ in fields(message):
        if n == number and wire_type == LENGTH_DELIMITED:
            return str(value, "utf-8")
    return None


def bytes_field(number: int, payload: bytes | str) -> bytes:
    payload = payload.encode() if isinstance(payload, str) else payload
    return varint(number << 3 | LENGTH_DELIMITED) + varint(len(payload)) + payload


def int_field(number: int, value: int) -> bytes:
    return varint(number << 3 | VARINT) + varint(value)


def node(op_type: str, inputs: list[str], outputs: list[str], name: str, attributes: bytes = b"") -> bytes:
    """A NodeProto; attributes are AttributeProto fields, as ints_attribute makes them."""
    return (b"".join(bytes_field(1, i) for i in inputs) + b"".join(bytes_field(2, o) for o in outputs)
            + bytes_field(3, name) + bytes_field(4, op_type) + attributes)


def ints_attribute(name: str, values: list[int]) -> bytes:
    """A node's field holding an AttributeProto of integers (Transpose's perm, say)."""
    attribute = bytes_field(1, name) + b"".join(int_field(8, v) for v in values) + int_field(20, ATTRIBUTE_INTS)
    return bytes_field(5, attribute)


def int64_tensor(name: str, values: list[int]) -> bytes:
    """A TensorProto: a one-dimensional int64 constant (a shape, say)."""
    raw = np.asarray(values, dtype="<i8").tobytes()
    return int_field(1, len(values)) + int_field(2, INT64) + bytes_field(8, name) + bytes_field(9, raw)


def value_info(name: str, elem_type: int, dims: list[int | str]) -> bytes:
    """A ValueInfoProto: a tensor of this element type; each dimension a size or a symbolic name."""
    dimensions = [int_field(1, d) if isinstance(d, int) else bytes_field(2, d) for d in dims]  # value, or param
    shape = b"".join(bytes_field(1, d) for d in dimensions)  # TensorShapeProto.dim
    tensor_type = int_field(1, elem_type) + bytes_field(2, shape)  # TypeProto.Tensor
    return bytes_field(1, name) + bytes_field(2, bytes_field(1, tensor_type))


def model(graph: bytes, opset: int, ir_version: int = 8) -> bytes:
    """A ModelProto around a GraphProto, in the default domain at this opset."""
    return int_field(1, ir_version) + bytes_field(7, graph) + bytes_field(8, bytes_field(1, "") + int_field(2, opset))
