"""The AEC Pillow plugin, tested the way Pillow tests its own formats (Tests/test_file_qoi.py)."""

import io
import shutil

import numpy as np
import pytest
from PIL import Image, UnidentifiedImageError

import aecodec  # noqa: F401  registers the plugin
from aecodec import bundle, container
from aecodec.bench.graphics import text_on_blue
from aecodec.codec import Codec
from aecodec.pillow_plugin import AecImageFile, open_with
from helpers import TINY_WEIGHTS, photo_like


@pytest.fixture(scope="module")
def rgb() -> np.ndarray:
    return photo_like(48, 64)


@pytest.fixture(scope="module")
def aec(codec, rgb) -> bytes:
    return codec.compress(rgb, quality=60)


def test_registered():
    assert Image.EXTENSION[".aec"] == "AEC"
    assert Image.MIME["AEC"] == "image/x-aec"
    assert "AEC" in Image.SAVE and "AEC" in Image.OPEN


def test_sanity(tmp_path, codec, rgb, aec):
    path = tmp_path / "photo.aec"
    Image.fromarray(rgb).save(path, quality=60, weights=TINY_WEIGHTS)  # format from the extension
    assert path.read_bytes() == aec
    with open_with(path, weights=TINY_WEIGHTS) as image:
        assert (image.format, image.size, image.mode) == ("AEC", (64, 48), "RGB")
        image.load()
        assert np.array_equal(np.asarray(image), np.asarray(codec.decompress(aec)))


def test_open_reads_only_the_header(monkeypatch, codec, aec):
    calls = []
    decompress = Codec.decompress
    monkeypatch.setattr(Codec, "decompress",
                        lambda self, data, **options: calls.append(len(data)) or decompress(self, data, **options))
    image = open_with(io.BytesIO(aec), codec=codec)
    assert (image.size, image.mode) == ((64, 48), "RGB") and calls == []
    image.load()
    assert calls == [len(aec)]
    image.tobytes()
    assert calls == [len(aec)]  # decoded once


def test_plain_open_decodes_with_the_installed_model(monkeypatch, tmp_path, codec, aec):
    shutil.copytree(TINY_WEIGHTS, tmp_path / "tiny")
    monkeypatch.setattr(bundle, "default_weights_root", lambda: tmp_path)
    with Image.open(io.BytesIO(aec)) as image:
        assert np.array_equal(np.asarray(image), np.asarray(codec.decompress(aec)))


def test_plain_open_names_a_missing_model(monkeypatch, tmp_path, aec):
    monkeypatch.setattr(bundle, "default_weights_root", lambda: tmp_path)
    image = Image.open(io.BytesIO(aec))
    with pytest.raises(OSError, match=f"needs model {aec[7:15].hex()}, which is not installed"):
        image.load()


def test_invalid_magic(aec):
    bad = b"AEX" + aec[3:]
    with pytest.raises(SyntaxError, match="not an AEC file"):
        AecImageFile(io.BytesIO(bad))
    with pytest.raises(UnidentifiedImageError):
        Image.open(io.BytesIO(bad))


def test_invalid_header_field(aec):
    with pytest.raises(SyntaxError, match="format version 9"):
        AecImageFile(io.BytesIO(aec[:4] + b"\x09" + aec[5:]))


@pytest.mark.parametrize("length", [0, 3, 4, 20, 32, 33, 40, -100, -5, -1])
def test_truncated(codec, aec, length):
    """Every cut either fails to open (not identified) or fails to load, always as an OSError."""
    with pytest.raises(OSError, match="cannot identify image file|cannot decode AEC file: stream lengths"):
        with open_with(io.BytesIO(aec[:length]), codec=codec) as image:
            image.load()


def test_corrupt_body_fails_at_load(codec, aec):
    damaged = bytearray(aec)
    damaged[len(aec) // 2] ^= 0xFF
    image = open_with(io.BytesIO(bytes(damaged)), codec=codec)
    with pytest.raises(OSError, match="CRC mismatch"):
        image.load()


def test_save_with_quality(rgb):
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, format="AEC", quality=30, weights=TINY_WEIGHTS)
    assert container.read_header(buffer.getvalue()).quality == 30


def test_save_without_the_detail_layer(codec):
    sharp = text_on_blue()[:48, :64]
    files = []
    for detail in (True, False):
        buffer = io.BytesIO()
        Image.fromarray(sharp).save(buffer, format="AEC", quality=95, codec=codec, detail=detail)
        files.append(buffer.getvalue())
    assert (files[0][4], files[1][4]) == (2, 1)
    assert files[1] == codec.compress(sharp, quality=95, detail=False)


def test_save_with_target_bpp(codec, rgb):
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, format="AEC", target_bpp=1.0, codec=codec)
    assert len(buffer.getvalue()) * 8 / (64 * 48) <= 1.0


def test_save_refuses_conflicting_options(codec, rgb):
    with pytest.raises(ValueError, match="weights or codec"):
        Image.fromarray(rgb).save(io.BytesIO(), format="AEC", codec=codec, weights=TINY_WEIGHTS)
    with pytest.raises(ValueError, match="at most one"):
        Image.fromarray(rgb).save(io.BytesIO(), format="AEC", codec=codec, quality=50, target_bpp=1.0)


def test_mode_and_exif_travel(codec, rgb):
    rgba = Image.fromarray(np.dstack([rgb, np.full(rgb.shape[:2], 200, np.uint8)]))
    exif = Image.Exif()
    exif[0x010F] = "aecodec-test-camera"
    buffer = io.BytesIO()
    rgba.save(buffer, format="AEC", codec=codec, exif=exif)
    buffer.seek(0)
    with open_with(buffer, codec=codec) as image:
        assert image.mode == "RGBA"
        image.load()
        assert image.getexif()[0x010F] == "aecodec-test-camera"
        assert (np.asarray(image)[..., 3] == 200).all()


def test_save_passes_detail_and_deblock_on(codec):
    image = Image.fromarray(photo_like(40, 56))
    for options, version in (({}, 2), ({"detail": False, "deblock": False}, 1)):
        buffer = io.BytesIO()
        image.save(buffer, format="AEC", codec=codec, quality=20, **options)
        assert buffer.getvalue()[4] == version, options


def test_save_warns_about_what_it_changed(codec):
    deep = Image.fromarray((np.arange(48 * 64).reshape(48, 64) * 20).astype(np.uint16))
    with pytest.warns(UserWarning, match="reduced to 8 bits"):
        deep.save(io.BytesIO(), format="AEC", codec=codec)


def test_open_shows_the_header_in_info(codec, aec):
    with Image.open(io.BytesIO(aec)) as image:  # not loaded: the header is all that was read
        assert image.info == {"format_version": aec[4], "model_id": codec.model_id.hex(), "quality": 60.0}
        assert image.info == {k: v for k, v in aecodec.info(aec).items() if k in image.info}


def test_open_with_allow_large_lifts_pillows_limit_for_that_image(monkeypatch, codec, aec):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 64 * 48 // 2 - 1)  # the image is over twice the limit
    with pytest.raises(Image.DecompressionBombError):
        open_with(io.BytesIO(aec), codec=codec)
    with open_with(io.BytesIO(aec), codec=codec, allow_large=True) as image:
        assert Image.MAX_IMAGE_PIXELS == 64 * 48 // 2 - 1  # lifted for this open only
        assert np.array_equal(np.asarray(image), np.asarray(codec.decompress(aec, allow_large=True)))
