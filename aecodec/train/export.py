"""Checkpoint -> weights bundle: ONNX networks, frozen integer tables, model card.

A typical workflow looks like this::

    export("runs/main/last.ckpt", "weights/main", calibration_dir="../shared/data/train")

The hyper-synthesis is not exported to ONNX: it is converted to exact integer
arithmetic (``aecodec.fixedpoint``) with activation ranges calibrated on
held-out training photos.
"""

from __future__ import annotations

import datetime
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .. import probability
from ..bundle import HASHED_FILES, HYPER_STRIDE, model_id_of, write_card, write_tables
from ..fixedpoint import quantize_layers
from .checkpoint import load_checkpoint, model_from_checkpoint
from .data import list_images, load_photo, split_validation
from .loop import VALIDATION_SIDE, centre_crop
from .model import FactorizedPrior, HyperpriorModel, SimplifiedGDN

OPSET = 17
CALIBRATION_LEVELS = 5
# Gain rows added below the lowest trained rate, extrapolated log-linearly (Cui et al. 2021 §3.3):
# they stretch quality 1 down to lower bit rates than the smallest lambda was trained for.
EXTRAPOLATED_LEVELS = 3


def export_onnx(network: nn.Module, channels: int, path: Path) -> None:
    example = torch.zeros(1, channels, 64, 64)
    torch.onnx.export(
        network, (example,), str(path), opset_version=OPSET, dynamo=False,
        input_names=["input"], output_names=["output"],
        dynamic_axes={"input": {2: "height", 3: "width"}, "output": {2: "height", 3: "width"}},
    )


def hyper_synthesis_layers(network: nn.Sequential) -> list[dict]:
    """The conv / pixel-shuffle / ReLU stack as plain arrays for the fixed-point converter."""
    layers = []
    for module in network:
        if isinstance(module, nn.ReLU):
            layers[-1]["relu"] = True
            continue
        conv = module[0] if isinstance(module, nn.Sequential) else module
        layers.append({
            "weight": conv.weight.detach().double().numpy(), "bias": conv.bias.detach().double().numpy(),
            "relu": False, "shuffle": isinstance(module, nn.Sequential),
        })
    return layers


@torch.no_grad()
def hyper_tables(prior: FactorizedPrior, channels: int) -> tuple[list[np.ndarray], np.ndarray]:
    """The hyper-latent's integer tables (probability.factorized_tables) from the prior, in float64."""
    prior = prior.double()

    def cdf(values: np.ndarray) -> np.ndarray:
        x = torch.from_numpy(np.ascontiguousarray(values, dtype=np.float64))
        return torch.sigmoid(prior.logits_cdf(x[:, None, :]))[:, 0, :].numpy()

    return probability.factorized_tables(cdf, channels)


@torch.no_grad()
def calibration_hyper_latents(model: HyperpriorModel, photos: list[np.ndarray]) -> list[np.ndarray]:
    latents = []
    for photo in photos:
        x = torch.from_numpy(centre_crop(photo, VALIDATION_SIDE).transpose(2, 0, 1).copy()).float()[None] / 255
        y = model.analysis(x)
        for level in np.linspace(0, model.config.levels - 1, CALIBRATION_LEVELS):
            gain, _ = model.gains(torch.tensor([float(level)]))
            latents.append(torch.round(model.hyper_analysis(y * gain))[0].double().numpy())
    return latents


def extrapolate_gains(log_gain: np.ndarray, extra: int) -> np.ndarray:
    """(levels, M) log gains -> (extra + levels, M): rows continue the first step's line downwards."""
    step = log_gain[1] - log_gain[0]
    below = log_gain[0] - np.arange(extra, 0, -1)[:, None] * step
    return np.concatenate([below, log_gain])


def prepare_for_export(model: HyperpriorModel) -> HyperpriorModel:
    """Bake parameter constraints into the weights so the ONNX graphs stay simple."""
    for module in model.modules():
        if isinstance(module, SimplifiedGDN):
            module.gamma.data.clamp_(min=0.0)
            module.beta.data.clamp_(min=1e-4)
    return model.eval()


@torch.no_grad()
def export(checkpoint_path: str | Path, out_dir: str | Path, calibration_dir: str | Path,
           calibration_images: int = 8, extrapolated_levels: int = EXTRAPOLATED_LEVELS) -> bytes:
    """Write a weights bundle; returns its model id."""
    checkpoint = load_checkpoint(checkpoint_path)
    model = prepare_for_export(model_from_checkpoint(checkpoint))
    cfg = model.config
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    export_onnx(model.analysis, 3, out / "analysis.onnx")
    export_onnx(model.hyper_analysis, cfg.latent_channels, out / "hyper_analysis.onnx")
    export_onnx(model.synthesis, cfg.latent_channels, out / "synthesis.onnx")

    # Calibrate on held-out training photos: the same ones validation uses, never Kodak.
    _, held_out = split_validation(list_images(calibration_dir), calibration_images, checkpoint.validation_stems)
    max_side = checkpoint.train_config.max_side  # as training loaded them
    photos = [p for p in (load_photo(path, max_side, HYPER_STRIDE) for path in held_out) if p is not None]
    if not photos:
        raise ValueError(f"no calibration photo of at least {HYPER_STRIDE}x{HYPER_STRIDE} pixels in {calibration_dir}")
    layers = quantize_layers(hyper_synthesis_layers(model.hyper_synthesis), calibration_hyper_latents(model, photos))
    scale_table = probability.scale_table()
    log_gain = extrapolate_gains(model.log_gain.double().numpy(), extrapolated_levels)
    log_inverse_gain = extrapolate_gains(model.log_inverse_gain.double().numpy(), extrapolated_levels)
    write_tables(out, log_gain, log_inverse_gain, layers, scale_table, probability.gaussian_tables(scale_table),
                 hyper_tables(model.hyper_prior, cfg.channels))
    model_id = model_id_of(out)
    card = {
        "format": "aecodec-weights", "version": 1, "model_id": model_id.hex(),
        "architecture": "variable-rate mean-scale hyperprior (gain units), simplified GDN, sub-pixel synthesis",
        "model_config": cfg.to_dict(), "train_config": checkpoint.train_config.to_dict(),
        "training_steps": checkpoint.step, "pixels_seen": checkpoint.pixels_seen,
        "training_seconds": round(checkpoint.seconds_trained),
        "lambda_range": [cfg.lambda_min, cfg.lambda_max],
        "extrapolated_levels": extrapolated_levels,  # gain rows below lambda_min, see extrapolate_gains
        "data": "photographs listed in shared/data/train/MANIFEST.tsv (Kodak never used)",
        "exported": datetime.date.today().isoformat(), "files": list(HASHED_FILES),
        "kodak_rd": None,
    }
    write_card(out, card)
    return model_id
