"""The training objective: the rate-distortion loss of a batch, and the per-level weights that balance it."""

from __future__ import annotations

import math

import torch

from ..model_config import ModelConfig


def level_weights(lambdas: torch.Tensor, config: ModelConfig, balance: float) -> torch.Tensor | None:
    """Per-crop loss weights (lambda / the range's geometric middle) ** -balance; None when balance is 0.
    A crop's loss grows about as sqrt(lambda), so without them the top rates steer the gradient."""
    if not balance:
        return None
    return (lambdas / math.sqrt(config.lambda_min * config.lambda_max)) ** -balance


def rd_loss(out: dict, x: torch.Tensor, lambdas: torch.Tensor, weights: torch.Tensor | None = None) -> dict:
    """Per-sample lambda * 255^2 * MSE + bpp, averaged over the batch ("loss", what the logs show), and
    the same weighted per sample by weights ("objective", what training minimises; the loss without)."""
    b, _, h, w = x.shape
    pixels = h * w
    bits = sum(-torch.log2(lk).reshape(b, -1).sum(1) for lk in out["likelihoods"])
    bpp = bits / pixels
    mse = (out["x_hat"] - x).pow(2).reshape(b, -1).mean(1)
    per_sample = lambdas * 255**2 * mse + bpp
    loss = per_sample.mean()
    objective = loss if weights is None else (weights * per_sample).mean()
    psnr = -10 * torch.log10(mse.detach().clamp(min=1e-10))
    return {"loss": loss, "objective": objective, "bpp": bpp.detach(), "mse": mse.detach(), "psnr": psnr}
