"""Tests of ntkutils.networks: shapes, parameter counts, initialisation, validation."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from ntkutils.networks import (
    build_autoencoder,
    build_single_layer_cnn,
    build_vanilla_cnn,
    count_parameters,
)


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# ------------------------------------------------------------------ shapes and counts
@pytest.mark.parametrize("C", [1, 3])
def test_single_layer_shapes_and_count(C):
    c, k = 10, 5
    net = build_single_layer_cnn(C, c, k, generator=gen(0))
    u = torch.rand(C, 7, 9, generator=gen(1))
    assert net(u).shape == (C, 7, 9)
    assert net(u[None].repeat(2, 1, 1, 1)).shape == (2, C, 7, 9)
    assert count_parameters(net) == c * C * k * k + c * C  # hidden + readout
    with_bias = build_single_layer_cnn(C, c, k, bias=True, generator=gen(0))
    assert count_parameters(with_bias) == c * C * k * k + c * C + c + C
    assert net.hidden.kernel_size == (k, k) and net.readout.kernel_size == (1, 1)


def test_vanilla_shapes_and_count():
    C, c, L, k = 3, 6, 3, 3
    net = build_vanilla_cnn(C, c, L, k, generator=gen(0))
    assert net(torch.rand(C, 5, 6, generator=gen(1))).shape == (C, 5, 6)
    assert count_parameters(net) == c * C * k * k + (L - 1) * c * c * k * k + c * C


def _autoencoder_count(c_in, c_out, c, s, levels, bn):
    """Hand count of the encoder-decoder described in build_autoencoder's Notes."""
    total = 0
    for level in range(levels):
        ci = c_in if level == 0 else c
        skip = (ci * s + s) + (2 * s if bn else 0) if s else 0
        down = (ci * c * 9 + c) + (c * c * 9 + c) + (4 * c if bn else 0)
        up = ((c + s) * c * 9 + c) + (c * c + c) + (4 * c if bn else 0)
        total += skip + down + up
    return total + c * c_out + c_out


@pytest.mark.parametrize("skip,bn", [(4, False), (0, False), (2, True)])
def test_autoencoder_shapes_and_count(skip, bn):
    net = build_autoencoder(8, 3, 6, levels=2, skip_channels=skip, batch_norm=bn,
                            generator=gen(0))
    assert net(torch.rand(8, 16, 12, generator=gen(1))).shape == (3, 16, 12)
    assert count_parameters(net) == _autoencoder_count(8, 3, 6, skip, 2, bn)


def test_autoencoder_sigmoid_and_ntk_parameterization():
    u = torch.rand(2, 8, 8, generator=gen(1))
    z = build_autoencoder(2, 1, 4, levels=2, sigmoid=True, generator=gen(0))(u)
    assert bool((z > 0).all() and (z < 1).all())
    z = build_autoencoder(2, 1, 4, levels=2, parameterization="ntk", generator=gen(0))(u)
    assert z.shape == (1, 8, 8) and bool(torch.isfinite(z).all())


# ------------------------------------------------------------------ initialisation
def _second_moment(u: torch.Tensor, k: int, depth: int) -> torch.Tensor:
    """E[z_i^2] over the NTK-parameterised initialisation, by the moment recursion.

    q^1_i = |P_i(u)|^2 / d;  q^{l+1} = (k x k zero-padded window mean of q^l / 2);
    E z_i^2 = q^L_i / 2.  Exact at any width: each pre-activation is symmetric given
    the layer below, so E relu(g)^2 = E g^2 / 2.
    """
    d = u.shape[0] * k * k
    q = F.unfold(u[None].double(), k, padding=k // 2)[0].pow(2).sum(0) / d  # (n,)
    q = q.reshape(1, 1, *u.shape[-2:])  # (1, 1, H, W)
    for _ in range(depth - 1):
        q = F.avg_pool2d(q / 2, k, stride=1, padding=k // 2, count_include_pad=True)
    return (q / 2).reshape(-1)  # (n,)


@pytest.mark.parametrize("depth,width", [(1, 16), (1, 64), (3, 8)])
def test_ntk_parameterization_output_second_moment(depth, width):
    u = torch.rand(2, 6, 6, generator=gen(0))
    expected = _second_moment(u, 3, depth)
    g = gen(1)
    with torch.no_grad():
        zs = torch.stack([
            (build_single_layer_cnn(2, width, generator=g) if depth == 1
             else build_vanilla_cnn(2, width, depth, generator=g))(u)[0].reshape(-1)
            for _ in range(400)
        ]).double()  # (400, n): output channel 0
    ratio = float(zs.pow(2).mean(0).mean() / expected.mean())
    # Monte-Carlo error about 0.07 (spread over seeds measured 0.05); a wrong scaling
    # (a missing c^-1/2 or d^-1/2, or the ReLU's 1/2) is off by a factor 2 or more.
    assert abs(ratio - 1) < 0.25, ratio


def test_vanilla_depth_one_is_the_single_layer_cnn():
    u = torch.rand(1, 7, 7, generator=gen(0))
    a = build_vanilla_cnn(1, 12, 1, generator=gen(3))(u)
    b = build_single_layer_cnn(1, 12, generator=gen(3))(u)
    assert torch.allclose(a, b, atol=1e-6)


def test_standard_parameterization_is_pytorch_default_range():
    net = build_single_layer_cnn(1, 400, 3, parameterization="standard", bias=True,
                                 generator=gen(0))
    assert net.scale_hidden == 1.0 and net.scale_readout == 1.0
    for conv, fan_in in ((net.hidden, 9), (net.readout, 400)):
        bound = fan_in**-0.5
        w = conv.weight.detach()
        assert float(w.abs().max()) <= bound
        assert abs(float(w.std()) / (bound / math.sqrt(3)) - 1) < 0.1  # U(-b, b)


def test_ntk_scales():
    net = build_single_layer_cnn(3, 20, 5, generator=gen(0))
    assert net.parameterization == "ntk"
    assert math.isclose(net.scale_hidden, (3 * 25) ** -0.5)
    assert math.isclose(net.scale_readout, 20**-0.5)


@pytest.mark.parametrize("parameterization", ["ntk", "standard"])
def test_symmetric_initialisation_gives_zero_output(parameterization):
    u = torch.rand(1, 10, 10, generator=gen(0))
    sym = build_single_layer_cnn(channels=256, symmetric=True, bias=True,
                                 parameterization=parameterization, generator=gen(1))
    plain = build_single_layer_cnn(channels=256, bias=True,
                                   parameterization=parameterization, generator=gen(1))
    with torch.no_grad():
        scale = float(plain(u).abs().mean())
        worst = float(sym(u).abs().max())
    assert scale > 1e-3  # a random network's output is not 0 ...
    assert worst < 1e-5 * scale  # ... the mirrored one's is (rounding)
    half = 128
    assert torch.equal(sym.hidden.weight[half:], sym.hidden.weight[:half])
    assert torch.equal(sym.readout.weight[:, half:], -sym.readout.weight[:, :half])


def test_seeded_builds_are_reproducible():
    u = torch.rand(1, 8, 8, generator=gen(0))
    for build in (build_single_layer_cnn, build_vanilla_cnn):
        assert torch.equal(build(generator=gen(5))(u), build(generator=gen(5))(u))
        assert not torch.equal(build(generator=gen(5))(u), build(generator=gen(6))(u))
    a = build_autoencoder(1, channels=4, levels=2, generator=gen(5))(u)
    assert torch.equal(a, build_autoencoder(1, channels=4, levels=2, generator=gen(5))(u))


# ------------------------------------------------------------------ validation
def test_bad_arguments():
    with pytest.raises(ValueError, match="channels"):
        build_single_layer_cnn(channels=7, symmetric=True)
    with pytest.raises(ValueError, match="parameterization"):
        build_single_layer_cnn(parameterization="mup")
    with pytest.raises(ValueError, match="patch_size"):
        build_single_layer_cnn(patch_size=4)
    with pytest.raises(TypeError, match="channels"):
        build_vanilla_cnn(channels=2.5)
    with pytest.raises(ValueError, match="depth"):
        build_vanilla_cnn(depth=0)
    with pytest.raises(ValueError, match="skip_channels"):
        build_autoencoder(skip_channels=-1)
    with pytest.raises(TypeError, match="generator"):
        build_single_layer_cnn(generator=0)
    with pytest.raises(TypeError, match="model"):
        count_parameters("net")


def test_bad_inputs_to_forward():
    net = build_single_layer_cnn(1, 4, generator=gen(0))
    with pytest.raises(ValueError, match="input"):
        net(torch.rand(3, 8, 8))
    auto = build_autoencoder(1, channels=4, levels=3, generator=gen(0))
    with pytest.raises(ValueError, match="2\\*\\*levels"):
        auto(torch.rand(1, 20, 16))
    with pytest.raises(ValueError, match="2\\*\\*levels"):
        auto(torch.rand(1, 8, 8))  # coarsest scale 1 x 1: too small to reflect-pad
