import io

import numpy as np
import pytest
from PIL import Image

from aecodec import container
from aecodec.codec import Codec
from aecodec.container import FormatError
from aecodec.metrics import psnr
from helpers import photo_like


@pytest.mark.parametrize("shape", [(1, 1), (1, 37), (37, 1), (65, 129), (64, 64)])
def test_any_size_round_trips(codec, shape):
    rgb = photo_like(*shape)
    out = codec.decompress(codec.compress(rgb, quality=80))
    assert out.size == (shape[1], shape[0]) and out.mode == "RGB"


def test_higher_quality_costs_more_and_looks_better(codec, image):
    sizes, quality = [], []
    for q in (5, 50, 95):
        data = codec.compress(image, quality=q)
        sizes.append(len(data))
        quality.append(psnr(np.asarray(codec.decompress(data)), image))
    assert sizes[0] < sizes[1] < sizes[2]
    assert quality[0] < quality[2]


def test_header_records_quality_to_hundredths(codec, image):
    assert container.read_header(codec.compress(image, quality=42.123)).quality == 42.12


def test_greyscale_comes_back_greyscale(codec, image):
    grey = Image.fromarray(image).convert("L")
    out = codec.decompress(codec.compress(grey))
    assert out.mode == "L" and out.size == grey.size


def test_alpha_is_exact(codec, image):
    alpha = (np.arange(image.shape[0] * image.shape[1]) % 251).reshape(image.shape[:2]).astype(np.uint8)
    rgba = np.dstack([image, alpha])
    out = codec.decompress(codec.compress(rgba))
    assert out.mode == "RGBA"
    assert np.array_equal(np.asarray(out)[..., 3], alpha)


def test_icc_profile_and_exif_travel(codec, image):
    from PIL import ImageCms
    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    pil = Image.fromarray(image)
    exif = Image.Exif()
    exif[0x010F] = "aecodec-test-camera"
    buffer = io.BytesIO()
    pil.save(buffer, format="PNG", icc_profile=icc, exif=exif)
    out = codec.decompress(codec.compress(buffer.getvalue()))
    assert out.info["icc_profile"] == icc
    assert out.getexif()[0x010F] == "aecodec-test-camera"


def test_exif_orientation_is_applied(codec, image):
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG", exif=exif)
    out = codec.decompress(codec.compress(buffer.getvalue()))
    assert out.size == (image.shape[0], image.shape[1])
    assert 0x0112 not in out.getexif()


def test_sixteen_bit_is_reduced_with_a_warning(codec):
    deep = Image.fromarray((np.arange(64 * 64).reshape(64, 64) * 16).astype(np.uint16))
    assert deep.mode.startswith("I;16")
    encoded = codec.encode(deep)
    assert codec.decompress(encoded.data).mode == "L"
    assert any("8 bits" in w for w in encoded.warnings)
    with pytest.warns(UserWarning, match="8 bits"):  # compress, which returns bytes alone, says it aloud
        codec.compress(deep)


def test_target_size_is_met(codec):
    rgb = photo_like(128, 192, seed=3)
    largest = len(codec.compress(rgb, quality=100))
    budget = largest * 2 // 3
    data = codec.compress(rgb, target_size=budget)
    assert len(data) <= budget
    assert container.read_header(data).quality < 100


def test_unreachable_target_says_so(codec, image):
    from aecodec.ratecontrol import TargetError
    with pytest.raises(TargetError, match="unreachable"):
        codec.compress(image, target_size=10)


def test_unknown_model_is_refused_by_name(codec, image):
    data = bytearray(codec.compress(image))
    data[7:15] = bytes.fromhex("0123456789abcdef")
    body = bytes(data[:-4])
    import zlib
    with pytest.raises(FormatError, match="0123456789abcdef"):
        codec.decompress(body + zlib.crc32(body).to_bytes(4, "little"))


def test_tiled_and_whole_decoding_agree(tiny_weights):
    rgb = photo_like(192, 256, seed=5)
    whole, tiled = Codec(tiny_weights), Codec(tiny_weights, tile=4)
    for encoder in (whole, tiled):
        data = encoder.compress(rgb, quality=70)
        a = np.asarray(whole.decompress(data))
        b = np.asarray(tiled.decompress(data))
        assert abs(psnr(a, rgb) - psnr(b, rgb)) < 0.1


def test_unknown_provider_names_every_provider_there_is(tiny_weights):
    with pytest.raises(ValueError, match="'cpu', 'cuda', 'reference'"):
        Codec(tiny_weights, provider="tpu")
