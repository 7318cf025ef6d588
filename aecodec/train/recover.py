"""Weights bundle -> training checkpoint, for fine-tuning when the run folder is gone.

A typical use looks like this::

    checkpoint_from_weights("weights/main", "runs/main/from_weights.ckpt")
    # then: aecodec train --resume runs/main/from_weights.ckpt

Everything the bundle holds comes back: the ONNX transforms exactly, the
hyper-synthesis from its integer form (exact up to its 12-bit weight
rounding), and the gains without the rows export extrapolated. The factorized
prior is not stored as such, only as integer pmfs, so it is refitted to them.
The optimiser starts afresh; step, pixels seen and training time carry over
from the model card.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import torch
from onnx import numpy_helper

from ..bundle import read_card, read_tables
from ..fixedpoint import OUTPUT_FRACTION_BITS
from .checkpoint import Checkpoint, rng_state, save_checkpoint
from .config import ModelConfig, TrainConfig
from .model import FactorizedPrior, HyperpriorModel

PRIOR_FIT_STEPS = 1500


def load_onnx_weights(network: torch.nn.Sequential, path: Path) -> None:
    """Copy an exported Sequential's initializers back by parameter name."""
    initializers = {i.name: numpy_helper.to_array(i) for i in onnx.load(str(path)).graph.initializer}
    state = network.state_dict()
    missing = [name for name in state if name not in initializers]
    if missing:
        raise ValueError(f"{path.name} lacks parameters {', '.join(missing)}")
    network.load_state_dict({name: torch.from_numpy(initializers[name].copy()) for name in state})


def float_hyper_synthesis(tables: dict, count: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Integer layers -> (weight, bias) in float.

    Each layer stores multiplier / 2^shift = in_scale * weight_scale / out_scale. Only the
    last out_scale is known (2^-OUTPUT_FRACTION_BITS); since ReLU commutes with positive
    scaling, any choice of the inner scales gives the same function, so they are chosen
    to give every layer the same median weight scale.
    """
    ratios = [tables[f"layer{i}_multiplier"] / 2.0 ** int(tables["layer_shifts"][i]) for i in range(count)]
    medians = np.array([np.median(r) for r in ratios])
    target = float(np.exp((np.log(medians).sum() - OUTPUT_FRACTION_BITS * np.log(2)) / count))
    in_scale, layers = 1.0, []
    for i, ratio in enumerate(ratios):
        # out_scale is fixed by the last layer; inner ones are picked so that weight_scale ~ target.
        out_scale = 2.0 ** -OUTPUT_FRACTION_BITS if i == count - 1 else in_scale * target / medians[i]
        weight_scale = ratio * out_scale / in_scale
        weight = tables[f"layer{i}_weight"].astype(np.float64) * weight_scale[:, None, None, None]
        bias = tables[f"layer{i}_bias"].astype(np.float64) * in_scale * weight_scale
        layers.append((weight, bias))
        in_scale = out_scale
    return layers


def fit_prior(prior: FactorizedPrior, tables: dict, steps: int = PRIOR_FIT_STEPS) -> float:
    """Fit the factorized prior to the stored integer pmfs by cross-entropy; returns bits/symbol.

    Training evaluates the prior at noisy values, so it is fitted at k + u, u ~ U(-1/2, 1/2):
    fitted at integers alone, its CDF may turn into a staircase that gives noisy values
    almost no mass.
    """
    lengths, offsets = tables["hyper_lengths"], tables["hyper_offsets"]
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    width = int(lengths.max()) - 1  # the last entry of each pmf is the escape mass
    values = np.zeros((len(lengths), width))
    weights = np.zeros((len(lengths), width))
    for c, (start, length, offset) in enumerate(zip(starts, lengths, offsets)):
        pmf = tables["hyper_pmfs"][start:start + length - 1].astype(np.float64)
        values[c, :length - 1] = offset + np.arange(length - 1)
        values[c, length - 1:] = offset + length - 2  # padding repeats the last value, at zero weight
        weights[c, :length - 1] = pmf / pmf.sum()
    values_t = torch.from_numpy(values).float()[:, None, :]
    weights_t = torch.from_numpy(weights).float()
    optimizer = torch.optim.Adam(prior.parameters(), lr=1e-2)
    for _ in range(steps):
        noisy = values_t + torch.rand_like(values_t) - 0.5
        lower = prior.logits_cdf(noisy - 0.5)
        upper = prior.logits_cdf(noisy + 0.5)
        sign = -torch.sign(lower + upper).detach()
        mass = (torch.sigmoid(sign * upper) - torch.sigmoid(sign * lower)).abs()[:, 0, :].clamp(min=1e-9)
        loss = -(weights_t * torch.log2(mass)).sum(1).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return float(loss.detach())


def model_from_weights(weights_dir: str | Path, fit_hyper_prior: bool = True) -> HyperpriorModel:
    """The torch model of a weights bundle. The prior fit takes seconds; refinement, which
    reads the hyper-latent's rate from the integer tables themselves, skips it."""
    folder = Path(weights_dir)
    card = read_card(folder)
    model = HyperpriorModel(ModelConfig(**card["model_config"]))
    for name in ("analysis", "hyper_analysis", "synthesis"):
        load_onnx_weights(getattr(model, name), folder / f"{name}.onnx")
    tables = read_tables(folder)
    convs = [m[0] if isinstance(m, torch.nn.Sequential) else m
             for m in model.hyper_synthesis if not isinstance(m, torch.nn.ReLU)]
    with torch.no_grad():
        for conv, (weight, bias) in zip(convs, float_hyper_synthesis(tables, len(convs))):
            conv.weight.copy_(torch.from_numpy(weight))
            conv.bias.copy_(torch.from_numpy(bias))
        extra = int(card.get("extrapolated_levels", 0))
        model.log_gain.copy_(torch.from_numpy(tables["log_gain"][extra:]))
        model.log_inverse_gain.copy_(torch.from_numpy(tables["log_inverse_gain"][extra:]))
    if fit_hyper_prior:
        fit_prior(model.hyper_prior, tables)
    return model


def checkpoint_from_weights(weights_dir: str | Path, out_path: str | Path) -> Path:
    """Write a checkpoint that `aecodec train --resume` continues from."""
    folder = Path(weights_dir)
    card = read_card(folder)
    model = model_from_weights(folder)
    train_config = TrainConfig(**card["train_config"])
    optimizer = torch.optim.Adam(model.parameters(), lr=train_config.lr)
    checkpoint = Checkpoint(
        model=model.state_dict(), optimizer=optimizer.state_dict(),
        step=card["training_steps"], pixels_seen=card["pixels_seen"],
        seconds_trained=float(card.get("training_seconds", 0)),
        model_config=model.config, train_config=train_config,
        rng=rng_state(np.random.default_rng(train_config.seed + card["training_steps"])),
        validation_stems=None,  # the default hold-out, which the shipped runs used
    )
    out = Path(out_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    save_checkpoint(out, checkpoint)
    return out
