"""Time and peak memory of compressing and decompressing one large photo (6000x4000 by default).

A typical run looks like this::

    nice -n 19 python bench/large_image.py                          # the shipped model, weights/main
    python bench/large_image.py --weights tests/data/tiny_weights --out bench/results/large_image_tiny.json

Each step runs in a fresh Python process, which reports its own peak resident set
size (``getrusage(RUSAGE_SELF).ru_maxrss``), so the steps do not hide each other's
memory. "load" is only importing aecodec and loading the model: the floor under the
other two. "compress" reads a PNG from disk and writes the .aec; "decompress" reads
the .aec and writes a PNG, as the command line does.
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
LIMIT_MB = 2048  # the promise in the README: 6000x4000 within 2 GiB

CHILD = """
import json, resource, sys, time
sys.path.insert(0, {root!r})
from pathlib import Path
from aecodec.codec import Codec
step, weights, threads, source, target = sys.argv[1:6]
start = time.perf_counter()
codec = Codec(weights, threads=int(threads))
loaded = time.perf_counter()
timings = {{}}
if step == "compress":
    encoded = codec.encode(source, quality=75, timed=True)
    Path(target).write_bytes(encoded.data)
    timings, extra = encoded.timings, {{"bytes": len(encoded.data)}}
elif step == "decompress":
    result = codec.decode(Path(source).read_bytes(), timed=True)
    decoded = time.perf_counter()
    result.image.save(target, compress_level=1)
    timings, extra = result.timings, {{"save_seconds": round(time.perf_counter() - decoded, 2)}}
else:
    extra = {{}}
done = time.perf_counter()
stages = {{k: round(v, 2) for k, v in timings.items()}}
print(json.dumps({{"step": step, "seconds": round(done - loaded, 2), "load_seconds": round(loaded - start, 2),
                  "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
                  "stages": stages, **extra}}))
"""


def photo(width: int, height: int, seed: int = 0) -> np.ndarray:
    """Smooth colour fields with texture, built in row bands to keep this process small."""
    rng = np.random.default_rng(seed)
    out = np.empty((height, width, 3), np.uint8)
    x = np.arange(width, dtype=np.float32)
    freqs = rng.uniform(0.002, 0.02, (3, 2)).astype(np.float32)
    for top in range(0, height, 500):
        y = np.arange(top, min(top + 500, height), dtype=np.float32)[:, None]
        for c in range(3):
            wave = 128 + 90 * np.sin(freqs[c, 0] * x + c) * np.cos(freqs[c, 1] * y)
            out[top:top + len(y), :, c] = np.clip(wave + rng.normal(0, 6, wave.shape), 0, 255)
    return out


def run_step(step: str, weights: str, threads: int, source: Path, target: Path) -> dict:
    command = [sys.executable, "-c", CHILD.format(root=str(ROOT)), step, weights, str(threads), str(source),
               str(target)]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise SystemExit(f"{step} failed:\n{result.stderr}")
    report = json.loads(result.stdout.strip().splitlines()[-1])
    print(json.dumps(report), flush=True)
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--weights", default=str(ROOT / "weights" / "main"))
    parser.add_argument("--width", type=int, default=6000)
    parser.add_argument("--height", type=int, default=4000)
    parser.add_argument("--threads", type=int, default=0, help="ONNX Runtime threads (0: one per core).")
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "large_image.json"))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        source, coded, back = Path(folder) / "photo.png", Path(folder) / "photo.aec", Path(folder) / "back.png"
        Image.fromarray(photo(args.width, args.height)).save(source, compress_level=1)
        steps = {step: run_step(step, args.weights, args.threads, src, dst)
                 for step, src, dst in (("load", source, coded), ("compress", source, coded),
                                        ("decompress", coded, back))}
        with Image.open(back) as decoded:
            assert decoded.size == (args.width, args.height)
    manifest = json.loads((Path(args.weights) / "manifest.json").read_text())
    peak = max(s["peak_rss_mb"] for s in steps.values())
    report = {"image": f"{args.width}x{args.height}", "model_id": manifest.get("model_id"),
              "model_config": manifest.get("model_config"), "threads": args.threads, "steps": steps,
              "peak_rss_mb": peak, "limit_mb": LIMIT_MB, "within_limit": peak <= LIMIT_MB,
              "environment": {"python": platform.python_version(), "machine": platform.machine(),
                              "numpy": np.__version__, "date": time.strftime("%Y-%m-%d")}}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
    print(f"peak {peak} MB (limit {LIMIT_MB} MB); wrote {args.out}")


if __name__ == "__main__":
    main()
