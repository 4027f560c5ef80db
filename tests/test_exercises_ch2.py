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
    check_weight_change_exponents,
)


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
    with pytest.raises(ExerciseFailed, match="Exercise 2.1"):
        check_arccos_k1(wrong)


def test_ntk_entry_accepts_right_answer(capsys):
    check_ntk_entry(entry_right)
    assert "correct" in capsys.readouterr().out


@pytest.mark.parametrize("wrong", [entry_output_layer_only, entry_without_d,
                                   not_implemented, lambda p, q: "0.1"])
def test_ntk_entry_rejects_wrong_answers(wrong):
    with pytest.raises(ExerciseFailed, match="Exercise 2.2"):
        check_ntk_entry(wrong)


def test_mlp_ntk_accepts_right_answer(capsys):
    check_mlp_ntk(mlp_ntk_right)
    assert "correct" in capsys.readouterr().out


@pytest.mark.parametrize("wrong", [mlp_ntk_weights_only, mlp_ntk_transposed,
                                   not_implemented])
def test_mlp_ntk_rejects_wrong_answers(wrong):
    with pytest.raises(ExerciseFailed, match="Exercise 2.3"):
        check_mlp_ntk(wrong)


def test_error_slope():
    check_error_slope(-0.5)
    for wrong in (-1.0, 0.5, None, "-0.5"):
        with pytest.raises(ExerciseFailed, match="Exercise 2.4"):
            check_error_slope(wrong)


def test_weight_change_exponents():
    check_weight_change_exponents((0, -0.5))
    for wrong in ((-0.5, -0.5), (0.0, -1.0), (0.0,), None, ("0", "-0.5")):
        with pytest.raises(ExerciseFailed, match="Exercise 2.5"):
            check_weight_change_exponents(wrong)
