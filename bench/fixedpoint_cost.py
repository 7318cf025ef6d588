"""What the exact integer hyper-synthesis costs against the float one it replaces, as a BD-rate.

    python -m bench.fixedpoint_cost runs/main/last.ckpt weights/main ../shared/data/kodak

Both paths code real files with the same tables; the float path is what a codec
without the determinism guarantee would do (float64 numpy convolutions of the
trained weights). Needs torch only to read the checkpoint.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from unittest import mock

import numpy as np

from aecodec import fixedpoint, probability
from aecodec.codec import Codec
from aecodec.imageio import load_image
from aecodec.metrics import bd_rate, psnr

QUALITIES = (1, 20, 40, 60, 80, 100)


def float_entropy_parameters(float_layers):
    def run(_layers, hyper_latent, scale_table):
        mean, scale = np.split(fixedpoint.run_float_layers(float_layers, hyper_latent), 2, axis=0)
        # the same table choice as the exact path, from a float scale rounded up into its fixed point
        scale_fixed = probability.fixed_point(scale, fixedpoint.OUTPUT_FRACTION_BITS)
        return mean, probability.scale_index(scale_fixed, scale_table)
    return run


def curve(codec: Codec, images: list[np.ndarray]) -> tuple[list[float], list[float]]:
    rates, quality = [], []
    for q in QUALITIES:
        bits, scores = 0.0, []
        for rgb in images:
            data = codec.compress(rgb, quality=q)
            bits += len(data) * 8 / (rgb.shape[0] * rgb.shape[1])
            scores.append(psnr(np.asarray(codec.decompress(data)), rgb))
        rates.append(bits / len(images))
        quality.append(float(np.mean(scores)))
    return rates, quality


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint")
    parser.add_argument("weights")
    parser.add_argument("images")
    parser.add_argument("--out", default="bench/results/fixedpoint_cost.json")
    args = parser.parse_args()
    from aecodec.train.export import hyper_synthesis_layers
    from aecodec.train.checkpoint import load_checkpoint, model_from_checkpoint
    model = model_from_checkpoint(load_checkpoint(args.checkpoint))
    float_layers = hyper_synthesis_layers(model.hyper_synthesis)
    images = [load_image(p).rgb for p in sorted(Path(args.images).glob("*.png"))]
    codec = Codec(args.weights)
    exact = curve(codec, images)
    with mock.patch.object(fixedpoint, "entropy_parameters", float_entropy_parameters(float_layers)):
        floating = curve(codec, images)
    result = bd_rate(floating[0], floating[1], exact[0], exact[1])
    report = {"images": len(images), "qualities": QUALITIES,
              "exact": {"bpp": exact[0], "psnr": exact[1]}, "float": {"bpp": floating[0], "psnr": floating[1]},
              "bd_rate_exact_vs_float_percent": result.percent, "psnr_range": [result.low, result.high]}
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
    print(f"exact integer hyper-synthesis vs float: BD-rate {result.percent:+.3f}% "
          f"over {result.low:.2f}-{result.high:.2f} dB on {len(images)} images")


if __name__ == "__main__":
    main()
