"""Pack what a GPU window needs into pack/, sized so that it travels with the working tree.

    python -m scripts.gpu_pack --data ../shared/data/train --checkpoint runs/main/last.ckpt --out pack

pack/ (git-ignored) holds:
  start.pt      the checkpoint with its weights in bf16 (7.8 MiB for N=96, M=160; rounding moves
                each weight by at most 0.4%, about what a few Adam steps do) and without moving
                average or Adam moments: on the device the average restarts from these weights
                (its memory of about 1/(1 - ema_decay) steps is short beside a window's ten
                thousand) and Adam from zero. Without --checkpoint a fresh model starts.
  photos/       JPEG, 4:4:4, long side <= 512, at the highest of --quality (then 5 lower, down to
                --min-quality) that fits them all, else as many as fit in a fixed shuffle; the
                checkpoint's held-out photos and photos too small for --crop are left out. Quality
                trades against count: q95 keeps targets near 47 dB (JPEG noise the model would
                otherwise learn to code at its top rates), q90 near 39 dB with 40% more photos.
  synthetic/    a bank of synthetic graphics (aecodec/train/synthetic.py, drawn here once with this
                machine's fonts), PNG, --synthetic-side square; the device crops them like photos.

What travels is the git working tree (about 15 MB, 13 MB of it weights/) plus pack/, at most
64 MiB: photos get whatever the rest leaves, and the total is checked before writing.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import shutil
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from aecodec.train.checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from aecodec.train.data import list_images
from aecodec.train.synthetic import synthetic_crop

from .gpu_limits import TRAVEL_LIMIT, TRAVEL_MARGIN, MiB, check_travel, needed_rate, tree_bytes

START_FILE = "start.pt"


def start_weights(checkpoint_path: Path, dtype: torch.dtype) -> Checkpoint:
    """What the device needs of a checkpoint: the weights (one copy), configs, counters, held-out stems."""
    checkpoint = load_checkpoint(checkpoint_path)
    weights = {k: v.to(dtype) if v.is_floating_point() else v for k, v in checkpoint.model.items()}
    return replace(checkpoint, model=weights, optimizer=None, ema_model=None)


def synthetic_bank(count: int, side: int, seed: int) -> list[bytes]:
    rng = np.random.default_rng(seed)
    bank = []
    for _ in range(count):
        buffer = io.BytesIO()
        Image.fromarray(synthetic_crop(rng, side)).save(buffer, "PNG", compress_level=9)
        bank.append(buffer.getvalue())
    return bank


def usable_photos(data: Path, held_out: set[str], side: int, crop: int) -> list[tuple[str, Image.Image]]:
    """(stem, RGB image with long side <= side), in a fixed shuffle so a cut leaves no source out whole."""
    paths = sorted(list_images(data), key=lambda p: hashlib.sha256(p.name.encode()).hexdigest())
    photos = []
    for path in paths:
        if path.stem in held_out:
            continue
        with Image.open(path) as image:
            image = image.convert("RGB")
        image.thumbnail((side, side), Image.Resampling.LANCZOS)
        if min(image.size) >= crop:
            photos.append((path.stem, image))
    return photos


def encoded_photos(photos: list[tuple[str, Image.Image]], budget: int, quality: int,
                   min_quality: int) -> tuple[list[tuple[str, bytes]], int]:
    """JPEG bytes at the best quality that fits every photo, else the first that fit at min_quality."""
    while True:
        encoded = []
        for stem, image in photos:
            buffer = io.BytesIO()
            image.save(buffer, "JPEG", quality=quality, subsampling=0)
            encoded.append((stem, buffer.getvalue()))
        if sum(len(data) for _, data in encoded) <= budget or quality - 5 < min_quality:
            break
        quality -= 5
    kept, total = [], 0
    for stem, data in encoded:
        if total + len(data) > budget:
            break
        kept.append((stem, data))
        total += len(data)
    return kept, quality


def mean_psnr(photos: list[tuple[str, Image.Image]], kept: list[tuple[str, bytes]]) -> float:
    """How far the packed JPEGs are from what the CPU run trains on: the noise floor of the targets."""
    values = []
    for (_, image), (_, data) in zip(photos, kept):
        error = np.asarray(image, np.float64) - np.asarray(Image.open(io.BytesIO(data)), np.float64)
        values.append(10 * np.log10(255**2 / max(np.mean(error**2), 1e-10)))
    return float(np.mean(values)) if values else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="../shared/data/train")
    parser.add_argument("--checkpoint", help="the run to continue (its weights travel); none: a fresh model")
    parser.add_argument("--out", default="pack")
    parser.add_argument("--max-mb", type=float, default=None, help="cap on the photos (default: what fits)")
    parser.add_argument("--side", type=int, default=512, help="long side of the packed photos")
    parser.add_argument("--crop", type=int, default=256, help="the GPU run's crop: smaller photos stay out")
    parser.add_argument("--quality", type=int, default=95)
    parser.add_argument("--min-quality", type=int, default=90)
    parser.add_argument("--synthetic", type=int, default=256, help="synthetic pictures in the bank (0: none)")
    parser.add_argument("--synthetic-side", type=int, default=384)
    parser.add_argument("--weights-dtype", choices=["bfloat16", "float32"], default="bfloat16",
                        help="float32 carries the weights exactly, at twice the size (15.6 MiB for N=96, M=160)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    out = Path(args.out)
    for stale in ("photos", "synthetic"):  # an earlier pack's leftovers would travel too
        shutil.rmtree(out / stale, ignore_errors=True)
    (out / START_FILE).unlink(missing_ok=True)
    out.mkdir(parents=True, exist_ok=True)
    held_out: set[str] = set()
    if args.checkpoint:
        start = start_weights(Path(args.checkpoint), getattr(torch, args.weights_dtype))
        held_out = set(start.validation_stems or [])
        save_checkpoint(out / START_FILE, start)
        print(f"start: step {start.step}, {start.pixels_seen / 1e9:.2f} Gpx, weights in {args.weights_dtype}, "
              f"{(out / START_FILE).stat().st_size / MiB:.1f} MiB")
    bank = synthetic_bank(args.synthetic, args.synthetic_side, args.seed)
    if bank:
        (out / "synthetic").mkdir()
        for i, data in enumerate(bank):
            (out / "synthetic" / f"synthetic{i:04d}.png").write_bytes(data)
        print(f"synthetic: {len(bank)} pictures of {args.synthetic_side}x{args.synthetic_side}, "
              f"{sum(map(len, bank)) / MiB:.1f} MiB")

    room = TRAVEL_LIMIT - TRAVEL_MARGIN - tree_bytes() - sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    budget = min(room, int(args.max_mb * 1e6)) if args.max_mb else room
    if budget <= 0:
        sys.exit(f"no room for photos: the tree and start weights already take {(TRAVEL_LIMIT - room) / MiB:.1f} MiB")
    photos = usable_photos(Path(args.data), held_out, args.side, args.crop)
    kept, quality = encoded_photos(photos, budget, args.quality, args.min_quality)
    (out / "photos").mkdir()
    for stem, data in kept:
        (out / "photos" / f"{stem}.jpg").write_bytes(data)
    pixels = sum(image.width * image.height for _, image in photos[:len(kept)])
    print(f"photos: {len(kept)} of {len(photos)} usable (held out {len(held_out)}), JPEG q{quality} "
          f"({mean_psnr(photos, kept):.1f} dB against the sources), {sum(len(d) for _, d in kept) / MiB:.1f} MiB, "
          f"{pixels / 1e6:.0f} Mpx: 50 Gpx is {50e9 / max(pixels, 1):.0f} passes over them")
    sizes = check_travel([out])
    print("travels: " + ", ".join(f"{k} {v / MiB:.1f} MiB" for k, v in sizes.items())
          + f" (limit {TRAVEL_LIMIT // MiB} MiB)")
    print(f"50 Gpx in a 9-minute window needs {needed_rate(9) / 1e6:.1f} MPx/s")


if __name__ == "__main__":
    main()
