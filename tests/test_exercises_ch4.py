"""Chapter 4 checkers: each accepts a right answer and rejects wrong ones with feedback."""
import math

import pytest
import torch

from ntkutils.exercises import (
    ExerciseFailed,
    check_ch4_bias_variance,
    check_ch4_half_step,
    check_ch4_noise_prediction,
    check_ch4_oracle_step,
    check_ch4_steps_to_fit,
    check_ch4_sure,
    check_ch4_twicing,
)
from ntkutils.spectral import eigh_psd


# ----------------------------------------------------------------------------- 4.1
def twicing_loop(W, y, k):
    z = torch.zeros_like(y)
    for _ in range(k):
        z = z + W @ (y - z)
    return z


def test_twicing_accepts_the_iteration(capsys):
    check_ch4_twicing(twicing_loop)
    assert "Exercise 4.1: correct" in capsys.readouterr().out


@pytest.mark.parametrize("wrong", [
    lambda W, y, k: torch.linalg.matrix_power(W, k) @ y,  # W^k y: no residual
    lambda W, y, k: twicing_loop(W, y, k + 1),  # one step too many
    lambda W, y, k: y - twicing_loop(W, y, k),  # the residual, not z
])
def test_twicing_rejects_wrong_iterations(wrong):
    with pytest.raises(ExerciseFailed, match="checked"):
        check_ch4_twicing(wrong)


def test_twicing_stub_gives_feedback():
    def stub(W, y, k):
        raise NotImplementedError

    with pytest.raises(ExerciseFailed, match="NotImplementedError"):
        check_ch4_twicing(stub)


# ----------------------------------------------------------------------------- 4.2
def steps_by_logs(lam, lr, fraction):
    if lr * lam >= 1:
        return 1
    return math.ceil(math.log(1 - fraction) / math.log(1 - lr * lam))


def test_steps_to_fit_accepts_the_formula(capsys):
    check_ch4_steps_to_fit(steps_by_logs)
    assert "Exercise 4.2: correct" in capsys.readouterr().out


@pytest.mark.parametrize("wrong", [
    lambda lam, lr, f: steps_by_logs(lam, lr, f) - 1,  # rounded down
    lambda lam, lr, f: round(math.log(2) / (lr * lam)),  # the half-life
    lambda lam, lr, f: float(steps_by_logs(lam, lr, f)),  # not an int
])
def test_steps_to_fit_rejects_wrong_answers(wrong):
    with pytest.raises(ExerciseFailed):
        check_ch4_steps_to_fit(wrong)


# ----------------------------------------------------------------------------- 4.3
def bias_variance_by_sums(x, eigvals, eigvecs, steps, lr, sigma):
    # An independent loop over steps (no broadcasting tricks).
    coef = x.reshape(-1) @ eigvecs
    b, v = [], []
    for t in steps.tolist():
        left = (1 - lr * eigvals) ** t
        b.append((left**2 * coef**2).sum())
        v.append(sigma**2 * ((1 - left) ** 2).sum())
    return torch.stack(b), torch.stack(v)


def test_bias_variance_accepts_the_sums(capsys):
    check_ch4_bias_variance(bias_variance_by_sums)
    assert "Exercise 4.3: correct" in capsys.readouterr().out


@pytest.mark.parametrize("wrong", [
    lambda *a: bias_variance_by_sums(*a)[::-1],  # swapped
    lambda x, lam, V, s, lr, sig: bias_variance_by_sums(x, lam, V, s, lr, sig ** 0.5),
    lambda x, lam, V, s, lr, sig: bias_variance_by_sums(x, lam, V, 2 * s, lr, sig),
    lambda *a: bias_variance_by_sums(*a)[0],  # only one tensor
])
def test_bias_variance_rejects_wrong_answers(wrong):
    with pytest.raises(ExerciseFailed):
        check_ch4_bias_variance(wrong)


# ----------------------------------------------------------------------------- 4.4
def _toy():
    K = torch.tensor([[2.0, 1.0, 0.2], [1.0, 2.0, 0.3], [0.2, 0.3, 1.5]],
                     dtype=torch.float64)
    lam, V = eigh_psd(K)
    x = torch.tensor([[[1.0, 0.8, 0.3]]], dtype=torch.float64)  # (1, 1, 3)
    return x, lam, V


def _best_by_dense_risk(x, lam, V, steps, sigma):
    # Independent: dense matrices, E||W_t y - x||^2 = ||(I - W_t) x||^2 + sigma^2 ||W_t||_F^2.
    K = V @ torch.diag(lam) @ V.T
    eye = torch.eye(3, dtype=torch.float64)
    lr = 1 / float(lam[0])
    risks = []
    for t in steps:
        left = torch.linalg.matrix_power(eye - lr * K, t)
        risks.append(float((left @ x.reshape(3)).pow(2).sum()
                           + sigma**2 * (eye - left).pow(2).sum()))
    return steps[min(range(len(steps)), key=risks.__getitem__)]


def test_oracle_step_accepts_the_minimiser(capsys):
    x, lam, V = _toy()
    steps = list(range(0, 60))
    best = _best_by_dense_risk(x, lam, V, steps, 0.3)
    assert 0 < best < 59  # an interior minimum, so the test can fail
    check_ch4_oracle_step(best, x, lam, V, steps, None, 0.3)
    assert "Exercise 4.4: correct" in capsys.readouterr().out


def test_oracle_step_rejects_index_and_neighbour():
    x, lam, V = _toy()
    steps = list(range(0, 120, 2))  # index != step
    best = _best_by_dense_risk(x, lam, V, steps, 0.3)
    with pytest.raises(ExerciseFailed, match="STEP"):
        check_ch4_oracle_step(steps.index(best), x, lam, V, steps, None, 0.3)
    with pytest.raises(ExerciseFailed):
        check_ch4_oracle_step(best + 2, x, lam, V, steps, None, 0.3)
    with pytest.raises(ExerciseFailed, match="int"):
        check_ch4_oracle_step(float(best), x, lam, V, steps, None, 0.3)


# ----------------------------------------------------------------------------- 4.5
def sure_by_terms(y, z, df, sigma):
    C = y.shape[0]
    d = y.numel()
    out = []
    for k in range(z.shape[0]):
        out.append(((z[k] - y) ** 2).sum() - d * sigma**2 + 2 * sigma**2 * C * df[k])
    return torch.stack(out)


def test_sure_accepts_the_formula(capsys):
    check_ch4_sure(sure_by_terms)
    assert "Exercise 4.5: correct" in capsys.readouterr().out


@pytest.mark.parametrize("wrong", [
    lambda y, z, df, s: sure_by_terms(y, z, df / y.shape[0], s),  # forgot C
    lambda y, z, df, s: sure_by_terms(y, z, df, s) + y.numel() * s**2,  # no -d sigma^2
    lambda y, z, df, s: sure_by_terms(y, z, 0.5 * df, s),  # sigma^2 df, not 2 sigma^2 df
])
def test_sure_rejects_wrong_formulas(wrong):
    with pytest.raises(ExerciseFailed):
        check_ch4_sure(wrong)


# ----------------------------------------------------------------------------- 4.6
def test_noise_prediction_accepts_what_the_run_shows(capsys):
    check_ch4_noise_prediction("earlier", [68, 83, 83], [10, 10, 12])
    check_ch4_noise_prediction(" Later ", [10, 12, 11], [40, 35, 50])
    check_ch4_noise_prediction("same", [5, 6, 7], [5, 6, 7])
    out = capsys.readouterr().out
    assert out.count("Exercise 4.6: correct") == 3
    assert "earlier" not in out and "later" not in out  # never the answer


@pytest.mark.parametrize("guess", ["later", "same"])
def test_noise_prediction_rejects_the_wrong_move_without_the_answer(guess):
    with pytest.raises(ExerciseFailed, match="disagrees on every draw") as info:
        check_ch4_noise_prediction(guess, [68, 83, 83], [10, 10, 12])
    message = str(info.value)
    assert "earlier" not in message  # the right word is not given away
    assert "hint:" in message


def test_noise_prediction_refuses_an_inconclusive_run_and_bad_input():
    with pytest.raises(ExerciseFailed, match="inconclusive"):
        check_ch4_noise_prediction("earlier", [68, 83, 83], [10, 90, 12])
    with pytest.raises(ExerciseFailed, match="your prediction: one of"):
        check_ch4_noise_prediction(None, [68, 83, 83], [10, 10, 12])
    with pytest.raises(ExerciseFailed, match="your prediction: one of"):
        check_ch4_noise_prediction("sooner", [68, 83, 83], [10, 10, 12])
    with pytest.raises(ExerciseFailed, match="steps_2sigma: a list of at least 3"):
        check_ch4_noise_prediction("earlier", [68, 83, 83], [10, 10])
    with pytest.raises(ExerciseFailed, match="steps_sigma: a list of at least 3"):
        check_ch4_noise_prediction("earlier", [68.0, 83, 83], [10, 10, 12])
    with pytest.raises(ExerciseFailed, match="as many in each"):
        check_ch4_noise_prediction("earlier", [68, 83, 83, 70], [10, 10, 12])


# ----------------------------------------------------------------------------- 4.7
def _half_step_case():
    from ntkutils.images import add_noise, load_image
    from ntkutils.kernels import ntk_closed_form
    from ntkutils.spectral import gd_filter
    from ntkutils.stopping import discrepancy_step, oracle_step

    x = load_image("camera", size=12).double()
    y = add_noise(x, 0.1, generator=torch.Generator().manual_seed(0))
    lam, V = eigh_psd(ntk_closed_form(y, 3))
    lr, steps = 1 / float(lam[0]), torch.arange(201)
    stops = {}
    for name, step in [("half", lr / 2), ("full", lr)]:
        z = gd_filter(y, lam, V, steps, lr=step)
        stops[name] = (oracle_step(z, x, steps), discrepancy_step(y, z, 0.1, steps))
    return (y, x, lam, V, lr, 0.1, 200), stops


def test_half_step_accepts_the_changed_run(capsys):
    args, stops = _half_step_case()
    t_o, t_d = stops["half"]
    assert stops["full"][0] < t_o < 200  # an interior oracle that moved, so the test can fail
    check_ch4_half_step(t_o, t_d, 2.0, *args)
    check_ch4_half_step(torch.tensor(t_o), t_d, 2.02, *args)
    out = capsys.readouterr().out
    assert out.count("Exercise 4.7: correct") == 2
    assert str(t_o) not in out and str(t_d) not in out


@pytest.mark.parametrize("which, how", [("oracle", "too early"), ("disc", "too early")])
def test_half_step_rejects_the_unchanged_run(which, how):
    args, stops = _half_step_case()
    t_o, t_d = stops["half"]
    if which == "oracle":
        t_o = stops["full"][0]  # forgot to halve the step
    else:
        t_d = stops["full"][1]
    with pytest.raises(ExerciseFailed, match=how) as info:
        check_ch4_half_step(t_o, t_d, 2.0, *args)
    message = str(info.value)
    assert str(stops["half"][0]) not in message and str(stops["half"][1]) not in message


@pytest.mark.parametrize("factor, how", [(4.0, "too large"), (0.5, "too small"),
                                         (-2.0, "sign is wrong"), (1.0, "too small")])
def test_half_step_rejects_a_wrong_factor(factor, how):
    args, stops = _half_step_case()
    with pytest.raises(ExerciseFailed, match="factor") as info:
        check_ch4_half_step(*stops["half"], factor, *args)
    message = str(info.value)
    assert how in message and "2.0" not in message and "2.00" not in message


def test_half_step_names_bad_input():
    args, stops = _half_step_case()
    t_o, t_d = stops["half"]
    with pytest.raises(ExerciseFailed, match="t_oracle_half as a Python int"):
        check_ch4_half_step(None, t_d, 2.0, *args)
    with pytest.raises(ExerciseFailed, match="t_disc_half as a Python int"):
        check_ch4_half_step(t_o, float(t_d), 2.0, *args)
    with pytest.raises(ExerciseFailed, match="factor: a number"):
        check_ch4_half_step(t_o, t_d, None, *args)
