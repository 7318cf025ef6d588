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
import torch

from ..bundle import load_bundle
from ..entropy import EntropyTables
from ..refine_torch.from_bundle import model_from_bundle
from ..refine_torch.model import FactorizedPrior
from .checkpoint import Checkpoint, rng_state, save_checkpoint
from .config import TrainConfig

PRIOR_FIT_STEPS = 1500


def fit_prior(prior: FactorizedPrior, tables: EntropyTables, steps: int = PRIOR_FIT_STEPS) -> float:
    """Fit the factorized prior to the bundle's integer hyper-latent pmfs by cross-entropy; returns bits/symbol.

    Training evaluates the prior at noisy values, so it is fitted at k + u, u ~ U(-1/2, 1/2):
    fitted at integers alone, its CDF may turn into a staircase that gives noisy values
    almost no mass.
    """
    width = int(tables.sizes.max())  # each pmf's last entry, the escape mass, is left out
    values = np.zeros((len(tables), width))
    weights = np.zeros((len(tables), width))
    for c, (pmf, size, offset) in enumerate(zip(tables.pmfs, tables.sizes, tables.offsets)):
        values[c, :size] = offset + np.arange(size)
        values[c, size:] = offset + size - 1  # padding repeats the last value, at zero weight
        weights[c, :size] = pmf[:size] / pmf[:size].sum()
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


def checkpoint_from_weights(weights_dir: str | Path, out_path: str | Path) -> Path:
    """Write a checkpoint that `aecodec train --resume` continues from."""
    bundle = load_bundle(weights_dir)
    model = model_from_bundle(bundle)
    fit_prior(model.hyper_prior, bundle.hyper_tables)
    card = bundle.card  # what training recorded: the bundle's typed fields do not cover it
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
