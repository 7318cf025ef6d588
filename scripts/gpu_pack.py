"""Pack a compact training set (<= 40 MB) for a lent GPU machine.

    python scripts/gpu_pack.py --data ../shared/data/train --out pack

pack/ is git-ignored. It holds photos/: JPEG, quality 90, 4:4:4, long side <= 512,
taken in a fixed shuffle until the budget is spent. The GPU image already has
torch, numpy, Pillow, click and tqdm, so nothing else needs to travel.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
from pathlib import Path

from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from aecodec.train.data import list_images  # noqa: E402

def pack_photos(data: Path, out: Path, max_bytes: int, side: int, quality: int) -> tuple[int, int]:
    out.mkdir(parents=True, exist_ok=True)
    total = count = 0
    # A fixed shuffle, so that if the budget runs out no whole source is left out.
    paths = sorted(list_images(data), key=lambda p: hashlib.sha256(p.name.encode()).hexdigest())
    for path in paths:
        with Image.open(path) as image:
            image = image.convert("RGB")
            image.thumbnail((side, side), Image.Resampling.LANCZOS)
            target = out / f"{path.stem}.jpg"
            image.save(target, quality=quality, subsampling=0)
        size = target.stat().st_size
        if total + size > max_bytes:
            target.unlink()
            break
        total, count = total + size, count + 1
    return count, total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="../shared/data/train")
    parser.add_argument("--out", default="pack")
    parser.add_argument("--max-mb", type=float, default=40.0)
    parser.add_argument("--side", type=int, default=512)
    parser.add_argument("--quality", type=int, default=90)
    args = parser.parse_args()
    out = Path(args.out)
    count, total = pack_photos(Path(args.data), out / "photos", int(args.max_mb * 1e6), args.side, args.quality)
    print(f"packed {count} photos, {total / 1e6:.1f} MB, in {out / 'photos'}")


if __name__ == "__main__":
    main()
