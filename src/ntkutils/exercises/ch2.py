"""Checkers of chapter 2, the neural tangent kernel: the arc-cosine kernel, the NTK entry
of two patches, the empirical NTK of an MLP, and how the kernel and the weights move with the
width."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from ..kernels import arccos_kernel, extract_patches, ntk_closed_form
from ._feedback import (
    _as_scalar_tensor,
    _call,
    _compare,
    _fail,
    _miss,
    _pair,
    _passed,
    check_value,
)

__all__ = ["check_arccos_k1", "check_ntk_entry", "check_mlp_ntk", "check_error_slope",
           "check_weight_change_exponents"]


def _vector_pairs() -> list[tuple[torch.Tensor, torch.Tensor, str]]:
    """Pairs of vectors covering the cases of the arc-cosine kernels (float64)."""
    g = torch.Generator().manual_seed(2021)
    x = torch.randn(9, generator=g, dtype=torch.float64)
    y = torch.randn(9, generator=g, dtype=torch.float64)
    e1 = torch.zeros(9, dtype=torch.float64)
    e1[0] = 1.0
    e2 = torch.zeros(9, dtype=torch.float64)
    e2[1] = 2.0
    return [
        (x, y, "two random vectors"),
        (x, x.clone(), "a vector with itself"),
        (x, 3.0 * x, "parallel vectors (phi = 0)"),
        (x, -0.5 * x, "opposite vectors (phi = pi)"),
        (e1, e2, "orthogonal vectors (phi = pi/2)"),
        (x, torch.zeros(9, dtype=torch.float64), "a zero vector (a zero patch)"),
    ]


def check_arccos_k1(fn: Callable[[torch.Tensor, torch.Tensor], Any]) -> None:
    """Checker of Exercise 2.1: the degree-1 arc-cosine kernel of two vectors.

    Parameters
    ----------
    fn : callable
        ``fn(x, y)`` for 1-D float64 tensors ``x, y`` of the same length, returning
        ``k_1(x, y) = |x| |y| (sin phi + (pi - phi) cos phi) / pi`` (0 for a zero vector).

    Raises
    ------
    ExerciseFailed
        On the first case (random, parallel, opposite, orthogonal, zero) that differs from
        :func:`ntkutils.kernels.arccos_kernel`.

    Examples
    --------
    >>> from ntkutils.kernels import arccos_kernel
    >>> check_arccos_k1(lambda x, y: arccos_kernel(x[None], y[None], 1)[0, 0])
    Exercise 2.1: correct (6 cases, including parallel, opposite and zero vectors).
    """
    ex = "Exercise 2.1"
    for x, y, label in _vector_pairs():
        got = _as_scalar_tensor(ex, _call(ex, fn, x.clone(), y.clone()))
        ref = arccos_kernel(x[None], y[None], 1)[0, 0]
        _compare(ex, got, ref, 1e-6, 1e-9,
                 f"case '{label}': clamp the cosine into [-1, 1] before arccos, and "
                 "return 0 when a vector is zero (no division by |x| = 0)")
    _passed(ex, "6 cases, including parallel, opposite and zero vectors")


def check_ntk_entry(fn: Callable[[torch.Tensor, torch.Tensor], Any]) -> None:
    """Checker of Exercise 2.2: the closed-form NTK entry of two patches.

    Parameters
    ----------
    fn : callable
        ``fn(p, q)`` for two flattened patches (1-D float64 tensors of length ``d``),
        returning ``Theta(p, q) = |p| |q| (sin phi + 2 (pi - phi) cos phi) / (2 pi d)``
        (0 when a patch is zero).

    Raises
    ------
    ExerciseFailed
        On the first pair of patches whose value differs from the entry of
        :func:`ntkutils.kernels.ntk_closed_form` of the image they come from.

    Notes
    -----
    The cases are patches of a gray 6 x 6 image with a zero corner (so one patch is zero,
    ``d = 9``) and of a colour 5 x 5 image (``d = 27``).

    Examples
    --------
    >>> from ntkutils.kernels import arccos_kernel
    >>> def entry(p, q):
    ...     k0 = arccos_kernel(p[None], q[None], 0)[0, 0]
    ...     k1 = arccos_kernel(p[None], q[None], 1)[0, 0]
    ...     return (k1 + (p @ q) * k0) / (2 * p.numel())
    >>> check_ntk_entry(entry)
    Exercise 2.2: correct (8 pairs of patches, gray and colour, equal to ntk_closed_form).
    """
    ex = "Exercise 2.2"
    g = torch.Generator().manual_seed(2)
    gray = torch.rand(1, 6, 6, generator=g, dtype=torch.float64)
    gray[:, :2, :2] = 0.0  # pixel 0's 3 x 3 patch is all zeros
    colour = torch.rand(3, 5, 5, generator=g, dtype=torch.float64) - 0.3
    cases = [(gray, [(0, 0), (0, 14), (7, 7), (7, 28), (35, 20)]),
             (colour, [(12, 12), (0, 24), (6, 18)])]
    for u, pairs in cases:
        P = extract_patches(u, 3)  # (n, d)
        K = ntk_closed_form(u, 3)  # (n, n)
        for i, j in pairs:
            got = _as_scalar_tensor(ex, _call(ex, fn, P[i].clone(), P[j].clone()))
            _compare(ex, got, K[i, j], 1e-6, 1e-9,
                     f"patches {i} and {j} of a {tuple(u.shape)} image (d = {P.shape[1]}): "
                     "did you include both terms, the factor 2 on (pi - phi) cos phi, "
                     "and the 1 / d of the d^(-1/2) scaling?")
    _passed(ex, "8 pairs of patches, gray and colour, equal to ntk_closed_form")


def _mlp(sizes: list[int], act: type[torch.nn.Module], seed: int) -> torch.nn.Module:
    """A small seeded MLP (NTK parameterisation not needed: any weights will do)."""
    g = torch.Generator().manual_seed(seed)
    layers: list[torch.nn.Module] = []
    for k, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        lin = torch.nn.Linear(a, b, dtype=torch.float64)
        with torch.no_grad():
            lin.weight.copy_(torch.randn(b, a, generator=g, dtype=torch.float64) / a**0.5)
            lin.bias.copy_(0.1 * torch.randn(b, generator=g, dtype=torch.float64))
        layers.append(lin)
        if k < len(sizes) - 2:
            layers.append(act())
    return torch.nn.Sequential(*layers)


def _ntk_by_autograd(model: torch.nn.Module, X: torch.Tensor) -> torch.Tensor:
    """``J J^T`` with one ``torch.autograd.grad`` call per output (no torch.func)."""
    params = [p for p in model.parameters() if p.requires_grad]
    out = model(X).reshape(-1)  # (n,)
    rows = []
    for i in range(out.numel()):
        grads = torch.autograd.grad(out[i], params, retain_graph=True)
        rows.append(torch.cat([gr.reshape(-1) for gr in grads]))  # (P,)
    J = torch.stack(rows)  # (n, P)
    return (J @ J.T).detach()


def check_mlp_ntk(fn: Callable[[torch.nn.Module, torch.Tensor], Any]) -> None:
    """Checker of Exercise 2.3: the empirical NTK of a small MLP with torch.func.

    Parameters
    ----------
    fn : callable
        ``fn(model, X)`` for an MLP ``model`` mapping ``X`` of shape ``(n, p)`` to
        ``(n, 1)``, returning the ``(n, n)`` kernel ``J J^T`` with
        ``J = d model(X)[:, 0] / d (all parameters)``.

    Raises
    ------
    ExerciseFailed
        When the result differs from ``J J^T`` built row by row with
        :func:`torch.autograd.grad` (an independent computation).

    Examples
    --------
    >>> check_mlp_ntk(_ntk_by_autograd)
    Exercise 2.3: correct (2 MLPs (tanh and two-layer ReLU), equal to J J^T within 1e-6).
    """
    ex = "Exercise 2.3"
    g = torch.Generator().manual_seed(3)
    cases = [(_mlp([3, 16, 1], torch.nn.Tanh, 0),
              torch.randn(5, 3, generator=g, dtype=torch.float64)),
             (_mlp([4, 12, 12, 1], torch.nn.ReLU, 1),
              torch.randn(7, 4, generator=g, dtype=torch.float64))]
    for model, X in cases:
        ref = _ntk_by_autograd(model, X)
        got = _call(ex, fn, model, X.clone())
        _compare(ex, got, ref, 1e-6, 1e-9,
                 "J has one row per input (n rows) and one column per weight: flatten "
                 "every parameter's Jacobian to (n, -1), concatenate them, then J @ J.T")
    _passed(ex, "2 MLPs (tanh and two-layer ReLU), equal to J J^T within 1e-6")


def check_error_slope(answer: Any) -> None:
    """Checker of Exercise 2.4: the log-log slope of the empirical kernel's error.

    Parameters
    ----------
    answer : float
        The exponent ``a`` in ``||Theta_c - Theta||_F / ||Theta||_F ~ c^a``.

    Raises
    ------
    ExerciseFailed
        Unless ``answer`` is ``-1/2`` (within 0.02), the central-limit rate of an average
        of ``c`` independent terms.

    Examples
    --------
    >>> check_error_slope(-0.5)
    Exercise 2.4: correct (within 0.02).
    """
    check_value("Exercise 2.4", answer, -0.5, rtol=0.0, atol=0.02,
                hint="each entry of the empirical kernel is an average of c independent "
                     "terms (one per hidden unit): how does the standard deviation of an "
                     "average of c iid terms shrink with c?")


def check_weight_change_exponents(answer: Any) -> None:
    """Checker of Exercise 2.5: how ``||w^T - w^0||_2`` scales with the width.

    Parameters
    ----------
    answer : tuple of float
        ``(a_ntk, a_standard)``: the exponents of ``c`` in the total weight change after a
        fixed number of gradient-descent steps, in the NTK parameterisation with a fixed
        step, and in the standard parameterisation with a step proportional to ``1 / c``.

    Raises
    ------
    ExerciseFailed
        Unless the answer is ``(0, -1/2)`` within 0.02 each.

    Notes
    -----
    NTK parameterisation: each of the ``c`` hidden units' weights (and each read-out
    weight) gets a gradient of size ``c^{-1/2}``, so the total 2-norm is
    ``(c * c^{-1})^{1/2} = O(1)``.  Standard parameterisation: the same network written
    with read-out weights ``c^{-1/2} a`` and a step ``eta / c`` moves those weights by
    ``c^{-1/2}`` times the NTK-parameterisation change, ``O(c^{-1/2})``, and the hidden
    weights by ``O(c^{-1})``.

    Examples
    --------
    >>> check_weight_change_exponents((0.0, -0.5))
    Exercise 2.5: correct (both exponents).
    """
    ex = "Exercise 2.5"
    _pair(ex, answer, "a tuple of two numbers (a_ntk, a_standard)",
          "answer = (exponent in the NTK parameterisation, exponent in the standard one)",
          kinds=(int, float), show="{value!r}")
    a_ntk, a_std = (float(a) for a in answer)
    if abs(a_ntk - 0.0) > 0.02:
        _fail(ex, "the exponent a_ntk (NTK parameterisation)",
              f"{a_ntk:g}: {_miss(a_ntk, 0.0)}",
              "c hidden units each move by about c^(-1/2): add up c squares")
    if abs(a_std + 0.5) > 0.02:
        _fail(ex, "the exponent a_standard (standard parameterisation)",
              f"{a_std:g}: {_miss(a_std, -0.5)}",
              "the standard read-out weight is c^(-1/2) times the NTK one, and so is "
              "its change")
    _passed(ex, "both exponents")
