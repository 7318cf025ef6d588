"""ONNX Runtime sessions for the three float networks.

Float results here only ever feed the latent before rounding (encoder) or the
reconstructed pixels (decoder); nothing that selects a probability. That is why
the thread count, provider and optimisation level are free to vary.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import onnxruntime as ort

from .weights import NETWORKS, ModelBundle


@dataclass(frozen=True)
class RuntimeOptions:
    threads: int = 0  # 0: ONNX Runtime's default, one per core
    provider: str = "cpu"  # "cpu" or "cuda"
    optimize: bool = True  # False disables graph optimisations (a second backend for tests)


def _providers(name: str) -> list[str]:
    if name == "cpu":
        return ["CPUExecutionProvider"]
    if name == "cuda":
        if "CUDAExecutionProvider" not in ort.get_available_providers():
            raise RuntimeError("the CUDA execution provider is not installed (pip install onnxruntime-gpu)")
        return ["CUDAExecutionProvider", "CPUExecutionProvider"]
    raise ValueError(f"unknown execution provider {name!r}: use 'cpu' or 'cuda'")


class Networks:
    """Loaded sessions for analysis, hyper-analysis and synthesis, reused across calls."""

    def __init__(self, bundle: ModelBundle, options: RuntimeOptions = RuntimeOptions()):
        session_options = ort.SessionOptions()
        session_options.intra_op_num_threads = options.threads
        session_options.inter_op_num_threads = 1
        session_options.log_severity_level = 3
        if not options.optimize:
            session_options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
        providers = _providers(options.provider)
        self.sessions = {
            name: ort.InferenceSession(str(bundle.network_path(name)), session_options, providers=providers)
            for name in NETWORKS
        }

    def run(self, name: str, x: np.ndarray) -> np.ndarray:
        session = self.sessions[name]
        (out,) = session.run(None, {session.get_inputs()[0].name: np.ascontiguousarray(x, dtype=np.float32)})
        return out
