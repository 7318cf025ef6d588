"""Random crops taken on the GPU from pictures decoded once into one uint8 tensor there.

    crops = DeviceCrops(photos, synthetic, crop=256, min_scale=0.6, synthetic_share=0.1, device="cuda")
    x = crops.batch(64, generator)      # (64, 3, 256, 256) float in [0, 1], channels_last

The same augmentation as CropSampler in aecodec/train/data.py (a window of 1 to
1/min_scale crop sides, scaled to the crop, flipped either way; synthetic pictures
unscaled), done by index arithmetic on the device, so no batch crosses the PCIe bus and
no CPU work paces the GPU. Scaling is bilinear without antialiasing: at most 1/0.6
down, it blurs a little less than CropSampler's bicubic and aliases a little more.
"""

from __future__ import annotations

import numpy as np
import torch


def bank(pictures: list[np.ndarray], device: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Pictures (H, W, 3) uint8 of any sizes -> one (N, Hmax, Wmax, 3) tensor, zero-padded, and their sizes."""
    height = max(p.shape[0] for p in pictures)
    width = max(p.shape[1] for p in pictures)
    stacked = np.zeros((len(pictures), height, width, 3), np.uint8)
    for i, picture in enumerate(pictures):
        stacked[i, :picture.shape[0], :picture.shape[1]] = picture
    sizes = torch.tensor([p.shape[:2] for p in pictures], dtype=torch.float32, device=device)
    return torch.from_numpy(stacked).to(device), sizes


class DeviceCrops:
    def __init__(self, photos: list[np.ndarray], synthetic: list[np.ndarray], crop: int, min_scale: float,
                 synthetic_share: float, device: str):
        photos = [p for p in photos if min(p.shape[:2]) >= crop]
        synthetic = [p for p in synthetic if min(p.shape[:2]) >= crop]
        if not photos:
            raise ValueError(f"no photo in the pack is at least {crop} pixels on its short side")
        self.pictures, self.sizes = bank(photos + synthetic, device)
        self.photo_count, self.synthetic_count = len(photos), len(synthetic)
        self.crop, self.min_scale, self.device = crop, min_scale, device
        self.synthetic_share = synthetic_share if synthetic else 0.0
        self.offsets = torch.arange(crop, device=device, dtype=torch.float32) + 0.5

    @property
    def nbytes(self) -> int:
        return self.pictures.numel()

    def batch(self, size: int, generator: torch.Generator) -> torch.Tensor:
        def uniform(*shape):
            return torch.rand(*shape, device=self.device, generator=generator)

        synthetic = uniform(size) < self.synthetic_share
        index = torch.where(synthetic, self.photo_count + (uniform(size) * self.synthetic_count).long(),
                            (uniform(size) * self.photo_count).long())
        height, width = self.sizes[index].unbind(1)
        # The window's side in source pixels: crop / scale, at most the picture's short side.
        scale = self.min_scale + (1 - self.min_scale) * uniform(size)
        window = torch.minimum(self.crop / torch.where(synthetic, torch.ones_like(scale), scale),
                               torch.minimum(height, width))
        window = torch.where(window < self.crop + 1, torch.full_like(window, self.crop), window)
        rows = self.coordinates(height, window, uniform(size), uniform(size) < 0.5)
        cols = self.coordinates(width, window, uniform(size), uniform(size) < 0.5)
        patch = self.bilinear(index, rows, cols)  # (B, crop, crop, 3)
        return patch.permute(0, 3, 1, 2)  # a channels_last (B, 3, crop, crop) view, no copy

    def coordinates(self, extent: torch.Tensor, window: torch.Tensor, position: torch.Tensor,
                    flip: torch.Tensor) -> torch.Tensor:
        """(B, crop) source coordinates of pixel centres along one axis, flipped where asked.

        The window starts on a whole pixel, so an unscaled crop (window == crop) samples
        pixel centres exactly and its bilinear weights are all 0: a plain copy.
        """
        start = (position * (extent - window + 1)).floor().clamp(max=extent - window)
        step = window / self.crop
        coords = start[:, None] + self.offsets[None, :] * step[:, None] - 0.5
        return torch.where(flip[:, None], coords.flip(1), coords)

    def bilinear(self, index: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor) -> torch.Tensor:
        top = rows.floor()
        left = cols.floor()
        wy = (rows - top)[:, :, None, None]
        wx = (cols - left)[:, None, :, None]
        height, width = self.sizes[index].unbind(1)
        top, left = top.long(), left.long()
        bottom = torch.minimum(top + 1, (height.long() - 1)[:, None])
        right = torch.minimum(left + 1, (width.long() - 1)[:, None])
        i = index[:, None, None]

        def at(r, c):
            return self.pictures[i, r[:, :, None], c[:, None, :]].float()

        upper = at(top, left) * (1 - wx) + at(top, right) * wx
        lower = at(bottom, left) * (1 - wx) + at(bottom, right) * wx
        return (upper * (1 - wy) + lower * wy) * (1 / 255)
