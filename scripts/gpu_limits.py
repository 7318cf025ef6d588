"""What may travel to a lent GPU machine and what may come back, checked before device time is spent.

    python -m scripts.gpu_limits travel --carry pack     # the working tree plus pack/ under 64 MiB?
    python -m scripts.gpu_limits return out --minutes 9  # $OUT's files: count, sizes, depth, names

The numbers are the device tool's (/work/.library/device/README.md): the tracked and
untracked-not-ignored files plus carried paths travel, at most 64 MiB; at most 8 files of
at most 16 MiB each (64 MiB together), at most 2 folders down, named in letters, digits,
'.', '_' and '-', come back. A file that breaks a limit does not come back at all, so a
checkpoint piece over it would lose the whole window.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
from pathlib import Path

MiB = 2**20
TRAVEL_LIMIT = 64 * MiB
TRAVEL_MARGIN = 1 * MiB  # files others add to the tree between packing and the run
RETURN_FILES = 8
RETURN_FILE_LIMIT = 16 * MiB
RETURN_TOTAL_LIMIT = 64 * MiB
RETURN_DEPTH = 2  # $OUT/a/b/file comes back, $OUT/a/b/c/file does not
LOG_RESERVE = 1 * MiB  # what the log and the manifest may take beside the checkpoint's pieces
SAFE_NAME = re.compile(r"[A-Za-z0-9._-]+")
TARGET_GIGAPIXELS = 50
ROOT = Path(__file__).resolve().parent.parent


class LimitError(RuntimeError):
    pass


def folder_bytes(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.lstat().st_size for p in path.rglob("*") if p.is_file() or p.is_symlink())


def tree_bytes(root: Path = ROOT) -> int:
    """The git working tree as the device tool sends it: tracked plus untracked-not-ignored files."""
    try:
        listing = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                                 cwd=root, capture_output=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):  # no git here: count everything, an overestimate
        return sum(folder_bytes(p) for p in root.iterdir() if p.name != ".git")
    total = 0
    for name in sorted(set(listing.decode().split("\0")) - {""}):
        path = root / name
        if path.is_file() or path.is_symlink():  # a tracked file deleted here does not travel
            total += path.lstat().st_size
    shared = root / "shared"
    if shared.is_dir() and subprocess.run(["git", "check-ignore", "-q", "shared"], cwd=root).returncode == 0:
        total += folder_bytes(shared)  # shared/ travels even where git ignores it
    return total


def check_travel(carried: list[Path], root: Path = ROOT) -> dict:
    """Sizes of what travels; LimitError when it would not fit with TRAVEL_MARGIN to spare."""
    sizes = {"tree": tree_bytes(root), **{str(p): folder_bytes(p) for p in carried}}
    total = sum(sizes.values())
    if total + TRAVEL_MARGIN > TRAVEL_LIMIT:
        parts = ", ".join(f"{name} {size / MiB:.1f}" for name, size in sizes.items())
        raise LimitError(f"{total / MiB:.1f} MiB would travel ({parts}); the limit is {TRAVEL_LIMIT / MiB:.0f} MiB "
                         f"with {TRAVEL_MARGIN / MiB:.0f} MiB to spare: pack less (python -m scripts.gpu_pack --max-mb)")
    return {**sizes, "total": total}


def check_return(out: Path) -> list[tuple[str, int]]:
    """Every file under out as (relative name, bytes); LimitError for anything that would not come back."""
    files = sorted(p for p in out.rglob("*") if not p.is_dir())
    problems = []
    for path in files:
        relative = path.relative_to(out)
        if path.is_symlink() or not path.is_file():
            problems.append(f"{relative}: not a plain file")
        if len(relative.parts) - 1 > RETURN_DEPTH:
            problems.append(f"{relative}: more than {RETURN_DEPTH} folders down")
        if not all(SAFE_NAME.fullmatch(part) for part in relative.parts):
            problems.append(f"{relative}: a name with characters other than letters, digits, '.', '_', '-'")
        size = path.stat().st_size
        if size >= RETURN_FILE_LIMIT:
            problems.append(f"{relative}: {size / MiB:.2f} MiB, not under {RETURN_FILE_LIMIT // MiB} MiB")
    if len(files) > RETURN_FILES:
        problems.append(f"{len(files)} files, at most {RETURN_FILES} come back")
    total = sum(p.stat().st_size for p in files)
    if total > RETURN_TOTAL_LIMIT:
        problems.append(f"{total / MiB:.1f} MiB in all, at most {RETURN_TOTAL_LIMIT // MiB} MiB come back")
    if problems:
        raise LimitError("; ".join(problems))
    return [(str(p.relative_to(out)), p.stat().st_size) for p in files]


def needed_rate(minutes: float, gigapixels: float = TARGET_GIGAPIXELS) -> float:
    """Pixels per second that deliver the target in the window, counting every second of it."""
    return gigapixels * 1e9 / (minutes * 60)


def trim_log(path: Path, keep: int = LOG_RESERVE // 2) -> None:
    """Keep a runaway log's end (tracebacks land there) so that it cannot push a piece out."""
    if path.is_file() and path.stat().st_size > keep:
        with path.open("rb") as f:
            f.seek(-keep, os.SEEK_END)
            tail = f.read()
        path.write_bytes(b"[log trimmed to its end]\n" + tail)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="what", required=True)
    travel = sub.add_parser("travel", help="the working tree and carried paths")
    travel.add_argument("--carry", nargs="*", default=["pack"])
    back = sub.add_parser("return", help="the files a run left under $OUT")
    back.add_argument("out")
    back.add_argument("--minutes", type=float, default=9.0, help="the GPU window the rate is stated for")
    args = parser.parse_args()
    try:
        if args.what == "travel":
            sizes = check_travel([Path(p) for p in args.carry])
            print("travels: " + ", ".join(f"{k} {v / MiB:.1f} MiB" for k, v in sizes.items())
                  + f" (limit {TRAVEL_LIMIT // MiB} MiB)")
        else:
            trim_log(Path(args.out) / "train.log")
            files = check_return(Path(args.out))
            total = sum(size for _, size in files)
            print(f"comes back: {len(files)} files (at most {RETURN_FILES}), {total / MiB:.1f} MiB "
                  f"(at most {RETURN_TOTAL_LIMIT // MiB}), largest {max(s for _, s in files) / MiB:.2f} MiB "
                  f"(each under {RETURN_FILE_LIMIT // MiB}): " + ", ".join(name for name, _ in files))
            print(f"{TARGET_GIGAPIXELS} Gpx in a {args.minutes:g}-minute window needs "
                  f"{needed_rate(args.minutes) / 1e6:.1f} MPx/s over the whole window")
    except LimitError as error:
        sys.exit(f"over a device limit: {error}")


if __name__ == "__main__":
    main()
