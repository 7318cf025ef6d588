"""Turning whatever a user hands us into 8-bit RGB plus what must travel beside it.

A typical workflow looks like this::

    source = load_image("photo.png")          # path, bytes, PIL.Image or array
    source.rgb, source.layout, source.alpha   # what the codec codes
    image = build_image(rgb, "RGBA", alpha, icc, exif)   # and back to a PIL.Image

Greyscale is coded as RGB and returned as greyscale; alpha is coded losslessly
beside the colour; EXIF orientation is applied; ICC profiles and EXIF ride along.
What Pillow warns or logs while reading (a damaged EXIF block, say) becomes one
of the notes in ``source.warnings``, not a raw line on stderr.
"""

from __future__ import annotations

import contextlib
import io
import logging
import re
import threading
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from .container import FormatError, check_dimensions
from .limits import LIFT, PROCESS_STATE, pixel_limit

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff", ".ppm", ".pgm", ".gif"}
HIGH_DEPTH_MODES = {"I;16", "I;16L", "I;16B", "I;16N", "I", "F"}


class ImageError(ValueError):
    """The input is not an image we can code."""


@dataclass
class SourceImage:
    rgb: np.ndarray  # (H, W, 3) uint8
    layout: str  # "RGB", "L", "RGBA" or "LA"
    alpha: np.ndarray | None = None  # (H, W) uint8
    icc: bytes = b""
    exif: bytes = b""
    warnings: list[str] = field(default_factory=list)


def open_image(source, allow_large: bool = False, aec_decoder=None) -> tuple[Image.Image, list[str]]:
    """Open and fully load a path, bytes or file object: (image, notes); one clear error for anything broken.

    An .aec input is decoded with aec_decoder (a Codec) when given, else with the installed model it names.
    """
    name = str(source) if isinstance(source, (str, Path)) else "input"
    if isinstance(source, (bytes, bytearray)):
        source = io.BytesIO(source)
    try:
        with pixel_limit(allow_large):
            image = Image.open(source)
            check_dimensions(*image.size)  # before load() allocates, even with the Pillow limit lifted
            notes = notes_before_loading(image)
            if image.format == "AEC" and aec_decoder is not None:
                image.decode_with(codec=aec_decoder)
            image.load()
    except FileNotFoundError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as error:
        raise ImageError(f"{name}: {error} ({LIFT})") from None
    except FormatError as error:  # too large for the .aec header
        raise ImageError(f"{name}: {error}") from None
    except UnidentifiedImageError:
        raise ImageError(f"{name}: not an image file in a format Pillow can read") from None
    except (OSError, SyntaxError, ValueError, EOFError) as error:
        raise ImageError(f"{name}: not a readable image ({error})") from None
    return image, notes


def notes_before_loading(image: Image.Image) -> list[str]:
    """What the loaded image no longer shows: that it was an .aec file, or had 16-bit samples in an 8-bit mode.

    Pillow reads a 16-bit RGB PNG or TIFF as mode RGB (raw mode RGB;16B), so only the tile says it was deeper.
    """
    notes = []
    if image.format == "AEC":
        notes.append("the input is already an .aec file: it was decoded and coded again, losing quality twice")
    tiles = getattr(image, "tile", None) or ()  # only images opened from a file have tiles
    rawmodes = [tile[3] if isinstance(tile[3], str) else tile[3][0] for tile in tiles if tile[3]]
    if image.mode not in HIGH_DEPTH_MODES and any(re.search(r";16[BLN]$", str(raw)) for raw in rawmodes):
        notes.append(f"16-bit {image.mode} image reduced to 8 bits per sample")
    return notes


def _icc_matches(icc: bytes, layout: str) -> bool:
    """An ICC profile's colour space (header bytes 16..20) must fit the pixels it travels with."""
    space = icc[16:20] if len(icc) >= 20 else b""
    return space == (b"GRAY" if layout in ("L", "LA") else b"RGB ")


def _reduce_depth(image: Image.Image, notes: list[str]) -> Image.Image:
    """An L image, or LA where a transparent grey (a PNG's tRNS) marks pixels as see-through."""
    samples = np.asarray(image)
    notes.append(f"{image.mode} image reduced to 8 bits per sample")
    if image.mode == "F":
        data = np.clip(samples, 0, 1) * 255 if samples.max(initial=0) <= 1 else np.clip(samples, 0, 255)
    else:
        data = np.clip(samples.astype(np.float64) / 257.0, 0, 255)
    reduced = Image.fromarray(np.rint(data).astype(np.uint8), "L")
    transparent = image.info.get("transparency")
    if isinstance(transparent, int) and image.mode != "F":
        # compared at full depth: after the reduction, 256 neighbouring greys share each value
        reduced.putalpha(Image.fromarray(np.where(samples == transparent, 0, 255).astype(np.uint8), "L"))
    return reduced


def from_pil(image: Image.Image) -> SourceImage:
    notes = []
    image = _first_frame(image, notes)
    icc = image.info.get("icc_profile") or b""
    image, exif_bytes = _oriented(image, notes)
    if image.mode in HIGH_DEPTH_MODES:
        image = _reduce_depth(image, notes)
    has_alpha = image.mode in ("RGBA", "LA", "PA", "La", "RGBa") or "transparency" in image.info
    grey_mode = image.mode in ("1", "L", "LA", "La")
    # RGBA only where it is needed: for a large photo it is the biggest copy made here
    rgba = np.asarray(image.convert("RGBA")) if has_alpha or not (grey_mode or image.mode == "RGB") else None
    palette = image.mode in ("P", "PA")
    grey = grey_mode or (palette and _is_grey(rgba))
    layout = ("LA" if has_alpha else "L") if grey else ("RGBA" if has_alpha else "RGB")
    if grey:
        # a palette image's grey is read from its RGBA: converting it to L would make Pillow warn
        # about a transparency it would drop, which is coded as alpha here
        plane = rgba[..., 0] if palette else np.asarray(image.convert("L"))
        rgb = np.repeat(plane[..., None], 3, axis=2)
    else:
        rgb = np.asarray(image) if rgba is None else np.ascontiguousarray(rgba[..., :3])
    if icc and not _icc_matches(icc, layout):
        notes.append("ICC profile does not match the coded colours and was dropped")
        icc = b""
    alpha = np.ascontiguousarray(rgba[..., 3]) if has_alpha else None
    return SourceImage(rgb, layout, alpha, icc, exif_bytes, notes)


def _first_frame(image: Image.Image, notes: list[str]) -> Image.Image:
    """The picture to code: the first frame, with a note when there are more.

    A PSD is the exception: its frames (numbered from 1) are its layers, and what Pillow has loaded
    before any seek is their merged composite, which is the picture; nothing is dropped.
    """
    if image.format == "PSD" or getattr(image, "n_frames", 1) <= 1:
        return image
    notes.append(f"image has {image.n_frames} frames; only the first is coded")
    image.seek(0)
    return image


def _oriented(image: Image.Image, notes: list[str]) -> tuple[Image.Image, bytes]:
    """(the image turned as its EXIF orientation says, the EXIF block to keep beside it).

    A block Pillow cannot parse (truncated, say) is dropped with a note: the pixels still get coded.
    One it reads in part, with warnings, is kept in part, also with a note.
    """
    complaints: list[str] = []
    try:
        with captured_as_notes(complaints):  # what Pillow warns about here is the EXIF block
            image = ImageOps.exif_transpose(image) or image
            exif = image.getexif()
            data = exif.tobytes() if len(exif) else b""
    except MemoryError:
        raise
    except Exception as error:  # Pillow's EXIF parser raises struct.error, SyntaxError, ValueError, ...
        notes.append(f"EXIF metadata is damaged and was dropped ({error})")
        return image, b""
    notes += [f"EXIF metadata is damaged; what could be read is kept ({text})" for text in complaints]
    return image, data


def _is_grey(rgba: np.ndarray) -> bool:
    return bool((rgba[..., 0] == rgba[..., 1]).all() and (rgba[..., 1] == rgba[..., 2]).all())


def from_array(array: np.ndarray) -> SourceImage:
    array = np.asarray(array)
    notes = []
    if array.dtype == np.uint16:
        array = np.rint(array / 257.0).astype(np.uint8)
        notes.append("16-bit array reduced to 8 bits per sample")
    if array.dtype != np.uint8:
        raise ImageError(f"arrays must be uint8 (or uint16), not {array.dtype}")
    if array.ndim == 2:
        array = array[..., None]
    if array.ndim != 3 or array.shape[2] not in (1, 2, 3, 4):
        raise ImageError(f"expected an HxW, HxWx3 or HxWx4 array, not shape {array.shape}")
    mode = {1: "L", 2: "LA", 3: "RGB", 4: "RGBA"}[array.shape[2]]
    if mode == "RGB":  # what from_pil would return, without two copies of a possibly large array
        return SourceImage(np.ascontiguousarray(array), "RGB", warnings=notes)
    image = Image.fromarray(array[..., 0] if mode == "L" else array, mode)
    source = from_pil(image)
    source.warnings[:0] = notes
    return source


def load_image(source, allow_large: bool = False, aec_decoder=None) -> SourceImage:
    """A path, bytes, file object, PIL.Image or numpy array -> SourceImage (aec_decoder: see open_image)."""
    if isinstance(source, np.ndarray):
        return from_array(source)
    caught: list[str] = []
    try:
        with captured_as_notes(caught):
            if isinstance(source, Image.Image):
                notes = notes_before_loading(source)
                try:
                    source.load()
                except (OSError, SyntaxError, ValueError, EOFError) as error:  # a lazily opened, broken file
                    raise ImageError(f"image cannot be loaded ({error})") from None
            else:
                source, notes = open_image(source, allow_large, aec_decoder)
            loaded = from_pil(source)
    except ImageError as error:  # what Pillow said on the way is the likeliest reason
        raise ImageError("; ".join([str(error), *caught])) from None
    loaded.warnings[:0] = notes
    # Pillow may warn on opening about what it warns about again when the EXIF block is read
    loaded.warnings += [note for note in caught if not any(note in known for known in loaded.warnings)]
    return loaded


_capture = threading.local()  # .notes: where this thread's warnings and Pillow's records go, while captured


@contextlib.contextmanager
def captured_as_notes(notes: list[str]):
    """Python warnings and Pillow's log records (WARNING and above) from this thread are appended to
    notes meanwhile, one line each, instead of reaching stderr raw, with a source path or none.

    Python's warning machinery belongs to the whole process and a Codec may be shared between threads,
    so it is changed under PROCESS_STATE, and other threads' warnings and records go where they went.
    The filters are left alone: what the process ignores stays ignored, and what it makes errors, raises.
    Nested, the inner list takes what comes meanwhile.
    """
    with PROCESS_STATE:
        outer = getattr(_capture, "notes", None)
        _capture.notes = notes
        try:
            # catch_warnings forgets the warnings already shown once, so a repeated one is noted again
            with warnings.catch_warnings(), (contextlib.nullcontext() if outer is not None else _hooks()):
                yield
        finally:
            _capture.notes = outer


@contextlib.contextmanager
def _hooks():
    """Warnings and Pillow's records of a capturing thread go to its notes (under PROCESS_STATE)."""
    shown, handler = warnings.showwarning, _PillowLogNotes()

    def keep(message, category, filename, lineno, file=None, line=None):
        if not _note(str(message)):
            shown(message, category, filename, lineno, file, line)

    warnings.showwarning = keep  # put back by the caller's catch_warnings
    logging.getLogger("PIL").addHandler(handler)
    try:
        yield
    finally:
        logging.getLogger("PIL").removeHandler(handler)


def _note(text: str) -> bool:
    """text added to this thread's notes, once; False when this thread is not capturing."""
    notes = getattr(_capture, "notes", None)
    if notes is None:
        return False
    text = " ".join(text.split())  # Pillow's messages may end in spaces, or span lines
    if text not in notes:
        notes.append(text)
    return True


class _PillowLogNotes(logging.Handler):
    """Pillow logs what it rejects in a file (TiffImagePlugin: "More samples per pixel than can be
    decoded"); with logging unconfigured, Python prints such records raw on stderr."""

    def __init__(self):
        super().__init__(logging.WARNING)

    def emit(self, record: logging.LogRecord) -> None:
        if not _note(record.getMessage()) and self._only_handler(record) and logging.lastResort is not None:
            logging.lastResort.handle(record)  # another thread's record, printed as it would have been

    def _only_handler(self, record: logging.LogRecord) -> bool:
        logger = logging.getLogger(record.name)
        while logger is not None:
            if any(handler is not self for handler in logger.handlers):
                return False
            logger = logger.parent if logger.propagate else None
        return True


def build_image(rgb: np.ndarray, layout: str, alpha: np.ndarray | None = None,
                icc: bytes = b"", exif: bytes = b"") -> Image.Image:
    """Decoded pixels and side data -> a PIL.Image in the original layout."""
    if layout in ("L", "LA"):
        grey = np.rint(rgb.astype(np.float32).mean(axis=2)).astype(np.uint8)
        image = Image.fromarray(grey, "L")
    else:
        image = Image.fromarray(rgb, "RGB")
    if alpha is not None:
        image.putalpha(Image.fromarray(alpha, "L"))
    if icc:
        image.info["icc_profile"] = icc
    if exif:
        image.info["exif"] = exif
    return image


def encode_alpha(alpha: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(alpha, "L").save(buffer, format="PNG", optimize=True)
    return buffer.getvalue()


def decode_alpha(data: bytes, width: int, height: int) -> np.ndarray:
    """The alpha plane of an .aec file; ValueError unless it is an L PNG of exactly width x height."""
    try:
        with pixel_limit(allow_large=True):
            image = Image.open(io.BytesIO(data), formats=["PNG"])
            if image.mode == "L" and image.size == (width, height):  # checked before load() allocates
                image.load()
    except Exception as error:  # Pillow raises many types for corrupt PNG data
        raise ValueError(f"alpha stream is not a valid PNG ({error})") from None
    if image.mode != "L" or image.size != (width, height):
        raise ValueError(f"alpha stream is {image.mode} {image.size}, expected L {(width, height)}")
    return np.asarray(image)


def check_side_data(layout: str, icc: bytes, exif: bytes) -> None:
    """ValueError unless the ICC profile and EXIF block are ones an encoder could have stored."""
    if icc and not _icc_matches(icc, layout):
        raise ValueError(f"ICC profile does not describe {layout} pixels")
    if exif:
        try:
            with PROCESS_STATE, warnings.catch_warnings():
                warnings.simplefilter("ignore")  # Pillow only warns about damaged entries; saving copes
                Image.Exif().load(exif)
        except Exception as error:  # e.g. SyntaxError: not TIFF data, which breaks saving as TIFF later
            raise ValueError(f"EXIF block is malformed ({error})") from None
