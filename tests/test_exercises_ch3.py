"""Tests of the chapter 3 exercise checkers: each accepts a right answer written here
independently (plain formulas and loops, not the package's kernels) and rejects wrong ones."""
from __future__ import annotations

import math

import pytest
import torch

from ntkutils.exercises import (
    ExerciseFailed,
    check_ch3_degrees_of_freedom,
    check_ch3_noise_background,
    check_ch3_permuted_kernel,
    check_ch3_sign_change_angle,
)


# ----------------------------------------------------------------------------- 3.1
def _sign_change_by_grid() -> float:
    """Root of sin(phi) + 2 (pi - phi) cos(phi) in (90, 180) degrees, on a fine grid."""
    phi = torch.linspace(math.pi / 2, math.pi - 1e-6, 2_000_001, dtype=torch.float64)
    J = torch.sin(phi) + 2 * (math.pi - phi) * torch.cos(phi)
    first_negative = int(torch.nonzero(J < 0)[0])
    return math.degrees(float(phi[first_negative]))


def test_sign_change_angle_accepts_the_root(capsys):
    check_ch3_sign_change_angle(_sign_change_by_grid())
    assert "Exercise 3.1: correct" in capsys.readouterr().out


@pytest.mark.parametrize("wrong", [90.0, 180.0, 120.0, math.radians(113.2), None, "113"])
def test_sign_change_angle_rejects_wrong_answers(wrong):
    # 90: where J = 1, not 0; 180: where J = 0 but is not a sign change; radians; no answer
    with pytest.raises(ExerciseFailed):
        check_ch3_sign_change_angle(wrong)


# ----------------------------------------------------------------------------- 3.2
def _permute_by_loops(K, perm):
    n = K.shape[0]
    out = torch.empty_like(K)
    for a in range(n):
        for b in range(n):
            out[a, b] = K[perm[a], perm[b]]
    return out


def test_permuted_kernel_accepts_a_right_answer(capsys):
    check_ch3_permuted_kernel(_permute_by_loops)
    assert "Exercise 3.2: correct" in capsys.readouterr().out


@pytest.mark.parametrize("wrong", [
    lambda K, perm: K[perm],  # rows only
    lambda K, perm: K[:, perm],  # columns only
    lambda K, perm: K,  # not permuted
    lambda K, perm: K[perm][:, perm].numpy(),  # not a tensor
])
def test_permuted_kernel_rejects_wrong_answers(wrong):
    with pytest.raises(ExerciseFailed):
        check_ch3_permuted_kernel(wrong)


def test_permuted_kernel_reports_a_stub():
    def stub(K, perm):
        raise NotImplementedError

    with pytest.raises(ExerciseFailed, match="NotImplementedError"):
        check_ch3_permuted_kernel(stub)


# ----------------------------------------------------------------------------- 3.3
def test_noise_background_accepts_the_exact_ratio(capsys):
    d = 9
    check_ch3_noise_background((d + 1) / (2 * math.pi * d))
    assert "Exercise 3.3: correct" in capsys.readouterr().out


@pytest.mark.parametrize("wrong", [
    1 / (2 * math.pi),  # J(pi/2) / J(0) alone: misses the 1/d correction (10 % low)
    0.0,  # "independent patches are orthogonal, so the weight is zero"
    1.0,
    None,
])
def test_noise_background_rejects_wrong_answers(wrong):
    with pytest.raises(ExerciseFailed):
        check_ch3_noise_background(wrong)


# ----------------------------------------------------------------------------- 3.4
def _dof_by_loop(eigvals, steps, lr):
    out = []
    for t in steps.tolist():
        out.append(sum(1.0 - (1.0 - lr * float(lam)) ** t for lam in eigvals))
    return torch.tensor(out, dtype=torch.float64)


def test_degrees_of_freedom_accepts_a_right_answer(capsys):
    check_ch3_degrees_of_freedom(_dof_by_loop)
    assert "Exercise 3.4: correct" in capsys.readouterr().out


@pytest.mark.parametrize("wrong", [
    lambda lam, t, lr: ((1 - lr * lam[None]) ** t[:, None]).sum(1),  # what is left
    lambda lam, t, lr: (1 - (1 - lam[None]) ** t[:, None]).sum(1),  # forgot lr
    lambda lam, t, lr: (1 - (1 - lr * lam[None]) ** t[:, None]).sum(),  # one number
    lambda lam, t, lr: (1 - (1 - lr * lam[None]) ** t[:, None]).mean(1),  # a mean
])
def test_degrees_of_freedom_rejects_wrong_answers(wrong):
    with pytest.raises(ExerciseFailed):
        check_ch3_degrees_of_freedom(wrong)
