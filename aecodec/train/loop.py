"""The training loop: time-budgeted, checkpointed atomically, resumable exactly.

A typical run looks like this::

    run = train(TrainConfig(data="photos/", minutes=60), ModelConfig(), out_dir="runs/main")
    train(TrainConfig(minutes=60), None, out_dir="runs/main", resume=load_checkpoint("runs/main/last.ckpt"))

load_checkpoint is checkpoint.py's, which alone knows what a checkpoint holds.
"""

from __future__ import annotations

import copy
import csv
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from tqdm import tqdm

from ..model_config import ModelConfig
from ..refine_torch.model import HyperpriorModel
from . import distributed
from .checkpoint import Checkpoint, restore_rng, rng_state, save_checkpoint
from .compiled import compile_gdn_layers
from .config import TrainConfig
from .data import CropSampler, held_out_photos, list_images, load_photo, split_validation
from .loss import level_weights, rd_loss

VALIDATION_LEVELS = 4  # rates logged per validation pass, spread over all levels
VALIDATION_SIDE = 512  # held-out photos are centre-cropped to at most this
LOG_STEPS = 20  # the progress bar and train.csv show means over this many steps


@dataclass
class Run:
    """One rank's training state: what the loop changes as it goes, and what a checkpoint keeps."""

    model: HyperpriorModel
    optimizer: torch.optim.Optimizer
    rng: np.random.Generator  # this rank's crops and levels; torch's generator draws the rounding noise
    ranks: distributed.Ranks
    device: str
    average: HyperpriorModel | None = None  # moving average of the weights, when config.ema_decay > 0
    step: int = 0
    pixels_seen: int = 0  # over all ranks
    seconds_trained: float = 0.0

    @property
    def scored(self) -> HyperpriorModel:
        """The weights validation scores and export ships: the moving average where there is one."""
        return self.average if self.average is not None else self.model


@dataclass(frozen=True)
class Data:
    """The photos a run trains and validates on, loaded once."""

    sampler: CropSampler  # training crops
    held_out: list[Path]  # every rank knows them: the checkpoint keeps their stems
    validation: list[np.ndarray]  # their pixels, on rank 0 alone, which validates
    # As many photos the run trains on, validated the same way: a gap between the two that grows says
    # more photos would buy more than more steps (issue 22, item 6). Rank 0 alone.
    seen: list[np.ndarray]


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


def start_run(config: TrainConfig, model_config: ModelConfig, resume: Checkpoint | None,
              ranks: distributed.Ranks, device: str) -> Run:
    """A fresh model, or the resumed one; the order of the random draws here is part of an exact resume."""
    torch.manual_seed(config.seed)  # the same initial weights on every rank
    model = HyperpriorModel(model_config).to(device)
    optimizer = torch.optim.Adam(parameter_groups(model, config), lr=config.lr)
    rng = distributed.seed_rank(config.seed, ranks)  # each rank its own crops and rounding noise
    run = Run(model, optimizer, rng, ranks, device)
    if resume is not None:
        restore(run, resume, config)
    run.model = model.to(memory_format=torch.channels_last)
    if config.ema_decay > 0:
        run.average = copy.deepcopy(run.model).requires_grad_(False)
        if resume is not None and resume.ema_model is not None:
            run.average.load_state_dict(resume.ema_model)
    return run


def parameter_groups(model: HyperpriorModel, config: TrainConfig) -> list[dict]:
    """Adam's parameter groups: the model, then its checkerboard context (if any) at context_lr_scale times
    the learning rate. The context's parameters come last in model.parameters(), so the positions are the
    same as in one group."""
    context = [] if model.context is None else list(model.context.parameters())
    chosen = {id(p) for p in context}
    groups = [{"params": [p for p in model.parameters() if id(p) not in chosen], "lr_scale": 1.0}]
    if context:
        groups.append({"params": context, "lr_scale": config.context_lr_scale})
    return groups


def regrouped(state: dict, optimizer: torch.optim.Optimizer) -> dict:
    """An Adam state_dict with the parameter groups of optimizer: a checkpoint from before the context had
    its own group keeps one, whose positions run on into the new groups in the same order."""
    saved = state["param_groups"]
    if len(saved) == len(optimizer.param_groups):
        return state
    positions = [i for group in saved for i in group["params"]]
    groups, start = [], 0
    for group in optimizer.param_groups:
        count = len(group["params"])
        groups.append({**saved[0], "params": positions[start:start + count], "lr_scale": group["lr_scale"]})
        start += count
    return {**state, "param_groups": groups}


def restore(run: Run, checkpoint: Checkpoint, config: TrainConfig) -> None:
    """Weights, Adam's moments, counters and this rank's random state, as the checkpoint left them."""
    run.model.load_state_dict(checkpoint.model)
    if checkpoint.optimizer is not None:  # a GPU window may bring back no Adam moments
        # Adam would keep, and update in place, the checkpoint's own tensors: copy them, so the
        # caller's checkpoint stays as it was (bench/train_ablation.py starts several runs from one).
        run.optimizer.load_state_dict(regrouped(copy.deepcopy(checkpoint.optimizer), run.optimizer))
    for group, wanted in zip(run.optimizer.param_groups, parameter_groups(run.model, config)):
        group["lr"] = config.lr * wanted["lr_scale"]  # the new run's learning rates win
        group["lr_scale"] = wanted["lr_scale"]
    run.step, run.pixels_seen, run.seconds_trained = checkpoint.step, checkpoint.pixels_seen, checkpoint.seconds_trained
    saved = distributed.saved_rng(checkpoint.rng, run.ranks)
    if saved is not None:
        restore_rng(saved, run.rng)
    else:  # a rank the saved run did not have
        run.rng = distributed.seed_rank(config.seed, run.ranks, run.step)


def load_data(config: TrainConfig, stems: list[str] | None, ranks: distributed.Ranks, out: Path) -> Data:
    """The photos in memory: training crops on every rank, held-out photos on rank 0."""
    train_paths, val_paths = split_validation(list_images(config.data), config.validation_images, stems)
    quiet = not ranks.leader
    sampler = CropSampler(load_photos(train_paths, config, "training photos", quiet), config.crop,
                          config.min_scale, config.synthetic_share)
    val_photos = load_photos(val_paths, config, "validation photos", quiet) if ranks.leader else []
    seen_photos = (load_photos(held_out_photos(train_paths, len(val_paths)), config, "training photos to validate",
                               quiet) if ranks.leader else [])
    if ranks.leader:
        (out / "validation_images.txt").write_text("".join(f"{p}\n" for p in val_paths))
    return Data(sampler, val_paths, val_photos, seen_photos)


def save(path: Path, run: Run, config: TrainConfig, data: Data) -> None:
    """Every rank hands in its random state (so a resume is exact); rank 0 writes."""
    rng_states = distributed.gather(rng_state(run.rng), run.ranks)
    if run.ranks.leader:
        save_checkpoint(path, Checkpoint(
            model=run.model.state_dict(), optimizer=run.optimizer.state_dict(),
            ema_model=run.average.state_dict() if run.average is not None else None,
            step=run.step, pixels_seen=run.pixels_seen, seconds_trained=run.seconds_trained,
            model_config=run.model.config, train_config=config,
            rng=distributed.merged_rng(rng_states), validation_stems=[p.stem for p in data.held_out]))


def validate_to_csv(run: Run, data: Data, out: Path, bf16: bool) -> None:
    """The held-out photos' rates to validation.csv, and the same for photos it trains on to
    validation_training.csv, at the same levels."""
    for photos, name in ((data.validation, "validation.csv"), (data.seen, "validation_training.csv")):
        if photos:
            for row in validate(run.scored, photos, run.device, bf16):
                append_csv(out / name, {"step": run.step, "pixels_seen": run.pixels_seen, **row})


Losses = Callable[[torch.Tensor, torch.Tensor], dict]  # (crops, levels) -> rd_loss's metrics


def step_losses(trainer: torch.nn.Module, model: HyperpriorModel, config: TrainConfig) -> Losses:
    """What a step minimises on (crops, levels): rd_loss, each crop weighed by config.level_balance.

    trainer is the module to call: model itself, or its DDP wrapper. The GPU script compiles what this returns.
    """
    def losses(x: torch.Tensor, level: torch.Tensor) -> dict:
        lambdas = model.lambdas(level)
        weights = level_weights(lambdas, model.config, config.level_balance)
        return rd_loss(trainer(x, level, bf16=config.bf16), x, lambdas, weights)
    return losses


def sampled_batch(run: Run, sampler: CropSampler, config: TrainConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """Crops (B, 3, crop, crop) in channels_last and their random levels (B,), drawn from run.rng."""
    x = torch.from_numpy(sampler.batch(run.rng, config.batch)).to(run.device)
    x = x.contiguous(memory_format=torch.channels_last)
    level = torch.from_numpy(run.rng.uniform(0, run.model.config.levels - 1, config.batch)).float().to(run.device)
    return x, level


def train_step(run: Run, losses: Losses, batch: tuple[torch.Tensor, torch.Tensor], config: TrainConfig,
               lr: float) -> dict:
    """One optimiser step on batch (crops, levels); returns its metrics.

    The CPU loop and scripts/gpu_train.py both step through here; they differ in where the batch comes
    from and in whether losses is compiled.
    """
    for group in run.optimizer.param_groups:
        group["lr"] = lr * group.get("lr_scale", 1.0)
    x, level = batch
    metrics = losses(x, level)
    run.optimizer.zero_grad(set_to_none=True)
    metrics["objective"].backward()
    torch.nn.utils.clip_grad_norm_(run.model.parameters(), 1.0)
    run.optimizer.step()
    if run.average is not None:
        update_average(run.average, run.model, config.ema_decay)
    run.step += 1
    run.pixels_seen += x.shape[0] * x.shape[2] * x.shape[3] * run.ranks.world
    return metrics


def log_step(window: dict[str, list[float]], metrics: dict, run: Run, bar: tqdm, out: Path) -> None:
    """Collect the step's loss, bpp and PSNR; every LOG_STEPS steps rank 0 shows and writes their means."""
    for key, values in window.items():
        values.append(float(metrics[key].detach().mean()))
    if run.step % LOG_STEPS:
        return
    if run.ranks.leader:
        means = {k: float(np.mean(v)) for k, v in window.items()}
        bar.set_postfix(step=run.step, loss=f"{means['loss']:.3f}", bpp=f"{means['bpp']:.3f}",
                        psnr=f"{means['psnr']:.2f}")
        append_csv(out / "train.csv", {"step": run.step, "pixels_seen": run.pixels_seen, **means})
    for values in window.values():
        values.clear()


def train_for_budget(run: Run, trainer: torch.nn.Module, data: Data, config: TrainConfig, out: Path) -> None:
    """Step until config.minutes (or max_steps) are spent, validating and saving as they fall due."""
    budget = config.minutes * 60
    start_step = run.step
    start = last_save = last_val = time.monotonic()
    window = {"loss": [], "bpp": [], "psnr": []}
    losses = step_losses(trainer, run.model, config)
    bar = tqdm(total=int(budget), unit="s", desc="training", dynamic_ncols=True, mininterval=2,
               bar_format="{l_bar}{bar}| {n_fmt}/{total_fmt}s {postfix}", disable=not run.ranks.leader)
    while True:
        t0 = time.monotonic()
        # Rank 0's clock rules: every rank stops, saves and decays the learning rate together.
        elapsed, due_validation, due_save = distributed.leader_values(
            [t0 - start, t0 - last_val > config.validate_minutes * 60, t0 - last_save > config.checkpoint_minutes * 60],
            run.ranks, run.device)
        if due_validation:
            validate_to_csv(run, data, out, config.bf16)
            last_val = time.monotonic()
        if due_save:
            save(out / "last.ckpt", run, config, data)
            last_save = time.monotonic()
        if elapsed >= budget or (config.max_steps and run.step >= config.max_steps):
            break
        lr = learning_rate(config, run.step, start_step, elapsed)
        metrics = train_step(run, losses, sampled_batch(run, data.sampler, config), config, lr)
        run.seconds_trained += time.monotonic() - t0  # validating and saving count as training time
        log_step(window, metrics, run, bar, out)
        bar.update(min(int(time.monotonic() - start), int(budget)) - bar.n)
    bar.close()


def train(config: TrainConfig, model_config: ModelConfig | None, out_dir: str | Path,
          resume: Checkpoint | None = None) -> Path:
    """Train until config.minutes have passed; return the path of the last checkpoint.

    A resumed run takes its model config from the checkpoint. Under torchrun each process
    runs this with its own rank (see distributed.py).
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if config.threads:
        torch.set_num_threads(config.threads)
    ranks, device = distributed.start(config.device)
    if resume is not None:
        model_config = resume.model_config
    run = start_run(config, model_config or ModelConfig(), resume, ranks, device)
    if config.compile_gdn:
        compile_gdn_layers(run.model)  # the model trained; the moving average, only validated, stays eager
    data = load_data(config, resume.validation_stems if resume is not None else None, ranks, out)
    train_for_budget(run, distributed.wrap(run.model, ranks, device), data, config, out)
    save(out / "last.ckpt", run, config, data)
    validate_to_csv(run, data, out, config.bf16)
    distributed.finish(ranks)
    return out / "last.ckpt"
