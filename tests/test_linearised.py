"""Tests of ntkutils.linearised: gradient descent by the linearised dynamics at initialisation.

The exact case against ``y - (I - lr Theta)^t (y - f0)`` with ``Theta`` the blocks of the
full Jacobian's ``J J^T`` (an independent computation: ``torch.func.jacrev`` and matrix
powers); the prediction against real gradient descent of wide networks (closer at a larger
width); Nyström against the exact kernel; bad arguments.
"""
import os

os.environ.setdefault("TQDM_DISABLE", "1")

import pytest  # noqa: E402
import torch  # noqa: E402

from ntkutils.images import add_noise  # noqa: E402
from ntkutils.linearised import linearised_gd  # noqa: E402
from ntkutils.networks import (  # noqa: E402
    build_autoencoder,
    build_single_layer_cnn,
    build_vanilla_cnn,
)
from ntkutils.training import fit  # noqa: E402
from oracles import astronaut, camera, jacobian_ntk  # noqa: E402

# float64 throughout: eigensolves and matrix powers of a 100 x 100 kernel, up to 1e4 steps
RTOL = {torch.float64: 1e-9}


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def noisy(x: torch.Tensor, seed: int = 0) -> torch.Tensor:
    return add_noise(x, 0.1, generator=gen(seed))


def matrix_power_gd(K: torch.Tensor, y: torch.Tensor, f0: torch.Tensor, lr: float, t: int):
    """``y - (I - lr K)^t (y - f0)`` for one channel ``(n,)``: GD of the linear model."""
    step = torch.eye(K.shape[0], dtype=K.dtype) - lr * K
    return y - torch.linalg.matrix_power(step, t) @ (y - f0)


@pytest.mark.parametrize("C, channels", [(1, "joint"), (3, "joint"), (3, "each")])
def test_exact_kernel_is_gradient_descent_of_the_linearised_network(C, channels):
    x = camera(6) if C == 1 else astronaut(6)
    y = noisy(x)
    net = build_vanilla_cnn(C, 8, depth=2, generator=gen(1)).double()
    steps = [0, 1, 7, 60, 3000]
    run = linearised_gd(net, y, y, steps=steps, channels=channels, generator=gen(2))
    n = 36
    K = jacobian_ntk(net, y[None])  # (C n, C n), outputs in (C, H, W) order
    with torch.no_grad():
        f0 = net(y).reshape(C * n)  # (C n,)
    assert torch.allclose(run.f0.reshape(-1), f0, rtol=1e-12, atol=1e-14)
    lam_max = float(torch.linalg.eigvalsh(K)[-1])
    assert run.lr == pytest.approx(1 / lam_max, rel=1e-4)  # fit's default step
    if channels == "each":  # the cross-channel blocks dropped
        K = K * torch.block_diag(*[torch.ones(n, n, dtype=K.dtype)] * C)
    tol = RTOL[torch.float64]
    for k, t in enumerate(steps):
        expect = matrix_power_gd(K, y.reshape(C * n), f0, run.lr, t)
        got = run.estimates[k].reshape(C * n)
        assert torch.allclose(got, expect, rtol=tol, atol=tol * float(y.abs().max())), t


def test_centred_starts_at_zero_and_a_shared_kernel_is_one_channels():
    x = astronaut(6)
    y = noisy(x)
    net = build_vanilla_cnn(3, 8, depth=1, generator=gen(3)).double()
    each = linearised_gd(net, y, y, steps=[0, 5, 50], lr=0.04, centred=True,
                         channels="each")
    assert torch.equal(each.f0, torch.zeros_like(y)) and torch.equal(each.estimates[0], each.f0)
    shared = linearised_gd(net, y, y, steps=[0, 5, 50], lr=0.04, centred=True,
                           channels=1)
    assert len(each.eigvals) == 3 and len(shared.eigvals) == 1
    assert torch.allclose(shared.estimates[:, 1], each.estimates[:, 1], rtol=1e-10,
                          atol=1e-12)
    assert not torch.allclose(shared.estimates[:, 0], each.estimates[:, 0], atol=1e-6)


def test_oracle_and_discrepancy_rules():
    x = camera(8)
    y = noisy(x)
    net = build_single_layer_cnn(1, 64, generator=gen(4)).double()
    run = linearised_gd(net, y, y, x=x, sigma=0.1, generator=gen(5))
    assert run.rule == "oracle" and run.steps[0] == 0 and run.steps[-1] == 10**6
    assert float(run.psnr[run.index]) == float(run.psnr.max())
    assert torch.equal(run.x_hat, run.estimates[run.index])
    d = y.numel()
    i = run.index_discrepancy
    assert run.residual[i] <= d * 0.1**2 and (i == 0 or run.residual[i - 1] > d * 0.1**2)
    assert run.psnr_discrepancy == float(run.psnr[i]) and run.step_discrepancy == run.steps[i]
    expect_resid = (run.estimates - y).pow(2).flatten(1).sum(1)
    assert torch.allclose(run.residual, expect_resid, rtol=1e-12)
    blind = linearised_gd(net, y, y, sigma=0.1, generator=gen(5))
    assert blind.rule == "discrepancy" and blind.index == i and blind.psnr is None


def _gap(net, y, steps=(10, 100, 200)) -> float:
    """Largest ``||z_real^t - z_lin^t|| / ||y - f0||`` over ``steps`` (real GD by ``fit``)."""
    run = linearised_gd(net, y, y, steps=[0, *steps], generator=gen(9))
    res = fit(net, y, y, n_steps=max(steps), lr=run.lr, snapshot_steps=steps,
              record_every=max(steps), progress=False)
    scale = float((y - run.f0).norm())
    return max(float((res.snapshots[t] - run.estimates[k + 1]).norm()) / scale
               for k, t in enumerate(steps))


@pytest.mark.parametrize("build, widths, bound", [
    (lambda c, s: build_single_layer_cnn(1, c, generator=gen(s)), (64, 1024), 0.02),
    (lambda c, s: build_vanilla_cnn(1, c, depth=2, generator=gen(s)), (16, 128), 0.08),
])
def test_real_gradient_descent_follows_the_prediction_closer_when_wider(build, widths, bound):
    # measured on this 8 x 8 detail, mean over seeds 0-2: single layer 0.024 at width 64,
    # 0.009 at 1024; two hidden layers 0.10 at width 16, 0.045 at 128 (c^{-1/2}: 0.25, 0.35)
    y = noisy(camera(8))
    narrow, wide = (sum(_gap(build(c, s).double(), y) for s in range(3)) / 3
                    for c in widths)
    assert wide < bound and wide < 0.6 * narrow, (narrow, wide)


def test_nystrom_is_exact_with_every_pixel_and_close_with_fewer():
    # a smooth image: nearly collinear patches, a kernel of fast-decaying spectrum
    r = torch.linspace(0, 1, 10, dtype=torch.float64)
    x = (0.5 + 0.3 * torch.sin(3 * r[:, None] + 2 * r[None, :]))[None]  # (1, 10, 10)
    y = noisy(x)
    net = build_single_layer_cnn(1, 64, generator=gen(6)).double()
    steps = [0, 1, 10, 100]
    exact = linearised_gd(net, x, y, steps=steps, lr=None, generator=gen(7))
    full = linearised_gd(net, x, y, steps=steps, lr=exact.lr, n_landmarks=100)
    half = linearised_gd(net, x, y, steps=steps, lr=exact.lr, n_landmarks=30,
                         generator=gen(8))
    assert full.landmarks.tolist() == list(range(100)) and exact.landmarks is None
    scale = float((y - exact.f0).norm())
    err_full = float((full.estimates - exact.estimates).flatten(1).norm(dim=1).max()) / scale
    err_half = float((half.estimates - exact.estimates).flatten(1).norm(dim=1).max()) / scale
    assert err_full < 1e-6, err_full  # eigenvalues below 1e-10 lambda_max are dropped
    assert err_half < 0.05, err_half
    assert half.eigvecs[0].shape[1] <= 30
    # the joint kernel of a colour network: Nystrom with every pixel of every channel
    y3 = noisy(astronaut(6))
    net3 = build_vanilla_cnn(3, 8, depth=2, generator=gen(6)).double()
    exact3 = linearised_gd(net3, y3, y3, steps=steps, generator=gen(7))
    full3 = linearised_gd(net3, y3, y3, steps=steps, lr=exact3.lr, n_landmarks=36)
    assert full3.eigvecs[0].shape[0] == 3 * 36
    assert torch.allclose(full3.estimates, exact3.estimates, rtol=1e-6, atol=1e-7)


def test_batch_norm_in_training_mode_is_linearised_without_touching_its_statistics():
    net = build_autoencoder(2, 1, 4, levels=1, generator=gen(10)).double()
    u = torch.rand(2, 8, 8, generator=gen(11), dtype=torch.float64)
    y = noisy(camera(8))
    before = {k: b.clone() for k, b in net.named_buffers()}
    run = linearised_gd(net, u, y, steps=[0, 10], n_landmarks=16, generator=gen(12))
    assert net.training
    assert all(torch.equal(b, before[k]) for k, b in net.named_buffers())
    with torch.no_grad():
        assert torch.allclose(run.f0, net(u).reshape(1, 8, 8), rtol=1e-12)  # batch stats


def test_bad_arguments_raise_clear_errors():
    y = noisy(camera(6))
    net = build_single_layer_cnn(1, 8, generator=gen(0)).double()
    with pytest.raises(TypeError, match="model must be a torch.nn.Module"):
        linearised_gd("net", y, y)
    with pytest.raises(TypeError, match="must share one dtype"):
        linearised_gd(net, y.float(), y)
    with pytest.raises(ValueError, match="n_landmarks must be <= the number of pixels"):
        linearised_gd(net, y, y, n_landmarks=37)
    with pytest.raises(ValueError, match="channels must be 'joint', 'each' or an output"):
        linearised_gd(net, y, y, channels=1)
    with pytest.raises(ValueError, match="channels must be 'joint', 'each' or an output"):
        linearised_gd(net, y, y, channels="all")
    with pytest.raises(ValueError, match="lr = .* is unstable"):
        linearised_gd(net, y, y, lr=1e6)
    with pytest.raises(ValueError, match="lr must be > 0"):
        linearised_gd(net, y, y, lr=-1.0)
    with pytest.raises(ValueError, match="steps must be >= 0"):
        linearised_gd(net, y, y, steps=[-1, 3])
    with pytest.raises(ValueError, match="looks like the 0..255 scale"):
        linearised_gd(net, y, y, sigma=25)
    with pytest.raises(TypeError, match="centred must be True or False"):
        linearised_gd(net, y, y, centred=1)
    with pytest.raises(ValueError, match="model\\(u\\) has shape"):
        linearised_gd(build_single_layer_cnn(1, 8, generator=gen(0)).double(), y,
                      torch.cat([y, y, y]))


@pytest.mark.parametrize("C", [1, 3])
def test_lanczos_is_exact_for_early_steps_with_every_direction_and_at_convergence(C):
    # independent: the full Jacobian's kernel and matrix powers (matrix_power_gd)
    x = camera(6) if C == 1 else astronaut(6)
    y = noisy(x)
    net = build_vanilla_cnn(C, 8, depth=2, generator=gen(13)).double()
    n = 36
    K = jacobian_ntk(net, y[None])  # (C n, C n)
    with torch.no_grad():
        f0 = net(y).reshape(C * n)  # (C n,)
    lr = 1 / float(torch.linalg.eigvalsh(K)[-1])
    early = [0, 1, 5, 11]
    short = linearised_gd(net, y, y, steps=early, lr=lr, lanczos=12)  # exact for t < 12
    full = linearised_gd(net, y, y, steps=[0, 3, 40, 3000], lr=lr, lanczos=C * n)
    tol = RTOL[torch.float64]
    for run in (short, full):
        for k, t in enumerate(run.steps.tolist()):
            expect = matrix_power_gd(K, y.reshape(C * n), f0, lr, t)
            got = run.estimates[k].reshape(C * n)
            assert torch.allclose(got, expect, rtol=tol, atol=tol * float(y.abs().max())), t
    assert short.eigvecs[0].shape == (C * n, 12) and short.landmarks is None
    assert float(short.eigvals[0].max()) <= float(torch.linalg.eigvalsh(K)[-1]) * (1 + tol)
    if C == 3:  # 36 C outputs, 8 channels: this joint kernel is singular
        return
    # y - z^0 lies in the Krylov space: with a nonsingular kernel a few steps already
    # converge to y, as the exact dynamics do, where Nyström with as many columns keeps
    # part of y - f0 unfitted
    assert float(torch.linalg.eigvalsh(K)[0]) > 1e-6 / lr
    far = linearised_gd(net, y, y, steps=[10**12], lr=lr, lanczos=6)
    nys = linearised_gd(net, y, y, steps=[10**12], lr=lr, n_landmarks=2, generator=gen(1))
    exact = matrix_power_gd(K, y.reshape(C * n), f0, lr, 10**12)
    assert torch.allclose(far.estimates[0].reshape(-1), exact, atol=1e-8)
    assert not torch.allclose(nys.estimates[0].reshape(-1), exact, atol=1e-3)


def test_lanczos_follows_an_autoencoder_with_batch_norm():
    net = build_autoencoder(2, 1, 4, levels=1, generator=gen(14)).double()
    u = torch.rand(2, 8, 8, generator=gen(15), dtype=torch.float64)
    y = noisy(camera(8))
    before = {k: b.clone() for k, b in net.named_buffers()}
    steps = [0, 2, 50, 10**4]
    exact = linearised_gd(net, u, y, steps=steps, centred=True, generator=gen(16))
    krylov = linearised_gd(net, u, y, steps=steps, centred=True, lr=exact.lr, lanczos=64)
    assert all(torch.equal(b, before[k]) for k, b in net.named_buffers())
    assert torch.allclose(krylov.estimates, exact.estimates, rtol=1e-7, atol=1e-8)


def test_lanczos_bad_arguments_raise_clear_errors():
    y = noisy(astronaut(6))
    net = build_vanilla_cnn(3, 4, depth=1, generator=gen(0)).double()
    with pytest.raises(ValueError, match="n_landmarks .* or lanczos .* not both"):
        linearised_gd(net, y, y, n_landmarks=4, lanczos=4)
    with pytest.raises(ValueError, match="lanczos needs channels='joint'"):
        linearised_gd(net, y, y, lanczos=4, channels="each")
    with pytest.raises(ValueError, match="lanczos must be <= the C\\*H\\*W = 108"):
        linearised_gd(net, y, y, lanczos=109)
    with pytest.raises(ValueError, match="lanczos must be"):
        linearised_gd(net, y, y, lanczos=0)
    with pytest.raises(ValueError, match="nothing for gradient descent to fit"):
        with torch.no_grad():
            linearised_gd(net, y, net(y), lanczos=4)
