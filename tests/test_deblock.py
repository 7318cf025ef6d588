"""The deblocking filter (aecodec/deblock.py): what it smooths, what it leaves, band by band as whole,
and the flag that asks for it (issue 22, item 5)."""

import warnings

import numpy as np
import pytest

from aecodec import container, deblock, transform
from aecodec.codec import Codec
from aecodec.metrics import grid_ratio
from bench.grid import smooth_images
from helpers import fix_crc, photo_like


def blocky_ramp(height=96, width=112, offset=1.5, seed=0) -> np.ndarray:
    """A gentle float ramp (0 ... 1) with a step of offset grey levels added at every 16-pixel block."""
    rows, cols = np.mgrid[0:height, 0:width].astype(np.float32)
    ramp = 0.3 + 0.2 * cols / width + 0.1 * rows / height
    blocks = np.random.default_rng(seed).uniform(-offset, offset, (height // 16 + 1, width // 16 + 1))
    steps = blocks[rows.astype(int) // 16, cols.astype(int) // 16] / 255
    return np.repeat((ramp + steps)[:, :, None], 3, axis=2).astype(np.float32)


def as_uint8(x: np.ndarray) -> np.ndarray:
    return transform.to_uint8(x.copy())  # to_uint8 works in place


def test_block_steps_are_smoothed_and_the_ramp_kept():
    blocky = blocky_ramp()
    filtered = deblock.apply(blocky, 8)
    assert grid_ratio(as_uint8(blocky)) > 1.5
    assert grid_ratio(as_uint8(filtered)) < 1.1
    assert np.abs(filtered - blocky).max() < 2 / 255  # moved by at most the steps it smooths


def test_a_real_edge_on_a_boundary_is_left_alone():
    edge = np.full((32, 48, 3), 0.2, np.float32)
    edge[:, 16:] = 0.8  # 153 levels at the boundary: far above any threshold
    assert np.array_equal(deblock.apply(edge, deblock.threshold(1)), edge)


def test_corrupt_values_stay_finite_and_warn_nothing():
    """A hostile file's synthesis can give NaN, infinities and 1e38 (found by bench/fuzz_decoder.py)."""
    wild = blocky_ramp(48, 48)
    wild[5:9, 14:18] = np.array([np.nan, np.inf, -np.inf, 3e38], np.float32)[:, None, None]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        filtered = deblock.apply(wild, 16)
    assert np.isfinite(filtered).all() and filtered.min() > -1.1 and filtered.max() < 2.1  # moved by < threshold / 2


def test_threshold_zero_changes_nothing_and_apply_does_not_touch_its_input():
    blocky = blocky_ramp()
    kept = blocky.copy()
    assert np.array_equal(deblock.apply(blocky, 0), blocky)
    deblock.apply(blocky, 8)
    assert np.array_equal(blocky, kept)


@pytest.mark.parametrize("cuts", [(16,), (32, 48), (7, 40), (90, 3)])
@pytest.mark.parametrize("shape", [(96, 112), (35, 40), (18, 33), (5, 5)])
def test_band_by_band_gives_the_whole_image_result(shape, cuts):
    image = blocky_ramp(*shape, offset=3)
    edges = sorted({0, *(c for c in cuts if c < shape[0]), shape[0]})
    bands = [image[top:bottom].copy() for top, bottom in zip(edges, edges[1:])]
    banded = np.concatenate(list(deblock.apply_rows(bands, 12)))
    assert np.array_equal(banded, deblock.apply(image, 12))


def test_thresholds_fall_with_quality_to_none():
    values = [deblock.threshold(q) for q in range(1, 101)]
    assert values[0] > 0 and values[-1] == 0
    assert all(a >= b for a, b in zip(values, values[1:]))


@pytest.fixture(scope="module")
def shipped():
    return Codec(threads=1)


def test_files_ask_for_the_filter_where_it_runs(codec):
    rgb = photo_like(40, 56, seed=3)
    low, high = codec.compress(rgb, quality=10, detail=False), codec.compress(rgb, quality=95, detail=False)
    assert container.read_header(low).deblocked and low[4] == 2
    assert not container.read_header(high).deblocked and high[4] == 1
    plain = codec.compress(rgb, quality=10, detail=False, deblock=False)
    assert not container.read_header(plain).deblocked and plain[4] == 1  # older builds read it
    assert len(plain) == len(low)  # the flag costs no bytes: the streams are the same


def test_the_flag_alone_decides_whether_the_decoder_filters(codec):
    rgb = photo_like(48, 64, seed=5)
    flagged = codec.compress(rgb, quality=10, detail=False)
    plain = codec.compress(rgb, quality=10, detail=False, deblock=False)
    cleared = bytearray(flagged)
    cleared[4], cleared[6] = 1, 0  # version 1, no flags: plain's header
    cleared = fix_crc(cleared)
    assert cleared == plain
    filtered, unfiltered = (np.asarray(codec.decompress(data)) for data in (flagged, plain))
    assert not np.array_equal(filtered, unfiltered)
    assert np.abs(filtered.astype(int) - unfiltered).max() <= 8  # small moves, not a different picture


@pytest.mark.parametrize("quality", [5, 10, 20, 30, 40, 50, 60, 75, 90])
def test_shipped_model_shows_no_grid_on_smooth_pictures(shipped, quality):
    """Issue 22, item 5: grid_ratio at most 1.10 on the smooth synthetic pictures at every quality >= 5,
    with default settings (the filter and the detail layer on)."""
    for name, rgb in smooth_images().items():
        decoded = np.asarray(shipped.decompress(shipped.compress(rgb, quality=quality)).convert("RGB"))
        assert grid_ratio(decoded) <= 1.10, f"{name} at quality {quality}"
