"""Committed .aec files must keep decoding to the same symbols: the format and the entropy coding are pinned.

tests/expected/ holds a few small files made with the tiny test model, the hashes of
the integers they decode to (hyper-latent and latent residual, what every decoder
must agree on), and their decoded pixels. If one of these tests fails, files already
written by users would no longer decode as before. If that is intended, bump
container.VERSION and regenerate them with ``python tests/expected/make_golden.py``.
Six are coded with the tiny model: version 1 files but two, detail_64x48_q95 pinning version 2's
detail layer and deblocked_72x56_q10 its deblocking filter (its pixels are the filter's output).
The context_* files are version 3, coded with the tiny model given a checkerboard context
(tests/data/tiny_context_weights): the second pass, two bands of it, and with detail and filter.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from aecodec import container, detail, entropy, fixedpoint, transform
from aecodec.codec import Codec
from helpers import ROOT, symbols_digest

GOLDEN = Path(__file__).parent / "expected"
EXPECTED = json.loads((GOLDEN / "expected.json").read_text())
CODECS: dict[str, Codec] = {}  # by weights folder, made once


@pytest.fixture(params=sorted(EXPECTED), scope="module")
def golden(request) -> tuple[str, bytes, dict]:
    return request.param, (GOLDEN / f"{request.param}.aec").read_bytes(), EXPECTED[request.param]


@pytest.fixture
def golden_codec(golden) -> Codec:
    """The tiny model that wrote the golden file."""
    folder = golden[2]["weights"]
    if folder not in CODECS:
        CODECS[folder] = Codec(ROOT / "tests" / "data" / folder, threads=1)
    return CODECS[folder]


def test_header_and_stream_sizes(golden):
    _, data, expected = golden
    parsed = container.unpack(data)
    header = parsed.header
    assert (header.layout, header.width, header.height, header.quality, header.model_id.hex()) == (
        expected["layout"], expected["width"], expected["height"], expected["quality"], expected["model_id"])
    assert header.deblocked == expected.get("deblocked", False)
    assert header.version == expected["version"]
    assert parsed.stream_sizes == expected["streams"]


def test_decodes_to_the_same_symbols(golden_codec, golden):
    codec = golden_codec
    _, data, expected = golden
    hyper, _, residual = transform.decode_latent(codec.model, container.unpack(data))
    for name, array in (("hyper_latent", hyper), ("residual", residual)):
        assert list(array.shape) == expected[name]["shape"], name
        assert symbols_digest(array) == expected[name]["sha256"], f"{name} decodes differently: the format changed"


def test_symbols_encode_to_the_same_bytes(golden_codec, golden):
    codec = golden_codec
    """The encoder side of the entropy coding: the decoded integers code back to the committed streams."""
    _, data, _ = golden
    parsed = container.unpack(data)
    hyper, _, residual = transform.decode_latent(codec.model, parsed)
    bundle = codec.bundle
    channel = np.broadcast_to(np.arange(len(hyper))[:, None, None], hyper.shape)
    assert entropy.encode(hyper, channel, bundle.hyper_tables) == parsed.streams.hyper
    if parsed.header.version < 3:  # grouped by table over the whole latent, as entropy.py says
        _, scale_index = fixedpoint.entropy_parameters(bundle.hyper_synthesis, hyper, bundle.scale_table)
        assert entropy.encode(residual, scale_index, bundle.latent_tables) == parsed.streams.latent
    assert transform.latent_stream(codec.model, hyper, residual, parsed.header.quality) == parsed.streams.latent
    assert container.pack(parsed.header, parsed.streams) == data


def test_detail_layer_decodes_to_the_same_values(golden_codec, golden):
    codec = golden_codec
    name, data, expected = golden
    parsed = container.unpack(data)
    version = 3 if expected["weights"] == "tiny_context_weights" else 2 if "detail" in expected or expected.get(
        "deblocked") else 1
    assert parsed.header.version == version, name
    if "detail" not in expected:
        return
    header = parsed.header
    layer = detail.decode(parsed.streams.detail, header.height, header.width, codec.bundle.latent_tables)
    assert (layer.step, layer.block) == (expected["detail"]["step"], expected["detail"]["block"])
    assert symbols_digest(layer.block_map.astype(np.int64)) == expected["detail"]["block_map"]
    assert [{"count": len(v), "sha256": symbols_digest(v)} for v in layer.values] == expected["detail"]["values"]


def test_decodes_to_the_same_pixels(golden_codec, golden):
    codec = golden_codec
    """Pixels come from float networks, so another machine may round one level differently; no more."""
    name, data, _ = golden
    decoded = codec.decompress(data)
    with Image.open(GOLDEN / f"{name}.png") as reference:
        assert (decoded.mode, decoded.size) == (reference.mode, reference.size)
        difference = np.abs(np.asarray(decoded, np.int16) - np.asarray(reference, np.int16))
    assert difference.max() <= 1 and difference.mean() < 0.01


def test_side_data_travels(codec):
    streams = container.unpack((GOLDEN / "rgba_icc_exif_90x70_q90.aec").read_bytes()).streams
    decoded = codec.decompress((GOLDEN / "rgba_icc_exif_90x70_q90.aec").read_bytes())
    assert decoded.info["icc_profile"] == streams.icc and decoded.getexif()[0x010F] == "golden"


def test_the_escape_file_uses_escapes(codec):
    """It exists to pin the overflow part of both streams: make sure it still has one."""
    hyper, _, residual = transform.decode_latent(codec.model, container.unpack((GOLDEN / "escapes_47x33_q50.aec").read_bytes()))
    assert hyper.min() == -70000 and residual.max() == 1 << 20 and residual.min() == -(1 << 23)
