"""Image quality metrics and the Bjøntegaard delta rate, in numpy only.

A typical workflow looks like this::

    q = psnr(original, decoded)           # dB, uint8 HxWx3
    s = ms_ssim(original, decoded)        # in [0, 1]
    g = grid_ratio(decoded)               # 1.0: no 16-pixel grid shows
    r = bd_rate(bpp_a, psnr_a, bpp_b, psnr_b)
    print(f"{r.percent:+.1f}% over {r.low:.2f}..{r.high:.2f} dB")

``ms_ssim`` follows ``pytorch_msssim.ms_ssim(x, y, data_range=255)`` with its
defaults (it is the reference CompressAI results are computed with), so our
numbers can sit next to published curves.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np

MS_SSIM_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)
WIN_SIZE = 11
WIN_SIGMA = 1.5
K1, K2 = 0.01, 0.03
DATA_RANGE = 255.0


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """PSNR in dB of two uint8 images, MSE taken over all channels; inf if equal."""
    _check_pair(a, b)
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return math.inf if mse == 0 else 10.0 * math.log10(DATA_RANGE**2 / mse)


def grid_ratio(image: np.ndarray, period: int = 16) -> float:
    """How strongly a grid of period-pixel blocks shows: the mean absolute step in grey level between
    neighbouring pixels across block boundaries, over the mean step everywhere else, rows and columns
    together. Photographs give about 1 (0.96 to 1.02 on Kodak); block artefacts raise it.
    image: uint8 (H, W, 3) or (H, W)."""
    grey = image.astype(np.float64)
    if grey.ndim == 3:
        grey = grey.mean(axis=2)
    across, within = [], []
    for steps in (np.abs(np.diff(grey, axis=1)), np.abs(np.diff(grey, axis=0)).T):
        # steps[:, i] is between pixels i and i + 1: a boundary where i + 1 is a multiple of period.
        boundary = (np.arange(1, steps.shape[1] + 1) % period) == 0
        across.append(steps[:, boundary].ravel())
        within.append(steps[:, ~boundary].ravel())
    across, within = np.concatenate(across), np.concatenate(within)
    if not across.size or not within.size:
        raise ValueError(f"an image of {image.shape[1]}x{image.shape[0]} has no {period}-pixel block boundary")
    return float(across.mean() / max(within.mean(), 1e-12))


def ms_ssim(a: np.ndarray, b: np.ndarray) -> float:
    """MS-SSIM of two uint8 HxWx3 images, per channel then averaged.

    Matches pytorch_msssim's defaults: 5 scales, 11-tap Gaussian (sigma 1.5)
    with valid padding, 2x2 average pooling. The standard needs a short side
    over 160 px; below that, like pytorch_msssim, smoothing is skipped along
    axes shorter than the window and the value is only indicative.
    """
    _check_pair(a, b)
    if min(a.shape[:2]) <= (WIN_SIZE - 1) * 2 ** (len(MS_SSIM_WEIGHTS) - 1):
        warnings.warn(f"MS-SSIM on a {a.shape[1]}x{a.shape[0]} image is not standard", stacklevel=2)
    # One channel at a time keeps the working set to a few image-sized planes. float32, like
    # pytorch_msssim: half the memory traffic of float64, and the means are taken in float64.
    channels = [_ms_ssim_plane(a[..., c].astype(np.float32), b[..., c].astype(np.float32))
                for c in range(a.shape[2])]
    return float(np.mean(channels))


def _ms_ssim_plane(x: np.ndarray, y: np.ndarray) -> float:
    factors = []
    for level in range(len(MS_SSIM_WEIGHTS)):
        ssim, cs = _ssim_and_cs(x, y)
        last = level == len(MS_SSIM_WEIGHTS) - 1
        factors.append(max(ssim if last else cs, 0.0))
        x, y = _avg_pool2(x), _avg_pool2(y)
    return float(np.prod(np.power(factors, MS_SSIM_WEIGHTS)))


def _check_pair(a: np.ndarray, b: np.ndarray) -> None:
    if a.shape != b.shape:
        msg = f"images differ in shape: {a.shape} vs {b.shape}"
        raise ValueError(msg)
    if a.ndim != 3:
        msg = f"expected HxWxC, got shape {a.shape}"
        raise ValueError(msg)


def _gaussian_1d() -> np.ndarray:
    coords = np.arange(WIN_SIZE, dtype=np.float64) - WIN_SIZE // 2
    g = np.exp(-(coords**2) / (2 * WIN_SIGMA**2))
    return (g / g.sum()).astype(np.float32)  # float32 taps keep float32 planes float32


def _filter_valid(x: np.ndarray, axis: int) -> np.ndarray:
    """Valid 1-D Gaussian correlation along ``axis``; skipped if the axis is too short."""
    n = x.shape[axis]
    if n < WIN_SIZE:
        return x
    g, m = _gaussian_1d(), n - WIN_SIZE + 1
    x = np.moveaxis(x, axis, 0)
    out = g[0] * x[:m]
    for k in range(1, WIN_SIZE):
        out += g[k] * x[k : k + m]
    return np.moveaxis(out, 0, axis)


def _blur(x: np.ndarray) -> np.ndarray:
    # x: (M, H, W); blur H then W, as pytorch_msssim does.
    return _filter_valid(_filter_valid(x, 1), 2)


def _ssim_and_cs(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Mean SSIM and mean contrast-structure term of two HxW planes."""
    c1, c2 = (K1 * DATA_RANGE) ** 2, (K2 * DATA_RANGE) ** 2
    mu_x, mu_y, xx, yy, xy = _blur(np.stack([x, y, x * x, y * y, x * y]))
    var_x, var_y, cov = xx - mu_x**2, yy - mu_y**2, xy - mu_x * mu_y
    cs_map = (2 * cov + c2) / (var_x + var_y + c2)
    ssim_map = (2 * mu_x * mu_y + c1) / (mu_x**2 + mu_y**2 + c1) * cs_map
    return float(ssim_map.mean(dtype=np.float64)), float(cs_map.mean(dtype=np.float64))


def _avg_pool2(x: np.ndarray) -> np.ndarray:
    """2x2 average pool; odd axes get one zero of padding each side, counted in the mean.

    That is torch's ``avg_pool2d(kernel_size=2, padding=size % 2)``; the
    trailing zero never lands in a window, so we drop it.
    """
    x = np.pad(x, [(x.shape[0] % 2, 0), (x.shape[1] % 2, 0)])
    h, w = x.shape[0] // 2, x.shape[1] // 2
    return x[: 2 * h, : 2 * w].reshape(h, 2, w, 2).mean(axis=(1, 3))


@dataclass(frozen=True)
class BDResult:
    """Bjøntegaard delta rate of B against A: negative means B needs fewer bits.

    ``low``..``high`` is the quality interval both curves cover; ``percent`` is
    NaN when it is empty, with ``reason`` saying why.
    """

    percent: float
    low: float
    high: float
    reason: str = ""


def bd_rate(rate_a, dist_a, rate_b, dist_b) -> BDResult:
    """Average rate difference of curve B over curve A at equal quality, in percent.

    Log-rate is interpolated as a function of quality (PSNR, MS-SSIM dB, ...)
    with PCHIP and integrated exactly over the overlap of the two curves.
    Points may come in any order; equal qualities are merged.
    """
    curve_a, curve_b = _clean_curve(rate_a, dist_a), _clean_curve(rate_b, dist_b)
    for label, (q, _) in (("A", curve_a), ("B", curve_b)):
        if len(q) < 2:
            return BDResult(math.nan, math.nan, math.nan, f"curve {label} has fewer than 2 usable points")
    low = float(max(curve_a[0][0], curve_b[0][0]))
    high = float(min(curve_a[0][-1], curve_b[0][-1]))
    if not high > low:
        return BDResult(math.nan, low, high, "the quality ranges do not overlap")
    mean_a = _pchip_integral(*curve_a, low, high) / (high - low)
    mean_b = _pchip_integral(*curve_b, low, high) / (high - low)
    return BDResult(100.0 * math.expm1(mean_b - mean_a), low, high)


def _clean_curve(rate, dist) -> tuple[np.ndarray, np.ndarray]:
    """(quality, log-rate) sorted by quality, finite points only, equal qualities averaged."""
    rate, dist = np.asarray(rate, np.float64), np.asarray(dist, np.float64)
    keep = np.isfinite(rate) & np.isfinite(dist) & (rate > 0)
    q, inverse = np.unique(dist[keep], return_inverse=True)
    log_rate = np.bincount(inverse, weights=np.log(rate[keep]), minlength=len(q))
    return q, log_rate / np.bincount(inverse, minlength=len(q))


def pchip_slopes(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Shape-preserving derivatives at the knots (Fritsch–Carlson, as scipy's PCHIP).

    Interior knots take the weighted harmonic mean of the neighbouring secant
    slopes, or 0 at a local extremum, so the interpolant never overshoots.
    """
    h, m = np.diff(x), np.diff(y) / np.diff(x)
    if len(m) == 1:
        return np.array([m[0], m[0]])
    d = np.zeros_like(y)
    w1, w2 = 2 * h[1:] + h[:-1], h[1:] + 2 * h[:-1]
    same_sign = m[:-1] * m[1:] > 0
    with np.errstate(divide="ignore", invalid="ignore"):
        harmonic = (w1 + w2) / (w1 / m[:-1] + w2 / m[1:])
    d[1:-1] = np.where(same_sign, harmonic, 0.0)
    d[0] = _end_slope(h[0], h[1], m[0], m[1])
    d[-1] = _end_slope(h[-1], h[-2], m[-1], m[-2])
    return d


def _end_slope(h0: float, h1: float, m0: float, m1: float) -> float:
    # One-sided three-point estimate, clipped so the end interval stays monotone.
    d = ((2 * h0 + h1) * m0 - h0 * m1) / (h0 + h1)
    if np.sign(d) != np.sign(m0):
        return 0.0
    if np.sign(m0) != np.sign(m1) and abs(d) > abs(3 * m0):
        return 3 * m0
    return d


def pchip_eval(x: np.ndarray, y: np.ndarray, d: np.ndarray, t: np.ndarray):
    """Value and derivative of the cubic Hermite interpolant at ``t`` (inside [x0, xn])."""
    t = np.asarray(t, np.float64)
    i = np.clip(np.searchsorted(x, t, side="right") - 1, 0, len(x) - 2)
    h = x[i + 1] - x[i]
    s = (t - x[i]) / h
    y0, y1, d0, d1 = y[i], y[i + 1], d[i] * h, d[i + 1] * h
    value = (
        (2 * s**3 - 3 * s**2 + 1) * y0 + (s**3 - 2 * s**2 + s) * d0
        + (-2 * s**3 + 3 * s**2) * y1 + (s**3 - s**2) * d1
    )
    slope = ((6 * s**2 - 6 * s) * (y0 - y1) + (3 * s**2 - 4 * s + 1) * d0 + (3 * s**2 - 2 * s) * d1) / h
    return value, slope


def _pchip_integral(x: np.ndarray, y: np.ndarray, low: float, high: float) -> float:
    """Exact integral of the PCHIP interpolant over [low, high].

    Between breakpoints the interpolant is one cubic, and a cubic's integral
    is Simpson-exact: h*(y0+y1)/2 + h**2*(d0-d1)/12 from its end values/slopes.
    """
    cuts = np.unique(np.concatenate([[low, high], x[(x > low) & (x < high)]]))
    value, slope = pchip_eval(x, y, pchip_slopes(x, y), cuts)
    h = np.diff(cuts)
    return float(np.sum(h * (value[:-1] + value[1:]) / 2 + h**2 * (slope[:-1] - slope[1:]) / 12))
