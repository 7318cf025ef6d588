"""`aecodec bench --speed`: where compress and decompress time goes, for our codec alone."""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from aecodec.bench.runner import environment, peak_rss_mb, timed

# context and entropy_coding_second_pass: the second pass of format version 3 (a model with a checkerboard context)
STAGES = ("analysis", "hyper_analysis", "hyper_synthesis", "entropy_coding", "context", "entropy_coding_second_pass",
          "synthesis", "deblocking", "detail")
SECOND_PASS = ("context", "entropy_coding_second_pass")


def _timed_call(fn, *args) -> tuple[float, dict, object]:
    """(seconds, seconds per stage, result) of codec.encode or codec.decode."""
    result, total = timed(lambda: fn(*args, timed=True))
    return total, result.timings, result


def _median_ms(fn, repeats: int) -> float:
    return round(1000 * statistics.median(timed(fn)[1] for _ in range(repeats)), 2)


def measure_file_io(source: Path, data: bytes, image, repeats: int) -> dict:
    """What the command line adds around the codec: reading the input file and writing the output.

    ``data`` is the compressed file and ``image`` its decoded PIL image. Compress reads and decodes the image, then writes the .aec (atomically, with fsync);
    decompress reads the .aec, then encodes and writes a PNG the same way.
    """
    from aecodec.batch import encode_image
    from aecodec.files import atomic_write
    from aecodec.imageio import load_image

    with tempfile.TemporaryDirectory() as folder:
        aec, png = Path(folder) / "out.aec", Path(folder) / "out.png"
        steps = {
            "read_image": _median_ms(lambda: load_image(source), repeats),
            "write_aec": _median_ms(lambda: atomic_write(aec, data, force=True), repeats),
            "read_aec": _median_ms(aec.read_bytes, repeats),
            "write_png": _median_ms(lambda: atomic_write(png, encode_image(image, "PNG")[0], force=True), repeats),
        }
    return {"compress": round(steps["read_image"] + steps["write_aec"], 2),
            "decompress": round(steps["read_aec"] + steps["write_png"], 2), "steps": steps}


def measure_command_line(data: bytes, weights: Path, threads: int, repeats: int) -> dict:
    """Wall time of one whole ``aecodec decompress in.aec -o out.png`` process, as from a shell:
    interpreter start-up, imports, model load, decoding and writing the PNG (median of repeats).

    It runs ``python -m aecodec`` (what the console script does) on this same aecodec package;
    a launcher in front of it (pyenv's shims, say) would add its own time.
    """
    import aecodec
    package_root = str(Path(aecodec.__file__).resolve().parents[1])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([package_root, os.environ.get("PYTHONPATH", "")])}
    with tempfile.TemporaryDirectory() as folder:
        aec, png = Path(folder) / "in.aec", Path(folder) / "out.png"
        aec.write_bytes(data)
        command = [sys.executable, "-m", "aecodec", "decompress", str(aec), "-o", str(png), "-f",
                   "--threads", str(threads), "--weights", str(weights)]
        ms = _median_ms(lambda: subprocess.run(command, check=True, capture_output=True, env=env), repeats)
    return {"command": "aecodec decompress in.aec -o out.png", "decompress_ms": ms}


def measure_speed(codec, rgb: np.ndarray, quality: float = 75, repeats: int = 5, threads: int = 0,
                  source: Path | None = None, load_ms: float | None = None) -> dict:
    """Median milliseconds of whole compress/decompress calls and of each stage within them.

    'other' is the rest of the call: image conversion, container, alpha, Python overhead.
    With ``source`` (the file rgb came from) the file reading and writing around the calls
    is timed too, and whole ``aecodec decompress`` processes; ``load_ms`` records how long
    the model took to load.
    """
    codec.decompress(codec.compress(rgb, quality=quality))  # warm-up: session init, allocator
    report = {"image": f"{rgb.shape[1]}x{rgb.shape[0]}", "quality": quality, "repeats": repeats}
    data = None
    for name in ("compress", "decompress"):
        totals, stages = [], {s: [] for s in (*STAGES, "other")}
        for _ in range(repeats):
            if name == "compress":
                total, spent, encoded = _timed_call(codec.encode, rgb, quality)
                data = encoded.data
            else:
                total, spent, decoded = _timed_call(codec.decode, data)
                image = decoded.image
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
    report["model"], report["format_version"] = codec.bundle.model_id.hex(), data[4]  # the header's version byte
    if source is not None:
        report["file_io"] = measure_file_io(Path(source), data, image, repeats)
        report["command_line"] = measure_command_line(data, codec.bundle.folder, threads, repeats)
    if load_ms is not None:
        report["model_load_ms"] = round(load_ms, 1)
    report["environment"] = environment(threads)
    report["peak_rss_mb"] = peak_rss_mb()
    return report


def speed_table(report: dict) -> list[str]:
    """The stage-by-stage table of a speed report, as markdown lines."""
    lines = ["| stage | compress ms | decompress ms |", "| --- | ---: | ---: |"]
    rows = [(stage, report["compress"].get(stage), report["decompress"].get(stage))
            for stage in (*STAGES, "other", "total")]
    io = report.get("file_io")
    if io:
        rows += [("file I/O (read input, write output)", io["compress"], io["decompress"]),
                 ("total with file I/O", report["compress"]["total"] + io["compress"],
                  report["decompress"]["total"] + io["decompress"])]
    command_line = report.get("command_line")
    if command_line:
        rows.append((f"one `{command_line['command']}` from a shell, start-up included", None,
                     command_line["decompress_ms"]))
    for stage, c, d in rows:
        if c is not None or d is not None:
            lines.append(f"| {stage} | {'' if c is None else f'{c:.1f}'} | {'' if d is None else f'{d:.1f}'} |")
    if "model_load_ms" in report:
        lines += ["", f"Loading the model (once per process, not in the rows above): {report['model_load_ms']:.0f} ms."]
    second_pass = sum(report["decompress"].get(stage, 0.0) for stage in SECOND_PASS)
    if second_pass:
        lines += ["", f"The second pass (the context network and its entropy decoding) takes {second_pass:.1f} ms, "
                      f"{100 * second_pass / report['decompress']['total']:.1f}% of the decompress."]
    return lines


def speed_markdown(report: dict) -> str:
    header = (f"Image {report['image']}, quality {report['quality']}, median of {report['repeats']} runs, "
              f"{report['environment'].get('threads')} thread(s).")
    return "\n".join([header, "", *speed_table(report)]) + "\n"
