"""Differentiable stand-ins for rounding, used when refining one image's latents.

Stochastic Gumbel annealing (SGA; Yang, Bamler & Mandt, NeurIPS 2020) rounds
each value down or up at random, by a two-way Gumbel-softmax whose logits
favour the nearer integer, and relaxes the choice by a temperature. As the
temperature is annealed towards 0 the samples become hard roundings, so the
optimised loss approaches the loss of the rounded latent that is finally sent,
which plain additive noise or a straight-through estimator never do.
"""

from __future__ import annotations

import math

import torch

EPSILON = 1e-5  # keeps atanh finite at distance 0 and 1
TAU_MAX = 0.5  # temperature before annealing starts (Yang et al.)
ANNEAL_START = 0.35  # share of the iterations spent at TAU_MAX (700 of 2000 in Yang et al.)
ANNEAL_DEPTH = 1.3  # log(TAU_MAX / final temperature): 1e-3 per step over 1300 steps in Yang et al.


def temperature(iteration: int, iterations: int) -> float:
    """Yang et al.'s schedule, stretched to any iteration count: flat, then exponential decay."""
    progress = iteration / max(iterations, 1)
    annealed = max(progress - ANNEAL_START, 0.0) / (1 - ANNEAL_START)
    return TAU_MAX * math.exp(-ANNEAL_DEPTH * annealed)


def sga_round(x: torch.Tensor, tau: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """One relaxed sample of SGA rounding: floor(x) + a soft choice of rounding up.

    The logits of rounding down and up are -atanh(distance) / tau; the Gumbel-softmax over the
    two is a sigmoid of their difference plus logistic noise (the difference of two Gumbels).
    """
    floor = torch.floor(x.detach())
    down = -torch.atanh((x - floor).clamp(-1 + EPSILON, 1 - EPSILON)) / tau
    up = -torch.atanh((floor + 1 - x).clamp(-1 + EPSILON, 1 - EPSILON)) / tau
    u = torch.rand(x.shape, generator=generator, device=x.device, dtype=x.dtype).clamp(EPSILON, 1 - EPSILON)
    logistic = torch.log(u) - torch.log1p(-u)
    return floor + torch.sigmoid((up - down + logistic) / tau)


def ste_round(x: torch.Tensor, tau: float = 0.0, generator: torch.Generator | None = None) -> torch.Tensor:
    """Straight-through rounding: rounded forward, identity backward (Campos et al. 2019)."""
    return x + (torch.round(x) - x).detach()


def noise_round(x: torch.Tensor, tau: float = 0.0, generator: torch.Generator | None = None) -> torch.Tensor:
    """Additive uniform noise, as in training."""
    u = torch.rand(x.shape, generator=generator, device=x.device, dtype=x.dtype)
    return x + u - 0.5


RELAXATIONS = {"sga": sga_round, "ste": ste_round, "noise": noise_round}
