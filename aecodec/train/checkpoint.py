"""A training checkpoint: everything `aecodec train --resume` needs to continue a run exactly.

A typical use looks like this::

    checkpoint = load_checkpoint("runs/main/last.ckpt")
    model = model_from_checkpoint(checkpoint)  # its moving average, where the run kept one
    print(checkpoint.step, checkpoint.model_config)
    save_checkpoint("runs/main/copy.ckpt", checkpoint)

On disk a checkpoint is a plain dict saved with torch.save, its keys the field names
below and its configs plain dicts (as nanoGPT keeps ``model_args``), so a checkpoint
from any earlier version loads: this module is the only one that knows the keys.
"""

from __future__ import annotations

import io
import os
import random
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np
import torch

from ..model_config import ModelConfig
from ..refine_torch.model import HyperpriorModel
from .config import TrainConfig


@dataclass(frozen=True)
class Checkpoint:
    model: dict  # the trained network's state_dict
    model_config: ModelConfig
    train_config: TrainConfig
    step: int
    pixels_seen: int  # training pixels over all steps and ranks
    rng: dict  # rank 0's rng_state, plus every rank's under "ranks" (distributed.merged_rng)
    seconds_trained: float = 0.0  # the first checkpoints did not count it
    optimizer: dict | None = None  # Adam's state_dict; a GPU window may bring none back
    ema_model: dict | None = None  # moving average of the weights, where the run keeps one
    validation_stems: list[str] | None = None  # the held-out photos; None: split_validation's default

    def to_dict(self) -> dict:
        state = {field.name: getattr(self, field.name) for field in fields(self)}
        return {**state, "model_config": self.model_config.to_dict(), "train_config": self.train_config.to_dict()}

    @classmethod
    def from_dict(cls, state: dict) -> Checkpoint:
        return cls(**{**state, "model_config": ModelConfig(**state["model_config"]),
                      "train_config": TrainConfig(**state["train_config"])})


def save_checkpoint(path: str | Path, checkpoint: Checkpoint) -> None:
    """Write to a temporary file, then rename, so a kill never leaves half a checkpoint."""
    path = Path(path)
    tmp = path.with_suffix(".ckpt.tmp")
    torch.save(checkpoint.to_dict(), tmp)
    os.replace(tmp, path)


def load_checkpoint(path: str | Path) -> Checkpoint:
    return Checkpoint.from_dict(torch.load(path, map_location="cpu", weights_only=False))


def checkpoint_bytes(checkpoint: Checkpoint) -> bytes:
    """What save_checkpoint would write, in memory: for sending a checkpoint in pieces."""
    buffer = io.BytesIO()
    torch.save(checkpoint.to_dict(), buffer)
    return buffer.getvalue()


def model_from_checkpoint(checkpoint: Checkpoint, averaged: bool = True) -> HyperpriorModel:
    """The checkpoint's network: its moving average of the weights where it keeps one."""
    model = HyperpriorModel(checkpoint.model_config)
    use_average = averaged and checkpoint.ema_model is not None
    model.load_state_dict(checkpoint.ema_model if use_average else checkpoint.model)
    return model


def rng_state(rng: np.random.Generator) -> dict:
    """Every random stream training draws from: torch's (rounding noise), numpy's (crops), Python's."""
    return {"torch": torch.get_rng_state(), "numpy": rng.bit_generator.state, "python": random.getstate()}


def restore_rng(state: dict, rng: np.random.Generator) -> None:
    torch.set_rng_state(state["torch"])
    rng.bit_generator.state = state["numpy"]
    random.setstate(state["python"])
