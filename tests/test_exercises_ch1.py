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
    check_ch1_peak_step,
    check_ch1_shuffled_input,
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


def _side_right(count):
    # the smallest side s with s * s > count, by a plain loop
    s = 1
    while s * s <= count:
        s += 1
    return s


SIDE = _side_right(_weights_by_layer(1, 128, 3, 5))  # the exercise's network


def test_weight_count_accepts_a_layer_by_layer_count(capsys):
    check_ch1_weight_count(_weights_by_layer, SIDE)
    out = capsys.readouterr().out
    assert "correct" in out and str(SIDE) not in out


def test_weight_count_side_by_hand():
    # 1 -> 128 (5x5), 128 -> 128 (5x5) twice, 128 -> 1 (1x1) = 822528 weights;
    # 906^2 = 820836 is not more, 907^2 = 822649 is
    assert _weights_by_layer(1, 128, 3, 5) == 3200 + 2 * 409600 + 128 == 822528
    assert SIDE == 907


@pytest.mark.parametrize("wrong", [
    906,  # rounded down: not more pixels than weights
    908,  # one too many
    int(math.ceil(math.sqrt(_weights_by_layer(1, 128, 3, 3)))),  # the 3 x 3 network
    822528,  # the weight count itself
])
def test_weight_count_rejects_a_wrong_side_without_the_answer(wrong):
    with pytest.raises(ExerciseFailed, match="Exercise 1.2") as err:
        check_ch1_weight_count(_weights_by_layer, wrong)
    assert "side" in str(err.value) and "907" not in str(err.value)


@pytest.mark.parametrize("bad", [907.5, "907", None])
def test_weight_count_names_a_side_that_is_not_an_integer(bad):
    with pytest.raises(ExerciseFailed, match="side: the side of the square image"):
        check_ch1_weight_count(_weights_by_layer, bad)


def test_weight_count_independent_value():
    # 1 -> 64 (3x3), 64 -> 64 (3x3) twice, 64 -> 1 (1x1): by hand, against the network
    # the package builds and against the count the checker expects for that case
    from ntkutils.networks import build_vanilla_cnn, count_parameters

    net = build_vanilla_cnn(1, 64, 3, 3, generator=torch.Generator().manual_seed(0))
    assert count_parameters(net) == 576 + 2 * 36864 + 64 == 74368
    check_ch1_weight_count(lambda C, c, L, k: 74368 if (C, c, L, k) == (1, 64, 3, 3)
                           else _weights_by_layer(C, c, L, k), SIDE)


@pytest.mark.parametrize("wrong", [
    lambda C, c, L, k: _weights_by_layer(C, c, L, k) + (L * c + C),  # with biases
    lambda C, c, L, k: L * c * c * k * k + c * C,  # first layer from c, not C
    lambda C, c, L, k: _weights_by_layer(C, c, L, k) - c * C,  # no readout
    lambda C, c, L, k: float(_weights_by_layer(C, c, L, k)) + 0.5,
    _stub,
])
def test_weight_count_rejects_wrong_answers(wrong):
    with pytest.raises(ExerciseFailed, match="Exercise 1.2"):
        check_ch1_weight_count(wrong, SIDE)


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


class _Run:
    """A recorded run: the loss bottoms out at step 300 and rises, so patience 40 on
    minus the loss keeps step 300 and stops at 700; the PSNR rises to the last step."""

    steps = torch.arange(0, 1000, 10)
    loss = (steps.double() - 300) ** 2 + 1.0
    psnr = 20.0 + steps.double() / 1000


KEPT_PSNR = 20.3  # _Run.psnr at step 300, by hand


def test_patience_accepts_a_right_rule(capsys):
    check_ch1_patience_stop(patience_right, KEPT_PSNR, _Run)
    out = capsys.readouterr().out
    assert "correct" in out and "20.3" not in out


def test_patience_run_by_hand():
    assert patience_right(_Run.steps, -_Run.loss, 40) == (300, 700)
    assert float(_Run.psnr[30]) == pytest.approx(KEPT_PSNR)


@pytest.mark.parametrize("wrong", [
    20.7,  # the PSNR where the rule stops, not where it keeps
    20.99,  # the oracle's PSNR (largest PSNR)
    23.0,  # far off
    -20.0,  # the sign
])
def test_patience_rejects_a_wrong_kept_psnr_without_the_answer(wrong):
    with pytest.raises(ExerciseFailed, match="Exercise 1.3") as err:
        check_ch1_patience_stop(patience_right, wrong, _Run)
    assert "loss_kept_psnr" in str(err.value)
    assert "20.3 " not in str(err.value) and "20.30" not in str(err.value)


@pytest.mark.parametrize("bad", ["20.3", None])
def test_patience_names_a_kept_psnr_that_is_not_a_number(bad):
    with pytest.raises(ExerciseFailed, match="loss_kept_psnr: a PSNR"):
        check_ch1_patience_stop(patience_right, bad, _Run)


@pytest.mark.parametrize("run", [None, 3, type("R", (), {"steps": torch.arange(5),
                                                         "loss": torch.ones(4),
                                                         "psnr": torch.ones(5)})])
def test_patience_names_a_bad_run(run):
    with pytest.raises(ExerciseFailed, match="run: a training run"):
        check_ch1_patience_stop(patience_right, KEPT_PSNR, run)


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
        check_ch1_patience_stop(wrong, KEPT_PSNR, _Run)


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


# ------------------------------------------------- Exercises 1.5 and 1.6: small networks
@pytest.fixture(scope="module")
def tiny():
    """A 6 x 6 noisy image, its clean image and three linearised runs of a small CNN."""
    from ntkutils import build_vanilla_cnn, linearised_gd

    g = torch.Generator().manual_seed(0)
    x = torch.rand(1, 6, 6, generator=g, dtype=torch.float64)
    y = x + 0.1 * torch.randn(1, 6, 6, generator=g, dtype=torch.float64)
    runs = [linearised_gd(build_vanilla_cnn(1, 4, 1, generator=torch.Generator()
                                            .manual_seed(s)).double(), y, y, x=x)
            for s in range(3)]
    return x, y, runs


def _best_step_by_iteration(run, y, x, lr, n_max):
    """Best step of gradient descent with the fixed kernel, by running the loop."""
    lam, V = run.eigvals[0], run.eigvecs[0]
    K = V @ torch.diag(lam) @ V.T  # (n, n)
    z, yv, xv = run.f0.reshape(-1).clone(), y.reshape(-1), x.reshape(-1)
    best, best_t = float("inf"), 0
    for t in range(1, n_max + 1):
        z = z + lr * K @ (yv - z)
        err = float(((z - xv) ** 2).mean())
        if err < best:
            best, best_t = err, t
    return best_t


def test_peak_step_reference_matches_the_loop(tiny):
    from ntkutils.exercises.ch1 import _gd_best_steps

    x, y, runs = tiny
    run = min(runs, key=lambda r: r.step)  # the quickest, to loop over cheaply
    by_loop = _best_step_by_iteration(run, y, x, run.lr / 10, 20 * run.step + 100)
    (by_formula,) = _gd_best_steps([run], y, x, 10)
    assert abs(math.log10(by_formula / by_loop)) < 0.05


def test_peak_step_accepts_the_scaled_step(tiny, capsys):
    x, y, runs = tiny
    steps = sorted(r.step for r in runs)
    check_ch1_peak_step(100 * steps[1], runs, y, x, factor=100)
    out = capsys.readouterr().out
    assert "correct" in out and str(100 * steps[1]) not in out


@pytest.mark.parametrize("wrong", ["same", "tiny", "huge"])
def test_peak_step_rejects_wrong_orders_of_magnitude(tiny, wrong):
    from ntkutils.exercises.ch1 import _gd_best_steps

    x, y, runs = tiny
    best = _gd_best_steps(runs, y, x, 100)
    guess = {"same": min(best) / 100, "tiny": 1.0, "huge": 1e4 * max(best)}[wrong]
    with pytest.raises(ExerciseFailed, match="Exercise 1.5") as err:
        check_ch1_peak_step(guess, runs, y, x, factor=100)
    msg = str(err.value)
    assert "times too" in msg or "too " in msg
    assert all(str(t) not in msg for t in best)


@pytest.mark.parametrize("bad", [None, "1e3", -5.0, 0.0, float("nan"), True])
def test_peak_step_names_bad_predictions(tiny, bad):
    x, y, runs = tiny
    with pytest.raises(ExerciseFailed, match="number of steps"):
        check_ch1_peak_step(bad, runs, y, x)


def test_peak_step_names_bad_runs(tiny):
    x, y, runs = tiny
    with pytest.raises(ExerciseFailed, match="linearised runs"):
        check_ch1_peak_step(1e3, runs[:2], y, x)


def _shuffle(y, generator):
    perm = torch.randperm(y[0].numel(), generator=generator)
    return y.reshape(y.shape[0], -1)[:, perm].reshape(y.shape)


@pytest.fixture(scope="module")
def shuffled(tiny):
    """Three seeds' best PSNRs with a shuffled input, computed here."""
    from ntkutils import build_vanilla_cnn, linearised_gd

    x, y, _ = tiny
    best = []
    for s in range(3):
        u = _shuffle(y, torch.Generator().manual_seed(10 + s))
        net = build_vanilla_cnn(1, 4, 1, generator=torch.Generator().manual_seed(s))
        run = linearised_gd(net.double(), u, y, x=x)
        best.append(float(run.psnr[run.index]))
    return best


def _reference(best, right):
    far = [b + 5 for b in best]
    return {"noisy image": best if right == "noisy image" else far,
            "iid noise": best if right == "iid noise" else far}


def test_shuffled_input_accepts_a_right_answer(tiny, shuffled, capsys):
    x, y, _ = tiny
    check_ch1_shuffled_input(_shuffle, shuffled, "iid noise", y, x,
                             _reference(shuffled, "iid noise"), channels=4, depth=1)
    assert "correct" in capsys.readouterr().out


@pytest.mark.parametrize("fn, match", [
    (lambda y, g: y.clone(), "new order"),
    (lambda y, g: torch.rand(y.shape, generator=g, dtype=y.dtype), "exactly once"),
    (lambda y, g: y.flip(-1).reshape(-1), "shape"),
    (lambda y, g: _shuffle(y, torch.Generator().manual_seed(int(torch.randint(
        10**6, (1,))))), "same permutation"),
    (_stub, "NotImplementedError"),
])
def test_shuffled_input_rejects_wrong_shuffles(tiny, shuffled, fn, match):
    x, y, _ = tiny
    with pytest.raises(ExerciseFailed, match=match):
        check_ch1_shuffled_input(fn, shuffled, "iid noise", y, x,
                                 _reference(shuffled, "iid noise"), channels=4, depth=1)


def test_shuffled_input_rejects_one_permutation_per_channel():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(2, 4, 4, generator=g, dtype=torch.float64)

    def per_channel(y, generator):
        return torch.stack([_shuffle(y[c:c + 1], generator)[0] for c in range(2)])

    with pytest.raises(ExerciseFailed, match="one permutation for all channels"):
        check_ch1_shuffled_input(per_channel, [1.0] * 3, "iid noise", x, x,
                                 {"noisy image": [1.0] * 3, "iid noise": [2.0] * 3})


def test_shuffled_input_rejects_wrong_psnrs_and_choices(tiny, shuffled):
    x, y, _ = tiny
    ref = _reference(shuffled, "iid noise")
    with pytest.raises(ExerciseFailed, match="checker's own") as err:
        check_ch1_shuffled_input(_shuffle, [v + 30 for v in shuffled], "iid noise", y, x,
                                 ref, channels=4, depth=1)
    assert f"{min(shuffled):.1f}" not in str(err.value)
    with pytest.raises(ExerciseFailed, match="resemble"):
        check_ch1_shuffled_input(_shuffle, shuffled, "noisy image", y, x, ref,
                                 channels=4, depth=1)
    with pytest.raises(ExerciseFailed, match="closer_to"):
        check_ch1_shuffled_input(_shuffle, shuffled, "noise", y, x, ref,
                                 channels=4, depth=1)
    with pytest.raises(ExerciseFailed, match="at least 3"):
        check_ch1_shuffled_input(_shuffle, shuffled[:2], "iid noise", y, x, ref,
                                 channels=4, depth=1)
    with pytest.raises(ExerciseFailed, match="at least 3"):
        check_ch1_shuffled_input(_shuffle, None, "iid noise", y, x, ref,
                                 channels=4, depth=1)
