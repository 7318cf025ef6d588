"""Time and peak memory of compressing and decompressing large images (6000x4000 by default).

A typical run looks like this::

    nice -n 19 python -m bench.large_image                          # the shipped model, weights/main
    nice -n 19 python -m bench.large_image --baseline /tmp/aecodec-008947b   # and an older decoder beside it
    python -m bench.large_image --weights tests/data/tiny_weights --out bench/results/large_image_tiny.json

Each step runs in a fresh Python process, which reports its own peak resident set
size (``getrusage(RUSAGE_SELF).ru_maxrss``), so the steps do not hide each other's
memory. "load" is only importing aecodec and loading the model: the floor under the
others. "compress" reads a PNG from disk and writes the .aec; each "decompress" step
reads an .aec and writes a PNG as the command line does (``aecodec.batch.process``):

* decompress: the compressed photo, quality 75. A version-1 file: the encoder adds
  no detail layer to images past ``detail_choice.MAX_PIXELS``.
* decompress_detail: the photo at quality 100 with the detail layer the encoder would
  choose for it without that limit (``detail_choice.choose``): the newest format version.
  (At 90 no block of this photo pays for corrections: its texture is noise.)
* decompress_crafted: a file of 500 KB declaring 7936x7936 (63 MP, under
  Pillow's limit): an all-zero hyper-latent and latent. Decoding cost follows the
  declared size, so this is what a small hostile file can ask for.
* decompress_crafted_detail: the same with a detail layer coding every block.

``--baseline DIR`` decodes the same files a second time with the aecodec package
found in DIR (a checkout of an older commit), recorded under each step's "baseline".
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import platform
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
from PIL import Image

from aecodec import container, detail, detail_choice, entropy, transform
from aecodec.codec import Codec
from aecodec.quality import rate_tradeoff

ROOT = Path(__file__).resolve().parents[1]
LIMIT_MB = 2048  # the promise in the README: 6000x4000 within 2 GiB
CRAFTED_SIDE = 7936  # 63 MP, issue 21's crafted file: under Pillow's 89 MP limit, so it decodes without an option

CHILD = """
import json, resource, sys, time
from pathlib import Path
from aecodec.codec import Codec
step, weights, threads, source, target = sys.argv[1:6]
start = time.perf_counter()
codec = Codec(weights, threads=int(threads))
loaded = time.perf_counter()
timings = {}
if step == "compress":
    encoded = codec.encode(source, quality=75, timed=True)
    Path(target).write_bytes(encoded.data)
    timings, extra = encoded.timings, {"bytes": len(encoded.data)}
elif step == "decompress":
    from aecodec import batch
    outcome = batch.process(codec, batch.Task(Path(source), Path(target)), batch.Options("decompress", force=True))
    if outcome.error:
        raise SystemExit(outcome.error)
    extra = {"png_bytes": outcome.bytes_out}
else:
    extra = {}
done = time.perf_counter()
stages = {k: round(v, 2) for k, v in timings.items()}
print(json.dumps({"step": step, "seconds": round(done - loaded, 2), "load_seconds": round(loaded - start, 2),
                  "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
                  "stages": stages, **extra}))
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


def with_detail(codec: Codec, data: bytes, rgb: np.ndarray) -> bytes:
    """data with the detail layer the encoder chooses for rgb, which it leaves out past detail_choice.MAX_PIXELS."""
    parsed = container.unpack(data)
    height, width = rgb.shape[:2]
    lambda_ = rate_tradeoff(codec.bundle, parsed.header.quality)
    chosen = detail_choice.choose(rgb, codec.decode_rgb(parsed), lambda_, codec.bundle.latent_tables,
                                  matmul=codec.matmul)
    assert chosen is not None, "no block of the photo pays for a detail layer"
    stream = detail.encode(chosen, height, width, codec.bundle.latent_tables)
    return container.pack(parsed.header, replace(parsed.streams, detail=stream))


def crafted(codec: Codec, side: int, every_block: bool = False) -> bytes:
    """A valid file of side x side pixels whose hyper-latent and latent residual are all zero; with
    every_block, a detail layer that codes every block (all its corrections zero)."""
    bundle = codec.bundle
    grid = -(-side // bundle.hyper_stride)
    hyper = np.zeros((len(bundle.hyper_tables), grid, grid), np.int64)
    up = bundle.hyper_stride // bundle.latent_stride
    residual = np.zeros((bundle.config.latent_channels, grid * up, grid * up), np.int64)
    streams = container.Streams(transform.hyper_stream(codec.model, hyper),
                                transform.latent_stream(codec.model, hyper, residual, 75.0))
    if every_block:
        streams = replace(streams, detail=detail_everywhere(side, bundle.latent_tables))
    header = container.Header("RGB", codec.model_id, side, side, 75.0, two_pass=bundle.context is not None)
    return container.pack(header, streams)


def detail_everywhere(side: int, tables: entropy.EntropyTables) -> bytes:
    """The detail stream of a side x side image that codes every block with table 0, every value 0."""
    block = detail_choice.BLOCK
    blocks = -(-side // block)
    band_rows = [min(detail.BAND_BLOCKS * block, side - top) for top in range(0, side, detail.BAND_BLOCKS * block)]
    layer = detail.Detail(1, block, np.zeros((3, blocks, blocks), np.uint8),
                          tuple(np.zeros(3 * rows * side, np.int16) for rows in band_rows))
    return detail.encode(layer, side, side, tables)


def file_paths(folder: Path) -> dict[str, Path]:
    return {name: folder / f"{name}.{suffix}" for name, suffix in
            (("photo", "png"), ("detail", "aec"), ("crafted", "aec"), ("crafted_detail", "aec"))}


def make_files(args, folder: Path) -> None:
    """The photo as a PNG, and every .aec file but the compress step's (file_paths)."""
    rgb = photo(args.width, args.height)
    paths = file_paths(folder)
    Image.fromarray(rgb).save(paths["photo"], compress_level=1)
    codec = Codec(args.weights, threads=args.threads)
    paths["detail"].write_bytes(with_detail(codec, codec.compress(rgb, quality=100, detail=False), rgb))
    paths["crafted"].write_bytes(crafted(codec, args.crafted_side))
    paths["crafted_detail"].write_bytes(crafted(codec, args.crafted_side, every_block=True))


def make_files_apart(args, folder: Path) -> dict[str, Path]:
    """make_files in a process of its own. This one must stay small: Linux keeps a process's peak RSS
    across exec, so each step's ru_maxrss starts from this process's size when it forked the step."""
    maker = multiprocessing.get_context("spawn").Process(target=make_files, args=(args, folder))
    maker.start()
    maker.join()
    if maker.exitcode:
        raise SystemExit("making the test files failed")
    return file_paths(folder)


def run_step(step: str, weights: str, threads: int, source: Path, target: Path, package: str | None = None) -> dict:
    """One step in a fresh process; package: a folder whose aecodec the step imports instead."""
    command = [sys.executable, "-c", CHILD, step, weights, str(threads), str(source), str(target)]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [package, os.environ.get("PYTHONPATH")])))
    # From the files' folder: "python -c" puts the working directory first on sys.path, before PYTHONPATH.
    result = subprocess.run(command, capture_output=True, text=True, check=False, env=env if package else None,
                            cwd=source.parent)
    if result.returncode != 0:
        raise SystemExit(f"{step} failed:\n{result.stderr}")
    report = json.loads(result.stdout.strip().splitlines()[-1])
    report["bytes_in"] = source.stat().st_size
    print(json.dumps(report), flush=True)
    return report


def decompress_steps(args, coded: Path, files: dict[str, Path], folder: Path) -> dict:
    """Each decompress step: its file's size and format version, its run, and the baseline's."""
    steps = {}
    cases = (("decompress", coded), ("decompress_detail", files["detail"]), ("decompress_crafted", files["crafted"]),
             ("decompress_crafted_detail", files["crafted_detail"]))
    for name, source in cases:
        header = container.read_header(source.read_bytes())
        back = folder / f"{name}.png"
        steps[name] = run_step("decompress", args.weights, args.threads, source, back)
        steps[name].update(image=f"{header.width}x{header.height}", version=header.version)
        with Image.open(back) as decoded:
            assert decoded.size == (header.width, header.height)
        if args.baseline:
            back.unlink()
            steps[name]["baseline"] = run_step("decompress", args.weights, args.threads, source, back, args.baseline)
    return steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--weights", default=str(ROOT / "weights" / "main"))
    parser.add_argument("--width", type=int, default=6000)
    parser.add_argument("--height", type=int, default=4000)
    parser.add_argument("--crafted-side", type=int, default=CRAFTED_SIDE)
    parser.add_argument("--threads", type=int, default=0, help="ONNX Runtime threads (0: one per core).")
    parser.add_argument("--baseline", help="a folder holding an older aecodec package, to decode the same files")
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "large_image.json"))
    args = parser.parse_args()
    args.weights = str(Path(args.weights).resolve())  # the steps run from another folder
    load_at_start = os.getloadavg()  # seconds on a busy machine say little without it
    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        files = make_files_apart(args, folder)
        coded = folder / "photo.aec"
        steps = {step: run_step(step, args.weights, args.threads, files["photo"], coded)
                 for step in ("load", "compress")}
        steps.update(decompress_steps(args, coded, files, folder))
    manifest = json.loads((Path(args.weights) / "manifest.json").read_text())
    peak = max(steps[s]["peak_rss_mb"] for s in ("load", "compress", "decompress"))
    report = {"image": f"{args.width}x{args.height}", "model_id": manifest.get("model_id"),
              "model_config": manifest.get("model_config"), "threads": args.threads, "steps": steps,
              "peak_rss_mb": peak, "limit_mb": LIMIT_MB, "within_limit": peak <= LIMIT_MB,
              "decoder": git_commit(ROOT),
              "baseline": args.baseline and (git_commit(Path(args.baseline)) or Path(args.baseline).name),
              "environment": {"python": platform.python_version(), "machine": platform.machine(),
                              "numpy": np.__version__, "date": time.strftime("%Y-%m-%d"), "cores": os.cpu_count(),
                              "load_average": {"start": round(load_at_start[0], 1),
                                               "end": round(os.getloadavg()[0], 1)}}}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
    print(f"peak {peak} MB (limit {LIMIT_MB} MB); wrote {args.out}")


def git_commit(folder: Path) -> str | None:
    """The commit a checkout is at, with "+changes" when its files differ from it; None outside git."""
    def git(*command: str) -> str:
        return subprocess.run(["git", "-C", str(folder), *command], capture_output=True, text=True).stdout.strip()
    commit = git("rev-parse", "--short", "HEAD")
    return commit and commit + ("+changes" if git("status", "--porcelain", "--untracked-files=no") else "")


if __name__ == "__main__":
    main()
