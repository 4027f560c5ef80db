"""Checkers of chapter 3, the NTK is a non-local filter: where the kernel's weight turns
negative, the kernel of shuffled patches, the kernel of noise, the degrees of freedom, the
best step at a higher noise level (a prediction) and the kernel of a centred input."""
from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import Any

import torch

from ..images import add_noise, load_image
from ..kernels import arccos_kernel, extract_patches, ntk_closed_form
from ..stopping import log_step_grid
from ._feedback import _call, _compare, _fail, _number, _passed, _shown, check_value

__all__ = ["check_ch3_sign_change_angle", "check_ch3_permuted_kernel",
           "check_ch3_noise_background", "check_ch3_degrees_of_freedom",
           "check_ch3_noise_level_step", "check_ch3_centred_input"]


def _entry_sign(phi: float) -> float:
    """Sign-carrying value of the NTK entry of two unit vectors at angle ``phi`` (radians).

    Computed from :func:`ntkutils.kernels.arccos_kernel` (not from the closed formula), so
    that the checker of Exercise 3.1 is an independent computation.
    """
    a = torch.tensor([[1.0, 0.0]], dtype=torch.float64)
    b = torch.tensor([[math.cos(phi), math.sin(phi)]], dtype=torch.float64)
    k0 = arccos_kernel(a, b, 0)[0, 0]
    k1 = arccos_kernel(a, b, 1)[0, 0]
    return float(k1 + (a @ b.T)[0, 0] * k0)


def check_ch3_sign_change_angle(answer: Any) -> None:
    """Checker of Exercise 3.1: the angle beyond which the NTK weight is negative.

    Parameters
    ----------
    answer : float
        The angle ``phi_0`` in degrees, between 90 and 180, at which
        ``J(phi) = sin(phi) + 2 (pi - phi) cos(phi)`` changes sign.

    Raises
    ------
    ExerciseFailed
        Unless ``answer`` is within 0.1 degree of the root found by bisection on the
        kernel of two unit vectors computed with :func:`ntkutils.kernels.arccos_kernel`.

    Notes
    -----
    The single-hidden-layer NTK is ``|u_i| |u_j| J(phi) / (2 pi d)``: its sign is the sign
    of ``J``, positive up to ``phi_0`` (more than a right angle), negative between ``phi_0``
    and 180 degrees, and 0 at 180 degrees.

    Examples
    --------
    >>> check_ch3_sign_change_angle(113.2)
    Exercise 3.1: correct (within 0.1).
    """
    lo, hi = math.pi / 2, 0.99 * math.pi  # J > 0 at 90 degrees, J < 0 just below 180
    for _ in range(60):
        mid = (lo + hi) / 2
        if _entry_sign(mid) > 0:
            lo = mid
        else:
            hi = mid
    check_value("Exercise 3.1", answer, math.degrees(lo), rtol=0.0, atol=0.1,
                hint="solve sin(phi) + 2 (pi - phi) cos(phi) = 0 for phi in (pi/2, pi), "
                     "e.g. by bisection or scipy.optimize.brentq, and convert to degrees")


def check_ch3_permuted_kernel(fn: Callable[[torch.Tensor, torch.Tensor], Any]) -> None:
    """Checker of Exercise 3.2: the kernel of a shuffled list of patches.

    Parameters
    ----------
    fn : callable
        ``fn(K, perm)`` for a kernel ``K`` ``(n, n)`` and a permutation ``perm`` ``(n,)``
        of the pixels, returning the kernel of the patches taken in the order ``perm``
        (row ``a`` is patch ``perm[a]``), without recomputing any kernel value.

    Raises
    ------
    ExerciseFailed
        When the answer differs from the kernel computed afresh from the shuffled patches
        with :func:`ntkutils.kernels.arccos_kernel`.

    Notes
    -----
    ``Theta_ab = k(u_a, u_b)`` depends on the two patches only, so for shuffled patches
    ``u'_a = u_{perm[a]}``: ``Theta'_ab = Theta_{perm[a], perm[b]}``, i.e.
    ``Theta' = Pi Theta Pi^T`` with the permutation matrix ``Pi``.

    Examples
    --------
    >>> check_ch3_permuted_kernel(lambda K, perm: K[perm][:, perm])
    Exercise 3.2: correct (2 permutations of a 6 x 6 image's 36 patches).
    """
    ex = "Exercise 3.2"
    g = torch.Generator().manual_seed(32)
    u = torch.rand(1, 6, 6, generator=g, dtype=torch.float64)
    K = ntk_closed_form(u, 3)  # (n, n)
    P = extract_patches(u, 3)  # (n, d)
    d = P.shape[1]
    for perm in (torch.randperm(36, generator=g), torch.arange(36).flip(0)):
        Q = P[perm]  # (n, d): the shuffled patch list
        fresh = (arccos_kernel(Q, Q, 1) + (Q @ Q.T) * arccos_kernel(Q, Q, 0)) / (2 * d)
        got = _call(ex, fn, K.clone(), perm.clone())
        _compare(ex, got, fresh, 1e-6, 1e-9,
                 "row a and column a of the new kernel both belong to patch perm[a]: "
                 "permute the rows AND the columns")
    _passed(ex, "2 permutations of a 6 x 6 image's 36 patches")


def check_ch3_noise_background(answer: Any) -> None:
    """Checker of Exercise 3.3: the kernel of an iid Gaussian input, far from the diagonal.

    Parameters
    ----------
    answer : float
        The ratio ``E[Theta_ij] / E[Theta_ii]`` for a gray iid ``N(0, s^2)`` input, 3 x 3
        patches (``d = 9``) and two pixels whose patches do not overlap, both away from
        the border.

    Raises
    ------
    ExerciseFailed
        Unless ``answer`` is within 3 % of a Monte-Carlo estimate: the mean of such
        entries of :func:`ntkutils.kernels.ntk_closed_form` of a 48 x 48 ``N(0, 1)`` image
        divided by the mean of its diagonal.

    Notes
    -----
    With ``k_1(x, y) = 2 E_w[relu(w.x) relu(w.y)]`` and ``k_0(x, y) = 2 E_w[1{w.x > 0}
    1{w.y > 0}]`` (``w ~ N(0, I_d)``), independent patches give ``E k_1 = s^2 d / pi`` and
    ``E[<x, y> k_0] = s^2 / pi``, so ``E Theta_ij = s^2 (d + 1) / (2 pi d)``, while
    ``Theta_ii = |u_i|^2 / d`` has mean ``s^2``: the ratio is ``(d + 1) / (2 pi d)``.

    Examples
    --------
    >>> check_ch3_noise_background(10 / 9 / (2 * math.pi))
    Exercise 3.3: correct (within 3%).
    """
    size = 48
    g = torch.Generator().manual_seed(0)
    u = torch.randn(1, size, size, generator=g, dtype=torch.float64)
    K = ntk_closed_form(u, 3)  # (n, n)
    idx = torch.arange(size * size)
    row, col = idx // size, idx % size
    inner = (row > 0) & (row < size - 1) & (col > 0) & (col < size - 1)  # no padding
    apart = ((row[:, None] - row[None, :]).abs() > 2) | (
        (col[:, None] - col[None, :]).abs() > 2)  # (n, n): patches do not overlap
    far = apart & inner[:, None] & inner[None, :]
    expected = float(K[far].mean() / K.diagonal()[inner].mean())
    check_value("Exercise 3.3", answer, expected, rtol=0.03,
                hint="two independent patches: average k_1 and <x, y> k_0 over the "
                     "patches first, using k_1(x, y) = 2 E_w[relu(w.x) relu(w.y)]; "
                     "the ratio is not exactly 1 / (2 pi)")


def check_ch3_degrees_of_freedom(fn: Callable[[torch.Tensor, torch.Tensor, float], Any]
                                 ) -> None:
    """Checker of Exercise 3.4: effective degrees of freedom from the eigenvalues.

    Parameters
    ----------
    fn : callable
        ``fn(eigvals, steps, lr)`` for eigenvalues ``(m,)`` of a kernel, a 1-D integer
        tensor of steps ``(T,)`` and a learning rate, returning ``df(t)`` ``(T,)``.

    Raises
    ------
    ExerciseFailed
        When the answer differs from ``tr(I - (I - lr K)^t)`` computed with explicit
        matrix powers of a small kernel ``K``.

    Notes
    -----
    ``df(t) = tr(I - (I - lr Theta)^t) = sum_i [1 - (1 - lr lambda_i)^t]``.

    Examples
    --------
    >>> check_ch3_degrees_of_freedom(
    ...     lambda lam, t, lr: (1 - (1 - lr * lam[None]) ** t[:, None]).sum(1))
    Exercise 3.4: correct (2 step sizes, 5 steps each, equal to the trace of the filter).
    """
    ex = "Exercise 3.4"
    u = torch.rand(1, 5, 5, generator=torch.Generator().manual_seed(34),
                   dtype=torch.float64)
    K = ntk_closed_form(u, 3)  # (n, n)
    n = K.shape[0]
    eigvals = torch.linalg.eigvalsh(K).flip(0).clamp_min(0.0)  # (n,), largest first
    steps = torch.tensor([0, 1, 3, 20, 500])
    eye = torch.eye(n, dtype=K.dtype)
    for lr in (1.0 / float(eigvals[0]), 1.5 / float(eigvals[0])):
        ref = torch.stack([torch.trace(eye - torch.linalg.matrix_power(eye - lr * K, int(t)))
                           for t in steps])  # (T,)
        got = _call(ex, fn, eigvals.clone(), steps.clone(), lr)
        _compare(ex, got, ref, 1e-8, 1e-10,
                 "df(t) sums 1 - (1 - lr * lambda_i)^t over all eigenvalues, one value "
                 "per step t (df(0) = 0)")
    _passed(ex, "2 step sizes, 5 steps each, equal to the trace of the filter")


def _twicing_psnr(u: torch.Tensor, y: torch.Tensor, x: torch.Tensor,
                  steps: torch.Tensor) -> torch.Tensor:
    """PSNR (dB) of gradient descent with the kernel of the input ``u``, for every step.

    The kernel is built from the patches with :func:`ntkutils.kernels.arccos_kernel` and
    decomposed with ``torch.linalg.eigh``; the filter ``I - (I - K / lambda_1)^t`` is applied
    to ``y`` from ``z = 0``: an independent computation of what ``ntk_closed_form``,
    ``eigh_psd`` and ``gd_filter`` do in the chapter.  Images ``(1, h, w)``, steps ``(T,)``.
    """
    P = extract_patches(u.double(), 3)  # (n, d)
    K = (arccos_kernel(P, P, 1) + (P @ P.T) * arccos_kernel(P, P, 0)) / (2 * P.shape[1])
    lam, V = torch.linalg.eigh(K)  # ascending
    lam = lam.clamp_min(0.0)
    gain = 1 - (1 - lam[None, :] / lam[-1]) ** steps[:, None].double()  # (T, n)
    z = (gain * (V.T @ y.double().flatten())) @ V.T  # (T, n)
    mse = ((z - x.double().flatten()) ** 2).mean(1)  # (T,)
    return 10 * torch.log10(1 / mse)


_EX5_SIGMAS = (25, 50)  # noise levels of Exercise 3.5, on the 0..255 scale
_EX5_SEEDS = (0, 1, 2)
_EX5_CHOICES = ("earlier", "same", "later")


def check_ch3_noise_level_step(prediction: Any, best_step: Callable[[float, int], Any]
                               ) -> None:
    """Checker of Exercise 3.5: where the best step goes when the noise doubles.

    Parameters
    ----------
    prediction : str
        The reader's prediction, written before the run: ``"earlier"``, ``"same"`` or
        ``"later"`` (the oracle's best step at ``sigma = 50/255`` compared with
        ``25/255``).
    best_step : callable
        ``best_step(sigma, seed)``: the oracle's best step, on the grid
        ``log_step_grid(10**6, 61)``, of gradient descent with the kernel of the noisy
        image (input and target ``y = add_noise(x, sigma, generator(seed))``, ``x`` the
        32 x 32 camera image), from ``z = 0`` with ``eta = 1 / lambda_1``.

    Raises
    ------
    ExerciseFailed
        When a prediction is not one of the three words; when ``best_step`` differs by
        more than one grid point from an independent computation (kernel from
        :func:`ntkutils.kernels.arccos_kernel`, ``torch.linalg.eigh``, the filter in
        closed form) at either noise level for seeds 0, 1 and 2; or when the prediction
        disagrees with how the best step moves in that run.

    Notes
    -----
    ``E|z^t - x|^2 = sum_i (1 - eta lambda_i)^(2t) <v_i, x>^2 + sigma^2 sum_i [1 - (1 -
    eta lambda_i)^t]^2``: the squared bias does not involve ``sigma``, the variance grows
    with ``t`` and with ``sigma^2``.

    Examples
    --------
    >>> check_ch3_noise_level_step(None, lambda sigma, seed: 1)
    Traceback (most recent call last):
    ...
    ntkutils.exercises.ExerciseFailed: Exercise 3.5: not yet.
      checked:  your prediction: one of 'earlier', 'same' or 'later'
      got:      NoneType None
      hint:     write down your prediction as one of the three words before you run best_step
    """
    ex = "Exercise 3.5"
    if not isinstance(prediction, str) or prediction not in _EX5_CHOICES:
        _fail(ex, "your prediction: one of 'earlier', 'same' or 'later'",
              _shown(prediction, "{type} {value!r}"),
              "write down your prediction as one of the three words before you run "
              "best_step")
    steps = log_step_grid(10**6, 61)  # (T,)
    hint = ("build the kernel of y (input = the noisy image), filter y for every step of "
            "the grid from z = 0 with eta = 1 / lambda_1, and return the step of the best "
            "PSNR against x as an int")
    best = {}
    for (level, seed), k in _ex5_reference().items():
        got = _number(ex, _call(ex, best_step, level / 255, seed),
                      "best_step(sigma, seed): a step of the grid", hint, integral=True)
        near = steps[max(k - 1, 0):k + 2].tolist()  # one grid point either side
        if int(got) not in near:
            _fail(ex, "best_step(sigma, seed): the oracle's best step on the grid",
                  f"{int(got)} at sigma = {level}/255, seed {seed}: "
                  f"{_miss_step(int(got), int(steps[k]))}", hint)
        best[level, seed] = int(steps[k])
    moved = sum((best[50, s] > best[25, s]) - (best[50, s] < best[25, s])
                for s in _EX5_SEEDS)
    shown = "later" if moved > 0 else "earlier" if moved < 0 else "same"
    if prediction != shown:
        _fail(ex, "your prediction against your run (the best steps at the two noise "
                  "levels, seeds 0, 1 and 2)",
              f"{prediction!r}: the run does not agree",
              "print best_step(25 / 255, seed) and best_step(50 / 255, seed) side by side. "
              "Why: in E|z^t - x|^2 the squared bias sum (1 - eta lambda_i)^(2t) <v_i, x>^2 "
              "does not involve sigma, while the variance sigma^2 sum [1 - (1 - eta "
              "lambda_i)^t]^2 grows with t and with sigma^2")
    _passed(ex, "your best steps agree with the check's for 2 noise levels and 3 seeds, "
                "and so does your prediction")


@functools.lru_cache(maxsize=1)
def _ex5_reference() -> dict[tuple[int, int], int]:
    """Index on ``log_step_grid(10**6, 61)`` of the best step, per (sigma * 255, seed)."""
    x = load_image("camera", size=32).double()  # (1, 32, 32)
    steps = log_step_grid(10**6, 61)  # (T,)
    best = {}
    for level in _EX5_SIGMAS:
        for seed in _EX5_SEEDS:
            y = add_noise(x, level / 255, generator=torch.Generator().manual_seed(seed))
            best[level, seed] = int(_twicing_psnr(y, y, x, steps).argmax())
    return best


def _miss_step(got: int, expected: int) -> str:
    """How a wrong step misses: too early or too late (never the right step)."""
    return "too early" if got < expected else "too late"


_EX6_CHOICES = ("a", "b", "c")


def check_ch3_centred_input(centred_curve: Callable[..., Any], why: Any) -> None:
    """Checker of Exercise 3.6: gradient descent with the kernel of a centred input.

    Parameters
    ----------
    centred_curve : callable
        ``centred_curve(y, x, steps)`` for a noisy image ``y`` ``(1, h, w)``, the clean
        ``x`` and integer steps ``(T,)``: the PSNR in dB ``(T,)`` of gradient descent on
        ``y`` (the target is unchanged) with the kernel of the network input
        ``y - y.mean()``, from ``z = 0`` with ``eta = 1 / lambda_1``.
    why : str
        The reader's explanation of the run, one of the letters of the exercise.

    Raises
    ------
    ExerciseFailed
        When ``centred_curve`` differs from an independent computation (kernel from
        :func:`ntkutils.kernels.arccos_kernel`, ``torch.linalg.eigh``, the filter in closed
        form) on a 24 x 24 camera image with two draws of the noise, or when ``why`` is not
        the explanation the runs support.

    Notes
    -----
    Centring the input removes the brightness from the patches: the kernel's leading
    eigen-images then carry the image's zero-mean structure but not its mean, which is
    fitted only late, together with the noise; filtering ``y - y.mean()`` and adding the
    mean back denoises.

    Examples
    --------
    >>> check_ch3_centred_input(None, "b")
    Traceback (most recent call last):
    ...
    ntkutils.exercises.ExerciseFailed: Exercise 3.6: not yet.
      checked:  a function
      got:      NoneType
      hint:     pass the function itself, without calling it
    """
    ex = "Exercise 3.6"
    x = load_image("camera", size=24).double()  # (1, 24, 24)
    steps = torch.tensor([0, 1, 10, 100, 1000, 10**5])
    hint = ("twice y itself (the target is unchanged) with the kernel of the input "
            "y - y.mean(), from z = 0 with eta = 1 / lambda_1; return one PSNR in dB per "
            "step")
    for seed in (7, 8):
        y = add_noise(x, 25 / 255, generator=torch.Generator().manual_seed(seed))
        ref = _twicing_psnr(y - y.mean(), y, x, steps)  # (T,)
        got = _call(ex, centred_curve, y.clone(), x.clone(), steps.clone())
        _compare(ex, got, ref, 1e-4, 0.0, hint)
    if not isinstance(why, str) or why not in _EX6_CHOICES:
        _fail(ex, "your explanation: one of the letters 'a', 'b' or 'c'",
              _shown(why, "{type} {value!r}"), "set why to the letter of your explanation")
    if why != "b":
        _fail(ex, "your explanation against the runs", f"{why!r} does not explain them",
              "filter y - y.mean() with the centred kernel and add the mean back: if that "
              "denoises, ask what the leading eigen-images of the centred kernel cannot "
              "represent")
    _passed(ex, "your PSNR curves agree with the check's for 2 draws of the noise, and your "
                "explanation is the one the runs support")
