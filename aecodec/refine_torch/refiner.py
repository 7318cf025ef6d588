"""Per-image refinement of the latent and hyper-latent: what ``--effort`` above 0 runs.

A typical use looks like this (``Codec.compress(..., effort=N)`` does it)::

    refiner = Refiner(bundle)
    refined = refiner.refine(rgb, gained_latent, hyper_latent, quality, iterations=100)
    coded = transform.code_given(model, refined.latent, refined.hyper_latent, quality)   # aecodec/transform.py

The amortised encoder's latent is only a guess at the best latent for an image.
Starting from it, Adam lowers this image's rate-distortion loss, with rounding
relaxed by stochastic Gumbel annealing, over both the latent and the
hyper-latent; every few iterations the rounded latents are scored with the
same loss and the best rounding is kept. The codec then codes it on its usual
exact path, so the decoder and the format do not change, only which integers
are sent.

The loss is the model's own: the synthesis network rebuilt from the bundle's
ONNX file, the hyper-synthesis from its integer form, the Gaussian with the
model's scale bound for the latent, and for the hyper-latent the bundle's
frozen integer tables themselves (linear between integers), so the hyper-latent
is charged exactly what it will cost (aecodec.entropy.value_bits, escapes included).
The runtime reaches this module lazily, through ``aecodec.effort.load_refiner``.
"""

from __future__ import annotations

import contextlib
import sys
import time
from dataclasses import dataclass

import numpy as np
import torch
from tqdm import tqdm

from ..bundle import ModelBundle
from ..entropy import EntropyTables, symbol_bits
from ..quality import level_of, rate_tradeoff, row_at
from .checkerboard import anchor_mask, two_pass
from .from_bundle import model_from_bundle
from .model import gaussian_likelihood, interpolate_rows
from .precision import fast_bf16_cpu
from .rounding import RELAXATIONS, temperature

TILE = 48  # latent units per synthesis tile (768 pixels): bounds memory, Kodak is one tile
HALO = 4  # latent units of context around a tile, wider than the synthesis' receptive field


@dataclass(frozen=True)
class RefineSettings:
    # Adam. Yang et al. use 5e-3 for 2,000 iterations; for 25 to 400 a larger step gains more
    # (Kodak crops: -17.6% RD loss at 200 iterations against -7.1% with 5e-3), and letting it fall
    # to a tenth steadies the last, nearly hard, roundings.
    lr: float = 5e-2
    final_lr_share: float = 0.1  # the learning rate falls linearly to lr * this by the last iteration
    relaxation: str = "sga"  # or "ste", "noise" (rounding.RELAXATIONS)
    check_every: int = 10  # iterations between scorings of the rounded latents
    bf16: bool | None = None  # bf16 autocast of the synthesis; None: on CUDA and CPUs with fast bf16
    device: str | None = None  # None: CUDA when torch sees a GPU, else the CPU
    seed: int = 0  # the relaxation's noise: the same image and settings give the same file


@dataclass(frozen=True)
class Refined:
    latent: np.ndarray  # float64 (M, h, w), gain applied; rounding it against the means gives the chosen symbols
    hyper_latent: np.ndarray  # int64 (N, h/4, w/4)
    start_loss: float  # the model's RD loss of the amortised encoder's rounding
    loss: float  # the same loss of the rounding returned
    iteration: int  # the iteration whose rounding was kept; 0 is the amortised encoder's own
    seconds: float


def escape_bits(values: torch.Tensor) -> torch.Tensor:
    """entropy.escape_bits in torch, of the values rounded: the bits of the varint an escaped value adds."""
    rounded = torch.round(values.detach()).long()
    zigzag = torch.where(rounded >= 0, 2 * rounded, -2 * rounded - 1)
    extra_bytes = sum((zigzag >= 1 << (7 * k)).long() for k in range(1, 9))
    return 8.0 * (1 + extra_bytes).float()


class HyperTableBits:
    """Bits of each hyper-latent value under the bundle's integer pmfs, linear between integers:
    at the integers that are sent, exactly entropy.value_bits; differentiable in between."""

    def __init__(self, tables: EntropyTables, device: torch.device):
        sizes = tables.sizes  # symbols per table besides the escape, its last
        bits = np.empty((len(tables), int(sizes.max()) + 1))
        escape = np.empty(len(tables))
        for c, (row, size) in enumerate(zip(symbol_bits(tables), sizes)):
            bits[c, :size] = row[:size]
            bits[c, size:] = row[size - 1]  # padding repeats the last value: interpolation stays flat
            escape[c] = row[size]
        self.bits = torch.from_numpy(bits).float().to(device)
        self.escape = torch.from_numpy(escape).float().to(device)[:, None]
        self.offsets = torch.from_numpy(tables.offsets).float().to(device)[:, None]
        self.sizes = torch.from_numpy(sizes).float().to(device)[:, None]

    def __call__(self, hyper_latent: torch.Tensor) -> torch.Tensor:
        """Total bits of a (1, N, h, w) hyper-latent."""
        values = hyper_latent[0].reshape(len(self.bits), -1)
        position = values - self.offsets
        clamped = torch.minimum(position.clamp(min=0), self.sizes - 1)
        low = clamped.detach().floor().long()
        frac = clamped - low
        bits = torch.gather(self.bits, 1, low) * (1 - frac) + torch.gather(self.bits, 1, low + 1) * frac
        outside = (position < -0.5) | (position > self.sizes - 0.5)  # escaped: no gradient, the exact cost
        return torch.where(outside, self.escape + escape_bits(values), bits).sum()


@contextlib.contextmanager
def torch_threads(threads: int):
    previous = torch.get_num_threads()
    if threads > 0:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


class Refiner:
    """The torch model of one bundle, loaded once, refining one image at a time."""

    def __init__(self, bundle: ModelBundle, settings: RefineSettings = RefineSettings(), threads: int = 0):
        if settings.relaxation not in RELAXATIONS:
            raise ValueError(f"unknown relaxation {settings.relaxation!r}: use one of {', '.join(RELAXATIONS)}")
        self.bundle, self.settings, self.threads = bundle, settings, threads
        self.device = torch.device(settings.device or ("cuda" if torch.cuda.is_available() else "cpu"))
        self.bf16 = settings.bf16 if settings.bf16 is not None else (self.device.type == "cuda" or fast_bf16_cpu())
        model = model_from_bundle(bundle)  # its factorized prior unused: the tables price the hyper-latent
        # channels_last: the synthesis' convolutions run about 1.3x faster per iteration on an
        # AVX-512 CPU (146 against 198 ms for a Kodak image at 2 threads), with the same choices.
        self.synthesis = model.synthesis.to(self.device, memory_format=torch.channels_last).eval().requires_grad_(False)
        self.hyper_synthesis = model.hyper_synthesis.to(self.device).eval().requires_grad_(False)
        self.hyper_bits = HyperTableBits(bundle.hyper_tables, self.device)
        # The checkerboard context (format version 3): the rate is the two-pass rate the file will cost.
        self.context = None if model.context is None else model.context.to(self.device).eval().requires_grad_(False)

    # -- the loss --------------------------------------------------------------------------

    def entropy_parameters(self, hyper_latent: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mean, scale = self.hyper_synthesis(hyper_latent).chunk(2, dim=1)
        return mean, scale

    def squared_error(self, latent_hat: torch.Tensor, target: torch.Tensor, inverse_gain: torch.Tensor,
                      weight: float | None) -> tuple[float, torch.Tensor | None]:
        """Summed squared error of the reconstruction over the image (padding excluded), and, when
        weight is given, the gradient of weight * that sum with respect to latent_hat. Gradients may
        run in bf16; scores (no weight) always run in float32, so the choice of rounding is not noisier.

        The synthesis runs tile by tile with a halo, each tile's graph freed after its backward,
        so memory stays bounded for any image size.
        """
        stride = self.bundle.latent_stride  # image pixels per latent element
        leaf = latent_hat.detach().requires_grad_(weight is not None)
        height, width = target.shape[2:]
        rows, cols = leaf.shape[2:]
        total = 0.0
        for top in range(0, rows, TILE):
            for left in range(0, cols, TILE):
                bottom, right = min(top + TILE, rows), min(left + TILE, cols)
                out_bottom, out_right = min(bottom * stride, height), min(right * stride, width)
                if top * stride >= out_bottom or left * stride >= out_right:
                    continue  # padding only: its latents still cost bits, but show no pixels
                t0, l0 = max(top - HALO, 0), max(left - HALO, 0)
                b0, r0 = min(bottom + HALO, rows), min(right + HALO, cols)
                with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.bf16 and weight is not None):
                    tile = (leaf[:, :, t0:b0, l0:r0] * inverse_gain).contiguous(memory_format=torch.channels_last)
                    pixels = self.synthesis(tile)
                pixels = pixels.float()[:, :, (top - t0) * stride:out_bottom - t0 * stride,
                                        (left - l0) * stride:out_right - l0 * stride]
                error = (pixels.clamp(0, 1) - target[:, :, top * stride:out_bottom, left * stride:out_right]
                         ).pow(2).sum()
                if weight is not None:
                    (error * weight).backward()
                total += float(error.detach())
        return total, leaf.grad

    def latent_bits(self, residual: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
        return -torch.log2(gaussian_likelihood(residual, scale)).sum()

    def coded_residual(self, latent: torch.Tensor, mean: torch.Tensor, scale: torch.Tensor, problem: dict,
                       rounding) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(residual, mean, scale) as the file codes them: with a context, the anchors' residual from the
        hyperprior's mean, then the others' from the mean the context reads off the decoded anchors.
        rounding is torch.round, or the relaxation at this iteration."""
        residual = rounding(latent - mean)
        if self.context is None:
            return residual, mean, scale
        mean, scale = two_pass(self.context, residual + mean, mean, scale, problem["level_bias"])
        anchors = anchor_mask(*latent.shape[2:], latent.device)
        return residual * anchors + rounding(latent - mean) * (1 - anchors), mean, scale

    @torch.no_grad()
    def rounded_loss(self, latent: torch.Tensor, hyper_latent: torch.Tensor, problem: dict
                     ) -> tuple[float, torch.Tensor, torch.Tensor]:
        """(loss, latent_hat, integer hyper-latent) of the rounded latents: what would be sent."""
        hyper_int = torch.round(hyper_latent)
        residual, mean, scale = self.coded_residual(latent, *self.entropy_parameters(hyper_int), problem, torch.round)
        bits = self.latent_bits(residual, scale) + self.hyper_bits(hyper_int)
        latent_hat = residual + mean
        error, _ = self.squared_error(latent_hat, problem["target"], problem["inverse_gain"], None)
        loss = float(bits) / problem["pixels"] + problem["distortion_weight"] * error
        return loss, latent_hat, hyper_int

    # -- the refinement --------------------------------------------------------------------

    def refine(self, rgb: np.ndarray, latent: np.ndarray, hyper_latent: np.ndarray, quality: float,
               iterations: int, progress: bool = False) -> Refined:
        """Refine the gained latent (M, h, w) and integer hyper-latent of the image rgb (H, W, 3 uint8)."""
        start = time.perf_counter()
        with torch_threads(self.threads):
            refined = self._refine(rgb, latent, hyper_latent, quality, iterations, progress)
        return Refined(*refined, seconds=time.perf_counter() - start)

    def _problem(self, rgb: np.ndarray, quality: float) -> dict:
        """What the loss of one image at one quality needs, on the device."""
        device = self.device
        inverse_gain = np.exp(row_at(self.bundle.log_inverse_gain, level_of(quality, self.bundle.levels)))
        pixels = rgb.shape[0] * rgb.shape[1]
        level = torch.tensor([level_of(quality, self.bundle.levels) - self.bundle.extrapolated_levels])
        return {
            # the context's rate-level bias, interpolated as training does (the codec's integers follow it)
            "level_bias": None if self.context is None else interpolate_rows(
                self.context.level_bias, level.to(device)).float(),
            "target": torch.from_numpy(np.ascontiguousarray(rgb.transpose(2, 0, 1))).to(device)[None].float() / 255,
            "inverse_gain": torch.tensor(inverse_gain, dtype=torch.float32, device=device)[None, :, None, None],
            "pixels": pixels,
            # training's rd_loss: lambda * 255^2 * MSE, the MSE over the 3 * pixels values of the image
            "distortion_weight": rate_tradeoff(self.bundle, quality) * 255**2 / (3 * pixels),
        }

    def _refine(self, rgb, latent, hyper_latent, quality, iterations, progress):
        device, settings = self.device, self.settings
        problem = self._problem(rgb, quality)
        pixels = problem["pixels"]
        y = torch.tensor(latent, dtype=torch.float32, device=device)[None].requires_grad_(True)
        z = torch.tensor(hyper_latent, dtype=torch.float32, device=device)[None].requires_grad_(True)
        start_loss, _, _ = self.rounded_loss(y, z, problem)
        best = (start_loss, None, None, 0)
        if iterations <= 0:
            return latent, hyper_latent, start_loss, start_loss, 0
        relax = RELAXATIONS[settings.relaxation]
        generator = torch.Generator(device).manual_seed(settings.seed)
        optimizer = torch.optim.Adam([y, z], lr=settings.lr)
        bar = tqdm(range(iterations), desc="refining", unit="it", file=sys.stderr, leave=False,
                   disable=None if progress else True)  # None: only on a terminal
        for iteration in bar:
            tau = temperature(iteration, iterations)
            for group in optimizer.param_groups:
                group["lr"] = settings.lr * (1 - (1 - settings.final_lr_share) * iteration / iterations)
            z_soft = relax(z, tau, generator)
            residual, mean, scale = self.coded_residual(y, *self.entropy_parameters(z_soft), problem,
                                                        lambda x: relax(x, tau, generator))
            latent_hat = residual + mean
            _, gradient = self.squared_error(latent_hat, problem["target"], problem["inverse_gain"],
                                             problem["distortion_weight"])
            rate = (self.latent_bits(residual, scale) + self.hyper_bits(z_soft)) / pixels
            optimizer.zero_grad(set_to_none=True)
            # The distortion's gradient came tile by tile; this hands it on through the relaxation.
            (rate + (latent_hat * gradient).sum()).backward()
            optimizer.step()
            done = iteration + 1
            if done % settings.check_every == 0 or done == iterations:
                loss, latent_hat, hyper_int = self.rounded_loss(y, z, problem)
                if loss < best[0]:
                    best = (loss, latent_hat, hyper_int, done)
                bar.set_postfix_str(f"loss {best[0]:.4f} (start {start_loss:.4f})", refresh=False)
        loss, latent_hat, hyper_int, kept = best
        if latent_hat is None:  # nothing beat the amortised encoder: send exactly what effort 0 sends
            return latent, hyper_latent, start_loss, start_loss, 0
        return (latent_hat[0].double().cpu().numpy(), hyper_int[0].cpu().numpy().astype(np.int64),
                start_loss, loss, kept)
