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


def test_bucketed_scale_index_is_the_first_entry_at_or_above():
    """probability.scale_index looks integers up by bucket; it must agree with a binary search everywhere."""
    from aecodec.probability import fixed_point, scale_index, scale_table
    table = fixed_point(scale_table(), fixedpoint.OUTPUT_FRACTION_BITS)
    rng = np.random.default_rng(3)
    edges = np.concatenate([table - 1, table, table + 1, [-(1 << 40), -1, 0, 1 << 40]])
    scale = np.concatenate([edges, rng.integers(-(1 << 20), 1 << 26, 100_000)])
    assert np.array_equal(scale_index(scale, table), np.minimum(np.searchsorted(table, scale), len(table) - 1))


def test_onnx_runtime_products_are_the_numpy_integers():
    """The codec's float64 GEMM (ONNX Runtime's) gives the same integers as numpy's, at the layers' worst case."""
    from aecodec.exactgemm import OrtMatMul
    from aecodec.networks import RuntimeOptions
    rng = np.random.default_rng(4)
    weight = rng.integers(-2047, 2048, (40, 160, 3, 3))
    x = rng.integers(0, fixedpoint.ACTIVATION_MAX + 1, (160, 9, 13))
    x[:, 0, 0] = fixedpoint.ACTIVATION_MAX  # the largest partial sums the bound allows
    weight[:, :, 1, 1] = 2047
    for threads in (1, 2):
        got = fixedpoint.conv_exact(x, weight, OrtMatMul(RuntimeOptions(threads=threads)))
        assert np.array_equal(got, fixedpoint.conv_exact(x, weight))


def test_zero_input_channels_are_left_out_exactly():
    from aecodec.exactgemm import OrtMatMul
    rng = np.random.default_rng(5)
    x = rng.integers(-50, 50, (6, 5, 7))
    x[[1, 4]] = 0  # channels that are zero everywhere
    w = rng.integers(-2047, 2047, (3, 6, 3, 3))
    padded = np.pad(x, ((0, 0), (1, 1), (1, 1)))
    direct = np.array([[[(padded[:, i:i + 3, j:j + 3] * w[o]).sum() for j in range(7)] for i in range(5)]
                       for o in range(3)])
    for matmul in (np.matmul, OrtMatMul()):
        assert np.array_equal(fixedpoint.conv_exact(x, w, matmul), direct)
        assert np.array_equal(fixedpoint.conv_exact(np.zeros_like(x), w, matmul), np.zeros((3, 5, 7), np.int64))
