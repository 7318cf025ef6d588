"""What each entry point imports, checked in a fresh interpreter (as click's tests/test_imports.py does).

The header-only paths (``aecodec info``, Pillow's ``Image.open``) must stay cheap, and the
runtime must never pull in what only training, export or the bench need.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

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

EFFORT_ENCODE = f"""
import sys
import numpy as np
import aecodec
codec = aecodec.Codec({str(TINY_WEIGHTS)!r}, threads=1)
rgb = (np.arange(48 * 64 * 3) % 251).astype(np.uint8).reshape(48, 64, 3)
assert codec.decompress(codec.compress(rgb, quality=50, effort=1)).size == (64, 48)
print(" ".join(name for name in sys.modules if name.startswith("aecodec.")))
"""

PACKAGE = Path(__file__).resolve().parent.parent / "aecodec"
# cli.py's `train` and `export` commands are training's own front end, so they alone may import it.
TRAINING_FRONT_ENDS = {"aecodec.cli"}

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


def test_effort_encode_loads_the_refinement_and_no_training_code():
    pytest.importorskip("torch")
    pytest.importorskip("onnx")
    done = subprocess.run([sys.executable, "-c", EFFORT_ENCODE], env=source_tree_env(), capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    loaded = set(done.stdout.split())
    assert "aecodec.refine.refiner" in loaded  # the refinement ran
    assert sorted(name for name in loaded if name.startswith("aecodec.train")) == []


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path) -> set[str]:
    """Every module path imports, in functions too, relative imports made absolute; ``from a import b``
    counts as both a and a.b, since b may be a module."""
    package = module_name(path) if path.name == "__init__.py" else module_name(path).rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = ".".join(package.split(".")[:len(package.split(".")) - node.level + 1]) if node.level else ""
            module = ".".join(part for part in (base, node.module) if part)
            found.add(module)
            found.update(f"{module}.{alias.name}" for alias in node.names)
    return found


def package_imports() -> dict[str, set[str]]:
    return {module_name(path): imports_of(path) for path in sorted(PACKAGE.rglob("*.py"))}


def reaching(imports: set[str], *targets: str) -> list[str]:
    return sorted(name for name in imports if any(name == t or name.startswith(t + ".") for t in targets))


def test_imports_are_resolved_as_python_resolves_them():
    graph = package_imports()
    assert "aecodec.refine.refiner" in graph["aecodec.effort"]
    assert {"aecodec.train.checkpoint", "aecodec.refine.model"} <= graph["aecodec.train.loop"]
    assert "aecodec.probability" in graph["aecodec.train.export"]  # from .. import probability


def test_only_training_imports_training_and_the_refinement_stays_below_the_codec():
    graph = package_imports()
    runtime = {name: reaching(imports, "aecodec.train") for name, imports in graph.items()
               if not name.startswith("aecodec.train") and name not in TRAINING_FRONT_ENDS}
    assert {name: found for name, found in runtime.items() if found} == {}
    refine = {name: reaching(imports, "aecodec.train", "aecodec.codec", "torch.distributed")
              for name, imports in graph.items() if name.startswith("aecodec.refine")}
    assert len(refine) >= 5 and {name: found for name, found in refine.items() if found} == {}
