"""Tests of ntkutils.spectral (eigenpairs, the GD filter, its df, bias and variance)
against independent computations: explicit iterations and matrix powers of the kernel."""
import math
import os

import pytest
import torch

os.environ.setdefault("TQDM_DISABLE", "1")

from _filter_helpers import (  # noqa: E402
    SIGMA,
    arccos_ntk,
    filter_matrix,
    gen,
    small,  # noqa: F401  (a fixture)
)
from ntkutils.images import add_noise, load_image  # noqa: E402
from ntkutils.spectral import (  # noqa: E402
    bias_variance,
    degrees_of_freedom,
    eigh_psd,
    gd_filter,
    gd_filter_iterative,
)


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


# ------------------------------------------------------------------ df, bias, variance
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
    with pytest.raises(ValueError, match="sigma"):
        bias_variance(x, lam, V, [1], None, -1.0)
    with pytest.raises(ValueError, match="n_steps"):
        gd_filter_iterative(y, K, -1, lr=0.1)
    with pytest.raises(ValueError, match=r"K must be \(n, n\) with n = H\*W"):
        gd_filter_iterative(y, K[:10, :10], 1, lr=0.1)
