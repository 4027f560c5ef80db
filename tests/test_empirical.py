"""Tests of ntkutils.empirical: the finite-width NTK against autograd, and lambda_max.

The generic method against ``J J^T`` from ``torch.autograd``; the structured method (feature
products of the single-hidden-layer CNN) against the generic one, and the choice between them
by the model's type; the power iteration against ``eigvalsh`` of the full kernel.  The
empirical kernel's convergence to the closed form is tested in ``test_kernels.py``.
"""
import os

os.environ.setdefault("TQDM_DISABLE", "1")

import pytest  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402

from ntkutils import empirical  # noqa: E402
from ntkutils.empirical import ntk_empirical, ntk_largest_eigenvalue  # noqa: E402
from ntkutils.networks import (  # noqa: E402
    SingleLayerCNN,
    build_autoencoder,
    build_single_layer_cnn,
    build_vanilla_cnn,
)
from ntkutils.training import make_noise_input  # noqa: E402
from oracles import ContractCNN, astronaut, camera, jacobian_ntk  # noqa: E402


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_generic_empirical_ntk_matches_autograd_jacobian():
    u = camera(5)
    net = ContractCNN(1, 3, depth=2, k=3, generator=gen(2)).double()
    names = [name for name, _ in net.named_parameters()]
    flat = torch.cat([p.detach().flatten() for p in net.parameters()])
    shapes = [p.shape for p in net.parameters()]

    def output(theta):  # all parameters as one vector -> (n,)
        tensors, s = {}, 0
        for name, shape in zip(names, shapes):
            tensors[name] = theta[s:s + shape.numel()].reshape(shape)
            s += shape.numel()
        return torch.func.functional_call(net, tensors, (u[None],)).reshape(-1)

    J = torch.autograd.functional.jacobian(output, flat)  # (n, parameters)
    expect = J @ J.T
    ntk = ntk_empirical(net, u, method="generic", chunk_size=7)
    assert torch.allclose(ntk, expect, rtol=1e-12, atol=1e-12)
    rows = torch.tensor([24, 0, 12])
    assert torch.allclose(ntk_empirical(net, u, rows=rows), expect[rows], rtol=1e-12)
    assert torch.allclose(ntk_empirical(net, u, diagonal=True), torch.diag(expect), rtol=1e-12)
    assert torch.allclose(ntk_empirical(net, u, rows=rows, diagonal=True),
                          torch.diag(expect)[rows], rtol=1e-12)


@pytest.mark.parametrize("C, bias, symmetric, parameterization", [
    (1, False, False, "ntk"), (3, False, False, "ntk"), (1, True, False, "standard"),
    (3, True, True, "ntk"), (1, False, True, "standard"), (3, True, False, "standard"),
])
def test_structured_equals_generic(C, bias, symmetric, parameterization):
    u = astronaut(6) if C == 3 else camera(6)
    net = build_single_layer_cnn(C, 12, parameterization=parameterization, bias=bias,
                                 symmetric=symmetric, generator=gen(5))
    rows = torch.tensor([35, 0, 7])
    for o in range(C):
        slow = ntk_empirical(net, u, output_channel=o, method="generic")
        fast = ntk_empirical(net, u, output_channel=o, method="structured")
        assert torch.allclose(fast, slow, rtol=1e-10, atol=1e-12)
        part = ntk_empirical(net, u, output_channel=o, rows=rows, method="structured")
        assert torch.allclose(part, slow[rows], rtol=1e-10, atol=1e-12)
        diag = ntk_empirical(net, u, output_channel=o, rows=rows, diagonal=True)
        assert torch.allclose(diag, torch.diag(slow)[rows], rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("symmetric", [False, True])
def test_auto_picks_the_structured_path_only_for_the_single_layer_cnn(monkeypatch, symmetric):
    calls = []
    structured = empirical._ntk_structured
    monkeypatch.setattr(empirical, "_ntk_structured",
                        lambda *args: calls.append(1) or structured(*args))
    u = camera(6)
    net = build_single_layer_cnn(1, 8, symmetric=symmetric, generator=gen(8))
    ntk_empirical(net, u.float())
    ntk_empirical(net, u)
    assert len(calls) == 2
    ntk_empirical(build_vanilla_cnn(1, 4, 1, generator=gen(8)), u)
    ntk_empirical(ContractCNN(1, 4, 1, 3, generator=gen(8)), u)
    assert len(calls) == 2
    net.scale_hidden *= 2.0
    net.forward = lambda x: net.readout(torch.relu(net.hidden(x)))  # not the assumed forward
    ntk_empirical(net, u)
    assert len(calls) == 2
    with pytest.raises(ValueError, match="method='structured': the forward pass"):
        ntk_empirical(net, u, method="structured")


class LookAlike(nn.Module):
    """The single-layer CNN's attributes and forward pass, but not its type."""

    def __init__(self, net):
        super().__init__()
        self.hidden, self.readout = net.hidden, net.readout
        self.scale_hidden, self.scale_readout = net.scale_hidden, net.scale_readout

    def forward(self, u):
        return self.scale_readout * self.readout(torch.relu(self.scale_hidden * self.hidden(u)))


def test_the_structured_path_is_chosen_by_type(monkeypatch):
    calls = []
    structured = empirical._ntk_structured
    monkeypatch.setattr(empirical, "_ntk_structured",
                        lambda *args: calls.append(1) or structured(*args))
    u = camera(6)
    net = build_single_layer_cnn(1, 8, bias=True, generator=gen(9)).double()
    assert isinstance(net, SingleLayerCNN)
    look_alike = LookAlike(net)
    slow = ntk_empirical(look_alike, u)  # same attributes, same function: generic
    assert calls == []
    with pytest.raises(ValueError, match="method='structured' needs .*SingleLayerCNN.*LookAlike"):
        ntk_empirical(look_alike, u, method="structured")

    class Subclass(SingleLayerCNN):
        pass

    sub = Subclass(1, 8, 3, True, "ntk")
    sub.load_state_dict(net.state_dict())
    sub.scale_hidden, sub.scale_readout = net.scale_hidden, net.scale_readout
    fast = ntk_empirical(sub.double(), u)
    assert calls == [1]
    assert torch.allclose(fast, slow, rtol=1e-10, atol=1e-12)


def test_structured_respects_frozen_parameters():
    u = camera(6)
    net = build_single_layer_cnn(1, 10, bias=True, generator=gen(6))
    net.readout.weight.requires_grad_(False)
    net.hidden.bias.requires_grad_(False)
    slow = ntk_empirical(net, u, method="generic")
    assert torch.allclose(ntk_empirical(net, u), slow, rtol=1e-10, atol=1e-12)


def test_bad_empirical_arguments_are_refused():
    u = torch.rand(1, 6, 6)
    net = build_single_layer_cnn(1, 4, generator=gen(7))
    with pytest.raises(TypeError, match="model must be a torch.nn.Module"):
        ntk_empirical(lambda x: x, u)
    with pytest.raises(ValueError, match="method must be"):
        ntk_empirical(net, u, method="fast")
    with pytest.raises(ValueError, match="method='structured' needs"):
        ntk_empirical(build_vanilla_cnn(1, 4, 2, generator=gen(7)), u, method="structured")
    with pytest.raises(ValueError, match=r"output_channel must be in \[0, 1\)"):
        ntk_empirical(net, u, output_channel=1)
    with pytest.raises(ValueError, match=r"output_channel must be in \[0, 1\)"):
        ntk_empirical(net, u, output_channel=1, method="generic")
    with pytest.raises(ValueError, match="rows must hold indices"):
        ntk_empirical(net, u, rows=torch.tensor([36]))
    with pytest.raises(ValueError, match="chunk_size must be > 0"):
        ntk_empirical(net, u, chunk_size=0, method="generic")
    with pytest.raises(ValueError, match="u must have 3 dimensions"):
        ntk_empirical(net, u[0])
    with pytest.raises(ValueError, match=r"model.eval\(\)"):
        ntk_empirical(nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2)), u)


# ------------------------------------------------------------------ lambda_max
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


def test_joint_kernel_of_all_output_channels_matches_autograd_jacobian():
    u = astronaut(5)
    net = build_vanilla_cnn(3, 4, depth=2, generator=gen(3)).double()
    expect = jacobian_ntk(net, u[None])  # (3 n, 3 n), outputs in (C, H, W) order
    assert torch.allclose(ntk_empirical(net, u, output_channel=None), expect, rtol=1e-12,
                          atol=1e-12)
    rows = torch.tensor([70, 3, 26])  # (o, i) at o * 25 + i
    assert torch.allclose(ntk_empirical(net, u, output_channel=None, rows=rows, chunk_size=2),
                          expect[rows], rtol=1e-12, atol=1e-12)
    assert torch.allclose(ntk_empirical(net, u, output_channel=1), expect[25:50, 25:50],
                          rtol=1e-12, atol=1e-12)
    with pytest.raises(ValueError, match="rows must hold indices in \\[0, 75\\)"):
        ntk_empirical(net, u, output_channel=None, rows=torch.tensor([75]))
