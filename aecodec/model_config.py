"""The architecture of a model, as it travels in checkpoints and in a bundle's model card.

A typical workflow looks like this::

    config = ModelConfig.from_card(card["model_config"])   # once, in bundle.load_bundle
    lambdas = config.lambdas()                              # each trained level's trade-off

The runtime and training share this one definition; it needs only the standard library.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields


@dataclass(frozen=True)
class ModelConfig:
    """Architecture of the variable-rate mean-scale hyperprior."""

    channels: int = 96  # N: width of the transforms and of the hyper-latent
    latent_channels: int = 160  # M: channels of the latent
    levels: int = 8  # rate levels with learned gains; quality interpolates between them
    lambda_min: float = 0.0018
    lambda_max: float = 0.18
    # The checkerboard context (aecodec/refine_torch/checkerboard.py): channels of its 5x5 convolution over
    # the decoded anchors and of its hidden 1x1 layer; 0 for a model without one (format versions 1 and 2).
    context_channels: int = 0
    context_hidden: int = 0

    def lambdas(self) -> list[float]:
        """Rate-distortion trade-off of each level, log-spaced from min to max."""
        lo, hi = math.log(self.lambda_min), math.log(self.lambda_max)
        steps = max(self.levels - 1, 1)
        return [math.exp(lo + (hi - lo) * i / steps) for i in range(self.levels)]

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_card(cls, entries: dict) -> "ModelConfig":
        """The card's model_config; keys this build does not know (a card's strides) are left to their readers."""
        names = {f.name for f in fields(cls)}
        return cls(**{key: value for key, value in entries.items() if key in names})
