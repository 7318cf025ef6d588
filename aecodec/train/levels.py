"""Adding rate levels above a checkpoint's highest lambda, to reach higher qualities.

A model trained for lambdas up to lambda_max cannot be asked for more than its
top level gives. Extending the range keeps every trained level as it is and adds
rows of gains above it, continued along the line of the top two (the same way
export extrapolates below the lowest), with lambdas at the same log spacing::

    checkpoint = with_extra_top_levels(load_checkpoint("runs/main/last.ckpt"), 1)
"""

from __future__ import annotations

import math
from dataclasses import replace

import torch

from ..model_config import ModelConfig
from ..refine_torch.model import HyperpriorModel
from .checkpoint import Checkpoint


def extended_config(config: ModelConfig, extra: int) -> ModelConfig:
    """The same lambda spacing, extra levels more, so the old levels keep their lambdas."""
    step = (math.log(config.lambda_max) - math.log(config.lambda_min)) / max(config.levels - 1, 1)
    return ModelConfig(**{**config.to_dict(), "levels": config.levels + extra,
                          "lambda_max": math.exp(math.log(config.lambda_max) + extra * step)})


def extend_rows(table: torch.Tensor, extra: int) -> torch.Tensor:
    """(levels, M) -> (levels + extra, M): new rows continue the line through the top two."""
    step = table[-1] - table[-2]
    above = table[-1] + torch.arange(1, extra + 1, dtype=table.dtype)[:, None] * step
    return torch.cat([table, above])


def extended_state(state: dict | None, extra: int, config: ModelConfig) -> dict | None:
    """A model state_dict with extra gain rows above the top, and the lambdas of config."""
    if state is None:
        return None
    out = dict(state)
    for name in ("log_gain", "log_inverse_gain"):
        out[name] = extend_rows(state[name], extra)
    out["log_lambda"] = torch.log(torch.tensor(config.lambdas(), dtype=state["log_lambda"].dtype))
    return out


def with_extra_top_levels(checkpoint: Checkpoint, extra: int) -> Checkpoint:
    """A copy of checkpoint with extra levels above its top; Adam restarts its moments for the gains."""
    config = checkpoint.model_config
    new_config = extended_config(config, extra)
    # The optimiser's moments for the gain tables have the old shape: drop them (and only them).
    optimizer = checkpoint.optimizer
    if optimizer is not None:
        # Adam's state is keyed by position in model.parameters(), which skips buffers.
        parameter_names = [name for name, _ in HyperpriorModel(config).named_parameters()]
        gains = {i for i, n in enumerate(parameter_names) if n in ("log_gain", "log_inverse_gain")}
        optimizer = {**optimizer, "state": {i: s for i, s in optimizer["state"].items() if i not in gains}}
    return replace(checkpoint, model_config=new_config, optimizer=optimizer,
                   model=extended_state(checkpoint.model, extra, new_config),
                   ema_model=extended_state(checkpoint.ema_model, extra, new_config))
