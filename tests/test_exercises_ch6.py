"""Tests of the chapter 6 exercise checkers: each accepts a right answer written here
independently and rejects typical wrong ones with feedback."""
from __future__ import annotations

import math

import pytest
import torch

from ntkutils.exercises import (
    ExerciseFailed,
    check_ch6_adam_first_step,
    check_ch6_kernel_change,
    check_ch6_norm_slopes,
)


# ----------------------------------------------------------------- Exercise 6.1
def adam_step_right(grad, lr, eps):
    # Adam's first step written out: m_1 = 0.1 g, v_1 = 0.001 g^2, bias-corrected.
    m_hat = (0.1 * grad) / (1 - 0.9)
    v_hat = (0.001 * grad * grad) / (1 - 0.999)
    return -lr * m_hat / (torch.sqrt(v_hat) + eps)


def adam_step_sign(grad, lr, eps):  # drops eps: wrong for tiny and zero gradients
    return -lr * torch.sign(grad)


def adam_step_uncorrected(grad, lr, eps):  # forgets the bias correction
    m, v = 0.1 * grad, 0.001 * grad * grad
    return -lr * m / (torch.sqrt(v) + eps)


def adam_step_wrong_sign(grad, lr, eps):  # moves uphill
    return -adam_step_right(grad, lr, eps)


def adam_step_gd(grad, lr, eps):  # gradient descent, not Adam
    return -lr * grad


def test_adam_first_step_accepts_right_answer(capsys):
    check_ch6_adam_first_step(adam_step_right)
    assert "correct" in capsys.readouterr().out


@pytest.mark.parametrize("wrong", [adam_step_sign, adam_step_uncorrected,
                                   adam_step_wrong_sign, adam_step_gd])
def test_adam_first_step_rejects_wrong_answers(wrong):
    with pytest.raises(ExerciseFailed, match="checked"):
        check_ch6_adam_first_step(wrong)


def test_adam_first_step_stub_gives_feedback():
    def stub(grad, lr, eps):
        raise NotImplementedError

    with pytest.raises(ExerciseFailed, match="NotImplementedError"):
        check_ch6_adam_first_step(stub)


def test_adam_first_step_is_sign_like():
    # Adam's first step moves every gradient much larger than eps by lr: the checker
    # accepts that rule and refuses plain gradient descent's lr * grad
    check_ch6_adam_first_step(lambda grad, lr, eps: -lr * grad / (grad.abs() + eps))
    with pytest.raises(ExerciseFailed, match="checked"):
        check_ch6_adam_first_step(lambda grad, lr, eps: -lr * grad)


# ----------------------------------------------------------------- Exercise 6.2
def test_norm_slopes_accepts_right_answer(capsys):
    check_ch6_norm_slopes(lambda a, b: (a + 0.5 * b, a))
    assert "correct" in capsys.readouterr().out


@pytest.mark.parametrize("wrong", [
    lambda a, b: (a + b, a),          # adds counts, not squares
    lambda a, b: (a + b / 2, a + b),  # max-norm grows with the count
    lambda a, b: (a, a),              # forgets the count entirely
    lambda a, b: a + b / 2,           # not a pair
])
def test_norm_slopes_rejects_wrong_answers(wrong):
    with pytest.raises(ExerciseFailed, match="checked"):
        check_ch6_norm_slopes(wrong)


def test_norm_slopes_reference_matches_direct_norms():
    # the checker's measured slopes against the exact ones: c^2 entries of size c^-1.5
    # have 2-norm c^-0.5 and max-norm c^-1.5
    from ntkutils.exercises.ch6 import _measured_slopes

    s2, sinf = _measured_slopes(-1.5, 2.0)
    assert math.isclose(s2, -0.5, abs_tol=0.02) and math.isclose(sinf, -1.5, abs_tol=0.02)


# ----------------------------------------------------------------- Exercise 6.3
def change_right(K0, Kt):
    return math.sqrt(float(((Kt - K0) ** 2).sum()) / float((K0**2).sum()))


def test_kernel_change_accepts_right_answer(capsys):
    check_ch6_kernel_change(change_right)
    assert "correct" in capsys.readouterr().out


@pytest.mark.parametrize("wrong", [
    lambda K0, Kt: change_right(Kt, K0),                               # divides by Kt
    lambda K0, Kt: float((Kt - K0).abs().max() / K0.abs().max()),      # max norm
    lambda K0, Kt: float(torch.linalg.matrix_norm(Kt - K0, 2)
                         / torch.linalg.matrix_norm(K0, 2)),           # spectral norm
    lambda K0, Kt: float((Kt - K0).norm() ** 2 / K0.norm() ** 2),      # squared
])
def test_kernel_change_rejects_wrong_answers(wrong):
    with pytest.raises(ExerciseFailed, match="checked"):
        check_ch6_kernel_change(wrong)
