"""Synthetic graphics drawn on the fly: what photographs rarely show a codec.

Screenshots, logos, charts and text on colour need saturated chroma edges, thin
lines and flat areas to survive coding; a model trained on photographs alone
smears them (yellow text on blue came back purple). A share of each batch is
drawn here instead of cropped from a photo::

    patch = synthetic_crop(rng, 256)       # (256, 256, 3) uint8
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

FONT_DIRS = ("/usr/share/fonts", "/System/Library/Fonts", "C:/Windows/Fonts")
WORDS = ("aecodec", "Total", "Save", "OK", "Cancel", "2026", "Error 404", "price: $9.99", "Menu",
         "the quick brown fox", "JPEG", "Login", "Q3 sales", "42%", "www.example.com", "Settings")


@lru_cache(maxsize=1)
def font_files() -> tuple[str, ...]:
    """TrueType fonts on this machine; Pillow's built-in font is always used besides them."""
    found = []
    for folder in FONT_DIRS:
        root = Path(folder)
        if root.is_dir():
            found += sorted(str(p) for p in root.rglob("*.ttf"))
    return tuple(found[:64])


def random_font(rng: np.random.Generator, size: int) -> ImageFont.ImageFont:
    files = font_files()
    if files and rng.random() < 0.7:
        try:
            return ImageFont.truetype(files[rng.integers(len(files))], size)
        except OSError:
            pass
    return ImageFont.load_default(size=size)


def random_colour(rng: np.random.Generator, saturated: bool | None = None) -> tuple[int, int, int]:
    """Half the time a saturated colour (channels near 0 or 255), else any colour."""
    if saturated if saturated is not None else rng.random() < 0.5:
        levels = rng.choice([0, 16, 30, 200, 237, 255], size=3)
        return tuple(int(v) for v in levels)
    return tuple(int(v) for v in rng.integers(0, 256, size=3))


def gradient(rng: np.random.Generator, side: int) -> np.ndarray:
    """A linear gradient between two colours in a random direction."""
    angle = rng.uniform(0, 2 * np.pi)
    yy, xx = np.mgrid[0:side, 0:side] / max(side - 1, 1)
    t = (np.cos(angle) * xx + np.sin(angle) * yy)
    t = (t - t.min()) / max(t.max() - t.min(), 1e-6)
    a, b = np.array(random_colour(rng)), np.array(random_colour(rng))
    return (a + (b - a) * t[..., None]).round().astype(np.uint8)


def draw_element(draw: ImageDraw.ImageDraw, rng: np.random.Generator, side: int) -> None:
    kind = rng.choice(["text", "text", "line", "rect", "ellipse"])
    colour = random_colour(rng)
    x0, y0 = (int(v) for v in rng.integers(-side // 4, side, size=2))
    if kind == "text":
        size = int(np.exp(rng.uniform(np.log(8), np.log(max(side // 3, 9)))))
        draw.text((x0, y0), str(rng.choice(WORDS)), fill=colour, font=random_font(rng, size))
    elif kind == "line":
        x1, y1 = (int(v) for v in rng.integers(0, side, size=2))
        draw.line((x0, y0, x1, y1), fill=colour, width=int(rng.integers(1, 4)))
    else:
        w, h = (int(v) for v in rng.integers(4, side // 2 + 5, size=2))
        box = (x0, y0, x0 + w, y0 + h)
        outline = random_colour(rng) if rng.random() < 0.3 else None
        if kind == "rect":
            draw.rectangle(box, fill=colour, outline=outline, width=int(rng.integers(1, 3)))
        else:
            draw.ellipse(box, fill=colour, outline=outline)


def synthetic_crop(rng: np.random.Generator, side: int) -> np.ndarray:
    """One (side, side, 3) uint8 picture: flat or gradient ground, then text, lines and blocks."""
    if rng.random() < 0.3:
        image = Image.fromarray(gradient(rng, side))
    else:
        image = Image.new("RGB", (side, side), random_colour(rng))
    draw = ImageDraw.Draw(image)
    for _ in range(int(rng.integers(3, 12))):
        draw_element(draw, rng, side)
    return np.asarray(image, dtype=np.uint8)
