"""How close each image comes to a detail correction, and whether a cheap proxy can tell before the synthesis.

    python -m bench.detail_skip                  # bench/results/detail_skip.json

Issue 23 asks to skip the detail pass (one synthesis and aecodec/detail_choice.choose) where no
correction would be chosen, decided before the synthesis. For each image and quality where no block
can be held (step // 2 > MAX_HELD_ERROR, so only the rate-distortion rule can pick a block) this
records the margin: the smallest factor k on the distortion weight (choose's lambda_scale
= LAMBDA_SCALE * k, the step unchanged) at which choose picks a block. k = 1: the full pass chooses a
correction now; k = 1.5: it would if distortion counted 1.5 times as much. Beside it, the same margin
with a cheap stand-in for the decoded pixels (the original blurred by a 3x3 box, no synthesis), the
kind of proxy a skip rule would use. The rule may skip only where the true margin is above 1, and
only with a proxy whose margin stays above 1 on every image whose true margin is 1.

Sets: the run's held-out training photos plus two of each training source (tuning), bench/graphics.py's
pictures, and Kodak (checked, never tuned on). Rate and distortion only, so it may run beside training.
"""

from __future__ import annotations

import argparse
import json
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
from PIL import Image

from aecodec import detail_choice, transform
from aecodec.bench.graphics import GRAPHICS
from aecodec.codec import Codec
from aecodec.quality import rate_tradeoff

FACTORS = (0.25, 0.5, 1, 1.25, 1.5, 2, 3, 4, 6, 8, 16)
QUALITIES = {"train": (30, 40, 45, 50, 55, 60, 65, 70), "graphics": (30, 40, 45, 50, 55, 60, 65, 70),
             "kodak": (30, 45, 50, 60)}
TRAIN = Path("../shared/data/train")
SOURCES = ("bsds500", "elementary", "mcmaster", "skimage", "sun80", "urban100", "wiki")


def training_photos(listed: Path) -> dict[str, np.ndarray]:
    """The held-out photos, and two more of each source, picked by position (never Kodak)."""
    paths = [Path(line.strip()) for line in listed.read_text().splitlines() if line.strip()]
    for source in SOURCES:
        files = sorted(f for f in (TRAIN / source).iterdir() if f.suffix in (".png", ".jpg"))
        paths += [f for f in files[1::max(1, len(files) // 2)][:2] if f not in paths]
    return {p.stem: np.asarray(Image.open(p).convert("RGB")) for p in paths}


def box3(rgb: np.ndarray) -> np.ndarray:
    """The 3x3 box blur of uint8 (H, W, 3), edges repeated, rounded back to uint8."""
    padded = np.pad(rgb.astype(np.float32), ((1, 1), (1, 1), (0, 0)), mode="edge")
    rows = padded[:-2] + padded[1:-1] + padded[2:]
    return np.rint((rows[:, :-2] + rows[:, 1:-1] + rows[:, 2:]) / 9).astype(np.uint8)


def margin(codec: Codec, original: np.ndarray, decoded: np.ndarray, lambda_: float) -> float | None:
    """The smallest of FACTORS at which choose picks a block; None: not even at the largest."""
    for factor in FACTORS:
        if detail_choice.choose(original, decoded, lambda_, codec.bundle.latent_tables, matmul=codec.matmul,
                                lambda_scale=detail_choice.LAMBDA_SCALE * factor) is not None:
            return factor
    return None


def rows_for(codec: Codec, name: str, rgb: np.ndarray, qualities, group: str) -> list[dict]:
    latent = transform.analyse(codec.model, rgb)
    blurred = box3(rgb)
    rows = []
    for quality in qualities:
        lambda_ = rate_tradeoff(codec.bundle, quality)
        step = detail_choice.step_for(lambda_)
        if step // 2 <= detail_choice.MAX_HELD_ERROR:
            continue  # held blocks: the pass always runs there
        decoded = transform.pixels_of(codec.model, transform.code(codec.model, latent, quality), *rgb.shape[:2])
        rows.append({"set": group, "image": name, "quality": quality, "step": step,
                     "margin": margin(codec, rgb, decoded, lambda_),
                     "proxy_margin": margin(codec, rgb, blurred, lambda_)})
        print(rows[-1], flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--photos", type=Path, default=Path("runs/main/validation_images.txt"))
    parser.add_argument("--kodak", type=Path, default=Path("../shared/data/kodak"))
    parser.add_argument("--out", type=Path, default=Path("bench/results/detail_skip.json"))
    args = parser.parse_args()
    codec = Codec(threads=2)
    sets = {"train": training_photos(args.photos), "graphics": {k: draw() for k, draw in GRAPHICS.items()},
            "kodak": {p.stem: np.asarray(Image.open(p).convert("RGB")) for p in sorted(args.kodak.glob("*.png"))}}
    rows = [row for group, images in sets.items() for name, rgb in images.items()
            for row in rows_for(codec, name, rgb, QUALITIES[group], group)]
    result = {"date": datetime.now(timezone.utc).isoformat(timespec="seconds"), "model_id": codec.model_id.hex(),
              "factors": FACTORS, "rows": rows}
    args.out.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
