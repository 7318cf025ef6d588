"""Exact integer matrix products for the hyper-synthesis, on ONNX Runtime's float64 GEMM.

``fixedpoint.conv_exact`` multiplies integer-valued float64 matrices whose every
partial sum stays below 2**53, so any correct float64 GEMM gives the same
integers, whatever its kernel, blocking or thread count. This one runs ONNX
Runtime's (MLAS): it uses AVX-512 where the CPU has it, where numpy's bundled
OpenBLAS may pick an older kernel (Haswell, on AMD Zen 5), and its threads sleep
between calls instead of busy-waiting for 0.1 s as OpenBLAS's do, taking a core
from the float network that runs next. numpy's ``@`` stays the reference.

The model is one MatMul node, written with ``onnxwire`` so that the runtime needs
no onnx package.
"""

from __future__ import annotations

import numpy as np

from . import onnxwire
from .networks import RuntimeOptions, ort, session_options

OPSET = 17


def matmul_model() -> bytes:
    """The ONNX model c = a @ b for float64 matrices, as bytes."""
    product = onnxwire.node("MatMul", ["a", "b"], ["c"], "product")
    graph = (onnxwire.bytes_field(1, product) + onnxwire.bytes_field(2, "exact_matmul")
             + onnxwire.bytes_field(11, onnxwire.value_info("a", onnxwire.DOUBLE, ["m", "k"]))
             + onnxwire.bytes_field(11, onnxwire.value_info("b", onnxwire.DOUBLE, ["k", "n"]))
             + onnxwire.bytes_field(12, onnxwire.value_info("c", onnxwire.DOUBLE, ["m", "n"])))
    return onnxwire.model(graph, OPSET)


class OrtMatMul:
    """a @ b for float64 matrices on ONNX Runtime's CPU GEMM; one session, reused."""

    def __init__(self, options: RuntimeOptions = RuntimeOptions()):
        self.session = ort.InferenceSession(matmul_model(), session_options(options),
                                            providers=["CPUExecutionProvider"])

    def __call__(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        a = np.ascontiguousarray(a, dtype=np.float64)
        b = np.ascontiguousarray(b, dtype=np.float64)
        return self.session.run(None, {"a": a, "b": b})[0]
