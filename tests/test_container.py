import zlib
from dataclasses import replace

import pytest

from aecodec import container
from aecodec.container import FormatError, Header, Streams
from helpers import fix_crc


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
    assert parsed.header == Header("RGBA", bytes(range(8)), 33, 17, 57.25, version=1)
    assert parsed.streams == Streams(b"hyper", b"latent-bytes", b"alpha", b"icc-profile", b"Exif\0\0data")
    assert sum(parsed.stream_sizes.values()) == len(data)


def test_a_detail_stream_makes_a_version_2_file_and_nothing_else_does():
    plain, with_detail = sample("LA", exif=b"Exif\0\0x"), sample("LA", exif=b"Exif\0\0x", detail=b"detail-bytes")
    assert plain[4] == 1 and with_detail[4] == 2
    parsed = container.unpack(with_detail)
    assert parsed.header.version == 2 and parsed.streams.detail == b"detail-bytes"
    assert parsed.streams.alpha == b"alpha" and parsed.streams.exif == b"Exif\0\0x"
    assert parsed.stream_sizes["detail"] == 12 and sum(parsed.stream_sizes.values()) == len(with_detail)
    assert len(with_detail) == len(plain) + 4 + 12


def with_flags(data: bytes, flags: int) -> bytes:
    """data with flag bits added and its CRC made to match."""
    data = bytearray(data)
    data[6] |= flags
    return fix_crc(data)


def test_version_2_readers_refuse_unknown_flags_too():
    with pytest.raises(FormatError, match="unknown flags 0x14 for format version 2; a newer aecodec may read it"):
        container.unpack(with_flags(sample(detail=b"d"), 16))


def test_the_deblocking_flag_makes_a_version_2_file_and_round_trips():
    header = Header("RGB", bytes(range(8)), 33, 17, 20.0, deblocked=True)
    data = container.pack(header, Streams(b"hyper", b"latent"))
    assert data[4] == 2 and data[6] == container.FLAG_DEBLOCK
    assert container.unpack(data).header == replace(header, version=2)
    assert len(data) == len(sample(hyper=b"hyper", latent=b"latent"))  # a flag, no stream: no bytes
    assert not container.unpack(sample()).header.deblocked


def test_version_1_has_no_deblocking_flag():
    with pytest.raises(FormatError, match="unknown flags 0x08 for format version 1"):
        container.unpack(with_flags(sample(), container.FLAG_DEBLOCK))


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
