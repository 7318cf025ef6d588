"""Flat pictures at their edges, and what holding them costs photographs (aecodec/detail_choice.py, held blocks).

    python -m bench.detail_edges --label NAME           # bench/results/detail_edges.json, entry NAME

Two measurements, stored under --label (the file's other entries stay):

- flat: pictures of one colour, 1x1 to 256x256 and 1xN / Nx1 lines, at quality 75 and 100: the
  largest error of any pixel and channel, its 99th percentile over pixels, and the file's bytes.
  The synthesis' zero padding at frame borders puts its errors at the edges and corners.
- photos: the run's held-out training photos (never Kodak) at the detail tuning's qualities: mean
  bpp of whole files and PSNR-RGB with the detail layer and without it, and the BD-rate of the first
  against the second over the range both cover, as bench/detail_tuning.py reports it.

The entry "008947b" was measured with that commit's aecodec, the others with the checkout's.
Rate and distortion only, so it may run beside training.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from aecodec import detail_choice
from aecodec.codec import Codec

from .detail_tuning import detail_curves, held_out_arguments, photo_paths

SIZES = ((1, 1), (8, 8), (17, 33), (64, 64), (256, 256), (1, 300), (300, 1))
COLOURS = ((200, 10, 10), (10, 200, 10), (0, 0, 255), (128, 128, 128), (255, 255, 255), (0, 0, 0))
FLAT_QUALITIES = (75, 100)
PHOTO_QUALITIES = (15, 30, 45, 60, 75, 90, 100)


def flat_rows(codec: Codec) -> list[dict]:
    rows = []
    for quality in FLAT_QUALITIES:
        for height, width in SIZES:
            for colour in COLOURS:
                rgb = np.full((height, width, 3), colour, np.uint8)
                data = codec.compress(rgb, quality=quality)
                error = np.abs(np.asarray(codec.decompress(data)).astype(int) - rgb)
                rows.append({"quality": quality, "size": f"{height}x{width}", "colour": list(colour),
                             "max_error": int(error.max()), "p99_error": float(np.percentile(error.max(2), 99)),
                             "bytes": len(data)})
    return rows


def photo_curves(codec: Codec, paths: list[Path]) -> dict:
    """detail_tuning's curves at the shipped lambda scale, named "detail"."""
    curves = detail_curves(codec, paths, PHOTO_QUALITIES, (detail_choice.LAMBDA_SCALE,))
    return {"none": curves["none"], "detail": curves[f"{detail_choice.LAMBDA_SCALE:g}"]}


def main() -> None:
    parser = held_out_arguments(__doc__, "bench/results/detail_edges.json")
    parser.add_argument("--label", required=True, help="the entry to write, e.g. a commit")
    args = parser.parse_args()
    codec = Codec(args.weights, threads=1)
    paths = photo_paths(args.photos)
    report = json.loads(args.out.read_text()) if args.out.exists() else {}
    entry = {"date": datetime.now(timezone.utc).isoformat(timespec="seconds"), "model_id": codec.model_id.hex(),
             "flat": flat_rows(codec), "photos": [p.name for p in paths], "photo_qualities": list(PHOTO_QUALITIES),
             "photo_curves": photo_curves(codec, paths)}
    report[args.label] = entry
    args.out.write_text(json.dumps(report, indent=1) + "\n")
    worst = {q: max(r["max_error"] for r in entry["flat"] if r["quality"] == q) for q in FLAT_QUALITIES}
    bd, top = entry["photo_curves"]["detail"]["bd_rate_vs_none"], entry["photo_curves"]["detail"]
    print(f"{args.label}: flat pictures' largest error by quality {worst}; photos: BD-rate {bd['percent']:+.3f}% "
          f"[{bd['low_db']:.2f}-{bd['high_db']:.2f} dB], top {top['psnr'][-1]:.3f} dB at {top['bpp'][-1]:.4f} bpp")


if __name__ == "__main__":
    main()
