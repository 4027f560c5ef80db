"""Tests of ntkutils.stationary (a kernel's stationary profile and its radial frequency
response) on kernels built by hand, against loops over the pixels and the frequencies."""
import math

import pytest
import torch

from ntkutils.stationary import radial_response, stationary_profile

# Tolerances per dtype: the functions only average and transform, so a few ulps of the
# largest entry (times the window's size for the transform).
TOL = {torch.float64: dict(rtol=1e-12, atol=1e-12), torch.float32: dict(rtol=1e-5, atol=1e-5)}
DTYPES = [torch.float64, torch.float32]


def stationary_kernel(g, H, W, dtype=torch.float64):
    """K[p, q] = g(dy, dx) with (dy, dx) = q - p, on an H x W grid: (H W, H W)."""
    rows = torch.arange(H).repeat_interleave(W)  # (n,) the row of each pixel
    cols = torch.arange(W).repeat(H)  # (n,)
    dy = rows[None, :] - rows[:, None]  # (n, n)
    dx = cols[None, :] - cols[:, None]
    return g(dy.to(dtype), dx.to(dtype))


def gaussian(s):
    return lambda dy, dx: torch.exp(-(dy ** 2 + dx ** 2) / (2 * s ** 2))


def brute_profile(K, H, W, r, margin=0):
    """The mean of K[p, p + d] by loops over the offsets and the pixels."""
    out = torch.zeros(2 * r + 1, 2 * r + 1, dtype=torch.float64)
    for dy in range(-r, r + 1):
        for dx in range(-r, r + 1):
            vals = [float(K[i * W + j, (i + dy) * W + j + dx])
                    for i in range(margin, H - margin) for j in range(margin, W - margin)
                    if 0 <= i + dy < H and 0 <= j + dx < W]
            out[dy + r, dx + r] = sum(vals) / len(vals)
    return out


def brute_response(profile):
    """|sum_d g(d) exp(-2 pi i f.d)| by a loop, averaged over rings round(N |f|) = k."""
    N = profile.shape[0]
    r = N // 2
    sums, counts = [0.0] * (r + 1), [0] * (r + 1)
    for ky in range(-r, r + 1):
        for kx in range(-r, r + 1):
            k = round(math.hypot(ky, kx))
            if k > r:
                continue
            re = im = 0.0
            for dy in range(-r, r + 1):
                for dx in range(-r, r + 1):
                    angle = -2 * math.pi * (ky * dy + kx * dx) / N
                    re += float(profile[dy + r, dx + r]) * math.cos(angle)
                    im += float(profile[dy + r, dx + r]) * math.sin(angle)
            sums[k] += math.hypot(re, im)
            counts[k] += 1
    return torch.tensor([s / c for s, c in zip(sums, counts)], dtype=torch.float64)


# ------------------------------------------------------------------ stationary_profile
@pytest.mark.parametrize("dtype", DTYPES)
def test_a_stationary_kernel_gives_its_own_profile(dtype):
    H, W, r, s = 9, 7, 3, 1.5
    K = stationary_kernel(gaussian(s), H, W, dtype)
    off = torch.arange(-r, r + 1, dtype=dtype)
    want = gaussian(s)(off[:, None], off[None, :])  # (2r+1, 2r+1)
    got = stationary_profile(K, (H, W), r)
    assert got.shape == (2 * r + 1, 2 * r + 1) and got.dtype == dtype
    torch.testing.assert_close(got, want, **TOL[dtype])
    torch.testing.assert_close(stationary_profile(K, (H, W), r, margin=2), want, **TOL[dtype])


def test_an_asymmetric_stationary_kernel_keeps_the_direction_of_the_offset():
    # g(dy, dx) = 1 + dy + 10 dx: the profile must put g(dy, dx) at [r + dy, r + dx]
    K = stationary_kernel(lambda dy, dx: 1 + dy + 10 * dx, 5, 6)
    off = torch.arange(-2, 3, dtype=torch.float64)
    torch.testing.assert_close(stationary_profile(K, (5, 6), 2),
                               1 + off[:, None] + 10 * off[None, :], **TOL[torch.float64])


def test_constant_plus_identity_gives_a_flat_profile_with_a_spike():
    H, W, r, a, b = 6, 5, 2, 3.0, 0.7
    n = H * W
    K = (a - b) * torch.eye(n, dtype=torch.float64) + b
    want = torch.full((2 * r + 1, 2 * r + 1), b, dtype=torch.float64)
    want[r, r] = a
    torch.testing.assert_close(stationary_profile(K, (H, W), r), want, **TOL[torch.float64])


@pytest.mark.parametrize("margin", [0, 1])
def test_any_kernel_gives_the_mean_over_the_pixels_at_each_offset(margin):
    H, W, r = 5, 4, 2
    g = torch.Generator().manual_seed(0)
    K = torch.randn(H * W, H * W, generator=g, dtype=torch.float64)  # not even symmetric
    torch.testing.assert_close(stationary_profile(K, (H, W), r, margin=margin),
                               brute_profile(K, H, W, r, margin), **TOL[torch.float64])


def test_the_largest_radius_uses_the_single_pixel_pair_of_the_corner_offsets():
    K = torch.arange(81.0, dtype=torch.float64).reshape(9, 9)  # a 3 x 3 grid
    got = stationary_profile(K, (3, 3), 2)
    # offset (2, 2): only p = (0, 0) -> q = (2, 2); offset (-2, 2): only (2, 0) -> (0, 2)
    assert got[4, 4] == K[0, 8] and got[0, 4] == K[6, 2]
    # offset (0, 2): the three pairs (i, 0) -> (i, 2)
    assert got[2, 4] == (K[0, 2] + K[3, 5] + K[6, 8]) / 3


# ------------------------------------------------------------------ radial_response
@pytest.mark.parametrize("dtype", DTYPES)
def test_a_gaussian_profile_has_a_falling_response(dtype):
    r, s = 6, 1.5
    off = torch.arange(-r, r + 1, dtype=dtype)
    profile = gaussian(s)(off[:, None], off[None, :])  # (13, 13)
    freqs, response = radial_response(profile)
    assert freqs.dtype == response.dtype == dtype
    torch.testing.assert_close(freqs, torch.arange(r + 1, dtype=dtype) / (2 * r + 1))
    torch.testing.assert_close(response, brute_response(profile).to(dtype), **TOL[dtype])
    assert bool((response[1:] < response[:-1]).all())
    # the continuous transform of the Gaussian at f = 0: 2 pi s^2 (truncation ~ 1e-4)
    assert abs(float(response[0]) - 2 * math.pi * s ** 2) < 1e-3


@pytest.mark.parametrize("dtype", DTYPES)
def test_constant_plus_spike_has_a_flat_response_and_a_peak_at_frequency_zero(dtype):
    r, a, b = 4, 1.1, 0.7
    N = 2 * r + 1
    profile = torch.full((N, N), b, dtype=dtype)
    profile[r, r] = a
    freqs, response = radial_response(profile)
    want = torch.full((r + 1,), a - b, dtype=dtype)
    want[0] = a - b + b * N ** 2
    torch.testing.assert_close(response, want, **TOL[dtype])


def test_an_asymmetric_profile_is_transformed_as_a_loop_does_it():
    g = torch.Generator().manual_seed(1)
    profile = torch.randn(7, 7, generator=g, dtype=torch.float64)
    torch.testing.assert_close(radial_response(profile)[1], brute_response(profile),
                               **TOL[torch.float64])


def test_the_two_functions_compose_on_a_kernel_of_a_grid():
    K = stationary_kernel(gaussian(1.0), 12, 12)
    freqs, response = radial_response(stationary_profile(K, (12, 12), 4))
    assert freqs.shape == response.shape == (5,)
    assert bool((response[1:] < response[:-1]).all())


# ------------------------------------------------------------------ bad input
def test_stationary_profile_refuses_bad_arguments():
    K = torch.eye(12, dtype=torch.float64)
    with pytest.raises(TypeError, match="K must be a torch.Tensor"):
        stationary_profile(K.tolist(), (3, 4), 1)
    with pytest.raises(TypeError, match="K must be a real floating-point tensor"):
        stationary_profile(K.long(), (3, 4), 1)
    with pytest.raises(ValueError, match="K must have 2 dimensions"):
        stationary_profile(K[0], (3, 4), 1)
    with pytest.raises(ValueError, match=r"K must be a square \(n, n\) matrix"):
        stationary_profile(K[:6], (3, 4), 1)
    with pytest.raises(ValueError, match=r"n = H\*W = 4\*4 = 16, got shape \(12, 12\)"):
        stationary_profile(K, (4, 4), 1)
    with pytest.raises(TypeError, match=r"shape must be a pair \(H, W\)"):
        stationary_profile(K, 12, 1)
    with pytest.raises(TypeError, match=r"shape\[1\] \(W\) must be an int > 0"):
        stationary_profile(K, (3, 4.0), 1)
    with pytest.raises(ValueError, match="radius must be < min"):
        stationary_profile(K, (3, 4), 3)
    with pytest.raises(ValueError, match="radius must be an int >= 0, got -1"):
        stationary_profile(K, (3, 4), -1)
    with pytest.raises(TypeError, match="radius must be an int >= 0"):
        stationary_profile(K, (3, 4), 1.0)
    with pytest.raises(ValueError, match="margin must be < min"):
        stationary_profile(K, (3, 4), 0, margin=2)
    with pytest.raises(ValueError, match="radius must be < min.*- margin = 2"):
        stationary_profile(K, (3, 4), 2, margin=1)
    with pytest.raises(ValueError, match="K contains NaN or inf"):
        stationary_profile(K * float("nan"), (3, 4), 1)


def test_radial_response_refuses_bad_profiles():
    with pytest.raises(ValueError, match=r"profile must be a square \(2r \+ 1, 2r \+ 1\)"):
        radial_response(torch.ones(4, 4))
    with pytest.raises(ValueError, match=r"profile must be a square \(2r \+ 1, 2r \+ 1\)"):
        radial_response(torch.ones(3, 5))
    with pytest.raises(ValueError, match="profile must have 2 dimensions"):
        radial_response(torch.ones(5))
    with pytest.raises(TypeError, match="profile must be a real floating-point tensor"):
        radial_response(torch.ones(3, 3, dtype=torch.complex128))
