import numpy as np
import pytest

from aecodec import entropy, probability
from aecodec.entropy import EntropyError, EntropyTables


@pytest.fixture(scope="module")
def gaussian() -> EntropyTables:
    return EntropyTables(*probability.gaussian_tables(probability.scale_table()))


def test_round_trip_with_escapes(gaussian):
    rng = np.random.default_rng(1)
    index = rng.integers(0, len(gaussian), 5000)
    values = np.rint(rng.normal(0, 3, 5000)).astype(np.int64)
    values[::97] = rng.integers(-100000, 100000, len(values[::97]))  # far outside small tables
    blob = entropy.encode(values, index, gaussian)
    assert np.array_equal(entropy.decode(blob, index, gaussian), values)


def test_smaller_scales_give_fewer_bits(gaussian):
    values = np.zeros(2000, dtype=np.int64)
    small = entropy.encode(values, np.zeros(2000, np.int64), gaussian)
    large = entropy.encode(values, np.full(2000, 40), gaussian)
    assert len(small) < len(large)


def test_empty_input(gaussian):
    empty = np.zeros(0, np.int64)
    assert entropy.decode(entropy.encode(empty, empty, gaussian), empty, gaussian).size == 0


def test_tables_are_valid_integer_pmfs():
    pmfs, offsets = probability.gaussian_tables(probability.scale_table())
    assert all(p.sum() == 1 << entropy.PMF_BITS and p.min() >= 1 for p in pmfs)
    assert offsets[0] == -1  # the narrowest table still has room for -1, 0, 1


@pytest.mark.parametrize("cut", [0, 3, 4, 9, 20])
def test_truncated_stream_raises_entropy_error(gaussian, cut):
    index = np.full(300, 20)
    values = np.arange(300) % 7 - 3
    blob = entropy.encode(values, index, gaussian)
    with pytest.raises(EntropyError):
        entropy.decode(blob[:cut] if cut < 5 else blob[:4] + b"\xff" * cut, index, gaussian)


def test_garbage_is_refused_or_decoded_never_a_panic(gaussian):
    """constriction reports some failures as a Rust panic: decode must turn every one into an EntropyError."""
    rng = np.random.default_rng(0)
    index = rng.integers(0, len(gaussian), 200)
    refused = 0
    for _ in range(200):
        blob = rng.integers(0, 256, rng.integers(0, 64)).astype(np.uint8).tobytes()
        try:
            values = entropy.decode(blob, index, gaussian)
        except EntropyError:
            refused += 1
        else:
            assert values.shape == index.shape and values.dtype == np.int64
    assert refused >= 190  # random bytes are hardly ever a whole valid stream


def test_quantize_pmf_keeps_every_symbol_codable():
    freq = probability.quantize_pmf(np.array([1.0, 0.0, 1e-12, 0.5]))
    assert freq.sum() == 1 << entropy.PMF_BITS and freq.min() >= 1
