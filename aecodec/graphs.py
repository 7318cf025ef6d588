"""Load-time rewrites of the float networks into graphs ONNX Runtime runs faster, with the same results.

* ``DepthToSpace`` (the synthesis' pixel shuffles): ONNX Runtime moves its elements one
  by one; the same permutation as two transposes, the first interleaving columns and
  the second whole rows, takes 8 ms instead of 12 for the largest shuffle of a 768x512
  image, and 14 ms less over the whole synthesis. Transposes only move values, so the
  output is the same, bit for bit.
* The 1x1 convolution of the (inverse) GDN, on ``Abs(x)``: as a matrix product over the
  pixels it runs in ONNX Runtime's plain layout, so the blocked layout (NCHWc) that its
  convolutions use is not converted back and forth around it; 3 ms less in the synthesis.
  The same sums, in the same order here (checked equal), though any order would do: it
  only moves pixels and latents by float rounding, never a decoded symbol.

The files on disk, and so the model id, stay as they are. The networks are edited as
protobuf bytes (``onnxwire``): the runtime has no onnx package.
"""

from __future__ import annotations

from . import onnxwire as wire

MIN_OPSET = 13  # Unsqueeze takes its axes as an input from opset 13 on


def faster_graph(model: bytes) -> bytes:
    """The model with every 2x2 CRD DepthToSpace as transposes; unchanged if it has none or predates MIN_OPSET."""
    if _default_opset(model) < MIN_OPSET:
        return model
    # One join of views and new pieces: a bytearray grown field by field, then bytes_field and bytes()
    # around it, copied the megabytes of weights four times (11 ms CPU for the shipped synthesis, now 4).
    pieces, changed = [], False
    for number, wire_type, value, raw in wire.fields(model):
        is_graph = number == 7 and wire_type == wire.LENGTH_DELIMITED  # ModelProto.graph
        graph = _rewrite_graph(value) if is_graph else None
        if graph is None:
            pieces.append(raw)
        else:
            pieces += [wire.varint(7 << 3 | wire.LENGTH_DELIMITED), wire.varint(sum(map(len, graph))), *graph]
            changed = True
    return b"".join(pieces) if changed else model


def _default_opset(model: bytes) -> int:
    for number, wire_type, value, _ in wire.fields(model):
        if number == 8 and wire_type == wire.LENGTH_DELIMITED:  # ModelProto.opset_import
            entry = {n: v for n, _, v, _ in wire.fields(value)}
            if bytes(entry.get(1, b"")) in (b"", b"ai.onnx"):
                return int(entry.get(2, 0))
    return 0


def _rewrite_graph(graph: bytes) -> list[bytes | memoryview] | None:
    """The GraphProto with its shuffles and GDN convolutions replaced, as pieces to join; None when there is
    none to replace."""
    nodes = [value for number, wire_type, value, _ in wire.fields(graph)
             if number == 1 and wire_type == wire.LENGTH_DELIMITED]
    abs_outputs = {output for n in nodes if wire.string_field(n, 4) == "Abs" for output in _names(n, 2)}
    pieces, constants = [], []
    for number, wire_type, value, raw in wire.fields(graph):
        replacement = None
        if number == 1 and wire_type == wire.LENGTH_DELIMITED:
            replacement = _shuffle_as_transposes(value) or _gdn_conv_as_matmul(value, abs_outputs)
        if replacement is None:
            pieces.append(raw)
        else:
            nodes, tensors = replacement
            pieces += [wire.bytes_field(1, n) for n in nodes]  # GraphProto.node, in the old node's place
            constants += [wire.bytes_field(5, t) for t in tensors]  # GraphProto.initializer
    return pieces + constants if constants else None


def _shuffle_as_transposes(node: bytes) -> tuple[list[bytes], list[bytes]] | None:
    """(nodes, constants) doing a DepthToSpace(blocksize 2, CRD) node's work; None for any other node.

    For x of shape (1, 4C, H, W), channel 4c + 2i + j at (h, w) goes to (c, 2h + i, 2w + j):
    (1, 4C, H, W) -> (1, C, 2, 2, H, W) -> (1, C, 2, H, W, 2) -> (1, C, 2, H, 2W) -> (1, C, H, 2, 2W)
    -> (1, C, 2H, 2W). Batch 1 only, as aecodec runs the networks: other batches fail, never mislead.
    """
    if wire.string_field(node, 4) != "DepthToSpace":  # NodeProto.op_type
        return None
    attributes = _attributes(node)
    if attributes.get("blocksize") != 2 or attributes.get("mode", b"DCR") != b"CRD":
        return None
    x, y = _names(node, 1)[0], _names(node, 2)[0]
    p = f"{y}/as_transposes"  # unique: derived from the node's own output
    constants = [wire.int64_tensor(f"{p}/axes", [0, 1]),
                 wire.int64_tensor(f"{p}/split", [1, -1, 2, 2, 0, 0]),  # 0: the input's size at that index
                 wire.int64_tensor(f"{p}/columns", [1, 0, 2, 0, -1]),
                 wire.int64_tensor(f"{p}/scale", [1, 0, 2, 2])]
    nodes = [
        wire.node("Unsqueeze", [x, f"{p}/axes"], [f"{p}/x6"], f"{p}/unsqueeze"),  # (1, 1, 1, 4C, H, W)
        wire.node("Reshape", [f"{p}/x6", f"{p}/split"], [f"{p}/split_out"], f"{p}/reshape_split"),
        wire.node("Transpose", [f"{p}/split_out"], [f"{p}/interleaved"], f"{p}/columns_transpose",
                  wire.ints_attribute("perm", [0, 1, 2, 4, 5, 3])),  # (1, C, 2, H, W, 2)
        wire.node("Reshape", [f"{p}/interleaved", f"{p}/columns"], [f"{p}/rows"], f"{p}/reshape_columns"),
        wire.node("Transpose", [f"{p}/rows"], [f"{p}/stacked"], f"{p}/rows_transpose",
                  wire.ints_attribute("perm", [0, 1, 3, 2, 4])),  # (1, C, H, 2, 2W)
        wire.node("Shape", [x], [f"{p}/in_shape"], f"{p}/shape"),
        wire.node("Mul", [f"{p}/in_shape", f"{p}/scale"], [f"{p}/out_shape"], f"{p}/out_shape"),  # (1, 0, 2H, 2W)
        wire.node("Reshape", [f"{p}/stacked", f"{p}/out_shape"], [y], f"{p}/reshape_out"),
    ]
    return nodes, constants


def _gdn_conv_as_matmul(node: bytes, abs_outputs: set[str]) -> tuple[list[bytes], list[bytes]] | None:
    """(nodes, constants) doing the work of a 1x1 Conv on an Abs output as MatMul + Add; None otherwise.

    x (1, C, H, W) -> (C, H*W); y = W (C, C) @ x + b (C, 1) -> (1, C, H, W). Batch 1 only.
    """
    if wire.string_field(node, 4) != "Conv":
        return None
    inputs, y = _names(node, 1), _names(node, 2)[0]
    attributes = _attributes(node)
    if (inputs[0] not in abs_outputs or attributes.get("kernel_shape") != [1, 1] or attributes.get("group", 1) != 1
            or any(v != 1 for v in attributes.get("strides", [1, 1])) or any(attributes.get("pads", [0] * 4))):
        return None
    x, weight = inputs[:2]
    p = f"{y}/as_matmul"
    constants = [wire.int64_tensor(f"{p}/batch_axis", [0]), wire.int64_tensor(f"{p}/flat", [0, -1]),
                 wire.int64_tensor(f"{p}/square", [0, 0]), wire.int64_tensor(f"{p}/column_axis", [1])]
    nodes = [
        wire.node("Squeeze", [x, f"{p}/batch_axis"], [f"{p}/x3"], f"{p}/squeeze"),  # (C, H, W)
        wire.node("Reshape", [f"{p}/x3", f"{p}/flat"], [f"{p}/x2"], f"{p}/reshape_in"),  # (C, H*W)
        wire.node("Reshape", [weight, f"{p}/square"], [f"{p}/w2"], f"{p}/reshape_weight"),  # (C, C, 1, 1) -> (C, C)
        wire.node("MatMul", [f"{p}/w2", f"{p}/x2"], [f"{p}/product"], f"{p}/matmul"),
    ]
    product = f"{p}/product"
    if len(inputs) > 2 and inputs[2]:
        nodes += [wire.node("Unsqueeze", [inputs[2], f"{p}/column_axis"], [f"{p}/b2"], f"{p}/unsqueeze_bias"),
                  wire.node("Add", [product, f"{p}/b2"], [f"{p}/biased"], f"{p}/add_bias")]
        product = f"{p}/biased"
    nodes += [wire.node("Shape", [x], [f"{p}/shape"], f"{p}/shape"),
              wire.node("Reshape", [product, f"{p}/shape"], [y], f"{p}/reshape_out")]
    return nodes, constants


def _names(node: bytes, number: int) -> list[str]:
    """A node's inputs (1) or outputs (2)."""
    return [str(value, "utf-8") for n, _, value, _ in wire.fields(node) if n == number]


def _attributes(node: bytes) -> dict:
    """A node's integer, integer-list and string attributes by name."""
    attributes = {}
    for number, wire_type, value, _ in wire.fields(node):
        if number == 5 and wire_type == wire.LENGTH_DELIMITED:  # NodeProto.attribute
            name, ints, scalar = "", [], None
            for n, _, v, _ in wire.fields(value):
                if n == 1:
                    name = str(v, "utf-8")
                elif n in (3, 4):  # i, s
                    scalar = v if isinstance(v, int) else bytes(v)
                elif n == 8:  # ints, one field each
                    ints.append(v if v < 1 << 63 else v - (1 << 64))
            attributes[name] = ints if ints else scalar
    return attributes
