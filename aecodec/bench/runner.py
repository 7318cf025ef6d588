"""Run every codec over every image and quality, measuring size, quality and speed.

A typical workflow looks like this::

    paths = find_images(["/data/kodak"])
    results = run_bench(paths, available_codecs(), repeats=3)
    results.means()          # one row per (codec, quality), averaged over images
    results.curve("webp")    # a Curve for BD-rate and plots
"""

from __future__ import annotations

import math

import os
import platform
import resource
import statistics
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path

import numpy as np
from PIL import Image, features
from tqdm import tqdm

from aecodec.bench.curves import Curve
from aecodec.metrics import ms_ssim, psnr

IMAGE_SUFFIXES = {".png", ".ppm", ".pnm", ".bmp", ".tif", ".tiff"}  # lossless sources only
MEAN_FIELDS = ("bpp", "psnr", "ms_ssim", "encode_ms", "decode_ms")


@dataclass(frozen=True)
class Measurement:
    """One image coded at one quality by one codec."""

    codec: str
    image: str
    quality: float
    width: int
    height: int
    bytes: int
    bpp: float
    psnr: float
    ms_ssim: float
    encode_ms: float  # median over repeats
    decode_ms: float


@dataclass
class BenchResults:
    measurements: list[Measurement]
    notes: dict[str, str]  # codec name -> settings and library version
    env: dict
    peak_rss_mb: dict[str, float] = field(default_factory=dict)  # ru_maxrss after each codec

    def codecs(self) -> list[str]:
        return list(dict.fromkeys(m.codec for m in self.measurements))

    def means(self) -> list[dict]:
        """Per codec and quality, the mean over images of bpp, PSNR, MS-SSIM and times."""
        groups: dict[tuple[str, float], list[Measurement]] = {}
        for m in self.measurements:
            groups.setdefault((m.codec, m.quality), []).append(m)
        rows = []
        for (codec, quality), ms in groups.items():
            row = {"codec": codec, "quality": quality, "images": len(ms),
                   **{f: float(np.mean([getattr(m, f) for m in ms])) for f in MEAN_FIELDS}}
            megapixels = float(np.mean([m.width * m.height for m in ms])) / 1e6
            # Throughput of the whole set: mean pixels over mean time, not a mean of ratios.
            for step in ("encode", "decode"):
                ms_per_image = row[f"{step}_ms"]
                row[f"{step}_mpx_s"] = megapixels / (ms_per_image / 1e3) if ms_per_image > 0 else math.nan
            rows.append(row)
        return rows

    def curve(self, codec: str) -> Curve:
        rows = [row for row in self.means() if row["codec"] == codec]
        return Curve(codec, *(tuple(row[f] for row in rows) for f in ("bpp", "psnr", "ms_ssim")))


def find_images(dirs_or_files) -> list[Path]:
    """Image files named directly, plus the lossless images inside directories, sorted."""
    paths: list[Path] = []
    for item in map(Path, dirs_or_files):
        if item.is_dir():
            paths += sorted(p for p in item.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        elif item.is_file():
            paths.append(item)
        else:
            msg = f"no such file or directory: {item}"
            raise FileNotFoundError(msg)
    if not paths:
        msg = f"no images found in {list(map(str, dirs_or_files))}"
        raise ValueError(msg)
    return paths


def load_rgb(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))


def run_bench(image_paths, codecs, repeats: int = 1, progress: bool = True, threads: int = 1) -> BenchResults:
    """Measure each codec (a dict or list of CodecSpec) on each image at each quality."""
    specs = list(codecs.values()) if isinstance(codecs, dict) else list(codecs)
    images = [(Path(p).name, load_rgb(Path(p))) for p in image_paths]
    total = sum(len(spec.qualities) for spec in specs) * len(images)
    results = BenchResults([], {s.name: s.note for s in specs}, environment(threads))
    # As batch does: a bar on a terminal only (disable=None), never carriage-return frames in a log.
    with tqdm(total=total, disable=None if progress else True, unit="code", desc="bench", file=sys.stderr) as bar:
        for spec in specs:
            bar.set_postfix_str(spec.name)
            for name, rgb in images:
                for quality in spec.qualities:
                    results.measurements.append(measure(spec, name, rgb, quality, repeats))
                    bar.update()
            results.peak_rss_mb[spec.name] = peak_rss_mb()
    return results


def measure(spec, name: str, rgb: np.ndarray, quality: float, repeats: int = 1) -> Measurement:
    """Encode and decode ``repeats`` times; sizes and metrics come from the first round."""
    data, seconds = timed(spec.encode, rgb, quality)
    encode_s = [seconds]
    decoded, seconds = timed(spec.decode, data)
    decode_s = [seconds]
    for _ in range(repeats - 1):
        encode_s.append(timed(spec.encode, rgb, quality)[1])
        decode_s.append(timed(spec.decode, data)[1])
    if decoded.shape != rgb.shape:
        msg = f"{spec.name} at quality {quality} decoded {name} to {decoded.shape}, expected {rgb.shape}"
        raise ValueError(msg)
    h, w = rgb.shape[:2]
    return Measurement(spec.name, name, quality, w, h, len(data), 8 * len(data) / (w * h),
                       psnr(rgb, decoded), ms_ssim(rgb, decoded),
                       1e3 * statistics.median(encode_s), 1e3 * statistics.median(decode_s))


def timed(fn, *args):
    start = time.perf_counter()
    out = fn(*args)
    return out, time.perf_counter() - start


def peak_rss_mb() -> float:
    # Linux reports ru_maxrss in KiB (macOS in bytes); this is the process's peak so far.
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def environment(threads: int) -> dict:
    """Where and with what the numbers were measured."""
    libs = ("jpg", "libjpeg_turbo", "webp", "avif", "jpg_2000", "zlib")
    return {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "numpy": np.__version__,
        "pillow": _dist_version("pillow"),
        "pillow_libraries": {lib: features.version(lib) for lib in libs},
        "imagecodecs": _dist_version("imagecodecs"),
        "onnxruntime": _dist_version("onnxruntime"),
        "cpu": cpu_model(),
        "cpu_count": os.cpu_count(),
        "threads": threads,
    }


def _dist_version(name: str) -> str | None:
    # Read from package metadata, so recording a version never imports the package.
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()
