"""The load-time graph rewrites (aecodec/graphs.py) must change speed only: the same values (bit for bit here)."""

import numpy as np
import onnxruntime as ort
import pytest

from aecodec import onnxwire
from aecodec.graphs import faster_graph
from helpers import TINY_WEIGHTS


def run(model: bytes, x: np.ndarray) -> np.ndarray:
    return ort.InferenceSession(model, providers=["CPUExecutionProvider"]).run(None, {"input": x})[0]


def op_types(model: bytes) -> list[str]:
    graph = next(value for number, _, value, _ in onnxwire.fields(model) if number == 7)
    return [onnxwire.string_field(node, 4) for number, _, node, _ in onnxwire.fields(graph) if number == 1]


@pytest.mark.parametrize("network, rewritten_op", [("synthesis", "DepthToSpace"), ("analysis", "Conv")])
@pytest.mark.parametrize("rows, cols", [(1, 1), (3, 5), (8, 6)])
def test_rewritten_networks_give_the_same_values(network, rewritten_op, rows, cols):
    shipped = (TINY_WEIGHTS / f"{network}.onnx").read_bytes()
    rewritten = faster_graph(shipped)
    assert op_types(rewritten).count(rewritten_op) < op_types(shipped).count(rewritten_op)
    channels = ort.InferenceSession(shipped, providers=["CPUExecutionProvider"]).get_inputs()[0].shape[1]
    scale = 16 if network == "analysis" else 1  # the analysis takes pixels, 16 to a latent element
    x = np.random.default_rng(rows * cols).normal(0, 3, (1, channels, rows * scale, cols * scale)).astype(np.float32)
    # Equal here; the GDN's matrix product may round differently from a convolution elsewhere.
    np.testing.assert_allclose(run(rewritten, x), run(shipped, x), rtol=1e-5, atol=1e-6)


def test_shuffles_as_transposes_are_the_same_permutation():
    """Transposes only move values: equal bit for bit on every machine."""
    model = shuffle_model(b"CRD", 2, 17, channels=8)
    x = np.random.default_rng(7).normal(size=(1, 8, 3, 5)).astype(np.float32)
    assert np.array_equal(run(faster_graph(model), x), run(model, x))


def test_networks_with_nothing_to_rewrite_are_left_alone():
    hyper_analysis = (TINY_WEIGHTS / "hyper_analysis.onnx").read_bytes()
    assert faster_graph(hyper_analysis) is hyper_analysis


def shuffle_model(mode: bytes, blocksize: int, opset: int, channels: int = 4) -> bytes:
    """A model that is one DepthToSpace node, float input (1, channels, H, W)."""
    attributes = (onnxwire.bytes_field(5, onnxwire.bytes_field(1, "blocksize") + onnxwire.int_field(3, blocksize)
                                       + onnxwire.int_field(20, 2))
                  + onnxwire.bytes_field(5, onnxwire.bytes_field(1, "mode") + onnxwire.bytes_field(4, mode)
                                         + onnxwire.int_field(20, 3)))
    node = onnxwire.node("DepthToSpace", ["input"], ["output"], "shuffle", attributes)
    graph = (onnxwire.bytes_field(1, node) + onnxwire.bytes_field(2, "g")
             + onnxwire.bytes_field(11, onnxwire.value_info("input", onnxwire.FLOAT, [1, channels, "h", "w"]))
             + onnxwire.bytes_field(12, onnxwire.value_info("output", onnxwire.FLOAT, [1, "c", "h2", "w2"])))
    return onnxwire.model(graph, opset)


def test_other_shuffles_are_left_alone():
    """DCR mode, another block size, or an opset before 13: the node stays a DepthToSpace."""
    for args in ((b"DCR", 2, 17), (b"CRD", 3, 17), (b"CRD", 2, 11)):
        model = shuffle_model(*args)
        assert faster_graph(model) is model
    assert faster_graph(shuffle_model(b"CRD", 2, 17)) != shuffle_model(b"CRD", 2, 17)


# -- faster_graph builds its output with one join (issue 23): the same bytes as the field-by-field version ---


def field_by_field_graph(model: bytes) -> bytes:
    """faster_graph and _rewrite_graph as they were at 008947b (a bytearray grown field by field), kept as
    the reference: the one-join version must write exactly these bytes."""
    from aecodec import graphs
    if graphs._default_opset(model) < graphs.MIN_OPSET:
        return model
    out, changed = bytearray(), False
    for number, wire_type, value, raw in onnxwire.fields(model):
        if number == 7 and wire_type == onnxwire.LENGTH_DELIMITED:
            graph = old_rewrite_graph(value)
            changed = graph is not None
            out += onnxwire.bytes_field(7, graph) if changed else raw
        else:
            out += raw
    return bytes(out) if changed else model


def old_rewrite_graph(graph: bytes) -> bytes | None:
    from aecodec import graphs
    nodes = [value for number, wire_type, value, _ in onnxwire.fields(graph)
             if number == 1 and wire_type == onnxwire.LENGTH_DELIMITED]
    abs_outputs = {output for n in nodes if onnxwire.string_field(n, 4) == "Abs" for output in graphs._names(n, 2)}
    pieces, constants = [], []
    for number, wire_type, value, raw in onnxwire.fields(graph):
        replacement = None
        if number == 1 and wire_type == onnxwire.LENGTH_DELIMITED:
            replacement = graphs._shuffle_as_transposes(value) or graphs._gdn_conv_as_matmul(value, abs_outputs)
        if replacement is None:
            pieces.append(raw)
        else:
            pieces += [onnxwire.bytes_field(1, n) for n in replacement[0]]
            constants += [onnxwire.bytes_field(5, t) for t in replacement[1]]
    return b"".join(pieces + constants) if constants else None


@pytest.mark.parametrize("weights, network", [("shipped", "synthesis"), ("shipped", "analysis"),
                                              ("tiny", "synthesis"), ("tiny", "analysis")])
def test_faster_graph_writes_the_same_bytes_as_the_field_by_field_version(weights, network):
    from aecodec.bundle import default_weights_root
    folder = TINY_WEIGHTS if weights == "tiny" else default_weights_root() / "main"
    model = (folder / f"{network}.onnx").read_bytes()
    rewritten = faster_graph(model)
    assert type(rewritten) is bytes and rewritten != model
    assert rewritten == field_by_field_graph(model)
