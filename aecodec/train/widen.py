"""Widening a trained model's latent (M) without changing what it computes.

The latent is the transform's bottleneck: with M=160 values for each 16x16x3 block
even unquantised latents reconstruct held-out photos at only 36-39 dB, so no
amount of rate reaches a near-transparent top quality. Retraining from scratch
costs what this CPU cannot spare; instead new latent channels are added so that
the widened model computes exactly what the old one did, and training then
teaches it to use them:

- the analysis gets new output channels with weights small enough that, at every
  level, they round to 0: the decoder sees nothing new, and they cost no bits;
- the synthesis gets small random weights for them. Its input there is exactly 0,
  so the picture is unchanged, but the straight-through rounding passes gradient
  back into the new analysis rows through these weights; with zeros there, neither
  side would ever receive a gradient;
- the hyper-analysis gets zero weights for them, so the hyper-latent is unchanged;
- the hyper-synthesis grows the same way: small random weights into new hidden
  channels (a zero pre-activation would sit on the ReLU's flat side for good),
  zero weights out of them, and a mean of 0 with the smallest scale for the new
  latent channels;
- the gains of the new channels start at each level's mean gain.

    checkpoint = with_wider_latent(load_checkpoint("runs/main/last.ckpt"), 320)
"""

from __future__ import annotations

from dataclasses import replace

import torch

from ..model_config import ModelConfig
from ..refine_torch.model import HyperpriorModel
from .checkpoint import Checkpoint

NEW_ANALYSIS_SCALE = 0.01  # new analysis rows, relative to the old rows' spread: below rounding at every level
NEW_CONSUMER_SCALE = 0.1  # new weights where a zero input keeps the output unchanged

# state_dict names of the layers that produce or consume the latent (see aecodec/refine_torch/model.py)
ANALYSIS_OUT = "analysis.6"
SYNTHESIS_IN = "synthesis.0.0"
HYPER_ANALYSIS_IN = "hyper_analysis.0"
HYPER_UP = "hyper_synthesis.2.0"  # conv_up(n, m): 4 * m outputs before the pixel shuffle
HYPER_OUT = "hyper_synthesis.4"  # (mean, scale) for each latent channel


def widen_state(state: dict, old: int, new: int, generator: torch.Generator) -> dict:
    """One model state dict with the latent widened from old to new channels."""
    extra = new - old
    out = dict(state)

    weight, bias = state[f"{ANALYSIS_OUT}.weight"], state[f"{ANALYSIS_OUT}.bias"]
    rows = torch.randn((extra, *weight.shape[1:]), generator=generator, dtype=weight.dtype)
    out[f"{ANALYSIS_OUT}.weight"] = torch.cat([weight, rows * weight.std() * NEW_ANALYSIS_SCALE])
    out[f"{ANALYSIS_OUT}.bias"] = torch.cat([bias, torch.zeros(extra, dtype=bias.dtype)])

    weight = state[f"{SYNTHESIS_IN}.weight"]
    columns = torch.randn((weight.shape[0], extra, *weight.shape[2:]), generator=generator, dtype=weight.dtype)
    out[f"{SYNTHESIS_IN}.weight"] = torch.cat([weight, columns * weight.std() * NEW_CONSUMER_SCALE], dim=1)

    weight = state[f"{HYPER_ANALYSIS_IN}.weight"]
    zeros = torch.zeros((weight.shape[0], extra, *weight.shape[2:]), dtype=weight.dtype)
    out[f"{HYPER_ANALYSIS_IN}.weight"] = torch.cat([weight, zeros], dim=1)

    # Pixel shuffle takes output channel 4c+k to channel c: new channels are appended blocks of 4.
    weight, bias = state[f"{HYPER_UP}.weight"], state[f"{HYPER_UP}.bias"]
    rows = torch.randn((4 * extra, *weight.shape[1:]), generator=generator, dtype=weight.dtype)
    out[f"{HYPER_UP}.weight"] = torch.cat([weight, rows * weight.std() * NEW_CONSUMER_SCALE])
    out[f"{HYPER_UP}.bias"] = torch.cat([bias, torch.zeros(4 * extra, dtype=bias.dtype)])

    # Output rows are [means | scales]; each half grows, and every row gets zero weights for the new inputs.
    weight, bias = state[f"{HYPER_OUT}.weight"], state[f"{HYPER_OUT}.bias"]
    weight = torch.cat([weight, torch.zeros((weight.shape[0], extra, *weight.shape[2:]), dtype=weight.dtype)], dim=1)
    new_rows = torch.zeros((extra, *weight.shape[1:]), dtype=weight.dtype)
    mean_w, scale_w = weight[:old], weight[old:]
    mean_b, scale_b = bias[:old], bias[old:]
    zeros = torch.zeros(extra, dtype=bias.dtype)
    out[f"{HYPER_OUT}.weight"] = torch.cat([mean_w, new_rows, scale_w, new_rows])
    out[f"{HYPER_OUT}.bias"] = torch.cat([mean_b, zeros, scale_b, zeros])  # scale 0: the lower bound holds it

    for name in ("log_gain", "log_inverse_gain"):
        table = state[name]
        out[name] = torch.cat([table, table.mean(dim=1, keepdim=True).expand(-1, extra)], dim=1)
    return out


def with_wider_latent(checkpoint: Checkpoint, latent_channels: int, seed: int = 0) -> Checkpoint:
    """A copy of checkpoint whose model has latent_channels; Adam restarts the moments of widened tensors."""
    config = checkpoint.model_config
    old = config.latent_channels
    if latent_channels <= old:
        raise ValueError(f"the latent already has {old} channels; give more than that")
    new_config = ModelConfig(**{**config.to_dict(), "latent_channels": latent_channels})
    # The same generator seed for the model and its average, so both get the same new rows.
    model = widen_state(checkpoint.model, old, latent_channels, torch.Generator().manual_seed(seed))
    average = checkpoint.ema_model
    if average is not None:
        average = widen_state(average, old, latent_channels, torch.Generator().manual_seed(seed))
    optimizer = checkpoint.optimizer
    if optimizer is not None:
        # Adam's state is keyed by position in model.parameters(); drop it where a tensor changed shape.
        names = [name for name, _ in HyperpriorModel(config).named_parameters()]
        changed = {i for i, name in enumerate(names) if checkpoint.model[name].shape != model[name].shape}
        optimizer = {**optimizer, "state": {i: s for i, s in optimizer["state"].items() if i not in changed}}
    return replace(checkpoint, model_config=new_config, model=model, ema_model=average, optimizer=optimizer)


def with_context(checkpoint: Checkpoint, channels: int, hidden: int, seed: int = 0) -> Checkpoint:
    """A copy of checkpoint whose model gains a checkerboard context (aecodec/refine_torch/checkerboard.py)
    of channels and hidden width. Its last layer is zero, so the model computes exactly what it did;
    the model and its average get the same new weights, and Adam starts their moments afresh."""
    config = checkpoint.model_config
    if config.context_channels:
        raise ValueError(f"the model already has a context of {config.context_channels} channels")
    new_config = ModelConfig(**{**config.to_dict(), "context_channels": channels, "context_hidden": hidden})
    torch.manual_seed(seed)
    context_state = {f"context.{name}": value for name, value in HyperpriorModel(new_config).context.state_dict().items()}
    model = {**checkpoint.model, **context_state}
    average = None if checkpoint.ema_model is None else {**checkpoint.ema_model, **context_state}
    optimizer = checkpoint.optimizer
    if optimizer is not None:
        # The context's parameters come last in model.parameters(): new positions, no state yet.
        count = sum(1 for _ in HyperpriorModel(new_config).parameters())
        (group,) = optimizer["param_groups"]
        optimizer = {**optimizer, "param_groups": [{**group, "params": list(range(count))}]}
    return replace(checkpoint, model_config=new_config, model=model, ema_model=average, optimizer=optimizer)
