"""Is it steps or data? A checkpoint's rates on photos it trains on beside the held-out ones, at the same levels.

    nice -n 10 python -m bench.train_gap --checkpoint runs/main/last.ckpt      # bench/results/train_gap.json

Issue 22, item 6: each time a model ships, the loss on training photos beside the held-out loss at
the same lambda. The training loop now logs the same pair (validation.csv, validation_training.csv);
this measures it for any checkpoint, so a run that predates the log gets its figure too. Both sets are
8 photos validated exactly as the loop validates (moving average, centre crops of at most 512, hard
rounding): the held-out ones are the checkpoint's own, the training ones the first 8 of the rest by
name hash, as the loop picks them. A gap (held-out loss minus training loss, relative) that grows from
one shipped model to the next says more, cleaner photographs would buy more than more steps.
Results are appended under the checkpoint's step; earlier entries are kept.
"""

from __future__ import annotations

import argparse
import json
from datetime import datetime, timezone
from pathlib import Path

import torch

from aecodec.train.checkpoint import load_checkpoint, model_from_checkpoint
from aecodec.train.data import held_out_photos, list_images, load_photo, split_validation
from aecodec.train.loop import validate


def loss(row: dict, lambda_: float) -> float:
    """lambda * 255^2 * MSE + bpp, the training objective, from validate's bpp and PSNR."""
    mse = 10 ** (-row["psnr"] / 10)
    return lambda_ * 255 ** 2 * mse + row["bpp"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", type=Path, default=Path("runs/main/last.ckpt"))
    parser.add_argument("--data", type=Path, default=Path("../shared/data/train"))
    parser.add_argument("--out", type=Path, default=Path("bench/results/train_gap.json"))
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    checkpoint = load_checkpoint(args.checkpoint)
    model = model_from_checkpoint(checkpoint).eval()
    training, held_out = split_validation(list_images(args.data), 8, checkpoint.validation_stems)
    seen = held_out_photos(training, len(held_out))
    sets = {}
    for name, paths in (("held_out", held_out), ("training", seen)):
        photos = [p for p in (load_photo(path, 1280, 256) for path in paths) if p is not None]
        sets[name] = validate(model, photos, "cpu", bf16=False)
    rows = []
    for held, trained in zip(sets["held_out"], sets["training"]):
        level = held["level"]
        lambda_ = float(torch.exp(model.interpolate(model.log_lambda, torch.tensor([level]))))
        held_loss, train_loss = loss(held, lambda_), loss(trained, lambda_)
        rows.append({"level": level, "lambda": lambda_, "held_out": held, "training": trained,
                     "held_out_loss": held_loss, "training_loss": train_loss,
                     "gap_percent": 100 * (held_loss / train_loss - 1)})
    entry = {"date": datetime.now(timezone.utc).isoformat(timespec="seconds"), "step": checkpoint.step,
             "pixels_seen": checkpoint.pixels_seen, "held_out_photos": [p.stem for p in held_out],
             "training_photos": [p.stem for p in seen], "levels": rows}
    results = json.loads(args.out.read_text()) if args.out.exists() else {}
    results[str(checkpoint.step)] = entry
    args.out.write_text(json.dumps(results, indent=1) + "\n")
    for row in rows:
        print(f"level {row['level']:.2f}: held-out loss {row['held_out_loss']:.4f}, "
              f"training {row['training_loss']:.4f}, gap {row['gap_percent']:+.1f}%")


if __name__ == "__main__":
    main()
