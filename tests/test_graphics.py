"""Synthetic graphics with the shipped model: text on colour, thin lines, flat patches, gradients, UI.

Saturated chroma edges and flat colour are what photographs rarely teach a learned codec. At the same
quality number, the shipped model must match Pillow JPEG's PSNR on each picture and keep its colours;
within the size of JPEG's file it should match JPEG's PSNR too.
"""

import numpy as np
import pytest

from aecodec.bench.graphics import GRAPHICS, compare_with_jpeg, mean_shift
from aecodec.codec import Codec

MAX_MEAN_SHIFT = 1.0  # levels of 255: a change of the mean colour below what anyone sees on flat areas

# Where the shipped model still falls short, measured in bench/results/graphics.json (none since model
# 877a2895435a028e: flat_patches within JPEG's size went from 26.42 to 29.64 dB, against JPEG's 28.72).
# Strict: when a retrained model passes, these marks must go, so the guard tightens by itself.
BELOW_JPEG: dict = {}
BELOW_JPEG_AT_ITS_SIZE: dict = {}
DRIFTING: dict = {}


def cases(shortfalls: dict) -> list:
    return [pytest.param(name, marks=pytest.mark.xfail(strict=True, reason=shortfalls[name]))
            if name in shortfalls else name for name in GRAPHICS]


@pytest.fixture(scope="module")
def rows():
    return {row.image: row for row in compare_with_jpeg(Codec(threads=1), quality=90)}


def test_pictures_are_drawn_the_same_each_time():
    for draw in GRAPHICS.values():
        assert np.array_equal(draw(), draw())
    assert mean_shift(np.zeros((2, 2, 3), np.uint8), np.full((2, 2, 3), 3, np.uint8)) == 3.0


@pytest.mark.parametrize("image", cases(BELOW_JPEG))
def test_quality_90_is_at_least_as_good_as_jpeg_90(rows, image):
    row = rows[image]
    assert row.aecodec_psnr >= row.jpeg_psnr, row


@pytest.mark.parametrize("image", cases(BELOW_JPEG_AT_ITS_SIZE))
def test_within_jpeg_90s_size_at_least_as_good_as_jpeg_90(rows, image):
    row = rows[image]  # the same bits, not just the same quality number
    assert row.same_size_bpp <= row.jpeg_bpp and row.same_size_psnr >= row.jpeg_psnr, row


@pytest.mark.parametrize("image", cases(DRIFTING))
def test_colours_do_not_drift(rows, image):
    row = rows[image]  # JPEG's 4:2:0 shifts thin coloured lines too: no worse than it, or below sight
    assert row.aecodec_mean_shift <= max(MAX_MEAN_SHIFT, row.jpeg_mean_shift), row
