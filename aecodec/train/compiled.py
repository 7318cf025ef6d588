"""torch.compile for the GDN layers alone, where it pays on a CPU.

A GDN layer is one 1x1 convolution amid elementwise work on full feature maps: |x|, then x divided
(or, inverse, multiplied) by the convolution's output, and in the backward pass their gradients,
about a third of a CPU training step in bf16 (torch's profiler, Intel Xeon). Compiled, that work runs
fused, a few passes over memory instead of one per operation: about 10% faster steps there in bf16
(bench/train_throughput.py, bench/results/train_throughput.json). In fp32, where the convolutions'
share is larger, it gained 0 to 6% in two runs, within their noise. The whole model compiled was no
faster than the eager one in channels_last, in either precision. So only these layers are compiled, and
`aecodec train` does it by default only for bf16 on a CPU.
"""

from __future__ import annotations

import torch

from ..refine_torch.model import HyperpriorModel, SimplifiedGDN


def compile_gdn_layers(model: HyperpriorModel) -> int:
    """Compile every GDN layer of model in place (its weights and state_dict unchanged); how many it has.

    A machine that cannot compile (inductor needs a C++ compiler) trains on, eager, after a warning:
    dynamo falls back to the eager layer on a backend error instead of failing the step.
    """
    torch._dynamo.config.suppress_errors = True
    # One compiled graph per layer shape and direction: six in this architecture, more with both precisions
    # in one process (bench/train_throughput.py). Past the limit dynamo would run the rest eager.
    torch._dynamo.config.recompile_limit = max(torch._dynamo.config.recompile_limit, 64)
    layers = [module for module in model.modules() if isinstance(module, SimplifiedGDN)]
    for layer in layers:
        layer.compile(dynamic=False)
    return len(layers)
