"""Training photos: loaded once into memory, then sampled as augmented crops."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
from PIL import Image

from ..imageio import IMAGE_SUFFIXES
from .synthetic import synthetic_crop


def list_images(folder: str | Path) -> list[Path]:
    root = Path(folder)
    if not root.is_dir():
        raise FileNotFoundError(f"training data folder not found: {root}")
    paths = sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    if not paths:
        raise FileNotFoundError(f"no images found under {root}")
    return paths


def file_list_sha256(folder: str | Path, paths: list[Path]) -> str:
    """A short fingerprint of which photos a run saw: their paths under folder, not their pixels."""
    names = sorted(p.relative_to(folder).as_posix() for p in paths)
    return hashlib.sha256("\n".join(names).encode()).hexdigest()[:16]


def held_out_photos(paths: list[Path], count: int, stems: list[str] | None = None) -> list[Path]:
    """A fixed handful: the given stems (a resumed run's), else the first `count` by name hash.

    Matching stems lets a re-encoded copy of the data (the GPU pack) hold out the same photos.
    """
    if stems:
        return sorted(p for p in paths if p.stem in set(stems))
    return sorted(sorted(paths, key=lambda p: hashlib.sha256(p.name.encode()).hexdigest())[:count])


def split_validation(paths: list[Path], count: int,
                     stems: list[str] | None = None) -> tuple[list[Path], list[Path]]:
    """(training photos, held-out photos); ValueError when holding out leaves nothing to train on."""
    held_out = held_out_photos(paths, count, stems)
    training = [p for p in paths if p not in set(held_out)]
    if not training:
        # Said here, not as "no photo is large enough" later, when the sampler finds none left.
        held = len(held_out) if stems else count
        raise ValueError(f"{len(paths)} training photos found, but {held} are held out for validation: "
                         f"training needs at least {held + 1} (use a few hundred)")
    return training, held_out


def load_photo(path: Path, max_side: int, min_side: int) -> np.ndarray | None:
    """RGB uint8 (H, W, 3), downscaled so its longest side is at most max_side."""
    with Image.open(path) as image:
        image = image.convert("RGB")
        scale = max_side / max(image.size)
        if scale < 1:
            size = (round(image.width * scale), round(image.height * scale))
            image = image.resize(size, Image.Resampling.LANCZOS)
        if min(image.size) < min_side:
            return None
        return np.asarray(image, dtype=np.uint8)


class CropSampler:
    """Random crops with flips and light down-scaling, from photos held in memory."""

    def __init__(self, photos: list[np.ndarray], crop: int, min_scale: float, synthetic_share: float = 0.0):
        self.photos = [p for p in photos if min(p.shape[:2]) >= crop]
        if not self.photos:
            raise ValueError(f"no training photo is at least {crop} pixels on its short side")
        self.crop = crop
        self.min_scale = min_scale
        self.synthetic_share = synthetic_share

    def sample(self, rng: np.random.Generator) -> np.ndarray:
        photo = self.photos[rng.integers(len(self.photos))]
        h, w = photo.shape[:2]
        largest = min(h, w) / self.crop
        scale = rng.uniform(self.min_scale, 1.0) if self.min_scale < 1 else 1.0
        window = min(round(self.crop / scale), int(largest * self.crop))
        top = rng.integers(h - window + 1)
        left = rng.integers(w - window + 1)
        patch = photo[top:top + window, left:left + window]
        if window != self.crop:
            patch = np.asarray(Image.fromarray(patch).resize((self.crop, self.crop), Image.Resampling.BICUBIC))
        if rng.random() < 0.5:
            patch = patch[:, ::-1]
        if rng.random() < 0.5:
            patch = patch[::-1]
        return patch

    def batch(self, rng: np.random.Generator, size: int) -> np.ndarray:
        """(B, 3, crop, crop) float32 in [0, 1]."""
        patches = np.stack([synthetic_crop(rng, self.crop) if rng.random() < self.synthetic_share
                            else self.sample(rng) for _ in range(size)])
        return patches.transpose(0, 3, 1, 2).astype(np.float32) / 255.0
