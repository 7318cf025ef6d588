"""Synthetic graphics (text on colour, thin lines, flat patches, gradients, UI) against Pillow JPEG.

    python -m bench.graphics --quality 90 --out bench/results/graphics.json

The pictures are drawn by aecodec.bench.graphics; the same quality number goes to both codecs,
then aecodec gets JPEG's file size as its budget.
"""

from __future__ import annotations

import argparse
import json
from datetime import datetime, timezone
from pathlib import Path

from aecodec.bench.graphics import compare_with_jpeg, rows_as_dicts
from aecodec.codec import Codec


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quality", type=int, nargs="+", default=[90, 100])
    parser.add_argument("--weights", default=None, help="weights folder (default: the shipped model)")
    parser.add_argument("--out", type=Path, default=Path("bench/results/graphics.json"))
    args = parser.parse_args()
    codec = Codec(args.weights, threads=2)
    report = {"date": datetime.now(timezone.utc).isoformat(timespec="seconds"), "model_id": codec.model_id.hex(),
              "results": {str(q): rows_as_dicts(compare_with_jpeg(codec, q)) for q in args.quality}}
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    for quality, rows in report["results"].items():
        for row in rows:
            print(f"q{quality} {row['image']:15s} aecodec {row['aecodec_psnr']:6.2f} dB {row['aecodec_bpp']:5.2f} bpp"
                  f" | jpeg {row['jpeg_psnr']:6.2f} dB {row['jpeg_bpp']:5.2f} bpp"
                  f" | aecodec in JPEG's size {row['same_size_psnr']:6.2f} dB {row['same_size_bpp']:5.2f} bpp")


if __name__ == "__main__":
    main()
