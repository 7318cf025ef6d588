"""A weights bundle on disk: three ONNX networks, frozen integer tables, a model card.

Layout of a bundle folder::

    manifest.json          model card: architecture, training, data, RD on Kodak
    analysis.onnx          image (1,3,H,W) in [0,1]  -> latent (1,M,H/16,W/16)
    hyper_analysis.onnx    gained latent             -> hyper-latent (1,N,H/64,W/64)
    synthesis.onnx         latent                    -> image (1,3,H,W)
    tables.npz             gains, fixed-point hyper-synthesis, scale table, pmfs

The model id is the first 8 bytes of the SHA-256 of the four network and table
files, so retraining can never reuse an id, and a file names exactly what decodes it.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .entropy import EntropyTables
from .fixedpoint import FixedConv, check_layers, scale_thresholds

NETWORKS = ("analysis", "hyper_analysis", "synthesis")
HASHED_FILES = ("analysis.onnx", "hyper_analysis.onnx", "synthesis.onnx", "tables.npz")
MANIFEST = "manifest.json"


@dataclass(frozen=True)
class ModelBundle:
    folder: Path
    model_id: bytes
    card: dict
    log_gain: np.ndarray  # (levels, M)
    log_inverse_gain: np.ndarray  # (levels, M)
    hyper_synthesis: list[FixedConv]
    thresholds: np.ndarray  # scale table in fixed point
    latent_tables: EntropyTables
    hyper_tables: EntropyTables  # one per hyper-latent channel

    @property
    def levels(self) -> int:
        return len(self.log_gain)

    def network_path(self, name: str) -> Path:
        return self.folder / f"{name}.onnx"


def model_id_of(folder: Path) -> bytes:
    digest = hashlib.sha256()
    for name in HASHED_FILES:
        digest.update((folder / name).read_bytes())
    return digest.digest()[:8]


def default_weights_root() -> Path:
    """weights/ in a source checkout, or the copy installed inside the package."""
    installed = Path(__file__).parent / "shipped_weights"
    return installed if installed.is_dir() else Path(__file__).parent.parent / "weights"


def _split_tables(flat: np.ndarray, lengths: np.ndarray) -> list[np.ndarray]:
    return np.split(flat.astype(np.int64), np.cumsum(lengths)[:-1])


def save_tables(path: Path, log_gain, log_inverse_gain, layers: list[FixedConv], scales,
                latent: tuple[list, np.ndarray], hyper: tuple[list, np.ndarray]) -> None:
    arrays = {
        "log_gain": np.asarray(log_gain, np.float64),
        "log_inverse_gain": np.asarray(log_inverse_gain, np.float64),
        "scale_table": np.asarray(scales, np.float64),
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
    with open(path, "wb") as f:
        np.savez_compressed(f, **{k: np.asarray(v) for k, v in arrays.items()})


def load_bundle(folder: str | Path) -> ModelBundle:
    folder = Path(folder)
    missing = [n for n in (MANIFEST, *HASHED_FILES) if not (folder / n).is_file()]
    if missing:
        raise FileNotFoundError(f"weights folder {folder} lacks {', '.join(missing)}")
    card = json.loads((folder / MANIFEST).read_text())
    with np.load(folder / "tables.npz", allow_pickle=False) as t:
        layers = [
            FixedConv(t[f"layer{i}_weight"].astype(np.int64), t[f"layer{i}_bias"], t[f"layer{i}_multiplier"],
                      int(shift), bool(relu), bool(shuffle))
            for i, (shift, relu, shuffle) in enumerate(zip(t["layer_shifts"], t["layer_relu"], t["layer_shuffle"]))
        ]
        check_layers(layers)
        return ModelBundle(
            folder=folder, model_id=model_id_of(folder), card=card,
            log_gain=t["log_gain"], log_inverse_gain=t["log_inverse_gain"],
            hyper_synthesis=layers, thresholds=scale_thresholds(t["scale_table"]),
            latent_tables=EntropyTables(_split_tables(t["latent_pmfs"], t["latent_lengths"]), t["latent_offsets"]),
            hyper_tables=EntropyTables(_split_tables(t["hyper_pmfs"], t["hyper_lengths"]), t["hyper_offsets"]),
        )


def find_bundles(root: Path) -> dict[bytes, Path]:
    """Model id -> folder, for every bundle under root."""
    return {model_id_of(p.parent): p.parent for p in sorted(root.glob(f"*/{MANIFEST}"))}
