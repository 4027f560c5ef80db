"""Tests of the chapter 6 exercise checkers: each accepts a right answer written here
independently and rejects typical wrong ones with feedback."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from ntkutils.exercises import (
    ExerciseFailed,
    check_ch6_adam_first_step,
    check_ch6_kernel_change,
    check_ch6_norm_slopes,
    check_ch6_predict_exponent,
    check_ch6_sign_sweep,
)


# ----------------------------------------------------------------- Exercise 6.2
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


# ----------------------------------------------------------------- Exercise 6.3
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


# ----------------------------------------------------------------- Exercise 6.4
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


# ----------------------------------------------------------------- Exercise 6.1 (predict)
SEED_SLOPES = [0.93, 0.97, 1.02]  # written here: three seeds' fitted exponents


def test_predict_exponent_accepts_a_prediction_near_the_measured_slopes(capsys):
    check_ch6_predict_exponent(1.0, SEED_SLOPES)
    check_ch6_predict_exponent(0.7, np.array(SEED_SLOPES))  # within 0.3 of the range
    out = capsys.readouterr().out
    assert out.count("correct") == 2
    assert "0.93" not in out and "1.02" not in out and "0.97" not in out


@pytest.mark.parametrize("prediction, how", [
    (-0.5, "the sign is wrong"), (0.0, "too small"), (2.0, "too large"),
    (0.5, "too small")])
def test_predict_exponent_says_how_a_wrong_prediction_misses_without_the_value(
        prediction, how):
    with pytest.raises(ExerciseFailed, match="checked") as info:
        check_ch6_predict_exponent(prediction, SEED_SLOPES)
    message = str(info.value)
    assert how in message
    assert not any(f"{v:.2f}" in message or f"{v:g}" in message
                   for v in [*SEED_SLOPES, float(np.mean(SEED_SLOPES))])


def test_predict_exponent_not_attempted_and_bad_input():
    with pytest.raises(ExerciseFailed, match="NoneType None"):
        check_ch6_predict_exponent(None, SEED_SLOPES)
    with pytest.raises(ExerciseFailed, match="a number"):
        check_ch6_predict_exponent("one", SEED_SLOPES)
    with pytest.raises(ValueError, match="at least 3 seeds"):
        check_ch6_predict_exponent(1.0, [1.0, 0.9])
    with pytest.raises(ValueError, match="at least 3 seeds"):
        check_ch6_predict_exponent(1.0, [1.0, float("nan"), 0.9])


# ----------------------------------------------------------------- Exercise 6.5 (experiment)
def _sign_problem():
    g = torch.Generator().manual_seed(5)
    return (torch.rand(1, 8, 8, generator=g, dtype=torch.float64),
            torch.rand(1, 8, 8, generator=g, dtype=torch.float64))


def sign_sweep_right(u, y, n_steps):
    # Written independently: the hidden layers are layers.1 and layers.2 of the
    # depth-3 vanilla CNN; sign descent by hand on a half sum of squares
    from ntkutils.networks import build_vanilla_cnn

    def fn(c, seed):
        net = build_vanilla_cnn(1, c, depth=3,
                                generator=torch.Generator().manual_seed(seed)).double()
        hidden = [net.layers[1].weight, net.layers[2].weight]
        w0 = [w.detach().clone() for w in hidden]
        for _ in range(n_steps):
            net.zero_grad()
            loss = ((net(u) - y) ** 2).sum() / 2
            loss.backward()
            with torch.no_grad():
                for p in net.parameters():
                    p.add_(p.grad.sign(), alpha=-0.01)
        num = sum(float(((w.detach() - v) ** 2).sum()) for w, v in zip(hidden, w0))
        den = sum(float((v**2).sum()) for v in w0)
        return math.sqrt(num / den)
    return fn


def test_sign_sweep_accepts_right_answer(capsys):
    u, y = _sign_problem()
    check_ch6_sign_sweep(sign_sweep_right(u, y, 3), "adam", u, y, 3)
    assert "correct" in capsys.readouterr().out


@pytest.mark.parametrize("like", ["gd", "neither"])
def test_sign_sweep_rejects_a_wrong_explanation(like):
    u, y = _sign_problem()
    with pytest.raises(ExerciseFailed, match="checked") as info:
        check_ch6_sign_sweep(sign_sweep_right(u, y, 3), like, u, y, 3)
    assert "'adam'" not in str(info.value)


def test_sign_sweep_rejects_wrong_runs():
    u, y = _sign_problem()
    right = sign_sweep_right(u, y, 3)
    with pytest.raises(ExerciseFailed, match="sign-descent loop"):  # fewer steps
        check_ch6_sign_sweep(sign_sweep_right(u, y, 2), "adam", u, y, 3)
    with pytest.raises(ExerciseFailed, match="sign-descent loop"):  # not relative
        check_ch6_sign_sweep(lambda c, s: 2 * right(c, s), "adam", u, y, 3)


def test_sign_sweep_bad_input_and_stub():
    u, y = _sign_problem()

    def stub(c, seed):
        raise NotImplementedError

    with pytest.raises(ExerciseFailed, match="NotImplementedError"):
        check_ch6_sign_sweep(stub, None, u, y, 1)
    with pytest.raises(ExerciseFailed, match="one of"):
        check_ch6_sign_sweep(sign_sweep_right(u, y, 1), "sign", u, y, 1)
    with pytest.raises(ExerciseFailed, match="n_steps"):
        check_ch6_sign_sweep(sign_sweep_right(u, y, 1), "adam", u, y, 1.5)
