"""``aecodec bench``: compare codecs on a set of images.

A typical workflow looks like this::

    results = main_bench(["/data/kodak"], ["jpeg", "webp"], "out/",
                         references=[Path("kodak__jpeg.json")])
    # out/results.json, results.csv, summary.md, rd_psnr.png, rd_ms_ssim_db.png

No torch here; matplotlib is imported only when the plots are drawn.
"""

from __future__ import annotations

from pathlib import Path

from aecodec.bench.codecs import NO_DETAIL, CodecSpec, available_codecs, requested_efforts
from aecodec.bench.curves import Curve, load_reference, load_references
from aecodec.bench.report import write_report
from aecodec.bench.runner import BenchResults, find_images, run_bench

__all__ = ["BenchResults", "CodecSpec", "Curve", "available_codecs", "find_images", "load_reference",
           "load_references", "main_bench", "run_bench", "select_codecs", "write_report"]


def main_bench(dirs_or_files, codecs: list[str] | None, out_dir, references=(), repeats: int = 1,
               threads: int = 1, aecodec_codec=None, progress: bool = True, plots: bool = True) -> BenchResults:
    """Bench ``codecs`` (None: all available) on the images and write the report to ``out_dir``.

    ``references`` are CompressAI results JSON files, overlaid on the plots and
    included in the BD-rate matrices. ``aecodec_codec`` is our codec object;
    without it, ``aecodec`` cannot be selected.
    """
    refs = load_references(references)  # fail on a bad file before the long run
    specs = select_codecs(codecs, available_codecs(aecodec_codec, threads, requested_efforts(codecs),
                                                   NO_DETAIL in (codecs or ())))
    images = find_images(dirs_or_files)
    results = run_bench(images, specs, repeats, progress, threads)
    write_report(results, out_dir, refs, plots, image_set(dirs_or_files, len(images)))
    return results


def image_set(dirs_or_files, count: int) -> str:
    """What the plots were measured on, for their titles: "kodak, 24 images"."""
    names = ", ".join(Path(item).resolve().name for item in dirs_or_files)
    return f"{names}, {count} image{'s' * (count != 1)}"


def select_codecs(names: list[str] | None, available: dict[str, CodecSpec]) -> dict[str, CodecSpec]:
    """The named codecs in the order given; all of them when ``names`` is None."""
    if names is None:
        return dict(available)
    unknown = [n for n in names if n not in available]
    if unknown:
        hint = " (aecodec needs a model)" if "aecodec" in unknown else ""
        msg = f"unavailable codec(s) {', '.join(unknown)}{hint}; available: {', '.join(available)}"
        raise ValueError(msg)
    return {n: available[n] for n in names}

