"""How much of the quality's lambda the detail layer's choices should weigh: BD-rate against no detail layer.

    python -m bench.detail_tuning                       # bench/results/detail_tuning.json

Runs on the run's held-out training photos (runs/main/validation_images.txt), never on Kodak.
For each quality the learned part is coded once; then the detail stream is chosen again at each
candidate aecodec.detail_choice.LAMBDA_SCALE and added on top. Reported per scale: the mean curve
(bpp of whole files, PSNR-RGB) and its BD-rate against the learned part alone, over the range both
cover, which is the learned part's range: a scale that raises the top but costs bits inside that
range shows it here. Rate and distortion only, so it may run beside training.
"""

from __future__ import annotations

import argparse
import json
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
from PIL import Image

from aecodec import detail, detail_choice
from aecodec.codec import Codec
from aecodec.metrics import bd_rate, psnr
from aecodec.quality import rate_tradeoff

QUALITIES = (15, 30, 45, 60, 75, 90, 100)
SCALES = (0.4, 0.6, 1.0)


def held_out_arguments(description: str, out: str) -> argparse.ArgumentParser:
    """The options every held-out detail bench takes: the photos, the weights, where the results go."""
    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--photos", type=Path, default=Path("runs/main/validation_images.txt"),
                        help="text file listing the held-out photos, one path a line")
    parser.add_argument("--weights", default=None)
    parser.add_argument("--out", type=Path, default=Path(out))
    return parser


def photo_paths(listing: Path) -> list[Path]:
    return [Path(line.strip()) for line in listing.read_text().splitlines() if line.strip()]


def detail_curves(codec: Codec, paths: list[Path], qualities, scales) -> dict:
    """Mean bpp and PSNR by quality on the photos without the detail layer ("none") and with it at each
    lambda scale (named by the scale), each with its BD-rate against none."""
    photos = [np.asarray(Image.open(p).convert("RGB")) for p in paths]
    curves = {"none": {"bpp": [], "psnr": []}, **{f"{s:g}": {"bpp": [], "psnr": []} for s in scales}}
    tables = codec.bundle.latent_tables
    for quality in qualities:
        points = {name: ([], []) for name in curves}
        for rgb in photos:
            pixels = rgb.shape[0] * rgb.shape[1]
            data = codec.compress(rgb, quality=quality, detail=False)
            decoded = np.asarray(codec.decompress(data))
            points["none"][0].append(8 * len(data) / pixels)
            points["none"][1].append(psnr(rgb, decoded))
            for scale in scales:
                chosen = detail_choice.choose(rgb, decoded, rate_tradeoff(codec.bundle, quality), tables,
                                              matmul=codec.matmul, lambda_scale=scale)
                stream = detail.encode(chosen, *rgb.shape[:2], tables) if chosen else b""
                corrected = detail.apply(decoded, detail.decode(stream, *rgb.shape[:2], tables)) if stream else decoded
                extra = 4 + len(stream) if stream else 0  # the stream and its length field
                points[f"{scale:g}"][0].append(8 * (len(data) + extra) / pixels)
                points[f"{scale:g}"][1].append(psnr(rgb, corrected))
        for name, (bpps, psnrs) in points.items():
            curves[name]["bpp"].append(float(np.mean(bpps)))
            curves[name]["psnr"].append(float(np.mean(psnrs)))
        print(f"q{quality}", {n: f"{c['bpp'][-1]:.3f} bpp {c['psnr'][-1]:.2f} dB" for n, c in curves.items()},
              flush=True)
    base = curves["none"]
    for name, curve in curves.items():
        if name != "none":
            result = bd_rate(base["bpp"], base["psnr"], curve["bpp"], curve["psnr"])
            curve["bd_rate_vs_none"] = {"percent": result.percent, "low_db": result.low, "high_db": result.high}
    return curves


def main() -> None:
    args = held_out_arguments(__doc__, "bench/results/detail_tuning.json").parse_args()
    codec = Codec(args.weights, threads=2)
    paths = photo_paths(args.photos)
    curves = detail_curves(codec, paths, QUALITIES, SCALES)
    report = {"date": datetime.now(timezone.utc).isoformat(timespec="seconds"), "model_id": codec.model_id.hex(),
              "photos": [p.name for p in paths], "qualities": list(QUALITIES), "shipped_scale": detail_choice.LAMBDA_SCALE,
              "curves": curves}
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    for name, curve in curves.items():
        if name != "none":
            bd = curve["bd_rate_vs_none"]
            print(f"scale {name}: BD-rate {bd['percent']:+.2f}% [{bd['low_db']:.2f}-{bd['high_db']:.2f} dB], "
                  f"top {curve['psnr'][-1]:.2f} dB at {curve['bpp'][-1]:.3f} bpp")


if __name__ == "__main__":
    main()
