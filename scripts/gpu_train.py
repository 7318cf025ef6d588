"""One GPU window: train from pack/ until the window's clock runs out, then send the checkpoint back in pieces.

    python -m scripts.gpu_train --pack pack --out "$OUT" --minutes 9 --device cuda   # gpu_train.sh runs this

Every second counts against the window from the moment gpu_train.sh started: loading torch,
decoding the pack, compiling, training, and cutting the checkpoint (--save-seconds are kept
for that). The pack is decoded once into one uint8 tensor on the device and cropped there
(gpu_crops.py); steps run under bf16 autocast in channels_last, their losses optionally compiled.
Each step is aecodec/train/loop.py's train_step, the CPU loop's own.

The checkpoint is aecodec/train/checkpoint.py's and its train_config is the one the CPU run had (with
this window recorded in extra["gpu_windows"]), so that after `python -m scripts.gpu_join`
`aecodec train --resume` continues on the CPU with the CPU's batch, crop and learning rate.
"""

from __future__ import annotations

import argparse
import copy
import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from aecodec.model_config import ModelConfig
from aecodec.refine_torch.model import HyperpriorModel
from aecodec.train.checkpoint import Checkpoint, load_checkpoint, rng_state
from aecodec.train.config import TrainConfig
from aecodec.train.data import list_images, split_validation
from aecodec.train.distributed import Ranks
from aecodec.train.loop import Run, learning_rate, parameter_groups, step_losses, train_step

from .gpu_crops import DeviceCrops
from .gpu_limits import TARGET_GIGAPIXELS, MiB, needed_rate
from .gpu_pack import START_FILE
from .gpu_pieces import PIECE_BYTES, fitted_checkpoint, write_pieces

LOG_SECONDS = 15


class Window:
    """The window's clock, started by gpu_train.sh before Python loaded; training ends save_seconds early."""

    def __init__(self, started_at: float, minutes: float, save_seconds: float):
        self.started_at = started_at
        self.training_ends = started_at + minutes * 60 - save_seconds

    def elapsed(self) -> float:
        return time.time() - self.started_at

    def left(self) -> float:
        return self.training_ends - time.time()

    def log(self, message: str) -> None:
        print(f"[{self.elapsed():6.1f} s] {message}", flush=True)


def decode_all(paths: list[Path]) -> list[np.ndarray]:
    """Decode in threads: Pillow lets go of the GIL while it decodes."""
    def decode(path):
        with Image.open(path) as image:
            return np.asarray(image.convert("RGB"), dtype=np.uint8)
    with ThreadPoolExecutor(min(16, os.cpu_count() or 1)) as pool:
        return list(pool.map(decode, paths))


def load_start(pack: Path) -> Checkpoint | None:
    """The packed start (weights back in fp32), or None for a fresh model."""
    path = pack / START_FILE
    if not path.exists():
        return None
    start = load_checkpoint(path)
    return replace(start, model={k: v.float() if v.is_floating_point() else v for k, v in start.model.items()})


def on_cpu(value):
    if isinstance(value, torch.Tensor):
        return value.detach().cpu()
    if isinstance(value, dict):
        return {k: on_cpu(v) for k, v in value.items()}
    if isinstance(value, list):
        return [on_cpu(v) for v in value]
    return value


def portable_optimizer_state(optimizer: torch.optim.Optimizer) -> dict:
    """Adam's state on the CPU, with this device's kernel choices dropped so the CPU run picks its own."""
    state = on_cpu(optimizer.state_dict())
    for group in state["param_groups"]:
        group.update(fused=None, foreach=None, capturable=False)
    return state


class Trainer:
    """The run (model, optimizer, moving average, counters) and crops on the device; step() is one training step."""

    def __init__(self, start: Checkpoint | None, model_config: ModelConfig, config: TrainConfig,
                 crops: DeviceCrops, use_compile: bool):
        device, cuda = config.device, config.device.startswith("cuda")
        model = HyperpriorModel(model_config)
        if start is not None:
            model.load_state_dict(start.model)
        model = model.to(device, memory_format=torch.channels_last)
        average = copy.deepcopy(model).requires_grad_(False) if config.ema_decay > 0 else None
        optimizer = torch.optim.Adam(parameter_groups(model, config), lr=config.lr, fused=cuda)
        step = start.step if start else 0
        # run.rng goes unused here: crops and levels come from self.generator, on the device.
        self.run = Run(model, optimizer, np.random.default_rng([config.seed, step]), Ranks(), device, average,
                       step=step, pixels_seen=start.pixels_seen if start else 0)
        self.config, self.levels, self.crops = config, model_config.levels, crops
        self.generator = torch.Generator(device=device).manual_seed(config.seed + step)
        self.eager_losses = step_losses(model, model, config)
        self.losses = torch.compile(self.eager_losses) if use_compile else self.eager_losses

    @property
    def compiled(self) -> bool:
        return self.losses != self.eager_losses

    def step(self, lr: float) -> torch.Tensor:
        """One step; (loss, bpp, psnr) stay on the device, so nothing waits for the GPU here."""
        config = self.config
        x = self.crops.batch(config.batch, self.generator)
        level = torch.rand(config.batch, device=config.device, generator=self.generator) * (self.levels - 1)
        metrics = train_step(self.run, self.losses, (x, level), config, lr)
        # What is minimised is also what is logged here: the loss itself unless --level-balance weighs it.
        return torch.stack([metrics["objective"].detach(), metrics["bpp"].mean(), metrics["psnr"].mean()])

    def first_step(self, lr: float, window: Window) -> torch.Tensor:
        """The first step compiles (when asked) and tunes cuDNN; a compiler failure must not cost the window."""
        try:
            return self.step(lr)
        except Exception as error:
            if not self.compiled:
                raise
            window.log(f"torch.compile failed ({type(error).__name__}: {str(error)[:300]}); training eagerly")
            self.losses = self.eager_losses
            return self.step(lr)

    def snapshot(self) -> dict:
        """A copy on the device (four copies of the weights): cheap beside what a divergence would lose."""
        run = self.run
        return copy.deepcopy({"model": run.model.state_dict(), "optimizer": run.optimizer.state_dict(),
                              "average": run.average.state_dict() if run.average is not None else None,
                              "step": run.step, "pixels_seen": run.pixels_seen})

    def restore(self, kept: dict) -> None:
        run = self.run
        run.model.load_state_dict(kept["model"])
        run.optimizer.load_state_dict(kept["optimizer"])
        if run.average is not None:
            run.average.load_state_dict(kept["average"])
        run.step, run.pixels_seen = kept["step"], kept["pixels_seen"]

    def synchronize(self) -> None:
        if self.config.device.startswith("cuda"):
            torch.cuda.synchronize()


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pack", default="pack")
    parser.add_argument("--out", default=os.environ.get("OUT", "out"))
    parser.add_argument("--minutes", type=float, default=9.0, help="the whole window, saving included")
    parser.add_argument("--started-at", type=float, default=None, help="when the window began (epoch seconds)")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--crop", type=int, default=256)
    parser.add_argument("--compile", choices=["auto", "1", "0"], default="auto", help="torch.compile; auto: on CUDA")
    parser.add_argument("--bf16", choices=["auto", "1", "0"], default="auto", help="bf16 autocast; auto: on CUDA")
    parser.add_argument("--lr", type=float, default=None, help="default: the start checkpoint's")
    parser.add_argument("--ema-decay", type=float, default=None, help="default: the start checkpoint's")
    parser.add_argument("--lr-decay-fraction", type=float, default=None, help="default: the start checkpoint's")
    parser.add_argument("--synthetic-share", type=float, default=None,
                        help="share of crops from pack/synthetic (default: the start checkpoint's; 0 skips them)")
    parser.add_argument("--save-seconds", type=float, default=20.0, help="kept back at the end for the checkpoint")
    parser.add_argument("--min-steps", type=int, default=1, help="steps taken even when the window is spent")
    parser.add_argument("--piece-mb", type=float, default=PIECE_BYTES / MiB, help="checkpoint piece size, MiB")
    parser.add_argument("--target-minutes", type=float, default=9.0, help="the window the needed rate is stated for")
    return parser.parse_args()


def window_configs(start: Checkpoint | None, args: argparse.Namespace) -> tuple[ModelConfig, TrainConfig, TrainConfig]:
    """The model's config, the CPU run's training config, and this window's (the CPU's with the GPU's batch)."""
    cuda = args.device.startswith("cuda")
    model_config = start.model_config if start else ModelConfig()
    cpu_config = start.train_config if start else TrainConfig()
    chosen = {"lr": args.lr, "ema_decay": args.ema_decay, "lr_decay_fraction": args.lr_decay_fraction,
              "synthetic_share": args.synthetic_share}
    config = replace(cpu_config, batch=args.batch, crop=args.crop, device=args.device,
                     bf16=args.bf16 == "1" or (args.bf16 == "auto" and cuda),
                     **{k: v for k, v in chosen.items() if v is not None})
    return model_config, cpu_config, config


def pack_crops(pack: Path, start: Checkpoint | None, config: TrainConfig) -> tuple[DeviceCrops, list[str]]:
    """The pack decoded onto the device, and the stems the CPU run holds out."""
    paths = list_images(pack / "photos")
    if start:
        stems = list(start.validation_stems or [])  # gpu_pack.py left them out already
        train_paths = [p for p in paths if p.stem not in set(stems)]
    else:
        train_paths, held_out = split_validation(paths, config.validation_images)
        stems = [p.stem for p in held_out]
    synthetic = sorted((pack / "synthetic").glob("*.png")) if (pack / "synthetic").is_dir() else []
    crops = DeviceCrops(decode_all(train_paths), decode_all(synthetic), config.crop, config.min_scale,
                        config.synthetic_share, config.device)
    return crops, stems


def train_window(trainer: Trainer, window: Window, min_steps: int) -> tuple[float, float, float]:
    """Step until the window's training time is spent (min_steps at least); (training, first step) seconds and
    the steady rate in pixels per second after the first step."""
    run, config = trainer.run, trainer.config
    start_step = run.step
    # The learning rate decays (if asked) over the last part of the time left when training starts.
    schedule = replace(config, max_steps=0, minutes=max(window.left(), 1e-3) / 60)
    training_started = time.time()
    totals = trainer.first_step(learning_rate(schedule, run.step, start_step, 0.0), window)
    trainer.synchronize()
    first_step_seconds = time.time() - training_started
    window.log(f"first step{' (compile included)' if trainer.compiled else ''}: {first_step_seconds:.1f} s")
    pixels_per_step = config.batch * config.crop * config.crop
    steady_from, steady_pixels = time.time(), 0
    logged_steps, next_log = 1, time.time() + LOG_SECONDS
    last_finite = None  # the run at the last log line with a finite loss: a divergence returns to it
    while window.left() > 0 or run.step - start_step < min_steps:
        totals += trainer.step(learning_rate(schedule, run.step, start_step, time.time() - training_started))
        logged_steps += 1
        steady_pixels += pixels_per_step
        if time.time() >= next_log:
            loss, bpp, psnr = (totals / logged_steps).tolist()  # the only sync: once per log line
            rate = steady_pixels / (time.time() - steady_from)
            window.log(f"step {run.step}, {(run.step - start_step) * pixels_per_step / 1e9:.2f} Gpx, "
                       f"{rate / 1e6:.1f} MPx/s, loss {loss:.3f}, bpp {bpp:.3f}, psnr {psnr:.2f}")
            if not np.isfinite(loss):
                if last_finite is None:
                    raise FloatingPointError("the loss is not finite and no earlier weights were kept")
                trainer.restore(last_finite)
                window.log(f"loss not finite: back to step {run.step}, where the window ends")
                break
            last_finite = trainer.snapshot()
            totals, logged_steps, next_log = torch.zeros_like(totals), 0, time.time() + LOG_SECONDS
    trainer.synchronize()
    steady_rate = steady_pixels / max(time.time() - steady_from, 1e-9)
    return time.time() - training_started, first_step_seconds, steady_rate


def main() -> None:
    args = parse_args()
    window = Window(args.started_at or time.time(), args.minutes, args.save_seconds)
    cuda = args.device.startswith("cuda")
    if cuda:
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
        window.log(f"device: {torch.cuda.get_device_name()}, torch {torch.__version__}")
    start = load_start(Path(args.pack))
    model_config, cpu_config, config = window_configs(start, args)
    start_step, start_pixels = (start.step, start.pixels_seen) if start else (0, 0)
    torch.manual_seed(config.seed + start_step)  # another window draws other crops and other noise
    crops, stems = pack_crops(Path(args.pack), start, config)
    window.log(f"pack decoded: {crops.photo_count} photos, {crops.synthetic_count} synthetic pictures "
               f"(share {crops.synthetic_share:g}), {crops.nbytes / 2**30:.2f} GiB on {config.device}")
    trainer = Trainer(start, model_config, config, crops, args.compile == "1" or (args.compile == "auto" and cuda))
    training_started = time.time()
    training_seconds, first_step_seconds, steady_rate = train_window(trainer, window, args.min_steps)
    run = trainer.run
    steps, window_pixels = run.step - start_step, run.pixels_seen - start_pixels

    record = {"steps": steps, "gigapixels": window_pixels / 1e9, "batch": config.batch,
              "crop": config.crop, "lr": config.lr, "bf16": config.bf16, "compiled": trainer.compiled,
              "device": torch.cuda.get_device_name() if cuda else config.device,
              "steady_mpx_per_s": steady_rate / 1e6, "training_seconds": training_seconds}
    extra = {**cpu_config.extra, "gpu_windows": [*cpu_config.extra.get("gpu_windows", []), record]}
    # The CPU keeps its own batch, crop and learning rate; what the model is trained to be goes with it.
    returned_config = replace(cpu_config, ema_decay=config.ema_decay, synthetic_share=config.synthetic_share,
                              extra=extra)
    checkpoint = Checkpoint(
        model=on_cpu(run.model.state_dict()), optimizer=portable_optimizer_state(run.optimizer),
        ema_model=on_cpu(run.average.state_dict()) if run.average is not None else None,
        step=run.step, pixels_seen=run.pixels_seen,
        seconds_trained=(start.seconds_trained if start else 0.0) + training_seconds,
        model_config=model_config, train_config=returned_config,
        rng=rng_state(np.random.default_rng([config.seed, run.step])), validation_stems=stems,
    )
    piece_bytes = int(args.piece_mb * MiB)
    data, kept = fitted_checkpoint(checkpoint, piece_bytes)
    pieces = write_pieces(data, Path(args.out), {"step": run.step, "pixels_seen": run.pixels_seen, "kept": kept},
                          piece_bytes)
    window.log(f"checkpoint: step {run.step}, {len(data) / MiB:.1f} MiB in {len(pieces)} pieces, {kept}")
    report(window, args, training_started, training_seconds, first_step_seconds, window_pixels, steady_rate,
           f"{steps} steps of {config.batch}x{config.crop}x{config.crop}", cuda)


def report(window: Window, args: argparse.Namespace, training_started: float, training_seconds: float,
           first_step_seconds: float, window_pixels: int, steady_rate: float, steps: str, cuda: bool) -> None:
    """Where the window's seconds went, and what rate 50 Gpx in the target window asks for."""
    before = training_started - window.started_at
    steady_seconds = training_seconds - first_step_seconds
    overhead = window.elapsed() - steady_seconds  # everything but steady training
    target = args.target_minutes * 60
    print(f"window: {window.elapsed():.0f} s of {args.minutes * 60:.0f} s; before training {before:.1f} s, "
          f"first step {first_step_seconds:.1f} s, steady training {steady_seconds:.1f} s, "
          f"saving {window.elapsed() - before - training_seconds:.1f} s")
    print(f"trained {steps}: {window_pixels / 1e9:.3f} Gpx, {steady_rate / 1e6:.2f} MPx/s after the first step"
          + (f", peak GPU memory {torch.cuda.max_memory_allocated() / 2**30:.1f} GiB" if cuda else ""))
    print(f"{TARGET_GIGAPIXELS} Gpx in a {args.target_minutes:g}-minute window needs "
          f"{needed_rate(args.target_minutes) / 1e6:.1f} MPx/s over the window"
          + (f", {TARGET_GIGAPIXELS * 1e9 / (target - overhead) / 1e6:.1f} MPx/s while training after this "
             f"run's {overhead:.0f} s of overhead" if overhead < target else "")
          + f"; this run's rate would deliver {max(target - overhead, 0) * steady_rate / 1e9:.2f} Gpx")


if __name__ == "__main__":
    main()
