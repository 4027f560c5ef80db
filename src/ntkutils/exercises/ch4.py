"""Checkers of chapter 4, training is twicing: twicing steps, the steps to fit an
eigen-image, squared bias and variance, the oracle step, and SURE."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from ..spectral import _check_steps, bias_variance, eigh_psd
from ..kernels import ntk_closed_form
from ._feedback import _call, _compare, _fail, _miss, _number, _pair, _passed

__all__ = ["check_ch4_twicing", "check_ch4_steps_to_fit", "check_ch4_bias_variance",
           "check_ch4_oracle_step", "check_ch4_sure"]


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
