import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from aecodec import container
from aecodec.codec import Codec
from aecodec.container import FormatError
from aecodec.metrics import psnr
from helpers import TINY_WEIGHTS, photo_like


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


def png_16bit_rgb(rgb16: np.ndarray) -> bytes:
    """A 16-bit-per-sample RGB PNG, which Pillow cannot write: Pillow opens it as mode RGB."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    h, w, _ = rgb16.shape
    rows = b"".join(b"\x00" + row.astype(">u2").tobytes() for row in rgb16)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 16, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))


def test_sixteen_bit_rgb_is_reduced_with_a_warning(codec, tmp_path):
    deep = photo_like(40, 56).astype(np.uint16) * 257
    path = tmp_path / "deep.png"
    path.write_bytes(png_16bit_rgb(deep))
    with Image.open(path) as opened:
        assert opened.mode == "RGB"  # nothing in the mode says 16 bits
    for source in (path, path.read_bytes(), Image.open(path)):
        assert codec.encode(source).warnings == ("16-bit RGB image reduced to 8 bits per sample",)
    assert codec.encode(photo_like(40, 56)).warnings == ()


def test_target_size_may_be_written_as_on_the_command_line(codec, image):
    import aecodec
    assert len(codec.compress(image, target_size="0.3KB")) <= 300
    data = aecodec.compress(image, target_size="0.3kb", weights=TINY_WEIGHTS)
    assert len(data) <= 300 and container.read_header(data).quality < 100


def test_an_unreachable_bpp_target_is_reported_in_bpp(codec, image):
    from aecodec.ratecontrol import TargetError
    with pytest.raises(TargetError, match=r"^target of 0\.01 bpp is unreachable: .* is [0-9.]+ bpp$"):
        codec.compress(image, target_bpp=0.01)


def test_an_aec_file_as_input_is_decoded_and_coded_again_with_a_warning(codec, image):
    first = codec.compress(image, quality=60)
    again = codec.encode(first, quality=60)  # the file names the tiny model, which is not installed: codec decodes
    assert again.warnings == ("the input is already an .aec file: it was decoded and coded again, "
                              "losing quality twice",)
    assert codec.decompress(again.data).size == (image.shape[1], image.shape[0])


@pytest.fixture
def small_pixel_limit(monkeypatch, image):
    """Pillow's decompression-bomb limit just below the test image, as a large photo would meet the real one."""
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", image.shape[0] * image.shape[1] - 1)


def test_decoding_refuses_more_pixels_than_pillow_allows(codec, image, small_pixel_limit, monkeypatch):
    import aecodec
    data = codec.compress(image)
    monkeypatch.setattr(container, "unpack", None)  # refused from the header, before any other work
    for decode in (codec.decompress, lambda d: aecodec.decompress(d, weights=TINY_WEIGHTS)):
        with pytest.raises(aecodec.PixelLimitError, match=r"image of 112x80 pixels is above the decompression-bomb"):
            decode(data)


def test_allow_large_lifts_the_limit_for_decoding(codec, image, small_pixel_limit):
    import aecodec
    data = codec.compress(image, allow_large=True)
    assert codec.decompress(data, allow_large=True).size == (112, 80)
    assert aecodec.decompress(data, weights=TINY_WEIGHTS, allow_large=True).size == (112, 80)
    assert Image.MAX_IMAGE_PIXELS == 112 * 80 - 1  # lifted for the call only


def test_threads_sharing_a_codec_code_and_decode_as_one_thread_does():
    from concurrent.futures import ThreadPoolExecutor

    shared = Codec(TINY_WEIGHTS, threads=1)
    images = [photo_like(48 + 16 * i, 64, seed=i) for i in range(6)]
    alone = [shared.compress(image, quality=20 + 10 * i) for i, image in enumerate(images)]
    with ThreadPoolExecutor(6) as pool:
        together = list(pool.map(lambda i: shared.compress(images[i], quality=20 + 10 * i), range(6)))
        decoded = list(pool.map(lambda data: np.asarray(shared.decompress(data)), together))
    assert together == alone
    assert all(np.array_equal(d, np.asarray(shared.decompress(a))) for d, a in zip(decoded, alone))


def test_threads_meeting_another_model_load_it_once(monkeypatch):
    """Codec.for_model fills a registry on first use: a lock makes the threads that race there share one load."""
    import threading
    import time
    from concurrent.futures import ThreadPoolExecutor

    from aecodec import codec as codec_module

    shared, calls, lock = Codec(TINY_WEIGHTS, threads=1), [], threading.Lock()

    def slow_find(model_id):
        with lock:
            calls.append(model_id)
        time.sleep(0.05)  # long enough for every thread to arrive while the first is loading
        return TINY_WEIGHTS

    monkeypatch.setattr(codec_module, "find_bundle", slow_find)
    with ThreadPoolExecutor(8) as pool:
        found = list(pool.map(lambda _: shared.for_model(b"\x01" * 8), range(8)))
    assert len(calls) == 1 and all(other is found[0] for other in found) and found[0] is not shared


def test_threads_asking_for_the_refinement_load_it_once(monkeypatch):
    import threading
    import time
    from concurrent.futures import ThreadPoolExecutor

    from aecodec import codec as codec_module

    shared, calls, lock = Codec(TINY_WEIGHTS, threads=1), [], threading.Lock()

    def slow_load(bundle, threads):
        with lock:
            calls.append(bundle)
        time.sleep(0.05)
        return object()

    monkeypatch.setattr(codec_module, "load_refiner", slow_load)
    with ThreadPoolExecutor(8) as pool:
        found = list(pool.map(lambda _: shared.refiner(), range(8)))
    assert len(calls) == 1 and all(refiner is found[0] for refiner in found)


def test_the_detail_pass_reuses_the_coded_latent(monkeypatch):
    """An encode with a detail layer runs the hyper-synthesis once and decodes no stream: the synthesis
    works from what coding already made (transform.Coded.rebuilt), not from the file decoded again."""
    from aecodec import entropy, fixedpoint
    from aecodec.bench.graphics import text_on_blue

    codec = Codec(TINY_WEIGHTS, threads=1)
    counts = {"entropy_parameters": 0, "scale_indices": 0, "decode": 0}
    for module, name in ((fixedpoint, "entropy_parameters"), (fixedpoint, "scale_indices"), (entropy, "decode")):
        original = getattr(module, name)

        def counted(*args, _original=original, _name=name, **kwargs):
            counts[_name] += 1
            return _original(*args, **kwargs)

        monkeypatch.setattr(module, name, counted)
    rgb = text_on_blue()[:96, :128]
    encoded = codec.encode(rgb, quality=95, timed=True)
    assert container.unpack(encoded.data).streams.detail  # the pass ran and chose corrections
    assert counts == {"entropy_parameters": 1, "scale_indices": 0, "decode": 0}
    assert {"synthesis", "detail", "hyper_synthesis", "entropy_coding"} <= set(encoded.timings)
