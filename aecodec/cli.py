"""The `aecodec` command: a thin layer over the Python API."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from . import __version__, api, batch
from .codec import Codec
from .files import atomic_write
from .ratecontrol import parse_size

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


class CleanErrors(click.Group):
    """Expected failures become one line on stderr and exit status 1, never a traceback."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except (click.exceptions.Exit, click.exceptions.Abort, click.ClickException):
            raise
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


def _stdout_binary(force: bool):
    if sys.stdout.isatty() and not force:
        raise click.UsageError("refusing to write binary data to a terminal (redirect it, or use -f)")
    return sys.stdout.buffer


def _report(kind: str):
    def report(outcome: batch.Outcome) -> None:
        for warning in outcome.warnings:
            click.echo(f"aecodec: warning: {outcome.task.source}: {warning}", err=True)
        if outcome.error:
            click.echo(f"aecodec: error: {outcome.task.source}: {outcome.error}", err=True)
    return report


def _run_batch(inputs, output, out_dir, suffix, options: batch.Options, jobs, threads, fail_fast):
    tasks = batch.plan(list(inputs), out_dir, suffix, options.kind, output)
    if not tasks:
        raise ValueError("no input files found")
    summary = batch.run(tasks, options, jobs, threads, fail_fast, report=_report(options.kind))
    if len(tasks) > 1:
        click.echo(summary.line(options.kind), err=True)
    if summary.failed:
        sys.exit(1)


shared_options = [
    click.option("-o", "--output", help="Output file; '-' for stdout. Only with a single input."),
    click.option("--out-dir", type=click.Path(file_okay=False), help="Write outputs here, mirroring input folders."),
    click.option("-f", "--force", is_flag=True, help="Overwrite existing outputs (and allow binary to a terminal)."),
    click.option("-j", "--jobs", default=1, show_default=True, help="Worker processes for many files."),
    click.option("--threads", default=0, help="Threads per worker (default: cores / jobs)."),
    click.option("--fail-fast/--keep-going", default=False,
                 help="Stop at the first failed file, or carry on (default) and report at the end."),
    click.option("--weights", type=click.Path(exists=True, file_okay=False), help="Use another weights folder."),
]


def with_shared(func):
    for option in reversed(shared_options):
        func = option(func)
    return func


@main.command(context_settings=CONTEXT)
@click.argument("inputs", nargs=-1, required=True)
@click.option("-q", "--quality", type=click.FloatRange(1, 100), help="1 (smallest) to 100 (best); default 75.")
@click.option("--target-bpp", type=float, help="Highest quality whose file is at most this many bits per pixel.")
@click.option("--target-size", help="Highest quality whose file fits this size, e.g. 40KB or 1.5MB.")
@click.option("--allow-large", is_flag=True, help="Lift Pillow's decompression-bomb pixel limit.")
@with_shared
def compress(inputs, quality, target_bpp, target_size, allow_large, output, out_dir, force, jobs, threads,
             fail_fast, weights):
    """Compress images (files or folders) into .aec files.

    \b
    photo.png becomes photo.aec beside it unless -o or --out-dir says otherwise.
    '-' reads the image from stdin and writes the .aec to stdout.
    \b
    Examples:
      aecodec compress photo.png -q 60
      aecodec compress photo.png --target-size 40KB -o small.aec
      cat a.png | aecodec compress - > a.aec
    """
    size = parse_size(target_size) if target_size else None
    options = batch.Options("compress", quality, target_bpp, size, force=force, allow_large=allow_large,
                            weights=weights)
    if _streaming(inputs, output):
        codec = Codec(weights, threads=threads)
        data = codec.compress(_read_input(inputs[0]), quality, target_bpp, size, allow_large)
        for warning in codec.warnings:
            click.echo(f"aecodec: warning: {warning}", err=True)
        _write_result(data, output, force)
        return
    _run_batch(inputs, output, out_dir, batch.AEC_SUFFIX, options, jobs, threads, fail_fast)


def _streaming(inputs, output) -> bool:
    """One input read from stdin, or one output written to stdout: no batch machinery."""
    return len(inputs) == 1 and (inputs[0] == "-" or output == "-")


def _read_input(name: str) -> bytes:
    return sys.stdin.buffer.read() if name == "-" else Path(name).read_bytes()


def _write_result(data: bytes, output: str | None, force: bool) -> None:
    if output in (None, "-"):
        stream = _stdout_binary(force)
        stream.write(data)
        stream.flush()
    else:
        atomic_write(output, data, force)


@main.command(context_settings=CONTEXT)
@click.argument("inputs", nargs=-1, required=True)
@click.option("--format", "image_format", type=click.Choice(["png", "jpg", "webp", "bmp", "tiff"]),
              help="Output format; by default taken from -o's extension, else png.")
@with_shared
def decompress(inputs, image_format, output, out_dir, force, jobs, threads, fail_fast, weights):
    """Decompress .aec files (or folders of them) into images.

    \b
    photo.aec becomes photo.png beside it; -o out.jpg picks the format from the extension.
    \b
    Examples:
      aecodec decompress photo.aec
      aecodec decompress photo.aec -o photo.webp
      aecodec decompress - < a.aec > a.png
    """
    options = batch.Options("decompress", image_format=image_format, force=force, weights=weights)
    if _streaming(inputs, output):
        image = Codec(weights, threads=threads).decompress(_read_input(inputs[0]))
        fmt = image_format or (batch.format_for(Path(output)) if output not in (None, "-") else "png")
        _write_result(batch.encode_image(image, fmt), output, force)
        return
    _run_batch(inputs, output, out_dir, f".{image_format or 'png'}", options, jobs, threads, fail_fast)


@main.command(context_settings=CONTEXT)
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Print the fields as JSON.")
def info(file, as_json):
    """Show an .aec file's header and stream sizes without decoding it.

    \b
    Example:
      aecodec info photo.aec
    """
    fields = api.info(file)
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
@click.option("--data", default="../shared/data/train", show_default=True, type=click.Path(file_okay=False),
              help="Folder of training photos (searched recursively).")
@click.option("--out", default="runs/main", show_default=True, help="Run folder: checkpoint and CSV logs.")
@click.option("--minutes", default=60.0, show_default=True, help="Time budget; the run ends cleanly after it.")
@click.option("--resume", type=click.Path(exists=True, dir_okay=False), help="Checkpoint to continue exactly.")
@click.option("--lr", default=None, type=float, help="Learning rate (default 3e-4, or the checkpoint's).")
@click.option("--batch-size", default=None, type=int, help="Crops per step (default 16).")
@click.option("--crop", default=None, type=int, help="Crop side in pixels (default 128).")
@click.option("--channels", default=96, show_default=True, help="N, width of the transforms (new runs).")
@click.option("--latent-channels", default=160, show_default=True, help="M, latent channels (new runs).")
@click.option("--threads", default=0, help="Torch threads (default: all cores).")
@click.option("--device", default="cpu", show_default=True, help="cpu or cuda.")
@click.option("--bf16/--fp32", default=None, help="bf16 autocast; default on for CUDA and for CPUs with AMX.")
@click.option("--checkpoint-minutes", default=5.0, show_default=True, help="Minutes between checkpoints.")
def train(data, out, minutes, resume, lr, batch_size, crop, channels, latent_channels, threads, device, bf16,
          checkpoint_minutes):
    """Train the model (needs the 'train' extra: torch).

    \b
    Examples:
      aecodec train --minutes 120 --out runs/main
      aecodec train --resume runs/main/last.ckpt --minutes 60
    """
    from .train.cli_support import run_training
    path = run_training(data=data, out=out, minutes=minutes, resume=resume, lr=lr, batch=batch_size, crop=crop,
                        channels=channels, latent_channels=latent_channels, threads=threads, device=device,
                        bf16=bf16, checkpoint_minutes=checkpoint_minutes)
    click.echo(f"checkpoint: {path}", err=True)


@main.command(context_settings=CONTEXT)
@click.argument("checkpoint", type=click.Path(exists=True, dir_okay=False))
@click.option("--out", default="weights/main", show_default=True, help="Weights folder to write.")
@click.option("--calibration-data", default="../shared/data/train", show_default=True,
              type=click.Path(file_okay=False), help="Training photos; the held-out ones calibrate.")
def export(checkpoint, out, calibration_data):
    """Export a checkpoint to ONNX networks, integer tables and a model card.

    \b
    Example:
      aecodec export runs/main/last.ckpt --out weights/main
    """
    from .train.export import export as export_bundle
    model_id = export_bundle(checkpoint, out, calibration_data)
    click.echo(f"wrote {out} (model id {model_id.hex()})", err=True)


if __name__ == "__main__":  # pragma: no cover
    main()
