"""`aecodec bench --speed`: where compress and decompress time goes, for our codec alone."""

from __future__ import annotations

import statistics
import time

import numpy as np

from aecodec.bench.runner import environment, peak_rss_mb

STAGES = ("analysis", "hyper_analysis", "hyper_synthesis", "entropy_coding", "synthesis")


def _timed_call(codec, fn, *args) -> tuple[float, dict, object]:
    start = time.perf_counter()
    result = fn(*args)
    total = time.perf_counter() - start
    return total, dict(codec.timings.stages), result


def measure_speed(codec, rgb: np.ndarray, quality: float = 75, repeats: int = 5, threads: int = 0) -> dict:
    """Median milliseconds of whole compress/decompress calls and of each stage within them.

    'other' is the rest of the call: image conversion, container, alpha, Python overhead.
    """
    codec.decompress(codec.compress(rgb, quality=quality))  # warm-up: session init, allocator
    report = {"image": f"{rgb.shape[1]}x{rgb.shape[0]}", "quality": quality, "repeats": repeats}
    data = None
    for name in ("compress", "decompress"):
        totals, stages = [], {s: [] for s in (*STAGES, "other")}
        for _ in range(repeats):
            if name == "compress":
                total, spent, data = _timed_call(codec, codec.compress, rgb, quality)
            else:
                total, spent, _ = _timed_call(codec, codec.decompress, data)
            totals.append(total)
            for stage in STAGES:
                stages[stage].append(spent.get(stage, 0.0))
            # per run, so that it never goes negative as a difference of separate medians would
            stages["other"].append(total - sum(spent.get(stage, 0.0) for stage in STAGES))
        row = {stage: 1000 * statistics.median(v) for stage, v in stages.items() if any(v)}
        row["total"] = 1000 * statistics.median(totals)
        row["megapixels_per_second"] = rgb.shape[0] * rgb.shape[1] / 1e6 / (row["total"] / 1000)
        report[name] = {k: round(v, 2) for k, v in row.items()}
    report["bytes"] = len(data)
    report["environment"] = environment(threads)
    report["peak_rss_mb"] = peak_rss_mb()
    return report


def speed_markdown(report: dict) -> str:
    stages = [s for s in (*STAGES, "other", "total")]
    lines = [f"Image {report['image']}, quality {report['quality']}, median of {report['repeats']} runs, "
             f"{report['environment'].get('threads')} thread(s).", "",
             "| stage | compress ms | decompress ms |", "| --- | ---: | ---: |"]
    for stage in stages:
        c, d = report["compress"].get(stage), report["decompress"].get(stage)
        lines.append(f"| {stage} | {'' if c is None else f'{c:.1f}'} | {'' if d is None else f'{d:.1f}'} |")
    return "\n".join(lines) + "\n"
