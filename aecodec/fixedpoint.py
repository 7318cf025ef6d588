"""The hyper-synthesis in exact integer arithmetic: what makes every decoder agree.

The hyper-synthesis turns the integer hyper-latent into the mean and the scale
index of every latent element, and the scale index picks the probability
table. It therefore runs here, in integers only:

* weights are integers with at most ``WEIGHT_BITS`` bits, activations are
  integers in ``0..ACTIVATION_MAX``;
* a convolution is a float64 matrix product of integer-valued operands whose
  partial sums all stay below 2**53 (checked when the weights load), so every
  BLAS, thread count and summation order gives the exact same integers (the
  codec hands in ONNX Runtime's GEMM, ``aecodec/exactgemm.py``; numpy's is the default);
* requantisation is an int64 multiply, add and arithmetic shift.

Outputs are fixed-point numbers with ``OUTPUT_FRACTION_BITS`` fractional bits.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Callable

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from .probability import scale_index

WEIGHT_BITS = 12
ACTIVATION_MAX = (1 << 15) - 1
INPUT_LIMIT = 1 << 15  # the hyper-latent is clamped to +-this before the first layer
OUTPUT_FRACTION_BITS = 16
MULTIPLIER_BITS = 22
EXACT_LIMIT = 1 << 52  # float64 holds every integer below 2**53
CHUNK_POSITIONS = 2048  # output positions per matrix product: its columns are 9 x channels x 8 bytes each
BAND_ROWS = 16  # hyper-latent rows per band of scale_indices: halo_rows' overhead against memory

MatMul = Callable[[np.ndarray, np.ndarray], np.ndarray]  # float64 a @ b; any correct GEMM is exact here


@dataclass(frozen=True)
class FixedConv:
    """One conv layer: acc = conv(x, weight) + bias; out = (acc * multiplier) >> shift."""

    weight: np.ndarray  # (cout, cin, k, k) int64
    bias: np.ndarray  # (cout,) int64, in accumulator units
    multiplier: np.ndarray  # (cout,) int64
    shift: int
    relu: bool
    shuffle: bool  # pixel shuffle by 2 after the conv, as torch.nn.PixelShuffle

    def accumulator_bound(self, input_limit: int) -> int:
        per_channel = np.abs(self.weight).reshape(len(self.weight), -1).sum(1) * input_limit
        return int((per_channel + np.abs(self.bias)).max())

    @functools.cached_property
    def gemm_weight(self) -> np.ndarray:
        """weight as float64, shaped (cout, cin, k, k) but laid out (cout, k, k, cin) in memory: what
        conv_exact multiplies by, made once rather than on every call (a millisecond each)."""
        return np.ascontiguousarray(self.weight.transpose(0, 2, 3, 1), dtype=np.float64).transpose(0, 3, 1, 2)


def check_layers(layers: list[FixedConv]) -> None:
    """Refuse weights whose arithmetic could leave the exact range."""
    limit = INPUT_LIMIT
    for i, layer in enumerate(layers):
        bound = layer.accumulator_bound(limit)
        if bound >= EXACT_LIMIT or bound * int(np.abs(layer.multiplier).max()) >= 1 << 62:
            raise ValueError(f"hyper-synthesis layer {i} could overflow exact arithmetic")
        limit = ACTIVATION_MAX


def conv_exact(x: np.ndarray, weight: np.ndarray, matmul: MatMul = np.matmul) -> np.ndarray:
    """'Same' convolution of int64 x (C, H, W) with integer weight (O, C, k, k) -> int64 (O, H, W).

    weight is int64, or float64 as FixedConv.gemm_weight keeps it.

    An im2col matrix product in float64: every product and partial sum is an
    integer below 2**53, so the result is exact whatever order the GEMM sums in.
    """
    out_ch, _, k, _ = weight.shape
    _, h, w = x.shape
    live = np.flatnonzero(x.reshape(len(x), -1).any(axis=1))
    if not len(live):
        return np.zeros((out_ch, h, w), dtype=np.int64)
    taps = weight.transpose(0, 2, 3, 1)  # (O, k, k, C); no copy for FixedConv.gemm_weight
    channels = slice(None)
    if len(live) < len(x):  # input channels that are zero everywhere add nothing: a quarter of the
        channels, taps = live, taps[..., live]  # last layer's (after ReLU), half the hyper-latent's
    pad = k // 2
    matrix = np.ascontiguousarray(taps, dtype=np.float64).reshape(out_ch, -1)
    out = np.empty((out_ch, h, w), dtype=np.int64)
    rows = max(1, CHUNK_POSITIONS // max(w, 1))
    for top in range(0, h, rows):
        bottom = min(top + rows, h)
        window = padded_rows(x, channels, top - pad, bottom + pad, pad)
        columns = np.concatenate([window[:, dy:dy + bottom - top, dx:dx + w]
                                  for dy in range(k) for dx in range(k)])  # (k*k*C, rows, W)
        out[:, top:bottom] = matmul(matrix, columns.reshape(len(columns), -1)).reshape(out_ch, bottom - top, w)
    return out


def padded_rows(x: np.ndarray, channels, first: int, stop: int, pad: int) -> np.ndarray:
    """Rows [first, stop) of x[channels] (C, H, W) in float64, zero outside its H rows, with pad zero
    columns on each side: one chunk's window, so that no padded copy of the whole input is made."""
    height, width = x.shape[1:]
    top, bottom = max(first, 0), min(stop, height)
    rows = x[channels, top:bottom]  # only these rows are copied, also for an index array of channels
    window = np.zeros((len(rows), stop - first, width + 2 * pad))
    window[:, top - first:bottom - first, pad:pad + width] = rows
    return window


def pixel_shuffle(x: np.ndarray) -> np.ndarray:
    """(4C, H, W) -> (C, 2H, 2W), in torch.nn.PixelShuffle's channel order."""
    c4, h, w = x.shape
    return x.reshape(c4 // 4, 2, 2, h, w).transpose(0, 3, 1, 4, 2).reshape(c4 // 4, 2 * h, 2 * w)


def requantize(acc: np.ndarray, layer: FixedConv) -> np.ndarray:
    """Accumulator -> the layer's output activation: bias, ReLU, (acc * multiplier + half) >> shift,
    clamp; in acc's own memory, which saves five temporary arrays."""
    acc += layer.bias[:, None, None]
    if layer.relu:
        np.maximum(acc, 0, out=acc)
    acc *= layer.multiplier[:, None, None]
    acc += 1 << (layer.shift - 1)
    acc >>= layer.shift
    if layer.relu:
        np.minimum(acc, ACTIVATION_MAX, out=acc)
    return acc


def run_layers(layers: list[FixedConv], hyper_latent: np.ndarray, matmul: MatMul = np.matmul) -> np.ndarray:
    """Integer hyper-latent (N, h, w) -> fixed-point output (2M, 4h, 4w), int64."""
    x = np.clip(np.asarray(hyper_latent, dtype=np.int64), -INPUT_LIMIT, INPUT_LIMIT)
    for layer in layers:
        x = requantize(conv_exact(x, layer.gemm_weight, matmul), layer)
        if layer.shuffle:
            x = pixel_shuffle(x)
    return x


def entropy_parameters(layers: list[FixedConv], hyper_latent: np.ndarray, scale_table: np.ndarray,
                       matmul: MatMul = np.matmul) -> tuple[np.ndarray, np.ndarray]:
    """(mean as float64, scale index as int64), each (M, H, W); both exact.

    scale_table is in this module's output fixed point (probability.fixed_point);
    matmul is the float64 GEMM to use (see conv_exact).
    """
    out = run_layers(layers, hyper_latent, matmul)
    mean_fixed, scale_fixed = np.split(out, 2, axis=0)
    return to_mean(mean_fixed), scale_index(scale_fixed, scale_table)


def to_mean(mean_fixed: np.ndarray) -> np.ndarray:
    """Fixed-point means -> float64, exactly (a division by a power of two)."""
    mean = mean_fixed.astype(np.float64)
    mean /= float(1 << OUTPUT_FRACTION_BITS)
    return mean


# --- The same integers band by band, for decoding in bounded memory -----------------------------
#
# A decoder needs every scale index before it can decode a symbol (aecodec/entropy.py groups the
# latent by table), but not every mean at once, and never the whole network's activations: for a
# 6000x4000 image those are about 600 MB of int64 and float64. The functions below compute bands of
# the output from bands of the hyper-latent with enough rows of context (halo_rows) that every
# output integer is the one run_layers computes from the whole hyper-latent.


def split_outputs(layers: list[FixedConv]) -> tuple[list[FixedConv], list[FixedConv]]:
    """(mean layers, scale layers): the network with its last layer cut to the mean's or the scale's
    half of the output channels. Each output channel is its own dot product and requantisation, so
    each half gives exactly entropy_parameters' integers, at half the last layer's cost."""
    last = layers[-1]
    half = len(last.weight) // 2
    cut = [FixedConv(last.weight[part], last.bias[part], last.multiplier[part], last.shift, last.relu, last.shuffle)
           for part in (slice(0, half), slice(half, None))]
    return layers[:-1] + cut[:1], layers[:-1] + cut[1:]


def halo_rows(layers: list[FixedConv]) -> int:
    """Input rows of context a band needs on each side for exact outputs. A 'same' k x k convolution
    reads k // 2 rows of its input on each side, at the resolution of that input: a layer after a
    pixel shuffle reads half an input row's worth per row, and so on. The main model's is 2."""
    rows, scale = 0.0, 1
    for layer in layers:
        rows += (layer.weight.shape[-1] // 2) / scale
        scale *= 2 if layer.shuffle else 1
    return math.ceil(rows)


def upsampling(layers: list[FixedConv]) -> int:
    """Output rows per hyper-latent row: 4 for two pixel shuffles."""
    return 2 ** sum(layer.shuffle for layer in layers)


def output_rows(layers: list[FixedConv], hyper_latent: np.ndarray, first: int, stop: int,
                matmul: MatMul = np.matmul) -> np.ndarray:
    """Rows [first, stop) of run_layers(layers, hyper_latent), int64, computed from the hyper-latent
    rows they depend on and halo_rows of context: the same integers, in memory for those rows only."""
    up, halo, height = upsampling(layers), halo_rows(layers), hyper_latent.shape[1]
    top, bottom = max(first // up - halo, 0), min(-(-stop // up) + halo, height)
    out = run_layers(layers, hyper_latent[:, top:bottom], matmul)
    return out[:, first - top * up:stop - top * up]


def scale_indices(scale_layers: list[FixedConv], hyper_latent: np.ndarray, scale_table: np.ndarray,
                  matmul: MatMul = np.matmul, band: int = BAND_ROWS) -> np.ndarray:
    """entropy_parameters' scale index, (M, H, W) in the smallest unsigned type that holds it (uint8
    for up to 256 tables), computed band by band of hyper-latent rows: a sixteenth of its memory.
    scale_layers is split_outputs' second half; band is in hyper-latent rows."""
    up = upsampling(scale_layers)
    height, width = hyper_latent.shape[1] * up, hyper_latent.shape[2] * up
    out = np.empty((len(scale_layers[-1].weight), height, width), np.min_scalar_type(len(scale_table) - 1))
    for first in range(0, height, band * up):
        stop = min(first + band * up, height)
        out[:, first:stop] = scale_index(output_rows(scale_layers, hyper_latent, first, stop, matmul), scale_table)
    return out


# --- Conversion from float weights (used by export; numpy only) -----------------------------


def _float_conv(x: np.ndarray, weight: np.ndarray, bias: np.ndarray) -> np.ndarray:
    out_ch, in_ch, k, _ = weight.shape
    pad = k // 2
    windows = sliding_window_view(np.pad(x, ((0, 0), (pad, pad), (pad, pad))), (k, k), axis=(1, 2))
    patch = windows.transpose(1, 2, 0, 3, 4).reshape(-1, in_ch * k * k)
    out = patch @ weight.reshape(out_ch, -1).T + bias
    return out.T.reshape(out_ch, *x.shape[1:])


def run_float_layers(float_layers: list[dict], x: np.ndarray) -> np.ndarray:
    """The float network that quantize_layers converts, in float64: what the integer layers stand in for."""
    x = np.asarray(x, dtype=np.float64)
    for layer in float_layers:
        x = _float_conv(x, layer["weight"], layer["bias"])
        if layer["relu"]:
            x = np.maximum(x, 0)
        if layer["shuffle"]:
            x = pixel_shuffle(x)
    return x


def quantize_layers(float_layers: list[dict], calibration: list[np.ndarray]) -> list[FixedConv]:
    """Float layers ({weight, bias, relu, shuffle}) -> integer layers, activation ranges
    taken from calibration hyper-latents. The last layer outputs OUTPUT_FRACTION_BITS fixed point."""
    activations = [np.asarray(c, dtype=np.float64) for c in calibration]
    input_scale = 1.0  # the hyper-latent is already integer
    fixed = []
    for i, layer in enumerate(float_layers):
        weight, bias = np.asarray(layer["weight"], np.float64), np.asarray(layer["bias"], np.float64)
        outputs = [_float_conv(a, weight, bias) for a in activations]
        if layer["relu"]:
            outputs = [np.maximum(o, 0) for o in outputs]
        last = i == len(float_layers) - 1
        peak = max(float(np.abs(o).max()) for o in outputs)
        output_scale = 2.0 ** -OUTPUT_FRACTION_BITS if last else max(peak, 1e-6) * 1.25 / ACTIVATION_MAX
        weight_scale = np.abs(weight).reshape(len(weight), -1).max(1) / ((1 << (WEIGHT_BITS - 1)) - 1)
        weight_scale = np.maximum(weight_scale, 1e-12)
        weight_int = np.round(weight / weight_scale[:, None, None, None]).astype(np.int64)
        bias_int = np.round(bias / (input_scale * weight_scale)).astype(np.int64)
        ratio = input_scale * weight_scale / output_scale
        shift = int(np.clip(MULTIPLIER_BITS - np.ceil(np.log2(ratio.max())), 1, 62))
        multiplier = np.round(ratio * 2.0 ** shift).astype(np.int64)
        fixed.append(FixedConv(weight_int, bias_int, multiplier, shift, layer["relu"], layer["shuffle"]))
        if layer["shuffle"]:
            outputs = [pixel_shuffle(o) for o in outputs]
        activations, input_scale = outputs, output_scale
    check_layers(fixed)
    return fixed
