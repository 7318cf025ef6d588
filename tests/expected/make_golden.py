"""Write the golden .aec files, their decoded pixels and expected.json (tests/test_golden.py checks them).

    python tests/expected/make_golden.py

Run it only when the format or the entropy coding changes on purpose (and then
bump container.VERSION): the point of these files is that nothing else changes them.
They are coded with the tiny test model in tests/data/tiny_weights, and the version-3 files with
the same model given a checkerboard context, tests/data/tiny_context_weights.
"""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path

import numpy as np
from PIL import Image, ImageCms

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent.parent), str(HERE.parent)]

from aecodec import container, detail, transform  # noqa: E402
from aecodec.bench.graphics import text_on_blue  # noqa: E402
from aecodec.codec import Codec  # noqa: E402
from helpers import TINY_CONTEXT_WEIGHTS, TINY_WEIGHTS, photo_like, restream, symbols_digest  # noqa: E402


def sources(codec: Codec) -> dict[str, bytes]:
    """Small files that between them use every layout kind, both side-data blocks, escapes and
    (format version 2) the detail layer and the deblocking flag. The others are version 1 files, as
    earlier builds wrote them."""
    v1 = {"detail": False, "deblock": False}
    rgb = photo_like(33, 47, seed=21)
    plain = codec.compress(rgb, quality=50, **v1)
    photo = photo_like(70, 90, seed=22)
    alpha = np.add.outer(np.arange(70) * 3, np.arange(90) * 2).astype(np.uint8)
    exif = Image.Exif()
    exif[0x010F] = "golden"
    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    buffer = io.BytesIO()
    Image.fromarray(np.dstack([photo, alpha])).save(buffer, "PNG", icc_profile=icc, exif=exif)
    # Escapes: values far outside their tables take the overflow path of both streams.
    hyper, _, residual = transform.decode_latent(codec.model, container.unpack(plain))
    hyper.reshape(-1)[:3] = (2000, -70000, 1 << 15)
    residual.reshape(-1)[:5] = (300, -5000, 1 << 20, -(1 << 23), 17)
    return {
        "rgb_47x33_q50": plain,
        "rgba_icc_exif_90x70_q90": codec.compress(buffer.getvalue(), quality=90, **v1),
        "grey_130x20_q5": codec.compress(photo_like(20, 130, seed=23)[..., 0], quality=5, **v1),
        "escapes_47x33_q50": restream(codec, plain, hyper, residual),
        "detail_64x48_q95": codec.compress(text_on_blue()[:48, :64], quality=95),
        "deblocked_72x56_q10": codec.compress(photo_like(56, 72, seed=24), quality=10, detail=False),
    }


def context_sources(codec: Codec) -> dict[str, bytes]:
    """Version 3: files of the tiny model with a checkerboard context, one of two bands, one with a detail
    layer and the deblocking filter."""
    return {
        "context_rgb_47x33_q50": codec.compress(photo_like(33, 47, seed=25), quality=50, detail=False, deblock=False),
        "context_bands_24x600_q30": codec.compress(photo_like(600, 24, seed=26), quality=30, detail=False),
        "context_detail_64x48_q95": codec.compress(text_on_blue()[:48, :64], quality=95),
    }


def main() -> None:
    plain = Codec(TINY_WEIGHTS, threads=1)
    with_context = Codec(TINY_CONTEXT_WEIGHTS, threads=1)
    expected = {}
    files = [(name, data, plain) for name, data in sources(plain).items()]
    files += [(name, data, with_context) for name, data in context_sources(with_context).items()]
    for name, data, codec in files:
        (HERE / f"{name}.aec").write_bytes(data)
        parsed = container.unpack(data)
        hyper, _, residual = transform.decode_latent(codec.model, parsed)
        codec.decompress(data).save(HERE / f"{name}.png")
        header = parsed.header
        expected[name] = {
            "layout": header.layout, "width": header.width, "height": header.height, "quality": header.quality,
            "deblocked": header.deblocked, "model_id": header.model_id.hex(), "streams": parsed.stream_sizes,
            "weights": codec.bundle.folder.name, "version": header.version,
            "hyper_latent": {"shape": list(hyper.shape), "sha256": symbols_digest(hyper)},
            "residual": {"shape": list(residual.shape), "sha256": symbols_digest(residual)},
        }
        if parsed.streams.detail:
            layer = detail.decode(parsed.streams.detail, header.height, header.width, codec.bundle.latent_tables)
            expected[name]["detail"] = {"step": layer.step, "block": layer.block,
                                        "block_map": symbols_digest(layer.block_map.astype(np.int64)),
                                        "values": [{"count": len(v), "sha256": symbols_digest(v)} for v in layer.values]}
    (HERE / "expected.json").write_text(json.dumps(expected, indent=2) + "\n")
    print(f"wrote {len(expected)} golden files to {HERE}")


if __name__ == "__main__":
    main()
