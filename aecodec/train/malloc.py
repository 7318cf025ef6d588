"""Training's memory allocator: tcmalloc where it is installed, for about 25% faster steps on a CPU.

A training step frees and allocates again hundreds of MB of activations. glibc's malloc hands
the large blocks back to the system and faults them in again on the next step; tcmalloc keeps
them. bench/train_malloc.py times the loop's own step under each allocator
(bench/results/train_malloc.json).

An allocator is chosen when a process starts, so ``aecodec train`` starts itself again with
LD_PRELOAD naming the library (restart_command says how). It does so only as the aecodec
program itself, never inside another program that called its command (a test runner).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

LIBRARY = "libtcmalloc_minimal.so.4"  # Debian and Ubuntu: apt install libtcmalloc-minimal4
SEARCHED = ("/usr/lib/x86_64-linux-gnu", "/usr/lib/aarch64-linux-gnu", "/usr/lib64", "/usr/lib", "/usr/local/lib")
TRIED = "AECODEC_TCMALLOC_TRIED"  # set in the restarted process: never restart twice


def library_path(folders: tuple[str, ...] = SEARCHED, name: str = LIBRARY) -> str | None:
    """Where tcmalloc (or another library by name) is installed, or None."""
    for folder in folders:
        path = Path(folder) / name
        if path.is_file():
            return str(path)
    return None


def loaded() -> bool:
    """Whether this process already runs with tcmalloc (Linux: its memory map names it)."""
    try:
        return "tcmalloc" in Path("/proc/self/maps").read_text()
    except OSError:
        return False


def restart_command(argv: list[str], env: dict[str, str], library: str | None,
                    already_loaded: bool) -> tuple[list[str], dict[str, str]] | None:
    """(command, environment) that runs this aecodec command again with tcmalloc, or None when it
    should go on as it is: tcmalloc is in use or missing, a restart was tried, or argv is not the
    aecodec program's own."""
    if already_loaded or library is None or env.get(TRIED) or not argv:
        return None
    program = Path(argv[0])
    if program.name != "aecodec" and (program.name, program.parent.name) != ("__main__.py", "aecodec"):
        return None
    preload = " ".join(p for p in (library, env.get("LD_PRELOAD", "")) if p)
    return [sys.executable, "-m", "aecodec", *argv[1:]], {**env, "LD_PRELOAD": preload, TRIED: "1"}


def use_tcmalloc(required: bool) -> None:
    """Start this process again with tcmalloc where that applies (the call then does not return).
    required: the user asked for it, so a missing library is an error rather than a quiet fallback."""
    library = library_path()
    if required and library is None:
        raise RuntimeError(f"--tcmalloc: {LIBRARY} is not installed (apt install libtcmalloc-minimal4)")
    command = restart_command(sys.argv, dict(os.environ), library, loaded())
    if command is not None:
        sys.stdout.flush()
        sys.stderr.flush()
        os.execve(sys.executable, *command)
