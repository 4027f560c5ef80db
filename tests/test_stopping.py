"""Tests of ntkutils.stopping: SURE is unbiased (Monte Carlo over noise draws), its
Monte-Carlo degrees of freedom match the trace of a linear filter, and the discrepancy and
oracle rules on hand examples."""
import math
import os

import pytest
import torch

os.environ.setdefault("TQDM_DISABLE", "1")

from _filter_helpers import (  # noqa: E402
    SIGMA,
    arccos_ntk,
    camera32,  # noqa: F401  (a fixture)
    filter_matrix,
    gauss_kernel,
    gen,
    small,  # noqa: F401  (a fixture)
)
from ntkutils.images import add_noise, load_image, psnr  # noqa: E402
from ntkutils.spectral import bias_variance, degrees_of_freedom, eigh_psd, gd_filter  # noqa: E402
from ntkutils.stopping import (  # noqa: E402
    degrees_of_freedom_mc,
    discrepancy_step,
    log_step_grid,
    oracle_step,
    sure,
    sure_step,
)


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




@pytest.mark.parametrize("max_step, n, zero", [(10**6, 150, True), (10**5, 21, False),
                                               (12345, 150, True), (7, 3, False)])
def test_log_step_grid_is_rounded_powers(max_step, n, zero):
    # t_k = max_step^(k / (n - 1)), rounded to the nearest int, repeats dropped
    expected = {round(max_step ** (k / (n - 1))) for k in range(n)}
    expected = sorted(expected | ({0} if zero else set()))
    grid = log_step_grid(max_step, n, zero=zero)
    assert grid.dtype == torch.int64 and grid.tolist() == expected
    assert int(grid[-1]) == max_step


def test_log_step_grid_refuses_bad_sizes():
    with pytest.raises(ValueError, match="max_step must be"):
        log_step_grid(0)
    with pytest.raises(ValueError, match="n_steps must be"):
        log_step_grid(100, 0)
    with pytest.raises(TypeError, match="zero must be True or False"):
        log_step_grid(100, zero=1)


def test_discrepancy_threshold_scales_with_tau_and_the_value_count():
    y = torch.ones(3, 2, 2)  # d = 12 values
    a = torch.tensor([0.0, 0.5, 0.8, 0.95])
    z = a[:, None, None, None] * y  # residual 12 (1 - a)^2 = 12, 3, 0.48, 0.03
    # d sigma^2 = 12 * 0.25 = 3: the first residual <= 3 is the second (equality counts)
    assert discrepancy_step(y, z, 0.5, [0, 1, 2, 3]) == 1
    # tau = 0.1: threshold 0.3, reached at a = 0.95 only
    assert discrepancy_step(y, z, 0.5, [0, 1, 2, 3], tau=0.1) == 3


# ------------------------------------------------------------------ argument checks
def test_bad_arguments_name_the_argument(small):
    x, y, K, lam, V = small
    z = gd_filter(y, lam, V, [1, 2])
    with pytest.raises(ValueError, match="sigma"):
        sure(y, z, torch.zeros(2), 0.0)
    with pytest.raises(ValueError, match="df must have one value per step"):
        sure(y, z, torch.zeros(3), 0.1)
    with pytest.raises(ValueError, match=r"z must be \(T, C, H, W\)"):
        sure(y, z[:, :, :4], torch.zeros(2), 0.1)
    with pytest.raises(ValueError, match="steps"):
        oracle_step(z, x, [1, 2, 3])
