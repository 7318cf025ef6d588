"""The learned transform, stage by stage: pixels <-> latent <-> the hyper-latent and latent streams.

A typical workflow looks like this::

    model = Model.load(folder, RuntimeOptions(threads=2))   # what a Codec loads once
    latent = analyse(model, rgb)                             # (M, h, w), the same for every quality
    coded = code(model, latent, quality)                     # both streams, and the latent a decoder rebuilds
    pixels = pixels_of(model, coded, height, width)          # what a decoder synthesises from them
    ...
    learned = read(model, header, streams)                   # a file's integers, checked
    bands = decoded_rows(model, learned, height, width, detail_layer)   # its pixels, band by band

Encoding: analysis -> latent * gain(quality) -> hyper-analysis -> rounded hyper-latent -> exact
integer hyper-synthesis -> (mean, scale index) -> residual = round(latent * gain - mean), coded
with the table of its scale index. Decoding runs the same exact hyper-synthesis, so it picks the
same tables, and synthesises (residual + mean) * inverse gain. A model with a checkerboard context
(format version 3) codes the anchors that way first, then the other half with the mean and scale
that the exact context network (aecodec/context.py) adds from the decoded anchors, band by band
(aecodec/bandstream.py). Every function returns what it made;
``timings``, when given, collects the seconds of each stage for ``aecodec bench --speed``.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import bandstream, container, context, deblock, detail, entropy, fixedpoint, probability
from .bundle import ModelBundle, load_bundle
from .container import Container, FormatError, Header, Streams
from .quality import level_of, row_at
from .tiling import synthesized_bands, tiled

TILE = 64  # latent units per tile (1024 pixels at a stride of 16)
HALO = 4  # latent units of context around an analysis tile, wider than its receptive field
# The synthesis' receptive field: a 3x3 convolution at the latent's resolution and at each of its three
# doublings, 1 + 1/2 + 1/4 + 1/8 latent units, under 2 (the GDNs are 1x1). A halo of 2 gives the same pixels
# as any wider one (tests/test_decode_memory.py checks that tiles match the whole image bit for bit).
SYNTHESIS_HALO = 2
SYNTHESIS_TILE = 36  # the largest synthesis tile of an image that needs several (see synthesis_tile)


@dataclass
class Timings:
    """Seconds spent in each stage of one call."""

    stages: dict = field(default_factory=dict)

    def add(self, stage: str, start: float) -> None:
        self.stages[stage] = self.stages.get(stage, 0.0) + time.perf_counter() - start


@dataclass(frozen=True)
class Model:
    """One model, loaded: its bundle, its ONNX sessions, the exact GEMM of its hyper-synthesis."""

    bundle: ModelBundle
    networks: object  # networks.Networks: ONNX Runtime sessions, each made on first use
    matmul: object  # float64 products for fixedpoint: ONNX Runtime's GEMM (exactgemm), or numpy's
    tile: int = TILE
    hyper_halves: tuple = ()  # the hyper-synthesis cut to its mean and its scale outputs

    @classmethod
    def load(cls, folder: str | Path, options, tile: int = TILE) -> "Model":
        """A bundle with its sessions; ONNX Runtime is imported here, not with this module, so the
        header-only paths (`aecodec info`, Pillow's Image.open) never load it."""
        # The bundle's files are read, hashed and inflated on another thread while ONNX Runtime's library loads.
        with ThreadPoolExecutor(1, thread_name_prefix="aecodec-bundle") as worker:
            loading = worker.submit(load_bundle, folder)
            from .exactgemm import OrtMatMul
            from .networks import Networks
            bundle = loading.result()
        # Beside the numpy reference networks, numpy's products, so that backend shares nothing with ONNX Runtime.
        matmul = np.matmul if options.provider == "reference" else OrtMatMul(options)
        return cls(bundle, Networks(bundle, options), matmul, tile, fixedpoint.split_outputs(bundle.hyper_synthesis))


@dataclass(frozen=True)
class Coded:
    """The learned part of a file, as the encoder made it and as a decoder will rebuild it."""

    hyper: bytes  # the hyper-latent stream
    latent: bytes  # the latent stream
    rebuilt: np.ndarray | None  # float32 (M, h, w): (residual + mean) * inverse gain, the decoder's synthesis
    # input; None when the caller will not synthesise (no detail layer), as it costs a pass and a latent's memory
    quality: float


@dataclass(frozen=True)
class Passes:
    """A version-3 latent stream, split into its passes: decoded_bands decodes them band by band."""

    band_rows: int  # latent rows per band
    blobs: list  # the passes' entropy-coded streams, in stream order (bandstream.stream_order)
    shape: tuple  # (M, rows, width) of the latent


@dataclass(frozen=True)
class Learned:
    """The learned part of a file, read: its integers, the hyper-latent's means to be made band by band."""

    hyper_latent: np.ndarray  # int64 (N, h/4, w/4)
    # (M, h, w), int16 or int32 where they hold it (int64 for crafted values); None for version 3, whose
    # residual is decoded band by band, as the synthesis needs it, from passes
    residual: np.ndarray | None
    quality: float
    passes: Passes | None = None  # version 3

    @property
    def shape(self) -> tuple:
        """(M, rows, width) of the latent."""
        return self.passes.shape if self.passes is not None else self.residual.shape


# -- pixels to streams ---------------------------------------------------------------------------


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


def analyse(model: Model, rgb: np.ndarray, timings: Timings | None = None) -> np.ndarray:
    """Latent (M, h, w) of an RGB uint8 image; independent of quality, so worth keeping."""
    timings = timings or Timings()
    start = time.perf_counter()
    x = pad_image(rgb, model.bundle.hyper_stride)
    latent = tiled(lambda t: model.networks.run("analysis", from_uint8(t)), x, False, model.tile, HALO,
                   model.bundle.latent_stride)[0]
    timings.add("analysis", start)
    return latent


def gain(model: Model, quality: float) -> np.ndarray:
    """The latent's per-channel gain (M, 1, 1) at a quality."""
    return np.exp(row_at(model.bundle.log_gain, level_of(quality, model.bundle.levels)))[:, None, None]


def inverse_gain(model: Model, quality: float) -> np.ndarray:
    """What a decoder multiplies the rebuilt latent by, (M, 1, 1), at a file's quality."""
    return np.exp(row_at(model.bundle.log_inverse_gain, level_of(quality, model.bundle.levels)))[:, None, None]


def hyper_analyse(model: Model, gained_latent: np.ndarray, timings: Timings | None = None) -> np.ndarray:
    """The amortised integer hyper-latent (N, h/4, w/4) of a gained latent."""
    timings = timings or Timings()
    start = time.perf_counter()
    hyper_latent = np.rint(model.networks.run("hyper_analysis", gained_latent[None])[0]).astype(np.int64)
    timings.add("hyper_analysis", start)
    return hyper_latent


def code(model: Model, latent: np.ndarray, quality: float, timings: Timings | None = None,
         rebuild: bool = True) -> Coded:
    """Both streams of a latent at a quality (and, with rebuild, the latent a decoder will rebuild)."""
    scale = gain(model, quality)
    return code_given(model, latent, hyper_analyse(model, latent * scale, timings), quality, scale, timings, rebuild)


def code_given(model: Model, latent: np.ndarray, hyper_latent: np.ndarray, quality: float,
               scale: np.ndarray | float = 1.0, timings: Timings | None = None, rebuild: bool = True) -> Coded:
    """Both streams of a given latent and integer hyper-latent, on the exact path: exact hyper-synthesis
    -> means and scale indices -> symbols = round(latent * scale - mean).

    Effort refinement hands its own latent (gain already applied: scale 1) and hyper-latent here.
    """
    timings = timings or Timings()
    bundle = model.bundle
    hyper_latent = np.asarray(hyper_latent, dtype=np.int64)
    if bundle.context is not None:
        return code_two_pass(model, latent, hyper_latent, quality, scale, timings, rebuild)
    start = time.perf_counter()
    mean, scale_index = fixedpoint.entropy_parameters(bundle.hyper_synthesis, hyper_latent, bundle.scale_table,
                                                      model.matmul)
    timings.add("hyper_synthesis", start)
    start = time.perf_counter()
    hyper = hyper_stream(model, hyper_latent)
    # The gained latent again rather than kept: for a large photo it is 100s of MB the hyper-synthesis needs.
    gained = latent * scale
    np.subtract(gained, mean, out=gained)
    residual = np.rint(gained, out=gained).astype(np.int64)
    coded = entropy.encode(residual, scale_index, bundle.latent_tables)
    timings.add("entropy_coding", start)
    rebuilt = dequantised(mean, residual, inverse_gain(model, quality))[0] if rebuild else None
    return Coded(hyper, coded, rebuilt, quality)


def hyper_stream(model: Model, hyper_latent: np.ndarray, max_escape: int = entropy.MAX_ESCAPE) -> bytes:
    """The hyper-latent stream: each channel with its own table."""
    channel = np.broadcast_to(np.arange(len(hyper_latent))[:, None, None], hyper_latent.shape)
    return entropy.encode(hyper_latent, channel, model.bundle.hyper_tables, max_escape)


def code_two_pass(model: Model, latent: np.ndarray, hyper_latent: np.ndarray, quality: float,
                  scale: np.ndarray | float, timings: Timings, rebuild: bool) -> Coded:
    """code_given for a model with a checkerboard context: the version-3 latent stream."""
    bundle = model.bundle
    start = time.perf_counter()
    mean_fixed, scale_fixed = np.split(fixedpoint.run_layers(bundle.hyper_synthesis, hyper_latent, model.matmul), 2)
    timings.add("hyper_synthesis", start)
    start = time.perf_counter()
    hyper = hyper_stream(model, hyper_latent)
    gained = latent * scale
    residual = np.rint(gained - fixedpoint.to_mean(mean_fixed)).astype(np.int64)  # the anchors' are final
    timings.add("entropy_coding", start)
    start = time.perf_counter()
    mean_fixed, scale_fixed = two_pass_fixed(model, mean_fixed, scale_fixed, residual, quality)
    timings.add("context", start)
    start = time.perf_counter()
    mean = fixedpoint.to_mean(mean_fixed)
    np.subtract(gained, mean, out=gained)
    residual = np.rint(gained, out=gained).astype(np.int64)
    stream = band_stream(model, residual, probability.scale_index(scale_fixed, bundle.scale_table))
    timings.add("entropy_coding", start)
    rebuilt = dequantised(mean, residual, inverse_gain(model, quality))[0] if rebuild else None
    return Coded(hyper, stream, rebuilt, quality)


def two_pass_fixed(model: Model, mean_fixed: np.ndarray, scale_fixed: np.ndarray, residual: np.ndarray,
                   quality: float) -> tuple[np.ndarray, np.ndarray]:
    """Every element's fixed-point (mean, scale) from the hyper-synthesis' and the anchors' residual, over
    the whole latent at once: each element's depends only on the anchors within context.REACH of it, so
    these are the integers a decoder makes band by band (decoded_bands)."""
    rows = residual.shape[1]
    anchors = np.zeros((len(residual), rows + 2 * context.REACH, residual.shape[2]), np.int64)
    anchors[:, context.REACH:context.REACH + rows] = context.anchor_input(residual, mean_fixed)
    return context.two_pass_parameters(model.bundle.context, anchors, mean_fixed, scale_fixed, 0,
                                       level_bias(model, quality), model.matmul)


def band_stream(model: Model, residual: np.ndarray, scale_index: np.ndarray,
                max_escape: int = entropy.MAX_ESCAPE) -> bytes:
    """The version-3 latent stream of a residual and its scale indices (aecodec/bandstream.py)."""
    rows, band_rows = residual.shape[1], bandstream.BAND_ROWS
    blobs = []
    for pass_, band in bandstream.stream_order(bandstream.band_count(rows, band_rows)):
        top, bottom = bandstream.band_rows(band, band_rows, rows)
        where = pass_positions(pass_, top, bottom, residual.shape[2])
        blobs.append(entropy.encode(residual[:, top:bottom][:, where], scale_index[:, top:bottom][:, where],
                                    model.bundle.latent_tables, max_escape))
    return bandstream.pack(band_rows, blobs)


def latent_stream(model: Model, hyper_latent: np.ndarray, residual: np.ndarray, quality: float,
                  max_escape: int = entropy.MAX_ESCAPE) -> bytes:
    """The latent stream that codes these integers, whatever they are (rewrite.py and the tests make
    streams from changed integers with it): grouped by table over the whole latent (versions 1 and 2),
    or in two passes band by band for a model with a context (version 3)."""
    bundle = model.bundle
    hyper_latent, residual = np.asarray(hyper_latent, np.int64), np.asarray(residual, np.int64)
    mean_fixed, scale_fixed = np.split(fixedpoint.run_layers(bundle.hyper_synthesis, hyper_latent, model.matmul), 2)
    if bundle.context is None:
        return entropy.encode(residual, probability.scale_index(scale_fixed, bundle.scale_table),
                              bundle.latent_tables, max_escape)
    _, scale_fixed = two_pass_fixed(model, mean_fixed, scale_fixed, residual, quality)
    return band_stream(model, residual, probability.scale_index(scale_fixed, bundle.scale_table), max_escape)


def pass_positions(pass_: int, top: int, bottom: int, width: int) -> np.ndarray:
    """(bottom - top, width) bool: the positions of rows [top, bottom) that a pass codes (0: anchors)."""
    anchors = context.is_anchor(top, bottom - top, width)
    return anchors if pass_ == 0 else ~anchors


def level_bias(model: Model, quality: float) -> np.ndarray:
    """The context's rate-level bias at a quality, from the header's integer hundredths."""
    bundle = model.bundle
    return context.level_bias(bundle.context, context.quality_units(quality), bundle.levels,
                              bundle.extrapolated_levels)


def file_of(model: Model, coded: Coded, height: int, width: int) -> bytes:
    """An RGB .aec file of the learned part alone: no detail layer, no alpha, ICC or EXIF."""
    header = Header("RGB", model.bundle.model_id, width, height, coded.quality,
                    two_pass=model.bundle.context is not None)
    return container.pack(header, Streams(coded.hyper, coded.latent))


def pixels_of(model: Model, coded: Coded, height: int, width: int, timings: Timings | None = None,
              deblocking: float = 0.0) -> np.ndarray:
    """uint8 (height, width, 3): what a decoder synthesises from coded (and deblocks at that threshold),
    without a detail layer, from the latent the encoder rebuilt as the decoder does rather than by
    decoding the streams again."""
    def latent_rows(top: int, bottom: int) -> np.ndarray:
        return coded.rebuilt[None, :, top:bottom]

    return whole(synthesised_rows(model, latent_rows, coded.rebuilt.shape[1:], height, width, timings, deblocking),
                 height)


# -- streams to pixels ---------------------------------------------------------------------------


def read(model: Model, header: Header, streams: Streams, timings: Timings | None = None) -> Learned:
    """The integers of a file's learned part (FormatError on a corrupt stream)."""
    has_context = model.bundle.context is not None
    if header.two_pass != has_context:
        raise FormatError(f"format version {header.version} file names model {model.bundle.model_id.hex()}, "
                          + ("which has no checkerboard context: its files are version 1 or 2" if not has_context
                             else "which has a checkerboard context: its files are version 3"))
    hyper_latent = read_hyper_latent(model, header, streams, timings)
    if has_context:
        return Learned(hyper_latent, None, header.quality, read_passes(model, streams, hyper_latent))
    return Learned(hyper_latent, compact(read_residual(model, streams, hyper_latent, timings)), header.quality)


def read_passes(model: Model, streams: Streams, hyper_latent: np.ndarray) -> Passes:
    """A version-3 latent stream's layout, checked (FormatError); its passes are decoded by decoded_bands."""
    up = fixedpoint.upsampling(model.bundle.hyper_synthesis)
    shape = (model.bundle.config.latent_channels, hyper_latent.shape[1] * up, hyper_latent.shape[2] * up)
    try:
        band_rows, blobs = bandstream.unpack(streams.latent, shape[1])
    except bandstream.StreamError as error:
        raise FormatError(str(error)) from None
    return Passes(band_rows, blobs, shape)


def decoded_bands(model: Model, learned: Learned,
                  timings: Timings | None = None) -> Iterator[tuple[int, int, np.ndarray, np.ndarray]]:
    """(top, bottom, residual, fixed-point mean) of each band of a version-3 file, top to bottom, as its
    passes are decoded in stream order (FormatError on a corrupt one). The hyper-synthesis' outputs and
    the residual of a band are made when its anchors come and dropped once the band below has had its
    second pass: three bands are held at a time, never the whole latent."""
    timings = timings or Timings()
    bundle, passes = model.bundle, learned.passes
    channels, rows, width = passes.shape
    bias = level_bias(model, learned.quality)
    fixed: dict[int, tuple[np.ndarray, np.ndarray]] = {}  # band -> its (mean, scale) from the hyper-synthesis
    residual: dict[int, np.ndarray] = {}  # band -> its residual, int32 (int64 for crafted values)
    for (pass_, band), blob in zip(bandstream.stream_order(bandstream.band_count(rows, passes.band_rows)),
                                   passes.blobs):
        top, bottom = bandstream.band_rows(band, passes.band_rows, rows)
        start = time.perf_counter()
        if pass_ == 0:
            fixed[band] = tuple(np.split(fixedpoint.output_rows(bundle.hyper_synthesis, learned.hyper_latent, top,
                                                                bottom, model.matmul), 2))
            residual[band] = np.zeros((channels, bottom - top, width), np.int32)
            timings.add("hyper_synthesis", start)
            scale_fixed = fixed[band][1]
        else:
            anchors = anchor_window(residual, fixed, passes.band_rows, top - context.REACH, bottom + context.REACH,
                                    rows)
            mean_fixed, scale_fixed = context.two_pass_parameters(bundle.context, anchors, *fixed[band], top, bias,
                                                                  model.matmul)
            timings.add("context", start)
        start = time.perf_counter()
        where = pass_positions(pass_, top, bottom, width)
        scale_index = probability.scale_index(scale_fixed[:, where], bundle.scale_table)
        values = _entropy_decoded(blob, scale_index, bundle.latent_tables, f"latent stream, band {band} pass {pass_}")
        residual[band] = widen_for(residual[band], values)
        residual[band][:, where] = values.reshape(channels, -1)
        timings.add("entropy_coding" if pass_ == 0 else "entropy_coding_second_pass", start)
        if pass_ == 1:
            yield top, bottom, residual[band], mean_fixed
            fixed.pop(band - 1, None)
            residual.pop(band - 1, None)


def widen_for(array: np.ndarray, values: np.ndarray) -> np.ndarray:
    """array, or a copy of it as int64 where values do not fit its integer type (crafted files)."""
    bounds = np.iinfo(array.dtype)
    if values.size and (values.min() < bounds.min or values.max() > bounds.max):
        return array.astype(np.int64)
    return array


def anchor_window(residual: dict, fixed: dict, band_rows: int, first: int, stop: int, rows: int) -> np.ndarray:
    """context.anchor_input for latent rows [first, stop), zero outside the latent's rows: from the decoded
    residual and the hyper-synthesis' means of the bands that hold those rows (both by band)."""
    channels, _, width = next(iter(residual.values())).shape
    window = np.zeros((channels, stop - first, width), np.int64)
    top, bottom = max(first, 0), min(stop, rows)
    for band in range(top // band_rows, (bottom - 1) // band_rows + 1):
        band_top = band * band_rows
        low, high = max(band_top, top), min(band_top + band_rows, bottom)
        window[:, low - first:high - first] = context.anchor_input(
            residual[band][:, low - band_top:high - band_top], fixed[band][0][:, low - band_top:high - band_top])
    return window


def read_hyper_latent(model: Model, header: Header, streams: Streams,
                      timings: Timings | None = None) -> np.ndarray:
    """The integer hyper-latent (N, h, w) of a file, int64."""
    timings = timings or Timings()
    stride = model.bundle.hyper_stride
    rows, cols = -(-header.height // stride), -(-header.width // stride)  # hyper-latent grid
    channels = len(model.bundle.hyper_tables)
    channel = np.broadcast_to(np.arange(channels)[:, None, None], (channels, rows, cols))
    start = time.perf_counter()
    hyper_latent = _entropy_decoded(streams.hyper, channel, model.bundle.hyper_tables, "hyper-latent stream")
    timings.add("entropy_coding", start)
    return hyper_latent.reshape(channel.shape)


def read_residual(model: Model, streams: Streams, hyper_latent: np.ndarray,
                  timings: Timings | None = None) -> np.ndarray:
    """The latent residual (M, H, W) of a file, int64, decoded with the tables its scale indices pick.

    The stream groups symbols by table over the whole image (entropy.py), so every scale index is
    needed first: they are computed band by band and kept as uint8, a sixteenth of int64.
    """
    timings = timings or Timings()
    start = time.perf_counter()
    scale_index = fixedpoint.scale_indices(model.hyper_halves[1], hyper_latent, model.bundle.scale_table,
                                           model.matmul)
    timings.add("hyper_synthesis", start)
    start = time.perf_counter()
    residual = _entropy_decoded(streams.latent, scale_index, model.bundle.latent_tables, "latent stream")
    timings.add("entropy_coding", start)
    return residual.reshape(scale_index.shape)


def _entropy_decoded(blob: bytes, table_index: np.ndarray, tables: entropy.EntropyTables, stream: str) -> np.ndarray:
    """entropy.decode, a corrupt stream reported as the file's FormatError naming the stream."""
    try:
        return entropy.decode(blob, table_index, tables)
    except entropy.EntropyError as error:
        raise FormatError(f"{stream}: {error}") from None


def latent_mean(model: Model, hyper_latent: np.ndarray, top: int, bottom: int) -> np.ndarray:
    """The means of latent rows [top, bottom) of a file without a context, float64 (M, bottom - top, W):
    entropy_parameters' exactly."""
    return fixedpoint.to_mean(fixedpoint.output_rows(model.hyper_halves[0], hyper_latent, top, bottom,
                                                     model.matmul))


def decode_latent(model: Model, parsed: Container,
                  timings: Timings | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(hyper-latent, mean, residual) of a parsed file, whole, int64 and the mean float64: the integers
    that determinism is judged on. Decoding itself (decoded_rows) makes the same numbers band by band."""
    learned = read(model, parsed.header, parsed.streams, timings)
    if learned.passes is not None:
        bands = list(decoded_bands(model, learned, timings))
        return (learned.hyper_latent, fixedpoint.to_mean(np.concatenate([band[3] for band in bands], axis=1)),
                np.concatenate([band[2] for band in bands], axis=1).astype(np.int64))
    rows = learned.residual.shape[1]
    return learned.hyper_latent, latent_mean(model, learned.hyper_latent, 0, rows), learned.residual.astype(np.int64)


def read_detail(model: Model, header: Header, streams: Streams,
                timings: Timings | None = None) -> detail.Detail | None:
    """A file's detail layer, None without one (FormatError on a corrupt one)."""
    if not streams.detail:
        return None
    timings = timings or Timings()
    start = time.perf_counter()
    try:
        corrections = detail.decode(streams.detail, header.height, header.width, model.bundle.latent_tables)
    except detail.DetailError as error:
        raise FormatError(str(error)) from None
    timings.add("detail", start)
    return corrections


def decoded_rows(model: Model, learned: Learned, height: int, width: int, corrections: detail.Detail | None,
                 timings: Timings | None = None, deblocking: float = 0.0) -> Iterator[np.ndarray]:
    """A file's pixels in bands of rows, top to bottom, each uint8 (rows, width, 3); deblocking is the
    filter's threshold (0 for files without it).

    For versions 1 and 2, only what the entropy coding needs is held whole: the residual and, while it
    is decoded, the scale indices. Means, latents, pixels and detail corrections are made one band at a
    time, with the same numbers as a whole-image decode. Version 3 holds nothing whole: its passes are
    decoded band by band as the synthesis reaches them (two_pass_rows).
    """
    timings = timings or Timings()
    scale = inverse_gain(model, learned.quality)
    if learned.passes is not None:
        latent_rows = two_pass_rows(model, learned, scale, timings)
    else:
        def latent_rows(top: int, bottom: int) -> np.ndarray:
            start = time.perf_counter()
            latent = dequantised(latent_mean(model, learned.hyper_latent, top, bottom),
                                 learned.residual[:, top:bottom], scale)
            timings.add("hyper_synthesis", start)
            return latent

    bands = synthesised_rows(model, latent_rows, learned.shape[1:], height, width, timings, deblocking)
    yield from detail.apply_rows(bands, corrections, timings.add)


def two_pass_rows(model: Model, learned: Learned, scale: np.ndarray, timings: Timings):
    """latent_rows(top, bottom) for synthesised_rows, from a version-3 file's bands as decoded_bands makes
    them: bands are decoded as the rows asked for reach them, and dropped once they lie wholly above the
    rows asked for, less SYNTHESIS_HALO (a row of synthesis tiles may reach back that far: tiling.spans)."""
    bands = decoded_bands(model, learned, timings)
    held: list[tuple[int, int, np.ndarray, np.ndarray]] = []  # (top, bottom, residual, fixed-point mean)

    def latent_rows(top: int, bottom: int) -> np.ndarray:
        while not held or held[-1][1] < bottom:
            held.append(next(bands))
        held[:] = [band for band in held if band[1] > top - SYNTHESIS_HALO]
        if held[0][0] > top:
            raise RuntimeError(f"latent rows from {top} were asked for after they were dropped")
        pieces = [(max(top, t) - t, min(bottom, b) - t, r, m) for t, b, r, m in held if t < bottom and b > top]
        mean = np.concatenate([m[:, low:high] for low, high, _, m in pieces], axis=1)
        residual = np.concatenate([r[:, low:high] for low, high, r, _ in pieces], axis=1)
        start = time.perf_counter()
        latent = dequantised(fixedpoint.to_mean(mean), residual, scale)
        timings.add("hyper_synthesis", start)
        return latent

    return latent_rows


# -- shared by both directions -------------------------------------------------------------------


def dequantised(mean: np.ndarray, residual: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """(1, M, rows, W) float32 synthesis input from float64 means (reused as the workspace), the
    residual and the inverse gain: the one place encoder (whole) and decoder (band by band) make it,
    elementwise, so their syntheses see the same floats."""
    mean += residual  # in float64, as (residual + mean) * inverse_gain always was
    mean *= scale
    return mean.astype(np.float32)[None]


def to_uint8(x: np.ndarray) -> np.ndarray:
    """Synthesis output in [0, 1] -> uint8, same shape; NaN and infinities (corrupt files) give 0 and 255.
    x is used as the workspace."""
    np.fmax(x, 0.0, out=x)  # fmax and fmin map NaN to the bound
    np.fmin(x, 1.0, out=x)
    x *= 255.0
    return np.rint(x, out=x).astype(np.uint8)


def synthesis_tile(model: Model, rows: int, cols: int) -> int:
    """Latent units per side of a synthesis tile for a latent of rows x cols.

    A latent that fits one tile of model.tile runs whole, the fastest. Larger ones run in tiles of at
    most SYNTHESIS_TILE, whose contexts of 40 x 40 units (SYNTHESIS_HALO on each side) cost ONNX
    Runtime about 200 MB of activations, against 500 MB for 72 x 72 (a tile of 64 and a halo of 4),
    about as much as the rest of a 6000x4000 decode.
    """
    return model.tile if rows <= model.tile and cols <= model.tile else min(model.tile, SYNTHESIS_TILE)


def synthesised_rows(model: Model, latent_rows, shape: tuple[int, int], height: int, width: int,
                     timings: Timings | None = None, deblocking: float = 0.0) -> Iterator[np.ndarray]:
    """uint8 (rows, width, 3) bands of the synthesis of a latent of shape (rows, cols) whose rows
    latent_rows(top, bottom) makes as (1, M, bottom - top, cols) float32, cut to height x width and
    put through the deblocking filter at that threshold (0: none) before rounding."""
    timings = timings or Timings()

    def synthesis(latent: np.ndarray) -> np.ndarray:
        start = time.perf_counter()
        pixels = model.networks.run("synthesis", latent)
        pixels = pixels if deblocking > 0 else to_uint8(pixels)  # without the filter, a quarter of the memory
        timings.add("synthesis", start)
        return pixels

    rows, cols = shape
    bands = synthesized_bands(synthesis, latent_rows, rows, cols, synthesis_tile(model, rows, cols), SYNTHESIS_HALO,
                              model.bundle.latent_stride)
    bands = _cropped(bands, height, width)
    if deblocking > 0:
        bands = map(to_uint8, deblock.apply_rows(bands, deblocking, timings.add))
    return map(np.ascontiguousarray, bands)


def compact(values: np.ndarray) -> np.ndarray:
    """Integers in int16 or else int32 when they fit (a quarter or half of int64), else as they are."""
    for dtype in (np.int16, np.int32):
        bounds = np.iinfo(dtype)
        if not values.size or bounds.min <= values.min() and values.max() <= bounds.max:
            return values.astype(dtype)
    return values


def _cropped(bands: Iterable[np.ndarray], height: int, width: int) -> Iterator[np.ndarray]:
    """Synthesis bands (1, 3, h, W') of the padded image -> views (h, width, 3), cut to height rows."""
    top = 0
    for band in bands:
        rows = band[0, :, :max(height - top, 0), :width]
        top += band.shape[2]
        if rows.shape[1]:
            yield rows.transpose(1, 2, 0)  # a view: the deblocking filter works on it in place
        del band, rows  # not held while the next band is made


def whole(bands: Iterable[np.ndarray], height: int) -> np.ndarray:
    """Bands of rows, stacked into one uint8 (height, width, 3) image without holding them all twice."""
    out, top = None, 0
    for rows in bands:
        if out is None:
            out = np.empty((height, *rows.shape[1:]), np.uint8)
        out[top:top + len(rows)] = rows
        top += len(rows)
    return out
