"""The codecs ``aecodec bench`` can compare, each behind the same two calls.

A typical workflow looks like this::

    codecs = available_codecs(aecodec_codec=my_codec, threads=2)
    spec = codecs["webp"]
    data = spec.encode(rgb_uint8, spec.qualities[0])   # whole file, as bytes
    decoded = spec.decode(data)                        # HxWx3 uint8

``qualities`` are each codec's own knob (JPEG quality, JPEG XL distance,
JPEG 2000 target bpp, ...), listed from lowest to highest rate and picked to
span roughly 0.1 to 2 bpp on photographs such as Kodak.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Callable

import numpy as np
from PIL import Image, features

JPEG_QUALITIES = (5, 10, 20, 30, 40, 50, 60, 75, 85, 95)
WEBP_QUALITIES = (0, 5, 15, 30, 45, 60, 72, 80, 87, 93)
AVIF_QUALITIES = (10, 20, 30, 40, 50, 60, 70, 80, 88)
AVIF_SPEED = 6  # Pillow's own default; named here so the report can state it
JPEG2000_BPP = (0.1, 0.15, 0.25, 0.4, 0.6, 0.9, 1.3, 2.0)
JXL_DISTANCES = (16.0, 11.0, 7.5, 5.0, 3.5, 2.5, 1.7, 1.1, 0.7)
JXL_EFFORT = 7  # libjxl's default
AECODEC_QUALITIES = (1, 15, 30, 45, 60, 75, 90, 100)


@dataclass(frozen=True)
class CodecSpec:
    """One codec: a quality sweep plus encode/decode over whole files."""

    name: str
    qualities: tuple[float, ...]
    encode: Callable[[np.ndarray, float], bytes]
    decode: Callable[[bytes], np.ndarray]
    note: str = ""


def available_codecs(aecodec_codec=None, threads: int = 1, efforts: tuple[int, ...] = (),
                     without_detail: bool = False) -> dict[str, CodecSpec]:
    """Every codec that works in this environment, by name.

    ``aecodec_codec`` is any object with ``compress(array, quality=) -> bytes``
    and ``decompress(bytes) -> PIL.Image``; with it, ``aecodec`` is included.
    ``threads`` goes to the codecs that can use several (AVIF, JPEG XL). ``efforts`` and
    ``without_detail`` add our codec's variants (aecodec-effortN, aecodec-nodetail).
    """
    makers = [_jpeg, _jpeg444, _webp, _avif, _jpeg2000, _jxl]
    specs = [make(threads) for make in makers]
    if aecodec_codec is not None:
        specs.append(aecodec_spec(aecodec_codec))
        specs.extend(effort_spec(aecodec_codec, effort) for effort in efforts)
        if without_detail:
            specs.append(without_detail_spec(aecodec_codec))
    return {spec.name: spec for spec in specs if spec is not None}


def unavailable_codecs() -> dict[str, str]:
    """Why each codec that available_codecs leaves out is missing in this environment, by name."""
    from aecodec.extras import INSTALL, missing

    reasons = {name: f"this Pillow was built without {feature}"
               for name, feature in (("webp", "webp"), ("avif", "avif"), ("jpeg2000", "jpg_2000"))
               if not features.check(feature)}
    if missing(["imagecodecs"]):
        reasons["jxl"] = f"it needs imagecodecs, from the 'bench' extra: {INSTALL['bench']}"
    else:
        import imagecodecs

        if not imagecodecs.JPEGXL.available:
            reasons["jxl"] = "this imagecodecs was built without JPEG XL"
    return reasons


def aecodec_spec(codec, qualities=AECODEC_QUALITIES) -> CodecSpec:
    """Wrap our codec (or a stand-in with the same two methods) as a CodecSpec."""

    def decode(data: bytes) -> np.ndarray:
        return np.asarray(codec.decompress(data).convert("RGB"))

    model_id = getattr(codec, "model_id", None)
    model = f"model {model_id.hex()}, " if isinstance(model_id, bytes) else ""
    return CodecSpec("aecodec", tuple(qualities), lambda image, q: codec.compress(image, quality=q),
                     decode, f"{type(codec).__name__}, {model}quality 1..100")


EFFORT_PREFIX = "aecodec-effort"  # aecodec-effort3: our codec at --effort 3


def requested_efforts(names: list[str] | None) -> tuple[int, ...]:
    """The effort levels that codec names such as 'aecodec-effort3' ask for; never part of "all"
    (a full Kodak run at a high effort takes hours)."""
    return tuple(int(name[len(EFFORT_PREFIX):]) for name in names or ()
                 if name.startswith(EFFORT_PREFIX) and name[len(EFFORT_PREFIX):].isdigit())


def effort_spec(codec, effort: int, qualities=AECODEC_QUALITIES) -> CodecSpec:
    """Our codec at an effort level above 0: the same decoder, latents refined per image (needs torch)."""
    from aecodec.effort import check_effort_available, iterations_for

    try:
        iterations = iterations_for(effort, lowest=1)
    except ValueError as error:
        raise ValueError(f"{EFFORT_PREFIX}{effort}: {error}") from None
    check_effort_available()
    spec = aecodec_spec(codec, qualities)
    note = f"{spec.note}, effort {effort} ({iterations} refinement iterations)"
    return CodecSpec(f"{EFFORT_PREFIX}{effort}", spec.qualities,
                     lambda image, q: codec.compress(image, quality=q, effort=effort), spec.decode, note)


NO_DETAIL = "aecodec-nodetail"  # our codec without the detail layer: what the learned part does alone


def without_detail_spec(codec, qualities=AECODEC_QUALITIES) -> CodecSpec:
    spec = aecodec_spec(codec, qualities)
    return CodecSpec(NO_DETAIL, spec.qualities, lambda image, q: codec.compress(image, quality=q, detail=False),
                     spec.decode, f"{spec.note}, without the detail layer")


def _save(image: np.ndarray, fmt: str, **options) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format=fmt, **options)
    return buf.getvalue()


def _pillow_decode(data: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(data)) as im:
        return np.asarray(im.convert("RGB"))


def _jpeg(threads: int) -> CodecSpec:
    note = f"Pillow libjpeg-turbo {features.version('libjpeg_turbo')}, 4:2:0, standard Huffman tables"
    return CodecSpec("jpeg", JPEG_QUALITIES, lambda im, q: _save(im, "JPEG", quality=int(q)),
                     _pillow_decode, note)


def _jpeg444(threads: int) -> CodecSpec:
    note = f"Pillow libjpeg-turbo {features.version('libjpeg_turbo')}, 4:4:4"
    return CodecSpec("jpeg444", JPEG_QUALITIES,
                     lambda im, q: _save(im, "JPEG", quality=int(q), subsampling=0),
                     _pillow_decode, note)


def _webp(threads: int) -> CodecSpec | None:
    if not features.check("webp"):
        return None
    return CodecSpec("webp", WEBP_QUALITIES, lambda im, q: _save(im, "WEBP", quality=int(q), method=6),
                     _pillow_decode, f"Pillow libwebp {features.version('webp')}, method=6, lossy 4:2:0")


def _avif(threads: int) -> CodecSpec | None:
    if not features.check("avif"):
        return None

    def encode(image: np.ndarray, q: float) -> bytes:
        return _save(image, "AVIF", quality=int(q), speed=AVIF_SPEED, max_threads=threads)

    note = (f"Pillow libavif {features.version('avif')} ({_avif_encoder()}), speed={AVIF_SPEED} "
            f"(Pillow default), 4:2:0, max_threads={threads}")
    return CodecSpec("avif", AVIF_QUALITIES, encode, _pillow_decode, note)


def _avif_encoder() -> str:
    from PIL import AvifImagePlugin

    for name in ("aom", "rav1e", "svt"):
        version = AvifImagePlugin.get_codec_version(name)
        if version:
            return f"{name} {version}"
    return "unknown encoder"


def _jpeg2000(threads: int) -> CodecSpec | None:
    if not features.check("jpg_2000"):
        return None

    def encode(image: np.ndarray, bpp: float) -> bytes:
        # "rates" is a compression ratio against 24-bit RGB, so the sweep is in bpp.
        # 9/7 wavelet plus colour transform is the usual lossy setup; Pillow's
        # defaults (5/3, no colour transform) are meant for lossless.
        return _save(image, "JPEG2000", quality_mode="rates", quality_layers=[24.0 / bpp],
                     irreversible=True, mct=1, no_jp2=True)

    note = f"Pillow OpenJPEG {features.version('jpg_2000')}, 9/7 + ICT, quality = target bpp"
    return CodecSpec("jpeg2000", JPEG2000_BPP, encode, _pillow_decode, note)


def _jxl(threads: int) -> CodecSpec | None:
    try:
        import imagecodecs
    except ImportError:
        return None  # pip install imagecodecs: its wheels bundle libjxl
    if not imagecodecs.JPEGXL.available:
        return None

    def encode(image: np.ndarray, distance: float) -> bytes:
        return imagecodecs.jpegxl_encode(image, distance=distance, effort=JXL_EFFORT, numthreads=threads)

    def decode(data: bytes) -> np.ndarray:
        return imagecodecs.jpegxl_decode(data, numthreads=threads)

    note = (f"imagecodecs {imagecodecs.__version__} ({imagecodecs.jpegxl_version()}), "
            f"effort={JXL_EFFORT}, quality = butteraugli distance")
    return CodecSpec("jxl", JXL_DISTANCES, encode, decode, note)
