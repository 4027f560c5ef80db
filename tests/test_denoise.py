"""Tests of ntkutils.denoise: the closed-form NTK denoiser against the public pipeline."""
import functools
import os

import pytest
import torch

os.environ.setdefault("TQDM_DISABLE", "1")

from ntkutils.denoise import ntk_denoise  # noqa: E402
from ntkutils.spectral import eigh_psd, gd_filter  # noqa: E402
from ntkutils.stopping import discrepancy_step, oracle_step  # noqa: E402
from ntkutils.images import add_noise, load_image, psnr  # noqa: E402
from ntkutils.kernels import ntk_closed_form  # noqa: E402

SIGMA = 25 / 255
poster = functools.partial(ntk_denoise, recipe="poster")


def gen(seed):
    return torch.Generator().manual_seed(seed)


def noisy(name, size, gray=True, seed=0):
    x = load_image(name, size=size, gray=gray)
    return x, add_noise(x, SIGMA, generator=gen(seed))


@pytest.fixture(scope="module")
def camera24():
    """Everything the public pipeline gives for a 24x24 crop: the reference."""
    x, y = noisy("camera", 24)
    lam, V = eigh_psd(ntk_closed_form(y, 3))
    steps = torch.arange(0, 400, 3)
    z = gd_filter(y.double(), lam, V, steps)
    return x, y, steps, z


def test_oracle_matches_the_public_pipeline(camera24):
    x, y, steps, z = camera24
    x_hat, info = poster(y, SIGMA, x=x, steps=steps, return_info=True)
    t = oracle_step(z, x.double(), steps)
    assert info.rule == "oracle" and info.step == t and info.method == "exact"
    i = steps.tolist().index(t)
    torch.testing.assert_close(x_hat, z[i].clamp(0, 1).float(), rtol=0, atol=1e-6)
    assert 0 < t < 399  # an interior optimum: early stopping matters


def test_discrepancy_matches_the_public_pipeline(camera24):
    x, y, steps, z = camera24
    _, info = poster(y, SIGMA, rule="discrepancy", steps=steps, return_info=True)
    assert info.step == discrepancy_step(y.double(), z, SIGMA, steps)
    resid = (z - y.double()).pow(2).flatten(1).mean(1)
    torch.testing.assert_close(info.risk, resid, rtol=1e-9, atol=1e-12)


def test_sure_is_close_to_the_oracle(camera24):
    x, y, steps, z = camera24
    x_sure, info = poster(y, SIGMA, steps=steps, generator=gen(1), return_info=True)
    x_orac = poster(y, SIGMA, x=x, steps=steps)
    assert info.rule == "sure"
    assert psnr(x_orac, x) - psnr(x_sure, x) < 0.3
    # SURE estimates the mean squared error itself: compare with the truth (t > 0; at
    # t = 0 the estimate ||y||^2 / d - sigma^2 of ||x||^2 / d has a larger noise)
    mse = (z - x.double()).pow(2).flatten(1).mean(1)
    assert float((info.risk - mse)[1:].abs().max()) < 0.15 * SIGMA**2
    i = steps.tolist().index(info.step)
    assert abs(float(info.risk[i] - mse[i])) < 0.1 * SIGMA**2


def test_exact_gray_improves_by_3_db():
    x, y = noisy("camera", 32)  # exact up to 64x64; 32x32 keeps the test fast
    x_hat, info = poster(y, SIGMA, generator=gen(2), return_info=True)
    assert info.method == "exact" and info.n_landmarks is None and info.rank == 32 * 32
    assert x_hat.shape == y.shape and x_hat.dtype == y.dtype
    assert x_hat.min() >= 0 and x_hat.max() <= 1
    assert psnr(x_hat, x) > psnr(y.clamp(0, 1), x) + 3.0


def test_nystrom_on_a_shipped_image_improves_by_5_db():
    # The bar, at the shipped size: camera 256 x 256, sigma = 25/255, SURE stop.
    x, y = noisy("camera", 256)
    x_hat, info = poster(y, SIGMA, n_landmarks=256, generator=gen(3), return_info=True)
    assert info.method == "nystrom" and info.n_landmarks == 256 and info.rank <= 256
    assert info.rule == "sure"
    assert psnr(x_hat, x) > psnr(y, x) + 5.0


def test_colour_improves_and_sigma_is_estimated():
    x, y = noisy("astronaut", 64, gray=False)
    x_hat, info = poster(y, method="nystrom", n_landmarks=256, generator=gen(4),
                              return_info=True)
    assert x_hat.shape == (3, 64, 64)
    assert info.sigma_estimated and abs(info.sigma - SIGMA) < 0.2 * SIGMA
    assert psnr(x_hat, x) > psnr(y.clamp(0, 1), x) + 3.5


def test_seeded_runs_are_identical_and_auto_switches_to_nystrom():
    x, y = noisy("camera", 65)
    a, info = poster(y, SIGMA, n_landmarks=64, generator=gen(5), return_info=True)
    b = poster(y, SIGMA, n_landmarks=64, generator=gen(5))
    assert info.method == "nystrom" and torch.equal(a, b)


def test_bad_arguments_name_the_argument():
    x, y = noisy("camera", 16)
    with pytest.raises(ValueError, match="y must have 3 dimensions"):
        ntk_denoise(y[0], SIGMA)
    with pytest.raises(TypeError, match="y must be a real floating-point tensor"):
        ntk_denoise((255 * y).to(torch.uint8), SIGMA)
    bad = y.clone()
    bad[0, 3, 3] = float("nan")
    with pytest.raises(ValueError, match="y .*NaN"):
        ntk_denoise(bad, SIGMA)
    with pytest.raises(ValueError, match="sigma"):
        ntk_denoise(y, 0.0)
    with pytest.raises(ValueError, match="sigma"):
        ntk_denoise(y, -0.1)
    with pytest.raises(ValueError, match="n_landmarks must be <= the number of pixels"):
        poster(y, SIGMA, method="nystrom", n_landmarks=257)
    with pytest.raises(ValueError, match="steps must be >= 0"):
        poster(y, SIGMA, steps=[3, -1])
    with pytest.raises(ValueError, match="method must be 'auto', 'exact' or 'nystrom'"):
        poster(y, SIGMA, method="svd")
    with pytest.raises(ValueError, match="rule"):
        ntk_denoise(y, SIGMA, rule="gcv")
    with pytest.raises(ValueError, match="x must have the shape of y"):
        ntk_denoise(y, SIGMA, x=x[:, :8])
    with pytest.raises(ValueError, match="patch_size"):
        ntk_denoise(y, SIGMA, patch_size=4)
