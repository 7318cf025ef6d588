"""Start-up cost: one `aecodec decompress X.aec -o out.png` from a shell against the same work in a warm process.

A typical run looks like this::

    nice -n 19 python -m bench.startup --label after          # kodim23 (or coffee.png) and coffee.png
    python -m bench.startup --runs 3 --images examples/coffee.png --out /tmp/startup.json

For each image, compressed once at quality 75, every round (--runs of them, interleaved so that a
change in the machine's load hits all three alike) measures

* shell: the `aecodec` command in a fresh process, as a user runs it: the script pip installed
  beside this Python (a pyenv shim in front of it would add a bash and a pyenv process);
* in_process: the same decode and PNG write (``batch.process``, the command's own per-file work)
  with a Codec already loaded and warm, in this process;
* breakdown: a fresh process that does what the command does, one step at a time, then times the
  parts of Codec construction on their own (the model id's SHA-256, the tables, each ONNX Runtime
  session); "interpreter" is `python -c pass`.

Each figure is the median over the rounds of wall time and of CPU time (user + system, every
thread): on a busy machine CPU time is the steadier of the two. Children import aecodec from this
checkout with their bytecode cached in a temporary folder (as an installed package has it), so
compiling sources is not counted. Results go under --label in --out (bench/results/startup.json),
with the machine's lscpu model name; other labels in the file are kept.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
KODIM23 = ROOT.parent / "shared" / "data" / "kodak" / "kodim23.png"
COFFEE = ROOT / "examples" / "coffee.png"
QUALITY = 75

# Runs in a fresh interpreter: each step in the command's order, then the parts of Codec construction.
STAGES = """
import json, sys, time
marks, last = {}, (time.perf_counter(), time.process_time())
def mark(name):
    global last
    now = (time.perf_counter(), time.process_time())
    marks[name] = [1000 * (now[0] - last[0]), 1000 * (now[1] - last[1])]
    last = now
import aecodec; mark("import aecodec")
import aecodec.cli; mark("imports the command adds (aecodec.cli)")
import aecodec.networks, aecodec.exactgemm; mark("import onnxruntime (aecodec.networks)")
import hashlib
from pathlib import Path
from aecodec import batch, bundle, exactgemm, networks
from aecodec.codec import Codec
source, dest, threads = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3])
task, options = batch.Task(source, dest), batch.Options("decompress", image_format="PNG", force=True)
last = (time.perf_counter(), time.process_time())
codec = Codec(threads=threads); mark("Codec()")
batch.process(codec, task, options); mark("first decode + PNG (sessions made on use)")
batch.process(codec, task, options); mark("warm decode + PNG")
folder = codec.bundle.folder
digest = hashlib.sha256()
for name in bundle.HASHED_FILES:
    digest.update((folder / name).read_bytes())
mark("part: SHA-256 of the bundle files (one model id)")
bundle.read_tables(folder); mark("part: read tables.npz")
for name in bundle.NETWORKS:
    networks.OrtSession(str(codec.bundle.network_path(name)), codec.options); mark(f"part: {name} session")
exactgemm.OrtMatMul(codec.options); mark("part: exact GEMM session")
print(json.dumps(marks))
"""


def child_env(pycache: str) -> dict:
    """This checkout first on the path; bytecode cached in pycache, never beside the sources."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
           "PYTHONPYCACHEPREFIX": pycache}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


def timed_child(args: list[str], env: dict) -> tuple[float, float, str]:
    """(wall ms, CPU ms of the child, its stdout) of one process run to its end."""
    before, start = resource.getrusage(resource.RUSAGE_CHILDREN), time.perf_counter()
    done = subprocess.run(args, env=env, capture_output=True, text=True, check=True)
    wall, after = time.perf_counter() - start, resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return 1000 * wall, 1000 * cpu, done.stdout


def timed_here(work) -> tuple[float, float]:
    """(wall ms, CPU ms of this process, every thread) of work()."""
    start, cpu = time.perf_counter(), time.process_time()
    work()
    return 1000 * (time.perf_counter() - start), 1000 * (time.process_time() - cpu)


def median(pairs: list) -> dict:
    return {"wall_ms": round(statistics.median(p[0] for p in pairs), 1),
            "cpu_ms": round(statistics.median(p[1] for p in pairs), 1)}


def shell_command() -> list[str]:
    """The installed `aecodec` script when there is one beside this Python, else `python -m aecodec`."""
    script = shutil.which("aecodec", path=str(Path(sys.executable).parent)) or shutil.which("aecodec")
    return [script] if script else [sys.executable, "-m", "aecodec"]


def command_threads(threads: int) -> int:
    """The ONNX Runtime threads the command gives one file: --threads, else one per core it may use."""
    from aecodec import batch
    return batch.worker_shape(1, threads, 1, batch.available_cores())[1]


def measure_image(image: Path, runs: int, threads: int, env: dict, folder: Path) -> dict:
    """shell, in_process and breakdown for one image; threads as the command's --threads (0: its default)."""
    from aecodec import batch
    from aecodec.codec import Codec
    codec = Codec(threads=command_threads(threads))
    data = codec.compress(image, QUALITY)
    coded, out = folder / f"{image.stem}.aec", folder / f"{image.stem}.out.png"
    coded.write_bytes(data)
    task, options = batch.Task(coded, out), batch.Options("decompress", image_format="PNG", force=True)
    shell = [*shell_command(), "decompress", str(coded), "-o", str(out), "-f"]
    if threads:
        shell += ["--threads", str(threads)]
    stages_args = [sys.executable, "-c", STAGES, str(coded), str(out), str(command_threads(threads))]
    timed_child(shell, env)  # fills the bytecode cache and the page cache
    batch.process(codec, task, options)  # warms the loaded codec: its sessions and arenas
    shells, warm, interpreter, stages = [], [], [], []
    for _ in range(runs):
        shells.append(timed_child(shell, env)[:2])
        warm.append(timed_here(lambda: batch.process(codec, task, options)))
        interpreter.append(timed_child([sys.executable, "-c", "pass"], env)[:2])
        stages.append(json.loads(timed_child(stages_args, env)[2]))
    width, height = codec.decode(data).image.size
    result = {"image": image.name, "width": width, "height": height, "quality": QUALITY, "aec_bytes": len(data),
              "shell": median(shells), "in_process": median(warm)}
    result["ratio"] = {key: round(result["shell"][key] / result["in_process"][key], 2) for key in result["shell"]}
    result["breakdown"] = {"interpreter (python -c pass)": median(interpreter),
                           **{name: median([s[name] for s in stages]) for name in stages[0]}}
    return result


def cpu_name() -> str:
    try:
        lines = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout.splitlines()
        return next(line.split(":", 1)[1].strip() for line in lines if line.startswith("Model name"))
    except (OSError, subprocess.CalledProcessError, StopIteration):
        from aecodec.bench.runner import cpu_model
        return cpu_model()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", nargs="+", type=Path,
                        default=[KODIM23 if KODIM23.is_file() else COFFEE, COFFEE])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--threads", type=int, default=0, help="0: the command's default (one per core)")
    parser.add_argument("--label", default="current", help="Key of this run in --out, e.g. before or after.")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "startup.json")
    args = parser.parse_args()
    import onnxruntime
    load = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="aecodec-startup-") as folder:
        env = child_env(str(Path(folder) / "pycache"))
        images = {image.stem: measure_image(image, args.runs, args.threads, env, Path(folder))
                  for image in dict.fromkeys(args.images)}
    report = {"machine": {"cpu": cpu_name(), "cores": len(os.sched_getaffinity(0)),
                          "load_average_before_after": [round(load[0], 2), round(os.getloadavg()[0], 2)]},
              "python": platform.python_version(), "onnxruntime": onnxruntime.__version__,
              "runs": args.runs, "threads": command_threads(args.threads),
              "shell": " ".join(Path(part).name for part in shell_command()) + " decompress X.aec -o out.png -f",
              "images": images}
    results = json.loads(args.out.read_text()) if args.out.is_file() else {}
    results[args.label] = report
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
