"""The `aecodec` command: a thin layer over the Python API."""

from __future__ import annotations

import atexit
import gc
import json
import os
import signal
import sys
import time
from pathlib import Path

import click

from . import __version__, api, batch, extras
from . import quality as quality_rules
from .codec import Codec
from .effort import MAX_EFFORT, check_effort_available
from .files import OutputError, atomic_write, check_output
from .ratecontrol import parse_size

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


class Size(click.ParamType):
    """A file size such as 40KB or 1.5MB, read when the command line is, so a bad one stops before any work."""

    name = "size"

    def convert(self, value, param, ctx):
        if isinstance(value, int):
            return value
        try:
            return parse_size(value)
        except ValueError as error:
            self.fail(str(error), param, ctx)


SIZE = Size()


class Quality(click.ParamType):
    """A quality, checked by aecodec/quality.py (the one place that knows its range) when the command line is read."""

    name = "quality"

    def convert(self, value, param, ctx):
        try:
            return quality_rules.checked(float(value))
        except ValueError as error:
            self.fail(str(error), param, ctx)


QUALITY = Quality()


def _one_line(error: click.ClickException) -> None:
    """A mistake in the command line, as one line like every other error (click would print four)."""
    click.echo(f"aecodec: error: {error.format_message()}", err=True)
    sys.exit(error.exit_code)


class CleanErrors(click.Group):
    """Expected failures become one line on stderr and exit status 1, never a traceback.

    Mistakes in the command line exit with 2, and Ctrl-C with 130, as shells expect after SIGINT.
    """

    def make_context(self, info_name, args, parent=None, **extra):
        try:  # the options before the command (`aecodec --bogus`) are parsed here, outside invoke
            return super().make_context(info_name, args, parent, **extra)
        except click.ClickException as error:
            _one_line(error)

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except (click.exceptions.Exit, click.exceptions.Abort):
            raise
        except click.ClickException as error:
            _one_line(error)
        except KeyboardInterrupt:
            # Outputs are written whole or not at all, so whatever was finished is kept as it is.
            click.echo("aecodec: interrupted", err=True)
            ctx.exit(128 + signal.SIGINT)
        except BrokenPipeError:
            # The reader went away (`aecodec info x.aec | head -1`): stop quietly, as cat and gzip do.
            # Pointing stdout at /dev/null keeps the interpreter's final flush from failing again.
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            ctx.exit(128 + signal.SIGPIPE)
        except (OSError, ValueError, RuntimeError, MemoryError) as error:
            message = error.strerror if isinstance(error, OSError) and error.strerror else str(error)
            if isinstance(error, FileNotFoundError) and error.filename:
                message = f"{error.filename}: no such file"
            click.echo(f"aecodec: error: {message}", err=True)
            ctx.exit(1)


@click.group(cls=CleanErrors, context_settings=CONTEXT)
@click.version_option(__version__, "-V", "--version", prog_name="aecodec")
def main():
    """A learned image codec whose files decode identically on every machine.

    \b
    Examples:
      aecodec compress photo.png                # writes photo.aec
      aecodec compress -q 40 photos/ --out-dir small/ --jobs 2
      aecodec decompress photo.aec -o photo.jpg
      aecodec info photo.aec
    """
    # The interpreter's last garbage collection walks every object the imports made (numpy, ONNX Runtime,
    # Pillow, click): 10-20 ms CPU of a one-file command; frozen objects are skipped. Frozen at exit, not
    # here, because main() also runs inside long-lived processes (CliRunner), whose later garbage must
    # stay collectable. Exit is otherwise unchanged: atexit handlers, flushes and temp-file cleanup run.
    atexit.unregister(gc.freeze)  # once, however often main() runs in one process
    atexit.register(gc.freeze)


def _stdout_binary(force: bool):
    if sys.stdout.isatty() and not force:
        raise click.UsageError("refusing to write binary data to a terminal (redirect it, or use -f)")
    return sys.stdout.buffer


def _report(outcome: batch.Outcome) -> None:
    for warning in outcome.warnings:
        click.echo(f"aecodec: warning: {outcome.task.source}: {warning}", err=True)
    if outcome.error:
        click.echo(f"aecodec: error: {outcome.task.source}: {outcome.error}", err=True)


def _run_batch(inputs, output, out_dir, suffix, options: batch.Options, jobs, threads, fail_fast):
    """Exit status 0 only when every file succeeded."""
    try:  # which inputs and outputs: a mistake here is one in the command line
        tasks = batch.plan(list(inputs), out_dir, suffix, options.kind, output)
    except ValueError as error:
        raise click.UsageError(str(error)) from None
    if not tasks:
        raise click.UsageError("no input files found")
    summary = batch.run(tasks, options, jobs, threads, fail_fast, report=_report)
    if len(tasks) > 1:
        click.echo(summary.line(options.kind), err=True)
    if summary.failed:
        sys.exit(1)


shared_options = [
    click.option("-o", "--output",
                 help="Output file; '-' for stdout. Only with a single input, and not with --out-dir."),
    click.option("--out-dir", type=click.Path(file_okay=False), help="Write outputs here, mirroring input folders."),
    click.option("-f", "--force", is_flag=True, help="Overwrite existing outputs (and allow binary to a terminal)."),
    click.option("-j", "--jobs", default=1, show_default=True, type=click.IntRange(min=1),
                 help="Worker processes for many files (at most one per core)."),
    click.option("--threads", default=0, type=click.IntRange(min=0),
                 help="Threads per process (default: cores / jobs, so every core with one job)."),
    click.option("--fail-fast/--keep-going", default=False,
                 help="Stop at the first failed file, or carry on (default) and report at the end."),
    click.option("--weights", type=click.Path(exists=True, file_okay=False), help="Use another weights folder."),
]


def _threads(threads: int) -> int:
    """--threads for the one process of a streamed file: as for one worker of a batch (0: every core)."""
    return batch.worker_shape(1, threads, 1, batch.available_cores())[1]


def with_shared(func):
    for option in reversed(shared_options):
        func = option(func)
    return func


@main.command(context_settings=CONTEXT)
@click.argument("inputs", nargs=-1, required=True)
@click.option("-q", "--quality", type=QUALITY,
              help=f"{quality_rules.MIN:g} (smallest) to {quality_rules.MAX:g} (best); default {quality_rules.DEFAULT:g}.")
@click.option("--target-bpp", type=click.FloatRange(min=0, min_open=True),
              help="Highest quality whose file is at most this many bits per pixel.")
@click.option("--target-size", type=SIZE, help="Highest quality whose file fits this size, e.g. 40KB or 1.5MB.")
@click.option("--allow-large", is_flag=True, help="Lift Pillow's decompression-bomb pixel limit.")
@click.option("--effort", default=0, show_default=True, type=click.IntRange(0, MAX_EFFORT),
              help="Encoding time for smaller files, same decoder: above 0 refines each image's latents "
                   "(more iterations per level; needs torch, the 'effort' extra).")
@click.option("--detail/--no-detail", default=True, show_default=True,
              help="Add pixel corrections where the learned picture misses detail and they pay for their bits "
                   "(text, lines, high qualities). --no-detail encodes faster.")
@click.option("--deblock/--no-deblock", default=True, show_default=True,
              help="Have the decoder smooth the faint 16-pixel grid the learned picture shows in smooth areas "
                   "at qualities up to 90. With --no-detail and --no-deblock the file is format version 1, "
                   "which aecodec builds older than the detail layer read, unless the model has a checkerboard "
                   "context: its files are always version 3, which needs this build or newer.")
@with_shared
def compress(inputs, quality, target_bpp, target_size, allow_large, effort, detail, deblock, output, out_dir, force,
             jobs, threads, fail_fast, weights):
    """Compress images (files or folders) into .aec files.

    \b
    photo.png becomes photo.aec beside it unless -o or --out-dir says otherwise.
    -o names an .aec file: an image's extension (-o small.jpg) is refused, as decompress writes those.
    '-' reads the image from stdin and writes the .aec to stdout.
    \b
    Examples:
      aecodec compress photo.png -q 60
      aecodec compress photo.png --target-size 40KB -o small.aec
      aecodec compress photo.png --effort 3         # slower, smaller; decodes as any other file
      cat a.png | aecodec compress - > a.aec
    """
    _at_most_one_rate(quality, target_bpp, target_size)  # once, before any file is read
    _one_destination(inputs, output, out_dir)
    _aec_name(output)
    if effort:
        check_effort_available()  # one line now, not one per file later
    options = batch.Options("compress", quality, target_bpp, target_size, force=force, allow_large=allow_large,
                            weights=weights, effort=effort, detail=detail, deblock=deblock)
    if _streaming(inputs, output):
        stream = _output_stream(output, force)  # before the work: a refusal should be instant
        encoded = Codec(weights, threads=_threads(threads)).encode(_read_input(inputs[0]), quality, target_bpp, target_size,
                                                         allow_large, effort=effort, progress=True, detail=detail,
                                                         deblock=deblock)
        _warn(encoded.warnings)
        _write_result(encoded.data, output, force, stream)
        return
    _run_batch(inputs, output, out_dir, batch.AEC_SUFFIX, options, jobs, threads, fail_fast)


def _at_most_one_rate(quality, target_bpp, target_size) -> None:
    given = [flag for flag, value in (("-q/--quality", quality), ("--target-bpp", target_bpp),
                                      ("--target-size", target_size)) if value is not None]
    if len(given) > 1:
        raise click.UsageError(f"give at most one of -q/--quality, --target-bpp and --target-size, "
                               f"not {' and '.join(given)}")


def _one_destination(inputs, output, out_dir) -> None:
    """-o and --out-dir both say where outputs go: one of them would be ignored, so refuse both."""
    if out_dir is not None and output is not None:
        raise click.UsageError("give -o/--output or --out-dir, not both")
    if out_dir is not None and "-" in inputs:
        raise click.UsageError("'-' (stdin) is written to stdout or -o, not to --out-dir")


def _aec_name(output: str | None) -> None:
    """compress -o t.jpg would put .aec bytes under an image's name, which every viewer then fails to open:
    a mix-up with decompress, refused before the encode rather than warned about after it."""
    if output in (None, "-") or Path(output).suffix.lower() == batch.AEC_SUFFIX:
        return
    try:
        named = batch.format_for(Path(output))
    except ValueError:  # no extension, or one that is no image format's: the user's choice
        return
    raise click.UsageError(f"-o {output} names a {named} file, but compress writes .aec files "
                           f"(name it {Path(output).with_suffix(batch.AEC_SUFFIX).name}; decompress writes {named})")


def _streaming(inputs, output) -> bool:
    """One input read from stdin, or one output written to stdout: no batch machinery."""
    return len(inputs) == 1 and (inputs[0] == "-" or output == "-")


def _read_input(name: str) -> bytes:
    if name != "-":
        return Path(name).read_bytes()
    if sys.stdin.isatty():
        raise click.UsageError("'-' reads binary data from stdin, which is a terminal (redirect or pipe it)")
    return sys.stdin.buffer.read()


def _output_stream(output: str | None, force: bool):
    """stdout's binary buffer when the result goes there (refusing a terminal), else None once the
    output is known to be writable: a refusal should come before the work."""
    if output in (None, "-"):
        return _stdout_binary(force)
    check_output(output, force)
    return None


def _write_result(data: bytes, output: str | None, force: bool, stream) -> None:
    if stream is None:
        atomic_write(output, data, force)
        return
    try:
        # A pipe whose reader leaves mid-write gives a short write, not an error; writing the rest raises.
        rest = memoryview(data)
        while rest:
            rest = rest[stream.write(rest):]
        stream.flush()
    except BrokenPipeError:
        raise  # the reader went away: a quiet stop, not an error
    except OSError as error:  # a full disk behind `> file`: say what could not be written
        raise OutputError(error.errno, f"cannot write to stdout: {error.strerror or error}") from None


def _warn(warnings: list[str]) -> None:
    for warning in warnings:
        click.echo(f"aecodec: warning: {warning}", err=True)


@main.command(context_settings=CONTEXT)
@click.argument("inputs", nargs=-1, required=True)
@click.option("--format", "image_format", type=click.Choice(["png", "jpg", "webp", "bmp", "tiff", "gif"]),
              help="Output format; by default taken from -o's extension, else png.")
@click.option("--lossless", is_flag=True, help="Write WebP without loss (png, bmp and tiff always are).")
@click.option("--max-compression", is_flag=True,
              help="Write the smallest PNG (zlib level 9: about 10% smaller, 8x slower than the default level 1); "
                   "PNG output only.")
@click.option("--allow-large", is_flag=True, help="Lift Pillow's decompression-bomb pixel limit.")
@with_shared
def decompress(inputs, image_format, lossless, max_compression, allow_large, output, out_dir, force, jobs, threads,
               fail_fast, weights):
    """Decompress .aec files (or folders of them) into images.

    \b
    photo.aec becomes photo.png beside it; -o out.jpg picks the format from the extension.
    png, bmp and tiff are lossless; jpg is JPEG quality 75, 4:2:0; webp is lossy
    at quality 80 unless --lossless; gif is reduced to 256 colours.
    \b
    Examples:
      aecodec decompress photo.aec
      aecodec decompress photo.aec -o photo.webp --lossless
      aecodec decompress - < a.aec > a.png
    """
    _one_destination(inputs, output, out_dir)  # before any work: a contradiction stops here
    fmt = _output_format(image_format, output, lossless)
    _png_only(max_compression, fmt)
    options = batch.Options("decompress", image_format=fmt, lossless=lossless, max_compression=max_compression,
                            force=force, allow_large=allow_large, weights=weights)
    if _streaming(inputs, output):
        stream = _output_stream(output, force)
        image = Codec(weights, threads=_threads(threads)).decompress(_read_input(inputs[0]), allow_large)
        data, warnings = batch.encode_image(image, fmt, lossless, max_compression)
        _warn(warnings)
        _write_result(data, output, force, stream)
        return
    _run_batch(inputs, output, out_dir, f".{image_format or 'png'}", options, jobs, threads, fail_fast)


def _output_format(image_format: str | None, output: str | None, lossless: bool) -> str:
    """The Pillow format decoded images are written in: --format, else -o's extension, else PNG.

    --format jpg with -o out.png would write JPEG bytes under a PNG name: refused, as is an impossible --lossless.
    """
    fmt = batch.pillow_format(image_format) if image_format else None
    if output not in (None, "-"):
        try:
            named = batch.format_for(Path(output))
        except ValueError as error:
            if fmt is None:
                raise click.UsageError(str(error)) from None
            named = fmt  # an extension Pillow does not know: --format decides
        if fmt is not None and named != fmt:
            raise click.UsageError(f"--format {image_format} contradicts -o {output}, whose extension means {named}")
        fmt = named
    fmt = fmt or "PNG"
    if lossless:
        try:
            batch.check_lossless(fmt)
        except ValueError as error:
            raise click.UsageError(f"--lossless: {error}") from None
    return fmt


def _png_only(max_compression: bool, fmt: str) -> None:
    """--max-compression sets PNG's zlib level; for any other output it would be silently ignored."""
    if max_compression and fmt != "PNG":
        raise click.UsageError(f"--max-compression: it applies to PNG output only, not {fmt}")


@main.command(context_settings=CONTEXT)
@click.argument("file", type=click.Path(exists=True, dir_okay=False, allow_dash=True))
@click.option("--json", "as_json", is_flag=True, help="Print the fields as JSON.")
def info(file, as_json):
    """Show an .aec file's header and stream sizes without decoding it; '-' reads stdin.

    \b
    Examples:
      aecodec info photo.aec
      aecodec info - < photo.aec
    """
    fields = api.info(_read_input(file))
    if as_json:
        click.echo(json.dumps(fields, indent=2))
        return
    streams = fields.pop("streams")
    for key, value in fields.items():
        shown = f"{value:.4f}" if key == "bpp" else value
        click.echo(f"{key:>15}: {shown}")
    for key, value in streams.items():
        click.echo(f"{key + ' bytes':>15}: {value}")


@main.command(context_settings=CONTEXT)
@click.argument("inputs", nargs=-1)
@click.option("--codecs", help="Comma-separated subset: aecodec,jpeg,jpeg444,webp,avif,jpeg2000,jxl; "
                                f"aecodec-effort1 .. aecodec-effort{MAX_EFFORT} and aecodec-nodetail "
                                "(without the detail layer) only when named.")
@click.option("--reference", "references", multiple=True, type=click.Path(exists=True, dir_okay=False),
              help="CompressAI-format results JSON to overlay; repeatable.")
@click.option("--out", default="bench/results/latest", show_default=True, help="Folder for the report.")
@click.option("--repeats", default=1, show_default=True, help="Timing repeats per image and quality.")
@click.option("--threads", default=1, show_default=True, help="Threads for every codec that can use them.")
@click.option("--speed", is_flag=True, help="Only time aecodec on one image, stage by stage.")
@click.option("--weights", type=click.Path(exists=True, file_okay=False), help="Use another weights folder.")
@click.option("--no-plots", is_flag=True, help="Skip the PNG plots (no matplotlib needed).")
def bench(inputs, codecs, references, out, repeats, threads, speed, weights, no_plots):
    """Rate-distortion and speed of aecodec against JPEG, WebP, AVIF, JPEG 2000, JPEG XL.

    \b
    INPUTS are image files or folders of them, e.g. the 24 Kodak photos (kodim01.png ...).
    Codecs that cannot run here (JPEG XL without imagecodecs) are left out, and said so first.
    \b
    Examples:
      aecodec bench kodak/ --reference kodak__vtm.json   # CompressAI-format results JSON
      aecodec bench kodak/ --codecs aecodec,jpeg,webp --out bench/results/kodak
      aecodec bench --speed --threads 2 kodak/kodim23.png   # 768x512 timing, stage by stage
    """
    from .bench import main_bench
    names = codecs.split(",") if codecs else None
    plots = not no_plots
    if not speed:  # what is missing is said before the run, not found out at its end
        if not inputs:
            raise click.UsageError("give image files or folders to bench on")
        _bench_left_out(names)
        if plots and extras.missing(["matplotlib"]):
            _warn([f"plots left out: they need matplotlib, from the 'bench' extra: {extras.INSTALL['bench']}"])
            plots = False
    # Only load a model when aecodec is among the codecs: the others bench without one.
    start = time.perf_counter()
    codec = (Codec(weights, threads=threads)
             if speed or names is None or any(name.startswith("aecodec") for name in names) else None)
    if speed:
        load_ms = 1000 * (time.perf_counter() - start)
        _bench_speed(codec, load_ms, inputs, out, threads, max(repeats, 5))
        return
    results = main_bench(list(inputs), names, out, [Path(r) for r in references], repeats, threads, codec,
                         plots=plots)
    images = len({m.image for m in results.measurements})
    click.echo(f"wrote {out}/summary.md ({images} images)", err=True)


def _bench_left_out(names: list[str] | None) -> None:
    """Refuse a named codec that cannot run here; when none are named, say which are left out and why."""
    from .bench.codecs import unavailable_codecs
    for name, reason in unavailable_codecs().items():
        if names is not None and name in names:
            raise RuntimeError(f"--codecs {name}: {reason}")
        if names is None:
            _warn([f"{name} left out: {reason}"])


def _bench_speed(codec, load_ms, inputs, out, threads, repeats):
    from .bench.speed import measure_speed, speed_markdown
    from .imageio import load_image
    if not inputs:
        raise click.UsageError("give one image to time, e.g. a 768x512 Kodak photo")
    rgb = load_image(inputs[0]).rgb
    report = measure_speed(codec, rgb, repeats=repeats, threads=threads, source=Path(inputs[0]), load_ms=load_ms)
    Path(out).mkdir(parents=True, exist_ok=True)
    (Path(out) / "speed.json").write_text(json.dumps(report, indent=2) + "\n")
    (Path(out) / "speed.md").write_text(speed_markdown(report))
    click.echo(speed_markdown(report))


@main.command(context_settings=CONTEXT)
@click.option("--data", default="../shared/data/train", show_default=True, type=click.Path(file_okay=False),
              help="Folder of training photos (searched recursively).")
@click.option("--out", default="runs/main", show_default=True, help="Run folder: checkpoint and CSV logs.")
@click.option("--minutes", default=60.0, show_default=True, help="Time budget; the run ends cleanly after it.")
@click.option("--resume", type=click.Path(exists=True, dir_okay=False), help="Checkpoint to continue exactly.")
@click.option("--init-weights", type=click.Path(exists=True, file_okay=False),
              help="Start from an exported weights folder (when its checkpoint is lost); fresh optimiser.")
@click.option("--lr", default=None, type=float, help="Learning rate (default 3e-4, or the checkpoint's).")
@click.option("--batch-size", default=None, type=int, help="Crops per step (default 16).")
@click.option("--crop", default=None, type=int, help="Crop side in pixels (default 128).")
@click.option("--channels", default=96, show_default=True, help="N, width of the transforms (new runs).")
@click.option("--latent-channels", default=160, show_default=True, help="M, latent channels (new runs).")
@click.option("--threads", default=0, help="Torch threads (default: all cores).")
@click.option("--device", default="cpu", show_default=True, help="cpu or cuda.")
@click.option("--bf16/--fp32", default=None,
              help="bf16 autocast; default on for CUDA and for CPUs with AMX or AVX-512 bf16.")
@click.option("--compile-gdn/--eager", default=None,
              help="torch.compile the GDN layers (needs a C++ compiler; falls back to eager without one); "
                   "default on for bf16 on a CPU, where it makes steps about 10% faster.")
@click.option("--tcmalloc/--system-malloc", "tcmalloc", default=None,
              help="Run with tcmalloc (about 25% faster steps on a CPU; apt install libtcmalloc-minimal4). "
                   "Default: tcmalloc when it is installed, training on a CPU.")
@click.option("--checkpoint-minutes", default=5.0, show_default=True, help="Minutes between checkpoints.")
@click.option("--ema-decay", default=None, type=float,
              help="Keep a moving average of the weights with this decay (e.g. 0.999); export ships it. 0: off.")
@click.option("--lr-decay-fraction", default=None, type=float,
              help="Train the last part of the budget (e.g. 0.15) at lr / 10.")
@click.option("--synthetic-share", default=None, type=float,
              help="Share of crops drawn as synthetic graphics (text, lines, flat colour) instead of photos.")
@click.option("--level-balance", default=None, type=float,
              help="Weigh each crop's loss by (lambda / mid lambda) ** -this, so the low rates count as much as "
                   "the high ones (0.5 evens them; 0: off).")
@click.option("--add-top-levels", default=0, show_default=True, type=click.IntRange(0, 4),
              help="With --resume or --init-weights: add rate levels above the highest lambda, same spacing.")
@click.option("--widen-latent", default=None, type=int,
              help="With --resume or --init-weights: grow the latent to this many channels, keeping what the "
                   "model computes.")
@click.option("--add-context", default=None, type=(click.IntRange(1, 1024), click.IntRange(1, 1024)),
              metavar="CHANNELS HIDDEN",
              help="With --resume or --init-weights: add a checkerboard context model (e.g. 128 224) whose last "
                   "layer starts at zero, so training starts from exactly what the model computes. Its exported "
                   "bundle writes format version 3.")
@click.option("--context-lr-scale", default=None, type=click.FloatRange(min=0, min_open=True),
              help="Train the checkerboard context at this multiple of --lr (default 1, or the checkpoint's): "
                   "a context just added learns from nothing beside a nearly settled model.")
def train(data, out, minutes, resume, init_weights, lr, batch_size, crop, channels, latent_channels, threads, device,
          bf16, compile_gdn, tcmalloc, checkpoint_minutes, ema_decay, lr_decay_fraction, synthetic_share,
          level_balance, add_top_levels, widen_latent, add_context, context_lr_scale):
    """Train the model (needs the 'train' extra: torch).

    \b
    --data is a folder of photographs (PNG, JPEG, WebP, TIFF...), searched recursively;
    a few hundred at least, 8 of them held out for validation.
    \b
    Examples:
      aecodec train --data photos/ --minutes 120 --out runs/main
      aecodec train --resume runs/main/last.ckpt --minutes 60
      aecodec train --init-weights weights/main --lr 2e-5 --minutes 5   # then resume at the full lr
    """
    if resume and init_weights:
        raise click.UsageError("give --resume or --init-weights, not both")
    extras.require("train", ["torch", "onnx"] if init_weights else ["torch"], "aecodec train")
    if tcmalloc or (tcmalloc is None and device == "cpu"):
        from .train.malloc import use_tcmalloc
        try:
            use_tcmalloc(required=bool(tcmalloc))  # starts this command again with tcmalloc, where it applies
        except RuntimeError as error:
            raise click.UsageError(str(error)) from None
    from .train.cli_support import run_training
    if init_weights:
        from .train.recover import checkpoint_from_weights
        resume = checkpoint_from_weights(init_weights, Path(out) / "from_weights.ckpt")
    path = run_training(data=data, out=out, minutes=minutes, resume=resume, lr=lr, batch=batch_size, crop=crop,
                        channels=channels, latent_channels=latent_channels, threads=threads, device=device,
                        bf16=bf16, compile_gdn=compile_gdn, checkpoint_minutes=checkpoint_minutes,
                        ema_decay=ema_decay, lr_decay_fraction=lr_decay_fraction, synthetic_share=synthetic_share,
                        add_top_levels=add_top_levels, widen_latent=widen_latent, level_balance=level_balance,
                        add_context=add_context, context_lr_scale=context_lr_scale)
    click.echo(f"checkpoint: {path}", err=True)


@main.command(context_settings=CONTEXT)
@click.argument("checkpoint", type=click.Path(exists=True, dir_okay=False))
@click.option("--out", type=click.Path(file_okay=False),
              help="Weights folder to write (default: export/ beside the checkpoint).")
@click.option("--calibration-data", default="../shared/data/train", show_default=True,
              type=click.Path(file_okay=False), help="Training photos; the held-out ones calibrate.")
@click.option("--extrapolated-levels", default=3, show_default=True, type=click.IntRange(0, 8),
              help="Rate levels added below the lowest trained one, so quality 1 reaches lower bit rates.")
@click.option("-f", "--force", is_flag=True, help="Replace a bundle already in --out.")
def export(checkpoint, out, calibration_data, extrapolated_levels, force):
    """Export a checkpoint to ONNX networks, integer tables and a model card.

    \b
    --calibration-data is the training folder: its held-out photos calibrate the integer hyper-synthesis.
    The bundle is written whole or not at all; a folder that holds one already needs -f.
    \b
    Examples:
      aecodec export runs/main/last.ckpt --calibration-data photos/        # writes runs/main/export/
      aecodec compress photo.png --weights runs/main/export                 # try it
    """
    extras.require("train", ["torch", "onnx"], "aecodec export")
    from .train.export import export as export_bundle
    # Never the shipped model by default: a run's bundle sits in the run's folder until it is chosen.
    out = out or str(Path(checkpoint).parent / "export")
    model_id = export_bundle(checkpoint, out, calibration_data, extrapolated_levels=extrapolated_levels, force=force)
    click.echo(f"wrote {out} (model id {model_id.hex()})", err=True)


if __name__ == "__main__":  # pragma: no cover
    main()
