import math
import warnings

import numpy as np
import pytest

from aecodec.metrics import BDResult, bd_rate, grid_ratio, ms_ssim, pchip_eval, pchip_slopes, psnr


def _pair(h, w, noise=12.0, seed=0):
    rng = np.random.default_rng(seed)
    # Smooth content plus noise, so every MS-SSIM scale has structure to compare.
    yy, xx = np.mgrid[0:h, 0:w]
    base = 128 + 60 * np.sin(xx / 9.0)[..., None] * np.cos(yy / 13.0)[..., None] * np.ones(3)
    a = np.clip(base + rng.normal(0, 20, (h, w, 3)), 0, 255).astype(np.uint8)
    b = np.clip(a + rng.normal(0, noise, a.shape), 0, 255).astype(np.uint8)
    return a, b


def test_psnr_known_values():
    a = np.zeros((4, 4, 3), np.uint8)
    assert psnr(a, a) == math.inf
    # Every sample off by 1: MSE = 1, PSNR = 20*log10(255).
    assert psnr(a, a + 1) == pytest.approx(20 * math.log10(255))
    # Only one channel off by 3: MSE = 9/3 = 3 over all channels.
    b = a.copy()
    b[..., 0] = 3
    assert psnr(a, b) == pytest.approx(10 * math.log10(255**2 / 3))


def test_psnr_rejects_shape_mismatch():
    with pytest.raises(ValueError, match="shape"):
        psnr(np.zeros((4, 4, 3), np.uint8), np.zeros((4, 5, 3), np.uint8))


def test_ms_ssim_identical_is_one():
    a, _ = _pair(176, 180)
    assert ms_ssim(a, a) == pytest.approx(1.0, abs=1e-12)


def test_ms_ssim_small_image_warns_but_works():
    a, b = _pair(64, 96)
    with pytest.warns(UserWarning, match="not standard"):
        value = ms_ssim(a, b)
    assert 0.0 < value < 1.0


@pytest.mark.parametrize("shape", [(176, 176), (181, 203)])
def test_ms_ssim_matches_pytorch_msssim(shape):
    pytorch_msssim = pytest.importorskip("pytorch_msssim")
    torch = pytest.importorskip("torch")
    a, b = _pair(*shape)

    def t(x):
        return torch.from_numpy(x.copy()).permute(2, 0, 1)[None].double()

    expected = pytorch_msssim.ms_ssim(t(a), t(b), data_range=255).item()
    assert ms_ssim(a, b) == pytest.approx(expected, abs=1e-4)


def test_bd_rate_identical_curves_is_zero():
    bpp, q = [0.2, 0.5, 1.0, 2.0], [28.0, 31.0, 34.5, 38.0]
    r = bd_rate(bpp, q, bpp, q)
    assert r.percent == pytest.approx(0.0, abs=1e-12)
    assert (r.low, r.high) == (28.0, 38.0)


def test_bd_rate_half_rate_is_minus_fifty():
    bpp, q = np.array([0.2, 0.5, 1.0, 2.0]), [28.0, 31.0, 34.5, 38.0]
    assert bd_rate(bpp, q, bpp / 2, q).percent == pytest.approx(-50.0)
    assert bd_rate(bpp / 2, q, bpp, q).percent == pytest.approx(100.0)


def test_bd_rate_hand_computed_linear_curves():
    # A: ln r = 0.10*(q-30) on q in [30, 38];  B: ln r = 0.05*(q-30) on q in [32, 40].
    # PCHIP reproduces straight lines, so over the overlap [32, 38]:
    #   mean(ln rB - ln rA) = 1/6 * ∫_32^38 -0.05*(q-30) dq
    #                       = 1/6 * -0.05 * ((38-30)**2 - (32-30)**2) / 2
    #                       = 1/6 * -0.05 * (64 - 4) / 2 = 1/6 * -1.5 = -0.25
    #   BD-rate = exp(-0.25) - 1 = -22.1199%
    qa, qb = np.arange(30.0, 39.0, 2.0), np.arange(32.0, 41.0, 2.0)
    r = bd_rate(np.exp(0.10 * (qa - 30)), qa, np.exp(0.05 * (qb - 30)), qb)
    assert r.percent == pytest.approx(100 * (math.exp(-0.25) - 1))
    assert r.percent == pytest.approx(-22.1199, abs=1e-4)
    assert (r.low, r.high) == (32.0, 38.0)


def test_bd_rate_order_does_not_matter_and_non_monotonic_is_finite():
    bpp, q = np.array([0.2, 0.5, 1.0, 2.0]), np.array([28.0, 31.0, 34.5, 38.0])
    ref = bd_rate(bpp, q, bpp * 0.8, q)
    order = [2, 0, 3, 1]
    assert bd_rate(bpp[order], q[order], bpp * 0.8, q).percent == pytest.approx(ref.percent)
    # A point of higher rate but lower quality than its neighbour: still a finite answer.
    wobbly = bd_rate(bpp, q, [0.2, 0.55, 0.5, 1.7], [28.0, 30.0, 34.0, 38.0])
    assert math.isfinite(wobbly.percent)
    # Repeated quality values are merged instead of breaking the interpolant.
    merged = bd_rate(bpp, q, [0.1, 0.12, 0.5, 1.0, 2.0], [28.0, 28.0, 31.0, 34.5, 38.0])
    assert math.isfinite(merged.percent)


def test_bd_rate_short_or_disjoint_curves_give_nan_with_reason():
    short = bd_rate([0.5], [30.0], [0.4, 0.8], [29.0, 33.0])
    assert isinstance(short, BDResult) and math.isnan(short.percent)
    assert "fewer than 2" in short.reason
    apart = bd_rate([0.1, 0.2], [25.0, 27.0], [1.0, 2.0], [35.0, 38.0])
    assert math.isnan(apart.percent) and "overlap" in apart.reason
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # non-finite points are dropped quietly
        nan_points = bd_rate([0.2, np.nan, 1.0], [28.0, 30.0, 34.0], [0.2, 1.0], [28.0, 34.0])
    assert math.isfinite(nan_points.percent)


def test_pchip_matches_scipy_and_does_not_overshoot():
    scipy_interp = pytest.importorskip("scipy.interpolate")
    x = np.array([26.0, 28.5, 31.0, 32.0, 36.0, 39.0])
    y = np.array([-2.0, -1.2, -0.4, -0.39, 0.5, 1.3])
    expected = scipy_interp.PchipInterpolator(x, y).derivative()(x)
    np.testing.assert_allclose(pchip_slopes(x, y), expected, atol=1e-12)
    # Monotone data stays monotone between the knots (the near-flat 31..32 step included).
    values, _ = pchip_eval(x, y, pchip_slopes(x, y), np.linspace(x[0], x[-1], 500))
    assert np.all(np.diff(values) >= -1e-12)


def test_grid_ratio_sees_blocks_and_nothing_else():
    rng = np.random.default_rng(0)
    smooth = np.clip(np.add.outer(np.arange(96), np.arange(128)) + rng.normal(0, 1, (96, 128)), 0, 255)
    assert abs(grid_ratio(smooth.astype(np.uint8)) - 1) < 0.1
    # The same picture with every 16x16 block moved by its own offset: the steps pile up on the boundaries.
    offsets = np.kron(rng.integers(-3, 4, (6, 8)), np.ones((16, 16)))
    blocky = np.clip(smooth + offsets, 0, 255).astype(np.uint8)
    assert grid_ratio(blocky) > 1.5
    assert grid_ratio(np.repeat(blocky[:, :, None], 3, axis=2)) == pytest.approx(grid_ratio(blocky))
    # An 8-pixel grid is not a 16-pixel one, half its boundaries aside.
    assert grid_ratio(blocky, period=8) < grid_ratio(blocky)
    with pytest.raises(ValueError, match="no 16-pixel block boundary"):
        grid_ratio(np.zeros((10, 10), np.uint8))
