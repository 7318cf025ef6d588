"""Odd and broken inputs to the encoder: a clear ImageError or a faithful file, never a traceback."""

from __future__ import annotations

import io
import struct
import tracemalloc
import zlib

import numpy as np
import pytest
from PIL import Image, ImageCms, ImageOps

from aecodec import container
from aecodec.imageio import ImageError
from helpers import cli_tiny, one_line_error, photo_like

RGB = photo_like(24, 20, seed=7)


def encoded(image, fmt: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def same_pixels_coded(a: bytes, b: bytes) -> bool:
    """Whether two files code the same pixels: their entropy-coded streams are identical."""
    sa, sb = container.unpack(a).streams, container.unpack(b).streams
    return (sa.hyper, sa.latent, sa.alpha) == (sb.hyper, sb.latent, sb.alpha)


# -- not images ------------------------------------------------------------------------------

PNG = encoded(Image.fromarray(RGB), "PNG")
JPEG = encoded(Image.fromarray(RGB), "JPEG", quality=90)
BROKEN = {
    "text": b"this is not an image\n",
    "empty": b"",
    "png-half": PNG[:len(PNG) // 2],
    "png-header-only": PNG[:33],
    "jpeg-half": JPEG[:len(JPEG) // 2],
    "jpeg-soi-only": JPEG[:2],
}


@pytest.mark.parametrize("name", BROKEN)
def test_broken_inputs_raise_image_error(codec, name):
    with pytest.raises(ImageError, match="image"):
        codec.compress(BROKEN[name])


@pytest.mark.parametrize("name", BROKEN)
def test_broken_inputs_in_the_cli(tiny_weights, tmp_path, name):
    source = tmp_path / f"{name}.png"
    source.write_bytes(BROKEN[name])
    result = cli_tiny("compress", str(source), "-o", str(tmp_path / "out.aec"))
    assert name in one_line_error(result)
    assert not (tmp_path / "out.aec").exists()


def test_broken_input_on_stdin(tiny_weights):
    result = cli_tiny("compress", "-", "-o", "-", input=b"\x89PNG\r\n\x1a\n")
    one_line_error(result)


def test_lazily_opened_broken_image_object(codec):
    image = Image.open(io.BytesIO(BROKEN["png-half"]))
    with pytest.raises(ImageError):
        codec.compress(image)


@pytest.mark.parametrize("array", [RGB.astype(np.float32), RGB > 0, np.zeros((4, 4, 5), np.uint8)])
def test_unusable_arrays(codec, array):
    with pytest.raises(ImageError):
        codec.compress(array)


# -- sizes and modes -------------------------------------------------------------------------


@pytest.mark.parametrize("shape", [(1, 1), (1, 19), (23, 1), (2, 3), (17, 33), (63, 65)])
def test_small_and_odd_sizes(codec, shape):
    out = codec.decompress(codec.compress(photo_like(*shape), quality=60))
    assert out.size == (shape[1], shape[0])


def test_grey_and_grey_alpha(codec):
    alpha = (np.arange(24 * 20) % 256).reshape(24, 20).astype(np.uint8)
    grey = codec.decompress(codec.compress(encoded(Image.fromarray(RGB[..., 0]), "PNG")))
    la = codec.decompress(codec.compress(encoded(Image.fromarray(np.dstack([RGB[..., 0], alpha]), "LA"), "PNG")))
    assert grey.mode == "L" and la.mode == "LA"
    assert np.array_equal(np.asarray(la)[..., 1], alpha)


def test_rgba_alpha_is_exact_from_a_file(codec):
    alpha = np.random.default_rng(3).integers(0, 256, (24, 20), dtype=np.uint8)
    out = codec.decompress(codec.compress(encoded(Image.fromarray(np.dstack([RGB, alpha])), "PNG")))
    assert out.mode == "RGBA" and np.array_equal(np.asarray(out)[..., 3], alpha)


def test_palette_without_transparency_codes_its_colours(codec):
    palette = Image.fromarray(RGB).quantize(16)
    data = codec.compress(encoded(palette, "PNG"))
    assert container.read_header(data).layout == "RGB"
    assert same_pixels_coded(data, codec.compress(np.asarray(palette.convert("RGB"))))


def test_grey_palette_comes_back_grey(codec):
    out = codec.decompress(codec.compress(encoded(Image.fromarray(RGB[..., 1]).convert("P"), "PNG")))
    assert out.mode == "L"


def test_palette_with_transparency_keeps_exact_alpha(codec):
    palette = Image.fromarray(RGB).quantize(16)
    indexes = np.asarray(palette)
    out = codec.decompress(codec.compress(encoded(palette, "PNG", transparency=int(indexes[0, 0]))))
    assert out.mode == "RGBA"
    assert np.array_equal(np.asarray(out)[..., 3], np.where(indexes == indexes[0, 0], 0, 255))


@pytest.mark.parametrize("fmt", ["PNG", "TIFF"])
def test_sixteen_bit_file_is_reduced_with_a_warning(codec, tiny_weights, tmp_path, fmt):
    deep = Image.fromarray((np.arange(24 * 20).reshape(24, 20) * 130).astype(np.uint16))
    source = tmp_path / f"deep.{fmt.lower()}"
    deep.save(source, fmt)
    encoded = codec.encode(source)
    out = codec.decompress(encoded.data)
    assert out.mode == "L" and any("8 bits" in w for w in encoded.warnings)
    result = cli_tiny("compress", str(source), "-o", str(tmp_path / "deep.aec"))
    assert result.exit_code == 0 and "aecodec: warning:" in result.stderr and "8 bits" in result.stderr


def test_cmyk_jpeg_is_converted_to_rgb(codec):
    cmyk = encoded(Image.fromarray(RGB).convert("CMYK"), "JPEG", quality=95)
    data = codec.compress(cmyk)
    assert container.read_header(data).layout == "RGB"
    assert same_pixels_coded(data, codec.compress(np.asarray(Image.open(io.BytesIO(cmyk)).convert("RGB"))))


@pytest.mark.parametrize("fmt", ["GIF", "WEBP"])
def test_animation_codes_the_first_frame_with_a_warning(codec, tiny_weights, tmp_path, fmt):
    frames = [Image.fromarray(photo_like(24, 20, seed=s)) for s in range(3)]
    animation = encoded(frames[0], fmt, save_all=True, append_images=frames[1:], duration=100)
    assert Image.open(io.BytesIO(animation)).n_frames == 3
    result = codec.encode(animation)
    data = result.data
    assert any("3 frames" in w for w in result.warnings)
    first = Image.open(io.BytesIO(animation))
    assert same_pixels_coded(data, codec.compress(np.asarray(first.convert("RGB"))))
    source = tmp_path / f"anim.{fmt.lower()}"
    source.write_bytes(animation)
    result = cli_tiny("compress", str(source), "-o", str(tmp_path / "anim.aec"))
    assert result.exit_code == 0 and "3 frames" in result.stderr


@pytest.mark.parametrize("orientation", [3, 6, 8])
def test_exif_orientation_is_applied(codec, orientation):
    exif = Image.Exif()
    exif[0x0112] = orientation
    jpeg = encoded(Image.fromarray(RGB), "JPEG", quality=95, exif=exif)
    upright = ImageOps.exif_transpose(Image.open(io.BytesIO(jpeg)))
    data = codec.compress(jpeg)
    assert same_pixels_coded(data, codec.compress(np.asarray(upright)))
    out = codec.decompress(data)
    assert out.size == upright.size and out.getexif().get(0x0112, 1) == 1


def test_icc_profile_is_kept(codec):
    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    out = codec.decompress(codec.compress(encoded(Image.fromarray(RGB), "JPEG", icc_profile=icc)))
    assert out.info["icc_profile"] == icc


def test_icc_profile_for_other_colours_is_dropped_with_a_warning(codec):
    lab = ImageCms.ImageCmsProfile(ImageCms.createProfile("LAB")).tobytes()
    result = codec.encode(encoded(Image.fromarray(RGB), "PNG", icc_profile=lab))
    assert "icc_profile" not in codec.decompress(result.data).info and any("ICC" in w for w in result.warnings)


# -- Pillow's decompression-bomb limit -------------------------------------------------------


@pytest.mark.parametrize("limit", [300, 100])  # 480 pixels: Pillow warns above the limit, refuses above twice it
def test_decompression_bomb_limit_is_a_clear_error_that_allow_large_lifts(codec, monkeypatch, limit):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", limit)
    with pytest.raises(ImageError, match="allow.large"):
        codec.compress(PNG)
    assert codec.decompress(codec.compress(PNG, allow_large=True), allow_large=True).size == (20, 24)
    assert Image.MAX_IMAGE_PIXELS == limit  # lifted for that call only


def test_decompression_bomb_limit_in_the_cli(tiny_weights, tmp_path, monkeypatch):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 300)
    source = tmp_path / "big.png"
    source.write_bytes(PNG)
    result = cli_tiny("compress", str(source), "-o", str(tmp_path / "a.aec"))
    assert "--allow-large" in one_line_error(result)
    result = cli_tiny("compress", str(source), "-o", str(tmp_path / "a.aec"), "--allow-large")
    assert result.exit_code == 0 and (tmp_path / "a.aec").exists()


@pytest.mark.parametrize("size", [(70000, 8), (20000, 20000)])
def test_too_large_for_the_format_is_refused_before_loading(codec, size):
    png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", *size, 8, 2, 0, 0, 0)) \
        + chunk(b"IDAT", zlib.compress(bytes(1000))) + chunk(b"IEND", b"")  # claims far more than it holds
    tracemalloc.start()
    try:
        with pytest.raises(ImageError, match="outside|exceeds"):
            codec.compress(png, allow_large=True)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 16 << 20


def chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
