"""The codec: pixels to .aec bytes and back.

A typical workflow looks like this::

    codec = Codec()                                   # loads the shipped model once
    data = codec.compress(rgb_array, quality=75)      # bytes of an .aec file
    image = codec.decompress(data)                    # PIL.Image
    encoded = codec.encode(rgb_array, timed=True)     # the bytes, notes on the input, seconds per stage

Every call returns what it produced; a Codec keeps only its loaded model, so
one can be shared between threads of work.

Encoding: analysis -> latent * gain(quality) -> hyper-analysis -> rounded
hyper-latent -> exact integer hyper-synthesis -> (mean, scale index) ->
residual = round(latent - mean), coded with the table of its scale index.
Decoding runs the same exact hyper-synthesis, so it picks the same tables.
Then the encoder decodes what it wrote and adds a detail layer (aecodec/detail.py)
in the blocks where pixel corrections pay for their bits at the quality's lambda.
"""

from __future__ import annotations

import math
import time
import warnings
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import numpy as np
from PIL import Image

from . import container, detail, entropy, fixedpoint, imageio, limits
from .bundle import ModelBundle, ModelNotFound, default_weights_root, find_bundle, load_bundle
from .container import FormatError, Header, Streams
from .effort import fit_quality_refined, iterations_for, load_refiner
from .ratecontrol import fit_quality, parse_size
from .tiling import tiled

DEFAULT_QUALITY = 75.0
TILE = 64  # latent units per tile (1024 pixels at a stride of 16)
HALO = 4  # latent units of context around a tile, wider than the receptive field


@dataclass
class Timings:
    """Seconds spent in each stage of one call, for `aecodec bench --speed`."""

    stages: dict = field(default_factory=dict)

    def add(self, stage: str, start: float) -> None:
        self.stages[stage] = self.stages.get(stage, 0.0) + time.perf_counter() - start


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


def quality_to_level(quality: float, levels: int) -> float:
    return (quality - 1) / 99 * (levels - 1)


def rate_tradeoff(bundle: ModelBundle, quality: float) -> float:
    """lambda of a quality: the trained levels' log-spaced lambdas, continued on the same line for the
    gain rows that export extrapolated below the lowest trained rate."""
    config = bundle.card["model_config"]
    extra = int(bundle.card.get("extrapolated_levels") or 0)
    level = quality_to_level(quality, bundle.levels) - extra  # in trained levels; negative below them
    low, high = math.log(config["lambda_min"]), math.log(config["lambda_max"])
    return math.exp(low + (high - low) * level / max(config["levels"] - 1, 1))


def interpolate_rows(table: np.ndarray, level: float) -> np.ndarray:
    low = min(int(np.floor(level)), len(table) - 2)
    frac = level - low
    return table[low] * (1 - frac) + table[low + 1] * frac


def pad_image(rgb: np.ndarray, pad: int) -> np.ndarray:
    """uint8 (H, W, 3) -> uint8 (1, 3, H', W'), edge-padded to a multiple of pad (the hyper-latent's stride).

    It stays uint8 (a quarter of float32) until from_uint8 converts one tile at a time.
    """
    h, w = rgb.shape[:2]
    padded = np.pad(rgb, ((0, -h % pad), (0, -w % pad), (0, 0)), mode="edge")
    return padded.transpose(2, 0, 1)[None]


def from_uint8(x: np.ndarray) -> np.ndarray:
    """uint8 pixels -> float32 in [0, 1], the analysis input."""
    x = np.ascontiguousarray(x, dtype=np.float32)
    x /= 255.0
    return x


def to_uint8(x: np.ndarray) -> np.ndarray:
    """Synthesis output in [0, 1] -> uint8, same shape; NaN and infinities (corrupt files) give 0 and 255."""
    x = np.fmax(x, 0.0)  # fmax and fmin map NaN to the bound
    np.fmin(x, 1.0, out=x)
    x *= 255.0
    return np.rint(x, out=x).astype(np.uint8)


def to_pixels(x: np.ndarray, height: int, width: int) -> np.ndarray:
    """uint8 (1, 3, H', W') -> uint8 (height, width, 3)."""
    return np.ascontiguousarray(x[0, :, :height, :width].transpose(1, 2, 0))


def round_quality(quality: float) -> float:
    if not 1 <= quality <= 100:
        raise ValueError(f"quality must be between 1 and 100, not {quality}")
    return round(quality * 100) / 100  # what the header can store, so both sides agree


class Codec:
    """One model with its ONNX sessions loaded, for repeated compress/decompress calls."""

    def __init__(self, weights: str | Path | None = None, threads: int = 0, provider: str = "cpu",
                 optimize: bool = True, tile: int = TILE):
        # ONNX Runtime loads with the first Codec, not with this module: the header-only paths
        # (`aecodec info`, Pillow's Image.open) import this module but never build a Codec.
        from .exactgemm import OrtMatMul
        from .networks import Networks, RuntimeOptions
        folder = Path(weights) if weights else default_weights_root() / "main"
        self.bundle: ModelBundle = load_bundle(folder)
        self.options = RuntimeOptions(threads=threads, provider=provider, optimize=optimize)
        self.networks = Networks(self.bundle, self.options)
        # The hyper-synthesis' float64 products: ONNX Runtime's GEMM (aecodec/exactgemm.py), or numpy's
        # beside the numpy reference networks, so that backend shares nothing with ONNX Runtime.
        self.matmul = np.matmul if provider == "reference" else OrtMatMul(self.options)
        self.tile = tile
        self.other_models: dict[bytes, Codec] = {}  # older models met while decoding
        self._refiner = None  # the torch refinement for effort above 0, loaded on first use

    @property
    def model_id(self) -> bytes:
        return self.bundle.model_id

    def refiner(self):
        """This model in torch, for effort above 0; loaded on first use (EffortUnavailable without torch)."""
        if self._refiner is None:
            self._refiner = load_refiner(self.bundle, self.options.threads)
        return self._refiner

    # -- encoding ------------------------------------------------------------------------

    def analyse(self, rgb: np.ndarray, timings: Timings | None = None) -> np.ndarray:
        """Latent (M, h, w) of an RGB uint8 image; independent of quality, so worth caching."""
        timings = timings or Timings()
        start = time.perf_counter()
        x = pad_image(rgb, self.bundle.hyper_stride)
        latent = tiled(lambda t: self.networks.run("analysis", from_uint8(t)), x, False, self.tile, HALO,
                       self.bundle.latent_stride)[0]
        timings.add("analysis", start)
        return latent

    def gain(self, quality: float) -> np.ndarray:
        """The latent's per-channel gain (M, 1, 1) at a quality."""
        level = quality_to_level(quality, self.bundle.levels)
        return np.exp(interpolate_rows(self.bundle.log_gain, level))[:, None, None]

    def hyper_analyse(self, gained_latent: np.ndarray, timings: Timings | None = None) -> np.ndarray:
        """The amortised integer hyper-latent (N, h/4, w/4) of a gained latent."""
        timings = timings or Timings()
        start = time.perf_counter()
        hyper_latent = np.rint(self.networks.run("hyper_analysis", gained_latent[None])[0]).astype(np.int64)
        timings.add("hyper_analysis", start)
        return hyper_latent

    def code_latent(self, latent: np.ndarray, quality: float, timings: Timings | None = None) -> tuple[bytes, bytes]:
        """(hyper stream, latent stream) for a latent at a quality."""
        gain = self.gain(quality)
        return self.code_given(latent, self.hyper_analyse(latent * gain, timings), gain, timings)

    def code_given(self, latent: np.ndarray, hyper_latent: np.ndarray, gain: np.ndarray | float = 1.0,
                   timings: Timings | None = None) -> tuple[bytes, bytes]:
        """(hyper stream, latent stream) for a given latent and integer hyper-latent, on the exact path:
        exact hyper-synthesis -> means and scale indices -> symbols = round(latent * gain - mean).

        Effort refinement hands its own latent (gain already applied: gain 1) and hyper-latent here.
        """
        timings = timings or Timings()
        bundle = self.bundle
        hyper_latent = np.asarray(hyper_latent, dtype=np.int64)
        start = time.perf_counter()
        mean, scale_index = fixedpoint.entropy_parameters(bundle.hyper_synthesis, hyper_latent, bundle.scale_table,
                                                          self.matmul)
        timings.add("hyper_synthesis", start)
        start = time.perf_counter()
        channel = np.broadcast_to(np.arange(len(hyper_latent))[:, None, None], hyper_latent.shape)
        hyper = entropy.encode(hyper_latent, channel, bundle.hyper_tables)
        # The gained latent again rather than kept: for a large photo it is 100s of MB the hyper-synthesis needs.
        gained = latent * gain
        np.subtract(gained, mean, out=gained)
        residual = np.rint(gained, out=gained).astype(np.int64)
        coded = entropy.encode(residual, scale_index, bundle.latent_tables)
        timings.add("entropy_coding", start)
        return hyper, coded

    def detail_stream(self, rgb: np.ndarray, quality: float, hyper: bytes, latent: bytes,
                      timings: Timings | None = None) -> bytes:
        """The detail stream for an image whose learned part is coded as hyper and latent; b"" when
        no block's corrections pay for their bits. Decodes the learned part as a decoder will."""
        timings = timings or Timings()
        height, width = rgb.shape[:2]
        if height * width > detail.MAX_PIXELS:
            return b""
        learned = container.Container(Header("RGB", self.model_id, width, height, quality), Streams(hyper, latent))
        decoded = self.decode_rgb(learned, timings)
        start = time.perf_counter()
        chosen = detail.choose(rgb, decoded, rate_tradeoff(self.bundle, quality), self.bundle.latent_tables,
                               matmul=self.matmul)
        stream = detail.encode(chosen, height, width, self.bundle.latent_tables) if chosen else b""
        timings.add("detail", start)
        return stream

    def pack(self, shape, quality, hyper, latent, layout="RGB", alpha=b"", icc=b"", exif=b"", detail=b"") -> bytes:
        header = Header(layout, self.model_id, shape[1], shape[0], quality)
        return container.pack(header, Streams(hyper, latent, alpha, icc or b"", exif or b"", detail))

    def compress(self, image, quality: float | None = None, target_bpp: float | None = None,
                 target_size: int | None = None, allow_large: bool = False, effort: int = 0,
                 progress: bool = False, detail: bool = True) -> bytes:
        """The bytes of an .aec file; what ``encode`` notes about the input is issued as a warning."""
        encoded = self.encode(image, quality, target_bpp, target_size, allow_large, effort=effort, progress=progress,
                              detail=detail)
        for note in encoded.warnings:
            warnings.warn(note, stacklevel=2)
        return encoded.data

    def encode(self, image, quality: float | None = None, target_bpp: float | None = None,
               target_size: int | None = None, allow_large: bool = False, timed: bool = False,
               effort: int = 0, progress: bool = False, detail: bool = True) -> Encoded:
        """Compress a path, PIL.Image or uint8 array; at most one of quality and the targets.

        A target picks the highest quality whose whole file fits the budget.
        Effort above 0 (up to effort.MAX_EFFORT) refines the latents for this image before coding
        them: smaller files for more time, the same decoder. It needs torch (the 'effort' extra);
        progress draws a bar on a terminal meanwhile.
        detail=False leaves out the detail layer: a faster encode, and a file that version-1 readers
        (aecodec before the detail layer) can decode, at the cost of fine detail at high qualities.
        """
        iterations = iterations_for(effort)
        refiner = self.refiner() if iterations else None  # before any work: a missing torch fails at once
        if sum(v is not None for v in (quality, target_bpp, target_size)) > 1:
            raise ValueError("give at most one of quality, target_bpp and target_size")
        if isinstance(target_size, str):
            target_size = parse_size(target_size)  # "40KB", as the command line takes it
        if target_bpp is not None and target_bpp <= 0:
            raise ValueError(f"target bpp must be positive, not {target_bpp}")
        if target_bpp is None and target_size is None:
            quality = round_quality(DEFAULT_QUALITY if quality is None else quality)
        source = imageio.load_image(image, allow_large, aec_decoder=self)
        h, w = source.rgb.shape[:2]
        container.check_dimensions(w, h)
        extra = {"layout": source.layout, "icc": source.icc, "exif": source.exif,
                 "alpha": imageio.encode_alpha(source.alpha) if source.alpha is not None else b""}
        timings = Timings()
        latent = self.analyse(source.rgb, timings)  # the analysis does not depend on quality: run it once

        def finish(q: float, hyper: bytes, coded: bytes) -> bytes:
            stream = self.detail_stream(source.rgb, q, hyper, coded, timings) if detail else b""
            return self.pack(source.rgb.shape, q, hyper, coded, detail=stream, **extra)

        def encode_at(q: float) -> bytes:
            return finish(q, *self.code_latent(latent, q, timings))

        def refine_at(q: float) -> bytes:
            gained = latent * self.gain(q)
            hyper_latent = self.hyper_analyse(gained, timings)
            start = time.perf_counter()
            refined = refiner.refine(source.rgb, gained, hyper_latent, q, iterations, progress)
            timings.add("refinement", start)
            return finish(q, *self.code_given(refined.latent, refined.hyper_latent, 1.0, timings))

        if target_bpp is None and target_size is None:
            data = refine_at(quality) if iterations else encode_at(quality)
        else:
            budget = target_size if target_size is not None else int(target_bpp * w * h / 8)
            search = fit_quality
            if target_bpp is not None:  # an unreachable target is answered in the unit it was asked in
                search = partial(fit_quality, target=f"{target_bpp:g} bpp", unit=lambda n: f"{n * 8 / (w * h):.3g} bpp")
            # At effort above 0: search at effort 0, then refine at what it found (effort.fit_quality_refined).
            data = (fit_quality_refined(encode_at, refine_at, budget, search) if iterations
                    else search(encode_at, budget))[1]
        return Encoded(data, tuple(source.warnings), dict(timings.stages) if timed else None)

    def decompress(self, data: bytes, allow_large: bool = False) -> "Image.Image":
        """An .aec file's bytes -> PIL.Image in the file's layout, with its ICC and EXIF.

        A file declaring more pixels than PIL.Image.MAX_IMAGE_PIXELS is refused unless allow_large.
        """
        return self.decode(data, allow_large=allow_large).image

    def decode(self, data: bytes, timed: bool = False, allow_large: bool = False) -> Decoded:
        """decompress, and the seconds each stage took when timed."""
        header = container.read_header(data)
        limits.check_pixels(header.width, header.height, allow_large)  # from the header, before any work
        parsed = container.unpack(data)
        codec = self.for_model(parsed.header.model_id)
        header, streams = parsed.header, parsed.streams
        try:  # the cheap streams first, so a corrupt file fails before the networks run
            imageio.check_side_data(header.layout, streams.icc, streams.exif)
            alpha = imageio.decode_alpha(streams.alpha, header.width, header.height) if header.has_alpha else None
        except ValueError as error:
            raise FormatError(str(error)) from None
        timings = Timings()
        rgb = codec.decode_rgb(parsed, timings)
        image = imageio.build_image(rgb, header.layout, alpha, streams.icc, streams.exif)
        return Decoded(image, dict(timings.stages) if timed else None)

    # -- decoding ------------------------------------------------------------------------

    def for_model(self, model_id: bytes) -> "Codec":
        """This codec, or one loaded with the installed weights that made a file."""
        if model_id == self.model_id:
            return self
        if model_id in self.other_models:
            return self.other_models[model_id]
        try:
            folder = find_bundle(model_id)
        except ModelNotFound as error:
            raise FormatError(str(error)) from None
        other = Codec(folder, self.options.threads, self.options.provider, self.options.optimize, self.tile)
        self.other_models[model_id] = other
        return other

    def decode_latent(self, parsed: container.Container,
                      timings: Timings | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(hyper-latent, mean, residual) of a file; the integers are what determinism is judged on."""
        timings = timings or Timings()
        bundle, header = self.bundle, parsed.header
        stride = bundle.hyper_stride
        rows, cols = -(-header.height // stride), -(-header.width // stride)  # hyper-latent grid
        channels = len(bundle.hyper_tables)
        channel = np.broadcast_to(np.arange(channels)[:, None, None], (channels, rows, cols))
        start = time.perf_counter()
        try:
            hyper_latent = entropy.decode(parsed.streams.hyper, channel, bundle.hyper_tables).reshape(channel.shape)
        except entropy.EntropyError as error:
            raise FormatError(f"hyper-latent stream: {error}") from None
        timings.add("entropy_coding", start)
        start = time.perf_counter()
        mean, scale_index = fixedpoint.entropy_parameters(bundle.hyper_synthesis, hyper_latent, bundle.scale_table,
                                                          self.matmul)
        timings.add("hyper_synthesis", start)
        start = time.perf_counter()
        try:
            residual = entropy.decode(parsed.streams.latent, scale_index, bundle.latent_tables)
        except entropy.EntropyError as error:
            raise FormatError(f"latent stream: {error}") from None
        timings.add("entropy_coding", start)
        return hyper_latent, mean, residual.reshape(mean.shape)

    def decode_rgb(self, parsed: container.Container, timings: Timings | None = None) -> np.ndarray:
        """RGB uint8 (H, W, 3) from a parsed container made by this codec's model."""
        timings = timings or Timings()
        header = parsed.header
        corrections = None
        if parsed.streams.detail:  # before the networks, so a corrupt stream fails early
            start = time.perf_counter()
            try:
                corrections = detail.decode(parsed.streams.detail, header.height, header.width,
                                            self.bundle.latent_tables)
            except detail.DetailError as error:
                raise FormatError(str(error)) from None
            timings.add("detail", start)
        _, mean, residual = self.decode_latent(parsed, timings)
        level = quality_to_level(header.quality, self.bundle.levels)
        inverse_gain = np.exp(interpolate_rows(self.bundle.log_inverse_gain, level))[:, None, None]
        latent = ((residual + mean) * inverse_gain).astype(np.float32)
        start = time.perf_counter()
        x = tiled(lambda t: to_uint8(self.networks.run("synthesis", t)), latent[None], True, self.tile, HALO,
                  self.bundle.latent_stride)
        timings.add("synthesis", start)
        rgb = to_pixels(x, header.height, header.width)
        if corrections is not None:
            start = time.perf_counter()
            rgb = detail.apply(rgb, corrections)
            timings.add("detail", start)
        return rgb
