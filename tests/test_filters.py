"""Tests of ntkutils.filters against independent computations.

The kernels here are written in this file (a patch arc-cosine kernel and a Gaussian patch
kernel), so the filter tests do not depend on ntkutils.kernels.
"""
import math
import os

import numpy as np
import pytest
import torch
import torch.nn.functional as F

os.environ.setdefault("TQDM_DISABLE", "1")

from ntkutils.filters import (  # noqa: E402
    bias_variance,
    degrees_of_freedom,
    degrees_of_freedom_mc,
    discrepancy_step,
    eigh_psd,
    gd_filter,
    gd_filter_iterative,
    landmark_pixels,
    nlm_weights,
    nystrom_eigenpairs,
    oracle_step,
    sure,
    sure_step,
)
from ntkutils.images import add_noise, load_image, psnr  # noqa: E402

SIGMA = 25 / 255


def gen(seed):
    return torch.Generator().manual_seed(seed)


def patches(u, k):
    """(n, C k k) zero-padded patches, written independently with a loop over offsets."""
    C, H, W = u.shape
    p = k // 2
    padded = torch.zeros(C, H + 2 * p, W + 2 * p, dtype=u.dtype)
    padded[:, p:p + H, p:p + W] = u
    cols = [padded[:, dr:dr + H, dc:dc + W].reshape(C, -1) for dr in range(k) for dc in range(k)]
    return torch.cat(cols, 0).T  # (n, C k k)


def arccos_ntk(u, k=3):
    """|u_i||u_j| (sin phi + 2 (pi - phi) cos phi) / (2 pi d): the contract's depth-1 NTK."""
    P = patches(u.double(), k)
    d = P.shape[1]
    norms = P.norm(dim=1)
    prod = norms[:, None] * norms[None, :]
    cos = torch.where(prod > 0, (P @ P.T) / prod.clamp_min(1e-300), torch.ones(()))
    phi = torch.arccos(cos.clamp(-1, 1))
    return prod * (torch.sin(phi) + 2 * (math.pi - phi) * torch.cos(phi)) / (2 * math.pi * d)


def gauss_kernel(u, k=3, h=0.3):
    P = patches(u.double(), k)
    return torch.exp(-torch.cdist(P, P).pow(2) / h**2)


@pytest.fixture(scope="module")
def small():
    """A 16x16 camera crop, its noisy version and the arc-cos kernel of the noisy image."""
    x = load_image("camera", size=16).double()
    y = add_noise(x, SIGMA, generator=gen(0))
    K = arccos_ntk(y)
    lam, V = eigh_psd(K)
    return x, y, K, lam, V


@pytest.fixture(scope="module")
def camera32():
    x = load_image("camera", size=32).double()
    y = add_noise(x, SIGMA, generator=gen(1))
    K = arccos_ntk(y)
    lam, V = eigh_psd(K)
    return x, y, K, lam, V


# ------------------------------------------------------------------ eigh_psd
def test_eigh_psd_reconstructs_sorts_and_clips():
    Q, _ = torch.linalg.qr(torch.randn(5, 5, generator=gen(0), dtype=torch.float64))
    true = torch.tensor([4.0, 2.0, 1.0, 0.0, -1e-9], dtype=torch.float64)
    K = Q @ torch.diag(true) @ Q.T
    lam, V = eigh_psd(K)
    assert torch.all(lam[:-1] >= lam[1:])
    assert torch.all(lam >= 0)
    assert lam[-1] == 0  # the negative round-off is clipped
    torch.testing.assert_close(lam[:3], true[:3])
    torch.testing.assert_close(V.T @ V, torch.eye(5, dtype=torch.float64))
    torch.testing.assert_close(V @ torch.diag(true.clamp_min(0)) @ V.T,
                               Q @ torch.diag(true.clamp_min(0)) @ Q.T)


def test_eigh_psd_refuses_bad_matrices():
    with pytest.raises(ValueError, match=r"K must be a square \(n, n\) matrix"):
        eigh_psd(torch.ones(3, 4))
    with pytest.raises(ValueError, match="symmetric"):
        eigh_psd(torch.tensor([[1.0, 2.0], [0.0, 1.0]]))
    with pytest.raises(TypeError, match="K must be a real floating-point tensor"):
        eigh_psd(torch.eye(3, dtype=torch.int64))


# ------------------------------------------------------------------ GD filter
@pytest.mark.parametrize("colour", [False, True])
def test_closed_form_equals_explicit_iteration(colour):
    x = load_image("astronaut" if colour else "camera", size=12, gray=not colour).double()
    y = add_noise(x, SIGMA, generator=gen(2))
    K = arccos_ntk(y)
    lam, V = eigh_psd(K)
    z0 = torch.rand(y.shape, generator=gen(3), dtype=torch.float64)
    for lr in [1 / float(lam[0]), 1.7 / float(lam[0])]:
        steps = [0, 1, 2, 7, 40]
        for start in [None, z0]:
            closed = gd_filter(y, lam, V, steps, lr=lr, z0=start)
            explicit = gd_filter_iterative(y, K, 40, lr=lr, z0=start)[steps]
            torch.testing.assert_close(closed, explicit, rtol=1e-9, atol=1e-11)


def test_gd_filter_default_lr_and_limits(small):
    x, y, K, lam, V = small
    closed = gd_filter(y, lam, V, range(6))
    explicit = gd_filter_iterative(y, K, 5, lr=1 / float(lam[0]))
    torch.testing.assert_close(closed, explicit, rtol=1e-9, atol=1e-11)
    # t = 0 gives z^0 = 0; the arc-cos kernel of this image is full rank, so z^t -> y
    z = gd_filter(y, lam, V, torch.tensor([0, 10**12]))
    assert torch.all(z[0] == 0)
    assert float(lam[-1]) > 0
    torch.testing.assert_close(z[1], y, rtol=0, atol=1e-6)
    # dtype follows y
    assert gd_filter(y.float(), lam, V, [3]).dtype == torch.float32


def test_truncated_basis_never_fits_the_rest(small):
    x, y, K, lam, V = small
    m = 20
    Vm, lm = V[:, :m], lam[:m]
    Km = Vm @ torch.diag(lm) @ Vm.T  # rank-m kernel
    z0 = 0.3 * torch.ones_like(y)
    closed = gd_filter(y, lm, Vm, [0, 3, 50, 10**9], z0=z0)
    explicit = gd_filter_iterative(y, Km, 50, lr=1 / float(lm[0]), z0=z0)[[0, 3, 50]]
    torch.testing.assert_close(closed[:3], explicit, rtol=1e-9, atol=1e-11)
    # at t -> inf: the span of Vm is fitted, the rest stays at z0
    P = Vm @ Vm.T
    limit = P @ y.reshape(-1) + (torch.eye(256, dtype=torch.float64) - P) @ z0.reshape(-1)
    torch.testing.assert_close(closed[3].reshape(-1), limit, rtol=0, atol=1e-8)


def test_unstable_lr_refused(small):
    x, y, K, lam, V = small
    with pytest.raises(ValueError, match="lr.*unstable"):
        gd_filter(y, lam, V, [1], lr=2.05 / float(lam[0]))
    with pytest.raises(ValueError, match="lr.*unstable"):
        gd_filter_iterative(y, K, 200, lr=2.2 / float(lam[0]))
    # the refusal is right: the explicit iteration really diverges there
    lr, z = 2.2 / float(lam[0]), torch.zeros_like(y.reshape(y.shape[0], -1))
    for _ in range(200):
        z = z + lr * (y.reshape(y.shape[0], -1) - z) @ K.to(z.dtype)
    assert z.abs().max() > 1e3


# ------------------------------------------------------------------ landmarks
@pytest.mark.parametrize("method", ["grid", "random"])
def test_landmark_pixels(method):
    for shape, m in [((16, 16), 1), ((16, 16), 37), ((10, 23), 100), ((7, 5), 35)]:
        S = landmark_pixels(shape, m, method=method, generator=gen(4))
        assert S.dtype == torch.int64 and S.shape == (m,)
        assert S.unique().numel() == m
        assert torch.all(S[1:] > S[:-1]) and S.min() >= 0 and S.max() < shape[0] * shape[1]
    S1 = landmark_pixels((20, 20), 50, method=method, generator=gen(5))
    S2 = landmark_pixels((20, 20), 50, method=method, generator=gen(5))
    assert torch.equal(S1, S2)


def test_grid_landmarks_cover_the_image():
    S = landmark_pixels((32, 32), 64, method="grid", generator=gen(6))
    rows, cols = S // 32, S % 32
    counts = torch.zeros(8, 8)  # 64 cells of 4 x 4 pixels: exactly one landmark each
    for r, c in zip(rows.tolist(), cols.tolist()):
        counts[r // 4, c // 4] += 1
    assert torch.all(counts == 1)


# ------------------------------------------------------------------ Nyström
def test_nystrom_is_orthonormal_and_matches_C_Apinv_Ct(camera32):
    x, y, K, lam, V = camera32
    S = landmark_pixels((32, 32), 100, method="random", generator=gen(7))
    C = K[:, S]
    lam_n, V_n = nystrom_eigenpairs(C, S)
    assert torch.all(lam_n[:-1] >= lam_n[1:]) and torch.all(lam_n > 0)
    torch.testing.assert_close(V_n.T @ V_n, torch.eye(V_n.shape[1], dtype=torch.float64),
                               rtol=0, atol=1e-9)
    approx = C @ torch.linalg.pinv(K[S][:, S], hermitian=True, rtol=1e-10) @ C.T
    torch.testing.assert_close(V_n @ torch.diag(lam_n) @ V_n.T, approx,
                               rtol=0, atol=1e-8 * float(K.abs().max()))


def test_nystrom_with_every_pixel_is_exact(small):
    x, y, K, lam, V = small
    S = landmark_pixels((16, 16), 256, generator=gen(8))
    lam_n, V_n = nystrom_eigenpairs(K[:, S], S, rcond=1e-13)
    steps = [1, 10, 100, 1000]
    torch.testing.assert_close(gd_filter(y, lam_n, V_n, steps), gd_filter(y, lam, V, steps),
                               rtol=0, atol=1e-6)


def test_nystrom_error_falls_with_landmarks(camera32):
    x, y, K, lam, V = camera32
    t = [60]
    exact = gd_filter(y, lam, V, t)
    errors = []
    for m in [32, 128, 512]:
        S = landmark_pixels((32, 32), m, generator=gen(9))
        lam_n, V_n = nystrom_eigenpairs(K[:, S], S)
        z = gd_filter(y, lam_n, V_n, t)
        errors.append(float((z - exact).norm() / exact.norm()))
    assert errors[0] > errors[1] > errors[2]
    assert errors[2] < 0.05


def test_nystrom_survives_a_singular_landmark_block():
    y = torch.full((1, 16, 16), 0.5, dtype=torch.float64)
    y[:, :, 8:] = 0.2  # two flat halves: many identical patches, a rank-deficient block
    K = arccos_ntk(y)
    S = torch.arange(0, 256, 3)
    lam_n, V_n = nystrom_eigenpairs(K[:, S], S)
    assert torch.isfinite(lam_n).all() and torch.isfinite(V_n).all()
    assert V_n.shape[1] < len(S)  # repeated patches dropped
    torch.testing.assert_close(V_n.T @ V_n, torch.eye(V_n.shape[1], dtype=torch.float64),
                               rtol=0, atol=1e-8)


def test_nystrom_refuses_bad_landmarks(small):
    x, y, K, lam, V = small
    S = torch.tensor([0, 5, 9])
    with pytest.raises(TypeError, match="landmarks"):
        nystrom_eigenpairs(K[:, S], S.double())
    with pytest.raises(ValueError, match="landmarks"):
        nystrom_eigenpairs(K[:, S], torch.tensor([0, 5]))
    with pytest.raises(ValueError, match="distinct"):
        nystrom_eigenpairs(K[:, S], torch.tensor([0, 5, 5]))
    with pytest.raises(ValueError, match="n_landmarks"):
        landmark_pixels((4, 4), 17)
    with pytest.raises(ValueError, match="method"):
        landmark_pixels((4, 4), 3, method="sobol")


# ------------------------------------------------------------------ NLM weights
def fast_exp(v):
    """Schraudolph's (1999) exponential, which scikit-image's NLM uses: write
    2^20/ln 2 * v + (1023 * 2^20 - 60801) into the high 32 bits of a double."""
    high = np.trunc(1512775.0 * v + 1072632447.0).astype(np.int64)
    return (high << 32).view(np.float64)


@pytest.mark.parametrize("colour", [False, True])
@pytest.mark.parametrize("sigma", [None, 0.1])
def test_nlm_weights_match_scikit_image(colour, sigma):
    from skimage.restoration import denoise_nl_means

    x = load_image("astronaut" if colour else "camera", size=32, gray=not colour).double()
    y = add_noise(x, 0.1, generator=gen(10))
    for pixel in [(16, 16), (3, 29)]:
        # choose h so that no weight falls below scikit-image's cut-off exp(-5)
        w1 = nlm_weights(y, pixel, patch_size=5, h=1.0, search_window=4)
        dist = -torch.log(w1[w1 > 0] / w1[pixel])
        h = math.sqrt(float(dist.max()) / 4.5)
        ref = denoise_nl_means(y.permute(1, 2, 0).numpy(), patch_size=5, patch_distance=4,
                               h=h, sigma=sigma or 0.0, fast_mode=False, channel_axis=-1)
        w = nlm_weights(y, pixel, patch_size=5, h=h, sigma=sigma, search_window=4).numpy()
        inside = w > 0
        assert inside.sum() == 81 or pixel == (3, 29)
        # our exact weights, recomputed with scikit-image's approximate exp
        D = -np.log(w[inside] / w[pixel])
        u = fast_exp(-D)
        est = (y.numpy()[:, inside] * u).sum(1) / u.sum()
        np.testing.assert_allclose(est, ref[pixel], rtol=0, atol=1e-6)


def test_nlm_weights_properties():
    y = torch.full((1, 24, 24), 0.2, dtype=torch.float64)
    y[:, :, 12:] = 0.8  # two flat halves
    y = y + 0.02 * torch.randn(y.shape, generator=gen(11), dtype=torch.float64)
    w = nlm_weights(y, (12, 4), patch_size=5, h=0.05)
    assert w.shape == (24, 24) and torch.all(w >= 0)
    assert abs(float(w.sum()) - 1) < 1e-12
    assert w.argmax() == 12 * 24 + 4  # the pixel's own patch is the most similar
    assert float(w[:, :10].sum()) > 0.99  # spread over the flat left half only
    assert float(w[:, :10].max()) < 0.05  # ... and spread, not concentrated
    w = nlm_weights(y, (12, 4), patch_size=5, h=0.05, search_window=3)
    assert float(w[:, 8:].sum()) == 0 and float(w[:8].sum()) == 0
    with pytest.raises(ValueError, match="pixel"):
        nlm_weights(y, (24, 0))
    with pytest.raises(ValueError, match="h must be > 0"):
        nlm_weights(y, (0, 0), h=-1.0)


# ------------------------------------------------------------------ df, bias, variance
def filter_matrix(K, lr, t):
    n = K.shape[0]
    eye = torch.eye(n, dtype=K.dtype)
    return eye - torch.linalg.matrix_power(eye - lr * K, t)


def test_degrees_of_freedom_is_the_trace(small):
    x, y, K, lam, V = small
    lr = 1 / float(lam[0])
    steps = [0, 1, 3, 20, 150, 3000]
    df = degrees_of_freedom(lam, steps)
    ref = torch.stack([torch.trace(filter_matrix(K, lr, t)) for t in steps])
    torch.testing.assert_close(df, ref, rtol=1e-8, atol=1e-8)
    assert df[0] == 0 and torch.all(df[1:] > df[:-1]) and float(df[-1]) <= 256


def test_bias_variance_exact_and_monte_carlo(small):
    x, y, K, lam, V = small
    lr = 1 / float(lam[0])
    steps = [0, 2, 20, 200, 2000]
    bias2, var = bias_variance(x, lam, V, steps, None, SIGMA)
    assert torch.all(bias2[1:] < bias2[:-1]) and torch.all(var[1:] > var[:-1])
    Ws = [filter_matrix(K, lr, t) for t in steps]
    xf = x.reshape(-1)
    for i, Wt in enumerate(Ws):  # ||W x - x||^2 and sigma^2 ||W||_F^2
        torch.testing.assert_close(bias2[i], (Wt @ xf - xf).pow(2).sum(), rtol=1e-8, atol=1e-9)
        torch.testing.assert_close(var[i], SIGMA**2 * Wt.pow(2).sum(), rtol=1e-8, atol=1e-9)
    noise = SIGMA * torch.randn(400, 256, generator=gen(12), dtype=torch.float64)
    for i, Wt in enumerate(Ws):
        err = ((xf + noise) @ Wt.T - xf).pow(2).sum(1)  # (400,)
        se = float(err.std()) / math.sqrt(len(err))
        assert abs(float(err.mean()) - float(bias2[i] + var[i])) < 4 * se + 1e-12


def test_bias_variance_colour_is_the_sum_over_channels(small):
    x, y, K, lam, V = small
    x3 = torch.cat([x, 0.5 * x, x.flip(-1)])
    b3, v3 = bias_variance(x3, lam, V, [5, 50], None, SIGMA)
    parts = [bias_variance(c[None], lam, V, [5, 50], None, SIGMA) for c in x3]
    torch.testing.assert_close(b3, sum(p[0] for p in parts))
    torch.testing.assert_close(v3, sum(p[1] for p in parts))


# ------------------------------------------------------------------ SURE and stopping
@pytest.mark.parametrize("colour", [False, True])
def test_sure_is_unbiased_for_a_fixed_kernel(colour):
    x = load_image("astronaut" if colour else "camera", size=12, gray=not colour).double()
    K = gauss_kernel(x, h=0.5)  # built from the clean image: independent of the noise
    lam, V = eigh_psd(K)
    steps = [1, 5, 30, 300]
    df = degrees_of_freedom(lam, steps)
    bias2, var = bias_variance(x, lam, V, steps, None, SIGMA)
    g = gen(13)
    draws = []
    for _ in range(300):
        y = add_noise(x, SIGMA, generator=g)
        draws.append(sure(y, gd_filter(y, lam, V, steps), df, SIGMA))
    draws = torch.stack(draws)  # (300, T)
    se = draws.std(0) / math.sqrt(len(draws))
    assert torch.all((draws.mean(0) - (bias2 + var)).abs() < 4 * se)


def test_sure_formula_on_a_hand_example():
    y = torch.tensor([[[1.0, 2.0], [3.0, 4.0]]])
    z = torch.stack([torch.zeros_like(y), y / 2])
    # ||z - y||^2 - 4 s^2 + 2 s^2 df
    expected = torch.tensor([30.0 - 4 * 0.25 + 0.0, 7.5 - 4 * 0.25 + 2 * 0.25 * 2.0])
    torch.testing.assert_close(sure(y, z, torch.tensor([0.0, 2.0]), 0.5), expected)
    y3 = y.expand(3, 2, 2)
    z3 = z.expand(2, 3, 2, 2)  # same filter on 3 channels: 3 x (residual, d, df)
    torch.testing.assert_close(sure(y3, z3, torch.tensor([0.0, 2.0]), 0.5), 3 * expected)


def test_sure_with_monte_carlo_df_finds_the_oracle(camera32):
    x, y, K, lam, V = camera32
    steps = torch.unique(torch.logspace(0, 4, 40).round().long())

    def denoiser(u):  # the NTK of the input itself, lr = 1/lambda_max
        lam_u, V_u = eigh_psd(arccos_ntk(u))
        return gd_filter(u, lam_u, V_u, steps)

    z = gd_filter(y, lam, V, steps)
    best = psnr(z[steps.tolist().index(oracle_step(z, x, steps))].clamp(0, 1), x)
    df_mc = degrees_of_freedom_mc(denoiser, y, generator=gen(14))
    t_mc = sure_step(y, z, df_mc, SIGMA, steps)
    assert best - psnr(z[steps.tolist().index(t_mc)].clamp(0, 1), x) < 0.3
    assert best > psnr(y.clamp(0, 1), x) + 2
    # the trace ignores that the kernel follows the noise: it stops far later
    t_fixed = sure_step(y, z, degrees_of_freedom(lam, steps), SIGMA, steps)
    assert t_fixed > 5 * t_mc
    assert torch.all(df_mc[1:] > degrees_of_freedom(lam, steps)[1:])


def test_degrees_of_freedom_mc_of_a_linear_filter(small):
    x, y, K, lam, V = small
    steps = [0, 4, 40]
    df_mc = degrees_of_freedom_mc(lambda u: gd_filter(u, lam, V, steps), y, n_probes=200,
                                  generator=gen(15))
    df = degrees_of_freedom(lam, steps)
    lr = 1 / float(lam[0])
    se = torch.tensor([math.sqrt(2 * filter_matrix(K, lr, t).pow(2).sum() / 200)
                       for t in steps])
    assert torch.all((df_mc - df).abs() <= 4 * se + 1e-9)


def test_discrepancy_and_oracle_steps():
    y = torch.ones(1, 2, 2)
    a = torch.tensor([0.0, 0.5, 0.8, 0.95, 1.0])
    z = a[:, None, None, None] * y  # residual (1 - a)^2 * 4
    steps = [0, 1, 2, 3, 4]
    # d sigma^2 = 4 * 0.3^2 = 0.36 -> first (1 - a)^2 * 4 <= 0.36 is a = 0.8 (0.16)
    assert discrepancy_step(y, z, 0.3, steps) == 2
    assert discrepancy_step(y, z, 0.01, steps) == 4
    assert discrepancy_step(y, z, 0.001, steps, tau=1.0) == 4  # never reached: last step
    x = 0.8 * y
    assert oracle_step(z, x, [10, 20, 30, 40, 50]) == 30


# ------------------------------------------------------------------ argument checks
def test_bad_arguments_name_the_argument(small):
    x, y, K, lam, V = small
    with pytest.raises(ValueError, match="y must have 3 dimensions"):
        gd_filter(y[0], lam, V, [1])
    with pytest.raises(TypeError, match="y must be a real floating-point tensor"):
        gd_filter((y * 255).long(), lam, V, [1])
    bad = y.clone()
    bad[0, 0, 0] = float("nan")
    with pytest.raises(ValueError, match="y contains NaN or inf"):
        gd_filter(bad, lam, V, [1])
    with pytest.raises(ValueError, match="steps"):
        gd_filter(y, lam, V, [1, -2])
    with pytest.raises(TypeError, match="steps"):
        gd_filter(y, lam, V, [1.5])
    with pytest.raises(ValueError, match="eigvecs"):
        gd_filter(y, lam, V[:100], [1])
    with pytest.raises(ValueError, match="eigvals"):
        gd_filter(y, lam - 1.0, V, [1])
    with pytest.raises(ValueError, match=r"lr = .* is unstable: gradient descent needs lr < 2/lambda_max"):
        degrees_of_freedom(lam, [1], lr=3.0 / float(lam[0]))
    z = gd_filter(y, lam, V, [1, 2])
    with pytest.raises(ValueError, match="sigma"):
        sure(y, z, torch.zeros(2), 0.0)
    with pytest.raises(ValueError, match="df must have one value per step"):
        sure(y, z, torch.zeros(3), 0.1)
    with pytest.raises(ValueError, match=r"z must be \(T, C, H, W\)"):
        sure(y, z[:, :, :4], torch.zeros(2), 0.1)
    with pytest.raises(ValueError, match="steps"):
        oracle_step(z, x, [1, 2, 3])
    with pytest.raises(ValueError, match="sigma"):
        bias_variance(x, lam, V, [1], None, -1.0)
    with pytest.raises(ValueError, match="n_steps"):
        gd_filter_iterative(y, K, -1, lr=0.1)
    with pytest.raises(ValueError, match=r"K must be \(n, n\) with n = H\*W"):
        gd_filter_iterative(y, K[:10, :10], 1, lr=0.1)
