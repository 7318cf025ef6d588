"""The torch model of a weights bundle: what the refinement runs, and what training resumes from.

A typical use looks like this::

    model = model_from_bundle(load_bundle("weights/main"))

The ONNX transforms come back exactly, the hyper-synthesis and the checkerboard context
from their integer forms (exact up to the rounding of their weights), and the gains without the rows export
extrapolated. The factorized prior is stored only as integer pmfs, so it is left
as initialised: the refinement prices the hyper-latent with the pmfs themselves,
and training refits the prior to them (aecodec/train/recover.py).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import torch
from onnx import numpy_helper

from ..bundle import ModelBundle
from ..context import float_context
from ..fixedpoint import OUTPUT_FRACTION_BITS, FixedConv
from .model import HyperpriorModel


def load_onnx_weights(network: torch.nn.Sequential, path: Path) -> None:
    """Copy an exported Sequential's initializers back by parameter name."""
    initializers = {i.name: numpy_helper.to_array(i) for i in onnx.load(str(path)).graph.initializer}
    state = network.state_dict()
    missing = [name for name in state if name not in initializers]
    if missing:
        raise ValueError(f"{path.name} lacks parameters {', '.join(missing)}")
    network.load_state_dict({name: torch.from_numpy(initializers[name].copy()) for name in state})


def float_hyper_synthesis(layers: list[FixedConv]) -> list[tuple[np.ndarray, np.ndarray]]:
    """Integer layers -> (weight, bias) in float.

    Each layer stores multiplier / 2^shift = in_scale * weight_scale / out_scale. Only the
    last out_scale is known (2^-OUTPUT_FRACTION_BITS); since ReLU commutes with positive
    scaling, any choice of the inner scales gives the same function, so they are chosen
    to give every layer the same median weight scale.
    """
    count = len(layers)
    ratios = [layer.multiplier / 2.0 ** layer.shift for layer in layers]
    medians = np.array([np.median(r) for r in ratios])
    target = float(np.exp((np.log(medians).sum() - OUTPUT_FRACTION_BITS * np.log(2)) / count))
    in_scale, floats = 1.0, []
    for i, (layer, ratio) in enumerate(zip(layers, ratios)):
        # out_scale is fixed by the last layer; inner ones are picked so that weight_scale ~ target.
        out_scale = 2.0 ** -OUTPUT_FRACTION_BITS if i == count - 1 else in_scale * target / medians[i]
        weight_scale = ratio * out_scale / in_scale
        weight = layer.weight.astype(np.float64) * weight_scale[:, None, None, None]
        bias = layer.bias.astype(np.float64) * in_scale * weight_scale
        floats.append((weight, bias))
        in_scale = out_scale
    return floats


def _load_hyper_synthesis(model: HyperpriorModel, layers: list[FixedConv]) -> None:
    convs = [m[0] if isinstance(m, torch.nn.Sequential) else m
             for m in model.hyper_synthesis if not isinstance(m, torch.nn.ReLU)]
    if len(convs) != len(layers):
        raise ValueError(f"the bundle's hyper-synthesis has {len(layers)} layers, the model {len(convs)}")
    with torch.no_grad():
        for conv, (weight, bias) in zip(convs, float_hyper_synthesis(layers)):
            conv.weight.copy_(torch.from_numpy(weight))
            conv.bias.copy_(torch.from_numpy(bias))


def model_from_bundle(bundle: ModelBundle) -> HyperpriorModel:
    """The torch model of a loaded bundle, its factorized prior as initialised (see the module's docstring)."""
    model = HyperpriorModel(bundle.config)
    for name in ("analysis", "hyper_analysis", "synthesis"):
        load_onnx_weights(getattr(model, name), bundle.network_path(name))
    _load_hyper_synthesis(model, bundle.hyper_synthesis)
    if bundle.context is not None:  # from its integer form, exact up to the rounding of its weights
        state = {name: torch.from_numpy(np.asarray(value, np.float32)) for name, value in
                 float_context(bundle.context).items()}
        model.context.load_state_dict({**state, "taps": model.context.taps})
    extra = bundle.extrapolated_levels
    with torch.no_grad():
        model.log_gain.copy_(torch.from_numpy(bundle.log_gain[extra:]))
        model.log_inverse_gain.copy_(torch.from_numpy(bundle.log_inverse_gain[extra:]))
    return model
