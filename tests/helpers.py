"""What many test files need: where things are, test images, running the CLI, reading its errors.

Fixtures live in conftest.py; plain functions and constants live here, imported by name.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
from click.testing import CliRunner, Result

# The stream rewriting lives in the package, shared with bench/fuzz_decoder.py; the tests take it from here.
from aecodec.rewrite import UNLIMITED_ESCAPE, fix_crc, join_streams, restream, split_streams  # noqa: F401

ROOT = Path(__file__).resolve().parent.parent
TINY_WEIGHTS = ROOT / "tests" / "data" / "tiny_weights"
TINY_CONTEXT_WEIGHTS = ROOT / "tests" / "data" / "tiny_context_weights"  # with a checkerboard context: version 3
TINY = ["--weights", str(TINY_WEIGHTS)]  # the CLI option that selects the tiny test model
SHARED = ROOT.parent / "shared"
KODAK = SHARED / "data" / "kodak"


def photo_like(height: int, width: int, seed: int = 0) -> np.ndarray:
    """Smooth colour gradients with a little texture: compresses like a photo, not like noise."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    channels = []
    for c in range(3):
        fx, fy, phase = rng.uniform(0.01, 0.08, 2).tolist() + [rng.uniform(0, 6)]
        channels.append(128 + 80 * np.sin(fx * x + phase) * np.cos(fy * y) + rng.normal(0, 6, (height, width)))
    return np.clip(np.stack(channels, axis=2), 0, 255).astype(np.uint8)


# -- the command line ----------------------------------------------------------------------------


def source_tree_env(**extra: str) -> dict:
    """The environment for a fresh interpreter that imports aecodec from this checkout."""
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]), **extra}


def aecodec_command(*args: str, cwd: Path, **kwargs) -> subprocess.CompletedProcess:
    """`python -m aecodec ARGS` in a fresh interpreter, as a user would run it."""
    kwargs.setdefault("stdout", subprocess.PIPE)
    kwargs.setdefault("stderr", subprocess.PIPE)
    return subprocess.run([sys.executable, "-m", "aecodec", *args], cwd=cwd, env=source_tree_env(), **kwargs)


def cli(*args, **kwargs) -> Result:
    """`aecodec ARGS` in this process (click's test runner); arguments may be paths."""
    from aecodec.cli import main
    return CliRunner().invoke(main, [str(a) for a in args], **kwargs)


def cli_tiny(*args, **kwargs) -> Result:
    """`aecodec ARGS --weights <the tiny test model>` in this process."""
    return cli(*args, *TINY, **kwargs)


def one_line_error(result: Result | subprocess.CompletedProcess) -> str:
    """The one `aecodec: error:` line of a failed command, after checking it is the only one."""
    status = result.exit_code if isinstance(result, Result) else result.returncode
    stderr = result.stderr if isinstance(result.stderr, str) else result.stderr.decode()
    assert status == 1, (status, stderr)
    errors = [line for line in stderr.splitlines() if line.startswith("aecodec: error:")]
    assert len(errors) == 1 and "Traceback" not in stderr, stderr
    return errors[0]


def aecodec_without(modules: list[str], *args: str, cwd: Path, **kwargs) -> subprocess.CompletedProcess:
    """`python -m aecodec ARGS` as in an install that lacks these modules (an extra not installed)."""
    hide = f"import runpy, sys; sys.modules.update(dict.fromkeys({modules!r})); sys.argv[0] = 'aecodec'; "
    kwargs.setdefault("stdout", subprocess.PIPE)
    kwargs.setdefault("stderr", subprocess.PIPE)
    return subprocess.run([sys.executable, "-c", hide + "runpy.run_module('aecodec', run_name='__main__')", *args],
                          cwd=cwd, env=source_tree_env(), **kwargs)


def only_line(done: subprocess.CompletedProcess, status: int) -> str:
    """The whole of a finished command's stderr, after checking its exit status and that it is one line."""
    stderr = done.stderr if isinstance(done.stderr, str) else done.stderr.decode()
    assert done.returncode == status and len(stderr.splitlines()) == 1, (done.returncode, stderr)
    return stderr.rstrip("\n")


# -- rewriting .aec files: the golden and hostile-decoder tests -----------------------------------


def symbols_digest(array: np.ndarray) -> str:
    """SHA-256 of integers (decoded symbols) as little-endian int64: the same on every machine."""
    return hashlib.sha256(np.ascontiguousarray(array, dtype="<i8").tobytes()).hexdigest()
