"""Corrupt, truncated and crafted .aec files: a FormatError (or a decoded image), never anything else.

The CRC catches almost every random change, so most tests here recompute it after
mutating: that is what reaches the entropy decoder, the alpha PNG and the networks.
bench/fuzz_decoder.py runs the same idea for hundreds of thousands of cases.
"""

from __future__ import annotations

import io
import struct
import tracemalloc
import zlib

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from aecodec import container, entropy, transform
from aecodec.bench.graphics import text_on_blue
from aecodec.container import FormatError
from helpers import TINY, cli, fix_crc, join_streams, one_line_error, photo_like, restream, split_streams

pytestmark = pytest.mark.filterwarnings("error")  # a RuntimeWarning from garbage numbers is a bug too
FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def set_field(data: bytes, offset: int, fmt: str, value: int) -> bytes:
    out = bytearray(data)
    struct.pack_into(fmt, out, offset, value)
    return fix_crc(out)


@pytest.fixture(scope="module")
def files(codec) -> dict[str, bytes]:
    rgb = photo_like(16, 16, seed=2)
    alpha = (np.arange(256) % 13 * 19).reshape(16, 16).astype(np.uint8)
    exif = Image.Exif()
    exif[0x010F] = "hostile"
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, "PNG", exif=exif)
    # Version 1 files (the detail layer and the deblocking filter left out), and version 2 files with
    # a detail stream and with the deblocking flag.
    v1 = {"detail": False, "deblock": False}
    return {"rgb": codec.compress(rgb, quality=50, **v1),
            "rgba": codec.compress(np.dstack([rgb, alpha]), quality=50, **v1),
            "exif": codec.compress(buffer.getvalue(), quality=50, **v1),
            "wide": codec.compress(photo_like(20, 130), **v1),
            "detail": codec.compress(text_on_blue()[:32, :48], quality=95),
            "deblocked": codec.compress(photo_like(40, 72), quality=10)}


def decodes_or_format_error(codec, data: bytes) -> None:
    try:
        header = container.read_header(data)
    except FormatError:
        header = None
    if header is not None and header.width * header.height > 1 << 20:
        return  # a valid, merely slow, large declared size: bench/fuzz_decoder.py counts these too
    try:
        image = codec.decompress(data)
    except FormatError:
        return
    assert image.size == (header.width, header.height)


# -- the container ------------------------------------------------------------------------------


def test_truncated_at_every_length(codec, files):
    for name in ("rgb", "rgba", "detail"):
        data = files[name]
        for length in range(len(data)):
            with pytest.raises(FormatError):
                codec.decompress(data[:length])


def test_truncated_with_crc_fixed_up(codec, files):
    data = files["rgba"]
    for length in range(4, len(data) - 4):  # len - 4 would be the intact file
        with pytest.raises(FormatError):
            codec.decompress(fix_crc(data[:length] + b"\0\0\0\0"))


@pytest.mark.parametrize("magic", [b"", b"AEC", b"AEC\x1b", b"\x89PNG", b"\0\0\0\0"])
def test_wrong_magic(codec, files, magic):
    with pytest.raises(FormatError, match="magic"):
        codec.decompress(magic + files["rgb"][4:] if magic else b"")


@pytest.mark.parametrize("version", [0, 3, 255])
def test_unknown_version(codec, files, version):
    with pytest.raises(FormatError, match=f"version {version}"):
        codec.decompress(set_field(files["rgb"], 4, "<B", version))


def test_unknown_model_id(codec, files):
    with pytest.raises(FormatError, match="not installed"):
        codec.decompress(set_field(files["rgb"], 7, "<Q", 0x1122334455667788))


@pytest.mark.parametrize("width,height", [(2**31, 2**31), (2**32 - 1, 1), (0, 16), (16, 0), (65535, 65535)])
def test_absurd_dimensions_refused_before_allocating(codec, files, width, height):
    data = set_field(set_field(files["rgb"], 15, "<I", width), 19, "<I", height)
    tracemalloc.start()
    try:
        with pytest.raises(FormatError, match="dimensions|exceeds"):
            codec.decompress(data)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 1 << 20


@pytest.mark.parametrize("field", [25, 29, 33])
@pytest.mark.parametrize("delta", [-1, 1, 2**31, 2**32 - 1])
def test_stream_lengths_that_disagree_with_the_file(codec, files, field, delta):
    data = files["rgba"]
    (length,) = struct.unpack_from("<I", data, field)
    with pytest.raises(FormatError, match="lengths add up"):
        codec.decompress(set_field(data, field, "<I", (length + delta) % 2**32))


def test_crc_mismatch(codec, files):
    data = bytearray(files["rgb"])
    data[-10] ^= 0x40
    with pytest.raises(FormatError, match="CRC"):
        codec.decompress(bytes(data))


# -- behind a valid CRC: entropy decoding, numbers, side data -----------------------------------


@pytest.mark.parametrize("stream", ["hyper", "latent"])
def test_escaped_values_outside_the_coders_range(codec, files, stream):
    parsed = container.unpack(files["rgb"])
    hyper, _, residual = transform.decode_latent(codec.model, parsed)
    target = hyper if stream == "hyper" else residual
    target.reshape(-1)[0] = entropy.MAX_ESCAPE
    data = restream(codec, files["rgb"], hyper, residual)
    with pytest.raises(FormatError, match="too large"):
        codec.decompress(data)


@pytest.mark.parametrize("value", [1 << 15, entropy.MAX_ESCAPE - 1, -(entropy.MAX_ESCAPE - 1)])
def test_huge_hyper_latent_is_clamped_by_the_exact_synthesis(codec, files, value):
    hyper, _, residual = transform.decode_latent(codec.model, container.unpack(files["wide"]))
    data = restream(codec, files["wide"], np.full_like(hyper, value), np.zeros_like(residual))
    assert codec.decompress(data).size == (130, 20)


@pytest.mark.parametrize("name", ["rgb", "deblocked"])  # the filter's arithmetic on infinities too
@pytest.mark.parametrize("value", [1 << 20, entropy.MAX_ESCAPE - 1, -(entropy.MAX_ESCAPE - 1)])
def test_huge_latent_gives_clipped_pixels_not_nan_warnings(codec, files, value, name):
    parsed = container.unpack(files[name])
    _, _, residual = transform.decode_latent(codec.model, parsed)
    pixels = np.asarray(codec.decompress(restream(codec, files[name], residual=np.full_like(residual, value))))
    assert pixels.dtype == np.uint8 and pixels.shape == (parsed.header.height, parsed.header.width, 3)


@pytest.mark.parametrize("stream", [0, 1])
def test_leftover_entropy_coded_data(codec, files, stream):
    header, length_at, streams = split_streams(files["rgb"])
    (words,) = struct.unpack_from("<I", streams[stream])
    streams[stream] = struct.pack("<I", words + 1) + streams[stream][4:4 + 4 * words] + b"\x01\0\0\0" \
        + streams[stream][4 + 4 * words:]
    with pytest.raises(FormatError):
        codec.decompress(join_streams(header, length_at, streams))


def test_alpha_png_declaring_a_huge_image_is_not_loaded(codec, files):
    huge = bytearray(_png_header(60000, 60000))
    header, length_at, streams = split_streams(files["rgba"])
    streams[2] = bytes(huge)
    tracemalloc.start()
    try:
        with pytest.raises(FormatError, match="alpha"):
            codec.decompress(join_streams(header, length_at, streams))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 64 << 20


@pytest.mark.parametrize("alpha", [b"", b"GIF89a", "rgb-png", "wrong-size"])
def test_alpha_stream_of_the_wrong_kind(codec, files, alpha):
    if alpha in ("rgb-png", "wrong-size"):
        buffer = io.BytesIO()
        Image.new(*(("RGB", (16, 16)) if alpha == "rgb-png" else ("L", (8, 16)))).save(buffer, "PNG")
        alpha = buffer.getvalue()
    header, length_at, streams = split_streams(files["rgba"])
    streams[2] = alpha
    with pytest.raises(FormatError, match="alpha"):
        codec.decompress(join_streams(header, length_at, streams))


def test_malformed_exif_block(codec, files):
    header, length_at, streams = split_streams(files["exif"])
    streams[-1] = b"not a TIFF block"
    with pytest.raises(FormatError, match="EXIF"):
        codec.decompress(join_streams(header, length_at, streams))


def test_icc_profile_for_the_wrong_colours(codec, files):
    from PIL import ImageCms
    lab = ImageCms.ImageCmsProfile(ImageCms.createProfile("LAB")).tobytes()
    parsed = container.unpack(files["rgb"])
    data = container.pack(parsed.header, container.Streams(parsed.streams.hyper, parsed.streams.latent, icc=lab))
    with pytest.raises(FormatError, match="ICC"):
        codec.decompress(data)


# -- property-based: mutate valid files --------------------------------------------------------


@FUZZ
@given(name=st.sampled_from(["rgb", "rgba", "exif", "detail", "deblocked"]), fix=st.booleans(),
       flips=st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 7)), min_size=1, max_size=8))
def test_bit_flips(codec, files, name, fix, flips):
    data = bytearray(files[name])
    for position, bit in flips:
        data[position % len(data)] ^= 1 << bit
    decodes_or_format_error(codec, fix_crc(data) if fix else bytes(data))


@FUZZ
@given(name=st.sampled_from(["rgb", "rgba", "exif", "detail", "deblocked"]), fix=st.booleans(),
       start=st.integers(0, 10_000), cut=st.integers(0, 64), insert=st.binary(max_size=64))
def test_splices(codec, files, name, fix, start, cut, insert):
    data = files[name]
    start %= len(data) + 1
    data = data[:start] + insert + data[start + cut:]
    decodes_or_format_error(codec, fix_crc(data) if fix and len(data) >= 4 else data)


@FUZZ
@given(name=st.sampled_from(["rgb", "rgba", "exif", "detail", "deblocked"]), stream=st.integers(0, 4), data=st.data())
def test_stream_rewrites_with_valid_lengths_and_crc(codec, files, name, stream, data):
    header, length_at, streams = split_streams(files[name])
    stream %= len(streams)
    old = streams[stream]
    choice = data.draw(st.sampled_from(["flip", "replace", "truncate", "extend"]))
    if choice == "flip" and old:
        at = data.draw(st.integers(0, len(old) - 1))
        new = old[:at] + bytes([old[at] ^ data.draw(st.integers(1, 255))]) + old[at + 1:]
    elif choice == "truncate":
        new = old[:data.draw(st.integers(0, len(old)))]
    elif choice == "extend":
        new = old + data.draw(st.binary(min_size=1, max_size=32))
    else:
        new = data.draw(st.binary(max_size=64))
    streams[stream] = new
    decodes_or_format_error(codec, join_streams(header, length_at, streams))


@FUZZ
@given(field=st.sampled_from([(4, "<B"), (5, "<B"), (6, "<B"), (15, "<I"), (19, "<I"), (23, "<H"), (25, "<I"),
                              (29, "<I"), (33, "<I")]), value=st.integers(0, 2**32 - 1))
def test_header_fields_with_valid_crc(codec, files, field, value):
    offset, fmt = field
    value &= (1 << 8 * struct.calcsize(fmt)) - 1
    decodes_or_format_error(codec, set_field(files["rgba"], offset, fmt, value))


@FUZZ
@given(hyper_changes=st.lists(st.tuples(st.integers(0, 10**6), st.integers(-2**30, 2**30)), max_size=4),
       latent_changes=st.lists(st.tuples(st.integers(0, 10**6), st.integers(-2**30, 2**30)), max_size=4))
def test_crafted_integers_with_valid_crc(codec, files, hyper_changes, latent_changes):
    hyper, _, residual = transform.decode_latent(codec.model, container.unpack(files["wide"]))
    for array, changes in ((hyper, hyper_changes), (residual, latent_changes)):
        for position, value in changes:
            array.reshape(-1)[position % array.size] = value
    decodes_or_format_error(codec, restream(codec, files["wide"], hyper, residual))


# -- the command line ------------------------------------------------------------------------


@pytest.mark.parametrize("damage", ["truncate", "crc", "magic", "empty"])
@pytest.mark.parametrize("streaming", [False, True])
def test_cli_reports_corrupt_files_in_one_line(files, tmp_path, damage, streaming):
    data = files["rgb"]
    data = {"truncate": data[:30], "crc": data[:-1] + bytes([data[-1] ^ 1]), "magic": b"XXXX" + data[4:],
            "empty": b""}[damage]
    bad = tmp_path / "bad.aec"
    bad.write_bytes(data)
    result = cli("decompress", "-" if streaming else bad, *TINY, "-o", tmp_path / "out.png", input=data)
    one_line_error(result)
    assert [p.name for p in tmp_path.iterdir()] == ["bad.aec"]  # no output, and no temporary file left behind


def test_cli_info_on_a_corrupt_file(files, tmp_path):
    bad = tmp_path / "bad.aec"
    bad.write_bytes(files["rgb"][:20])
    assert "truncated" in one_line_error(cli("info", bad))


# -- helpers ---------------------------------------------------------------------------------


def _png_header(width: int, height: int) -> bytes:
    """A PNG signature, an IHDR for an 8-bit greyscale image of this size, and no pixel data."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    chunk = struct.pack(">I", len(ihdr)) + b"IHDR" + ihdr + struct.pack(">I", zlib.crc32(b"IHDR" + ihdr))
    return b"\x89PNG\r\n\x1a\n" + chunk
