"""The installed package, not the source tree, must find its weights and round-trip an image.

The tests below run from the repository, where ``import aecodec`` finds the
source tree; this one builds the wheel that ``pip install .`` would install and
imports aecodec from the unpacked wheel alone.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

ROUND_TRIP = """
import sys
from pathlib import Path
import numpy as np
import aecodec
from aecodec.bundle import default_weights_root

root = default_weights_root()
assert Path(aecodec.__file__).parent.parent == Path(sys.argv[1]), aecodec.__file__
assert root == Path(aecodec.__file__).parent / "shipped_weights", root
image = np.random.default_rng(0).integers(0, 256, (40, 56, 3), dtype=np.uint8)
back = np.asarray(aecodec.decompress(aecodec.compress(image, quality=50)))
assert back.shape == image.shape, back.shape
print("ok")
"""


@pytest.fixture(scope="module")
def unpacked_wheel(tmp_path_factory) -> Path:
    source = tmp_path_factory.mktemp("source")
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    for folder in ("aecodec", "weights"):
        shutil.copytree(ROOT / folder, source / folder, ignore=shutil.ignore_patterns("__pycache__"))
    wheels = tmp_path_factory.mktemp("wheels")
    isolation = [] if importlib.util.find_spec("setuptools") is None else ["--no-build-isolation"]
    subprocess.run([sys.executable, "-m", "pip", "wheel", str(source), "--no-deps", "-q", "-w", str(wheels),
                    *isolation], check=True, cwd=source)
    target = tmp_path_factory.mktemp("site")
    with zipfile.ZipFile(next(wheels.glob("aecodec-*.whl"))) as wheel:
        wheel.extractall(target)
    return target


def test_wheel_ships_the_weights_beside_the_bundle_reader(unpacked_wheel):
    package = unpacked_wheel / "aecodec"
    assert (package / "bundle.py").is_file()
    shipped = sorted(p.name for p in (ROOT / "weights").iterdir() if p.is_dir())
    installed = sorted(p.name for p in (package / "shipped_weights").iterdir() if p.is_dir())
    assert installed == shipped


def test_wheel_ships_every_module_of_the_source_tree(unpacked_wheel):
    """A subpackage left out of pyproject's list (say aecodec/refine_torch, which --effort imports lazily)
    is invisible in an editable install and missing from every real one."""
    source = {p.relative_to(ROOT).as_posix() for p in (ROOT / "aecodec").rglob("*.py")
              if "__pycache__" not in p.parts and "shipped_weights" not in p.parts}
    installed = {p.relative_to(unpacked_wheel).as_posix() for p in (unpacked_wheel / "aecodec").rglob("*.py")}
    assert source - installed == set()


@pytest.mark.skipif(not (ROOT / "weights" / "main").is_dir(), reason="no shipped weights in this checkout")
def test_installed_package_round_trips_with_its_own_weights(unpacked_wheel, tmp_path):
    env = {**os.environ, "PYTHONPATH": str(unpacked_wheel)}
    result = subprocess.run([sys.executable, "-c", ROUND_TRIP, str(unpacked_wheel)], cwd=tmp_path, env=env,
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


def test_every_package_a_test_may_skip_without_is_in_an_extra():
    """CI installs the extras: a test skipped for want of a package that no extra names never runs there."""
    import re
    import tomllib

    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    declared = {re.split(r"[<>=!~\[; ]", spec, maxsplit=1)[0].lower().replace("_", "-")
                for specs in extras.values() for spec in specs}
    skipped = {name.split(".")[0].lower().replace("_", "-")
               for test in (ROOT / "tests").glob("test_*.py")
               for name in re.findall(r"importorskip\(\"([\w.]+)\"", test.read_text())}
    assert skipped and skipped <= declared, skipped - declared
