"""Tests of ntkutils.training: the NTK dynamics, power iteration, GD vs Adam, records."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch.func import functional_call, jacrev

from ntkutils.images import add_noise, load_image, psnr
from ntkutils.networks import build_autoencoder, build_single_layer_cnn, build_vanilla_cnn
from ntkutils.training import (
    KernelRecorder,
    MetricRecorder,
    SnapshotRecorder,
    WeightRecorder,
    fit,
    make_noise_input,
    ntk_largest_eigenvalue,
)


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


def jacobian_ntk(model: torch.nn.Module, u: torch.Tensor) -> torch.Tensor:
    """J J^T over all outputs, from the full Jacobian (torch.func.jacrev)."""
    params = {k: p.detach() for k, p in model.named_parameters()}
    jac = jacrev(lambda p: functional_call(model, p, (u,)).reshape(-1))(params)
    J = torch.cat([j.reshape(j.shape[0], -1) for j in jac.values()], dim=1)  # (N, P)
    return (J @ J.T).double()


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


@pytest.mark.parametrize("kind", ["single", "vanilla", "autoencoder", "batch_norm"])
def test_power_iteration_matches_eigvalsh_of_the_empirical_ntk(kind):
    if kind == "single":
        net, u = build_single_layer_cnn(1, 32, generator=gen(0)), torch.rand(1, 8, 8)
    elif kind == "vanilla":
        net, u = build_vanilla_cnn(1, 8, 2, generator=gen(0)), torch.rand(1, 8, 8)
    else:
        net = build_autoencoder(4, 1, 4, levels=2, batch_norm=kind == "batch_norm",
                                generator=gen(0))
        u = make_noise_input((4, 8, 8), generator=gen(1))
    approx = ntk_largest_eigenvalue(net, u, n_iter=500, tol=1e-9, generator=gen(2))
    bns = [m for m in net.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    for m in bns:  # training-mode batch norm: batch statistics, running ones untouched
        assert int(m.num_batches_tracked) == 0
        m.track_running_stats = False  # so that jacrev may call it
    exact = float(torch.linalg.eigvalsh(jacobian_ntk(net, u))[-1])
    assert approx == pytest.approx(exact, rel=1e-3)
    assert approx <= exact * (1 + 1e-5)  # a Rayleigh quotient never exceeds lambda_max


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


# ------------------------------------------------------------------ recorders, alone
def test_metric_recorder_loss_psnr_and_the_oracle_best_step():
    x = torch.rand(2, 4, 5, generator=gen(0), dtype=torch.float64)
    y = x + 0.1 * torch.randn(2, 4, 5, generator=gen(1), dtype=torch.float64)
    outputs = {0: 0.5 * y, 3: x + 0.02, 6: x + 0.05}  # the best is at step 3
    rec = MetricRecorder([0, 3, 6], y, x=x)
    for t, z in outputs.items():
        rec.record(t, z)
    z3 = outputs[3]
    z3 += 1.0  # the recorder keeps a copy of the best output, not the caller's tensor
    res = rec.result()
    assert res["steps"].tolist() == [0, 3, 6] and res["steps"].dtype == torch.int64
    for i, t in enumerate((0, 3, 6)):
        z = outputs[t] - (1.0 if t == 3 else 0.0)
        assert float(res["loss"][i]) == pytest.approx(0.5 * sum(
            float(v) ** 2 for v in (z - y).reshape(-1)), rel=1e-12)
        mse = float(((z - x) ** 2).mean())
        assert float(res["psnr"][i]) == pytest.approx(10 * math.log10(1 / mse), rel=1e-9)
    assert res["best_step"] == 3 and res["best_psnr"] == float(res["psnr"].max())
    assert torch.allclose(res["best_x_hat"], x + 0.02, rtol=0, atol=1e-15)
    assert rec.postfix() == {"loss": f"{rec.losses[-1]:.4g}", "psnr": f"{rec.psnrs[-1]:.2f}"}


def test_metric_recorder_without_the_clean_image_records_only_the_loss():
    y = torch.ones(1, 2, 2)
    rec = MetricRecorder([5], y)
    rec.record(5, torch.zeros(1, 2, 2))
    res = rec.result()
    assert res["loss"].tolist() == [2.0]
    assert res["psnr"] is None and res["best_step"] is None
    assert res["best_psnr"] is None and res["best_x_hat"] is None
    assert rec.postfix() == {"loss": "2"}


def test_weight_recorder_measures_the_distance_from_the_initial_weights():
    net = torch.nn.Linear(3, 2)
    with torch.no_grad():
        net.bias.zero_()  # a zero initial tensor: no relative change
    params = dict(net.named_parameters())
    w0, b0 = net.weight.detach().clone(), net.bias.detach().clone()
    rec = WeightRecorder([0, 1, 2], params)
    rec.record(0, None)
    with torch.no_grad():
        net.weight[0, 0] += 0.3
        net.bias -= 0.2
    rec.record(1, None)
    with torch.no_grad():
        net.weight[1, 2] -= 0.4
    rec.record(2, None)
    change = rec.result()
    dw, db = net.weight.detach() - w0, net.bias.detach() - b0
    assert change.l2["weight"].tolist() == pytest.approx([0.0, 0.3, 0.5], rel=1e-6)
    assert change.inf["weight"].tolist() == pytest.approx([0.0, 0.3, 0.4], rel=1e-6)
    assert float(change.l2["bias"][-1]) == pytest.approx(float(db.norm()), rel=1e-6)
    assert float(change.l2_rel["weight"][-1]) == pytest.approx(
        float(dw.norm() / w0.norm()), rel=1e-6)
    assert float(change.inf_rel["weight"][-1]) == pytest.approx(
        float(dw.abs().max() / w0.abs().max()), rel=1e-6)
    assert change.l2_rel["bias"].isnan().all() and change.inf_rel["bias"].isnan().all()
    total = math.sqrt(float(dw.norm()) ** 2 + float(db.norm()) ** 2)
    assert float(change.total_l2[-1]) == pytest.approx(total, rel=1e-6)
    assert float(change.total_inf[-1]) == pytest.approx(0.4, rel=1e-6)
    assert float(change.total_l2_rel[-1]) == pytest.approx(total / float(w0.norm()), rel=1e-6)
    assert float(change.total_inf_rel[-1]) == pytest.approx(
        0.4 / float(w0.abs().max()), rel=1e-6)
    assert all(v.dtype == torch.float64 and v.shape == (3,) for v in change.l2.values())


def test_weight_recorder_without_trainable_parameters_records_zeros():
    rec = WeightRecorder([0, 4], {})
    rec.record(0, None)
    rec.record(4, None)
    change = rec.result()
    assert change.l2 == {} and change.total_l2.tolist() == [0.0, 0.0]
    assert change.total_inf.tolist() == [0.0, 0.0] and change.total_l2_rel.isnan().all()


def test_snapshot_recorder_keeps_copies():
    rec = SnapshotRecorder([1, 3])
    z = torch.zeros(1, 2, 2)
    rec.record(1, z)
    z += 1.0  # training goes on in place: the snapshot must not follow
    rec.record(3, z)
    snaps = rec.result()
    assert list(snaps) == [1, 3]
    assert torch.equal(snaps[1], torch.zeros(1, 2, 2)) and torch.equal(snaps[3], z)
    assert snaps[3] is not z


def test_kernel_recorder_is_the_jacobian_ntk_and_leaves_batch_norm_untouched():
    net = build_autoencoder(2, 1, 4, levels=1, generator=gen(0))  # batch norm, training mode
    u = make_noise_input((2, 4, 4), generator=gen(1))
    bns = [m for m in net.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    means = [m.running_mean.clone() for m in bns]
    rows = torch.tensor([0, 5, 15])
    rec = KernelRecorder([2], net, u, rows=rows)
    rec.record(2, None)
    assert all(m.track_running_stats and int(m.num_batches_tracked) == 0 for m in bns)
    assert all(torch.equal(m.running_mean, mean) for m, mean in zip(bns, means))
    for m in bns:
        m.track_running_stats = False  # so that jacrev may call it
    expect = jacobian_ntk(net, u)[rows]
    assert list(rec.result()) == [2]
    assert torch.allclose(rec.result()[2].double(), expect, rtol=1e-4, atol=1e-6)


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
