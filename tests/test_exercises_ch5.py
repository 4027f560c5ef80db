"""Tests of the chapter 5 exercise checkers: each accepts a right answer written here
independently (plain arithmetic, explicit loops and textbook linear algebra) and rejects
wrong ones."""
from __future__ import annotations

import math

import pytest
import torch

from ntkutils.exercises import (
    CH5_LANDMARK_COUNTS,
    ExerciseFailed,
    check_ch5_kernel_memory,
    check_ch5_landmarks_for_error,
    check_ch5_noise_prediction,
    check_ch5_nystrom_kernel,
    check_ch5_orthonormalise,
    check_ch5_probe_spread,
)

BYTES = {torch.float64: 8, torch.float32: 4, torch.float16: 2}


# ----------------------------------------------------------------------------- 5.1
def test_kernel_memory_accepts_the_arithmetic(capsys):
    check_ch5_kernel_memory(lambda side, dtype: (side * side) ** 2 * BYTES[dtype] / 2**30)
    assert "Exercise 5.1: correct" in capsys.readouterr().out


@pytest.mark.parametrize("wrong", [
    lambda side, dtype: (side * side) ** 2 * BYTES[dtype] / 1e9,  # GB, not GiB
    lambda side, dtype: side**2 * BYTES[dtype] / 2**30,  # n entries, not n^2
    lambda side, dtype: (side * side) ** 2 * 8 / 2**30,  # always float64
    lambda side, dtype: str((side * side) ** 2 * BYTES[dtype] / 2**30),  # not a number
])
def test_kernel_memory_rejects_wrong_answers(wrong):
    with pytest.raises(ExerciseFailed):
        check_ch5_kernel_memory(wrong)


def test_kernel_memory_rejects_the_stub():
    def stub(side, dtype):
        raise NotImplementedError

    with pytest.raises(ExerciseFailed, match="NotImplementedError"):
        check_ch5_kernel_memory(stub)


# ----------------------------------------------------------------------------- 5.2
def _nystrom_by_eig(C, S):
    """C A^+ C^T with the pseudo-inverse from an eigendecomposition of A (explicit loop)."""
    A = C[S]  # (m, m)
    a, Q = torch.linalg.eigh(A)
    A_pinv = torch.zeros_like(A)
    for k in range(len(a)):
        if a[k] > 1e-12 * a.max():
            A_pinv += torch.outer(Q[:, k], Q[:, k]) / a[k]
    return C @ A_pinv @ C.T


def test_nystrom_kernel_accepts_a_right_answer(capsys):
    check_ch5_nystrom_kernel(_nystrom_by_eig)
    assert "Exercise 5.2: correct" in capsys.readouterr().out


@pytest.mark.parametrize("wrong", [
    lambda C, S: C @ C[S] @ C.T,  # A instead of its inverse
    lambda C, S: C @ C.T,  # no A at all
    lambda C, S: C @ torch.linalg.pinv(C[S]),  # (n, m), not (n, n)
    lambda C, S: C @ torch.linalg.pinv(C.T @ C) @ C.T,  # a projection: the wrong block
])
def test_nystrom_kernel_rejects_wrong_answers(wrong):
    with pytest.raises(ExerciseFailed):
        check_ch5_nystrom_kernel(wrong)


# ----------------------------------------------------------------------------- 5.3
def _orthonormalise_one_shot(R):
    """Fowlkes et al.: eigendecomposition of the small R^T R, then V = R U s^{-1/2}."""
    s, U = torch.linalg.eigh(R.T @ R)  # ascending
    s, U = s.flip(0), U.flip(1)
    return s, R @ U / s.sqrt()


def test_orthonormalise_accepts_the_one_shot_method(capsys):
    check_ch5_orthonormalise(_orthonormalise_one_shot)
    assert "Exercise 5.3: correct" in capsys.readouterr().out


@pytest.mark.parametrize("wrong", [
    lambda R: (torch.linalg.eigh(R.T @ R)[0], R @ torch.linalg.eigh(R.T @ R)[1]
               / torch.linalg.eigh(R.T @ R)[0].sqrt()),  # ascending order
    lambda R: (torch.linalg.svd(R, full_matrices=False)[1],
               torch.linalg.svd(R, full_matrices=False)[0]),  # singular values, not squared
    lambda R: (_orthonormalise_one_shot(R)[0], R @ torch.linalg.eigh(R.T @ R)[1].flip(1)),
    lambda R: torch.linalg.qr(R)[0],  # not a pair
])
def test_orthonormalise_rejects_wrong_answers(wrong):
    with pytest.raises(ExerciseFailed):
        check_ch5_orthonormalise(wrong)


# ----------------------------------------------------------------------------- 5.4
def test_landmarks_for_error_accepts_the_recomputed_m(capsys):
    # The errors recomputed independently: the exact filter by explicit matrix powers of
    # the kernel, the Nystrom one from C A^+ C^T, both at t = 50 with lr = 1/lambda_max.
    from ntkutils.nystrom import landmark_pixels
    from ntkutils.images import add_noise, load_image
    from ntkutils.kernels import ntk_closed_form

    x = load_image("camera", size=32)
    y = add_noise(x, 25 / 255, generator=torch.Generator().manual_seed(0)).double()
    yf = y.reshape(-1)  # (n,)
    K = ntk_closed_form(y, 3)  # (n, n)
    eye = torch.eye(K.shape[0], dtype=K.dtype)
    lr = 1.0 / float(torch.linalg.eigvalsh(K)[-1])
    z = (eye - torch.linalg.matrix_power(eye - lr * K, 50)) @ yf
    answer = None
    for m in CH5_LANDMARK_COUNTS:
        S = landmark_pixels((32, 32), m, generator=torch.Generator().manual_seed(0))
        K_m = _nystrom_by_eig(K[:, S], S)  # (n, n)
        z_m = (eye - torch.linalg.matrix_power(eye - lr * K_m, 50)) @ yf
        if float((z_m - z).norm() / z.norm()) < 0.01:
            answer = m
            break
    assert answer is not None and not math.isnan(answer)
    check_ch5_landmarks_for_error(answer)
    assert "Exercise 5.4: correct" in capsys.readouterr().out


@pytest.mark.parametrize("wrong", [8, 32, 128, 100, 64.0, None, "64"])
def test_landmarks_for_error_rejects_wrong_answers(wrong):
    with pytest.raises(ExerciseFailed):
        check_ch5_landmarks_for_error(wrong)



# ----------------------------------------------------------------------------- 5.5
def _camera32(sigma):
    from ntkutils.images import add_noise, load_image
    from ntkutils.kernels import ntk_closed_form

    x = load_image("camera", size=32)
    y = add_noise(x, sigma, generator=torch.Generator().manual_seed(0)).double()
    return y, ntk_closed_form(y, 3)


def _noise_truth():
    """The word the run shows, from kernel errors recomputed with the explicit-loop
    pseudo-inverse (mean over the landmark seeds 0, 1, 2)."""
    from ntkutils.nystrom import landmark_pixels

    means = []
    for sigma in (25 / 255, 50 / 255):
        _, K = _camera32(sigma)
        errors = []
        for seed in range(3):
            S = landmark_pixels((32, 32), 64, generator=torch.Generator().manual_seed(seed))
            errors.append(float((_nystrom_by_eig(K[:, S], S) - K).norm() / K.norm()))
        means.append(sum(errors) / 3)
    ratio = means[1] / means[0]
    return "larger" if ratio > 1.2 else "smaller" if ratio < 1 / 1.2 else "about the same"


def test_noise_prediction_accepts_what_the_run_shows(capsys):
    truth = _noise_truth()
    check_ch5_noise_prediction(truth)
    out = capsys.readouterr().out
    assert "Exercise 5.5: correct" in out and truth not in out


def test_noise_prediction_rejects_the_other_words_without_the_answer():
    truth = _noise_truth()
    for wrong in {"smaller", "about the same", "larger"} - {truth}:
        with pytest.raises(ExerciseFailed) as info:
            check_ch5_noise_prediction(wrong)
        message = str(info.value)
        assert "checked:" in message and "hint:" in message
        assert repr(truth) not in message


@pytest.mark.parametrize("bad", [None, 1.5, "bigger", ["larger"]])
def test_noise_prediction_names_a_bad_answer(bad):
    with pytest.raises(ExerciseFailed, match="one of the words"):
        check_ch5_noise_prediction(bad)


# ----------------------------------------------------------------------------- 5.6
def _frozen_set_up():
    """The frozen filter at t = 50 as an explicit matrix W = I - (I - lr K)^50, and the
    exact divergence tr W."""
    y, K = _camera32(25 / 255)
    eye = torch.eye(K.shape[0], dtype=K.dtype)
    lr = 1.0 / float(torch.linalg.eigvalsh(K)[-1])
    W = eye - torch.linalg.matrix_power(eye - lr * K, 50)  # (n, n)
    return y, W


def _probe_runs(y, W, n_probes):
    """Ten estimates b^T (W (y + eps b) - W y) / eps averaged over n_probes probes, the
    probes drawn as degrees_of_freedom_mc draws them (generator seeded 100 + s)."""
    runs = []
    for s in range(10):
        g = torch.Generator().manual_seed(100 + s)
        total = 0.0
        for _ in range(n_probes):
            b = torch.randn(y.shape, generator=g, dtype=y.dtype).reshape(-1)
            total += float(b @ (W @ (y.reshape(-1) + 1e-3 * b) - W @ y.reshape(-1))) / 1e-3
        runs.append(total / n_probes)
    return runs


def test_probe_spread_accepts_explicit_matrices(capsys):
    y, W = _frozen_set_up()
    check_ch5_probe_spread(lambda k: _probe_runs(y, W, k), float(torch.trace(W)), 4)
    out = capsys.readouterr().out
    assert "Exercise 5.6: correct" in out and "4" not in out


def test_probe_spread_rejects_wrong_parts_without_the_answer():
    y, W = _frozen_set_up()
    runs = lambda k: _probe_runs(y, W, k)  # noqa: E731
    exact = float(torch.trace(W))
    cases = [
        (lambda k: _probe_runs(y, W, 1), exact, 4, "df_runs(16)"),  # n_probes ignored
        (runs, exact * 1.1, 4, "exact divergence"),
        (runs, float(torch.trace(W @ W)), 4, "exact divergence"),  # sum g^2, not sum g
        (runs, exact, 16, "VARIANCE"),  # the variance's factor
        (runs, exact, 3.3, "only estimate"),  # a measured ratio
    ]
    for fn, df_exact, shrink, how in cases:
        with pytest.raises(ExerciseFailed) as info:
            check_ch5_probe_spread(fn, df_exact, shrink)
        message = str(info.value)
        assert how in message, message
        assert f"{exact:.4g}" not in message and "sqrt(16)" not in message


def test_probe_spread_names_bad_input():
    y, W = _frozen_set_up()
    runs = lambda k: _probe_runs(y, W, k)  # noqa: E731
    exact = float(torch.trace(W))

    def stub(k):
        raise NotImplementedError

    with pytest.raises(ExerciseFailed, match="NotImplementedError"):
        check_ch5_probe_spread(stub, exact, 4)
    with pytest.raises(ExerciseFailed, match="a list of 10 numbers"):
        check_ch5_probe_spread(lambda k: "ten numbers", exact, 4)
    with pytest.raises(ExerciseFailed, match="df_exact, a number"):
        check_ch5_probe_spread(runs, None, 4)
    with pytest.raises(ExerciseFailed, match="shrink, a number"):
        check_ch5_probe_spread(runs, exact, None)
