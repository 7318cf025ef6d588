"""The three float networks (analysis, hyper-analysis, synthesis), run by ONNX Runtime.

Float results here only ever feed the latent before rounding (encoder) or the
reconstructed pixels (decoder); nothing that selects a probability. That is why
the thread count, provider and optimisation level are free to vary.
"""

from __future__ import annotations

import os
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

# ONNX Runtime 1.32 writes a device id and an events database under ~/.cache/Microsoft/ (or
# $XDG_CACHE_HOME) as soon as it is imported, unless this variable is set first. A codec has no
# business leaving files outside its outputs; a user who wants the telemetry can set it to 0.
os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")
import onnxruntime as ort  # noqa: E402  after the variable above, which it reads on import

from .bundle import NETWORKS, ModelBundle
from .graphs import faster_graph


# "reference" is onnx's numpy evaluator instead of ONNX Runtime: slow, a second backend for cross-checks.
PROVIDERS = ("cpu", "cuda", "reference")
# Runs over at most this many image pixels keep their working memory for the next run (see
# session_options): any image of up to one tile (transform.TILE); larger tiles give it back.
KEEP_MEMORY_PIXELS = 1 << 20


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

    def run(self, x: np.ndarray, keep_memory: bool = True) -> np.ndarray:
        return self.evaluator.run(None, {self.evaluator.input_names[0]: x})[0]


def session_options(options: RuntimeOptions) -> "ort.SessionOptions":
    """ONNX Runtime's settings for every session aecodec makes (bench/results/speed/ has the figures)."""
    session_options = ort.SessionOptions()
    session_options.intra_op_num_threads = options.threads
    session_options.inter_op_num_threads = 1
    session_options.log_severity_level = 3
    # The arena keeps each session's working memory between runs. Without it every run
    # takes fresh pages from the kernel for its 38 MB activations, and the page faults
    # cost about a third of the time of a 768x512 image. Runs over more than
    # KEEP_MEMORY_PIXELS (the tiles of a large photo) give the memory back: kept, the
    # arenas took a 6000x4000 compress past its 2 GiB (bench/large_image.py).
    session_options.enable_cpu_mem_arena = True
    # Idle worker threads sleep instead of spinning: between runs the cores belong to
    # the numpy and entropy-coding work, and to other processes. Spinning bought nothing.
    session_options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    if not options.optimize:
        session_options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    return session_options


class OrtSession:
    def __init__(self, path: str, options: RuntimeOptions):
        model = Path(path).read_bytes()
        if options.optimize:  # the unoptimised backend runs the file exactly as shipped
            model = faster_graph(model)
        self.session = ort.InferenceSession(model, session_options(options), providers=_ort_providers(options.provider))
        self.input_name = self.session.get_inputs()[0].name

    def run(self, x: np.ndarray, keep_memory: bool = True) -> np.ndarray:
        return self.session.run(None, {self.input_name: x}, None if keep_memory else _give_memory_back())[0]


def _give_memory_back() -> "ort.RunOptions":
    """Run options that return the arena's free memory to the system at the end of the run."""
    run_options = ort.RunOptions()
    run_options.add_run_config_entry("memory.enable_memory_arena_shrinkage", "cpu:0")
    return run_options


class Networks:
    """Sessions for analysis, hyper-analysis and synthesis, each made on its first use and reused after.

    On first use rather than all at once: decompressing needs only the synthesis, compressing
    only the other two, and a session costs tens of milliseconds to make (graph optimisation).
    ``prepare`` starts making one ahead of its use, on another thread: ONNX Runtime builds a session
    outside the GIL, so a decode's entropy decoding runs meanwhile instead of waiting after it.
    """

    def __init__(self, bundle: ModelBundle, options: RuntimeOptions = RuntimeOptions()):
        self.paths = {name: str(bundle.network_path(name)) for name in NETWORKS}
        self.latent_stride = bundle.latent_stride  # pixels per input element of hyper-analysis and synthesis
        self.options = options
        self.sessions: dict = {}  # name -> session, or the Future of one being made
        self._lock = threading.Lock()  # a Codec may be shared between threads
        if options.provider != "reference":
            _ort_providers(options.provider)  # a missing CUDA provider is said now, not at first use

    def prepare(self, *names: str) -> None:
        """Start making these sessions on one worker thread, in this order, unless made or being made."""
        with self._lock:
            names = [name for name in names if name not in self.sessions]
            if not names:
                return
            worker = ThreadPoolExecutor(1, thread_name_prefix="aecodec-session")
            for name in names:
                self.sessions[name] = worker.submit(self._make, name)
            worker.shutdown(wait=False)  # the thread ends once the sessions are made

    def session(self, name: str):
        with self._lock:
            if name not in self.sessions:
                self.sessions[name] = self._make(name)
            made = self.sessions[name]
        return self._settled(name, made) if isinstance(made, Future) else made

    def _settled(self, name: str, future: Future):
        """The session a prepared Future makes, kept in its place. A failure is raised to each caller that
        waited, then forgotten, so that the next use tries again, as without prepare."""
        try:
            made = future.result()
        except BaseException:
            with self._lock:
                if self.sessions.get(name) is future:
                    del self.sessions[name]
            raise
        with self._lock:
            if self.sessions.get(name) is future:
                self.sessions[name] = made
        return made

    def _make(self, name: str):
        path = self.paths[name]
        return ReferenceSession(path) if self.options.provider == "reference" else OrtSession(path, self.options)

    def run(self, name: str, x: np.ndarray) -> np.ndarray:
        pixels = x.shape[-2] * x.shape[-1] * (1 if name == "analysis" else self.latent_stride ** 2)
        return self.session(name).run(np.ascontiguousarray(x, dtype=np.float32), pixels <= KEEP_MEMORY_PIXELS)
