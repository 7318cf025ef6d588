"""Decoding must choose the same probabilities on every machine: tests (a)-(c) of the codec issue.

Each runs for the tiny model (format versions 1 and 2) and for the tiny model with a checkerboard
context (version 3), whose second pass must pick the same means and tables everywhere too.
"""

import numpy as np
import pytest

from aecodec import container, transform
from aecodec.codec import Codec
from aecodec.networks import Networks
from helpers import TINY_CONTEXT_WEIGHTS, TINY_WEIGHTS, photo_like


@pytest.fixture(scope="module", params=[TINY_WEIGHTS, TINY_CONTEXT_WEIGHTS], ids=["v1-v2", "v3-context"])
def tiny_weights(request):
    return request.param


@pytest.fixture(scope="module")
def encoded(tiny_weights):
    rgb = photo_like(96, 160, seed=11)
    return Codec(tiny_weights, threads=1).compress(rgb, quality=60)


def symbols(codec: Codec, data: bytes) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """What every decoder must agree on: the hyper-latent, the means (the context's changes included),
    the residual."""
    return transform.decode_latent(codec.model, container.unpack(data))


def jitter_float_networks(monkeypatch, seed: int) -> None:
    """Simulate another machine: every float input and output of the networks moves by a relative 1e-5."""
    rng = np.random.default_rng(seed)
    original_run = Networks.run

    def jittered(self, name, x):
        x = x * (1 + 1e-5 * rng.choice([-1.0, 1.0], x.shape)).astype(np.float32)
        out = original_run(self, name, x)
        return out * (1 + 1e-5 * rng.choice([-1.0, 1.0], out.shape)).astype(np.float32)

    monkeypatch.setattr(Networks, "run", jittered)


def test_a_thread_count_does_not_change_pixels(tiny_weights, encoded):
    one = np.asarray(Codec(tiny_weights, threads=1).decompress(encoded))
    two = np.asarray(Codec(tiny_weights, threads=2).decompress(encoded))
    assert np.array_equal(one, two)


def test_b_perturbed_float_networks_decode_the_same_symbols(tiny_weights, encoded, monkeypatch):
    reference = symbols(Codec(tiny_weights), encoded)
    jitter_float_networks(monkeypatch, seed=0)
    codec = Codec(tiny_weights)
    for got, want in zip(symbols(codec, encoded), reference):
        assert np.array_equal(got, want)
    assert codec.decompress(encoded).size == (160, 96)


@pytest.mark.parametrize("encoder_kind", ["cpu", "reference"])
def test_c_files_cross_backends(tiny_weights, encoder_kind):
    pytest.importorskip("onnx.reference")
    rgb = photo_like(64, 64, seed=12)
    data = Codec(tiny_weights, provider=encoder_kind).compress(rgb, quality=50)
    ort, numpy_ref = Codec(tiny_weights), Codec(tiny_weights, provider="reference")
    for got, want in zip(symbols(numpy_ref, data), symbols(ort, data)):
        assert np.array_equal(got, want)
    a = np.asarray(ort.decompress(data)).astype(int)
    b = np.asarray(numpy_ref.decompress(data)).astype(int)
    assert np.abs(a - b).max() <= 1  # only float rounding of the pixels may differ


def test_c_unoptimised_graph_is_another_backend(tiny_weights, encoded):
    plain = Codec(tiny_weights, optimize=False)
    for got, want in zip(symbols(plain, encoded), symbols(Codec(tiny_weights), encoded)):
        assert np.array_equal(got, want)


@pytest.fixture(scope="module")
def shipped():
    """The shipped model and a file it wrote from the sample photo (a 192x256 crop keeps it quick)."""
    from pathlib import Path

    from PIL import Image

    from aecodec.bundle import default_weights_root
    weights = default_weights_root() / "main"
    if not weights.is_dir():
        pytest.skip("no shipped weights")
    sample = Path(__file__).resolve().parent.parent / "examples" / "coffee.png"
    rgb = np.asarray(Image.open(sample).convert("RGB"))[:192, :256]
    return weights, Codec(weights, threads=1).compress(rgb, quality=50)


def test_shipped_model_decodes_the_same_everywhere(shipped, monkeypatch):
    """(a), (b) and an unoptimised graph, with the real model rather than the tiny test one."""
    weights, data = shipped
    reference = symbols(Codec(weights, threads=1), data)
    one = np.asarray(Codec(weights, threads=1).decompress(data))
    assert np.array_equal(one, np.asarray(Codec(weights, threads=2).decompress(data)))
    for got, want in zip(symbols(Codec(weights, optimize=False), data), reference):
        assert np.array_equal(got, want)
    jitter_float_networks(monkeypatch, seed=1)
    for got, want in zip(symbols(Codec(weights), data), reference):
        assert np.array_equal(got, want)
