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
    assert "aecodec.refine_torch.refiner" in loaded  # the refinement ran
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
    assert "aecodec.refine_torch.refiner" in graph["aecodec.effort"]
    assert {"aecodec.train.checkpoint", "aecodec.refine_torch.model"} <= graph["aecodec.train.loop"]
    assert "aecodec.probability" in graph["aecodec.train.export"]  # from .. import probability


def test_only_training_imports_training_and_the_refinement_stays_below_the_codec():
    graph = package_imports()
    runtime = {name: reaching(imports, "aecodec.train") for name, imports in graph.items()
               if not name.startswith("aecodec.train") and name not in TRAINING_FRONT_ENDS}
    assert {name: found for name, found in runtime.items() if found} == {}
    refine = {name: reaching(imports, "aecodec.train", "aecodec.codec", "torch.distributed")
              for name, imports in graph.items() if name.startswith("aecodec.refine_torch")}
    assert len(refine) >= 5 and {name: found for name, found in refine.items() if found} == {}


# docs/architecture.md, lowest layer first. A module may import its own layer and the ones below.
LAYERS = [
    {"quality", "model_config", "probability", "tiling", "pngstream", "limits", "files", "extras", "metrics",
     "onnxwire"},
    {"container", "entropy", "fixedpoint", "context", "bandstream", "detail", "deblock"},
    {"bundle", "networks", "exactgemm", "graphs", "imageio"},
    {"transform"},
    {"ratecontrol", "effort", "detail_choice", "refine_torch"},
    {"codec"},
    {"cli", "api", "batch", "pillow_plugin", "bench", "__init__", "__main__", "train", "rewrite"},
]


def layer_of(module: str) -> int:
    """The layer of aecodec.X or aecodec.X.Y (a subpackage's modules share its layer)."""
    parts = module.split(".")
    name = "__init__" if len(parts) == 1 else parts[1]
    return next(i for i, names in enumerate(LAYERS) if name in names)


def own_modules(imports: set[str], graph: dict[str, set[str]]) -> set[str]:
    """The package's modules among what a module imports ('from . import x' names both . and .x)."""
    return {name for name in imports if name in graph}


def test_every_module_has_a_layer_and_imports_only_downwards():
    graph = package_imports()
    upward = {}
    for name, imports in graph.items():
        higher = sorted(t for t in own_modules(imports, graph) if t != "aecodec" and layer_of(t) > layer_of(name))
        if higher:
            upward[name] = higher
    assert upward == {}


def test_the_import_graph_has_no_circle():
    graph = package_imports()
    edges = {name: {t for t in own_modules(imports, graph) if t != name and t != "aecodec"}
             for name, imports in graph.items()}
    visiting, done, circles = set(), set(), []

    def visit(name, path):
        if name in done:
            return
        if name in visiting:
            circles.append(path[path.index(name):] + [name])
            return
        visiting.add(name)
        for target in sorted(edges[name]):
            visit(target, path + [name])
        visiting.discard(name)
        done.add(name)

    for name in sorted(edges):
        visit(name, [])
    assert circles == []


def test_no_function_in_the_package_is_longer_than_50_lines():
    long = []
    for path in sorted(PACKAGE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.end_lineno - node.lineno >= 50:
                long.append(f"{path.relative_to(PACKAGE)}:{node.name} ({node.end_lineno - node.lineno + 1} lines)")
    assert long == []


# -- start-up (issue 23): a one-shot command does only what it needs, and each thing once ------------


def test_cli_decompress_imports_only_the_coding_modules(folder):
    args = ["-m", "aecodec", "decompress", "photo.aec", "-o", "startup.png", "-f", "--weights", str(TINY_WEIGHTS)]
    heavy = imported_modules(args, folder) & HEAVY
    assert heavy == CODING, f"aecodec decompress imports {sorted(heavy - CODING)} and not {sorted(CODING - heavy)}"


@pytest.fixture
def sessions_made(monkeypatch) -> list[str]:
    """The networks whose ONNX Runtime sessions are made from now on, in order (each costs tens of ms)."""
    from aecodec import networks
    made, make = [], networks.OrtSession.__init__

    def recorded(self, path, options):
        made.append(Path(path).stem)
        make(self, path, options)

    monkeypatch.setattr(networks.OrtSession, "__init__", recorded)
    return made


def test_cli_decompress_makes_only_the_synthesis_session(folder, tmp_path, sessions_made):
    """Each session costs its graph optimisation (tens of ms): a decompress makes the synthesis' alone."""
    from helpers import cli_tiny
    made = sessions_made
    result = cli_tiny("decompress", folder / "photo.aec", "-o", tmp_path / "photo.png")
    assert result.exit_code == 0, result.output
    assert made == ["synthesis"]


def test_a_decompressing_codec_holds_only_the_synthesis_session(codec):
    from aecodec.codec import Codec
    data = codec.compress(np.zeros((48, 64, 3), np.uint8), quality=50)
    fresh = Codec(TINY_WEIGHTS, threads=1)
    fresh.decompress(data)
    assert set(fresh.model.networks.sessions) == {"synthesis"}


def test_a_compressing_codec_makes_each_session_once_ahead_of_use(sessions_made):
    """encode prepares its sessions on another thread; each is made once, and none that it does not run."""
    from aecodec import networks
    from aecodec.codec import Codec
    made = sessions_made
    fresh = Codec(TINY_WEIGHTS, threads=1)
    image = np.zeros((48, 64, 3), np.uint8)
    fresh.compress(image, quality=50, detail=False)
    assert sorted(made) == ["analysis", "hyper_analysis"]
    fresh.compress(image, quality=50)
    fresh.decompress(fresh.compress(image, quality=50))
    assert sorted(made) == ["analysis", "hyper_analysis", "synthesis"]
    assert all(isinstance(session, networks.OrtSession) for session in fresh.model.networks.sessions.values())


def test_a_session_that_fails_to_be_prepared_fails_its_use_then_is_tried_again(monkeypatch):
    from aecodec import networks
    from aecodec.codec import Codec
    fresh = Codec(TINY_WEIGHTS, threads=1)
    make = networks.OrtSession.__init__
    tries = []

    def failing_once(self, path, options):
        tries.append(Path(path).stem)
        if len(tries) == 1:
            raise RuntimeError("no memory for the session")
        make(self, path, options)

    monkeypatch.setattr(networks.OrtSession, "__init__", failing_once)
    fresh.model.networks.prepare("synthesis")
    with pytest.raises(RuntimeError, match="no memory"):
        fresh.model.networks.session("synthesis")
    assert isinstance(fresh.model.networks.session("synthesis"), networks.OrtSession)
    assert tries == ["synthesis", "synthesis"]


@pytest.mark.parametrize("name", ["tiny", "shipped"])
def test_model_id_is_the_sha256_of_the_bundle_files(name):
    """The id files carry, unchanged: the first 8 bytes of SHA-256 over the four files, as the card says."""
    import hashlib
    from aecodec.bundle import HASHED_FILES, default_weights_root, model_id_of, read_card
    weights = TINY_WEIGHTS if name == "tiny" else default_weights_root() / "main"
    whole = hashlib.sha256(b"".join((weights / file).read_bytes() for file in HASHED_FILES)).digest()[:8]
    assert model_id_of(weights) == whole == bytes.fromhex(read_card(weights)["model_id"])


def test_finding_then_loading_a_bundle_hashes_it_once(tmp_path, monkeypatch):
    """Pillow's Image.open and a file of another model find the bundle (hashing every one installed),
    then load it: one SHA-256 of its 12 MB, not two."""
    import hashlib
    import shutil
    from aecodec import bundle
    shutil.copytree(TINY_WEIGHTS, tmp_path / "tiny")
    model_id = bytes.fromhex(bundle.read_card(TINY_WEIGHTS)["model_id"])
    hashes, sha256 = [], hashlib.sha256
    monkeypatch.setattr(hashlib, "sha256", lambda *args: hashes.append(args) or sha256(*args))
    loaded = bundle.load_bundle(bundle.find_bundle(model_id, tmp_path))
    assert loaded.model_id == model_id and len(hashes) == 1


def test_a_rewritten_bundle_file_is_hashed_again(tmp_path):
    """The ids remembered in memory are keyed by each file's size, times and inode: an edit shows."""
    import shutil
    from aecodec.bundle import model_id_of
    folder = tmp_path / "tiny"
    shutil.copytree(TINY_WEIGHTS, folder)
    before = model_id_of(folder)
    with open(folder / "tables.npz", "ab") as f:
        f.write(b"\0")
    assert model_id_of(folder) != before == model_id_of(TINY_WEIGHTS)


def imported_module_names(args: list[str], cwd) -> set[str]:
    """Full dotted names of every module a fresh interpreter imported while running args."""
    env = {**source_tree_env(), "PYTHONPROFILEIMPORTTIME": "1"}
    done = subprocess.run([sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    return {line.split("|")[-1].strip() for line in done.stderr.splitlines() if line.startswith("import time:")}


def test_cli_decompress_of_one_file_loads_no_pool_bar_or_pillow_plugin(folder):
    """One file runs no worker pool and draws no bar, and aecodec writes its PNG itself: multiprocessing,
    tqdm and Pillow's format plugins would cost its start-up about 20 ms CPU."""
    args = ["-m", "aecodec", "decompress", "photo.aec", "-o", "startup.png", "-f", "--weights", str(TINY_WEIGHTS)]
    loaded = imported_module_names(args, folder)
    unneeded = {name for name in loaded if name.split(".")[0] in ("tqdm", "multiprocessing")
                or name == "concurrent.futures.process" or (name.startswith("PIL.") and name.endswith("ImagePlugin"))}
    assert unneeded == set()


FREEZE_AT_EXIT = """
import atexit, gc, sys
from aecodec.cli import main
atexit.register(lambda: print("frozen:", gc.get_freeze_count() > 0, flush=True))  # runs last: atexit is LIFO
sys.argv[0] = "aecodec"
main()
"""


def test_cli_freezes_its_objects_at_exit_and_still_writes_its_output(folder, tmp_path, codec):
    """The last garbage collection skips frozen objects (10-20 ms CPU); the output is written whole first."""
    from PIL import Image
    out = tmp_path / "frozen.png"
    done = subprocess.run([sys.executable, "-c", FREEZE_AT_EXIT, "decompress", "photo.aec", "-o", str(out),
                           "--weights", str(TINY_WEIGHTS)], cwd=folder, env=source_tree_env(),
                          capture_output=True, text=True, timeout=120)
    assert (done.returncode, done.stdout) == (0, "frozen: True\n"), done.stderr[-2000:]
    expected = codec.decompress((folder / "photo.aec").read_bytes())
    assert np.array_equal(np.asarray(Image.open(out)), np.asarray(expected))


def test_cli_in_a_long_lived_process_leaves_garbage_collectable(folder, tmp_path):
    """CliRunner (and any program calling main()) keeps collecting cycles: the freeze waits for exit."""
    import gc
    from helpers import cli_tiny
    before = gc.get_freeze_count()
    for i in range(2):
        result = cli_tiny("decompress", folder / "photo.aec", "-o", tmp_path / f"{i}.png")
        assert result.exit_code == 0, result.output
    assert gc.get_freeze_count() == before
