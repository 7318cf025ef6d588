"""Synthetic graphics against Pillow JPEG at the same quality setting: text on colour, thin lines, flat patches.

Photographs hide what screenshots and logos show at once: saturated chroma edges
that turn purple, flat areas that drift in colour. These pictures are drawn here,
deterministically, so the same set is measured everywhere::

    rows = compare_with_jpeg(Codec(), quality=90)
"""

from __future__ import annotations

import io
from dataclasses import asdict, dataclass

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from ..metrics import psnr

SIDE = 256
YELLOW, BLUE, RED = (237, 237, 18), (30, 40, 200), (220, 20, 30)


def text_on_blue() -> np.ndarray:
    """The case users reported: saturated yellow text on blue, several sizes."""
    image = Image.new("RGB", (SIDE, SIDE), BLUE)
    draw = ImageDraw.Draw(image)
    top = 4
    for size in (10, 14, 20, 28, 40):
        draw.text((6, top), "Sale 42%", fill=YELLOW, font=ImageFont.load_default(size=size))
        top += size + 8
    return np.asarray(image)


def thin_lines() -> np.ndarray:
    """1- and 2-pixel red, green and blue lines on white and on mid grey."""
    image = Image.new("RGB", (SIDE, SIDE), (255, 255, 255))
    draw = ImageDraw.Draw(image)
    draw.rectangle((0, SIDE // 2, SIDE, SIDE), fill=(128, 128, 128))
    for i, colour in enumerate((RED, (20, 180, 40), BLUE)):
        for width in (1, 2):
            offset = 20 + 70 * i + 25 * width
            draw.line((offset, 0, offset, SIDE), fill=colour, width=width)
            draw.line((0, offset, SIDE, offset - 40), fill=colour, width=width)
    return np.asarray(image)


def flat_patches() -> np.ndarray:
    """A 4x4 grid of flat, mostly saturated colours."""
    colours = [(255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 0), (0, 255, 255), (255, 0, 255),
               YELLOW, BLUE, RED, (0, 0, 0), (255, 255, 255), (128, 128, 128), (250, 120, 0),
               (120, 0, 200), (0, 120, 60), (200, 170, 140)]
    cell = SIDE // 4
    out = np.zeros((SIDE, SIDE, 3), np.uint8)
    for i, colour in enumerate(colours):
        out[(i // 4) * cell:(i // 4 + 1) * cell, (i % 4) * cell:(i % 4 + 1) * cell] = colour
    return out


def gradients() -> np.ndarray:
    """Smooth colour ramps: horizontal red-to-blue above, vertical yellow-to-black below."""
    t = np.linspace(0, 1, SIDE)[None, :, None]
    top = (np.array(RED) * (1 - t) + np.array(BLUE) * t).repeat(SIDE // 2, axis=0)
    s = np.linspace(0, 1, SIDE // 2)[:, None, None]
    bottom = (np.array(YELLOW) * (1 - s)).repeat(SIDE, axis=1)
    return np.concatenate([top, bottom]).round().astype(np.uint8)


def user_interface() -> np.ndarray:
    """Buttons, a title bar and labels: blocks of flat colour with text."""
    image = Image.new("RGB", (SIDE, SIDE), (245, 245, 245))
    draw = ImageDraw.Draw(image)
    draw.rectangle((0, 0, SIDE, 30), fill=(40, 60, 160))
    draw.text((8, 6), "Settings", fill=(255, 255, 255), font=ImageFont.load_default(size=16))
    for i, (label, colour) in enumerate((("OK", (20, 150, 60)), ("Cancel", RED), ("Help", (250, 180, 0)))):
        box = (16, 50 + 60 * i, 150, 90 + 60 * i)
        draw.rectangle(box, fill=colour, outline=(0, 0, 0))
        draw.text((box[0] + 10, box[1] + 10), label, fill=(255, 255, 255), font=ImageFont.load_default(size=18))
    draw.text((160, 60), "v1.2", fill=(0, 0, 0), font=ImageFont.load_default(size=12))
    return np.asarray(image)


GRAPHICS = {"text_on_blue": text_on_blue, "thin_lines": thin_lines, "flat_patches": flat_patches,
            "gradients": gradients, "user_interface": user_interface}


@dataclass(frozen=True)
class GraphicsRow:
    image: str
    aecodec_bpp: float
    aecodec_psnr: float
    aecodec_mean_shift: float  # largest change of a channel's mean over the image, in levels
    jpeg_bpp: float
    jpeg_psnr: float
    jpeg_mean_shift: float
    same_size_bpp: float  # aecodec given JPEG's file size as its budget (--target-size)
    same_size_psnr: float


def mean_shift(original: np.ndarray, decoded: np.ndarray) -> float:
    return float(np.abs(original.reshape(-1, 3).mean(0) - decoded.reshape(-1, 3).astype(np.float64).mean(0)).max())


def jpeg_round_trip(rgb: np.ndarray, quality: int) -> tuple[int, np.ndarray]:
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, format="JPEG", quality=quality)
    return buffer.tell(), np.asarray(Image.open(io.BytesIO(buffer.getvalue())).convert("RGB"))


def compare_with_jpeg(codec, quality: int = 90) -> list[GraphicsRow]:
    """Each picture through aecodec and Pillow JPEG at the same quality number, and through aecodec
    again within the size of JPEG's file: a high quality number alone could win by spending more."""
    rows = []
    for name, draw in GRAPHICS.items():
        rgb = draw()
        pixels = rgb.shape[0] * rgb.shape[1]
        data = codec.compress(rgb, quality=quality)
        decoded = np.asarray(codec.decompress(data).convert("RGB"))
        jpeg_bytes, jpeg = jpeg_round_trip(rgb, quality)
        same_size = codec.compress(rgb, target_size=jpeg_bytes)
        same_size_decoded = np.asarray(codec.decompress(same_size).convert("RGB"))
        rows.append(GraphicsRow(name, 8 * len(data) / pixels, psnr(rgb, decoded), mean_shift(rgb, decoded),
                                8 * jpeg_bytes / pixels, psnr(rgb, jpeg), mean_shift(rgb, jpeg),
                                8 * len(same_size) / pixels, psnr(rgb, same_size_decoded)))
    return rows


def rows_as_dicts(rows: list[GraphicsRow]) -> list[dict]:
    return [asdict(row) for row in rows]
