"""Shared fixtures: a tiny model shipped in tests/data, and small generated images."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from aecodec.codec import Codec

TINY_WEIGHTS = Path(__file__).parent / "data" / "tiny_weights"
SHARED = Path(__file__).resolve().parents[2] / "shared"
KODAK = SHARED / "data" / "kodak"


def photo_like(height: int, width: int, seed: int = 0) -> np.ndarray:
    """Smooth colour gradients with a little texture: compresses like a photo, not like noise."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    channels = []
    for c in range(3):
        fx, fy, phase = rng.uniform(0.01, 0.08, 2).tolist() + [rng.uniform(0, 6)]
        channels.append(128 + 80 * np.sin(fx * x + phase) * np.cos(fy * y) + rng.normal(0, 6, (height, width)))
    return np.clip(np.stack(channels, axis=2), 0, 255).astype(np.uint8)


@pytest.fixture(scope="session")
def tiny_weights() -> Path:
    return TINY_WEIGHTS


@pytest.fixture(scope="session")
def codec() -> Codec:
    return Codec(TINY_WEIGHTS, threads=1)


@pytest.fixture
def image() -> np.ndarray:
    return photo_like(80, 112)
