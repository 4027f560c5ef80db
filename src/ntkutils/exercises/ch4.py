"""Checkers of chapter 4, training is twicing: twicing steps, the steps to fit an
eigen-image, squared bias and variance, the oracle step, SURE, a prediction of how the
oracle step moves with the noise level, and the experiment of halving the step."""
from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch

from ..spectral import _check_steps, bias_variance, eigh_psd
from ..kernels import ntk_closed_form
from ._feedback import _call, _compare, _fail, _miss, _number, _pair, _passed

__all__ = ["check_ch4_twicing", "check_ch4_steps_to_fit", "check_ch4_bias_variance",
           "check_ch4_oracle_step", "check_ch4_sure", "check_ch4_noise_prediction",
           "check_ch4_half_step"]


def _int_answer(exercise: str, value: Any, what: str) -> int:
    """The reader's answer as a Python int (or feedback); a float tensor is refused."""
    if isinstance(value, torch.Tensor) and value.numel() == 1 \
            and not value.is_floating_point():
        value = int(value.item())
    return _number(exercise, value, f"{what} as a Python int",
                   "return int(...) of the step, not an index, a float or a tensor",
                   kinds=int, unwrap=False)


def _psd_kernel(n: int, seed: int) -> torch.Tensor:
    """A random symmetric PSD ``(n, n)`` float64 kernel with a dominant eigenvalue."""
    g = torch.Generator().manual_seed(seed)
    A = torch.rand(n, n + 3, generator=g, dtype=torch.float64)  # positive: one big eigenvalue
    return A @ A.T / n


def check_ch4_twicing(fn: Callable[[torch.Tensor, torch.Tensor, int], Any]) -> None:
    """Checker of Exercise 4.1: ``k`` steps of twicing with a filter ``W``.

    Parameters
    ----------
    fn : callable
        ``fn(W, y, k)`` for a symmetric ``(n, n)`` float64 filter ``W``, a signal ``y`` of
        shape ``(n,)`` and an int ``k >= 0``, returning ``z^k`` of the iteration
        ``z^{j+1} = z^j + W (y - z^j)`` from ``z^0 = 0``, shape ``(n,)``.

    Raises
    ------
    ExerciseFailed
        On the first ``k`` whose result differs from ``(I - (I - W)^k) y``, computed with
        :func:`torch.linalg.matrix_power` (an independent computation).

    Notes
    -----
    ``k = 1`` is the filter ``W y``; ``k = 2`` is Tukey's twicing ``(2W - W^2) y``.

    Examples
    --------
    >>> def twicing(W, y, k):
    ...     z = torch.zeros_like(y)
    ...     for _ in range(k):
    ...         z = z + W @ (y - z)
    ...     return z
    >>> check_ch4_twicing(twicing)
    Exercise 4.1: correct (five numbers of passes k, on two filters).
    """
    ex = "Exercise 4.1"
    g = torch.Generator().manual_seed(41)
    for n, seed in ((6, 0), (9, 1)):
        K = _psd_kernel(n, seed)
        W = K / torch.linalg.eigvalsh(K)[-1]  # eta Theta with eta = 1 / lambda_max
        y = torch.randn(n, generator=g, dtype=torch.float64)
        eye = torch.eye(n, dtype=torch.float64)
        for k in (0, 1, 2, 3, 10):
            ref = (eye - torch.linalg.matrix_power(eye - W, k)) @ y  # (n,)
            got = _call(ex, fn, W.clone(), y.clone(), k)
            _compare(ex, got, ref, 1e-8, 1e-10,
                     f"k = {k}, n = {n}: start from z = 0 (so k = 0 returns zeros) and "
                     "add W applied to the residual y - z, k times"
                     + ("; two steps must give (2W - W^2) y" if k == 2 else ""))
    _passed(ex, "five numbers of passes k, on two filters")


def check_ch4_steps_to_fit(fn: Callable[[float, float, float], Any]) -> None:
    """Checker of Exercise 4.2: how many steps until an eigen-image is fitted to a fraction.

    Parameters
    ----------
    fn : callable
        ``fn(lam, lr, fraction)`` for an eigenvalue ``lam > 0``, a learning rate ``lr``
        with ``0 < lr * lam <= 1`` and ``0 < fraction < 1``, returning the smallest int
        ``t`` with filter factor ``1 - (1 - lr * lam)^t >= fraction``.

    Raises
    ------
    ExerciseFailed
        On the first case whose answer differs from counting the steps one by one.

    Examples
    --------
    >>> import math
    >>> def steps_to_fit(lam, lr, fraction):
    ...     if lr * lam >= 1:
    ...         return 1
    ...     return math.ceil(math.log(1 - fraction) / math.log(1 - lr * lam))
    >>> check_ch4_steps_to_fit(steps_to_fit)
    Exercise 4.2: correct (6 cases, from one step to thousands).
    """
    ex = "Exercise 4.2"
    cases = [(1.0, 1.0, 0.5), (0.1, 1.0, 0.9), (0.01, 1.0, 0.6), (3e-3, 1.0, 0.99),
             (2.0, 0.25, 0.95), (40.0, 1e-3, 0.3)]
    for lam, lr, fraction in cases:
        t, left = 0, 1.0
        while 1.0 - left < fraction:  # count the steps: the independent reference
            left *= 1.0 - lr * lam
            t += 1
        got = _int_answer(ex, _call(ex, fn, lam, lr, fraction), "the number of steps")
        if got != t:
            _fail(ex, f"the number of steps for lam = {lam:g}, lr = {lr:g}, "
                  f"fraction = {fraction:g}", f"{got}: {_miss(got, t)}",
                  "solve 1 - (1 - lr lam)^t >= fraction for t: t >= log(1 - fraction) / "
                  "log(1 - lr lam), then round UP to an int (math.ceil)")
    _passed(ex, f"{len(cases)} cases, from one step to thousands")


def _spectral_case(
    seed: int,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """A small gray image ``(1, 5, 5)``, its closed-form NTK and the kernel's eigenpairs."""
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(1, 5, 5, generator=g, dtype=torch.float64)  # (C, H, W)
    K = ntk_closed_form(x, 3)  # (n, n)
    lam, V = eigh_psd(K)
    return x, K, lam, V


def check_ch4_bias_variance(fn: Callable[..., Any]) -> None:
    """Checker of Exercise 4.3: squared bias and variance of the gradient-descent filter.

    Parameters
    ----------
    fn : callable
        ``fn(x, eigvals, eigvecs, steps, lr, sigma)`` for a gray image ``x`` ``(1, H, W)``,
        the eigenpairs ``(n,)``, ``(n, n)`` of a fixed kernel ``Theta``, a 1-D int64 tensor
        of steps ``(T,)``, a learning rate and a noise level, returning the pair
        ``(bias2, variance)`` of ``(T,)`` tensors.

    Raises
    ------
    ExerciseFailed
        When either differs from the dense-matrix computation
        ``bias2 = ||(I - lr Theta)^t x||^2``, ``variance = sigma^2 ||I - (I - lr Theta)^t||_F^2``
        (matrix powers, no eigenvectors: an independent computation).

    Examples
    --------
    >>> from ntkutils.spectral import bias_variance
    >>> check_ch4_bias_variance(bias_variance)
    Exercise 4.3: correct (2 images, 5 steps each: squared bias and variance).
    """
    ex = "Exercise 4.3"
    steps = torch.tensor([0, 1, 3, 20, 200])
    for seed, sigma in ((43, 0.1), (44, 0.3)):
        x, K, lam, V = _spectral_case(seed)
        n = K.shape[0]
        lr = 0.9 / float(lam[0])
        eye = torch.eye(n, dtype=torch.float64)
        xf = x.reshape(n)  # (n,)
        left = [torch.linalg.matrix_power(eye - lr * K, int(t)) for t in steps]  # (n, n)
        bias2 = torch.stack([(L @ xf).pow(2).sum() for L in left])  # (T,)
        var = torch.stack([sigma**2 * (eye - L).pow(2).sum() for L in left])  # (T,)
        got = _call(ex, fn, x.clone(), lam.clone(), V.clone(), steps.clone(), lr, sigma)
        _pair(ex, got, "a pair (bias2, variance)", "return bias2, variance")
        _compare(ex, got[0], bias2, 1e-6, 1e-10,
                 "squared bias: sum_i (1 - lr lam_i)^(2t) <v_i, x>^2 (use the "
                 "eigenvectors as columns: coefficients are x_flat @ eigvecs)")
        _compare(ex, got[1], var, 1e-6, 1e-10,
                 "variance: sigma^2 sum_i (1 - (1 - lr lam_i)^t)^2 (sigma squared, and "
                 "the filter factor squared)")
    _passed(ex, "2 images, 5 steps each: squared bias and variance")


def check_ch4_oracle_step(answer: Any, x: torch.Tensor, eigvals: torch.Tensor,
                          eigvecs: torch.Tensor, steps: Any, lr: float | None,
                          sigma: float) -> None:
    """Checker of Exercise 4.4: the step that minimises squared bias plus variance.

    Parameters
    ----------
    answer : int
        The reader's step ``t*``.
    x, eigvals, eigvecs, steps, lr, sigma
        The chapter's clean image, kernel eigenpairs, candidate steps, learning rate and
        noise level, as for :func:`ntkutils.spectral.bias_variance`.

    Raises
    ------
    ExerciseFailed
        Unless ``answer`` is the step of ``steps`` with the smallest
        ``bias2 + variance`` from :func:`ntkutils.spectral.bias_variance`.

    Examples
    --------
    >>> from ntkutils.spectral import eigh_psd
    >>> lam, V = eigh_psd(torch.tensor([[2.0, 1.0], [1.0, 2.0]]))
    >>> x = torch.tensor([[[1.0, 1.0]]], dtype=torch.float64)  # the top eigenvector
    >>> check_ch4_oracle_step(1, x, lam, V, [0, 1, 2, 50], None, 0.5)
    Exercise 4.4: correct (the step of least expected risk).
    """
    ex = "Exercise 4.4"
    t = _check_steps(steps)
    bias2, var = bias_variance(x, eigvals, eigvecs, t, lr, sigma)
    risk = bias2 + var  # (T,)
    best = int(torch.argmin(risk))
    expected = int(t[best])
    got = _int_answer(ex, answer, "the step t*")
    if got != expected:
        where = (f" (its expected risk is {float(risk[t == got][0]):.4g})"
                 if bool((t == got).any()) else " (not one of the candidate steps)")
        _fail(ex, "the step t* of least expected risk (bias^2 + variance)",
              f"{got}{where}: {'too early' if got < expected else 'too late'}",
              "add the two curves, take the argmin, and return the STEP at that index "
              "(steps[index]), not the index itself")
    _passed(ex, "the step of least expected risk")


def check_ch4_sure(fn: Callable[..., Any]) -> None:
    """Checker of Exercise 4.5: Stein's unbiased risk estimate along a trajectory.

    Parameters
    ----------
    fn : callable
        ``fn(y, z, df, sigma)`` for a noisy image ``y`` ``(C, H, W)``, outputs ``z``
        ``(T, C, H, W)``, degrees of freedom of one channel ``df`` ``(T,)`` and the noise
        level, returning ``SURE(t) = ||z^t - y||^2 - d sigma^2 + 2 sigma^2 C df(t)``,
        ``d = C H W``, as a ``(T,)`` tensor.

    Raises
    ------
    ExerciseFailed
        When the result differs from the formula evaluated term by term here, on a gray
        and a colour case.

    Examples
    --------
    >>> from ntkutils.stopping import sure
    >>> check_ch4_sure(sure)
    Exercise 4.5: correct (gray and colour trajectories).
    """
    ex = "Exercise 4.5"
    g = torch.Generator().manual_seed(45)
    for C, sigma in ((1, 0.1), (3, 0.2)):
        y = torch.rand(C, 4, 5, generator=g, dtype=torch.float64)  # (C, H, W)
        z = torch.rand(6, C, 4, 5, generator=g, dtype=torch.float64)  # (T, C, H, W)
        df = 20 * torch.rand(6, generator=g, dtype=torch.float64)  # (T,)
        d = y.numel()
        ref = torch.stack([((z[k] - y) ** 2).sum() - d * sigma**2
                           + 2 * sigma**2 * C * df[k] for k in range(6)])  # (T,)
        got = _call(ex, fn, y.clone(), z.clone(), df.clone(), sigma)
        _compare(ex, got, ref, 1e-8, 1e-10,
                 f"C = {C}: sum the squared residual over all d = C H W values, subtract "
                 "d sigma^2, and add 2 sigma^2 C df (df counts one channel)")
    _passed(ex, "gray and colour trajectories")


_MOVES = ("earlier", "same", "later")


def _steps_list(exercise: str, value: Any, name: str) -> list[int]:
    """A list of oracle steps, one per noise draw (or feedback naming ``name``)."""
    if isinstance(value, torch.Tensor):
        value = value.tolist()
    if (not isinstance(value, (list, tuple)) or len(value) < 3
            or not all(isinstance(v, int) and not isinstance(v, bool) for v in value)):
        _fail(exercise, f"{name}: a list of at least 3 int steps, one per noise draw",
              f"{type(value).__name__} {value!r}"[:80],
              "run the cell above the checker unchanged: it fills both lists")
    return list(value)


def check_ch4_noise_prediction(prediction: Any, steps_sigma: Any, steps_2sigma: Any) -> None:
    """Checker of Exercise 4.6: does the discrepancy step move when the noise doubles?

    Parameters
    ----------
    prediction : str
        The reader's prediction, written before the run: ``"earlier"``, ``"same"`` or
        ``"later"``: where the discrepancy step of the NTK filter (kernel rebuilt from
        ``y``, the rule told the noise level) lies at ``2 sigma`` against ``sigma``.
    steps_sigma, steps_2sigma : list of int
        The run's discrepancy steps, one per noise draw (at least 3), at ``sigma`` and at
        ``2 sigma``.

    Raises
    ------
    ExerciseFailed
        When the prediction is not one of the three words, when the lists are not lists
        of int steps of the same length, or when the run moved the step the other way
        on every draw (or on none).  When the draws disagree the run is called
        inconclusive and the prediction is not judged.

    Notes
    -----
    The run's verdict: ``"earlier"`` if the step at ``2 sigma`` is smaller on every draw,
    ``"later"`` if larger on every draw, ``"same"`` if equal on every draw.

    Examples
    --------
    >>> check_ch4_noise_prediction("later", [10, 12, 11], [40, 35, 50])
    Exercise 4.6: correct (your prediction against 3 noise draws).
    """
    ex = "Exercise 4.6"
    if not isinstance(prediction, str) or prediction.strip().lower() not in _MOVES:
        _fail(ex, 'your prediction: one of "earlier", "same" or "later"',
              f"{type(prediction).__name__} {prediction!r}"[:80],
              "write the prediction BEFORE running the experiment cell, as a string")
    guess = prediction.strip().lower()
    one = _steps_list(ex, steps_sigma, "steps_sigma")
    two = _steps_list(ex, steps_2sigma, "steps_2sigma")
    if len(one) != len(two):
        _fail(ex, "steps_sigma and steps_2sigma: one step per draw, as many in each",
              f"{len(one)} and {len(two)} steps", "run the experiment cell unchanged")
    moves = {"earlier" if b < a else "later" if b > a else "same" for a, b in zip(one, two)}
    if len(moves) > 1:
        _fail(ex, "whether the run moves the discrepancy step the same way on every draw",
              f"the {len(one)} draws disagree: the run is inconclusive",
              "rerun with more noise draws before judging the prediction")
    shown = moves.pop()
    if guess != shown:
        _fail(ex, f"your prediction against the discrepancy steps of {len(one)} noise draws at "
              "sigma and 2 sigma", f'"{guess}": the run disagrees on every draw',
              "compare the two lists printed by the run. Why: the rule stops at the first "
              "step whose residual ||z^t - y||^2 falls to n sigma^2 (Section 4); ask "
              "how that threshold and the residual at the first steps change when "
              "sigma doubles")
    _passed(ex, f"your prediction against {len(one)} noise draws")


def check_ch4_half_step(t_oracle_half: Any, t_disc_half: Any, factor: Any,
                        y: torch.Tensor, x: torch.Tensor, eigvals: torch.Tensor,
                        eigvecs: torch.Tensor, lr: float, sigma: float,
                        max_step: int = 400) -> None:
    """Checker of Exercise 4.7: halve the step, and say by how much the stops move.

    Parameters
    ----------
    t_oracle_half, t_disc_half : int
        The reader's oracle step (best PSNR, uses ``x``) and discrepancy step (first
        ``||z^t - y||^2 <= d sigma^2``) of gradient descent with step ``lr / 2`` on every
        integer step ``0 .. max_step``.
    factor : float
        The reader's explanation as a number: by what factor the filter factors
        ``phi_t(lambda) = 1 - (1 - eta lambda)^t`` say every step moves when ``eta`` is
        halved, for the small ``eta lambda`` where the stops lie.
    y, x : torch.Tensor, shape (1, H, W)
        The noisy and the clean image.
    eigvals, eigvecs : torch.Tensor
        Eigenpairs ``(n,)``, ``(n, n)`` of the kernel of ``y``.
    lr : float
        The chapter's step ``eta``; the experiment uses ``lr / 2``.
    sigma : float
        Noise level on the [0, 1] scale.
    max_step : int, default 400
        Last candidate step.

    Raises
    ------
    ExerciseFailed
        When a step differs from this checker's own computation (filter factors applied
        to the eigen-coefficients of ``y``, the PSNR and residual of every step computed
        here), or when ``factor`` is not within 5% of what the filter factors give.

    Examples
    --------
    >>> from ntkutils.images import add_noise, load_image
    >>> from ntkutils.kernels import ntk_closed_form
    >>> from ntkutils.spectral import eigh_psd
    >>> x = load_image("camera", size=12).double()
    >>> y = add_noise(x, 0.1, generator=torch.Generator().manual_seed(0))
    >>> lam, V = eigh_psd(ntk_closed_form(y, 3))
    >>> check_ch4_half_step(151, 41, 2.0, y, x, lam, V, 1 / float(lam[0]), 0.1, 200)
    Exercise 4.7: correct (both stops at half the step, and the factor).
    """
    ex = "Exercise 4.7"
    got_o = _int_answer(ex, t_oracle_half, "the oracle step t_oracle_half")
    got_d = _int_answer(ex, t_disc_half, "the discrepancy step t_disc_half")
    f = _number(ex, factor, "factor: a number (a Python float)",
                "say by how many times the steps move, e.g. 0.5 or 3.0")
    coef = y.reshape(-1).double() @ eigvecs.double()  # (n,): <v_i, y>
    t = torch.arange(max_step + 1, dtype=torch.float64)[:, None]  # (T, 1)
    phi = 1 - (1 - 0.5 * lr * eigvals.double())[None, :] ** t  # (T, n): filter factors
    z = (phi * coef) @ eigvecs.double().T  # (T, n)
    xf, yf = x.reshape(-1).double(), y.reshape(-1).double()
    mse = (z - xf).pow(2).mean(1)  # (T,)
    best = int(torch.argmin(mse))  # the best PSNR is the least squared error
    below = ((z - yf).pow(2).sum(1) <= yf.numel() * sigma**2).nonzero()
    disc = int(below[0]) if len(below) else max_step
    for name, got, ref in (("oracle step", got_o, best), ("discrepancy step", got_d, disc)):
        if got != ref:
            _fail(ex, f"the {name} of gradient descent with step lr / 2 on steps 0 .. "
                  f"{max_step}", f"{got}: {'too early' if got < ref else 'too late'}",
                  "run gd_filter with lr=lr / 2 on torch.arange(max_step + 1) and return "
                  "the STEP the rule picks (an int), not an index or the full-step result")
    small = 1e-3  # eta lambda of the eigen-images fitted near the stops
    expected = math.log(1 - small) / math.log(1 - small / 2)
    if abs(f - expected) > 0.05 * expected:
        _fail(ex, "factor: how many times later phi_t reaches the same value at eta / 2",
              f"{f:.4g}: {_miss(f, expected)}",
              "(1 - eta lambda / 2)^t' = (1 - eta lambda)^t: solve for t' / t when eta "
              "lambda is small (1 - a)^t ~ exp(-a t)")
    _passed(ex, "both stops at half the step, and the factor")
