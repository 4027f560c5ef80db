"""Tests of the chapter 1 exercise checkers: each accepts a right answer written here
independently (plain formulas and loops, not the package) and rejects wrong ones."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from ntkutils.exercises import (
    ExerciseFailed,
    check_ch1_discrepancy_stop,
    check_ch1_noisy_psnr,
    check_ch1_patience_stop,
    check_ch1_weight_count,
)


def _stub(*args):
    raise NotImplementedError("exercise stub")


# ------------------------------------------------------------------ Exercise 1.1
def test_noisy_psnr_accepts_the_formula(capsys):
    check_ch1_noisy_psnr(lambda sigma: 10 * math.log10(1 / sigma**2))
    assert "correct" in capsys.readouterr().out


def test_noisy_psnr_accepts_numpy_and_tensor_answers():
    check_ch1_noisy_psnr(lambda sigma: np.float64(-20 * np.log10(sigma)))
    check_ch1_noisy_psnr(lambda sigma: -20 * torch.log10(torch.tensor(sigma)))


@pytest.mark.parametrize("wrong", [
    lambda sigma: -10 * math.log10(sigma),  # forgot the square
    lambda sigma: -20 * math.log10(sigma * 255),  # 0..255 scale
    lambda sigma: 20 * math.log10(sigma),  # sign
    lambda sigma: "20 dB",
    _stub,
])
def test_noisy_psnr_rejects_wrong_answers(wrong):
    with pytest.raises(ExerciseFailed, match="Exercise 1.1"):
        check_ch1_noisy_psnr(wrong)


# ------------------------------------------------------------------ Exercise 1.2
def _weights_by_layer(C, c, depth, k):
    sizes = [(C, c, k)] + [(c, c, k)] * (depth - 1) + [(c, C, 1)]
    return sum(c_in * c_out * kk * kk for c_in, c_out, kk in sizes)


def test_weight_count_accepts_a_layer_by_layer_count(capsys):
    check_ch1_weight_count(_weights_by_layer)
    assert "correct" in capsys.readouterr().out


def test_weight_count_independent_value():
    # 1 -> 64 (3x3), 64 -> 64 (3x3) twice, 64 -> 1 (1x1): by hand, against the network
    # the package builds and against the count the checker expects for that case
    from ntkutils.networks import build_vanilla_cnn, count_parameters

    net = build_vanilla_cnn(1, 64, 3, 3, generator=torch.Generator().manual_seed(0))
    assert count_parameters(net) == 576 + 2 * 36864 + 64 == 74368
    check_ch1_weight_count(lambda C, c, L, k: 74368 if (C, c, L, k) == (1, 64, 3, 3)
                           else _weights_by_layer(C, c, L, k))


@pytest.mark.parametrize("wrong", [
    lambda C, c, L, k: _weights_by_layer(C, c, L, k) + (L * c + C),  # with biases
    lambda C, c, L, k: L * c * c * k * k + c * C,  # first layer from c, not C
    lambda C, c, L, k: _weights_by_layer(C, c, L, k) - c * C,  # no readout
    lambda C, c, L, k: float(_weights_by_layer(C, c, L, k)) + 0.5,
    _stub,
])
def test_weight_count_rejects_wrong_answers(wrong):
    with pytest.raises(ExerciseFailed, match="Exercise 1.2"):
        check_ch1_weight_count(wrong)


# ------------------------------------------------------------------ Exercise 1.3
def patience_right(steps, scores, patience):
    steps = [int(t) for t in steps]
    scores = [float(s) for s in scores]
    best, best_score, waited = steps[0], scores[0], 0
    for t, s in zip(steps[1:], scores[1:]):
        if s > best_score:
            best, best_score, waited = t, s, 0
        else:
            waited += 1
            if waited == patience:
                return best, t
    return best, steps[-1]


def test_patience_accepts_a_right_rule(capsys):
    check_ch1_patience_stop(patience_right)
    assert "correct" in capsys.readouterr().out


def test_patience_right_rule_on_a_hand_case():
    # best 3 at step 10; two records without improvement end at step 30: the checker's
    # own reference, by hand
    from ntkutils.exercises.ch1 import _patience_reference

    assert _patience_reference([0, 10, 20, 30, 40], [1, 3, 2, 3, 9], 2) == (10, 30)


def patience_ties_improve(steps, scores, patience):
    steps = [int(t) for t in steps]
    scores = [float(s) for s in scores]
    best, best_score, waited = steps[0], scores[0], 0
    for t, s in zip(steps[1:], scores[1:]):
        if s >= best_score:  # a tie counted as an improvement
            best, best_score, waited = t, s, 0
        else:
            waited += 1
            if waited == patience:
                return best, t
    return best, steps[-1]


def patience_indices(steps, scores, patience):  # returns indices, not steps
    best, stop = patience_right(list(range(len(steps))), scores, patience)
    return best, stop


def patience_oracle_only(steps, scores, patience):  # ignores patience
    scores = [float(s) for s in scores]
    k = int(np.argmax(scores))
    return int(steps[k]), int(steps[-1])


def patience_off_by_one(steps, scores, patience):
    return patience_right(steps, scores, patience + 1)


@pytest.mark.parametrize("wrong", [
    patience_ties_improve, patience_indices, patience_oracle_only, patience_off_by_one,
    lambda steps, scores, patience: 3, _stub,
])
def test_patience_rejects_wrong_rules(wrong):
    with pytest.raises(ExerciseFailed, match="Exercise 1.3"):
        check_ch1_patience_stop(wrong)


# ------------------------------------------------------------------ Exercise 1.4
def discrepancy_right(steps, loss, n_values, sigma):
    for t, value in zip(steps, loss):
        if 2 * float(value) <= n_values * sigma**2:
            return int(t)
    return int(steps[-1])


def test_discrepancy_accepts_a_right_rule(capsys):
    check_ch1_discrepancy_stop(discrepancy_right)
    assert "correct" in capsys.readouterr().out


def discrepancy_no_factor_two(steps, loss, n_values, sigma):
    for t, value in zip(steps, loss):
        if float(value) <= n_values * sigma**2:
            return int(t)
    return int(steps[-1])


def discrepancy_index(steps, loss, n_values, sigma):
    return discrepancy_right(list(range(len(steps))), loss, n_values, sigma)


def discrepancy_never_none(steps, loss, n_values, sigma):
    for t, value in zip(steps, loss):
        if 2 * float(value) <= n_values * sigma**2:
            return int(t)
    return 0  # should be the last step


@pytest.mark.parametrize("wrong", [
    discrepancy_no_factor_two, discrepancy_index, discrepancy_never_none,
    lambda steps, loss, n_values, sigma: "t", _stub,
])
def test_discrepancy_rejects_wrong_rules(wrong):
    with pytest.raises(ExerciseFailed, match="Exercise 1.4"):
        check_ch1_discrepancy_stop(wrong)
