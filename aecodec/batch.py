"""Many files at once: output paths, worker processes, progress, failure policy.

A typical workflow looks like this::

    tasks = plan(["photos/"], out_dir="out", suffix=".aec", kind="compress")
    summary = run(tasks, Options(kind="compress", quality=60), jobs=2)
    print(summary.line("compress"))

A file that fails becomes an error in its Outcome and the others carry on
(unless fail_fast); only a model that cannot load, or a worker that dies,
stops the whole run with an exception.
"""

from __future__ import annotations

import contextlib
import io
import os
import signal
import sys
import threading
from dataclasses import dataclass, field, replace
from pathlib import Path

from .codec import Codec
from .files import atomic_write, check_output
from .imageio import IMAGE_SUFFIXES

AEC_SUFFIX = ".aec"
ALWAYS_LOSSLESS = {"PNG", "BMP", "TIFF", "PPM", "TGA"}  # decompress outputs Pillow writes without loss
EXTRA_IMAGE_SUFFIXES = {".gif", ".jxl", ".avif", ".jp2", ".tga"}  # tried when found in folders; Pillow decides
# Decoded PNGs: zlib level 1 writes kodim23 in 24 ms for 620 KB, Pillow's default 6 in 115 ms for 561 KB
# (bench/results/speed/); --max-compression asks for level 9, 208 ms for 556 KB.
PNG_FAST_LEVEL = 1
PNG_SMALLEST_LEVEL = 9


@dataclass(frozen=True)
class Task:
    source: Path
    dest: Path
    make_parents: bool = False  # --out-dir creates the tree it mirrors; the folder of -o's file must exist


@dataclass(frozen=True)
class Options:
    kind: str  # "compress" or "decompress"
    quality: float | None = None
    target_bpp: float | None = None
    target_size: int | None = None
    image_format: str | None = None  # Pillow format for decompress outputs
    lossless: bool = False  # decompress: WebP outputs without loss
    max_compression: bool = False  # decompress: the smallest PNG (zlib level 9) instead of the fast default
    force: bool = False
    allow_large: bool = False
    weights: str | None = None
    effort: int = 0  # compress: refinement level, 0 = the single pass
    detail: bool = True  # compress: add the detail layer where it pays
    deblock: bool = True  # compress: have the decoder run the deblocking filter at low qualities
    progress: bool = False  # a bar for each refinement (set by run() for a single file)


@dataclass
class Outcome:
    task: Task
    bytes_in: int = 0
    bytes_out: int = 0
    error: str | None = None
    warnings: list[str] = field(default_factory=list)


def human_size(n: float) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000


@dataclass
class Summary:
    total: int = 0
    done: int = 0
    failed: int = 0
    bytes_in: int = 0
    bytes_out: int = 0

    def add(self, outcome: Outcome) -> None:
        """Count one file; its bytes only when it was coded, so that failures do not inflate the sizes."""
        if outcome.error is None:
            self.done += 1
            self.bytes_in += outcome.bytes_in
            self.bytes_out += outcome.bytes_out
        else:
            self.failed += 1

    def sizes(self, kind: str) -> str:
        """'1.2 MB -> 140.3 kB (8.6x)': bytes of the files coded so far, and the ratio for compression."""
        ratio = f" ({self.bytes_in / self.bytes_out:.1f}x)" if self.bytes_out and kind == "compress" else ""
        return f"{human_size(self.bytes_in)} -> {human_size(self.bytes_out)}{ratio}"

    def line(self, kind: str) -> str:
        failed = f", {self.failed} failed" if self.failed else ""
        skipped = self.total - self.done - self.failed
        skipped = f", {skipped} not attempted" if skipped > 0 else ""
        sizes = f": {self.sizes(kind)}" if self.done else ""  # nothing coded, nothing to measure
        return f"{kind}ed {self.done} file{'s' * (self.done != 1)}{failed}{skipped}{sizes}"


def _inputs(path: Path, suffixes: set[str]) -> list[tuple[Path, Path]]:
    """(file, path relative to the input root) for a file or every matching file under a folder."""
    if path.is_dir():
        return [(p, p.relative_to(path)) for p in sorted(path.rglob("*"))
                if p.is_file() and p.suffix.lower() in suffixes]
    return [(path, Path(path.name))]


def plan(inputs: list[str], out_dir: str | None, suffix: str, kind: str, output: str | None = None) -> list[Task]:
    """Where each input's output goes: -o for one file, else out_dir mirroring folders, else beside it."""
    suffixes = IMAGE_SUFFIXES | EXTRA_IMAGE_SUFFIXES if kind == "compress" else {AEC_SUFFIX}
    tasks = []
    for name in inputs:
        if name == "-":
            raise ValueError("'-' (stdin) must be the only input")
        for source, relative in _inputs(Path(name), suffixes):
            if output:
                dest = Path(output)
            elif out_dir:
                dest = Path(out_dir) / relative.with_suffix(suffix)
            else:
                dest = source.with_suffix(suffix)
            tasks.append(Task(source, dest, make_parents=bool(out_dir) and not output))
    if output and len(tasks) > 1:
        raise ValueError("-o/--output names one file; use --out-dir for several inputs")
    _check_unique(tasks)
    return tasks


def _check_unique(tasks: list[Task]) -> None:
    """photo.png and photo.jpg would both become photo.aec: refuse before writing anything."""
    seen: dict[Path, Path] = {}
    for task in tasks:
        if task.dest in seen:
            raise ValueError(f"{seen[task.dest]} and {task.source} would both be written to {task.dest}")
        seen[task.dest] = task.source


def process(codec: Codec, task: Task, options: Options) -> Outcome:
    """Run one task; any failure becomes Outcome.error rather than an exception."""
    outcome = Outcome(task)
    try:
        _check_dest(task, options.force)
        if options.kind == "compress":
            outcome.bytes_in = task.source.stat().st_size
            encoded = codec.encode(task.source, options.quality, options.target_bpp, options.target_size,
                                   options.allow_large, effort=options.effort, progress=options.progress,
                                   detail=options.detail, deblock=options.deblock)
            data, outcome.warnings = encoded.data, list(encoded.warnings)
        else:
            data_in = task.source.read_bytes()
            outcome.bytes_in = len(data_in)
            fmt = options.image_format or format_for(task.dest)
            if pillow_format(fmt) == "PNG":  # band by band, never the whole image: codec.decode_png
                level = PNG_SMALLEST_LEVEL if options.max_compression else PNG_FAST_LEVEL
                data = codec.decode_png(data_in, level, options.allow_large)
            else:
                image = codec.decompress(data_in, options.allow_large)
                data, outcome.warnings = encode_image(image, fmt, options.lossless, options.max_compression)
        atomic_write(task.dest, data, options.force, task.make_parents)
        outcome.bytes_out = len(data)
    except Exception as error:  # one bad file must not stop the others: it is reported instead
        outcome.error = _message(error, task.source)
    return outcome


def _check_dest(task: Task, force: bool) -> None:
    check_output(task.dest, force, task.make_parents)  # a directory, a missing folder, an existing file
    if task.dest.resolve() == task.source.resolve():
        raise ValueError("the output would replace the input")


def _message(error: Exception, source: Path) -> str:
    if isinstance(error, OSError) and error.strerror:
        text = error.strerror
    elif isinstance(error, (OSError, ValueError, RuntimeError, MemoryError)):
        text = str(error)
    else:  # not a failure we expect from a bad file: keep the type, it points at the cause
        text = f"{type(error).__name__}: {error}"
    return text.removeprefix(f"{source}: ")  # the report names the file already


# decode_png writes PNG itself (pngstream.py), so naming it needs none of Pillow's plugins; Image.preinit()
# would import those of PNG, JPEG, GIF, BMP and PPM (4 ms of a one-file decompress).
OWN_FORMATS = {".png": "PNG"}


def format_for(path: Path) -> str:
    extension = path.suffix.lower()
    if extension in OWN_FORMATS:
        return OWN_FORMATS[extension]
    from PIL import Image
    Image.preinit()  # the common formats: PNG, JPEG, BMP, GIF, PPM
    if extension not in Image.EXTENSION:
        Image.init()  # every plugin, 20 ms of imports: only for the rarer formats
    if extension not in Image.EXTENSION or Image.EXTENSION[extension] == "AEC":
        raise ValueError(f"cannot tell an image format from {path.name!r}: use --format")
    return Image.EXTENSION[extension]


def pillow_format(name: str) -> str:
    """The name Pillow saves a format under: 'jpg' -> 'JPEG'."""
    return name.upper().replace("JPG", "JPEG")


def check_lossless(fmt: str) -> None:
    """ValueError unless a Pillow format can be written without loss."""
    if fmt not in ALWAYS_LOSSLESS and fmt != "WEBP":
        raise ValueError(f"{fmt} output cannot be lossless: use png, tiff, bmp or webp")


def encode_image(image, image_format: str, lossless: bool = False,
                 max_compression: bool = False) -> tuple[bytes, list[str]]:
    """(bytes of an image file, warnings) for a decoded PIL.Image, keeping ICC and EXIF where the format can.

    Each format gets Pillow's defaults (JPEG quality 75 with 4:2:0 chroma, lossy WebP at quality 80),
    except that ``lossless`` writes WebP without loss, and PNG is written at zlib level 1
    (``max_compression``: 9); PNG, BMP and TIFF are lossless anyway.
    """
    fmt = pillow_format(image_format)
    warnings = []
    options = {k: image.info[k] for k in ("icc_profile", "exif") if image.info.get(k)}
    if fmt == "PNG":
        options["compress_level"] = PNG_SMALLEST_LEVEL if max_compression else PNG_FAST_LEVEL
    if lossless:
        check_lossless(fmt)
        if fmt == "WEBP":
            options.update(lossless=True, exact=True)  # exact: keep the colour under transparent pixels too
    if fmt == "JPEG" and image.mode in ("RGBA", "LA"):
        image = image.convert(image.mode[:-1])
        warnings.append("JPEG cannot hold alpha: the alpha channel was dropped")
    if fmt == "GIF":
        warnings.append("GIF holds at most 256 colours: the image was reduced to a palette")
    buffer = io.BytesIO()
    try:
        image.save(buffer, format=fmt, **options)
    except (KeyError, ValueError, OSError) as error:
        raise ValueError(f"cannot write format {image_format!r}: {error}") from None
    return buffer.getvalue(), warnings


def available_cores() -> int:
    """Cores this process may run on (taskset and cgroup CPU sets included), not the machine's total."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


def worker_shape(jobs: int, threads: int, tasks: int, cores: int) -> tuple[int, int]:
    """(processes, threads each): jobs capped at the cores and the tasks; threads default to cores // jobs."""
    jobs = max(1, min(jobs, cores, tasks))
    return jobs, threads or max(1, cores // jobs)  # so that jobs x threads <= cores


_worker_codec: Codec | None = None  # one per worker process, built by _init_worker
_worker_error: Exception | None = None


def _init_worker(weights: str | None, threads: int, parent: int) -> None:
    global _worker_codec, _worker_error
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # it arrives blocked (see _run_pool); this drops a pending one
    _exit_with_parent(parent)
    try:
        _worker_codec = Codec(weights, threads=threads)
    except Exception as error:  # raised again by _work, so the parent can report it once
        _worker_error = error


def _exit_with_parent(parent: int) -> None:
    """End this worker when the aecodec that started it is gone (kill -9 leaves no time to stop us).

    Orphaned, a worker would idle forever with the command's stderr open, so that a caller reading
    aecodec's output to its end would wait forever too. Linux kills us itself (PR_SET_PDEATHSIG);
    elsewhere a thread waits for the parent to go. The resource tracker needs nothing: it exits when
    the last of its pipe's writers, the parent and these workers, is gone.
    """
    if not _die_with_parent():
        threading.Thread(target=_watch_parent, name="aecodec-parent-watch", daemon=True).start()
    if os.getppid() != parent:  # the parent died before we asked: the kernel will not tell us any more
        os._exit(1)


PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>


def _die_with_parent() -> bool:
    """Have Linux SIGKILL this process when its parent ends; False where that cannot be asked.

    Strictly, the signal comes when the parent *thread* that started us ends: the pool's workers are
    started by the thread inside run(), which outlives the pool.
    """
    if not sys.platform.startswith("linux"):
        return False
    import ctypes  # here, not at the top: only workers need it, and a one-file command starts none
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return False
    return prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) == 0


def _watch_parent() -> None:
    """Exit once the parent is gone, where the kernel cannot be asked. Its sentinel, a pipe the parent holds
    open (on Windows, its process handle), becomes ready then; a parent id would not do on Windows,
    where an orphan keeps its parent's."""
    import multiprocessing.connection
    multiprocessing.connection.wait([multiprocessing.parent_process().sentinel])
    os._exit(1)


def _work(task: Task, options: Options) -> Outcome:
    if _worker_error is not None:
        raise _worker_error
    return process(_worker_codec, task, options)


def run(tasks: list[Task], options: Options, jobs: int = 1, threads: int = 0,
        fail_fast: bool = False, progress: bool = True, report=None) -> Summary:
    """Process tasks with `jobs` worker processes; report(outcome) sees each failure or warning."""
    jobs, threads = worker_shape(jobs, threads, len(tasks), available_cores())
    if progress and len(tasks) == 1 and options.effort:  # one long encode: a bar for its refinement instead
        options = replace(options, progress=True)
    summary = Summary(total=len(tasks))
    bar = _progress_bar(len(tasks), options.kind, progress)

    def account(outcome: Outcome) -> bool:
        summary.add(outcome)
        if report and (outcome.error or outcome.warnings):
            with bar.external_write_mode(file=sys.stderr):  # lift the bar, print, redraw it
                report(outcome)
        bar.set_postfix_str(summary.sizes(options.kind) + (f", {summary.failed} failed" if summary.failed else ""),
                            refresh=False)
        bar.update(1)
        return fail_fast and outcome.error is not None

    try:
        if jobs == 1:
            codec = Codec(options.weights, threads=threads)
            for task in tasks:
                if account(process(codec, task, options)):
                    break
        else:
            _run_pool(tasks, options, jobs, threads, account)
    finally:
        bar.close()
    return summary


class _NoBar:
    """The parts of a tqdm bar that run() uses, drawing nothing."""

    def set_postfix_str(self, text: str, refresh: bool = True) -> None:
        pass

    def update(self, n: int = 1) -> None:
        pass

    def close(self) -> None:
        pass

    @staticmethod
    def external_write_mode(file=None):
        return contextlib.nullcontext()


def _progress_bar(total: int, kind: str, progress: bool):
    """A tqdm bar for two files or more (drawn only on a terminal), else a _NoBar: a one-file command
    never imports tqdm, which costs it more than 10 ms of its start-up."""
    if not progress or total < 2:
        return _NoBar()
    from tqdm import tqdm
    return tqdm(total=total, unit="file", desc=kind, file=sys.stderr, disable=None)  # None: only on a terminal


def _run_pool(tasks: list[Task], options: Options, jobs: int, threads: int, account) -> None:
    # Imported here: a one-file command runs no pool, and multiprocessing costs its start-up 5 ms.
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed
    # spawn, not fork: the parent may hold ONNX Runtime and tqdm threads, which fork does not copy safely
    context = multiprocessing.get_context("spawn")
    # On Ctrl-C the files not started are cancelled, and leaving the block waits for those being written.
    with ProcessPoolExecutor(jobs, context, _init_worker,
                             (options.weights, threads, os.getpid())) as pool:
        futures, seen = {}, set()
        try:
            with _sigint_held():  # the workers start during submit
                futures.update({pool.submit(_work, task, options): task for task in tasks})
            for future in as_completed(futures):
                seen.add(future)
                if account(_result(future, futures[future])):
                    break
        finally:
            for future in futures:
                future.cancel()
        for future in futures:  # after a fail-fast stop, those already running finish: count them too
            if future not in seen and not future.cancelled():
                account(_result(future, futures[future]))


@contextlib.contextmanager
def _sigint_held():
    """Ctrl-C goes to the whole process group. Workers started in here inherit SIGINT blocked, so only
    the parent stops (handing out no more files) while each worker finishes the file it is on: nothing
    half-written, and no traceback from a worker interrupted while starting or inside ONNX Runtime.

    The parent holds the signal back until the block ends, rather than stop halfway through starting a
    worker. Blocking covers only this thread, and other threads (tqdm's, BLAS's) may take the signal,
    so a handler notes it for them too.
    """
    if not hasattr(signal, "pthread_sigmask") or threading.current_thread() is not threading.main_thread():
        yield  # Windows has no signal masks; only the main thread may set handlers
        return
    caught = []
    handler = signal.signal(signal.SIGINT, lambda *_: caught.append(True))
    mask = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)
        signal.signal(signal.SIGINT, handler)
    if caught:
        raise KeyboardInterrupt


def _result(future, task: Task) -> Outcome:
    from concurrent.futures.process import BrokenProcessPool  # imported by _run_pool already
    try:
        return future.result()
    except BrokenProcessPool:
        raise RuntimeError(f"a worker process died while coding {task.source} (out of memory?)") from None
