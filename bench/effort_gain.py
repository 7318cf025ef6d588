"""What --effort buys against refinement iterations: bpp, PSNR, RD loss and encode time on a Kodak subset.

A typical run looks like this (pause training first: it times the CPU)::

    python -m bench.effort_gain ../shared/data/kodak --threads 2     # 6 images x 3 qualities x 0..200 iterations
    python -m bench.effort_gain ../shared/data/kodak --images kodim23 --qualities 60 --iterations 0 5 \\
        --out /tmp/smoke.json                                          # a smoke test

For each image the analysis runs once; for each quality and iteration count the latents are refined
from the amortised encoder's (0 iterations: today's file), coded on the exact path, and decoded by
the unchanged decoder. Rows give the file's bpp and PSNR, its RD loss (bits per pixel + lambda *
255^2 * MSE, lambda of the quality), the refinement's own loss, and the encode time; ``means`` gives
per iteration count the mean change against 0 iterations, seconds per megapixel, and the BD-rate
(PSNR) of the mean curve over the qualities against 0 iterations. Writes bench/results/effort_gain.json.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from aecodec import transform
from aecodec.codec import Codec
from aecodec.metrics import bd_rate, psnr
from aecodec.quality import rate_tradeoff
from aecodec.refine_torch.refiner import RefineSettings, Refiner

ROOT = Path(__file__).resolve().parents[1]

IMAGES = ("kodim01", "kodim04", "kodim07", "kodim13", "kodim19", "kodim23")  # walls, face, flowers, river, fence, birds
QUALITIES = (15, 45, 75)
ITERATIONS = (0, 10, 25, 50, 100, 200)


def measure(codec: Codec, refiner: Refiner, rgb: np.ndarray, latent: np.ndarray, analysis_s: float,
            quality: float, iterations: int) -> dict:
    start = time.perf_counter()
    gained = latent * transform.gain(codec.model, quality)
    hyper_latent = transform.hyper_analyse(codec.model, gained)
    refined = refiner.refine(rgb, gained, hyper_latent, quality, iterations)
    coded = transform.code_given(codec.model, refined.latent, refined.hyper_latent, quality)
    data = transform.file_of(codec.model, coded, *rgb.shape[:2])
    encode_s = analysis_s + time.perf_counter() - start
    decoded = np.asarray(codec.decompress(data))
    pixels = rgb.shape[0] * rgb.shape[1]
    mse = float(((decoded.astype(np.float64) - rgb) ** 2).mean()) / 255**2
    bpp = len(data) * 8 / pixels
    return {
        "quality": quality, "iterations": iterations, "bytes": len(data), "bpp": bpp,
        "psnr": float(psnr(rgb, decoded)), "rd_loss": bpp + rate_tradeoff(codec.bundle, quality) * 255**2 * mse,
        "model_loss_start": refined.start_loss, "model_loss": refined.loss, "kept_iteration": refined.iteration,
        "refine_s": refined.seconds, "encode_s": encode_s, "encode_s_per_mpx": encode_s / (pixels / 1e6),
    }


def summarise(rows: list[dict], qualities, iterations_list) -> list[dict]:
    """Per iteration count: mean changes against 0 iterations (same image and quality), time, BD-rate."""
    base = {(r["image"], r["quality"]): r for r in rows if r["iterations"] == 0}

    def mean_curve(count):
        points = [[r for r in rows if r["iterations"] == count and r["quality"] == q] for q in qualities]
        return [np.mean([r["bpp"] for r in p]) for p in points], [np.mean([r["psnr"] for r in p]) for p in points]

    means = []
    for count in iterations_list:
        mine = [r for r in rows if r["iterations"] == count]
        pairs = [(r, base[r["image"], r["quality"]]) for r in mine if (r["image"], r["quality"]) in base]
        row = {"iterations": count, "runs": len(mine),
               "bpp": float(np.mean([r["bpp"] for r in mine])), "psnr": float(np.mean([r["psnr"] for r in mine])),
               "encode_s_per_mpx": float(np.mean([r["encode_s_per_mpx"] for r in mine]))}
        if pairs:
            row["bpp_change_percent"] = float(np.mean([100 * (r["bpp"] / b["bpp"] - 1) for r, b in pairs]))
            row["psnr_change_db"] = float(np.mean([r["psnr"] - b["psnr"] for r, b in pairs]))
            row["rd_loss_change_percent"] = float(np.mean([100 * (r["rd_loss"] / b["rd_loss"] - 1) for r, b in pairs]))
        if 0 in iterations_list and len(qualities) >= 2:
            result = bd_rate(*mean_curve(0), *mean_curve(count))
            row["bd_rate_psnr_percent"] = None if np.isnan(result.percent) else result.percent
        means.append(row)
    return means


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("kodak", type=Path, help="folder of kodimNN.png")
    parser.add_argument("--images", nargs="+", default=list(IMAGES))
    parser.add_argument("--qualities", nargs="+", type=float, default=list(QUALITIES))
    parser.add_argument("--iterations", nargs="+", type=int, default=list(ITERATIONS))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--weights", default=None, help="weights folder (default: the shipped model)")
    parser.add_argument("--lr", type=float, default=RefineSettings.lr)
    parser.add_argument("--final-lr-share", type=float, default=RefineSettings.final_lr_share)
    parser.add_argument("--relaxation", default=RefineSettings.relaxation, choices=("sga", "ste", "noise"))
    parser.add_argument("--bf16", action=argparse.BooleanOptionalAction, default=None,
                        help="bf16 autocast of the synthesis (default: on where the CPU has fast bf16, and CUDA)")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "effort_gain.json")
    args = parser.parse_args()

    codec = Codec(args.weights, threads=args.threads)
    settings = RefineSettings(lr=args.lr, final_lr_share=args.final_lr_share, relaxation=args.relaxation,
                              bf16=args.bf16)
    refiner = Refiner(codec.bundle, settings, threads=args.threads)
    rows = []
    for name in args.images:
        rgb = np.asarray(Image.open(args.kodak / f"{name}.png").convert("RGB"))
        start = time.perf_counter()
        latent = transform.analyse(codec.model, rgb)
        analysis_s = time.perf_counter() - start
        for quality in args.qualities:
            for iterations in args.iterations:
                row = {"image": name, **measure(codec, refiner, rgb, latent, analysis_s, quality, iterations)}
                rows.append(row)
                print(f"{name} q{quality:g} {iterations:4d} it: {row['bpp']:.4f} bpp {row['psnr']:.2f} dB "
                      f"loss {row['rd_loss']:.4f} (kept {row['kept_iteration']}) {row['encode_s']:.1f} s", flush=True)
    report = {
        "model_id": codec.model_id.hex(), "settings": asdict(settings),
        "device": str(refiner.device), "bf16": refiner.bf16, "threads": args.threads,
        "env": {"python": platform.python_version(), "torch": torch.__version__, "machine": platform.machine(),
                "processor": platform.processor()},
        "means": summarise(rows, args.qualities, args.iterations), "rows": rows,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    for row in report["means"]:
        print(json.dumps(row))


if __name__ == "__main__":
    main()
