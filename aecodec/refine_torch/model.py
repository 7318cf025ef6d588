"""The variable-rate mean-scale hyperprior, in PyTorch: trained by aecodec.train, used by the refinement.

A typical training step looks like this (``rd_loss`` is aecodec/train/loss.py's)::

    model = HyperpriorModel(ModelConfig())
    out = model(images, level)          # level: (B,) floats in [0, levels-1]
    loss = rd_loss(out, images, model.lambdas(level))

The four transforms are plain ``nn.Sequential`` stacks so that export can hand
each one to ONNX (or to the fixed-point converter) on its own.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ..model_config import ModelConfig
from ..probability import SCALE_MIN  # the entropy tables' smallest scale bounds the predictions too
from .checkerboard import CheckerboardContext, two_pass

LIKELIHOOD_MIN = 1e-9


class _LowerBound(torch.autograd.Function):
    """max(x, bound) whose gradient still flows where it would lift x back above the bound.

    A plain clamp passes no gradient below its bound, so a parameter or activation that
    falls under it stays there for good (Balle et al. 2018; CompressAI's LowerBound).
    """

    @staticmethod
    def forward(ctx, x: torch.Tensor, bound: float) -> torch.Tensor:
        ctx.save_for_backward(x)
        ctx.bound = bound
        return x.clamp(min=bound)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        (x,) = ctx.saved_tensors
        passes = (x >= ctx.bound) | (grad < 0)
        return grad * passes.to(grad.dtype), None


def lower_bound(x: torch.Tensor, bound: float) -> torch.Tensor:
    """A clamp for export and inference, a gradient-passing bound while training."""
    if torch.is_grad_enabled() and x.requires_grad and not torch.jit.is_tracing():
        return _LowerBound.apply(x, bound)
    return x.clamp(min=bound)


class SimplifiedGDN(nn.Module):
    """x / (beta + gamma * |x|), or x * (...) when inverse (Johnston et al. 2019)."""

    def __init__(self, channels: int, inverse: bool = False):
        super().__init__()
        self.inverse = inverse
        self.beta = nn.Parameter(torch.ones(channels))
        self.gamma = nn.Parameter(0.1 * torch.eye(channels).view(channels, channels, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gamma = lower_bound(self.gamma, 0.0).to(x.dtype)
        beta = lower_bound(self.beta, 1e-4).to(x.dtype)
        norm = F.conv2d(x.abs(), gamma, beta)
        return x * norm if self.inverse else x / norm


def conv_down(cin: int, cout: int, kernel: int = 5) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, kernel, stride=2, padding=kernel // 2)


def conv_up(cin: int, cout: int) -> nn.Sequential:
    """Sub-pixel convolution: ONNX Runtime runs it much faster than ConvTranspose."""
    return nn.Sequential(nn.Conv2d(cin, cout * 4, 3, padding=1), nn.PixelShuffle(2))


def analysis(n: int, m: int) -> nn.Sequential:
    return nn.Sequential(
        conv_down(3, n), SimplifiedGDN(n),
        conv_down(n, n), SimplifiedGDN(n),
        conv_down(n, n), SimplifiedGDN(n),
        conv_down(n, m),
    )


def synthesis(n: int, m: int) -> nn.Sequential:
    return nn.Sequential(
        conv_up(m, n), SimplifiedGDN(n, inverse=True),
        conv_up(n, n), SimplifiedGDN(n, inverse=True),
        conv_up(n, n), SimplifiedGDN(n, inverse=True),
        conv_up(n, 3),
    )


def hyper_analysis(n: int, m: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(m, n, 3, padding=1), nn.LeakyReLU(inplace=True),
        conv_down(n, n), nn.LeakyReLU(inplace=True),
        conv_down(n, n),
    )


def hyper_synthesis(n: int, m: int) -> nn.Sequential:
    """Convs, pixel shuffles and ReLUs only: export turns it into exact integer arithmetic."""
    return nn.Sequential(
        conv_up(n, n), nn.ReLU(),
        conv_up(n, m), nn.ReLU(),
        nn.Conv2d(m, 2 * m, 3, padding=1),
    )


class FactorizedPrior(nn.Module):
    """Per-channel learned CDF of the hyper-latent (Balle et al. 2018, appendix 6.1)."""

    def __init__(self, channels: int, filters: tuple[int, ...] = (3, 3, 3), init_scale: float = 10.0):
        super().__init__()
        dims = (1, *filters, 1)
        scale = init_scale ** (1 / (len(filters) + 1))
        self.matrices = nn.ParameterList()
        self.biases = nn.ParameterList()
        self.factors = nn.ParameterList()
        for i in range(len(filters) + 1):
            init = math.log(math.expm1(1 / scale / dims[i + 1]))
            self.matrices.append(nn.Parameter(torch.full((channels, dims[i + 1], dims[i]), init)))
            self.biases.append(nn.Parameter(torch.rand(channels, dims[i + 1], 1) - 0.5))
            if i < len(filters):
                self.factors.append(nn.Parameter(torch.zeros(channels, dims[i + 1], 1)))

    def logits_cdf(self, values: torch.Tensor) -> torch.Tensor:
        """values: (C, 1, K) -> cumulative logits (C, 1, K)."""
        x = values
        for i, (matrix, bias) in enumerate(zip(self.matrices, self.biases)):
            x = torch.matmul(F.softplus(matrix), x) + bias
            if i < len(self.factors):
                x = x + torch.tanh(self.factors[i]) * torch.tanh(x)
        return x

    def likelihood(self, z: torch.Tensor) -> torch.Tensor:
        """Probability mass of the unit interval around each value of z (B, C, H, W)."""
        b, c, h, w = z.shape
        values = z.permute(1, 0, 2, 3).reshape(c, 1, -1)
        lower = self.logits_cdf(values - 0.5)
        upper = self.logits_cdf(values + 0.5)
        # Evaluate on the side of the median where the sigmoid is not saturated.
        sign = -torch.sign(lower + upper).detach()
        mass = (torch.sigmoid(sign * upper) - torch.sigmoid(sign * lower)).abs()
        return lower_bound(mass.reshape(c, b, h, w).permute(1, 0, 2, 3), LIKELIHOOD_MIN)


def gaussian_likelihood(residual: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """Mass of [r - 1/2, r + 1/2] under N(0, scale), computed on the lower tail."""
    scale = lower_bound(scale, SCALE_MIN)
    r = residual.abs()
    upper = torch.special.ndtr((0.5 - r) / scale)
    lower = torch.special.ndtr((-0.5 - r) / scale)
    return lower_bound(upper - lower, LIKELIHOOD_MIN)


def interpolate_rows(table: torch.Tensor, level: torch.Tensor) -> torch.Tensor:
    """Linear interpolation of the rows of table (levels, ...) at fractional levels (B,), clamped to its rows."""
    levels = len(table)
    level = level.clamp(0, levels - 1)
    low = level.floor().long().clamp(max=levels - 2)
    frac = (level - low.to(level.dtype)).view(-1, *([1] * (table.dim() - 1)))
    return table[low] * (1 - frac) + table[low + 1] * frac


def round_ste(x: torch.Tensor) -> torch.Tensor:
    return x + (torch.round(x) - x).detach()


def quantize(x: torch.Tensor, noise: bool) -> torch.Tensor:
    return x + torch.empty_like(x).uniform_(-0.5, 0.5) if noise else torch.round(x)


class HyperpriorModel(nn.Module):
    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        n, m, levels = config.channels, config.latent_channels, config.levels
        self.analysis = analysis(n, m)
        self.synthesis = synthesis(n, m)
        self.hyper_analysis = hyper_analysis(n, m)
        self.hyper_synthesis = hyper_synthesis(n, m)
        self.hyper_prior = FactorizedPrior(n)
        # Gains start at the step size that suits each lambda for MSE: sqrt(lambda).
        log_lambda = torch.log(torch.tensor(config.lambdas()))
        init = 0.5 * (log_lambda - log_lambda.mean())
        self.log_gain = nn.Parameter(init[:, None].repeat(1, m).clone())
        self.log_inverse_gain = nn.Parameter(-init[:, None].repeat(1, m).clone())
        self.register_buffer("log_lambda", log_lambda)
        # Registered last, so that its parameters come after the rest in parameters(): Adam's state of a
        # checkpoint without a context keeps its positions (aecodec/train/widen.py, with_context).
        self.context = (CheckerboardContext(m, levels, config.context_channels, config.context_hidden)
                        if config.context_channels else None)

    def interpolate(self, table: torch.Tensor, level: torch.Tensor) -> torch.Tensor:
        """Linear interpolation of rows of table (levels, ...) at fractional level (B,)."""
        return interpolate_rows(table, level)

    def lambdas(self, level: torch.Tensor) -> torch.Tensor:
        return torch.exp(self.interpolate(self.log_lambda, level))

    def gains(self, level: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-sample latent gain and inverse gain, each (B, M, 1, 1)."""
        gain = torch.exp(self.interpolate(self.log_gain, level))
        inverse = torch.exp(self.interpolate(self.log_inverse_gain, level))
        return gain[:, :, None, None], inverse[:, :, None, None]

    def forward(self, x: torch.Tensor, level: torch.Tensor, bf16: bool = False, noise: bool = True) -> dict:
        """Noise stands in for rounding in the rates when training; noise=False rounds."""
        autocast = torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=bf16)
        gain, inverse_gain = self.gains(level)
        with autocast:
            latent = self.analysis(x)
        latent = latent.float() * gain  # (B, M, H/16, W/16)
        with autocast:
            hyper_latent = self.hyper_analysis(latent)
        hyper_latent = hyper_latent.float()  # (B, N, H/64, W/64)
        hyper_likelihood = self.hyper_prior.likelihood(quantize(hyper_latent, noise))
        with autocast:
            params = self.hyper_synthesis(round_ste(hyper_latent))
        mean, scale = params.float().chunk(2, dim=1)
        if self.context is not None:  # the non-anchors' mean and scale from the decoded anchors
            level_bias = self.interpolate(self.context.level_bias, level)
            mean, scale = two_pass(self.context, round_ste(latent - mean) + mean, mean, scale, level_bias)
        latent_likelihood = gaussian_likelihood(quantize(latent - mean, noise), scale)
        latent_hat = round_ste(latent - mean) + mean
        with autocast:
            x_hat = self.synthesis(latent_hat * inverse_gain)
        return {
            "x_hat": x_hat.float(),
            "likelihoods": (latent_likelihood, hyper_likelihood),
        }
