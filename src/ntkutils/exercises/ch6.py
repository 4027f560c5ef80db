"""Checkers of chapter 6, Adam adapts the kernel: Adam's first step, the norms of the
weight change, and the relative change of a tangent kernel."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from ..plotting import fit_loglog_slope
from ._feedback import _as_scalar_tensor, _call, _compare, _fail, _miss, _pair, _passed

__all__ = ["check_ch6_adam_first_step", "check_ch6_norm_slopes", "check_ch6_kernel_change"]


def check_ch6_adam_first_step(fn: Callable[..., Any]) -> None:
    """Checker of Exercise 6.1: the size of Adam's very first update.

    Parameters
    ----------
    fn : callable
        ``fn(grad, lr, eps)`` for a gradient ``grad`` (any shape), a learning rate and
        Adam's ``eps``, returning the update ``w^1 - w^0`` of Adam's first step, a tensor
        of ``grad``'s shape.

    Raises
    ------
    ExerciseFailed
        When the update differs from the one :class:`torch.optim.Adam` (default betas)
        makes on a parameter with that gradient, for gradients from ``1e-9`` to ``1e3``
        in size, zeros included.

    Notes
    -----
    With ``m^0 = v^0 = 0``, the first step has ``m^1 = (1 - beta_1) g`` and
    ``v^1 = (1 - beta_2) g^2``; bias correction divides them by ``1 - beta_1`` and
    ``1 - beta_2``, so ``m_hat = g``, ``v_hat = g^2`` and

    .. math:: w^1 - w^0 = -lr \\frac{g}{|g| + \\epsilon} \\approx -lr\\,\\mathrm{sign}(g),

    the same size ``lr`` for every coordinate whose gradient is much larger than ``eps``.

    Examples
    --------
    >>> check_ch6_adam_first_step(lambda g, lr, eps: -lr * g / (g.abs() + eps))
    Exercise 6.1: correct (3 gradients (sizes 1e-9 to 1e3, zeros included), equal to torch.optim.Adam).
    """
    ex = "Exercise 6.1"
    g = torch.Generator().manual_seed(61)
    size = 10.0 ** torch.linspace(-9, 3, 40, dtype=torch.float64)  # (40,)
    sign = torch.where(torch.rand(40, generator=g) < 0.5, -1.0, 1.0).double()
    cases = [(sign * size, 1e-2, 1e-8),
             (torch.randn(3, 4, generator=g, dtype=torch.float64) * 1e-4, 1e-3, 1e-8),
             (torch.tensor([0.0, 1e-8, -2e-8, 5.0], dtype=torch.float64), 0.1, 1e-8)]
    for grad, lr, eps in cases:
        w = torch.nn.Parameter(torch.zeros_like(grad))
        opt = torch.optim.Adam([w], lr=lr, eps=eps)
        w.grad = grad.clone()
        opt.step()  # one step of the real optimiser: the independent reference
        ref = w.detach().clone()
        got = _call(ex, fn, grad.clone(), lr, eps)
        _compare(ex, got, ref, 1e-6, 1e-12,
                 f"lr = {lr:g}, eps = {eps:g}: after bias correction m_hat = g and "
                 "v_hat = g^2; the update is -lr m_hat / (sqrt(v_hat) + eps) (mind the "
                 "minus sign, and keep eps: a zero gradient gives a zero step)")
    _passed(ex, "3 gradients (sizes 1e-9 to 1e3, zeros included), equal to "
                "torch.optim.Adam")


def _measured_slopes(a: float, b: float) -> tuple[float, float]:
    """Slopes of the 2-norm and max-norm of ``~c^b`` changes of size ``c^a``, measured.

    Builds, for several widths ``c``, a vector of ``round(c^b)`` entries of magnitude
    ``c^a`` or ``2 c^a`` (random signs), takes its norms and fits log-log slopes: a
    numerical reference independent of any formula.
    """
    g = torch.Generator().manual_seed(62)
    widths = [8, 16, 32, 64, 128]
    l2, inf = [], []
    for c in widths:
        m = max(2, round(c**b))
        spread = 1.0 + (torch.arange(m) % 2).double()  # sizes 1 and 2, alternating
        dw = c**a * spread * torch.where(torch.rand(m, generator=g) < 0.5, -1.0, 1.0)
        l2.append(float(dw.norm()))
        inf.append(float(dw.abs().max()))
    return fit_loglog_slope(widths, l2), fit_loglog_slope(widths, inf)


def check_ch6_norm_slopes(fn: Callable[[float, float], Any]) -> None:
    """Checker of Exercise 6.2: norm exponents from per-weight changes and weight counts.

    Parameters
    ----------
    fn : callable
        ``fn(a, b)``: each of about ``c^b`` weights moves by about ``c^a``; returns the
        pair ``(s_2, s_inf)`` of exponents with ``||w^t - w^0||_2 ~ c^{s_2}`` and
        ``||w^t - w^0||_inf ~ c^{s_inf}``.

    Raises
    ------
    ExerciseFailed
        When a pair differs (by more than 0.05) from the slopes measured on synthetic
        weight changes of that size and number, for four ``(a, b)`` cases.

    Notes
    -----
    ``||dw||_2^2`` adds ``c^b`` squares of size ``c^{2a}``, so ``s_2 = a + b/2``; the
    largest entry is of the size of a typical one, ``s_inf = a``.  A hidden layer of
    width ``c`` has ``b = 2``: gradient descent's ``a = -3/2`` gives the poster's
    ``(-1/2, -3/2)``, Adam's ``a = -1`` its ``(0, -1)``.

    Examples
    --------
    >>> check_ch6_norm_slopes(lambda a, b: (a + b / 2, a))
    Exercise 6.2: correct (4 cases).
    """
    ex = "Exercise 6.2"
    for a, b in ((-1.5, 2.0), (-1.0, 2.0), (0.0, 2.0), (-0.5, 1.0)):
        got = _pair(ex, _call(ex, fn, a, b), "a pair of numbers (s_2, s_inf)",
                    "return a tuple: (exponent of the 2-norm, exponent of the max-norm)",
                    kinds=(int, float, torch.Tensor), show="{value!r}")
        s2, sinf = (float(v) for v in got)
        r2, rinf = _measured_slopes(a, b)
        if abs(s2 - r2) > 0.05 or abs(sinf - rinf) > 0.05:
            wrong = [f"{label} {_miss(mine, right)}" for label, mine, right in
                     (("s_2", s2, r2), ("s_inf", sinf, rinf)) if abs(mine - right) > 0.05]
            _fail(ex, f"the slopes (s_2, s_inf) for a = {a:g}, b = {b:g}, within 0.05 "
                      "(measured on synthetic changes)",
                  f"({s2:.2f}, {sinf:.2f}): {', '.join(wrong)}",
                  "the squared 2-norm adds c^b squares of size c^(2a); the max-norm is "
                  "the size of the largest single change")
    _passed(ex, "4 cases")


def check_ch6_kernel_change(fn: Callable[[torch.Tensor, torch.Tensor], Any]) -> None:
    """Checker of Exercise 6.3: the relative change of a tangent kernel.

    Parameters
    ----------
    fn : callable
        ``fn(K0, Kt)`` for two kernels of the same shape (``(n, n)``, or ``(r, n)``
        rows), returning ``||Kt - K0||_F / ||K0||_F`` as a float (or 0-dim tensor).

    Raises
    ------
    ExerciseFailed
        When a value differs from the exact answer of cases built to have one (the same
        kernel: 0; a scaled kernel ``a K0``: ``|a - 1|``; an added orthogonal part) or
        from a numpy evaluation for a random pair of kernel rows.

    Examples
    --------
    >>> check_ch6_kernel_change(lambda K0, Kt: (Kt - K0).norm() / K0.norm())
    Exercise 6.3: correct (5 cases: unchanged, scaled, sign-flipped, orthogonal, random rows).
    """
    ex = "Exercise 6.3"
    g = torch.Generator().manual_seed(63)
    A = torch.randn(6, 4, generator=g, dtype=torch.float64)
    K0 = A @ A.T  # (6, 6), PSD
    B = torch.randn(6, 6, generator=g, dtype=torch.float64)
    B = B - (B * K0).sum() / (K0 * K0).sum() * K0  # orthogonal to K0 (Frobenius)
    B = B * (0.3 * K0.norm() / B.norm())  # ||B||_F = 0.3 ||K0||_F
    R0 = torch.randn(3, 10, generator=g, dtype=torch.float64)  # (r, n) rows
    Rt = R0 + 0.2 * torch.randn(3, 10, generator=g, dtype=torch.float64)
    r0, rt = R0.numpy(), Rt.numpy()
    cases = [(K0, K0.clone(), 0.0, "an unchanged kernel"),
             (K0, 0.25 * K0, 0.75, "a kernel scaled by 1/4"),
             (K0, -K0, 2.0, "a sign-flipped kernel"),
             (K0, K0 + B, 0.3, "an added part orthogonal to K0, 0.3 times its size"),
             (R0, Rt, float(np.sqrt(((rt - r0) ** 2).sum() / (r0**2).sum())),
              "three random kernel rows (r, n)")]
    for k0, kt, expected, label in cases:
        got = _as_scalar_tensor(ex, _call(ex, fn, k0.clone(), kt.clone()))
        _compare(ex, got.reshape(()), torch.tensor(expected, dtype=torch.float64), 1e-8,
                 1e-10, f"case '{label}': the Frobenius norm is the square root of the "
                        "sum of ALL squared entries; divide by the norm of K0, not of Kt")
    _passed(ex, "5 cases: unchanged, scaled, sign-flipped, orthogonal, random rows")
