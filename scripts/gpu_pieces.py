"""A checkpoint cut into pieces that come back from the device machine, and joined again here.

    data, kept = fitted_checkpoint(checkpoint)  # save_checkpoint's bytes, shrunk until they fit
    write_pieces(data, out, info)               # out/last.ckpt.part0, .part1, ... and out/last.ckpt.json
    join_pieces(files_at, "runs/gpu/last.ckpt")

A file over 16 MiB does not come back at all, and at most 8 files (64 MiB together) do.
Model, moving average and Adam's two moments of the N=96, M=160 model take 62.6 MiB in
fp32, which fits in five pieces beside the log; a larger model sends its moments in bf16,
or none (the resumed run then starts Adam afresh).
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import replace
from pathlib import Path

import torch

from aecodec.train.checkpoint import Checkpoint, checkpoint_bytes
from .gpu_limits import LOG_RESERVE, RETURN_FILE_LIMIT, RETURN_FILES, RETURN_TOTAL_LIMIT, LimitError, MiB

PIECE_BYTES = 15 * MiB
STEM = "last.ckpt"
MANIFEST = f"{STEM}.json"
OTHER_FILES = 2  # the manifest and the log come back beside the pieces


def with_moments(checkpoint: Checkpoint, dtype: torch.dtype | None) -> Checkpoint:
    """The checkpoint with Adam's moments cast to dtype, or without an optimizer state (dtype None).

    torch casts optimizer state back to each parameter's dtype when it loads it, so bf16
    moments resume as fp32 ones with their low bits lost.
    """
    if dtype is None or checkpoint.optimizer is None:
        return replace(checkpoint, optimizer=None)
    optimizer = checkpoint.optimizer
    moments = {index: {key: value.to(dtype) if key != "step" and value.is_floating_point() else value
                       for key, value in entry.items()}
               for index, entry in optimizer["state"].items()}
    return replace(checkpoint, optimizer={**optimizer, "state": moments})


def fitted_checkpoint(checkpoint: Checkpoint, piece_bytes: int = PIECE_BYTES) -> tuple[bytes, str]:
    """The richest form of the checkpoint whose pieces all come back; and what it kept."""
    if not 0 < piece_bytes < RETURN_FILE_LIMIT:
        raise LimitError(f"pieces of {piece_bytes} bytes would not come back")
    max_pieces = RETURN_FILES - OTHER_FILES
    budget = RETURN_TOTAL_LIMIT - LOG_RESERVE
    forms = [("Adam moments in fp32", checkpoint),
             ("Adam moments in bf16", with_moments(checkpoint, torch.bfloat16)),
             ("no Adam moments: the resumed run starts them afresh", with_moments(checkpoint, None))]
    for kept, form in forms:
        data = checkpoint_bytes(form)
        if -(-len(data) // piece_bytes) <= max_pieces and len(data) <= budget:
            return data, kept
    raise LimitError(f"even without Adam moments the checkpoint takes {len(data) / MiB:.1f} MiB, more than "
                     f"{max_pieces} pieces of {piece_bytes / MiB:.1f} MiB or {budget / MiB:.0f} MiB in all")


def write_pieces(data: bytes, out: Path, info: dict, piece_bytes: int = PIECE_BYTES) -> list[Path]:
    """Pieces first, manifest last: a manifest on disk means every piece it names is complete."""
    out.mkdir(parents=True, exist_ok=True)
    pieces = []
    for index, offset in enumerate(range(0, len(data), piece_bytes)):
        chunk = data[offset:offset + piece_bytes]
        path = out / f"{STEM}.part{index}"
        path.write_bytes(chunk)
        pieces.append({"name": path.name, "bytes": len(chunk), "sha256": hashlib.sha256(chunk).hexdigest()})
    manifest = {**info, "bytes": len(data), "sha256": hashlib.sha256(data).hexdigest(), "pieces": pieces}
    (out / MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n")
    return [out / p["name"] for p in pieces]


def join_pieces(folder: str | Path, target: str | Path) -> Path:
    """Rebuild the checkpoint from a folder of pieces, checking every hash; write it atomically."""
    folder, target = Path(folder), Path(target)
    manifest = json.loads((folder / MANIFEST).read_text())
    chunks = []
    for piece in manifest["pieces"]:
        chunk = (folder / piece["name"]).read_bytes()
        if len(chunk) != piece["bytes"] or hashlib.sha256(chunk).hexdigest() != piece["sha256"]:
            raise ValueError(f"{piece['name']} is damaged or incomplete")
        chunks.append(chunk)
    data = b"".join(chunks)
    if hashlib.sha256(data).hexdigest() != manifest["sha256"]:
        raise ValueError("the joined checkpoint does not match its manifest")
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(target.name + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, target)
    return target
