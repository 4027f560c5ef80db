"""Tests of the windowed NTK denoiser (ntkutils.windows and ntk_denoise's default recipe)."""
import os

import numpy as np
import pytest
import torch
from skimage.restoration import denoise_nl_means

os.environ.setdefault("TQDM_DISABLE", "1")

from ntkutils.denoise import ntk_denoise  # noqa: E402
from ntkutils.images import add_noise, list_images, load_image, psnr  # noqa: E402
from ntkutils.kernels import extract_patches, ntk_closed_form  # noqa: E402
from ntkutils.windows import (  # noqa: E402
    _window_index,
    window_corners,
    window_ntk,
    windowed_filter,
)

SIGMA = 25 / 255
STEPS = torch.logspace(0, 5, 21, dtype=torch.float64).round().unique()


def gen(seed):
    return torch.Generator().manual_seed(seed)


def noisy(name, size, gray=True, seed=0):
    x = load_image(name, size=size, gray=gray).double()
    return x, add_noise(x, SIGMA, generator=gen(seed))


def test_windows_cover_every_pixel_and_stay_inside():
    index = _window_index((23, 17), 6, 4)  # (L, 36)
    assert index.max() < 23 * 17 and index.min() >= 0
    assert torch.unique(index).numel() == 23 * 17
    assert window_corners(23, 6, 4) == [0, 4, 8, 12, 16, 17]


@pytest.mark.parametrize("gray", [True, False])
def test_window_kernel_is_the_closed_form_kernel_restricted_to_the_window(gray):
    # An interior window's reflect-padded patches are the image's own patches, so its
    # kernel must be the closed-form NTK (depth 1, zero padding) of the centred image,
    # restricted to the window's pixels: an independent implementation.
    _, y = noisy("astronaut", 24, gray=gray)
    u = y - y.mean(dim=(1, 2), keepdim=True)
    rows = torch.arange(8, 16)
    idx = (rows[:, None] * 24 + torch.arange(9, 17)[None, :]).reshape(-1)  # (64,)
    P = extract_patches(u, 5)[idx][None]  # (1, 64, C*25)
    K = ntk_closed_form(u, 5)[idx][:, idx]
    torch.testing.assert_close(window_ntk(P)[0], K, rtol=1e-10, atol=1e-14)


@pytest.fixture(scope="module")
def camera48():
    x, y = noisy("camera", 48)
    b = torch.randn(y.shape, generator=gen(1), dtype=torch.float64)
    y_b = y + 1e-3 * b
    opts = dict(patch_size=5, window=10, stride=8, steps=STEPS)
    sure = windowed_filter(y, y, SIGMA, probe=(y_b, y_b, b), **opts)
    oracle = windowed_filter(y, y, SIGMA, x=x, **opts)
    return x, y, opts, sure, oracle


def test_sure_chooses_steps_close_to_the_oracle(camera48):
    x, y, _, sure, oracle = camera48
    assert psnr(oracle.estimate, x) >= psnr(sure.estimate, x) - 0.05
    # a step per window chosen with the clean image is a strong oracle: within 1 dB
    assert psnr(oracle.estimate, x) - psnr(sure.estimate, x) < 1.0
    assert psnr(sure.estimate, x) > psnr(y, x) + 5
    # the steps differ from window to window: that is the point of the windows
    assert sure.steps.unique().numel() > 3


def test_sure_estimates_the_error_of_each_window(camera48):
    # SURE, summed over the windows, estimates the summed squared error of the windows'
    # estimates (up to the constant C n sigma^2 per window that the risk leaves out); a
    # divergence that ignored the kernel's dependence on y would fall far short.
    x, y, opts, sure, oracle = camera48
    n = opts["window"] ** 2
    index = _window_index((48, 48), opts["window"], opts["stride"])
    mu = y.mean()
    from ntkutils.windows import _centred_patches, _chunk

    V, coef, G = _chunk(_centred_patches(y, 5), (y - mu).reshape(1, -1), index, STEPS)
    best = torch.searchsorted(STEPS, sure.steps)
    g = G[torch.arange(len(best)), best]  # (L, n)
    est = (coef * g[:, None]) @ V.transpose(-1, -2) + mu  # (L, 1, n)
    true = (est[:, 0] - x.reshape(-1)[index]).pow(2).sum()
    estimated = (sure.risk - n * SIGMA**2).sum()
    assert abs(float(estimated / true) - 1) < 0.15


def test_probe_estimate_is_the_filter_at_the_probe(camera48):
    x, y, opts, sure, _ = camera48
    diff = (sure.probe_estimate - sure.estimate).abs().max()
    assert 0 < float(diff) < 1e-2  # moved by the probe, by about eps


def test_windowed_needs_probe_or_oracle(camera48):
    x, y, opts, _, _ = camera48
    with pytest.raises(ValueError, match="exactly one of probe"):
        windowed_filter(y, y, SIGMA, **opts)


def test_default_denoiser_beats_the_poster_filter_and_nlm_on_the_shipped_images():
    # The bar at the small size: the default recipe, with no clean image, is at
    # least as good as non-local means (h = 0.8 sigma, 5 x 5 patches, 13 x 13 search) on
    # average over every shipped image, and better than the poster's filter.
    ours, nlm, poster = [], [], []
    for i, name in enumerate(list_images()):
        x = load_image(name, size=64, gray=name in ("camera", "brick", "grass"))
        y = add_noise(x, SIGMA, generator=gen(10 + i))
        ours.append(psnr(ntk_denoise(y, SIGMA, generator=gen(i)), x))
        poster.append(psnr(ntk_denoise(y, SIGMA, recipe="poster", method="nystrom",
                                      n_landmarks=256, generator=gen(i)), x))
        out = denoise_nl_means(y.numpy().transpose(1, 2, 0), h=0.8 * SIGMA, sigma=SIGMA,
                               patch_size=5, patch_distance=6, channel_axis=-1)
        out = torch.from_numpy(np.atleast_3d(out).transpose(2, 0, 1).copy()).float()
        nlm.append(psnr(out.clamp(0, 1), x))
    assert np.mean(ours) >= np.mean(nlm)
    assert np.mean(ours) > np.mean(poster) + 1.0


def test_pilot_pass_helps_and_info_describes_the_run():
    x, y = noisy("astronaut", 48, gray=False)
    y = y.float()
    one = ntk_denoise(y, SIGMA, pilot=False, generator=gen(2))
    two, info = ntk_denoise(y, SIGMA, generator=gen(2), return_info=True)
    assert two.shape == y.shape and two.dtype == y.dtype
    assert float(two.min()) >= 0 and float(two.max()) <= 1
    assert psnr(two, x.float()) > psnr(one, x.float())
    assert info.pilot and info.rule == "sure" and info.patch_size == 5 and info.window == 10
    assert info.steps.shape == info.first_steps.shape == (36,)  # 6 x 6 windows


def test_sigma_estimated_and_seeded_runs_identical():
    x, y = noisy("camera", 40)
    a, info = ntk_denoise(y, generator=gen(3), return_info=True)
    b = ntk_denoise(y, generator=gen(3))
    assert torch.equal(a, b)
    assert info.sigma_estimated and abs(info.sigma - SIGMA) < 0.2 * SIGMA


def test_small_images_clamp_the_window_and_black_stays_black():
    x, y = noisy("camera", 8)
    assert ntk_denoise(y, SIGMA, generator=gen(4)).shape == (1, 8, 8)
    black = torch.zeros(3, 16, 16)
    assert torch.equal(ntk_denoise(black, SIGMA), black)


@pytest.mark.parametrize("kwargs, error, match", [
    (dict(recipe="fast"), ValueError, "recipe must be 'windowed' or 'poster'"),
    (dict(method="nystrom"), ValueError, "method only apply to recipe='poster'"),
    (dict(n_landmarks=64, depth=2), ValueError, "depth, n_landmarks only apply"),
    (dict(recipe="poster", window=8), ValueError, "window only apply to recipe='windowed'"),
    (dict(stride=12), ValueError, "stride must be <= window = 10"),
    (dict(stride=0), ValueError, "stride must be > 0"),
    (dict(window=2.5), TypeError, "window must be an int"),
    (dict(pilot=1), TypeError, "pilot must be a bool"),
    (dict(steps=[0, 5]), ValueError, "steps must be >= 1 for recipe='windowed'"),
    (dict(rule="discrepancy"), ValueError, "recipe='windowed' stops by rule='sure' only"),
    (dict(patch_size=4), ValueError, "patch_size"),
])
def test_bad_windowed_arguments_name_the_argument(kwargs, error, match):
    _, y = noisy("camera", 16)
    with pytest.raises(error, match=match):
        ntk_denoise(y.float(), SIGMA, **kwargs)
