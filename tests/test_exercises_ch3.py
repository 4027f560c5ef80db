"""Tests of the chapter 3 exercise checkers: each accepts a right answer written here
independently (plain formulas and loops, not the package's kernels) and rejects wrong ones."""
from __future__ import annotations

import functools
import math

import pytest
import torch
import torch.nn.functional as F

from ntkutils import add_noise, load_image
from ntkutils.exercises import (
    ExerciseFailed,
    check_ch3_centred_input,
    check_ch3_degrees_of_freedom,
    check_ch3_noise_background,
    check_ch3_noise_level_step,
    check_ch3_permuted_kernel,
    check_ch3_sign_change_angle,
)
from ntkutils.stopping import log_step_grid


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



# ----------------------------------------------------------------------------- 3.5, 3.6
# An independent filter: the kernel by the closed formula on patches taken with
# F.unfold, its eigenpairs, the filter I - (I - K / lambda_1)^t and PSNR = 10 log10(1/MSE).
def _kernel_by_formula(u):
    P = F.unfold(u[None].double(), 3, padding=1)[0].T  # (n, 9): zero-padded patches
    nrm = P.norm(dim=1)
    cos = (P @ P.T / (nrm[:, None] * nrm[None, :])).clamp(-1, 1)
    phi = torch.arccos(cos)
    J = torch.sin(phi) + 2 * (math.pi - phi) * torch.cos(phi)
    return nrm[:, None] * nrm[None, :] * J / (2 * math.pi * P.shape[1])


def _psnr_curve(u, y, x, steps, mean_back=False):
    lam, V = torch.linalg.eigh(_kernel_by_formula(u))
    m = float(y.mean()) if mean_back else 0.0
    out = []
    for t in steps.tolist():
        gain = 1 - (1 - lam.clamp_min(0) / lam.max()) ** t
        z = V @ (gain * (V.T @ (y.double().flatten() - m))) + m
        out.append(10 * math.log10(1 / float(((z - x.double().flatten()) ** 2).mean())))
    return torch.tensor(out, dtype=torch.float64)


_GRID = log_step_grid(10**6, 61)
_X32 = load_image("camera", size=32)


@functools.lru_cache(maxsize=None)
def _best_step(sigma, seed):
    y = add_noise(_X32, sigma, generator=torch.Generator().manual_seed(seed))
    return int(_GRID[int(_psnr_curve(y, y, _X32, _GRID).argmax())])


def _direction():
    moved = [_best_step(50 / 255, s) - _best_step(25 / 255, s) for s in (0, 1, 2)]
    return "earlier" if all(m < 0 for m in moved) else (
        "later" if all(m > 0 for m in moved) else "same")


def test_noise_level_step_accepts_the_run_and_its_direction(capsys):
    check_ch3_noise_level_step(_direction(), _best_step)
    out = capsys.readouterr().out
    assert "Exercise 3.5: correct" in out
    assert str(_best_step(25 / 255, 0)) not in out  # no step in the confirmation


def test_noise_level_step_rejects_the_other_predictions():
    right = _direction()
    for wrong in {"earlier", "same", "later"} - {right}:
        with pytest.raises(ExerciseFailed) as info:
            check_ch3_noise_level_step(wrong, _best_step)
        message = str(info.value)
        assert "does not agree" in message and right not in message, message


@pytest.mark.parametrize("wrong", [
    lambda sigma, seed: int(_GRID[-1]),  # the last step: fits the noise
    lambda sigma, seed: 1,  # one step
])
def test_noise_level_step_rejects_a_wrong_run(wrong):
    with pytest.raises(ExerciseFailed, match="too (early|late)") as info:
        check_ch3_noise_level_step(_direction(), wrong)
    assert str(_best_step(25 / 255, 0)) + " " not in str(info.value)


@pytest.mark.parametrize("bad, named", [
    (None, "your prediction"), ("Earlier", "your prediction"), (1, "your prediction"),
])
def test_noise_level_step_names_a_bad_prediction(bad, named):
    with pytest.raises(ExerciseFailed, match=named):
        check_ch3_noise_level_step(bad, _best_step)


def test_noise_level_step_reports_a_stub_and_a_non_function():
    def stub(sigma, seed):
        raise NotImplementedError

    with pytest.raises(ExerciseFailed, match="NotImplementedError"):
        check_ch3_noise_level_step("same", stub)
    with pytest.raises(ExerciseFailed, match="a function"):
        check_ch3_noise_level_step("same", 79)


def _centred_curve(y, x, steps):
    return _psnr_curve(y - y.mean(), y, x, steps)


def test_centred_input_accepts_the_run_and_b(capsys):
    check_ch3_centred_input(_centred_curve, "b")
    assert "Exercise 3.6: correct" in capsys.readouterr().out


def test_centred_input_explanation_b_is_what_the_runs_show():
    # The centred kernel alone: its best step is late and no better than y; the same
    # kernel on y - mean with the mean added back denoises.
    x = load_image("camera", size=24)
    y = add_noise(x, 25 / 255, generator=torch.Generator().manual_seed(3))
    steps = torch.tensor([0, 1, 3, 10, 30, 100, 1000, 10**4, 10**5, 10**6])
    psnr_y = 10 * math.log10(1 / float(((y - x) ** 2).mean()))
    alone = _psnr_curve(y - y.mean(), y, x, steps)
    back = _psnr_curve(y - y.mean(), y, x, steps, mean_back=True)
    assert float(alone.max()) < psnr_y + 0.5 < float(back.max())


@pytest.mark.parametrize("why", ["a", "c"])
def test_centred_input_rejects_the_other_explanations(why):
    with pytest.raises(ExerciseFailed, match="does not explain") as info:
        check_ch3_centred_input(_centred_curve, why)
    assert "'b'" not in str(info.value)


@pytest.mark.parametrize("wrong", [
    lambda y, x, steps: _psnr_curve(y, y, x, steps),  # not centred
    lambda y, x, steps: _psnr_curve(y - y.mean(), y - y.mean(), x, steps),  # target
    lambda y, x, steps: _centred_curve(y, x, steps).tolist(),  # not a tensor
])
def test_centred_input_rejects_a_wrong_curve(wrong):
    with pytest.raises(ExerciseFailed):
        check_ch3_centred_input(wrong, "b")


@pytest.mark.parametrize("bad, named", [(None, "your explanation"), ("B", "your explanation"),
                                        (2, "your explanation")])
def test_centred_input_names_a_bad_explanation(bad, named):
    with pytest.raises(ExerciseFailed, match=named):
        check_ch3_centred_input(_centred_curve, bad)
