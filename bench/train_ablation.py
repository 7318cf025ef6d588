"""Which training changes learn fastest here: short runs from one checkpoint, at equal training pixels.

    python -m bench.train_ablation --start runs/ablation/start.ckpt --steps 1500 \\
        --out bench/results/train_ablation.json
    python -m bench.train_ablation --start runs/main/last.ckpt --steps 1500 \\
        --variants "long run,long run lr1e-5 cool-down" --out bench/results/train_cooldown.json
    python -m bench.train_ablation --start runs/balance/start.ckpt --steps 1500 --runs runs/balance \\
        --variants "long run,long run level-balance 0.5" --out bench/results/train_balance.json

Every variant resumes the same checkpoint, trains the same number of pixels (steps x batch x crop^2
is held fixed, so a 256 crop gets a quarter of the batch), and is then scored on the run's held-out
training photos (never Kodak) by the rate-distortion loss lambda * 255^2 * MSE + bpp with rounded
latents, at fixed lambdas. Run it with nothing else training: it is the training while it runs, and
its seconds per step mean something only on a quiet machine.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch

from aecodec.refine_torch import model as model_module
from aecodec.train import loop
from aecodec.train.checkpoint import load_checkpoint, model_from_checkpoint
from aecodec.train.data import list_images, split_validation
from aecodec.train.loss import rd_loss

EVAL_LEVELS = (1.0, 3.5, 6.0)  # fixed rates the variants are scored at: low, middle, high
PIXELS_PER_STEP = 16 * 128 * 128

LONG_RUN = {"lr": 1e-4, "crop": 256, "batch": 4, "ema_decay": 0.999, "synthetic_share": 0.15}

# name -> (TrainConfig changes, whether the model's bounds pass gradient)
VARIANTS = {
    "clamp-bounds lr1e-4": ({"lr": 1e-4}, False),
    "bounds lr1e-4": ({"lr": 1e-4}, True),
    "bounds lr3e-4": ({"lr": 3e-4}, True),
    "bounds lr1e-4 crop256": ({"lr": 1e-4, "crop": 256, "batch": 4}, True),
    "bounds lr1e-4 ema0.999": ({"lr": 1e-4, "ema_decay": 0.999}, True),
    "bounds lr1e-4 decay20%": ({"lr": 1e-4, "lr_decay_fraction": 0.2}, True),
    "bounds lr1e-4 synthetic15%": ({"lr": 1e-4, "synthetic_share": 0.15}, True),
    # Second round: 256 crops won the first by far, so the rest is measured on top of them.
    "bounds lr1e-4 crop512": ({"lr": 1e-4, "crop": 512, "batch": 1}, True),
    "bounds lr1e-4 crop256 ema0.999": ({"lr": 1e-4, "crop": 256, "batch": 4, "ema_decay": 0.999}, True),
    "bounds lr1e-4 crop256 synthetic15%": ({"lr": 1e-4, "crop": 256, "batch": 4, "synthetic_share": 0.15}, True),
    # Third round, from a late checkpoint of the long run (--out bench/results/train_cooldown.json):
    # does a spell at a tenth of the learning rate before shipping pay, against the same pixels at the
    # long run's own rate? The first is also the long run's next stretch, so it is not spent twice.
    "long run": (LONG_RUN, True),
    "long run lr1e-5 cool-down": ({**LONG_RUN, "lr": 1e-5}, True),
    # Fourth round (--out bench/results/train_balance.json): a crop's loss grows about as sqrt(lambda), so
    # the top rates steer the gradient; does weighing each crop by (lambda / mid lambda) ** -0.5 pay?
    "long run level-balance 0.5": ({**LONG_RUN, "level_balance": 0.5}, True),
}


def load_photos_once():
    """Every variant trains on the same photos: decode them once per process, not once per variant."""
    cache, load = {}, loop.load_photos

    def cached(paths, config, *args, **kwargs):
        key = (tuple(paths), config.max_side, config.crop)
        if key not in cache:
            cache[key] = load(paths, config, *args, **kwargs)
        return cache[key]
    return cached


def plain_clamp(x: torch.Tensor, bound: float) -> torch.Tensor:
    """The bound as it was before the fix: no gradient below it."""
    return x.clamp(min=bound)


@torch.no_grad()
def score(checkpoint_path: Path, photos: list[np.ndarray]) -> dict:
    """Mean RD loss, bpp and PSNR per fixed level on held-out photos, latents rounded."""
    network = model_from_checkpoint(load_checkpoint(checkpoint_path)).eval()
    rows = {}
    for level in EVAL_LEVELS:
        losses, bpps, psnrs = [], [], []
        for photo in photos:
            x = torch.from_numpy(loop.centre_crop(photo, loop.VALIDATION_SIDE).transpose(2, 0, 1).copy())
            x = (x.float() / 255)[None]
            lv = torch.full((1,), level)
            out = network(x, lv, noise=False)
            out["x_hat"] = out["x_hat"].clamp(0, 1)
            metrics = rd_loss(out, x, network.lambdas(lv))
            losses.append(metrics["loss"].item())
            bpps.append(metrics["bpp"].item())
            psnrs.append(metrics["psnr"].item())
        rows[f"{level:g}"] = {"lambda": float(network.lambdas(torch.tensor([level]))[0]),
                              "rd_loss": float(np.mean(losses)), "bpp": float(np.mean(bpps)),
                              "psnr": float(np.mean(psnrs))}
    return rows


def run_variant(name: str, changes: dict, gradient_bounds: bool, start: Path, steps: int,
                out_root: Path, threads: int) -> dict:
    checkpoint = load_checkpoint(start)
    config = replace(checkpoint.train_config, **changes)
    assert config.batch * config.crop ** 2 == PIXELS_PER_STEP, f"{name}: pixels per step differ"
    config = replace(config, max_steps=checkpoint.step + steps, minutes=1e6, threads=threads,
                     checkpoint_minutes=1e6, validate_minutes=1e6, seed=1)
    run_dir = out_root / name.replace(" ", "_")
    model_module.lower_bound, saved = (model_module.lower_bound if gradient_bounds else plain_clamp,
                                       model_module.lower_bound)
    try:
        began = time.monotonic()
        path = loop.train(config, None, run_dir, resume=checkpoint)
        wall = time.monotonic() - began
    finally:
        model_module.lower_bound = saved
    seconds = load_checkpoint(path).seconds_trained - checkpoint.seconds_trained
    return {"name": name, "changes": changes, "gradient_bounds": gradient_bounds, "steps": steps,
            "pixels": steps * PIXELS_PER_STEP, "seconds_per_step": seconds / steps, "wall_seconds": wall,
            "checkpoint": str(path)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--start", type=Path, required=True, help="checkpoint every variant resumes")
    parser.add_argument("--steps", type=int, default=1500, help="steps of 16 x 128^2 pixels per variant")
    parser.add_argument("--variants", default=",".join(VARIANTS), help="comma-separated names")
    parser.add_argument("--runs", type=Path, default=Path("runs/ablation"))
    parser.add_argument("--out", type=Path, default=Path("bench/results/train_ablation.json"))
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    loop.load_photos = load_photos_once()
    start = load_checkpoint(args.start)
    _, held_out = split_validation(list_images(start.train_config.data), 0, start.validation_stems)
    photos = loop.load_photos(held_out, start.train_config, "held-out photos")
    results = json.loads(args.out.read_text()) if args.out.exists() else {"variants": []}
    results.update({"start_checkpoint_step": start.step, "start_pixels_seen": start.pixels_seen,
                    "held_out_photos": [p.name for p in held_out], "eval_levels": list(EVAL_LEVELS),
                    "torch": torch.__version__, "threads": args.threads})
    if not any(v["name"] == "start" for v in results["variants"]):
        results["variants"].append({"name": "start", "steps": 0, "pixels": 0, "scores": score(args.start, photos)})
    for name in args.variants.split(","):
        changes, gradient_bounds = VARIANTS[name]
        row = run_variant(name, changes, gradient_bounds, args.start, args.steps, args.runs, args.threads)
        row["scores"] = score(Path(row["checkpoint"]), photos)
        row["date"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
        results["variants"] = [v for v in results["variants"] if v["name"] != name] + [row]
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(results, indent=2) + "\n")
        print(name, {k: round(v["rd_loss"], 4) for k, v in row["scores"].items()}, flush=True)


if __name__ == "__main__":
    main()
