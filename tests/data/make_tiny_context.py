"""Write tests/data/tiny_context_weights: the tiny test model with a checkerboard context (format version 3).

    python tests/data/make_tiny_context.py

Needs torch (the 'train' extra). The networks and tables of tests/data/tiny_weights are kept; a context
of CHANNELS and HIDDEN is added with seeded random weights, its last layer too (a trained context starts
that layer at zero, which would test nothing), and converted to integers as export converts it, with
activation ranges from generated pictures. Run it only on purpose: the version-3 golden files are coded
with the model it writes, and its model id changes with it.
"""

from __future__ import annotations

import shutil
import sys
from dataclasses import replace
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent.parent), str(HERE.parent)]

from aecodec.bundle import (MANIFEST, load_bundle, model_id_of, read_card, read_tables, write_card,  # noqa: E402
                            write_tables)
from aecodec.refine_torch.from_bundle import model_from_bundle  # noqa: E402
from aecodec.refine_torch.model import HyperpriorModel  # noqa: E402
from aecodec.train.export import context_layers  # noqa: E402
from helpers import TINY_WEIGHTS, photo_like  # noqa: E402

OUT = HERE / "tiny_context_weights"
CHANNELS, HIDDEN = 8, 16
OUT_SCALE = 0.05  # the last layer's random weights: changes of a few tenths of a latent unit


def main() -> None:
    bundle = load_bundle(TINY_WEIGHTS)
    torch.manual_seed(3)
    base = model_from_bundle(bundle)
    model = HyperpriorModel(replace(bundle.config, context_channels=CHANNELS, context_hidden=HIDDEN))
    model.load_state_dict(base.state_dict(), strict=False)
    with torch.no_grad():
        model.context.out.weight.normal_(0, OUT_SCALE)
        model.context.out.bias.normal_(0, OUT_SCALE)
        model.context.level_bias.normal_(0, OUT_SCALE)
    photos = [photo_like(128, 128, seed) for seed in range(4)]
    context = context_layers(model.eval(), photos)
    OUT.mkdir(exist_ok=True)
    for name in ("analysis.onnx", "hyper_analysis.onnx", "synthesis.onnx"):
        shutil.copyfile(TINY_WEIGHTS / name, OUT / name)
    stored = read_tables(TINY_WEIGHTS)
    write_tables(OUT, bundle.log_gain, bundle.log_inverse_gain, bundle.hyper_synthesis, stored["scale_table"],
                 (bundle.latent_tables.pmfs, bundle.latent_tables.offsets),
                 (bundle.hyper_tables.pmfs, bundle.hyper_tables.offsets), context)
    card = read_card(TINY_WEIGHTS)
    card["model_config"] = {**card["model_config"], "context_channels": CHANNELS, "context_hidden": HIDDEN}
    card["architecture"] += ", checkerboard context (random weights, for tests)"
    card["model_id"] = model_id_of(OUT).hex()
    write_card(OUT, card)
    print(f"wrote {OUT} (model id {card['model_id']}, {MANIFEST} included)")


if __name__ == "__main__":
    main()
