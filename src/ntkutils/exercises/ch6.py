"""Checkers of chapter 6, Adam adapts the kernel: a predicted width exponent, Adam's first
step, the norms of the weight change, the relative change of a tangent kernel, and the
width sweep rerun with sign descent."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from ..networks import build_vanilla_cnn
from ..plotting import fit_loglog_slope, loglog_slopes
from ._feedback import (
    _as_scalar_tensor,
    _call,
    _compare,
    _fail,
    _miss,
    _number,
    _pair,
    _passed,
)

__all__ = ["check_ch6_predict_exponent", "check_ch6_adam_first_step", "check_ch6_norm_slopes",
           "check_ch6_kernel_change", "check_ch6_sign_sweep"]

SIGN_SWEEP_WIDTHS = (8, 16, 32, 64)  # the widths of Exercise 6.5's sweep
SIGN_SWEEP_SEEDS = (0, 1, 2)  # its seeds: build_vanilla_cnn(generator=seed)
SIGN_SWEEP_CHOICES = ("adam", "gd", "neither")


def check_ch6_adam_first_step(fn: Callable[..., Any]) -> None:
    """Checker of Exercise 6.3: the size of Adam's very first update.

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
    Exercise 6.2: correct (3 gradients (sizes 1e-9 to 1e3, zeros included), equal to torch.optim.Adam).
    """
    ex = "Exercise 6.2"
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
    """Checker of Exercise 6.3: norm exponents from per-weight changes and weight counts.

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
    Exercise 6.3: correct (4 cases).
    """
    ex = "Exercise 6.3"
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
    """Checker of Exercise 6.4: the relative change of a tangent kernel.

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
    Exercise 6.4: correct (5 cases: unchanged, scaled, sign-flipped, orthogonal, random rows).
    """
    ex = "Exercise 6.4"
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


def _measured_exponents(slopes: Any) -> np.ndarray:
    """The per-seed exponents a run measured, as a 1-D float array (at least 3, finite)."""
    try:
        v = np.asarray(torch.as_tensor(slopes).detach().cpu() if isinstance(slopes, torch.Tensor)
                       else slopes, dtype=float).reshape(-1)
    except (TypeError, ValueError):
        v = np.array([])
    if v.size < 3 or not np.isfinite(v).all():
        raise ValueError(f"slopes must hold the fitted exponent of at least 3 seeds (finite "
                         f"numbers), got {slopes!r}")
    return v


def check_ch6_predict_exponent(prediction: Any, slopes: Any) -> None:
    """Checker of Exercise 6.1: a predicted width exponent against the sweep's.

    Parameters
    ----------
    prediction : float
        The reader's prediction, made before the sweep ran, of the exponent ``a`` in
        ``||w^T - w^0||_2 ~ c^a`` over the hidden layers of the vanilla CNN trained by
        Adam with the fixed step ``10^-2`` (standard parameterisation).
    slopes : sequence of float
        The exponents the sweep measured, one log-log slope per seed (at least 3), e.g.
        :func:`ntkutils.plotting.loglog_slopes` of the sweep's runs.

    Raises
    ------
    ExerciseFailed
        When the prediction is not a number, or lies more than 0.3 outside the range of
        the measured per-seed slopes: the feedback says whether its sign or its size
        misses, never the measured value.
    ValueError
        When ``slopes`` is not a sequence of at least 3 finite numbers (a wrong call of
        the checker, not a wrong prediction).

    Examples
    --------
    >>> check_ch6_predict_exponent(1.0, [0.93, 0.97, 1.02])
    Exercise 6.1: correct (your prediction is within 0.3 of the exponents of 3 seeds).
    """
    ex = "Exercise 6.1"
    measured = _measured_exponents(slopes)
    got = float(_number(ex, prediction, "your prediction: a number (the exponent a)",
                        "set the prediction to a number such as -1.5, 0 or 2, before the "
                        "sweep runs"))
    lo, hi, mean = measured.min(), measured.max(), measured.mean()
    if not lo - 0.3 <= got <= hi + 0.3:
        _fail(ex, f"your prediction against the exponents the sweep measured for "
                  f"{measured.size} seeds (within 0.3 of their range)",
              f"{got:g}: {_miss(got, mean)}",
              "Section 4 shows that Adam moves every weight by about its step, whatever "
              "the size of its gradient; count how many hidden weights a width c has and "
              "how their squared changes add up in the 2-norm")
    _passed(ex, f"your prediction is within 0.3 of the exponents of {measured.size} seeds")


def _hidden_relative_change(net, w0: dict, c: int) -> float:
    """``||W^T - W^0||_2 / ||W^0||_2`` over the ``c x c`` convolutions of ``net``."""
    d2 = w2 = 0.0
    for name, p in net.named_parameters():
        if p.ndim == 4 and p.shape[0] == c and p.shape[1] == c:
            d2 += float(((p.detach() - w0[name]) ** 2).sum())
            w2 += float((w0[name] ** 2).sum())
    return (d2 / w2) ** 0.5


def _sign_sweep_reference(u: torch.Tensor, y: torch.Tensor, n_steps: int) -> np.ndarray:
    """The relative hidden change of Exercise 6.5's sweep, by a loop written here.

    Sign descent ``w <- w - 10^-2 sign(grad)`` on ``1/2 ||f(u) - y||^2`` from the vanilla
    CNN of depth 3 (NTK parameterisation, seeded ``generator(seed)``); the weights are
    compared before and after.
    """
    out = np.zeros((len(SIGN_SWEEP_SEEDS), len(SIGN_SWEEP_WIDTHS)))  # (seeds, widths)
    for i, seed in enumerate(SIGN_SWEEP_SEEDS):
        for j, c in enumerate(SIGN_SWEEP_WIDTHS):
            net = build_vanilla_cnn(u.shape[0], c, depth=3,
                                    generator=torch.Generator().manual_seed(seed))
            net = net.to(dtype=u.dtype, device=u.device)
            w0 = {k: p.detach().clone() for k, p in net.named_parameters()}
            for _ in range(n_steps):
                grads = torch.autograd.grad(0.5 * ((net(u) - y) ** 2).sum(),
                                            list(net.parameters()))
                with torch.no_grad():
                    for p, g in zip(net.parameters(), grads):
                        p -= 1e-2 * torch.sign(g)
            out[i, j] = _hidden_relative_change(net, w0, c)
    return out


def check_ch6_sign_sweep(fn: Callable[[int, int], Any], like: Any, u: torch.Tensor,
                         y: torch.Tensor, n_steps: int) -> None:
    """Checker of Exercise 6.5: the vanilla CNN's width sweep with sign descent.

    Parameters
    ----------
    fn : callable
        ``fn(c, seed)``: trains ``build_vanilla_cnn(1, c, depth=3,
        generator=generator(seed))`` (NTK parameterisation) by sign descent,
        ``w <- w - 10^-2 sign(grad)`` on ``1/2 ||f(u) - y||^2``, for ``n_steps`` steps and
        returns ``||W^T - W^0||_2 / ||W^0||_2`` over its hidden ``c x c`` convolutions,
        a float.
    like : str
        The reader's explanation, one of ``"adam"``, ``"gd"``, ``"neither"``: which
        optimiser of Section 3 sign descent moves the weights like, and so shares its
        width exponent.
    u, y : torch.Tensor, shape (1, H, W)
        The network input and the noisy target of the sweep.
    n_steps : int
        Steps per run.

    Raises
    ------
    ExerciseFailed
        When a value of ``fn`` at widths 8 to 64 and seeds 0, 1, 2 differs (relative
        ``10^-6``) from a sign-descent loop written here, or when the explanation is not
        the one the update rules give.

    Notes
    -----
    At its first step Adam moves every weight by ``-eta g / (|g| + eps)``, about
    ``-eta sign(g)``, and later steps stay of that size while the gradient's sign holds:
    sign descent is Adam without its running averages, and moves the weights as Adam
    does, by the same amount whatever the gradient's size.  Gradient descent's step is
    proportional to the gradient, which shrinks with the width.

    Examples
    --------
    >>> g = torch.Generator().manual_seed(0)
    >>> u, y = torch.rand(1, 4, 4, generator=g), torch.rand(1, 4, 4, generator=g)
    >>> def fn(c, seed):
    ...     return float(_sign_sweep_reference(u, y, 2)[seed, SIGN_SWEEP_WIDTHS.index(c)])
    >>> check_ch6_sign_sweep(fn, "adam", u, y, 2)
    Exercise 6.5: correct (12 runs equal to an independent sign-descent loop; the explanation).
    """
    ex = "Exercise 6.5"
    _number(ex, n_steps, "n_steps: a whole number of steps", "pass the steps you ran",
            kinds=int)
    ref = _sign_sweep_reference(u, y, int(n_steps))  # (seeds, widths)
    for i, seed in enumerate(SIGN_SWEEP_SEEDS):
        for j, c in enumerate(SIGN_SWEEP_WIDTHS):
            got = float(_number(ex, _call(ex, fn, c, seed),
                                f"fn({c}, {seed}): a number (the relative change)",
                                "return a Python float, e.g. with .item()"))
            if not abs(got - ref[i, j]) <= 1e-6 * abs(ref[i, j]):
                _fail(ex, f"fn({c}, {seed}) against a sign-descent loop (relative 1e-6)",
                      f"{got:.4g}: {_miss(got, ref[i, j])}",
                      "build the network with generator(seed), step every weight by "
                      "-1e-2 * sign(its gradient) of 1/2 ||f(u) - y||^2, and take the "
                      "norms over the c x c convolutions only, all of them together")
    if like not in SIGN_SWEEP_CHOICES:
        _fail(ex, f"the explanation: one of {', '.join(map(repr, SIGN_SWEEP_CHOICES))}",
              repr(like), "name the optimiser whose weight changes sign descent shares")
    if like != "adam":
        slopes = loglog_slopes(SIGN_SWEEP_WIDTHS, ref)
        _fail(ex, "which optimiser of Section 3 sign descent moves the weights like",
              repr(like),
              f"compare your sweep's exponents ({', '.join(f'{s:.2f}' for s in slopes)} "
              "for the three seeds) with Section 3's, and Adam's first step "
              "(Section 4) with sign descent's")
    _passed(ex, "12 runs equal to an independent sign-descent loop; the explanation")
