"""Reading real-world inputs (imageio.py): the odd files of Pillow's own test images, rebuilt small here.

bench/pillow_images.py runs the real ones; each test below stands for a kind of file that once went wrong.
"""

from __future__ import annotations

import io
import logging
import struct
import threading
import warnings

import numpy as np
import pytest
from PIL import Image

from aecodec import imageio
from helpers import TINY, aecodec_command, only_line, photo_like

# -- files ----------------------------------------------------------------------------------------


def layered_psd(composite: np.ndarray, layers: list[np.ndarray]) -> bytes:
    """An 8-bit RGB Photoshop file: full-size layers, raw channels, and the merged composite Photoshop stores.

    Layout (big-endian): header, empty colour-mode and resource sections, the layer section (records,
    then each layer's channels), then the composite's planar channels.
    """
    height, width = composite.shape[:2]
    assert height * width % 2 == 0, "odd channel sizes need padding, which this writer leaves out"
    header = struct.pack(">4sH6xHIIHH", b"8BPS", 1, 3, height, width, 8, 3)
    record = struct.pack(">4iH", 0, 0, height, width, 3) + b"".join(struct.pack(">hI", c, 2 + height * width)
                                                                    for c in range(3))
    record += b"8BIMnorm" + bytes([255, 0, 0, 0]) + struct.pack(">I", 0)  # opacity, clip, flags; no extra data
    channels = b"".join(struct.pack(">H", 0) + layer[..., c].tobytes() for layer in layers for c in range(3))
    info = struct.pack(">h", len(layers)) + record * len(layers) + channels
    section = struct.pack(">I", len(info)) + info
    planar = b"".join(composite[..., c].tobytes() for c in range(3))
    return header + struct.pack(">II", 0, 0) + struct.pack(">I", len(section)) + section + b"\0\0" + planar


def jpeg_with_exif(exif: bytes) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(photo_like(48, 64)).save(buffer, "JPEG", exif=exif)
    return buffer.getvalue()


# The block of Pillow's truncated_exif_dpi.jpg: a TIFF header cut off inside its first IFD's offset.
TRUNCATED_EXIF = b"Exif\0\0MM\0*\0\0\0"
# A whole TIFF header and IFD, whose one entry (Make, 40 ASCII bytes) points past the block's end.
OVERRUN_EXIF = b"Exif\0\0MM\0*" + struct.pack(">IH HHII I", 8, 1, 0x010F, 2, 40, 200, 0)


def tiff_with_samples_per_pixel(samples: int) -> bytes:
    """A 1x1 little-endian TIFF declaring `samples` samples per pixel: Pillow logs an error, then refuses it."""
    entries = [(256, 3, 1, 1), (257, 3, 1, 1), (258, 3, 1, 8), (259, 3, 1, 1), (262, 3, 1, 2),
               (273, 4, 1, 8), (277, 3, 1, samples), (278, 3, 1, 1), (279, 4, 1, 3)]
    ifd = struct.pack("<H", len(entries)) + b"".join(struct.pack("<HHII", *e) for e in entries) + bytes(4)
    return b"II*\0" + struct.pack("<I", 12) + b"\x80\x80\x80\0" + ifd


def no_python_warnings(action):
    """action()'s result, after checking that no Python warning escaped it (any would reach stderr)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = action()
    assert not caught, [str(w.message) for w in caught]
    return result


# -- tests ----------------------------------------------------------------------------------------


def test_layered_psd_codes_the_composite():
    composite = photo_like(6, 4)
    layers = [np.full_like(composite, 40), np.full_like(composite, 220)]
    data = layered_psd(composite, layers)
    assert Image.open(io.BytesIO(data)).n_frames == 2  # what made the old code seek to a frame 0 PSDs lack
    source = imageio.load_image(data)
    assert source.layout == "RGB" and np.array_equal(source.rgb, composite)
    assert source.warnings == []  # no "only the first frame is coded": the composite is the whole picture


def test_truncated_exif_is_dropped_and_the_pixels_coded():
    source = no_python_warnings(lambda: imageio.load_image(jpeg_with_exif(TRUNCATED_EXIF)))
    assert source.rgb.shape == (48, 64, 3) and source.exif == b""
    assert len(source.warnings) == 1 and source.warnings[0].startswith("EXIF metadata is damaged and was dropped")


def test_pillow_warning_becomes_a_note():
    source = no_python_warnings(lambda: imageio.load_image(jpeg_with_exif(OVERRUN_EXIF)))
    assert source.warnings == ["EXIF metadata is damaged; what could be read is kept "
                               "(Tag data larger than file. Skipping tag 271)"]
    assert all("\n" not in note and note == note.strip() for note in source.warnings)


def test_palette_image_with_transparency_bytes_warns_nothing():
    grey = np.arange(64, dtype=np.uint8).reshape(8, 8)
    image = Image.fromarray(grey, "L").convert("P")  # a grey palette, so the layout is LA
    image.info["transparency"] = bytes([0, 128] + [255] * 254)
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    source = no_python_warnings(lambda: imageio.load_image(buffer.getvalue()))
    assert source.layout == "LA" and source.warnings == []
    assert np.array_equal(source.rgb[..., 0], grey)
    assert source.alpha[0, 0] == 0 and source.alpha[0, 1] == 128 and (source.alpha.ravel()[2:] == 255).all()


def test_16_bit_grey_with_a_transparent_grey_keeps_it_as_alpha():
    samples = (np.arange(64 * 64, dtype=np.uint32) * 16 % 65536).astype("<u2").reshape(64, 64)
    transparent = int(samples[3, 5])
    buffer = io.BytesIO()
    Image.frombytes("I;16", (64, 64), samples.tobytes()).save(buffer, "PNG", transparency=transparent)
    source = imageio.load_image(buffer.getvalue())
    assert source.layout == "LA" and source.warnings == ["I;16 image reduced to 8 bits per sample"]
    # exactly the pixels of that 16-bit grey, not the 8-bit neighbours that reduce to the same value
    assert np.array_equal(source.alpha == 0, samples == transparent) and (source.alpha == 0).sum() == 1


def test_pillow_log_record_joins_the_error():
    with pytest.raises(imageio.ImageError, match="can read; More samples per pixel than can be decoded: 65535$"):
        imageio.load_image(tiff_with_samples_per_pixel(65535))


def test_warnings_of_other_threads_are_not_taken(recwarn, caplog):
    """Only the loading thread's warnings and records become its notes; another thread's go where they went."""
    loading, other_done = threading.Event(), threading.Event()

    def other():
        loading.wait(5)
        warnings.warn("from another thread", UserWarning)
        logging.getLogger("PIL.TiffImagePlugin").error("logged by another thread")
        other_done.set()

    notes: list[str] = []
    worker = threading.Thread(target=other)
    worker.start()
    with imageio.captured_as_notes(notes):
        loading.set()
        assert other_done.wait(5)
        warnings.warn("from this thread", UserWarning)
        logging.getLogger("PIL.TiffImagePlugin").error("logged by this thread")
    worker.join()
    assert notes == ["from this thread", "logged by this thread"]
    assert [str(w.message) for w in recwarn] == ["from another thread"]
    assert "logged by another thread" in caplog.messages


def test_command_line_shows_only_aecodec_lines(tmp_path):
    """What a user sees: Pillow's complaint as an `aecodec: warning:` line, no Python warning with a path."""
    (tmp_path / "bad.jpg").write_bytes(jpeg_with_exif(OVERRUN_EXIF))
    done = aecodec_command("compress", "bad.jpg", "-q", "50", *TINY, cwd=tmp_path, text=True)
    lines = done.stderr.splitlines()
    assert done.returncode == 0 and (tmp_path / "bad.aec").is_file(), done.stderr
    assert lines and all(line.startswith("aecodec: warning: bad.jpg: ") for line in lines), lines


def test_command_line_refusal_is_one_line_with_pillow_s_reason(tmp_path):
    """Pillow logs why it rejects the file; unconfigured, logging would print that raw above our error."""
    (tmp_path / "odd.tif").write_bytes(tiff_with_samples_per_pixel(65535))
    done = aecodec_command("compress", "odd.tif", *TINY, cwd=tmp_path, text=True)
    assert only_line(done, 1).startswith("aecodec: error: odd.tif: ")
    assert done.stderr.rstrip().endswith("More samples per pixel than can be decoded: 65535")


def test_truncated_exif_round_trips(codec):
    with pytest.warns(UserWarning, match="EXIF metadata is damaged"):  # Codec.compress issues the notes
        data = codec.compress(jpeg_with_exif(TRUNCATED_EXIF), quality=50)
    decoded = codec.decompress(data)
    assert decoded.size == (64, 48) and "exif" not in decoded.info
