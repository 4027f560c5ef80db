"""Tests of the chapter 2 exercise checkers: each accepts a right answer written here
independently (plain formulas, not the package's kernels) and rejects wrong ones."""
from __future__ import annotations

import math

import pytest
import torch
from torch.func import functional_call, jacrev

from ntkutils.exercises import (
    ExerciseFailed,
    check_arccos_k1,
    check_error_slope,
    check_mlp_ntk,
    check_ntk_entry,
    check_patch_error,
    check_weight_change_exponents,
)
from ntkutils.kernels import ntk_closed_form, ntk_empirical
from ntkutils.networks import build_single_layer_cnn


def _angle(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    cos = (x @ y) / (x.norm() * y.norm())
    return torch.arccos(cos.clamp(-1.0, 1.0))


def k1_right(x, y):
    if x.norm() == 0 or y.norm() == 0:
        return torch.zeros((), dtype=x.dtype)
    phi = _angle(x, y)
    return x.norm() * y.norm() * (torch.sin(phi) + (math.pi - phi) * torch.cos(phi)) / math.pi


def k1_no_clamp(x, y):  # NaN for parallel vectors and zero vectors
    phi = torch.arccos((x @ y) / (x.norm() * y.norm()))
    return x.norm() * y.norm() * (torch.sin(phi) + (math.pi - phi) * torch.cos(phi)) / math.pi


def k1_half(x, y):  # the expectation E[relu relu], off by the factor 2
    return k1_right(x, y) / 2


def entry_right(p, q):
    if p.norm() == 0 or q.norm() == 0:
        return 0.0
    phi = _angle(p, q)
    shape = torch.sin(phi) + 2 * (math.pi - phi) * torch.cos(phi)
    return float(p.norm() * q.norm() * shape / (2 * math.pi * p.numel()))


def entry_output_layer_only(p, q):  # drops the hidden-layer term
    if p.norm() == 0 or q.norm() == 0:
        return 0.0
    phi = _angle(p, q)
    shape = torch.sin(phi) + (math.pi - phi) * torch.cos(phi)
    return float(p.norm() * q.norm() * shape / (2 * math.pi * p.numel()))


def entry_without_d(p, q):  # forgets the d^(-1/2) scaling of the hidden layer
    return entry_right(p, q) * p.numel()


def mlp_ntk_right(model, X):
    params = {k: v.detach() for k, v in model.named_parameters()}

    def f(p):
        return functional_call(model, p, (X,)).reshape(-1)  # (n,)

    jac = jacrev(f)(params)  # name -> (n, *shape)
    J = torch.cat([j.reshape(X.shape[0], -1) for j in jac.values()], dim=1)  # (n, P)
    return J @ J.T


def mlp_ntk_weights_only(model, X):  # forgets the biases
    params = {k: v.detach() for k, v in model.named_parameters() if k.endswith("weight")}
    frozen = {k: v.detach() for k, v in model.named_parameters() if k.endswith("bias")}

    def f(p):
        return functional_call(model, {**p, **frozen}, (X,)).reshape(-1)

    jac = jacrev(f)(params)
    J = torch.cat([j.reshape(X.shape[0], -1) for j in jac.values()], dim=1)
    return J @ J.T


def mlp_ntk_transposed(model, X):  # J^T J: parameter space, wrong shape
    K = mlp_ntk_right(model, X)
    params = sum(p.numel() for p in model.parameters())
    return torch.zeros(params, params, dtype=K.dtype)


def not_implemented(*args):
    raise NotImplementedError


def test_arccos_k1_accepts_right_answer(capsys):
    check_arccos_k1(k1_right)
    assert "correct" in capsys.readouterr().out


@pytest.mark.parametrize("wrong", [k1_no_clamp, k1_half, not_implemented])
def test_arccos_k1_rejects_wrong_answers(wrong):
    with pytest.raises(ExerciseFailed, match="Exercise 2.3"):
        check_arccos_k1(wrong)


def test_ntk_entry_accepts_right_answer(capsys):
    check_ntk_entry(entry_right)
    assert "correct" in capsys.readouterr().out


@pytest.mark.parametrize("wrong", [entry_output_layer_only, entry_without_d,
                                   not_implemented, lambda p, q: "0.1"])
def test_ntk_entry_rejects_wrong_answers(wrong):
    with pytest.raises(ExerciseFailed, match="Exercise 2.4"):
        check_ntk_entry(wrong)


def test_mlp_ntk_accepts_right_answer(capsys):
    check_mlp_ntk(mlp_ntk_right)
    assert "correct" in capsys.readouterr().out


@pytest.mark.parametrize("wrong", [mlp_ntk_weights_only, mlp_ntk_transposed,
                                   not_implemented])
def test_mlp_ntk_rejects_wrong_answers(wrong):
    with pytest.raises(ExerciseFailed, match="Exercise 2.5"):
        check_mlp_ntk(wrong)


SLOPES = [-0.53, -0.47, -0.58]  # a made-up sweep, one slope per seed


def test_error_slope_accepts_a_prediction_within_the_seeds(capsys):
    check_error_slope(-0.5, SLOPES)
    check_error_slope(-0.6, torch.tensor(SLOPES))  # within the 0.05 margin
    out = capsys.readouterr().out
    assert out.count("correct") == 2 and "0.5" not in out


@pytest.mark.parametrize("wrong, how", [(-1.0, "steeper"), (-0.25, "flatter"),
                                        (0.5, "sign is wrong")])
def test_error_slope_says_how_a_prediction_misses_without_the_sweep(wrong, how):
    with pytest.raises(ExerciseFailed, match="Exercise 2.1") as info:
        check_error_slope(wrong, SLOPES)
    message = str(info.value)
    assert how in message and "hint:" in message
    assert not any(f"{v:g}" in message for v in SLOPES)  # the sweep's slopes not shown
    assert "-0.5" not in message.replace(f"{wrong:g}", "")


@pytest.mark.parametrize("prediction, slopes, named", [
    (None, SLOPES, "prediction"), ("-0.5", SLOPES, "prediction"),
    (-0.5, SLOPES[:2], "slopes"), (-0.5, None, "slopes"),
    (-0.5, [-0.5, float("nan"), -0.4], "slopes")])
def test_error_slope_names_bad_input(prediction, slopes, named):
    with pytest.raises(ExerciseFailed, match=named):
        check_error_slope(prediction, slopes)


U_SMALL = torch.rand(1, 8, 8, generator=torch.Generator().manual_seed(5)).double()


def error_with_the_package(c, seed, patch_size=5):
    # The chapter's way, written here: ntk_empirical against ntk_closed_form.
    net = build_single_layer_cnn(channels=c, patch_size=patch_size,
                                 generator=torch.Generator().manual_seed(seed))
    K = ntk_closed_form(U_SMALL, patch_size)
    return ((ntk_empirical(net, U_SMALL).double() - K).norm() / K.norm()).item()


def test_patch_error_accepts_the_run_and_the_right_slope(capsys):
    check_patch_error(error_with_the_package, 0.0, U_SMALL)
    out = capsys.readouterr().out
    assert "Exercise 2.6: correct" in out and "0.0" not in out


def test_copied_units_give_the_same_kernel_at_every_width():
    # c copies of one unit: (1/c) times c equal terms, the one unit's kernel, by hand
    # with ntk_empirical on networks whose units are set equal here
    one = build_single_layer_cnn(channels=1, patch_size=5,
                                 generator=torch.Generator().manual_seed(0))

    def copied(c):
        net = build_single_layer_cnn(channels=c, patch_size=5,
                                     generator=torch.Generator().manual_seed(1))
        with torch.no_grad():
            net.hidden.weight.copy_(one.hidden.weight.expand_as(net.hidden.weight))
            net.readout.weight.copy_(one.readout.weight.expand_as(net.readout.weight))
        return ntk_empirical(net.double(), U_SMALL)

    assert torch.allclose(copied(4), copied(64), rtol=1e-10, atol=1e-12)


def test_patch_error_accepts_a_float32_run(capsys):
    def in_float32(c, seed):
        net = build_single_layer_cnn(channels=c, patch_size=5,
                                     generator=torch.Generator().manual_seed(seed))
        K = ntk_closed_form(U_SMALL, 5)
        K32 = ntk_empirical(net.float(), U_SMALL.float()).double()
        return ((K32 - K).norm() / K.norm()).item()

    check_patch_error(in_float32, 0.0, U_SMALL)
    assert "correct" in capsys.readouterr().out


def test_patch_error_finds_a_run_with_the_old_patches():
    with pytest.raises(ExerciseFailed, match="patch_size=5") as info:
        check_patch_error(lambda c, s: error_with_the_package(c, s, 3), 0.0, U_SMALL)
    assert "width 16" in str(info.value)


@pytest.mark.parametrize("wrong, how", [
    (-0.5, "too steep"),  # the independent units' slope
    (-1.0, "too steep"),
    (0.5, "too large"),
])
def test_patch_error_rejects_a_wrong_slope_without_the_answer(wrong, how):
    with pytest.raises(ExerciseFailed, match="copies of one unit") as info:
        check_patch_error(error_with_the_package, wrong, U_SMALL)
    message = str(info.value)
    assert how in message and "hint:" in message
    assert " 0 " not in message and "0.0" not in message


@pytest.mark.parametrize("args, named", [
    ((not_implemented, 0.0, U_SMALL), "NotImplementedError"),
    ((error_with_the_package, None, U_SMALL), "copied_slope: a number"),
    ((error_with_the_package, "0", U_SMALL), "copied_slope: a number"),
    ((lambda c, s: [0.1], 0.0, U_SMALL), "a number"),
    ((error_with_the_package, 0.0, U_SMALL.numpy()), "u: the input"),
    ((error_with_the_package, 0.0, U_SMALL[0]), "u: the input")])
def test_patch_error_names_bad_input(args, named):
    with pytest.raises(ExerciseFailed, match=named):
        check_patch_error(*args)


def test_weight_change_exponents():
    check_weight_change_exponents((0, -0.5))
    for wrong in ((-0.5, -0.5), (0.0, -1.0), (0.0,), None, ("0", "-0.5")):
        with pytest.raises(ExerciseFailed, match="Exercise 2.2"):
            check_weight_change_exponents(wrong)
