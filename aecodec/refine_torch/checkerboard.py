"""The checkerboard context (He et al., CVPR 2021): the second half of the latent predicted from the first.

A typical use, inside ``HyperpriorModel.forward``::

    anchors = anchor_mask(height, width, device)                 # 1 where (row + column) is even
    mean, scale = context(decoded * anchors, mean, scale, level_bias)   # for the other half

The latent is split in a checkerboard. Anchors are coded with the hyperprior's mean and scale, as
in a model without a context. The other half gets the hyperprior's mean and scale plus what this
network reads from the decoded anchors around it: a 5x5 convolution that sees only anchors (12 of
its 25 taps), a 1x1 layer over that and the hyperprior's own mean and scale with a bias for the
rate level (the decoder knows the quality from the header), a ReLU, and a 1x1 layer out. Its last
layer starts at zero, so a model that gains a context computes exactly what it did before.

The codec runs the same network in exact integer arithmetic (``aecodec/context.py``); export
converts it (``aecodec/train/export.py``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

KERNEL = 5  # the context's reach: 2 latent rows and columns on each side


def anchor_mask(height: int, width: int, device=None) -> torch.Tensor:
    """(1, 1, height, width): 1 where (row + column) is even, the half coded first."""
    rows = torch.arange(height, device=device)[:, None]
    cols = torch.arange(width, device=device)[None, :]
    return ((rows + cols) % 2 == 0).float()[None, None]


def anchor_taps(kernel: int = KERNEL) -> torch.Tensor:
    """(1, 1, k, k): 1 at the taps that fall on anchors when the centre is a non-anchor (odd offset sum)."""
    taps = torch.arange(kernel)
    return (((taps[:, None] + taps[None, :]) % 2) == 1).float()[None, None]


class CheckerboardContext(nn.Module):
    """Mean and scale of the non-anchor half from the decoded anchors and the hyperprior's own."""

    def __init__(self, latent_channels: int, levels: int, context: int, hidden: int):
        super().__init__()
        self.context = nn.Conv2d(latent_channels, context, KERNEL, padding=KERNEL // 2)
        self.register_buffer("taps", anchor_taps())
        self.hidden = nn.Conv2d(context + 2 * latent_channels, hidden, 1)
        self.level_bias = nn.Parameter(torch.zeros(levels, hidden))
        self.out = nn.Conv2d(hidden, 2 * latent_channels, 1)
        nn.init.zeros_(self.out.weight)  # step 0 predicts exactly the hyperprior's mean and scale
        nn.init.zeros_(self.out.bias)

    def seen(self, anchors: torch.Tensor) -> torch.Tensor:
        """The 5x5 convolution over the anchors, its non-anchor taps masked out."""
        return F.conv2d(anchors, self.context.weight * self.taps, self.context.bias, padding=KERNEL // 2)

    def forward(self, anchors: torch.Tensor, mean: torch.Tensor, scale: torch.Tensor,
                level_bias: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(mean, scale) for the non-anchors, from anchors (B, M, H, W; zero off the anchors), the
        hyperprior's mean and scale and level_bias (B, hidden), the level's row of level_bias."""
        hidden = F.relu(self.hidden(torch.cat([self.seen(anchors), mean, scale], 1)) + level_bias[:, :, None, None])
        mean_change, scale_change = self.out(hidden).chunk(2, 1)
        return mean + mean_change, scale + scale_change


def two_pass(context: CheckerboardContext, decoded: torch.Tensor, mean: torch.Tensor, scale: torch.Tensor,
             level_bias: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Every element's (mean, scale): the hyperprior's on the anchors, the context's on the rest, which
    reads decoded (the latent as the decoder rebuilds it) on the anchors only."""
    anchors = anchor_mask(*decoded.shape[2:], decoded.device)
    context_mean, context_scale = context(decoded * anchors, mean, scale, level_bias)
    rest = 1 - anchors
    return mean * anchors + context_mean * rest, scale * anchors + context_scale * rest
