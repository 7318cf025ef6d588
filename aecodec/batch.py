"""Many files at once: output paths, worker processes, progress, failure policy.

A typical workflow looks like this::

    tasks = plan(["photos/"], out_dir="out", suffix=".aec", kind="compress")
    summary = run(tasks, Options(kind="compress", quality=60), jobs=2)
"""

from __future__ import annotations

import os
import sys
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path

from tqdm import tqdm

from .codec import Codec
from .files import atomic_write
from .imageio import IMAGE_SUFFIXES

AEC_SUFFIX = ".aec"


@dataclass(frozen=True)
class Task:
    source: Path
    dest: Path


@dataclass(frozen=True)
class Options:
    kind: str  # "compress" or "decompress"
    quality: float | None = None
    target_bpp: float | None = None
    target_size: int | None = None
    image_format: str | None = None  # Pillow format for decompress outputs
    force: bool = False
    allow_large: bool = False
    weights: str | None = None


@dataclass
class Outcome:
    task: Task
    bytes_in: int = 0
    bytes_out: int = 0
    error: str | None = None
    warnings: list[str] = field(default_factory=list)


@dataclass
class Summary:
    done: int = 0
    failed: int = 0
    bytes_in: int = 0
    bytes_out: int = 0

    def line(self, kind: str) -> str:
        ratio = f" ({self.bytes_in / self.bytes_out:.2f}x)" if self.bytes_out and kind == "compress" else ""
        failed = f", {self.failed} failed" if self.failed else ""
        return (f"{kind}ed {self.done} file{'s' * (self.done != 1)}{failed}: "
                f"{self.bytes_in / 1e6:.2f} MB -> {self.bytes_out / 1e6:.2f} MB{ratio}")


def _inputs(path: Path, suffixes: set[str]) -> list[tuple[Path, Path]]:
    """(file, path relative to the input root) for a file or every matching file under a folder."""
    if path.is_dir():
        return [(p, p.relative_to(path)) for p in sorted(path.rglob("*"))
                if p.is_file() and p.suffix.lower() in suffixes]
    return [(path, Path(path.name))]


def plan(inputs: list[str], out_dir: str | None, suffix: str, kind: str, output: str | None = None) -> list[Task]:
    """Where each input's output goes: -o for one file, else out_dir mirroring folders, else beside it."""
    suffixes = IMAGE_SUFFIXES | {".gif", ".jxl", ".avif", ".jp2", ".tga"} if kind == "compress" else {AEC_SUFFIX}
    tasks = []
    for name in inputs:
        for source, relative in _inputs(Path(name), suffixes):
            if output:
                dest = Path(output)
            elif out_dir:
                dest = Path(out_dir) / relative.with_suffix(suffix)
            else:
                dest = source.with_suffix(suffix)
            tasks.append(Task(source, dest))
    if output and len(tasks) > 1:
        raise ValueError("-o/--output names one file; use --out-dir for several inputs")
    return tasks


def process(codec: Codec, task: Task, options: Options) -> Outcome:
    """Run one task; any failure becomes Outcome.error rather than an exception."""
    outcome = Outcome(task)
    try:
        if task.dest.exists() and not options.force:
            raise FileExistsError(f"{task.dest} already exists (use -f/--force to overwrite)")
        data_in = task.source.read_bytes()
        outcome.bytes_in = len(data_in)
        if options.kind == "compress":
            data = codec.compress(task.source, options.quality, options.target_bpp, options.target_size,
                                  options.allow_large)
        else:
            data = encode_image(codec.decompress(data_in), options.image_format or format_for(task.dest))
        outcome.warnings = list(codec.warnings)
        atomic_write(task.dest, data, options.force)
        outcome.bytes_out = len(data)
    except (OSError, ValueError, RuntimeError) as error:
        outcome.error = error.strerror if isinstance(error, OSError) and error.strerror else str(error)
    return outcome


def format_for(path: Path) -> str:
    from PIL import Image
    Image.init()
    extension = path.suffix.lower()
    if extension not in Image.EXTENSION:
        raise ValueError(f"cannot tell an image format from {path.name!r}: use --format")
    return Image.EXTENSION[extension]


def encode_image(image, image_format: str) -> bytes:
    """A decoded PIL.Image as the bytes of an image file, keeping ICC and EXIF where the format can."""
    import io
    fmt = image_format.upper().replace("JPG", "JPEG")
    warnings = []
    if fmt == "JPEG" and image.mode in ("RGBA", "LA"):
        image = image.convert(image.mode[:-1])
        warnings.append("JPEG cannot hold alpha: the alpha channel was dropped")
    extra = {k: image.info[k] for k in ("icc_profile", "exif") if image.info.get(k)}
    buffer = io.BytesIO()
    try:
        image.save(buffer, format=fmt, **extra)
    except (KeyError, ValueError) as error:
        raise ValueError(f"cannot write format {image_format!r}: {error}") from None
    return buffer.getvalue()


_worker_codec: Codec | None = None  # one per worker process, built by _init_worker


def _init_worker(weights: str | None, threads: int) -> None:
    global _worker_codec
    _worker_codec = Codec(weights, threads=threads)


def _work(task: Task, options: Options) -> Outcome:
    return process(_worker_codec, task, options)


def run(tasks: list[Task], options: Options, jobs: int = 1, threads: int = 0,
        fail_fast: bool = False, progress: bool = True, report=None) -> Summary:
    """Process tasks with `jobs` worker processes; report(outcome) sees each result."""
    cores = os.cpu_count() or 1
    threads = threads or max(1, cores // max(jobs, 1))  # jobs x threads <= cores
    summary = Summary()
    bar = tqdm(total=len(tasks), unit="file", disable=not progress or len(tasks) < 2, file=sys.stderr,
               desc=options.kind)

    def account(outcome: Outcome) -> bool:
        summary.done += outcome.error is None
        summary.failed += outcome.error is not None
        summary.bytes_in += outcome.bytes_in
        summary.bytes_out += outcome.bytes_out
        if report:
            report(outcome)
        ratio = summary.bytes_in / summary.bytes_out if summary.bytes_out and options.kind == "compress" else 0
        bar.set_postfix_str(f"{summary.bytes_in / 1e6:.1f}MB -> {summary.bytes_out / 1e6:.1f}MB"
                            + (f" {ratio:.1f}x" if ratio else ""))
        bar.update(1)
        return fail_fast and outcome.error is not None

    if jobs <= 1:
        codec = Codec(options.weights, threads=threads)
        for task in tasks:
            if account(process(codec, task, options)):
                break
    else:
        with ProcessPoolExecutor(jobs, initializer=_init_worker, initargs=(options.weights, threads)) as pool:
            pending = {pool.submit(_work, task, options) for task in tasks}
            while pending:
                finished, pending = wait(pending, return_when=FIRST_COMPLETED)
                if any([account(f.result()) for f in finished]):
                    for future in pending:
                        future.cancel()
                    break
    bar.close()
    return summary
