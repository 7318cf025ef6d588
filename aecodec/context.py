"""The checkerboard context in exact integer arithmetic: the second pass of format version 3.

A typical use, for the rows [top, bottom) of a latent (``aecodec/transform.py`` does this band by band)::

    bias = level_bias(layers, quality_hundredths, levels, extrapolated)      # the header's quality, in integers
    mean, scale = two_pass_parameters(layers, anchors, mean, scale, top, bias, matmul)

The latent is split in a checkerboard: anchors, where (row + column) is even, are coded with the
hyper-synthesis' mean and scale; every other element then gets that mean and scale plus what a small
network reads from the decoded anchors within 2 rows and columns of it (its torch twin, and how it
trains, are in ``aecodec/refine_torch/checkerboard.py``). That network runs here, like the
hyper-synthesis in ``aecodec/fixedpoint.py``, in integers only, so every decoder on every machine
picks the same probability tables:

* its inputs are fixed-point numbers with ``INPUT_FRACTION_BITS`` fractional bits, clamped to
  +-``INPUT_LIMIT``: a decoded anchor (residual * 2**16 + the hyper-synthesis' mean, shifted down),
  and the hyper-synthesis' own mean and scale at the element;
* weights are integers of at most ``WEIGHT_BITS`` bits, each layer's products are summed by a float64
  matrix product whose every partial sum stays below 2**53 (checked when the weights load), and
  requantised by an int64 multiply, add and arithmetic shift;
* the rate level's bias is interpolated from integer rows by the integer quality of the header.

Layers: ``seen``, a 5x5 convolution over the anchors (only the 12 taps at an odd offset from the
centre, which are the anchors around a non-anchor), signed output clamped to +-INPUT_LIMIT; ``hidden``,
a 1x1 layer over (seen, mean, scale) plus the level's bias, ReLU, clamped to ACTIVATION_MAX; ``out``,
a 1x1 layer whose output, in the hyper-synthesis' 16 fractional bits, is added to its mean and scale.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from .fixedpoint import ACTIVATION_MAX, EXACT_LIMIT, INPUT_LIMIT, MULTIPLIER_BITS, OUTPUT_FRACTION_BITS, WEIGHT_BITS
from .fixedpoint import MatMul
from .quality import HUNDREDTHS, MAX, MIN

INPUT_FRACTION_BITS = 4  # of every input: a sixteenth of a latent unit, up to +-2048 units within INPUT_LIMIT
INPUT_SHIFT = OUTPUT_FRACTION_BITS - INPUT_FRACTION_BITS
KERNEL = 5
REACH = KERNEL // 2  # rows (and columns) of anchors on each side that a non-anchor's parameters read
# (row, column) offsets of the taps that fall on anchors around a non-anchor, in the weights' order
TAPS = tuple((dy, dx) for dy in range(-REACH, REACH + 1) for dx in range(-REACH, REACH + 1) if (dy + dx) % 2)
CHUNK_POSITIONS = 2048  # non-anchors per matrix product: 12 x channels x 8 bytes each


@dataclass(frozen=True)
class IntegerLayer:
    """acc = weight @ x + bias; out = (acc * multiplier + 2**(shift - 1)) >> shift, per output row."""

    weight: np.ndarray  # (out, in) int64, at most WEIGHT_BITS bits
    bias: np.ndarray  # (out,) int64, in accumulator units
    multiplier: np.ndarray  # (out,) int64
    shift: int

    @functools.cached_property
    def gemm_weight(self) -> np.ndarray:
        return np.ascontiguousarray(self.weight, dtype=np.float64)

    def accumulator_bound(self, input_limit: int, extra_bias: int = 0) -> int:
        return int((np.abs(self.weight).sum(1) * input_limit + np.abs(self.bias) + extra_bias).max())


@dataclass(frozen=True)
class ContextLayers:
    """The integer context network of a bundle (see the module's docstring)."""

    seen: IntegerLayer  # (context, len(TAPS) * M): tap-major, then latent channel
    hidden: IntegerLayer  # (hidden, context + 2M); its bias is zero, level_bias carries it
    out: IntegerLayer  # (2M, hidden): mean changes, then scale changes
    level_bias: np.ndarray  # (trained levels, hidden) int64, hidden's bias at each trained rate level
    scales: np.ndarray  # float64 [seen's, hidden's] output scale: only to rebuild the float network

    @property
    def latent_channels(self) -> int:
        return len(self.out.weight) // 2


def check_context(layers: ContextLayers) -> None:
    """Refuse weights whose arithmetic could leave the exact range."""
    bias_peak = int(np.abs(layers.level_bias).max(initial=0))
    bounds = ((layers.seen, INPUT_LIMIT, 0), (layers.hidden, INPUT_LIMIT, bias_peak), (layers.out, ACTIVATION_MAX, 0))
    for name, (layer, limit, extra) in zip(("seen", "hidden", "out"), bounds):
        bound = layer.accumulator_bound(limit, extra)
        if (np.abs(layer.weight).max(initial=0) >= 1 << (WEIGHT_BITS - 1) or bound >= EXACT_LIMIT
                or bound * int(np.abs(layer.multiplier).max(initial=0)) >= 1 << 62 or not 1 <= layer.shift <= 62):
            raise ValueError(f"context layer {name} could overflow exact arithmetic")
    channels = layers.latent_channels
    if layers.seen.weight.shape[1] != len(TAPS) * channels or layers.hidden.weight.shape[1] != len(
            layers.seen.weight) + 2 * channels or layers.out.weight.shape[1] != len(layers.hidden.weight):
        raise ValueError("context layers do not fit together")


def level_bias(layers: ContextLayers, quality_hundredths: int, levels: int, extrapolated: int) -> np.ndarray:
    """The hidden layer's bias (hidden,) int64 at a quality, interpolated in integers between the trained
    levels' rows: where the quality falls among the bundle's levels rows (quality.level_of), less the rows
    export extrapolated below the trained ones, clamped to the trained range (as training clamps)."""
    rows = layers.level_bias
    span = round((MAX - MIN) * HUNDREDTHS)  # level_of's denominator, in hundredths
    position = (quality_hundredths - round(MIN * HUNDREDTHS)) * (levels - 1) - extrapolated * span
    position = min(max(position, 0), (len(rows) - 1) * span)
    if len(rows) == 1:
        return rows[0].copy()
    low = min(position // span, len(rows) - 2)
    fraction = position - low * span
    return (rows[low] * (span - fraction) + rows[low + 1] * fraction + span // 2) // span


def to_input(fixed: np.ndarray) -> np.ndarray:
    """Hyper-synthesis fixed point (16 fractional bits) -> the context's input: shifted, clamped, int64."""
    return np.clip(np.asarray(fixed, dtype=np.int64) >> INPUT_SHIFT, -INPUT_LIMIT, INPUT_LIMIT)


def anchor_input(residual: np.ndarray, mean_fixed: np.ndarray) -> np.ndarray:
    """A decoded anchor, residual + mean, as the context's input: (residual * 2**16 + mean) >> INPUT_SHIFT,
    which is residual * 2**INPUT_FRACTION_BITS + (mean >> INPUT_SHIFT), clamped."""
    value = np.asarray(mean_fixed, dtype=np.int64) >> INPUT_SHIFT
    value += np.asarray(residual, dtype=np.int64) << INPUT_FRACTION_BITS
    return np.clip(value, -INPUT_LIMIT, INPUT_LIMIT, out=value)


def is_anchor(top: int, rows: int, width: int) -> np.ndarray:
    """(rows, width) bool: where (row + column) is even, rows counted from the latent's row top."""
    row, col = np.mgrid[top:top + rows, :width]
    return (row + col) % 2 == 0


def requantize(acc: np.ndarray, layer: IntegerLayer, relu: bool, limit: int | None) -> np.ndarray:
    """(out, positions) accumulator without bias -> output, in acc's memory."""
    acc += layer.bias[:, None]
    if relu:
        np.maximum(acc, 0, out=acc)
    acc *= layer.multiplier[:, None]
    acc += 1 << (layer.shift - 1)
    acc >>= layer.shift
    if limit is not None:
        np.clip(acc, 0 if relu else -limit, limit, out=acc)
    return acc


def product(layer: IntegerLayer, x: np.ndarray, matmul: MatMul) -> np.ndarray:
    """weight @ x, exactly, as int64 (every partial sum is an integer below 2**53)."""
    return matmul(layer.gemm_weight, np.ascontiguousarray(x, dtype=np.float64)).astype(np.int64)


def changes(layers: ContextLayers, anchors: np.ndarray, mean: np.ndarray, scale: np.ndarray,
            bias: np.ndarray, matmul: MatMul = np.matmul) -> np.ndarray:
    """The network on gathered inputs: anchors (len(TAPS) * M, P), mean and scale (M, P), all context inputs
    (to_input / anchor_input); bias is level_bias'. Returns (2M, P) int64: mean changes, scale changes."""
    seen = requantize(product(layers.seen, anchors, matmul), layers.seen, False, INPUT_LIMIT)
    inputs = np.empty((len(seen) + len(mean) + len(scale), seen.shape[1]))
    inputs[:len(seen)], inputs[len(seen):len(seen) + len(mean)], inputs[len(seen) + len(mean):] = seen, mean, scale
    hidden = product(layers.hidden, inputs, matmul)
    hidden += bias[:, None]
    hidden = requantize(hidden, layers.hidden, True, ACTIVATION_MAX)
    return requantize(product(layers.out, hidden, matmul), layers.out, False, None)


def two_pass_parameters(layers: ContextLayers, anchors: np.ndarray, mean: np.ndarray, scale: np.ndarray, top: int,
                        bias: np.ndarray, matmul: MatMul = np.matmul) -> tuple[np.ndarray, np.ndarray]:
    """Fixed-point (mean, scale), each (M, rows, W) int64, of the latent rows [top, top + rows): the
    hyper-synthesis' (mean, scale) on the anchors, with the context's changes on the rest.

    anchors is anchor_input for rows [top - REACH, top + rows + REACH), zero for rows outside the latent
    (its values at non-anchors are never read); mean and scale are the hyper-synthesis' fixed-point
    outputs for the rows themselves. New arrays are returned.

    Each non-anchor's changes depend on its own inputs alone, so any grouping of them gives the same
    integers. They are taken in blocks of rows, and within a block by row parity: the non-anchors of
    every other row then sit in every other column, and each tap's inputs are one strided slice; both
    parities of a block go through the network in one product per layer.
    """
    channels, rows, width = mean.shape
    padded = np.zeros((channels, rows + 2 * REACH, width + 2 * REACH))  # float64: the products' operands
    padded[:, :, REACH:REACH + width] = anchors  # every tap of a non-anchor falls on an anchor (odd offset)
    mean, scale = mean.astype(np.int64), scale.astype(np.int64)
    block = max(2, -(-2 * CHUNK_POSITIONS // max(width, 1)) // 2 * 2)
    for first in range(0, rows, block):
        stop = min(first + block, rows)
        # The block's two row parities, each a strided grid of non-anchors: (rows, columns) slices and shape.
        grids = []
        for row in range(first, min(first + 2, stop)):
            column = (top + row + 1) % 2  # the row's first non-anchor
            shape = (channels, len(range(row, stop, 2)), len(range(column, width, 2)))
            if shape[2]:
                grids.append((row, column, shape))
        sizes = [shape[1] * shape[2] for _, _, shape in grids]
        gathered = np.empty((len(TAPS), channels, sum(sizes)))
        own_mean, own_scale = (np.empty((channels, sum(sizes)), np.int64) for _ in range(2))
        for (row, column, shape), offset, size in zip(grids, np.cumsum([0] + sizes), sizes):
            # Strided slices copied straight into views of their columns: no intermediate copies.
            for k, (dy, dx) in enumerate(TAPS):
                y, x = row + REACH + dy, column + REACH + dx
                gathered[k, :, offset:offset + size].reshape(shape)[...] = padded[:, y:y + 2 * shape[1] - 1:2,
                                                                                x:x + 2 * shape[2] - 1:2]
            own_mean[:, offset:offset + size].reshape(shape)[...] = mean[:, row:stop:2, column::2]
            own_scale[:, offset:offset + size].reshape(shape)[...] = scale[:, row:stop:2, column::2]
        change = changes(layers, gathered.reshape(len(TAPS) * channels, -1), to_input(own_mean), to_input(own_scale),
                         bias, matmul)
        for (row, column, shape), offset, size in zip(grids, np.cumsum([0] + sizes), sizes):
            mean[:, row:stop:2, column::2] += change[:channels, offset:offset + size].reshape(shape)
            scale[:, row:stop:2, column::2] += change[channels:, offset:offset + size].reshape(shape)
    return mean, scale


# --- Conversion from the float network (used by export; numpy only) ------------------------------


def integer_layer(weight: np.ndarray, bias: np.ndarray, input_scale: np.ndarray,
                  output_scale: float) -> tuple[IntegerLayer, np.ndarray]:
    """A float layer y = weight @ x + bias, x in units of input_scale (per input column) and y in units of
    output_scale, as an IntegerLayer; bias may be (out,) or (rows, out) (one bias row per rate level), and
    the integer biases come back beside the layer, in accumulator units."""
    weight, bias = np.asarray(weight, np.float64), np.asarray(bias, np.float64)
    scaled = weight * np.asarray(input_scale, np.float64)[None, :]  # weight per integer input unit
    peak = (1 << (WEIGHT_BITS - 1)) - 1
    # The accumulator's unit per output row: the largest weight takes all WEIGHT_BITS; a bias too large for
    # 2**40 units (a row whose weights are all zero) widens it.
    unit = np.maximum(np.abs(scaled).max(1) / peak, np.abs(bias).reshape(-1, len(weight)).max(0) / 2.0 ** 40)
    unit = np.maximum(unit, 1e-30)
    weight_int = np.round(scaled / unit[:, None]).astype(np.int64)
    bias_int = np.round(bias / unit).astype(np.int64)
    ratio = unit / output_scale
    shift = int(np.clip(MULTIPLIER_BITS - np.ceil(np.log2(ratio.max())), 1, 62))
    multiplier = np.round(ratio * 2.0 ** shift).astype(np.int64)
    if bias_int.ndim == 1:
        return IntegerLayer(weight_int, bias_int, multiplier, shift), bias_int
    return IntegerLayer(weight_int, np.zeros(len(weight), np.int64), multiplier, shift), bias_int


def quantize_context(params: dict, seen_peak: float, hidden_peak: float) -> ContextLayers:
    """The float network's weights (CheckerboardContext's state, as float64 numpy: context.weight (C, M, 5, 5),
    context.bias, hidden.weight (H, C + 2M, 1, 1), hidden.bias, level_bias (L, H), out.weight (2M, H, 1, 1),
    out.bias) -> integer layers. seen_peak and hidden_peak are the largest magnitudes of the seen and hidden
    activations on calibration photos; each gets a quarter more room than that (seen at least the inputs'
    unit, 2**-INPUT_FRACTION_BITS)."""
    unit = 2.0 ** -INPUT_FRACTION_BITS
    kernel = params["context.weight"]
    channels = kernel.shape[1]
    taps = np.stack([kernel[:, :, REACH + dy, REACH + dx] for dy, dx in TAPS], axis=1)  # (C, taps, M)
    # seen shares the mean's and scale's unit where its range allows: the hidden layer's integer weights of
    # each output row share one scale, so inputs in very different units would leave some weights few bits.
    seen_scale = max(unit, seen_peak * 1.25 / INPUT_LIMIT)
    seen, _ = integer_layer(taps.reshape(len(taps), -1), params["context.bias"], np.full(taps[0].size, unit),
                            seen_scale)
    hidden_weight = params["hidden.weight"][:, :, 0, 0]
    input_scale = np.concatenate([np.full(len(taps), seen_scale), np.full(2 * channels, unit)])
    hidden_scale = max(hidden_peak, 1e-6) * 1.25 / ACTIVATION_MAX
    hidden, rows = integer_layer(hidden_weight, params["hidden.bias"][None] + params["level_bias"], input_scale,
                                 hidden_scale)
    out, _ = integer_layer(params["out.weight"][:, :, 0, 0], params["out.bias"],
                           np.full(len(hidden_weight), hidden_scale), 2.0 ** -OUTPUT_FRACTION_BITS)
    layers = ContextLayers(seen, hidden, out, rows, np.array([seen_scale, hidden_scale]))
    check_context(layers)
    return layers


def float_context(layers: ContextLayers) -> dict:
    """Integer layers -> the float network's state (quantize_context's params, less the rounding), for
    the refinement's torch model (aecodec/refine_torch/from_bundle.py)."""
    seen_scale, hidden_scale = (float(s) for s in layers.scales)
    unit = 2.0 ** -INPUT_FRACTION_BITS
    channels = layers.latent_channels

    def weights(layer: IntegerLayer, input_scale: np.ndarray, output_scale: float) -> tuple[np.ndarray, np.ndarray]:
        accumulator_unit = layer.multiplier / 2.0 ** layer.shift * output_scale
        return layer.weight * accumulator_unit[:, None] / input_scale[None, :], accumulator_unit

    taps, seen_unit = weights(layers.seen, np.full(layers.seen.weight.shape[1], unit), seen_scale)
    kernel = np.zeros((len(taps), channels, KERNEL, KERNEL))
    for i, (dy, dx) in enumerate(TAPS):
        kernel[:, :, REACH + dy, REACH + dx] = taps.reshape(len(taps), len(TAPS), channels)[:, i]
    input_scale = np.concatenate([np.full(len(taps), seen_scale), np.full(2 * channels, unit)])
    hidden, hidden_unit = weights(layers.hidden, input_scale, hidden_scale)
    out, out_unit = weights(layers.out, np.full(len(hidden), hidden_scale), 2.0 ** -OUTPUT_FRACTION_BITS)
    return {"context.weight": kernel, "context.bias": layers.seen.bias * seen_unit,
            "hidden.weight": hidden[:, :, None, None], "hidden.bias": np.zeros(len(hidden)),
            "level_bias": layers.level_bias * hidden_unit[None, :],
            "out.weight": out[:, :, None, None], "out.bias": layers.out.bias * out_unit}


def quality_units(quality: float) -> int:
    """A header's quality in the integer hundredths that level_bias takes."""
    return int(round(quality * HUNDREDTHS))

