"""Turning `aecodec train` options into configs; imported only by that command."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import torch

from ..model_config import ModelConfig
from ..refine_torch.precision import fast_bf16_cpu
from .checkpoint import Checkpoint, load_checkpoint
from .config import TrainConfig
from .data import file_list_sha256, list_images, split_validation
from .levels import with_extra_top_levels
from .loop import train
from .widen import with_context, with_wider_latent


def with_data_record(config: TrainConfig, checkpoint: Checkpoint | None) -> TrainConfig:
    """The config with what its data folder holds, for the model card; too few photos stop here, before any work."""
    paths = list_images(config.data)
    split_validation(paths, config.validation_images, checkpoint.validation_stems if checkpoint else None)
    return replace(config, data_photos=len(paths), data_list_sha256=file_list_sha256(config.data, paths))


def run_training(data, out, minutes, resume, lr, batch, crop, channels, latent_channels, threads, device,
                 bf16, checkpoint_minutes, ema_decay=None, lr_decay_fraction=None, synthetic_share=None,
                 add_top_levels=0, widen_latent=None, level_balance=None, compile_gdn=None,
                 add_context=None, context_lr_scale=None) -> Path:
    if device == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("CUDA was asked for but torch sees no GPU")
    if bf16 is None:
        bf16 = device == "cuda" or fast_bf16_cpu()
    if compile_gdn is None:  # where it was measured to pay (aecodec/train/compiled.py)
        compile_gdn = bf16 and device == "cpu"
    checkpoint = load_checkpoint(resume) if resume else None  # read once, here, and handed to train()
    if (add_top_levels or widen_latent or add_context) and checkpoint is None:
        raise ValueError("--add-top-levels, --widen-latent and --add-context change a trained model: "
                         "give --resume or --init-weights")
    if widen_latent:
        checkpoint = with_wider_latent(checkpoint, widen_latent)
    if add_context:
        checkpoint = with_context(checkpoint, *add_context)
    if add_top_levels:
        checkpoint = with_extra_top_levels(checkpoint, add_top_levels)
    config = checkpoint.train_config if checkpoint is not None else TrainConfig()
    # A command-line run is budgeted by time: a step limit or validation interval left in the
    # checkpoint by a scripted run (bench/train_ablation.py) must not cut it short or silence it.
    changes = {"data": data, "minutes": minutes, "threads": threads, "device": device, "bf16": bf16,
               "compile_gdn": compile_gdn,
               "checkpoint_minutes": checkpoint_minutes, "max_steps": 0,
               "validate_minutes": TrainConfig.validate_minutes}
    optional = {"lr": lr, "batch": batch, "crop": crop, "ema_decay": ema_decay,
                "lr_decay_fraction": lr_decay_fraction, "synthetic_share": synthetic_share,
                "level_balance": level_balance, "context_lr_scale": context_lr_scale}
    changes.update({k: v for k, v in optional.items() if v is not None})
    config = with_data_record(replace(config, **changes), checkpoint)
    model_config = None if checkpoint is not None else ModelConfig(channels=channels, latent_channels=latent_channels)
    return train(config, model_config, out, checkpoint)
