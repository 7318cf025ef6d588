"""What a user sees on every file of Pillow's own test images: refusals, lost alpha, stray stderr lines, hangs.

A typical run looks like this::

    pip download pillow==13.0.0 --no-binary :all: --no-deps -d /tmp/pillow_sdist
    tar xzf /tmp/pillow_sdist/pillow-13.0.0.tar.gz -C /tmp/pillow_sdist
    nice -n 15 python -m bench.pillow_images --images /tmp/pillow_sdist/pillow-13.0.0/Tests/images

Every file under --images (folders included) is first opened and loaded by Pillow, then
run through ``aecodec compress -q 50 FILE -o x.aec`` and ``aecodec decompress x.aec -o x.png``:
the command line's own code, in a worker process that keeps one model loaded (the only
shortcut) and captures file descriptors 1 and 2 around each command, so that Python
warnings, tracebacks and C libraries' messages are seen as a user would see them. A worker
that takes longer than --timeout on one file is killed and the file counted as a hang.

Per file it records whether Pillow loads it, aecodec's result (ok, or refused with its
message), whether the alpha of an input with alpha came back exactly (against Pillow's
own ``convert("RGBA")`` of the oriented first frame), every stderr line that is not an
``aecodec:`` line, tracebacks and hangs. Results go to bench/results/pillow_images.json.
Done when a run shows no refusal of a file Pillow loads (the pixel limit aside, which
aecodec applies on purpose), no lost alpha and only ``aecodec:`` lines on stderr.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import selectors
import subprocess
import sys
import tempfile
import time
import traceback
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "bench" / "results" / "pillow_images.json"

# -- the worker: one file at a time, asked for on stdin, answered as one JSON line on stdout ------


def pillow_view(path: Path) -> dict:
    """What Pillow makes of the file, and the alpha aecodec should keep: (H, W) uint8, or None."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Pillow's complaints are the command's to report, not ours
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            image = Image.open(path)
            image.load()
        except (Image.DecompressionBombWarning, Image.DecompressionBombError) as error:
            return {"pillow": "over the pixel limit", "pillow_error": str(error)}
        except Exception as error:  # anything Pillow raises means it does not load the file
            return {"pillow": "fails", "pillow_error": f"{type(error).__name__}: {error}"}
        view = {"pillow": "loads", "format": image.format, "mode": image.mode, "size": list(image.size)}
        try:
            view["frames"] = getattr(image, "n_frames", 1)
        except Exception as error:  # a PSD's layer records are parsed only now, and may be broken
            view["frames"] = f"{type(error).__name__}: {error}"
        try:
            oriented = ImageOps.exif_transpose(image)
        except Exception:  # a damaged EXIF block: aecodec then codes the pixels as stored
            oriented = image
        view["oriented_size"] = list(oriented.size)
        if oriented.mode in ("RGBA", "LA", "PA", "La", "RGBa") or "transparency" in oriented.info:
            view["alpha"] = oriented.convert("RGBA").getchannel("A")
    return view


@contextlib.contextmanager
def captured(streams: dict):
    """Descriptors 1 and 2 go to temporary files meanwhile; their text lands in streams["stdout"/"stderr"]."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        saved = {}
        for fd, file in ((1, out), (2, err)):
            (sys.stdout if fd == 1 else sys.stderr).flush()
            saved[fd] = os.dup(fd)
            os.dup2(file.fileno(), fd)
        try:
            yield
        finally:
            for fd, copy in saved.items():
                (sys.stdout if fd == 1 else sys.stderr).flush()
                os.dup2(copy, fd)
                os.close(copy)
            for name, file in (("stdout", out), ("stderr", err)):
                file.seek(0)
                streams[name] = file.read().decode("utf-8", "replace")


def run_cli(args: list[str]) -> dict:
    """`aecodec ARGS` in this process: exit status, stdout and stderr as a user would get them."""
    from aecodec.cli import main
    streams, status = {}, 0
    # a fresh process shows each warning once: forgetting those shown before does the same here
    with captured(streams), warnings.catch_warnings():
        try:
            main(args, prog_name="aecodec")
        except SystemExit as done:
            status = done.code if isinstance(done.code, int) else (0 if done.code is None else 1)
        except BaseException:  # what would end a real process with a traceback
            traceback.print_exc()
            status = 1
    return {"status": status, **streams}


def alpha_result(expected: Image.Image, decoded_path: Path) -> str:
    decoded = Image.open(decoded_path)
    if decoded.mode not in ("RGBA", "LA"):
        return "lost"
    return "kept" if np.array_equal(np.asarray(decoded.getchannel("A")), np.asarray(expected)) else "changed"


def examine(path: Path, quality: str, weights: list[str]) -> dict:
    view = pillow_view(path)
    expected_alpha = view.pop("alpha", None)
    row = {**view, "had_alpha": expected_alpha is not None}
    with tempfile.TemporaryDirectory() as folder:
        coded, decoded = Path(folder) / "x.aec", Path(folder) / "x.png"
        steps = [("compress", ["compress", "-q", quality, str(path), "-o", str(coded), *weights]),
                 ("decompress", ["decompress", str(coded), "-o", str(decoded), *weights])]
        lines = []
        for name, args in steps:
            done = run_cli(args)
            lines += (done["stdout"] + done["stderr"]).splitlines()
            if done["status"] != 0:
                errors = [line for line in done["stderr"].splitlines() if line.startswith("aecodec: error:")]
                row["aecodec"] = f"{name} refused: " + (errors[0] if errors else f"exit status {done['status']}")
                break
        else:
            row["aecodec"] = "ok"
            if expected_alpha is not None:
                row["alpha"] = alpha_result(expected_alpha, decoded)
            row["decoded_size"] = list(Image.open(decoded).size)
    row["warnings"] = [line for line in lines if line.startswith("aecodec: warning:")]
    row["other_lines"] = [line for line in lines if not line.startswith("aecodec:")]
    row["traceback"] = any(line.startswith("Traceback (most recent call last)") for line in lines)
    return row


def worker(quality: str, weights: str | None) -> None:
    """Answer each path read from stdin with one JSON line; one model stays loaded for all of them."""
    from aecodec import batch
    from aecodec.codec import Codec
    loaded = Codec(weights)
    batch.Codec = lambda *args, **kwargs: loaded  # the command would load the same model for every file
    extra = ["--weights", weights] if weights else []
    for line in sys.stdin:
        path = Path(line.rstrip("\n"))
        start = time.perf_counter()
        try:
            row = examine(path, quality, extra)
        except Exception:  # this script's fault, not aecodec's: say so, and go on
            row = {"aecodec": "bench error", "bench_error": traceback.format_exc(limit=-3)}
        row["seconds"] = round(time.perf_counter() - start, 2)
        print(json.dumps(row), flush=True)


# -- the parent: hands out files, kills a worker that hangs, sums up ----------------------------


class Worker:
    """A worker process in the images folder, so that paths in messages read as a user there would type them.

    It runs this file as a script, which needs nothing from the bench package: aecodec is installed.
    """

    def __init__(self, images: Path, quality: str, weights: str | None):
        command = [sys.executable, str(Path(__file__).resolve()), "--worker", "--quality", quality]
        weights = str(Path(weights).resolve()) if weights else None
        self.process = subprocess.Popen(command + (["--weights", weights] if weights else []), cwd=images,
                                        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)

    def ask(self, path: Path, timeout: float) -> dict | None:
        """The worker's row for path, or None when it died or took over `timeout` seconds (it is then killed)."""
        self.process.stdin.write(f"{path}\n")
        self.process.stdin.flush()
        with selectors.DefaultSelector() as selector:
            selector.register(self.process.stdout, selectors.EVENT_READ)
            line = self.process.stdout.readline() if selector.select(timeout) else ""
        if line:
            return json.loads(line)
        self.process.kill()
        self.process.wait()
        return None

    def close(self) -> None:
        self.process.stdin.close()
        self.process.wait()


def allowance(path: Path, timeout: float) -> float:
    """Seconds the file may take: `timeout`, and as long again per megapixel its header declares.

    A 15-megapixel TIFF takes minutes to encode on a busy machine; that is slow, not hung.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            width, height = Image.open(path).size  # the header only
    except Exception:
        return timeout
    return timeout * (1 + min(width * height, 10**8) / 1e6)


def survey(files: list[Path], images: Path, quality: str, weights: str | None, timeout: float) -> list[dict]:
    rows, worker_process = [], Worker(images, quality, weights)
    for number, path in enumerate(files, 1):
        start, limit = time.monotonic(), allowance(path, timeout)
        row = worker_process.ask(path.relative_to(images), limit)
        if row is None:  # what a user would meet too: a hang, or a crash of the whole process
            hang = time.monotonic() - start >= limit
            row = {"aecodec": f"no answer within {limit:.0f} s (killed)" if hang else "the process died", "hang": hang,
                   "crash": not hang}
            worker_process = Worker(images, quality, weights)
        row = {"file": str(path.relative_to(images)), **row}
        rows.append(row)
        print(f"[{number}/{len(files)}] {row['file']}: {row.get('pillow', '?')}, {row['aecodec']}", file=sys.stderr)
    worker_process.close()
    return rows


def totals(rows: list[dict]) -> dict:
    loads = [r for r in rows if r.get("pillow") == "loads"]
    names = lambda selected: [r["file"] for r in selected]  # noqa: E731
    return {
        "files": len(rows),
        "pillow_loads": len(loads),
        "pillow_over_pixel_limit": sum(r.get("pillow") == "over the pixel limit" for r in rows),
        "pillow_fails": sum(r.get("pillow") == "fails" for r in rows),
        "round_trips_ok": sum(r["aecodec"] == "ok" for r in loads),
        "refused_although_pillow_loads": names(r for r in loads if r["aecodec"] != "ok"),
        "with_alpha": sum(r.get("had_alpha", False) for r in loads),
        "alpha_kept": sum(r.get("alpha") == "kept" for r in loads),
        "alpha_lost_or_changed": names(r for r in loads if r.get("alpha") in ("lost", "changed")),
        "size_changed": names(r for r in loads if "decoded_size" in r and r["decoded_size"] != r["oriented_size"]),
        "with_aecodec_warnings": sum(bool(r.get("warnings")) for r in rows),
        "non_aecodec_stderr_lines": names(r for r in rows if r.get("other_lines")),
        "tracebacks": names(r for r in rows if r.get("traceback")),
        "hangs": names(r for r in rows if r.get("hang")),
        "crashes": names(r for r in rows if r.get("crash")),
    }


def describe(args) -> dict:
    import PIL  # for its version
    commit = subprocess.run(["git", "describe", "--always", "--dirty"], cwd=ROOT, capture_output=True, text=True)
    return {"pillow": PIL.__version__, "images": str(args.images), "quality": args.quality,
            "weights": args.weights or "the shipped model", "aecodec_commit": commit.stdout.strip(),
            "timeout_s": args.timeout}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=Path, help="Pillow's Tests/images folder (from its source distribution)")
    parser.add_argument("--quality", default="50")
    parser.add_argument("--weights", help="another weights folder (default: the shipped model)")
    parser.add_argument("--timeout", type=float, default=120.0,
                        help="seconds per file, and again per megapixel, before it counts as a hang")
    parser.add_argument("--only", default="*", help="a glob on the relative path, for a quick look")
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.quality, args.weights)
        return
    if args.images is None or not args.images.is_dir():
        parser.error("--images must name a folder (Tests/images of Pillow's source distribution)")
    images = args.images.resolve()
    files = sorted(p for p in images.rglob("*") if p.is_file() and p.relative_to(images).match(args.only))
    rows = survey(files, images, args.quality, args.weights, args.timeout)
    result = {"setup": describe(args), "totals": totals(rows), "rows": rows}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(as_json(result))
    print(json.dumps(result["totals"], indent=1))


def as_json(result: dict) -> str:
    """One row a line, without its empty fields: a thousand rows stay readable, and a diff shows what changed."""
    rows = [json.dumps({k: v for k, v in row.items() if v not in ([], False, None)}) for row in result["rows"]]
    head = json.dumps({k: v for k, v in result.items() if k != "rows"}, indent=1)
    return head[:-2] + ',\n "rows": [\n  ' + ",\n  ".join(rows) + "\n ]\n}\n"


if __name__ == "__main__":
    main()
