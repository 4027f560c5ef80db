"""Tests of ntkutils.training: the NTK dynamics, GD vs Adam, fit's records and refusals.

The recorders alone are tested in ``test_recorders.py``, the power iteration (re-exported
here) in ``test_empirical.py``.
"""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from ntkutils.images import add_noise, load_image, psnr
from ntkutils.networks import build_autoencoder, build_single_layer_cnn
from ntkutils.training import fit, make_noise_input
from oracles import jacobian_ntk


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def closed_form_ntk(u: torch.Tensor, k: int) -> torch.Tensor:
    """The contract's infinite-width NTK of the single-hidden-layer CNN, written afresh.

    Theta_ij = |u_i||u_j| / (2 pi d) (sin phi + 2 (pi - phi) cos phi), 0 for zero patches.
    """
    d = u.shape[0] * k * k
    P = F.unfold(u[None].double(), k, padding=k // 2)[0].T  # (n, d)
    norms = P.norm(dim=1)
    nn_ = norms[:, None] * norms[None, :]  # (n, n)
    cos = torch.where(nn_ > 0, (P @ P.T) / nn_.clamp_min(1e-300), 0.0).clamp(-1, 1)
    phi = torch.arccos(cos)
    return nn_ / (2 * math.pi * d) * (torch.sin(phi) + 2 * (math.pi - phi) * cos)


@pytest.fixture(scope="module")
def camera12():
    x = load_image("camera", size=12)
    return x, add_noise(x, 25 / 255, generator=gen(0))


# ------------------------------------------------------------------ NTK dynamics
def test_gd_follows_the_closed_form_ntk_prediction_and_the_gap_shrinks(camera12):
    """A wide symmetric CNN trained by GD follows z^t = (I - (I - lr Theta)^t) y."""
    _, y = camera12
    lam, V = torch.linalg.eigh(closed_form_ntk(y, 3))
    lam = lam.clamp_min(0)
    yv = V.T @ y.reshape(-1).double()  # (n,) coefficients of y in the eigenbasis
    steps = (10, 25, 50)
    gaps = {}
    for width in (64, 1024):
        worst = []
        for seed in (1, 2):
            net = build_single_layer_cnn(channels=width, symmetric=True, generator=gen(seed))
            res = fit(net, y, y, n_steps=50, snapshot_steps=steps, progress=False,
                      generator=gen(seed))
            assert res.lambda_max is not None and res.lr == pytest.approx(1 / res.lambda_max)
            for t in steps:
                z_pred = V @ ((1 - (1 - res.lr * lam) ** t) * yv)  # (n,)
                z_net = res.snapshots[t].reshape(-1).double()  # (n,)
                worst.append(float((z_net - z_pred).norm() / z_pred.norm()))
        gaps[width] = sum(worst) / len(worst)
    # measured: about 0.06 at width 64 and 0.02 at width 1024 (c^-1/2 would give 4x)
    assert gaps[1024] < 0.04, gaps
    assert gaps[1024] < 0.5 * gaps[64], gaps


def test_one_gd_step_is_minus_lr_times_the_gradient_of_the_sum_loss():
    """The loss is 1/2 sum (z - y)^2, not a mean (DESIGN pitfall 2)."""
    y = torch.rand(1, 6, 6, generator=gen(0))
    net = build_single_layer_cnn(1, 16, generator=gen(1))
    ref = build_single_layer_cnn(1, 16, generator=gen(1))
    lr = 0.01
    res = fit(net, y, y, n_steps=1, lr=lr, progress=False)
    w = ref.hidden.weight.detach().requires_grad_()
    a = ref.readout.weight.detach().requires_grad_()
    z = ref.scale_readout * F.conv2d(torch.relu(ref.scale_hidden * F.conv2d(y, w, padding=1)), a)
    loss = sum(0.5 * (zi - yi) ** 2 for zi, yi in zip(z.reshape(-1), y.reshape(-1)))
    gw, ga = torch.autograd.grad(loss, (w, a))
    assert torch.allclose(net.hidden.weight, w - lr * gw, atol=1e-6)
    assert torch.allclose(net.readout.weight, a - lr * ga, atol=1e-6)
    assert res.loss[0] == pytest.approx(float(loss.detach()), rel=1e-5)


# ------------------------------------------------------------------ GD versus Adam
def test_adam_moves_the_hidden_weights_o1_while_gd_change_falls_with_width():
    """Standard parameterisation, Adam lr 1e-2 (DIP's), GD lr = 1 / lambda_max.

    This is the set-up where the claim holds (DESIGN pitfall 4); in the NTK
    parameterisation with a fixed Adam lr, Adam's change also shrinks with width.
    """
    x = load_image("camera", size=16)
    y = add_noise(x, 25 / 255, generator=gen(0))
    change = {}
    for width in (64, 1024):
        for opt in ("gd", "adam"):
            net = build_single_layer_cnn(channels=width, parameterization="standard",
                                         generator=gen(1))
            res = fit(net, y, y, optimizer=opt, n_steps=30, record_every=10,
                      progress=False, generator=gen(2))
            change[opt, width] = float(res.weight_change.l2_rel["hidden.weight"][-1])
    # measured: GD 0.02 -> 0.0004, Adam 0.35 -> 0.32
    for width in (64, 1024):
        assert change["adam", width] > 10 * change["gd", width], change
    assert change["gd", 1024] < 0.25 * change["gd", 64], change
    assert change["adam", 1024] > 0.7 * change["adam", 64], change


# ------------------------------------------------------------------ records
def test_records_agree_with_the_trained_model_and_its_initial_copy():
    x = load_image("camera", size=16)
    y = add_noise(x, 25 / 255, generator=gen(0))
    u = make_noise_input((3, 16, 16), generator=gen(1))
    net = build_autoencoder(3, 1, 8, levels=2, generator=gen(2))
    init = build_autoencoder(3, 1, 8, levels=2, generator=gen(2))
    res = fit(net, u, y, optimizer="adam", n_steps=12, x=x, record_every=5,
              snapshot_steps=(0, 7), input_noise_std=1 / 30, progress=False,
              generator=gen(3))
    assert res.steps.tolist() == [0, 5, 10, 12]
    with torch.no_grad():
        z0, zT = init(u), net(u)
    assert torch.allclose(res.snapshots[0], z0) and torch.equal(res.x_hat, zT)
    assert res.loss[0] == pytest.approx(0.5 * float(((z0 - y) ** 2).sum()), rel=1e-5)
    assert res.loss[-1] == pytest.approx(0.5 * float(((zT - y) ** 2).sum()), rel=1e-5)
    assert res.psnr[-1] == pytest.approx(psnr(zT, x))
    assert res.best_psnr == pytest.approx(float(res.psnr.max()))
    assert res.best_psnr == pytest.approx(psnr(res.best_x_hat, x))
    assert res.best_step in res.steps.tolist()
    init_params = dict(init.named_parameters())
    total = 0.0
    for name, p in net.named_parameters():
        d = (p - init_params[name]).detach()
        total += float(d.norm()) ** 2
        assert res.weight_change.l2[name][-1] == pytest.approx(float(d.norm()), rel=1e-5)
        assert res.weight_change.inf[name][-1] == pytest.approx(float(d.abs().max()), rel=1e-5)
        norm0 = float(init_params[name].detach().norm())
        rel = res.weight_change.l2_rel[name][-1]
        if norm0 > 0:
            assert rel == pytest.approx(float(d.norm()) / norm0, rel=1e-5)
        else:  # batch norm's bias starts at 0: no relative change
            assert math.isnan(rel)
    assert res.weight_change.total_l2[-1] == pytest.approx(math.sqrt(total), rel=1e-5)
    assert res.weight_change.total_l2[0] == 0


def test_ntk_steps_record_the_empirical_kernel():
    y = torch.rand(1, 6, 6, generator=gen(0))
    net = build_single_layer_cnn(1, 32, generator=gen(1))
    init = build_single_layer_cnn(1, 32, generator=gen(1))
    rows = torch.tensor([0, 7, 20])
    res = fit(net, y, y, n_steps=3, ntk_steps=(0, 3), ntk_rows=rows, progress=False)
    assert set(res.ntks) == {0, 3}
    assert torch.allclose(res.ntks[0].double(), jacobian_ntk(init, y)[rows], rtol=1e-4,
                          atol=1e-6)
    assert torch.allclose(res.ntks[3].double(), jacobian_ntk(net, y)[rows], rtol=1e-4,
                          atol=1e-6)


def test_seeded_runs_are_identical():
    y = torch.rand(1, 8, 8, generator=gen(0))
    u = make_noise_input((2, 8, 8), generator=gen(1))

    def run(seed):
        net = build_autoencoder(2, 1, 4, levels=2, generator=gen(2))
        return fit(net, u, y, optimizer="adam", n_steps=5, input_noise_std=0.05,
                   progress=False, generator=gen(seed))

    a, b, c = run(3), run(3), run(4)
    assert torch.equal(a.x_hat, b.x_hat) and torch.equal(a.loss, b.loss)
    assert not torch.equal(a.x_hat, c.x_hat)  # the input perturbation does depend on it


def test_make_noise_input():
    u = make_noise_input((32, 10, 12), scale=0.1, generator=gen(0))
    assert u.shape == (32, 10, 12) and u.dtype == torch.float32
    assert float(u.min()) >= 0 and float(u.max()) <= 0.1
    assert float(u.mean()) == pytest.approx(0.05, abs=0.003)  # U(0, 0.1)
    with pytest.raises(ValueError, match="shape"):
        make_noise_input((10, 12))


# ------------------------------------------------------------------ validation
def test_bad_arguments():
    y = torch.rand(1, 8, 8)
    net = build_single_layer_cnn(1, 8, generator=gen(0))
    with pytest.raises(ValueError, match="optimizer"):
        fit(net, y, y, optimizer="sgd", n_steps=1)
    with pytest.raises(ValueError, match="n_steps"):
        fit(net, y, y, n_steps=-1)
    with pytest.raises(TypeError, match="n_steps"):
        fit(net, y, y, n_steps=2.0)
    with pytest.raises(ValueError, match="net_input"):
        fit(net, torch.rand(1, 8, 9), y, n_steps=1)
    with pytest.raises(ValueError, match="x must"):
        fit(net, y, y, x=torch.rand(1, 8, 9), n_steps=1)
    with pytest.raises(ValueError, match="model\\(net_input\\)"):
        fit(build_autoencoder(1, 3, 4, levels=1, generator=gen(0)), y, y, n_steps=1)
    with pytest.raises(ValueError, match="lr must be > 0"):
        fit(net, y, y, lr=-0.1, n_steps=1)
    with pytest.raises(ValueError, match="snapshot_steps"):
        fit(net, y, y, n_steps=3, snapshot_steps=(4,))
    with pytest.raises(ValueError, match="input_noise_std"):
        fit(net, y, y, n_steps=1, input_noise_std=-1.0)
    with pytest.raises(TypeError, match="y must be a torch.Tensor"):
        fit(net, y, y.numpy(), n_steps=1)
    with pytest.raises(TypeError, match="model"):
        fit(lambda u: u, y, y, n_steps=1)


def test_running_average_of_the_outputs_is_the_exponential_average_of_the_snapshots():
    g = torch.Generator().manual_seed(3)
    x = torch.rand(1, 8, 8, generator=g, dtype=torch.float64)
    y = x + 0.1 * torch.randn(1, 8, 8, generator=g, dtype=torch.float64)
    net = build_single_layer_cnn(channels=16, generator=g).double()
    n, beta = 12, 0.9
    res = fit(net, y, y, optimizer="adam", n_steps=n, lr=1e-2, x=x, average=beta,
              snapshot_steps=range(n + 1), progress=False, generator=g)
    a = res.snapshots[0].clone()  # no input perturbation: z^t is the output at u
    averages = [a.clone()]
    for t in range(1, n + 1):
        a = beta * a + (1 - beta) * res.snapshots[t]
        averages.append(a.clone())
    expected = torch.tensor([psnr(v, x) for v in averages], dtype=torch.float64)
    assert torch.allclose(res.psnr_average, expected, atol=1e-9)
    assert torch.allclose(res.x_hat_average, averages[-1], atol=1e-12)
    assert res.loss_average[-1] == pytest.approx(0.5 * float(((a - y) ** 2).sum()))
    assert res.best_psnr_average == pytest.approx(float(expected.max()))
    # without an average nothing is kept, and a bad weight is named
    plain = fit(net, y, y, n_steps=2, x=x, progress=False, generator=g)
    assert plain.psnr_average is None and plain.x_hat_average is None
    for bad in (1.0, -0.1, "0.9", True):
        with pytest.raises(ValueError, match="average must be a number in"):
            fit(net, y, y, n_steps=2, average=bad, progress=False)
