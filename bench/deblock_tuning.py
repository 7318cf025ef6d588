"""Tuning the deblocking filter's thresholds (aecodec/deblock.py) on training photos, never Kodak.

    python -m bench.deblock_tuning          # bench/results/deblock_tuning.json

For each quality, every photo's learned part (no detail layer) is synthesised as a decoder makes it,
with the filter at each candidate threshold (0: none). Reported per threshold: the mean and worst change in
PSNR-RGB, and the mean and worst metrics.grid_ratio, over the 8 photos the long run holds out for
validation (--photos, the run's listing) plus every 50th photo of the training set's manifest, and over bench.grid.smooth_images()
(the synthetic ramp, glow and sky). deblock.THRESHOLDS is read from this table: at each quality the
threshold that brings the grid down to about 1.10 without costing PSNR on average.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm import tqdm

from aecodec import transform
from aecodec.codec import Codec
from aecodec.metrics import grid_ratio, psnr
from bench.detail_tuning import held_out_arguments, photo_paths
from bench.grid import smooth_images

TRAIN = Path("../shared/data/train")
QUALITIES = (5, 10, 15, 20, 25, 30, 40, 50, 60, 75, 90)
CANDIDATES = (0, 2, 4, 6, 8, 12, 16, 20, 24, 32)


def photos(held_out: list[Path], every: int) -> dict[str, np.ndarray]:
    """The held-out photos and every every-th photo of the manifest, as RGB arrays."""
    lines = (TRAIN / "MANIFEST.tsv").read_text().splitlines()[1:]
    paths = held_out + [TRAIN / line.split("\t")[0] for line in lines[::every]]
    return {path.stem: np.asarray(Image.open(path).convert("RGB")) for path in paths}


def scores(codec: Codec, latents: dict[str, tuple[np.ndarray, np.ndarray]], quality: int) -> dict[int, dict]:
    """Per candidate threshold: mean and worst PSNR change and grid ratio over the pictures, whose
    (RGB, latent) latents holds; the learned part as a decoder makes it, deblocked at each threshold."""
    changes = {t: [] for t in CANDIDATES}
    for rgb, latent in latents.values():
        coded = transform.code(codec.model, latent, quality)
        before = psnr(rgb, transform.pixels_of(codec.model, coded, *rgb.shape[:2]))
        for t in CANDIDATES:
            filtered = transform.pixels_of(codec.model, coded, *rgb.shape[:2], deblocking=t)
            changes[t].append((psnr(rgb, filtered) - before, grid_ratio(filtered)))
    out = {}
    for t, rows in changes.items():
        rows = np.array(rows)
        out[t] = {"psnr_change_mean": float(rows[:, 0].mean()), "psnr_change_worst": float(rows[:, 0].min()),
                  "grid_ratio_mean": float(rows[:, 1].mean()), "grid_ratio_worst": float(rows[:, 1].max())}
    return out


def main() -> None:
    parser = held_out_arguments(__doc__, "bench/results/deblock_tuning.json")
    parser.add_argument("--every", type=int, default=50, help="also every N-th photo of the manifest")
    args = parser.parse_args()
    codec = Codec(args.weights)
    sets = {name: {key: (rgb, transform.analyse(codec.model, rgb)) for key, rgb in pictures.items()}
            for name, pictures in (("photos", photos(photo_paths(args.photos), args.every)),
                                   ("smooth", smooth_images()))}
    table = {}
    for quality in tqdm(QUALITIES, desc="qualities"):
        table[quality] = {name: scores(codec, pictures, quality) for name, pictures in sets.items()}
        for name in sets:
            print(f"q{quality} {name}: " + "  ".join(
                f"T{t}: {s['psnr_change_mean']:+.3f}dB grid {s['grid_ratio_mean']:.2f}/{s['grid_ratio_worst']:.2f}"
                for t, s in table[quality][name].items()), flush=True)
    args.out.write_text(json.dumps({
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"), "model_id": codec.model_id.hex(),
        "photos": sorted(sets["photos"]), "smooth_images": sorted(sets["smooth"]), "by_quality": table}, indent=1) + "\n")


if __name__ == "__main__":
    main()
