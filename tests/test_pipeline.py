"""Tests of ntkutils.pipeline: ntk_filter against the same pipeline composed by hand.

Each test builds the kernel, its eigenpairs, the GD filter at every step and the stopping
rule from the public pieces (ntk_closed_form, eigh_psd, landmark_pixels,
nystrom_eigenpairs, gd_filter, and the rules of ntkutils.stopping) and compares.
"""
import os

import pytest
import torch

os.environ.setdefault("TQDM_DISABLE", "1")

from ntkutils.denoise import ntk_denoise  # noqa: E402
from ntkutils.images import add_noise, load_image, psnr  # noqa: E402
from ntkutils.kernels import ntk_closed_form  # noqa: E402
from ntkutils.nystrom import landmark_pixels, nystrom_eigenpairs  # noqa: E402
from ntkutils.pipeline import KernelFilter, ntk_filter  # noqa: E402
from ntkutils.spectral import eigh_psd, gd_filter  # noqa: E402
from ntkutils.stopping import discrepancy_step, oracle_step, sure  # noqa: E402

SIGMA = 25 / 255
STEPS = torch.tensor([0, 1, 3, 10, 30, 100, 300, 1000, 3000])
EPS = 1e-3  # the probe size the docstring states


def gen(seed):
    return torch.Generator().manual_seed(seed)


@pytest.fixture(scope="module")
def camera():
    """A 20x20 gray crop, its noisy version, and the exact pipeline composed by hand."""
    x = load_image("camera", size=20).double()
    y = add_noise(x, SIGMA, generator=gen(0))
    lam, V = eigh_psd(ntk_closed_form(y, 3))
    z = gd_filter(y, lam, V, STEPS)  # (T, 1, H, W), lr = 1/lambda_max
    return x, y, lam, V, z


def test_oracle_from_the_spectrum_and_from_the_images(camera):
    x, y, lam, V, z = camera
    t = oracle_step(z, x, STEPS)
    assert 0 < t < 3000  # an interior optimum
    f = ntk_filter(y, y, x=x, steps=STEPS)
    err = (z - x).pow(2).flatten(1).sum(1)  # (T,)
    assert isinstance(f, KernelFilter) and f.rule == "oracle" and f.step == t
    torch.testing.assert_close(f.risk, err, rtol=1e-9, atol=1e-12)
    torch.testing.assert_close(f.x_hat, z[f.index], rtol=0, atol=1e-12)
    assert f.psnr is None and f.estimates is None
    g = ntk_filter(y, y, x=x, steps=STEPS, estimates=True)
    assert g.step == t and torch.equal(g.estimates[g.index], g.x_hat)
    torch.testing.assert_close(g.estimates, z, rtol=0, atol=1e-12)
    torch.testing.assert_close(g.psnr, torch.tensor([psnr(zt, x) for zt in z],
                                                    dtype=torch.float64))
    torch.testing.assert_close(g.eigvals, lam, rtol=1e-12, atol=0.0)
    assert g.lr == pytest.approx(1 / float(lam[0])) and g.rank == 400 and g.landmarks is None


def test_discrepancy_is_the_first_residual_below_the_noise(camera):
    x, y, lam, V, z = camera
    f = ntk_filter(y, y, rule="discrepancy", sigma=SIGMA, steps=STEPS)
    assert f.rule == "discrepancy" and f.step == discrepancy_step(y, z, SIGMA, STEPS)
    resid = (z - y).pow(2).flatten(1).sum(1)  # (T,)
    torch.testing.assert_close(f.residual, resid, rtol=1e-9, atol=1e-12)
    torch.testing.assert_close(f.risk, resid, rtol=1e-9, atol=1e-12)
    assert torch.all(f.df == 0)


def test_sure_probes_the_kernel_of_y_itself(camera):
    x, y, lam, V, z = camera
    f = ntk_filter(y, y, sigma=SIGMA, steps=STEPS, generator=gen(1))
    # by hand: one Gaussian probe b, the kernel rebuilt from y + eps b
    b = torch.randn(y.shape, generator=gen(1), dtype=torch.float64)
    lam_b, V_b = eigh_psd(ntk_closed_form(y + EPS * b, 3))
    z_b = gd_filter(y + EPS * b, lam_b, V_b, STEPS)
    div = ((z_b - z) * b).flatten(1).sum(1) / EPS  # (T,)
    torch.testing.assert_close(f.df, div, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(f.risk, sure(y, z, div, SIGMA), rtol=1e-6, atol=1e-8)
    assert f.rule == "sure" and f.step == int(STEPS[int(torch.argmin(f.risk))])
    # the estimate is close to the oracle's (SURE needs no clean image)
    t = oracle_step(z, x, STEPS)
    assert psnr(z[STEPS.tolist().index(t)], x) - psnr(f.x_hat, x) < 0.5


def test_fixed_kernel_of_another_input_is_probed_as_a_linear_filter(camera):
    x, y, *_ = camera
    u = torch.rand(y.shape, generator=gen(2), dtype=torch.float64)  # iid-noise input
    lam, V = eigh_psd(ntk_closed_form(u, 3))
    f = ntk_filter(u, y, sigma=SIGMA, steps=STEPS, generator=gen(3))
    torch.testing.assert_close(f.eigvals, lam, rtol=1e-12, atol=0.0)
    z = gd_filter(y, lam, V, STEPS)
    b = torch.randn(y.shape, generator=gen(3), dtype=torch.float64)
    # a fixed linear filter W_t: b . (W_t (y + eps b) - W_t y) / eps = b . W_t b
    div = (gd_filter(b, lam, V, STEPS) * b).flatten(1).sum(1)  # (T,)
    torch.testing.assert_close(f.df, div, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(f.x_hat, z[f.index], rtol=0, atol=1e-12)


def test_nystrom_draws_its_landmarks_first_then_filters(camera):
    x, y, *_ = camera
    colour = load_image("astronaut", size=20, gray=False).double()
    y3 = add_noise(colour, SIGMA, generator=gen(4))
    f = ntk_filter(y3, y3, method="nystrom", n_landmarks=60, x=colour, steps=STEPS,
                   generator=gen(5), estimates=True)
    S = landmark_pixels((20, 20), 60, generator=gen(5))
    assert torch.equal(f.landmarks, S)
    lam, V = nystrom_eigenpairs(ntk_closed_form(y3, 3, columns=S), S)
    torch.testing.assert_close(f.eigvals, lam, rtol=1e-10, atol=0.0)
    z = gd_filter(y3, lam, V, STEPS)  # (T, 3, H, W)
    torch.testing.assert_close(f.estimates, z, rtol=0, atol=1e-10)
    assert f.step == oracle_step(z, colour, STEPS) and f.rank <= 60


def test_poster_recipe_is_the_pipeline_bit_for_bit(camera):
    x, y, *_ = camera
    for kwargs in [dict(), dict(rule="discrepancy"), dict(x=x), dict(method="nystrom",
                                                                      n_landmarks=50)]:
        x_hat, info = ntk_denoise(y, SIGMA, recipe="poster", generator=gen(6),
                                  return_info=True, **kwargs)
        f = ntk_filter(y, y, sigma=SIGMA, generator=gen(6), **kwargs)
        assert torch.equal(x_hat, f.x_hat.clamp(0, 1).to(y.dtype))
        assert info.step == f.step and torch.equal(info.risk, f.risk / y.numel())
        assert torch.equal(info.df, f.df) and info.rank == f.rank and info.lr == f.lr


def test_all_zero_image_stays_at_zero():
    y = torch.zeros(1, 8, 8, dtype=torch.float64)
    f = ntk_filter(y, y, sigma=0.1, steps=[0, 5, 50])
    assert f.step == 0 and f.rank == 0 and f.lambda_max == 0.0 and f.lr == float("inf")
    assert torch.equal(f.x_hat, y)


def test_default_steps_and_auto_method(camera):
    x, y, *_ = camera
    f = ntk_filter(y, y, x=x)
    assert f.steps[0] == 0 and f.steps[-1] == 10**6 and f.landmarks is None
    big = torch.rand(1, 65, 65, generator=gen(7))
    g = ntk_filter(big, big, x=big.clamp(0, 1), n_landmarks=32, steps=[1, 10],
                   generator=gen(8))
    assert g.landmarks is not None and g.rank <= 32  # above 64 x 64: Nystrom


def test_bad_arguments_name_the_argument(camera):
    x, y, *_ = camera
    with pytest.raises(ValueError, match="sigma is needed by rule='sure'"):
        ntk_filter(y, y)
    with pytest.raises(ValueError, match="u must have the height and width of y"):
        ntk_filter(y[:, :10], y, sigma=SIGMA)
    with pytest.raises(ValueError, match="x must have the shape of y"):
        ntk_filter(y, y, x=x[:, :10])
    with pytest.raises(ValueError, match="rule must be 'sure' or 'discrepancy'"):
        ntk_filter(y, y, sigma=SIGMA, rule="gcv")
    with pytest.raises(ValueError, match="method must be 'auto', 'exact' or 'nystrom'"):
        ntk_filter(y, y, sigma=SIGMA, method="svd")
    with pytest.raises(ValueError, match="n_landmarks must be <= the number of pixels"):
        ntk_filter(y, y, sigma=SIGMA, method="nystrom", n_landmarks=401)
    with pytest.raises(TypeError, match="estimates must be True or False"):
        ntk_filter(y, y, sigma=SIGMA, estimates=1)
    with pytest.raises(ValueError, match="steps must be >= 0"):
        ntk_filter(y, y, sigma=SIGMA, steps=[2, -1])
    with pytest.raises(ValueError, match="y .*255"):
        ntk_filter(y, 255 * y, sigma=SIGMA)
