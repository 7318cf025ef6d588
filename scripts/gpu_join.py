"""Put a GPU window's checkpoint back together from the pieces that came back.

    python -m scripts.gpu_join <files_at> --out runs/gpu/last.ckpt
    aecodec train --resume runs/gpu/last.ckpt --out runs/gpu --minutes 60

Every piece is checked against the manifest's SHA-256 before anything is written, and the
checkpoint is written atomically, so a damaged transfer never replaces a good checkpoint.
"""

from __future__ import annotations

import argparse

from aecodec.train.checkpoint import load_checkpoint

from .gpu_pieces import join_pieces


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", help="where the device's files landed (the run's files_at)")
    parser.add_argument("--out", default="runs/gpu/last.ckpt")
    args = parser.parse_args()
    path = join_pieces(args.folder, args.out)
    checkpoint = load_checkpoint(path)
    window = checkpoint.train_config.extra.get("gpu_windows", [{}])[-1]
    moments = "with Adam moments" if checkpoint.optimizer is not None else "without Adam moments"
    print(f"{path}: step {checkpoint.step}, {checkpoint.pixels_seen / 1e9:.2f} Gpx in all, "
          f"{window.get('gigapixels', 0):.2f} Gpx in the window, {moments}")


if __name__ == "__main__":
    main()
