import numpy as np

from aecodec import fixedpoint


def float_layers(rng):
    return [
        {"weight": rng.normal(0, 0.2, (8, 4, 3, 3)), "bias": rng.normal(0, 0.1, 8), "relu": True, "shuffle": True},
        {"weight": rng.normal(0, 0.2, (6, 2, 3, 3)), "bias": rng.normal(0, 0.1, 6), "relu": False, "shuffle": False},
    ]


def test_conv_exact_matches_direct_sum():
    rng = np.random.default_rng(0)
    x = rng.integers(-50, 50, (3, 5, 6))
    w = rng.integers(-2047, 2047, (2, 3, 3, 3))
    out = fixedpoint.conv_exact(x, w)
    padded = np.pad(x, ((0, 0), (1, 1), (1, 1)))
    for o in range(2):
        for i in range(5):
            for j in range(6):
                assert out[o, i, j] == int((padded[:, i:i + 3, j:j + 3] * w[o]).sum())


def test_pixel_shuffle_matches_torch_order():
    x = np.arange(4 * 2 * 3).reshape(4, 2, 3)
    out = fixedpoint.pixel_shuffle(x)
    # channel 2*i + j of the input goes to sub-position (i, j) of each 2x2 block
    assert out[0, 1, 0] == x[2, 0, 0] and out[0, 0, 1] == x[1, 0, 0] and out[0, 3, 5] == x[3, 1, 2]


def test_quantized_layers_track_float_network():
    rng = np.random.default_rng(1)
    layers = float_layers(rng)
    calibration = [rng.integers(-8, 8, (4, 4, 5)).astype(np.float64) for _ in range(4)]
    fixed = fixedpoint.quantize_layers(layers, calibration)
    z = calibration[0]
    reference = fixedpoint.run_float_layers(layers, z)
    out = fixedpoint.run_layers(fixed, z.astype(np.int64)) / 2.0 ** fixedpoint.OUTPUT_FRACTION_BITS
    assert np.abs(out - reference).max() < 1e-2 * np.abs(reference).max()


def test_chunked_and_unchunked_products_agree_exactly(monkeypatch):
    rng = np.random.default_rng(2)
    fixed = fixedpoint.quantize_layers(float_layers(rng), [rng.integers(-8, 8, (4, 6, 6)).astype(float)])
    z = rng.integers(-20, 20, (4, 6, 6))
    whole = fixedpoint.run_layers(fixed, z)
    monkeypatch.setattr(fixedpoint, "CHUNK_POSITIONS", 5)
    assert np.array_equal(fixedpoint.run_layers(fixed, z), whole)
