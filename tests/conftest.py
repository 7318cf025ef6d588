"""Shared fixtures: the tiny model shipped in tests/data, and a small generated image (helpers.py has the rest)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from aecodec.codec import Codec
from helpers import KODAK, TINY_WEIGHTS, photo_like


def pytest_report_header(config) -> str | None:
    """Said before the run, not only as an 's' in the dots: the Kodak images are not in the repository."""
    if not KODAK.is_dir():
        return f"no Kodak images in {KODAK}: the 3 tests of tests/test_kodak.py are skipped (README, Run the tests)"
    return None


@pytest.fixture(scope="session")
def tiny_weights() -> Path:
    return TINY_WEIGHTS


@pytest.fixture(scope="session")
def codec() -> Codec:
    return Codec(TINY_WEIGHTS, threads=1)


@pytest.fixture
def image() -> np.ndarray:
    return photo_like(80, 112)
