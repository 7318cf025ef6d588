"""Decoding band by band (issue 21, item 17): the numbers and pixels of a whole-image decode, without
holding the whole image or its latent in float.

bench/large_image.py measures the real thing (6000x4000 and a crafted 63 MP file, peak RSS); these
are its cheap guards.
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from aecodec import container, detail, fixedpoint, transform
from aecodec.codec import Codec
from aecodec.quality import level_of, row_at
from aecodec.transform import SYNTHESIS_HALO, to_uint8
from aecodec.tiling import synthesized_bands
from helpers import TINY_CONTEXT_WEIGHTS, TINY_WEIGHTS, photo_like

ROOT = Path(__file__).resolve().parents[1]
GOLDEN = Path(__file__).parent / "expected"


def test_banded_hyper_synthesis_gives_the_whole_image_integers(codec):
    bundle = codec.bundle
    rng = np.random.default_rng(3)
    hyper = rng.integers(-12, 13, (len(bundle.hyper_tables), 9, 7))
    hyper[:, 4, 2] = 40000  # beyond the clamp: clamped the same in every band
    mean, scale_index = fixedpoint.entropy_parameters(bundle.hyper_synthesis, hyper, bundle.scale_table)
    mean_layers, scale_layers = fixedpoint.split_outputs(bundle.hyper_synthesis)
    assert fixedpoint.halo_rows(bundle.hyper_synthesis) == 2
    for band in (1, 2, 4, 16):
        banded = fixedpoint.scale_indices(scale_layers, hyper, bundle.scale_table, band=band)
        assert banded.dtype == np.uint8 and np.array_equal(banded, scale_index), band
    for first, stop in ((0, 36), (0, 1), (3, 10), (13, 29), (35, 36)):
        rows = fixedpoint.to_mean(fixedpoint.output_rows(mean_layers, hyper, first, stop))
        assert np.array_equal(rows, mean[:, first:stop]), (first, stop)


@pytest.mark.parametrize("weights", [TINY_WEIGHTS, ROOT / "weights" / "main"], ids=["tiny", "main"])
def test_synthesis_halo_covers_the_receptive_field(weights):
    """Tiles with SYNTHESIS_HALO of context give the whole latent's pixels bit for bit; one unit less does not."""
    codec = Codec(weights, threads=1)
    latent = np.random.default_rng(4).normal(0, 3, (1, codec.bundle.log_gain.shape[1], 14, 17)).astype(np.float32)
    run = lambda t: codec.model.networks.run("synthesis", t)  # noqa: E731
    whole = run(latent)

    def tiled(halo: int) -> np.ndarray:
        bands = synthesized_bands(run, lambda top, bottom: latent[:, :, top:bottom], 14, 17, 4, halo,
                                  codec.bundle.latent_stride)
        return np.concatenate(list(bands), axis=2)

    assert np.array_equal(tiled(SYNTHESIS_HALO), whole)
    assert not np.array_equal(tiled(SYNTHESIS_HALO - 1), whole)


def whole_image_decode(codec: Codec, data: bytes) -> np.ndarray:
    """RGB as decode_rgb made it before it went band by band: whole latent, one synthesis, whole detail layer."""
    parsed = container.unpack(data)
    header = parsed.header
    _, mean, residual = transform.decode_latent(codec.model, parsed)
    level = level_of(header.quality, codec.bundle.levels)
    inverse_gain = np.exp(row_at(codec.bundle.log_inverse_gain, level))[:, None, None]
    latent = ((residual + mean) * inverse_gain).astype(np.float32)
    pixels = to_uint8(codec.model.networks.run("synthesis", latent[None]))[0, :, :header.height, :header.width]
    rgb = np.ascontiguousarray(pixels.transpose(1, 2, 0))
    if parsed.streams.detail:
        rgb = detail.apply(rgb, detail.decode(parsed.streams.detail, header.height, header.width,
                                              codec.bundle.latent_tables))
    return rgb


@pytest.fixture(scope="module")
def detailed() -> bytes:
    """A version-2 file (detail layer) whose height needs a partial last band of tiles."""
    data = Codec(TINY_WEIGHTS, threads=1).compress(photo_like(150, 230, seed=9), quality=95)
    assert container.read_header(data).version == 2
    return data


@pytest.mark.parametrize("tile", [64, 3, 5])
def test_bands_give_the_pixels_of_a_whole_image_decode(detailed, tile):
    """Tiles of 3 and 5 latent rows (48 and 80 pixels) cut the detail layer's bands of 64 rows."""
    codec = Codec(TINY_WEIGHTS, threads=1, tile=tile)
    bands = list(codec.decode_rows(container.unpack(detailed)))
    assert len(bands) > 1 or tile == 64
    assert np.array_equal(np.concatenate(bands), whole_image_decode(codec, detailed))


@pytest.mark.parametrize("name", ["rgba_icc_exif_90x70_q90", "grey_130x20_q5", "detail_64x48_q95"])
@pytest.mark.parametrize("level", [1, 9])
def test_decode_png_holds_what_decompress_gives(codec, name, level):
    data = (GOLDEN / f"{name}.aec").read_bytes()
    image = codec.decompress(data)
    with Image.open(io.BytesIO(codec.decode_png(data, level))) as png:
        assert png.mode == image.mode and np.array_equal(np.asarray(png), np.asarray(image))
        assert png.info.get("icc_profile") == image.info.get("icc_profile")
        assert png.getexif() == image.getexif()


def band_phase_peak(codec: Codec, rgb: np.ndarray, whole: bool = False) -> int:
    """numpy's peak while decode_rows yields its bands, after the first: the entropy decoding of versions
    1 and 2, which holds every symbol (aecodec/entropy.py), comes before it. whole: over the whole
    decode_rows, reading the streams included."""
    parsed = container.unpack(codec.compress(rgb, detail=False))
    list(codec.decode_rows(parsed))  # warm up: lazy imports and caches are not the decoder's memory
    tracemalloc.start()
    try:
        bands = codec.decode_rows(parsed)
        rows = len(next(bands))
        if not whole:
            tracemalloc.reset_peak()
        rows += sum(len(band) for band in bands)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert rows == len(rgb)
    return peak


def test_decoding_memory_hardly_grows_with_the_height():
    """Four times the rows: only the compact residual grows (int16, under a byte per pixel with the
    tiny model), never a whole image (3 bytes per pixel) or a float latent."""
    codec = Codec(TINY_WEIGHTS, threads=1, tile=8)  # tiles of 128 pixels: both images run in many bands
    short, tall = photo_like(768, 512, seed=3), photo_like(3072, 512, seed=3)
    growth = band_phase_peak(codec, tall) - band_phase_peak(codec, short)
    assert growth < (tall.nbytes - short.nbytes) / 4, f"{growth / 1e6:.1f} MB more for {tall.nbytes / 1e6:.1f} MB"


@pytest.mark.parametrize("weights,versions", [(TINY_WEIGHTS, [2, 1, 2]), (TINY_CONTEXT_WEIGHTS, [3, 3, 3])])
def test_large_image_bench_runs(tmp_path, weights, versions):
    out = tmp_path / "large.json"
    subprocess.run([sys.executable, "-m", "bench.large_image", "--weights", str(weights), "--width", "320",
                    "--height", "240", "--crafted-side", "512", "--threads", "1", "--out", str(out)],
                   cwd=ROOT, check=True, capture_output=True)
    steps = json.loads(out.read_text())["steps"]
    assert [steps[s]["image"] for s in ("decompress_crafted", "decompress_crafted_detail")] == ["512x512"] * 2
    assert [steps[s]["version"] for s in ("decompress_detail", "decompress_crafted", "decompress_crafted_detail")] \
        == versions


def test_version_3_holds_no_part_of_the_latent_whole():
    """Format version 3 decodes its passes band by band as the synthesis needs them (transform.two_pass_rows):
    four times the rows (4 against 16 bands) leave the whole decode's peak nearly where it was. Versions 1
    and 2 hold the residual and the scale indices whole while they are decoded: 703 KB more here."""
    codec = Codec(TINY_CONTEXT_WEIGHTS, threads=1, tile=8)
    short, tall = photo_like(2048, 256, seed=3), photo_like(8192, 256, seed=3)
    growth = band_phase_peak(codec, tall, whole=True) - band_phase_peak(codec, short, whole=True)
    assert growth < (tall.nbytes - short.nbytes) / 16, f"{growth / 1e3:.0f} KB more for {tall.nbytes / 1e6:.1f} MB"
