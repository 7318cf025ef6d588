"""The codec: pixels to .aec bytes and back, with one loaded model.

A typical workflow looks like this::

    codec = Codec()                                   # loads the shipped model once
    data = codec.compress(rgb_array, quality=75)      # bytes of an .aec file
    image = codec.decompress(data)                    # PIL.Image
    encoded = codec.encode(rgb_array, timed=True)     # the bytes, notes on the input, seconds per stage

``Codec`` is a facade: an encode reads as load -> analyse -> policy -> finish, where the
stages are aecodec/transform.py's, the policies choose the quality (aecodec/ratecontrol.py),
refine the latents (aecodec/effort.py) and choose detail corrections (aecodec/detail_choice.py),
and finishing packs the file (aecodec/container.py). Every call returns what it produced. A Codec
keeps its loaded model and, behind a lock, what it loads on first use (another file's model, the
torch refinement), so threads can share one.
"""

from __future__ import annotations

import io
import threading
import time
import warnings
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np
from PIL import Image

from . import container, deblock, detail, detail_choice, imageio, limits, transform
from .bundle import ModelNotFound, default_weights_root, find_bundle
from .container import FormatError, Header, Streams
from .effort import fit_quality_refined, iterations_for, load_refiner
from .pngstream import PngWriter
from .quality import checked, rate_tradeoff
from .ratecontrol import fit_quality, parse_size
from .transform import TILE, Timings


@dataclass(frozen=True)
class Encoded:
    """What one compress call produced."""

    data: bytes  # the .aec file
    warnings: tuple[str, ...] = ()  # what happened to the input: frames dropped, depth reduced
    timings: dict | None = None  # seconds per stage, when asked for


@dataclass(frozen=True)
class Decoded:
    """What one decompress call produced."""

    image: Image.Image
    timings: dict | None = None  # seconds per stage, when asked for


@dataclass(frozen=True)
class Request:
    """What an encode was asked for, every argument checked before any work."""

    quality: float | None  # None: a target decides it
    target_bpp: float | None
    target_size: int | None
    iterations: int  # effort's refinement iterations; 0: one pass

    @classmethod
    def of(cls, quality, target_bpp, target_size, effort: int) -> "Request":
        if sum(v is not None for v in (quality, target_bpp, target_size)) > 1:
            raise ValueError("give at most one of quality, target_bpp and target_size")
        if isinstance(target_size, str):
            target_size = parse_size(target_size)  # "40KB", as the command line takes it
        if target_bpp is not None and target_bpp <= 0:
            raise ValueError(f"target bpp must be positive, not {target_bpp}")
        targeted = target_bpp is not None or target_size is not None
        return cls(None if targeted else checked(quality), target_bpp, target_size, iterations_for(effort))


@dataclass(frozen=True)
class Job:
    """One image being encoded: its source, its latent, and how to finish a file from them."""

    model: transform.Model
    source: imageio.SourceImage
    alpha: bytes  # the source's alpha plane, coded once for every file a target search tries
    latent: np.ndarray
    with_detail: bool
    with_deblock: bool  # set the deblocking flag at the qualities where the filter runs
    refiner: object  # effort's Refiner, or None at effort 0
    iterations: int
    progress: bool
    timings: Timings

    def at(self, quality: float) -> bytes:
        """The file at a quality, in one pass."""
        return self.finish(transform.code(self.model, self.latent, quality, self.timings, rebuild=self.with_detail))

    def refined_at(self, quality: float) -> bytes:
        """The file at a quality, its latents refined for this image first (effort above 0)."""
        gained = self.latent * transform.gain(self.model, quality)
        hyper_latent = transform.hyper_analyse(self.model, gained, self.timings)
        start = time.perf_counter()
        refined = self.refiner.refine(self.source.rgb, gained, hyper_latent, quality, self.iterations, self.progress)
        self.timings.add("refinement", start)
        return self.finish(transform.code_given(self.model, refined.latent, refined.hyper_latent, quality,
                                                timings=self.timings, rebuild=self.with_detail))

    def finish(self, coded: transform.Coded) -> bytes:
        """The file: the learned part, the detail layer where it pays, and the source's side data."""
        source, (height, width) = self.source, self.source.rgb.shape[:2]
        deblocking = deblock.threshold(coded.quality) if self.with_deblock else 0
        layer = detail_layer(self.model, source.rgb, coded, self.timings, deblocking) if self.with_detail else b""
        header = Header(source.layout, self.model.bundle.model_id, width, height, coded.quality,
                        deblocked=deblocking > 0, two_pass=self.model.bundle.context is not None)
        return container.pack(header, Streams(coded.hyper, coded.latent, self.alpha, source.icc or b"",
                                              source.exif or b"", layer))

    def file(self, request: Request) -> bytes:
        """The file the request asks for: at its quality, or at the highest quality that fits its target."""
        if request.quality is not None:
            return self.refined_at(request.quality) if self.iterations else self.at(request.quality)
        height, width = self.source.rgb.shape[:2]
        budget = request.target_size if request.target_size is not None else int(request.target_bpp * width * height / 8)
        search = fit_quality
        if request.target_bpp is not None:  # an unreachable target is answered in the unit it was asked in
            search = partial(fit_quality, target=f"{request.target_bpp:g} bpp",
                             unit=lambda n: f"{n * 8 / (width * height):.3g} bpp")
        # At effort above 0: search at effort 0, then refine at what it found (effort.fit_quality_refined).
        found = (fit_quality_refined(self.at, self.refined_at, budget, search) if self.iterations
                 else search(self.at, budget))
        return found[1]


def detail_layer(model: transform.Model, rgb: np.ndarray, coded: transform.Coded, timings: Timings,
                 deblocking: float = 0.0) -> bytes:
    """The detail stream for an image whose learned part is coded; b"" when no block's corrections pay.
    The decoded pixels come from the encoder's own means and residuals, deblocked at that threshold,
    as a decoder will make them."""
    height, width = rgb.shape[:2]
    if height * width > detail_choice.MAX_PIXELS:
        return b""
    decoded = transform.pixels_of(model, coded, height, width, timings, deblocking)
    start = time.perf_counter()
    tables = model.bundle.latent_tables
    chosen = detail_choice.choose(rgb, decoded, rate_tradeoff(model.bundle, coded.quality), tables,
                                  matmul=model.matmul)
    stream = detail.encode(chosen, height, width, tables) if chosen else b""
    timings.add("detail", start)
    return stream


class Codec:
    """One model with its ONNX sessions loaded, for repeated compress/decompress calls."""

    def __init__(self, weights: str | Path | None = None, threads: int = 0, provider: str = "cpu",
                 optimize: bool = True, tile: int = TILE):
        from .networks import RuntimeOptions  # with ONNX Runtime, loaded by the first Codec, not by this module
        self.options = RuntimeOptions(threads=threads, provider=provider, optimize=optimize)
        self.model = transform.Model.load(Path(weights) if weights else default_weights_root() / "main",
                                          self.options, tile)
        self._lock = threading.Lock()  # guards the two below, made on first use by whichever thread needs them
        self._other_models: dict[bytes, Codec] = {}  # older models met while decoding
        self._refiner = None  # the torch refinement for effort above 0

    @property
    def bundle(self):
        return self.model.bundle

    @property
    def matmul(self):
        return self.model.matmul

    @property
    def model_id(self) -> bytes:
        return self.model.bundle.model_id

    def refiner(self):
        """This model in torch, for effort above 0; loaded on first use (EffortUnavailable without torch)."""
        with self._lock:
            if self._refiner is None:
                self._refiner = load_refiner(self.model.bundle, self.options.threads)
            return self._refiner

    def for_model(self, model_id: bytes) -> "Codec":
        """This codec, or one loaded with the installed weights that made a file."""
        if model_id == self.model_id:
            return self
        with self._lock:
            if model_id not in self._other_models:
                try:
                    folder = find_bundle(model_id)
                except ModelNotFound as error:
                    raise FormatError(str(error)) from None
                self._other_models[model_id] = Codec(folder, self.options.threads, self.options.provider,
                                                     self.options.optimize, self.model.tile)
            return self._other_models[model_id]

    # -- encoding ------------------------------------------------------------------------

    def compress(self, image, quality: float | None = None, target_bpp: float | None = None,
                 target_size: int | None = None, allow_large: bool = False, effort: int = 0,
                 progress: bool = False, detail: bool = True, deblock: bool = True) -> bytes:
        """The bytes of an .aec file; what ``encode`` notes about the input is issued as a warning."""
        encoded = self.encode(image, quality, target_bpp, target_size, allow_large, effort=effort, progress=progress,
                              detail=detail, deblock=deblock)
        for note in encoded.warnings:
            warnings.warn(note, stacklevel=2)
        return encoded.data

    def encode(self, image, quality: float | None = None, target_bpp: float | None = None,
               target_size: int | None = None, allow_large: bool = False, timed: bool = False,
               effort: int = 0, progress: bool = False, detail: bool = True, deblock: bool = True) -> Encoded:
        """Compress a path, PIL.Image or uint8 array; at most one of quality and the targets.

        A target picks the highest quality whose whole file fits the budget.
        Effort above 0 (up to effort.MAX_EFFORT) refines the latents for this image before coding
        them: smaller files for more time, the same decoder. It needs torch (the 'effort' extra);
        progress draws a bar on a terminal meanwhile.
        detail=False leaves out the detail layer: a faster encode, at the cost of fine detail at high
        qualities. deblock=False leaves the deblocking filter off at low qualities (a faint 16-pixel
        grid in smooth areas). With both off the file is format version 1, which aecodec builds older
        than the detail layer read, except for a model with a checkerboard context: its files are
        always version 3.
        """
        request = Request.of(quality, target_bpp, target_size, effort)
        refiner = self.refiner() if request.iterations else None  # before any work: a missing torch fails at once
        # The sessions this encode runs, made on another core while the image is read.
        self.model.networks.prepare("analysis", "hyper_analysis", *(("synthesis",) if detail else ()))
        source = imageio.load_image(image, allow_large, aec_decoder=self)
        height, width = source.rgb.shape[:2]
        container.check_dimensions(width, height)
        timings = Timings()
        latent = transform.analyse(self.model, source.rgb, timings)  # independent of quality: once
        alpha = imageio.encode_alpha(source.alpha) if source.alpha is not None else b""
        job = Job(self.model, source, alpha, latent, detail, deblock, refiner, request.iterations, progress, timings)
        return Encoded(job.file(request), tuple(source.warnings), dict(timings.stages) if timed else None)

    # -- decoding ------------------------------------------------------------------------

    def decompress(self, data: bytes, allow_large: bool = False) -> "Image.Image":
        """An .aec file's bytes -> PIL.Image in the file's layout, with its ICC and EXIF.

        A file declaring more pixels than PIL.Image.MAX_IMAGE_PIXELS is refused unless allow_large.
        """
        return self.decode(data, allow_large=allow_large).image

    def decode(self, data: bytes, timed: bool = False, allow_large: bool = False) -> Decoded:
        """decompress, and the seconds each stage took when timed."""
        codec, parsed, alpha = self.open_file(data, allow_large)
        timings = Timings()
        rgb = codec.decode_rgb(parsed, timings)
        image = imageio.build_image(rgb, parsed.header.layout, alpha, parsed.streams.icc, parsed.streams.exif)
        return Decoded(image, dict(timings.stages) if timed else None)

    def decode_png(self, data: bytes, compress_level: int = 6, allow_large: bool = False,
                   timings: Timings | None = None) -> bytes:
        """An .aec file's bytes -> the bytes of a PNG file: the pixels, ICC and EXIF that
        ``decompress(data).save(f, "PNG", compress_level=...)`` writes (see aecodec/pngstream.py).

        Decoded and written band by band of rows, so that no whole image is held: the memory that
        large images need (bench/large_image.py).
        """
        codec, parsed, alpha = self.open_file(data, allow_large)
        header, streams = parsed.header, parsed.streams
        out = io.BytesIO()
        writer = PngWriter(out, header.width, header.height, header.layout, compress_level, streams.icc, streams.exif)
        top = 0
        for rgb in codec.decode_rows(parsed, timings):
            if header.layout != "RGB":  # grey and alpha as decode converts them
                band_alpha = None if alpha is None else alpha[top:top + len(rgb)]
                rgb = np.asarray(imageio.build_image(rgb, header.layout, band_alpha))
            writer.write(rgb)
            top += len(rgb)
        writer.close()
        return out.getvalue()

    def open_file(self, data: bytes,
                  allow_large: bool = False) -> tuple["Codec", container.Container, np.ndarray | None]:
        """(the codec of the file's model, the parsed file, its alpha plane or None) after every cheap check,
        so that a corrupt file fails before the networks run."""
        header = container.read_header(data)
        limits.check_pixels(header.width, header.height, allow_large)  # from the header, before any work
        parsed = container.unpack(data)
        codec = self.for_model(parsed.header.model_id)
        header, streams = parsed.header, parsed.streams
        try:
            imageio.check_side_data(header.layout, streams.icc, streams.exif)
            alpha = imageio.decode_alpha(streams.alpha, header.width, header.height) if header.has_alpha else None
        except ValueError as error:
            raise FormatError(str(error)) from None
        return codec, parsed, alpha

    def decode_rows(self, parsed: container.Container, timings: Timings | None = None):
        """The RGB pixels of a parsed file made by this codec's model, in bands of rows, top to bottom."""
        header, streams = parsed.header, parsed.streams
        self.model.networks.prepare("synthesis")  # made on another core while the streams are decoded
        corrections = transform.read_detail(self.model, header, streams, timings)  # a corrupt layer fails first
        learned = transform.read(self.model, header, streams, timings)
        deblocking = deblock.threshold(header.quality) if header.deblocked else 0
        return transform.decoded_rows(self.model, learned, header.height, header.width, corrections, timings,
                                      deblocking)

    def decode_rgb(self, parsed: container.Container, timings: Timings | None = None) -> np.ndarray:
        """RGB uint8 (H, W, 3) of a parsed file made by this codec's model."""
        return transform.whole(self.decode_rows(parsed, timings), parsed.header.height)
