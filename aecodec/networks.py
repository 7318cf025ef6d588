"""The three float networks (analysis, hyper-analysis, synthesis), run by ONNX Runtime.

Float results here only ever feed the latent before rounding (encoder) or the
reconstructed pixels (decoder); nothing that selects a probability. That is why
the thread count, provider and optimisation level are free to vary.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

# ONNX Runtime 1.32 writes a device id and an events database under ~/.cache/Microsoft/ (or
# $XDG_CACHE_HOME) as soon as it is imported, unless this variable is set first. A codec has no
# business leaving files outside its outputs; a user who wants the telemetry can set it to 0.
os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")
import onnxruntime as ort  # noqa: E402  after the variable above, which it reads on import

from .bundle import NETWORKS, ModelBundle


# "reference" is onnx's numpy evaluator instead of ONNX Runtime: slow, a second backend for cross-checks.
PROVIDERS = ("cpu", "cuda", "reference")


@dataclass(frozen=True)
class RuntimeOptions:
    threads: int = 0  # 0: ONNX Runtime's default, one per core
    provider: str = "cpu"  # one of PROVIDERS
    optimize: bool = True  # False disables graph optimisations (a second backend for tests)

    def __post_init__(self):
        if self.provider not in PROVIDERS:
            raise ValueError(f"unknown execution provider {self.provider!r}: use {', '.join(map(repr, PROVIDERS))}")


def _ort_providers(name: str) -> list[str]:
    """ONNX Runtime's execution providers for "cpu" or "cuda"."""
    if name == "cuda":
        if "CUDAExecutionProvider" not in ort.get_available_providers():
            raise RuntimeError("the CUDA execution provider is not installed (pip install onnxruntime-gpu)")
        return ["CUDAExecutionProvider", "CPUExecutionProvider"]
    return ["CPUExecutionProvider"]


class ReferenceSession:
    """onnx's pure-numpy evaluator behind the same run() as ONNX Runtime: a second backend."""

    def __init__(self, path: str):
        from onnx.reference import ReferenceEvaluator  # optional: needs the onnx package
        self.evaluator = ReferenceEvaluator(path)

    def run(self, x: np.ndarray) -> np.ndarray:
        return self.evaluator.run(None, {self.evaluator.input_names[0]: x})[0]


class OrtSession:
    def __init__(self, path: str, options: RuntimeOptions):
        session_options = ort.SessionOptions()
        session_options.intra_op_num_threads = options.threads
        session_options.inter_op_num_threads = 1
        session_options.log_severity_level = 3
        # The arena keeps every peak allocation for the session's life; for
        # large photos that costs hundreds of MiB and buys almost no speed.
        session_options.enable_cpu_mem_arena = False
        if not options.optimize:
            session_options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
        self.session = ort.InferenceSession(path, session_options, providers=_ort_providers(options.provider))
        self.input_name = self.session.get_inputs()[0].name

    def run(self, x: np.ndarray) -> np.ndarray:
        return self.session.run(None, {self.input_name: x})[0]


class Networks:
    """Loaded sessions for analysis, hyper-analysis and synthesis, reused across calls."""

    def __init__(self, bundle: ModelBundle, options: RuntimeOptions = RuntimeOptions()):
        make = ReferenceSession if options.provider == "reference" else (lambda p: OrtSession(p, options))
        self.sessions = {name: make(str(bundle.network_path(name))) for name in NETWORKS}

    def run(self, name: str, x: np.ndarray) -> np.ndarray:
        return self.sessions[name].run(np.ascontiguousarray(x, dtype=np.float32))
