"""The workflow examples in module docstrings run, as constriction's tests/python/test_docexamples.py runs its docs.

Each example runs as written, with its module's names in scope (as doctest does),
in a folder that holds the files it names (photo.png, photos/), with the shipped
model, plus a few inputs it takes as given (``GIVEN``). Examples that need training
photos, a checkpoint, image sets or torch are not run here; their modules' own
tests cover them.
"""

from __future__ import annotations

import ast
import importlib
import textwrap

import numpy as np
import pytest
from PIL import Image

from aecodec import probability
from aecodec.bundle import default_weights_root
from helpers import ROOT, photo_like


def given(module: str) -> dict:
    """The names an example uses without defining them."""
    rng = np.random.default_rng(0)
    photo = photo_like(192, 192, seed=1)
    if module == "aecodec.codec":
        return {"rgb_array": photo[:64, :96]}
    if module == "aecodec.entropy":
        pmfs, offsets = probability.gaussian_tables(probability.scale_table())
        table_index = rng.integers(0, len(pmfs), 500)
        return {"pmfs": pmfs, "offsets": offsets, "table_index": table_index,
                "values": np.rint(rng.normal(0, 3, 500)).astype(np.int64)}
    if module in ("aecodec.detail", "aecodec.detail_choice"):
        from aecodec import detail_choice
        from aecodec.codec import Codec

        decoded = np.clip(photo.astype(int) + rng.integers(-12, 13, photo.shape), 0, 255).astype(np.uint8)
        return {"original": photo, "decoded": decoded, "lambda_": 0.3, "height": 192, "width": 192,
                "tables": Codec().bundle.latent_tables, "detail_choice": detail_choice}
    if module == "aecodec.transform":
        from aecodec import container
        from aecodec.networks import RuntimeOptions

        data = container.unpack(__import__("aecodec").compress(photo[:64, :96], quality=60, detail=False))
        return {"folder": default_weights_root() / "main", "RuntimeOptions": RuntimeOptions, "rgb": photo[:64, :96],
                "quality": 60, "height": 64, "width": 96, "header": data.header, "streams": data.streams,
                "detail_layer": None}
    if module == "aecodec.imageio":
        return {"rgb": photo, "alpha": photo[..., 0], "icc": b"", "exif": b""}
    if module == "aecodec.metrics":
        return {"original": photo, "decoded": np.clip(photo.astype(int) + rng.integers(-3, 4, photo.shape), 0, 255)
                .astype(np.uint8), "bpp_a": [0.2, 0.4, 0.8, 1.6], "psnr_a": [28.0, 31.0, 34.0, 37.0],
                "bpp_b": [0.18, 0.36, 0.72, 1.5], "psnr_b": [28.1, 31.2, 34.1, 37.2]}
    return {}


EXAMPLES = ["aecodec", "aecodec.api", "aecodec.batch", "aecodec.codec", "aecodec.detail", "aecodec.detail_choice",
            "aecodec.entropy", "aecodec.imageio", "aecodec.transform",
            "aecodec.metrics", "aecodec.pillow_plugin"]


def example(module: str) -> str:
    """The first indented block of a module's docstring: the one after its first '::', if it has one."""
    path = ROOT / (module.replace(".", "/") + ("/__init__.py" if module == "aecodec" else ".py"))
    lines = ast.get_docstring(ast.parse(path.read_text()), clean=False).splitlines()
    marks = [i for i, line in enumerate(lines) if line.rstrip().endswith("::")]
    block, started = [], False
    for line in lines[marks[0] + 1 if marks else 0:]:
        if line.startswith("    ") or (started and not line.strip()):
            block.append(line)
            started = True
        elif started:
            break
    assert block, f"{module} has no example"
    return textwrap.dedent("\n".join(block)).strip() + "\n"


@pytest.fixture
def folder(tmp_path, monkeypatch):
    if not (default_weights_root() / "main").is_dir():
        pytest.skip("the examples use the shipped model")
    Image.fromarray(photo_like(64, 96, seed=2)).save(tmp_path / "photo.png")
    (tmp_path / "photos").mkdir()
    Image.fromarray(photo_like(48, 64, seed=3)).save(tmp_path / "photos" / "one.png")
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.mark.parametrize("module", EXAMPLES)
def test_docstring_example_runs(folder, module):
    namespace = {**vars(importlib.import_module(module)), **given(module)}
    exec(compile(example(module), f"<{module} docstring>", "exec"), namespace)  # noqa: S102


def test_examples_are_found():
    assert example("aecodec.entropy").startswith("tables = EntropyTables(pmfs, offsets)")
    assert example("aecodec").startswith("import aecodec")
