"""Write a bench run out: JSON, CSV, a markdown summary with BD-rate matrices, RD plots.

A typical workflow looks like this::

    refs = load_references(["kodak__jpeg.json"])
    paths = write_report(results, "out/", refs)   # {"json": ..., "csv": ..., ...}
"""

from __future__ import annotations

import csv
import dataclasses
import json
import math
from pathlib import Path

from aecodec.bench.curves import METRICS, Curve, load_reference, load_references
from aecodec.metrics import bd_rate

__all__ = ["bd_matrix", "load_reference", "load_references", "markdown", "write_report"]

METRIC_TITLES = {"psnr": "PSNR-RGB (dB)", "ms_ssim_db": "MS-SSIM-RGB (dB)"}


def write_report(results, out_dir, references=(), plots: bool = True, title: str = "") -> dict[str, Path]:
    """Write results.json, results.csv, summary.md and, with ``plots``, rd_*.png titled with the image set."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"json": out / "results.json", "csv": out / "results.csv", "markdown": out / "summary.md"}
    write_json(results, paths["json"])
    write_csv(results, paths["csv"])
    paths["markdown"].write_text(markdown(results, references))
    if plots:
        from aecodec.bench.plots import plot_rd  # matplotlib only when a picture is wanted

        curves = [results.curve(c) for c in results.codecs()] + list(references)
        for metric in METRICS:
            paths[f"plot_{metric}"] = plot_rd(curves, metric, out / f"rd_{metric}.png", title=title)
    return paths


def write_json(results, path: Path) -> None:
    doc = {
        "env": results.env,
        "codecs": results.notes,
        "peak_rss_mb": results.peak_rss_mb,
        "means": results.means(),
        "measurements": [dataclasses.asdict(m) for m in results.measurements],
    }
    # Lossless points have infinite PSNR; JSON has no inf, so write null.
    Path(path).write_text(json.dumps(_finite(doc), indent=2) + "\n")


def write_csv(results, path: Path) -> None:
    names = [f.name for f in dataclasses.fields(results.measurements[0])] if results.measurements else []
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=names)
        writer.writeheader()
        writer.writerows(dataclasses.asdict(m) for m in results.measurements)


def markdown(results, references=()) -> str:
    """Per-codec tables, then BD-rate matrices on PSNR and on MS-SSIM (dB)."""
    env = results.env
    lines = ["# aecodec bench", "",
             f"{len({m.image for m in results.measurements})} images, {env['date']}, "
             f"{env['cpu']}, {env['threads']} thread(s), Python {env['python']}, Pillow {env['pillow']}.", ""]
    for codec in results.codecs():
        lines += _codec_table(results, codec)
    curves = [results.curve(c) for c in results.codecs()] + list(references)
    for metric in METRICS:
        lines += _matrix_table(curves, metric)
    return "\n".join(lines)


def _codec_table(results, codec: str) -> list[str]:
    rows = [r for r in results.means() if r["codec"] == codec]
    peak = results.peak_rss_mb.get(codec, math.nan)
    lines = [f"## {codec}", "", f"{results.notes.get(codec, '')}. Peak RSS so far: {peak:.0f} MB.", "",
             "| quality | bpp | PSNR (dB) | MS-SSIM | encode ms | decode ms | encode MPx/s | decode MPx/s |",
             "|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['quality']:g} | {r['bpp']:.4f} | {r['psnr']:.3f} | {r['ms_ssim']:.5f} "
                     f"| {r['encode_ms']:.1f} | {r['decode_ms']:.1f} | {r['encode_mpx_s']:.2f} | {r['decode_mpx_s']:.2f} |")
    return lines + [""]


def bd_matrix(curves: list[Curve], metric: str) -> list[list]:
    """BDResult of each row curve (test) against each column curve (anchor), None on the diagonal."""
    usable = [c for c in curves if c.has(metric)]
    return [[None if a is b else bd_rate(a.bpp, a.quality(metric), b.bpp, b.quality(metric))
             for a in usable] for b in usable]


def _matrix_table(curves: list[Curve], metric: str) -> list[str]:
    usable = [c for c in curves if c.has(metric)]
    if len(usable) < 2:
        return []
    names = [c.name + (" (ref)" if c.reference else "") for c in usable]
    lines = [f"## BD-rate, {METRIC_TITLES[metric]}", "",
             "Row against column: negative means the row codec needs fewer bits for the same quality. "
             "In brackets, the quality range (dB) both curves cover.", "",
             "| test \\ anchor | " + " | ".join(names) + " |",
             "|---|" + "---:|" * len(names)]
    for name, row in zip(names, bd_matrix(usable, metric)):
        lines.append(f"| {name} | " + " | ".join(_bd_cell(r) for r in row) + " |")
    return lines + [""]


def _bd_cell(r) -> str:
    if r is None:
        return "–"
    if math.isnan(r.percent):
        return "n/a"
    return f"{r.percent:+.1f}% [{r.low:.2f}–{r.high:.2f}]"


def _finite(obj):
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    return obj
