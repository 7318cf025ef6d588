"""Checkpoint -> weights bundle: ONNX networks, frozen integer tables, model card.

A typical workflow looks like this::

    export("runs/main/last.ckpt", "runs/main/export", calibration_dir="../shared/data/train")

The hyper-synthesis is not exported to ONNX: it is converted to exact integer
arithmetic (``aecodec.fixedpoint``) with activation ranges calibrated on
held-out training photos.
"""

from __future__ import annotations

import datetime
import errno
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .. import probability
from ..bundle import HASHED_FILES, HYPER_STRIDE, MANIFEST, model_id_of, write_card, write_tables
from ..context import ContextLayers, quantize_context
from ..fixedpoint import quantize_layers
from ..refine_torch.checkerboard import anchor_mask
from ..refine_torch.model import FactorizedPrior, HyperpriorModel, SimplifiedGDN
from .checkpoint import Checkpoint, load_checkpoint, model_from_checkpoint
from .data import held_out_photos, list_images, load_photo
from .loop import VALIDATION_SIDE, centre_crop

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


@torch.no_grad()
def context_layers(model: HyperpriorModel, photos: list[np.ndarray]) -> ContextLayers | None:
    """The model's checkerboard context in integers (aecodec/context.py), its activation ranges taken from
    the calibration photos at CALIBRATION_LEVELS levels, as the codec will feed it; None without one."""
    context = model.context
    if context is None:
        return None
    seen_peak = hidden_peak = 0.0
    for photo in photos:
        x = torch.from_numpy(centre_crop(photo, VALIDATION_SIDE).transpose(2, 0, 1).copy()).float()[None] / 255
        y = model.analysis(x)
        for level in np.linspace(0, model.config.levels - 1, CALIBRATION_LEVELS):
            level = torch.tensor([float(level)])
            latent = y * model.gains(level)[0]
            mean, scale = model.hyper_synthesis(torch.round(model.hyper_analysis(latent))).chunk(2, dim=1)
            anchors = anchor_mask(*latent.shape[2:])
            seen = context.seen((torch.round(latent - mean) + mean) * anchors)
            hidden = torch.relu(context.hidden(torch.cat([seen, mean, scale], 1))
                                + model.interpolate(context.level_bias, level)[:, :, None, None])
            rest = anchors == 0
            seen_peak = max(seen_peak, float(seen.abs().mul(rest).max()))
            hidden_peak = max(hidden_peak, float(hidden.mul(rest).max()))
    state = {name: value.double().numpy() for name, value in context.state_dict().items() if name != "taps"}
    return quantize_context(state, seen_peak, hidden_peak)


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


def check_output(out: Path, force: bool) -> None:
    """Refuse a folder that holds any of a bundle's files, unless force: the shipped model is one."""
    if out.exists() and not out.is_dir():
        raise NotADirectoryError(errno.ENOTDIR, f"{out} is not a folder")
    present = [name for name in (MANIFEST, *HASHED_FILES) if (out / name).exists()]
    if present and not force:
        raise FileExistsError(errno.EEXIST, f"{out} already holds a weights bundle ({', '.join(present)}); "
                                            "use -f/--force to overwrite it")


@contextmanager
def staging_folder(out: Path) -> Iterator[Path]:
    """A fresh folder beside out (so a rename moves it), removed at the end whatever happened."""
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name or 'weights'}.{os.getpid()}.", suffix=".tmp", dir=out.parent))
    try:
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(staging, 0o777 & ~umask)  # mkdtemp's 0700 would become the bundle's own mode
        yield staging
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def publish(staging: Path, out: Path, force: bool) -> None:
    """Move a finished bundle to out: in one rename where out is new, else file by file, card last."""
    if not out.exists():
        os.rename(staging, out)
        return
    check_output(out, force)  # again: another export may have written there meanwhile
    # Without its card the folder is no loadable bundle, so no reader takes a mix of old and new files.
    (out / MANIFEST).unlink(missing_ok=True)
    for name in (*HASHED_FILES, MANIFEST):
        os.replace(staging / name, out / name)


def data_record(checkpoint: Checkpoint) -> dict:
    """What the run trained on, as its checkpoint records it: the folder of its last start, and how many photos."""
    config = checkpoint.train_config
    record = {"folder": config.data, "photos": config.data_photos or None,
              "file_list_sha256": config.data_list_sha256 or None,
              "held_out_for_validation": len(checkpoint.validation_stems or []) or config.validation_images}
    if not config.data_photos:
        record["note"] = "the number of photos and their list are not recorded in the checkpoint"
    return record


def calibration_photos(checkpoint: Checkpoint, calibration_dir: str | Path, count: int) -> list[np.ndarray]:
    """The held-out training photos, as training loaded them: the ones validation uses, never Kodak."""
    held_out = held_out_photos(list_images(calibration_dir), count, checkpoint.validation_stems)
    max_side = checkpoint.train_config.max_side
    photos = [p for p in (load_photo(path, max_side, HYPER_STRIDE) for path in held_out) if p is not None]
    if not photos:
        raise ValueError(f"no calibration photo of at least {HYPER_STRIDE}x{HYPER_STRIDE} pixels in {calibration_dir}")
    return photos


@torch.no_grad()
def write_bundle(out: Path, checkpoint: Checkpoint, calibration_dir: str | Path, calibration_images: int,
                 extrapolated_levels: int) -> bytes:
    """Every file of the bundle into the folder out, which exists; returns the model id."""
    model = prepare_for_export(model_from_checkpoint(checkpoint))
    cfg = model.config
    export_onnx(model.analysis, 3, out / "analysis.onnx")
    export_onnx(model.hyper_analysis, cfg.latent_channels, out / "hyper_analysis.onnx")
    export_onnx(model.synthesis, cfg.latent_channels, out / "synthesis.onnx")
    photos = calibration_photos(checkpoint, calibration_dir, calibration_images)
    layers = quantize_layers(hyper_synthesis_layers(model.hyper_synthesis), calibration_hyper_latents(model, photos))
    scale_table = probability.scale_table()
    log_gain = extrapolate_gains(model.log_gain.double().numpy(), extrapolated_levels)
    log_inverse_gain = extrapolate_gains(model.log_inverse_gain.double().numpy(), extrapolated_levels)
    write_tables(out, log_gain, log_inverse_gain, layers, scale_table, probability.gaussian_tables(scale_table),
                 hyper_tables(model.hyper_prior, cfg.channels), context_layers(model, photos))
    model_id = model_id_of(out)
    card = {
        "format": "aecodec-weights", "version": 1, "model_id": model_id.hex(),
        "architecture": "variable-rate mean-scale hyperprior (gain units), simplified GDN, sub-pixel synthesis"
                        + (", checkerboard context" if model.context is not None else ""),
        "model_config": cfg.to_dict(), "train_config": checkpoint.train_config.to_dict(),
        "training_steps": checkpoint.step, "pixels_seen": checkpoint.pixels_seen,
        "training_seconds": round(checkpoint.seconds_trained),
        "lambda_range": [cfg.lambda_min, cfg.lambda_max],
        "extrapolated_levels": extrapolated_levels,  # gain rows below lambda_min, see extrapolate_gains
        "data": data_record(checkpoint),
        "exported": datetime.date.today().isoformat(), "files": list(HASHED_FILES),
        "kodak_rd": None,
    }
    write_card(out, card)
    return model_id


def export(checkpoint_path: str | Path, out_dir: str | Path, calibration_dir: str | Path,
           calibration_images: int = 8, extrapolated_levels: int = EXTRAPOLATED_LEVELS, force: bool = False) -> bytes:
    """Write a weights bundle, whole or not at all; returns its model id.

    A folder that already holds a bundle's files is refused unless force. The bundle is built in a
    folder beside out_dir, so a failure or a kill part-way leaves out_dir as it was.
    """
    out = Path(out_dir)
    check_output(out, force)  # before the slow part
    checkpoint = load_checkpoint(checkpoint_path)
    with staging_folder(out) as staging:
        model_id = write_bundle(staging, checkpoint, calibration_dir, calibration_images, extrapolated_levels)
        publish(staging, out, force)
    return model_id
