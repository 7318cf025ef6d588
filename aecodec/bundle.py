"""A weights bundle on disk: three ONNX networks, frozen integer tables, a model card.

Layout of a bundle folder::

    manifest.json          model card: architecture and its configuration, training, data, RD on Kodak
    analysis.onnx          image (1,3,H,W) in [0,1]  -> latent (1,M,H/16,W/16)
    hyper_analysis.onnx    gained latent             -> hyper-latent (1,N,H/64,W/64)
    synthesis.onnx         latent                    -> image (1,3,H,W)
    tables.npz             gains, fixed-point hyper-synthesis, scale table, pmfs, and the
                           integer checkerboard context where the model has one (context_*)

The model id is the first 8 bytes of the SHA-256 of the four network and table
files, so retraining can never reuse an id, and a file names exactly what decodes it.
Installed bundles live in one folder each under ``default_weights_root()``;
``find_bundle`` picks the one a file names.

This module is the only reader and writer of these files.
"""

from __future__ import annotations

import hashlib
import json
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .context import ContextLayers, IntegerLayer, check_context
from .entropy import EntropyTables
from .fixedpoint import OUTPUT_FRACTION_BITS, FixedConv, check_layers
from .model_config import ModelConfig
from .probability import fixed_point

NETWORKS = ("analysis", "hyper_analysis", "synthesis")
TABLES = "tables.npz"
HASHED_FILES = ("analysis.onnx", "hyper_analysis.onnx", "synthesis.onnx", TABLES)
MANIFEST = "manifest.json"
# The architecture's downsampling, for model cards whose model_config predates these fields.
LATENT_STRIDE = 16  # image pixels per latent element
HYPER_STRIDE = 64  # image pixels per hyper-latent element


class ModelNotFound(LookupError):
    """No installed bundle has the model id a file names."""


@dataclass(frozen=True)
class ModelBundle:
    folder: Path
    model_id: bytes
    card: dict  # the model card as written, for display; the code reads the typed fields below
    config: ModelConfig
    extrapolated_levels: int  # gain rows export added below the lowest trained level
    latent_stride: int  # image pixels per latent element
    hyper_stride: int  # image pixels per hyper-latent element
    log_gain: np.ndarray  # (levels, M)
    log_inverse_gain: np.ndarray  # (levels, M)
    hyper_synthesis: list[FixedConv]
    scale_table: np.ndarray  # in the hyper-synthesis' output fixed point (probability.fixed_point)
    latent_tables: EntropyTables
    hyper_tables: EntropyTables  # one per hyper-latent channel
    context: ContextLayers | None = None  # the checkerboard context (format version 3); None without one

    @property
    def levels(self) -> int:
        return len(self.log_gain)

    def network_path(self, name: str) -> Path:
        return self.folder / f"{name}.onnx"


# Model ids already hashed in this process, by the identity of the files hashed (see _identity).
# In memory only: a codec writes nothing outside its outputs.
_model_ids: dict[tuple, bytes] = {}
HASH_CHUNK = 1 << 20  # bytes read at a time: one buffer reused, rather than a fresh copy of each file


def model_id_of(folder: Path) -> bytes:
    """The first 8 bytes of the SHA-256 of HASHED_FILES, in that order.

    Each set of files is hashed once per process (finding a bundle, then loading it, is one
    hash); a file rewritten since (another size, time or inode) is hashed again.
    """
    folder = Path(folder)
    key = _identity(folder)
    if key not in _model_ids:
        _model_ids[key] = _sha256_of([folder / name for name in HASHED_FILES])[:8]
    return _model_ids[key]


def _identity(folder: Path) -> tuple:
    stats = [os.stat(folder / name) for name in HASHED_FILES]
    return (str(folder.resolve()), *((s.st_dev, s.st_ino, s.st_size, s.st_mtime_ns, s.st_ctime_ns) for s in stats))


def _sha256_of(paths: list[Path]) -> bytes:
    """SHA-256 of the files one after another, read through one buffer (no 12 MB of fresh pages)."""
    digest, buffer = hashlib.sha256(), bytearray(HASH_CHUNK)
    view = memoryview(buffer)
    for path in paths:
        with open(path, "rb", buffering=0) as f:
            while size := f.readinto(buffer):
                digest.update(view[:size])
    return digest.digest()


def default_weights_root() -> Path:
    """weights/ in a source checkout, or the copy installed inside the package."""
    installed = Path(__file__).parent / "shipped_weights"
    return installed if installed.is_dir() else Path(__file__).parent.parent / "weights"


def read_card(folder: str | Path) -> dict:
    return json.loads((Path(folder) / MANIFEST).read_text())


def write_card(folder: str | Path, card: dict) -> None:
    (Path(folder) / MANIFEST).write_text(json.dumps(card, indent=2) + "\n")


def read_tables(folder: str | Path) -> dict[str, np.ndarray]:
    """tables.npz as stored: every array by its key (see write_tables)."""
    with np.load(Path(folder) / TABLES, allow_pickle=False) as npz:
        return {key: npz[key] for key in npz.files}


def write_tables(folder: str | Path, log_gain, log_inverse_gain, layers: list[FixedConv], scale_table,
                 latent: tuple[list, np.ndarray], hyper: tuple[list, np.ndarray],
                 context: ContextLayers | None = None) -> None:
    """tables.npz; latent and hyper are (pmfs, offsets) as probability.gaussian_tables makes them."""
    arrays = {
        "log_gain": np.asarray(log_gain, np.float64),
        "log_inverse_gain": np.asarray(log_inverse_gain, np.float64),
        "scale_table": np.asarray(scale_table, np.float64),
        "latent_pmfs": np.concatenate(latent[0]).astype(np.uint16), "latent_lengths": [len(p) for p in latent[0]],
        "latent_offsets": latent[1],
        "hyper_pmfs": np.concatenate(hyper[0]).astype(np.uint16), "hyper_lengths": [len(p) for p in hyper[0]],
        "hyper_offsets": hyper[1],
        "layer_shifts": [layer.shift for layer in layers],
        "layer_relu": [layer.relu for layer in layers],
        "layer_shuffle": [layer.shuffle for layer in layers],
    }
    for i, layer in enumerate(layers):
        arrays[f"layer{i}_weight"] = layer.weight.astype(np.int16)  # WEIGHT_BITS fit
        arrays[f"layer{i}_bias"] = layer.bias
        arrays[f"layer{i}_multiplier"] = layer.multiplier
    if context is not None:
        for name in CONTEXT_LAYERS:
            layer = getattr(context, name)
            arrays[f"context_{name}_weight"] = layer.weight.astype(np.int16)  # WEIGHT_BITS fit
            arrays[f"context_{name}_bias"] = layer.bias
            arrays[f"context_{name}_multiplier"] = layer.multiplier
            arrays[f"context_{name}_shift"] = layer.shift
        arrays["context_level_bias"] = context.level_bias
        arrays["context_scales"] = context.scales
    with open(Path(folder) / TABLES, "wb") as f:
        np.savez_compressed(f, **{k: np.asarray(v) for k, v in arrays.items()})


CONTEXT_LAYERS = ("seen", "hidden", "out")


def _context(t: dict) -> ContextLayers | None:
    """The context layers of tables.npz, checked; None for a model without one."""
    if "context_seen_weight" not in t:
        return None
    layers = [IntegerLayer(t[f"context_{name}_weight"].astype(np.int64), t[f"context_{name}_bias"],
                           t[f"context_{name}_multiplier"], int(t[f"context_{name}_shift"])) for name in CONTEXT_LAYERS]
    context = ContextLayers(*layers, t["context_level_bias"], t["context_scales"])
    check_context(context)
    return context


def _split_tables(flat: np.ndarray, lengths: np.ndarray) -> list[np.ndarray]:
    return np.split(flat.astype(np.int64), np.cumsum(lengths)[:-1])


def load_bundle(folder: str | Path) -> ModelBundle:
    folder = Path(folder)
    missing = [n for n in (MANIFEST, *HASHED_FILES) if not (folder / n).is_file()]
    if missing:
        raise FileNotFoundError(f"weights folder {folder} lacks {', '.join(missing)}")
    # Hashing and inflating tables.npz both run outside the GIL: the model id is hashed on another
    # core meanwhile, which takes its time out of a one-shot command's start-up.
    with ThreadPoolExecutor(1) as pool:
        model_id = pool.submit(model_id_of, folder)
        bundle = _load_tables_and_card(folder, model_id.result)
    return bundle


def _load_tables_and_card(folder: Path, model_id) -> ModelBundle:
    """load_bundle's work once the files are known to be there; model_id() gives the id when needed."""
    t = read_tables(folder)
    layers = [
        FixedConv(t[f"layer{i}_weight"].astype(np.int64), t[f"layer{i}_bias"], t[f"layer{i}_multiplier"],
                  int(shift), bool(relu), bool(shuffle))
        for i, (shift, relu, shuffle) in enumerate(zip(t["layer_shifts"], t["layer_relu"], t["layer_shuffle"]))
    ]
    check_layers(layers)
    card = read_card(folder)
    entries = card["model_config"]
    return ModelBundle(
        folder=folder, model_id=model_id(), card=card, config=ModelConfig.from_card(entries),
        extrapolated_levels=int(card.get("extrapolated_levels") or 0),
        latent_stride=int(entries.get("latent_stride", LATENT_STRIDE)),
        hyper_stride=int(entries.get("hyper_stride", HYPER_STRIDE)),
        log_gain=t["log_gain"], log_inverse_gain=t["log_inverse_gain"],
        hyper_synthesis=layers, scale_table=fixed_point(t["scale_table"], OUTPUT_FRACTION_BITS),
        latent_tables=EntropyTables(_split_tables(t["latent_pmfs"], t["latent_lengths"]), t["latent_offsets"]),
        hyper_tables=EntropyTables(_split_tables(t["hyper_pmfs"], t["hyper_lengths"]), t["hyper_offsets"]),
        context=_context(t),
    )


def installed_bundles(root: Path | None = None) -> dict[bytes, Path]:
    """Model id -> folder, for every bundle under root (default_weights_root() when None)."""
    root = default_weights_root() if root is None else root
    return {model_id_of(p.parent): p.parent for p in sorted(root.glob(f"*/{MANIFEST}"))}


def find_bundle(model_id: bytes, root: Path | None = None) -> Path:
    """The folder of the installed bundle with this model id; ModelNotFound names those installed."""
    bundles = installed_bundles(root)
    if model_id not in bundles:
        have = ", ".join(m.hex() for m in bundles) or "none"
        raise ModelNotFound(f"file needs model {model_id.hex()}, which is not installed (installed: {have})")
    return bundles[model_id]
