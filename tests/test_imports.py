"""What each entry point imports, checked in a fresh interpreter (as click's tests/test_imports.py does).

The header-only paths (``aecodec info``, Pillow's ``Image.open``) must stay cheap, and the
runtime must never pull in what only training, export or the bench need.
"""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from helpers import TINY_WEIGHTS, source_tree_env

# Third-party modules that cost real time or memory to import, and who may load them.
HEAVY = {"onnxruntime", "constriction", "onnx", "torch", "matplotlib", "imagecodecs", "scipy"}
CODING = {"onnxruntime", "constriction"}

ROUND_TRIP = f"""
import numpy as np
import aecodec
codec = aecodec.Codec({str(TINY_WEIGHTS)!r})
rgb = (np.arange(48 * 64 * 3) % 251).astype(np.uint8).reshape(48, 64, 3)
assert codec.decompress(codec.compress(rgb, quality=50)).size == (64, 48)
"""

ENTRY_POINTS = {  # name: (command after the interpreter, heavy modules it may load)
    "import aecodec": (["-c", "import aecodec"], set()),
    "aecodec --help": (["-m", "aecodec", "--help"], set()),
    "aecodec info": (["-m", "aecodec", "info", "photo.aec"], set()),
    "aecodec info --json": (["-m", "aecodec", "info", "--json", "photo.aec"], set()),
    "Image.open": (["-c", "import aecodec; from PIL import Image; assert Image.open('photo.aec').size == (64, 48)"],
                   set()),
    "Codec round trip": (["-c", ROUND_TRIP], CODING),
}


def imported_modules(args: list[str], cwd) -> set[str]:
    """Top-level names of every module a fresh interpreter imported while running args."""
    env = {**source_tree_env(), "PYTHONPROFILEIMPORTTIME": "1"}
    done = subprocess.run([sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    # Each line: "import time: self [us] | cumulative | imported package", the name indented by depth.
    lines = [line.split("|")[-1].strip() for line in done.stderr.splitlines() if line.startswith("import time:")]
    return {name.split(".")[0] for name in lines[1:]}


@pytest.fixture(scope="module")
def folder(tmp_path_factory, codec):
    path = tmp_path_factory.mktemp("imports")
    (path / "photo.aec").write_bytes(codec.compress(np.zeros((48, 64, 3), np.uint8), quality=50))
    return path


@pytest.mark.parametrize("name", ENTRY_POINTS)
def test_entry_point_imports_only_what_it_needs(folder, name):
    args, allowed = ENTRY_POINTS[name]
    heavy = imported_modules(args, folder) & HEAVY
    assert heavy == allowed, f"{name} imports {sorted(heavy - allowed)} and not {sorted(allowed - heavy)}"



def test_dir_shows_the_api_that_loads_lazily():
    import aecodec
    names = set(dir(aecodec))
    assert set(aecodec.__all__) <= names and "import_module" not in names
    assert all(getattr(aecodec, name) is not None for name in aecodec.__all__)
