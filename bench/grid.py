"""The 16-pixel grid at low rates: metrics.grid_ratio of decoded pictures, by quality.

    python -m bench.grid                         # bench/results/grid.json
    python -m bench.grid --weights /tmp/bundle --label candidate
    python -m bench.grid --cause runs/main/last.ckpt     # why: the synthesis fed different latents

Issue 22, item 5: in smooth areas at 0.05-0.15 bpp a grid of 16-pixel blocks shows (kodim23's
background at q5 and q20). grid_ratio is the mean absolute step in grey level across 16-pixel
boundaries over the mean step elsewhere; originals give 0.96-1.02. Measured on kodim03, 12 and 23
(the issue's images; Kodak is only looked at, nothing is tuned on it) and on smooth_images(), the
synthetic pictures, with the detail layer off and on.

--cause takes a checkpoint and decodes the smooth pictures with its torch model (moving average) from
five latents at the lowest level and the middle one: the analysis' own (unquantised), the coded one
(rounded residual plus mean), the hyperprior's mean alone, and the analysis' latent blurred by 3x3 or
replaced by its mean over the picture. Needs torch (the train extra).
"""

from __future__ import annotations

import argparse
import json
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
from PIL import Image

from aecodec.codec import Codec
from aecodec.metrics import grid_ratio

KODAK = Path("../shared/data/kodak")
IMAGES = ("kodim03", "kodim12", "kodim23")
QUALITIES = (1, 5, 10, 20, 30, 50, 75)


def smooth_images(size: int = 256) -> dict[str, np.ndarray]:
    """Pictures with no edges: a diagonal ramp, a radial glow, and a sky (a vertical ramp with a soft
    cloud), each dithered by a little fixed noise so that no band is perfectly flat."""
    rows, cols = np.mgrid[0:size, 0:size] / (size - 1)
    noise = np.random.default_rng(0).normal(0, 0.6, (size, size, 3))
    ramp = np.stack([40 + 170 * (rows + cols) / 2, 90 + 60 * cols, 200 - 120 * rows], axis=2)
    radius = np.hypot(rows - 0.45, cols - 0.55)
    glow = np.stack([230 - 150 * radius, 180 - 120 * radius, 90 + 40 * radius], axis=2)
    cloud = 50 * np.exp(-((rows - 0.4) ** 2 + (cols - 0.6) ** 2 / 3) / 0.03)
    sky = np.stack([70 + 60 * rows + cloud, 120 + 50 * rows + cloud, 210 - 20 * rows + 0.8 * cloud], axis=2)
    return {name: np.clip(np.rint(image + noise), 0, 255).astype(np.uint8)
            for name, image in (("ramp", ramp), ("glow", glow), ("sky", sky))}


def as_batch(rgb: np.ndarray):
    """uint8 (H, W, 3) -> a float torch tensor (1, 3, H, W) in [0, 1], as the torch model takes pictures."""
    import torch
    return torch.from_numpy(rgb.transpose(2, 0, 1).copy()).float().div(255)[None]


def as_picture(x) -> np.ndarray:
    """The torch model's output (1, 3, H, W) -> uint8 (H, W, 3): as_batch's inverse, clamped and rounded."""
    return (x.clamp(0, 1)[0].permute(1, 2, 0) * 255).round().byte().numpy()


def measure(codec: Codec, rgb: np.ndarray, quality: int, detail: bool) -> dict:
    data = codec.compress(rgb, quality=quality, detail=detail)
    decoded = np.asarray(codec.decompress(data).convert("RGB"))
    return {"quality": quality, "detail": detail, "bpp": 8 * len(data) / (rgb.shape[0] * rgb.shape[1]),
            "grid_ratio": grid_ratio(decoded)}


def cause(checkpoint: Path) -> dict:
    """grid_ratio by latent fed to the synthesis, mean over smooth_images(), at levels 0 and 3.5."""
    import torch
    import torch.nn.functional as F

    from aecodec.train.checkpoint import load_checkpoint, model_from_checkpoint
    loaded = load_checkpoint(checkpoint)
    model = model_from_checkpoint(loaded).eval()
    rows = {"step": loaded.step}
    with torch.no_grad():
        for level_value in (0.0, 3.5):
            ratios = {}
            for rgb in smooth_images().values():
                x = as_batch(rgb)
                level = torch.tensor([level_value])
                gain, inverse_gain = model.gains(level)
                latent = model.analysis(x) * gain
                mean = model.hyper_synthesis(torch.round(model.hyper_analysis(latent))).chunk(2, 1)[0]
                latents = {"unquantised": latent, "coded": torch.round(latent - mean) + mean, "mean_only": mean,
                           "blurred_3x3": F.avg_pool2d(latent, 3, 1, 1, count_include_pad=False),
                           "constant": latent.mean((2, 3), keepdim=True).expand_as(latent)}
                for name, fed in latents.items():
                    decoded = as_picture(model.synthesis(fed * inverse_gain))
                    ratios.setdefault(name, []).append(grid_ratio(decoded))
            rows[f"level {level_value}"] = {name: float(np.mean(values)) for name, values in ratios.items()}
            print(f"level {level_value}:", " ".join(f"{k} {v:.2f}" for k, v in rows[f"level {level_value}"].items()))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--weights", type=Path, default=None, help="a bundle; default: the shipped model")
    parser.add_argument("--label", default="shipped")
    parser.add_argument("--out", type=Path, default=Path("bench/results/grid.json"))
    parser.add_argument("--cause", type=Path, metavar="CHECKPOINT", help="measure the cause with this checkpoint")
    args = parser.parse_args()
    results = json.loads(args.out.read_text()) if args.out.exists() else {}
    if args.cause:
        results["cause"] = {"checkpoint": str(args.cause), "smooth_images": cause(args.cause)}
        args.out.write_text(json.dumps(results, indent=1) + "\n")
        return
    codec = Codec(args.weights)
    pictures = {name: np.asarray(Image.open(KODAK / f"{name}.png").convert("RGB")) for name in IMAGES}
    pictures.update(smooth_images())
    rows = {}
    for name, rgb in pictures.items():
        rows[name] = {"original": grid_ratio(rgb),
                      "decoded": [measure(codec, rgb, q, d) for q in QUALITIES for d in (False, True)]}
        print(name, f"original {rows[name]['original']:.3f}",
              " ".join(f"q{r['quality']}{'+d' if r['detail'] else ''}:{r['grid_ratio']:.2f}"
                       for r in rows[name]["decoded"]), flush=True)
    results[args.label] = {"date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                           "model_id": codec.model_id.hex(), "images": rows}
    args.out.write_text(json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    main()
