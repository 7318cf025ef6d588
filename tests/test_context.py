"""The checkerboard context and format version 3: exact integers, band by band, and hostile files.

The model is tests/data/tiny_context_weights: the tiny test model with a context of random weights
(tests/data/make_tiny_context.py), so that the second pass really changes means and scales.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aecodec import bandstream, container, context, deblock, fixedpoint, transform
from aecodec.bundle import load_bundle
from aecodec.codec import Codec
from aecodec.container import FormatError
from aecodec.refine_torch.checkerboard import CheckerboardContext, anchor_mask, anchor_taps
from helpers import TINY_CONTEXT_WEIGHTS as CONTEXT_WEIGHTS
from helpers import TINY_WEIGHTS, fix_crc, join_streams, photo_like, restream, split_streams
from test_effort import coded_rd_loss
FUZZ = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
pytestmark = pytest.mark.filterwarnings("error")


@pytest.fixture(scope="module")
def context_codec() -> Codec:
    return Codec(CONTEXT_WEIGHTS, threads=1)


@pytest.fixture(scope="module")
def tall(context_codec) -> bytes:
    """A file of three bands (69 latent rows), without detail layer or filter: pixels are the latent's."""
    return context_codec.compress(photo_like(1100, 70, seed=5), quality=40, detail=False, deblock=False)


def random_layers(channels: int = 6, seen: int = 5, hidden: int = 7, levels: int = 4) -> context.ContextLayers:
    rng = np.random.default_rng(1)
    params = {"context.weight": rng.normal(0, 0.05, (seen, channels, 5, 5)), "context.bias": rng.normal(0, 0.1, seen),
              "hidden.weight": rng.normal(0, 0.1, (hidden, seen + 2 * channels, 1, 1)),
              "hidden.bias": rng.normal(0, 0.1, hidden), "level_bias": rng.normal(0, 0.1, (levels, hidden)),
              "out.weight": rng.normal(0, 0.1, (2 * channels, hidden, 1, 1)), "out.bias": rng.normal(0, 0.1, 2 * channels)}
    return context.quantize_context(params, seen_peak=20.0, hidden_peak=20.0), params


def test_a_file_of_a_context_model_is_version_3_and_decodes_to_what_the_encoder_rebuilt(context_codec, tall):
    parsed = container.unpack(tall)
    assert parsed.header.version == 3 and parsed.header.two_pass
    rgb = photo_like(1100, 70, seed=5)
    coded = transform.code(context_codec.model, transform.analyse(context_codec.model, rgb), 40)
    assert np.array_equal(np.asarray(context_codec.decompress(tall)), transform.pixels_of(context_codec.model, coded,
                                                                                          1100, 70))
    rows, blobs = bandstream.unpack(parsed.streams.latent, 69)
    assert rows == bandstream.BAND_ROWS and len(blobs) == 6


def test_a_tall_file_decodes_band_by_band_to_the_encoders_pixels(context_codec):
    """Six bands and six rows of synthesis tiles: bands are decoded as the synthesis reaches them and
    dropped behind it (transform.two_pass_rows), with the pixels of the whole latent."""
    rgb = photo_like(2600, 20, seed=7)
    data = context_codec.compress(rgb, quality=30, detail=False)
    coded = transform.code(context_codec.model, transform.analyse(context_codec.model, rgb), 30)
    want = transform.pixels_of(context_codec.model, coded, 2600, 20, deblocking=deblock.threshold(30))
    parsed = container.unpack(data)
    learned = transform.read(context_codec.model, parsed.header, parsed.streams)
    assert learned.residual is None and len(learned.passes.blobs) == 12  # nothing decoded yet
    assert np.array_equal(np.asarray(context_codec.decompress(data)), want)


def test_the_context_changes_means_and_scales(context_codec, tall):
    hyper_latent, mean, residual = transform.decode_latent(context_codec.model, container.unpack(tall))
    hyper_mean, _ = np.split(fixedpoint.run_layers(context_codec.bundle.hyper_synthesis, hyper_latent), 2)
    change = mean - fixedpoint.to_mean(hyper_mean)
    anchors = context.is_anchor(0, *residual.shape[1:])
    assert not change[:, anchors].any() and change[:, ~anchors].any()


def test_band_by_band_equals_the_whole_latent():
    layers, _ = random_layers()
    rng = np.random.default_rng(2)
    rows, width = 13, 9
    anchors = np.zeros((6, rows + 4, width), np.int64)
    anchors[:, 2:-2] = rng.integers(-3000, 3000, (6, rows, width))
    mean, scale = rng.integers(-2**20, 2**20, (2, 6, rows, width))
    whole = context.two_pass_parameters(layers, anchors, mean, scale, 0, layers.level_bias[1])
    for top, bottom in ((0, 4), (4, 8), (8, 13), (3, 10)):
        band = context.two_pass_parameters(layers, anchors[:, top:bottom + 4], mean[:, top:bottom],
                                           scale[:, top:bottom], top, layers.level_bias[1])
        for got, want in zip(band, whole):
            assert np.array_equal(got, want[:, top:bottom])
    assert np.array_equal(whole[0][:, context.is_anchor(0, rows, width)], mean[:, context.is_anchor(0, rows, width)])


def test_the_integer_network_follows_the_float_one():
    layers, params = random_layers()
    network = CheckerboardContext(6, 4, 5, 7).double()
    network.load_state_dict({**{k: torch.from_numpy(v) for k, v in params.items()}, "taps": network.taps})
    rng = np.random.default_rng(3)
    anchors = rng.normal(0, 4, (1, 6, 8, 8)) * anchor_mask(8, 8).numpy()
    mean, scale = rng.normal(0, 2, (2, 1, 6, 8, 8))
    with torch.no_grad():
        want = network(*(torch.from_numpy(a) for a in (anchors, mean, scale)), torch.from_numpy(params["level_bias"][2:3]))
    fixed = 2.0 ** 16
    window = np.zeros((6, 12, 8), np.int64)
    window[:, 2:-2] = np.round(anchors[0] * fixed).astype(np.int64) >> context.INPUT_SHIFT
    got = context.two_pass_parameters(layers, window, np.round(mean[0] * fixed).astype(np.int64),
                                      np.round(scale[0] * fixed).astype(np.int64), 0, layers.level_bias[2])
    rest = ~context.is_anchor(0, 8, 8)
    for exact, approximate in zip(got, want):
        assert np.abs(exact[:, rest] / fixed - approximate[0].numpy()[:, rest]).max() < 0.02


def test_float_context_undoes_quantize_context():
    layers, params = random_layers()
    back = context.float_context(layers)
    params = {**params, "context.weight": params["context.weight"] * anchor_taps().numpy()}  # only these taps count
    for name in ("context.weight", "hidden.weight", "out.weight", "out.bias"):
        assert np.abs(back[name] - params[name]).max() <= np.abs(params[name]).max() / 1000, name
    level_bias = params["level_bias"] + params["hidden.bias"]
    assert np.abs(back["level_bias"] + back["hidden.bias"] - level_bias).max() < 1e-3


@pytest.mark.parametrize("levels,extrapolated", [(8, 0), (12, 3)])
def test_level_bias_is_the_interpolated_row_in_integers(levels, extrapolated):
    layers, _ = random_layers(levels=levels - extrapolated)
    rows = layers.level_bias.astype(np.float64)
    for hundredths in range(100, 10001, 37):
        level = (hundredths / 100 - 1) / 99 * (levels - 1) - extrapolated
        level = min(max(level, 0), len(rows) - 1)
        low = min(int(level), len(rows) - 2)
        want = rows[low] * (1 - (level - low)) + rows[low + 1] * (level - low)
        assert np.abs(context.level_bias(layers, hundredths, levels, extrapolated) - want).max() <= 1


def test_weights_that_could_overflow_are_refused():
    layers, _ = random_layers()
    big = context.IntegerLayer(layers.seen.weight * 0 + 2047, layers.seen.bias, layers.seen.multiplier * 2**30,
                               layers.seen.shift)
    with pytest.raises(ValueError, match="overflow"):
        context.check_context(context.ContextLayers(big, layers.hidden, layers.out, layers.level_bias, layers.scales))


def test_the_bundle_keeps_the_integer_context():
    bundle = load_bundle(CONTEXT_WEIGHTS)
    assert bundle.context is not None and bundle.config.context_channels == len(bundle.context.seen.weight)
    assert load_bundle(TINY_WEIGHTS).context is None


def test_files_and_models_must_agree_on_the_version(context_codec, tall, codec):
    """A version-3 file naming a model without a context, and an older file naming one with it, are refused."""
    plain = codec.compress(photo_like(40, 40), quality=50, detail=False, deblock=False)
    as_version_3 = fix_crc(plain[:4] + b"\x03" + plain[5:])
    with pytest.raises(FormatError, match="no checkerboard context"):
        codec.decompress(as_version_3)
    other_model = plain[:7] + context_codec.bundle.model_id + plain[15:]
    with pytest.raises(FormatError, match="has a checkerboard context"):
        context_codec.decompress(fix_crc(other_model))
    with pytest.raises(FormatError, match="has a checkerboard context"):
        context_codec.decompress(fix_crc(tall[:4] + b"\x02" + tall[5:]))


@pytest.mark.parametrize("rows", [0, 3, 5, 256 - 1])
def test_band_rows_out_of_range_are_refused(context_codec, tall, rows):
    header, length_at, streams = split_streams(tall)
    streams[1] = bytes([rows]) + streams[1][1:]
    with pytest.raises(FormatError, match="rows per band"):
        context_codec.decompress(join_streams(header, length_at, streams))


def test_band_lengths_that_disagree_are_refused(context_codec, tall):
    header, length_at, streams = split_streams(tall)
    for latent in (streams[1][:-1], streams[1] + b"\0", streams[1][:9]):
        streams[1] = latent
        with pytest.raises(FormatError, match="latent stream"):
            context_codec.decompress(join_streams(header, length_at, streams))


def test_restream_codes_the_same_integers_back(context_codec, tall):
    assert restream(context_codec, tall) == tall


@FUZZ
@given(flips=st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 7)), min_size=1, max_size=6))
def test_bit_flips_in_a_version_3_file(context_codec, tall, flips):
    data = bytearray(tall)
    for position, bit in flips:
        data[position % len(data)] ^= 1 << bit
    try:
        image = context_codec.decompress(fix_crc(bytes(data)))
    except FormatError:
        return
    assert image.size == (70, 1100)


@FUZZ
@given(changes=st.lists(st.tuples(st.integers(0, 10**6), st.integers(-2**30, 2**30)), min_size=1, max_size=4))
def test_crafted_residuals_reach_the_context_clamped(context_codec, tall, changes):
    """Huge anchors are clamped before the context's products: they decode, or fail as a FormatError."""
    hyper, _, residual = transform.decode_latent(context_codec.model, container.unpack(tall))
    for position, value in changes:
        residual.reshape(-1)[position % residual.size] = value
    try:
        image = context_codec.decompress(restream(context_codec, tall, hyper, residual))
    except FormatError:
        return
    assert image.size == (70, 1100)


def test_effort_refines_against_the_two_pass_rate(context_codec):
    """The refinement prices the latent as the file codes it: anchors first, the rest with the context."""
    pytest.importorskip("onnx")
    rgb = photo_like(192, 256, seed=3)
    model, quality = context_codec.model, 60
    gained = transform.analyse(model, rgb) * transform.gain(model, quality)
    hyper_latent = transform.hyper_analyse(model, gained)
    refiner = context_codec.refiner()
    problem = refiner._problem(rgb, quality)
    with torch.no_grad():
        parameters = refiner.entropy_parameters(torch.tensor(hyper_latent, dtype=torch.float32)[None])
        residual, _, scale = refiner.coded_residual(torch.tensor(gained, dtype=torch.float32)[None], *parameters,
                                                    problem, torch.round)
        estimate = float(refiner.latent_bits(residual, scale))
    coded = transform.code_given(model, gained, hyper_latent, quality)
    assert abs(estimate / (8 * len(coded.latent)) - 1) < 0.1
    plain, refined = (context_codec.compress(rgb, quality=quality, effort=e, detail=False) for e in (0, 2))
    assert container.read_header(refined).version == 3
    assert coded_rd_loss(context_codec, refined, rgb) < 0.97 * coded_rd_loss(context_codec, plain, rgb)
