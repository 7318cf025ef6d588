"""The training loop: time-budgeted, checkpointed atomically, resumable exactly.

A typical run looks like this::

    run = train(TrainConfig(data="photos/", minutes=60), ModelConfig(), out_dir="runs/main")
    train(TrainConfig(minutes=60), None, out_dir="runs/main", resume="runs/main/last.ckpt")
"""

from __future__ import annotations

import copy
import csv
import os
import random
import time
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from . import distributed
from .config import ModelConfig, TrainConfig
from .data import CropSampler, list_images, load_photo, split_validation
from .model import HyperpriorModel, rd_loss

VALIDATION_LEVELS = 4  # rates logged per validation pass, spread over all levels
VALIDATION_SIDE = 512  # held-out photos are centre-cropped to at most this


def save_checkpoint(path: Path, state: dict) -> None:
    """Write to a temporary file, then rename, so a kill never leaves half a checkpoint."""
    tmp = path.with_suffix(".ckpt.tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)


def load_checkpoint(path: str | Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=False)


def model_from_checkpoint(checkpoint: dict, averaged: bool = True) -> HyperpriorModel:
    """The checkpoint's network: its moving average of the weights where it keeps one."""
    model = HyperpriorModel(ModelConfig(**checkpoint["model_config"]))
    use_average = averaged and checkpoint.get("ema_model") is not None
    model.load_state_dict(checkpoint["ema_model"] if use_average else checkpoint["model"])
    return model


@torch.no_grad()
def update_average(average: HyperpriorModel, model: HyperpriorModel, decay: float) -> None:
    """average <- decay * average + (1 - decay) * model, parameter by parameter."""
    torch._foreach_lerp_(list(average.parameters()), list(model.parameters()), 1 - decay)


def learning_rate(config: TrainConfig, step: int, start_step: int, elapsed: float) -> float:
    """config.lr, divided by 10 over the last lr_decay_fraction of the run (by steps, else by time)."""
    if config.lr_decay_fraction <= 0:
        return config.lr
    if config.max_steps:
        progress = (step - start_step) / max(config.max_steps - start_step, 1)
    else:
        progress = elapsed / max(config.minutes * 60, 1e-9)
    return config.lr * (0.1 if progress >= 1 - config.lr_decay_fraction else 1.0)


def rng_state(rng: np.random.Generator) -> dict:
    return {"torch": torch.get_rng_state(), "numpy": rng.bit_generator.state, "python": random.getstate()}


def restore_rng(state: dict, rng: np.random.Generator) -> None:
    torch.set_rng_state(state["torch"])
    rng.bit_generator.state = state["numpy"]
    random.setstate(state["python"])


def centre_crop(photo: np.ndarray, side: int) -> np.ndarray:
    h, w = photo.shape[:2]
    ch, cw = min(h, side) // 64 * 64, min(w, side) // 64 * 64
    top, left = (h - ch) // 2, (w - cw) // 2
    return photo[top:top + ch, left:left + cw]


@torch.no_grad()
def validate(model: HyperpriorModel, photos: list[np.ndarray], device: str, bf16: bool) -> list[dict]:
    """Rounded (not noisy) bpp and PSNR at a few levels, averaged over held-out photos."""
    model.eval()
    levels = np.linspace(0, model.config.levels - 1, VALIDATION_LEVELS)
    rows = []
    for level in levels:
        bpp, psnr = [], []
        for photo in photos:
            x = torch.from_numpy(centre_crop(photo, VALIDATION_SIDE).transpose(2, 0, 1).copy())
            x = (x.float() / 255).unsqueeze(0).to(device)
            lv = torch.full((1,), float(level), device=device)
            out = model(x, lv, bf16=bf16, noise=False)
            out["x_hat"] = out["x_hat"].clamp(0, 1)
            metrics = rd_loss(out, x, model.lambdas(lv))
            bpp.append(metrics["bpp"].item())
            psnr.append(metrics["psnr"].item())
        rows.append({"level": float(level), "bpp": float(np.mean(bpp)), "psnr": float(np.mean(psnr))})
    model.train()
    return rows


def append_csv(path: Path, row: dict) -> None:
    new = not path.exists()
    with path.open("a", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(row))
        if new:
            writer.writeheader()
        writer.writerow(row)


def load_photos(paths: list[Path], config: TrainConfig, what: str, quiet: bool = False) -> list[np.ndarray]:
    photos = []
    for path in tqdm(paths, desc=f"loading {what}", unit="img", leave=False, disable=quiet):
        photo = load_photo(path, config.max_side, config.crop)
        if photo is not None:
            photos.append(photo)
    return photos


def train(config: TrainConfig, model_config: ModelConfig | None, out_dir: str | Path,
          resume: str | Path | None = None) -> Path:
    """Train until config.minutes have passed; return the path of the last checkpoint.

    Under torchrun each process runs this with its own rank (see distributed.py).
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if config.threads:
        torch.set_num_threads(config.threads)
    ranks, device = distributed.start(config.device)
    checkpoint = load_checkpoint(resume) if resume else None
    if checkpoint is not None:
        model_config = ModelConfig(**checkpoint["model_config"])
    model_config = model_config or ModelConfig()
    torch.manual_seed(config.seed)  # the same initial weights on every rank

    model = HyperpriorModel(model_config).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    rng = distributed.seed_rank(config.seed, ranks)  # each rank its own crops and rounding noise
    step, pixels_seen, seconds_trained = 0, 0, 0.0
    if checkpoint is not None:
        model.load_state_dict(checkpoint["model"])
        if checkpoint.get("optimizer") is not None:  # a GPU window may bring back no Adam moments
            optimizer.load_state_dict(checkpoint["optimizer"])
        for group in optimizer.param_groups:
            group["lr"] = config.lr  # the new run's learning rate wins
        step, pixels_seen = checkpoint["step"], checkpoint["pixels_seen"]
        seconds_trained = checkpoint.get("seconds_trained", 0.0)
        saved = distributed.saved_rng(checkpoint["rng"], ranks)
        if saved is not None:
            restore_rng(saved, rng)
        else:  # a rank the saved run did not have
            rng = distributed.seed_rank(config.seed, ranks, step)
    model = model.to(memory_format=torch.channels_last)
    average = None
    if config.ema_decay > 0:
        average = copy.deepcopy(model).requires_grad_(False)
        if checkpoint is not None and checkpoint.get("ema_model") is not None:
            average.load_state_dict(checkpoint["ema_model"])
    start_step = step

    stems = checkpoint.get("validation_stems") if checkpoint else None
    train_paths, val_paths = split_validation(list_images(config.data), config.validation_images, stems)
    quiet = not ranks.leader
    sampler = CropSampler(load_photos(train_paths, config, "training photos", quiet), config.crop,
                          config.min_scale, config.synthetic_share)
    val_photos = load_photos(val_paths, config, "validation photos", quiet) if ranks.leader else []
    if ranks.leader:
        (out / "validation_images.txt").write_text("".join(f"{p}\n" for p in val_paths))
    trainer = distributed.wrap(model, ranks, device)

    def save() -> None:
        """Every rank hands in its random state (so a resume is exact); rank 0 writes."""
        rng_states = distributed.gather(rng_state(rng), ranks)
        if ranks.leader:
            save_checkpoint(ckpt_path, {
                "model": model.state_dict(), "optimizer": optimizer.state_dict(),
                "ema_model": average.state_dict() if average is not None else None,
                "step": step, "pixels_seen": pixels_seen, "seconds_trained": seconds_trained,
                "model_config": model_config.to_dict(), "train_config": config.to_dict(),
                "rng": distributed.merged_rng(rng_states), "validation_stems": [p.stem for p in val_paths],
            })

    budget = config.minutes * 60
    start = last_save = last_val = time.monotonic()
    window = {"loss": [], "bpp": [], "psnr": []}
    bar = tqdm(total=int(budget), unit="s", desc="training", dynamic_ncols=True, mininterval=2,
               bar_format="{l_bar}{bar}| {n_fmt}/{total_fmt}s {postfix}", disable=quiet)
    ckpt_path = out / "last.ckpt"
    while True:
        t0 = time.monotonic()
        # Rank 0's clock rules: every rank stops, saves and decays the learning rate together.
        elapsed, due_validation, due_save = distributed.leader_values(
            [t0 - start, t0 - last_val > config.validate_minutes * 60, t0 - last_save > config.checkpoint_minutes * 60],
            ranks, device)
        if due_validation and val_photos:
            for row in validate(average if average is not None else model, val_photos, device, config.bf16):
                append_csv(out / "validation.csv", {"step": step, "pixels_seen": pixels_seen, **row})
        if due_validation:
            last_val = time.monotonic()
        if due_save:
            save()
            last_save = time.monotonic()
        if elapsed >= budget or (config.max_steps and step >= config.max_steps):
            break
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(config, step, start_step, elapsed)
        x = torch.from_numpy(sampler.batch(rng, config.batch)).to(device)
        x = x.contiguous(memory_format=torch.channels_last)
        level = torch.from_numpy(rng.uniform(0, model_config.levels - 1, config.batch)).float().to(device)
        out_step = trainer(x, level, bf16=config.bf16)
        metrics = rd_loss(out_step, x, model.lambdas(level))
        optimizer.zero_grad(set_to_none=True)
        metrics["loss"].backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        if average is not None:
            update_average(average, model, config.ema_decay)
        step += 1
        pixels_seen += x.shape[0] * x.shape[2] * x.shape[3] * ranks.world
        seconds_trained += time.monotonic() - t0
        for key in window:
            window[key].append(float(metrics[key].detach().mean()))
        if step % 20 == 0 and ranks.leader:
            means = {k: float(np.mean(v)) for k, v in window.items()}
            bar.set_postfix(step=step, loss=f"{means['loss']:.3f}", bpp=f"{means['bpp']:.3f}",
                            psnr=f"{means['psnr']:.2f}")
            append_csv(out / "train.csv", {"step": step, "pixels_seen": pixels_seen, **means})
        if step % 20 == 0:
            window = {k: [] for k in window}
        bar.update(min(int(time.monotonic() - start), int(budget)) - bar.n)
    bar.close()
    save()
    if val_photos:
        for row in validate(average if average is not None else model, val_photos, device, config.bf16):
            append_csv(out / "validation.csv", {"step": step, "pixels_seen": pixels_seen, **row})
    distributed.finish(ranks)
    return ckpt_path

