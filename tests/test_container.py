import zlib

import pytest

from aecodec import container
from aecodec.container import FormatError, Header, Streams


def sample(layout="RGB", **streams) -> bytes:
    header = Header(layout, bytes(range(8)), 33, 17, 57.25)
    defaults = {"hyper": b"hyper", "latent": b"latent-bytes"}
    if layout in ("RGBA", "LA"):
        defaults["alpha"] = b"alpha"
    defaults.update(streams)
    return container.pack(header, Streams(**defaults))


def test_round_trip_keeps_every_field():
    data = sample("RGBA", icc=b"icc-profile", exif=b"Exif\0\0data")
    parsed = container.unpack(data)
    assert parsed.header == Header("RGBA", bytes(range(8)), 33, 17, 57.25)
    assert parsed.streams == Streams(b"hyper", b"latent-bytes", b"alpha", b"icc-profile", b"Exif\0\0data")
    assert sum(parsed.stream_sizes.values()) == len(data)


def test_read_header_needs_only_the_header():
    data = sample()
    assert container.read_header(data[:40]).width == 33


def test_optional_streams_cost_nothing_when_absent():
    assert len(sample()) == 33 + len(b"hyper") + len(b"latent-bytes") + 4


WITH_ICC = sample(icc=b"icc")


@pytest.mark.parametrize("cut", range(len(WITH_ICC)))
def test_every_truncation_is_refused(cut):
    with pytest.raises(FormatError):
        container.unpack(WITH_ICC[:cut])


def test_bad_magic():
    with pytest.raises(FormatError, match="magic"):
        container.unpack(b"PNG!" + sample()[4:])


def test_unknown_version_names_the_version():
    data = bytearray(sample())
    data[4] = 9
    with pytest.raises(FormatError, match="version 9"):
        container.unpack(bytes(data))


def test_crc_mismatch():
    data = bytearray(sample())
    data[-6] ^= 0x01
    with pytest.raises(FormatError, match="CRC"):
        container.unpack(bytes(data))


def test_absurd_dimensions_refused_before_anything_else():
    data = bytearray(sample())
    data[15:19] = (1 << 31).to_bytes(4, "little")
    data[19:23] = (1 << 31).to_bytes(4, "little")
    body = bytes(data[:-4])
    with pytest.raises(FormatError, match="dimensions"):
        container.unpack(body + zlib.crc32(body).to_bytes(4, "little"))


def test_lengths_disagreeing_with_file_size():
    data = bytearray(sample())
    data[25:29] = (1000).to_bytes(4, "little")
    with pytest.raises(FormatError, match="add up"):
        container.unpack(bytes(data))


def test_quality_out_of_range_is_a_value_error():
    with pytest.raises(ValueError):
        container.pack(Header("RGB", b"\0" * 8, 1, 1, 0.5), Streams(b"", b""))
