"""Checkers of chapter 2, the neural tangent kernel: the arc-cosine kernel, the NTK entry
of two patches, the empirical NTK of an MLP, how the kernel and the weights move with the
width, and the kernel error with bigger patches."""
from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch

from ..kernels import arccos_kernel, extract_patches, ntk_closed_form
from ..networks import build_single_layer_cnn
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

__all__ = ["check_arccos_k1", "check_ntk_entry", "check_mlp_ntk", "check_error_slope",
           "check_weight_change_exponents", "check_patch_error"]


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
    """Checker of Exercise 2.3: the degree-1 arc-cosine kernel of two vectors.

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
    Exercise 2.3: correct (6 cases, including parallel, opposite and zero vectors).
    """
    ex = "Exercise 2.3"
    for x, y, label in _vector_pairs():
        got = _as_scalar_tensor(ex, _call(ex, fn, x.clone(), y.clone()))
        ref = arccos_kernel(x[None], y[None], 1)[0, 0]
        _compare(ex, got, ref, 1e-6, 1e-9,
                 f"case '{label}': clamp the cosine into [-1, 1] before arccos, and "
                 "return 0 when a vector is zero (no division by |x| = 0)")
    _passed(ex, "6 cases, including parallel, opposite and zero vectors")


def check_ntk_entry(fn: Callable[[torch.Tensor, torch.Tensor], Any]) -> None:
    """Checker of Exercise 2.4: the closed-form NTK entry of two patches.

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
    Exercise 2.4: correct (8 pairs of patches, gray and colour, equal to ntk_closed_form).
    """
    ex = "Exercise 2.4"
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
    """Checker of Exercise 2.5: the empirical NTK of a small MLP with torch.func.

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
    Exercise 2.5: correct (2 MLPs (tanh and two-layer ReLU), equal to J J^T within 1e-6).
    """
    ex = "Exercise 2.5"
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


def _seed_values(exercise: str, values: Any, what: str, n: int | None = None) -> list[float]:
    """The reader's per-seed numbers as floats, or feedback naming ``what`` was expected."""
    if isinstance(values, torch.Tensor):
        values = values.detach().cpu().reshape(-1).tolist()
    try:
        v = [float(x) for x in values]
    except (TypeError, ValueError):
        v = []
    wanted = f"{n}" if n is not None else "at least 3"
    if (isinstance(values, (str, bytes)) or len(v) < 3 or n is not None and len(v) != n
            or not all(math.isfinite(x) for x in v)):
        _fail(exercise, f"{what}: a list of {wanted} finite numbers, one per seed",
              f"{type(values).__name__} {values!r}"[:120],
              "pass one number per seed, e.g. a list or a 1-D array")
    return v


def check_error_slope(prediction: Any, slopes: Any) -> None:
    """Checker of Exercise 2.1: a predicted slope of the kernel error against the sweep.

    Parameters
    ----------
    prediction : float
        The reader's exponent ``a`` in ``||Theta_c - Theta||_F / ||Theta||_F ~ c^a``,
        written before the sweep ran.
    slopes : sequence of float
        What the sweep shows: one fitted log-log slope per seed
        (:func:`ntkutils.plotting.loglog_slopes`), at least 3.

    Raises
    ------
    ExerciseFailed
        Unless ``prediction`` lies within the seeds' slopes, widened by 0.05 on each
        side; the feedback says whether it is steeper or flatter than every seed, or of
        the wrong sign, and hints at the central-limit rate of an average of ``c``
        independent terms, without its value.

    Examples
    --------
    >>> check_error_slope(-0.5, [-0.53, -0.47, -0.58])
    Exercise 2.1: correct (your prediction lies within the 3 seeds' slopes, widened by 0.05).
    """
    ex = "Exercise 2.1"
    s = _seed_values(ex, slopes, "slopes (the sweep's fitted slope of each seed)")
    pred = _number(ex, prediction, "your prediction: a number (the exponent a)",
                   "set slope_prediction to a number, e.g. -2.0, before running the sweep")
    lo, hi, tol = min(s), max(s), 0.05
    hint = ("each entry of the empirical kernel is an average of c independent terms (one "
            "per hidden unit): how does the standard deviation of such an average shrink "
            "with c? The relative Frobenius error follows it")
    if pred > 0 or (pred == 0 and hi < 0):
        _fail(ex, f"your prediction against the {len(s)} seeds' fitted slopes",
              f"{pred:g}: the sign is wrong (the error shrinks as c grows)", hint)
    if pred < lo - tol:
        _fail(ex, f"your prediction against the {len(s)} seeds' fitted slopes",
              f"{pred:g}: steeper than every seed's slope (the error falls more slowly)",
              hint)
    if pred > hi + tol:
        _fail(ex, f"your prediction against the {len(s)} seeds' fitted slopes",
              f"{pred:g}: flatter than every seed's slope (the error falls faster)", hint)
    _passed(ex, f"your prediction lies within the {len(s)} seeds' slopes, widened by {tol:g}")


def _kernel_error(u: torch.Tensor, channels: int, seed: int, patch_size: int,
                  copies: bool = False) -> float:
    """``||Theta_c - Theta||_F / ||Theta||_F`` computed here, independently of the chapter.

    The empirical kernel of the network drawn with ``seed`` is built from its hidden
    features by the finite-width formula (Section 6.1), not by ``ntk_empirical``.  With
    ``copies``, every hidden unit is a copy of the one unit of the width-1 network drawn
    with ``seed`` (its hidden weights and its read-out weight).
    """
    net = build_single_layer_cnn(channels=1 if copies else channels, patch_size=patch_size,
                                 generator=torch.Generator().manual_seed(seed)).double()
    u = u.detach().cpu().double()
    P = extract_patches(u, patch_size)  # (n, d)
    d = P.shape[1]
    W = net.hidden.weight.detach().reshape(-1, d).expand(channels, d)  # (c, d)
    a = net.readout.weight.detach().reshape(-1).expand(channels)  # (c,)
    g = P @ W.T / d**0.5  # (n, c) pre-activations
    on = (g > 0).double()  # (n, c)
    K = (torch.relu(g) @ torch.relu(g).T + (P @ P.T / d) * ((on * a**2) @ on.T)) / channels
    ref = ntk_closed_form(u, patch_size)  # (n, n)
    return float((K - ref).norm() / ref.norm())


def check_patch_error(fn: Callable[[int, int], Any], copied_slope: Any,
                      u: torch.Tensor) -> None:
    """Checker of Exercise 2.6: the kernel error with 5 x 5 patches, and a thought experiment.

    Parameters
    ----------
    fn : callable
        ``fn(c, seed)`` returns ``||Theta_c - Theta||_F / ||Theta||_F`` for the
        single-hidden-layer CNN of width ``c`` with 5 x 5 patches drawn with
        ``generator(seed)``, against the closed form with 5 x 5 patches, on input ``u``.
    copied_slope : float
        The log-log slope of that error against ``c`` if every hidden unit of the
        width-``c`` network were a copy of one and the same unit (its hidden weights and
        read-out weight); within 0.05 of the checker's own sweep of such networks.
    u : torch.Tensor of shape (1, H, W)
        The network's input.

    Raises
    ------
    ExerciseFailed
        When ``fn`` differs from an independent computation of the error (relative
        1e-4, so float32 passes) at three widths and seeds, or ``copied_slope`` is off.

    Examples
    --------
    >>> u = torch.rand(1, 8, 8, generator=torch.Generator().manual_seed(0)).double()
    >>> check_patch_error(lambda c, s: _kernel_error(u, c, s, 5),
    ...                   _copied_slope(u), u)
    Exercise 2.6: correct (your errors at 3 widths equal an independent computation; the copied units' slope).
    """
    ex = "Exercise 2.6"
    if (not isinstance(u, torch.Tensor) or u.dim() != 3 or u.shape[0] != 1
            or not u.is_floating_point()):
        _fail(ex, "u: the input image, a float tensor of shape (1, H, W)",
              f"{type(u).__name__} {tuple(u.shape) if isinstance(u, torch.Tensor) else ''}",
              "pass the chapter's u")
    for c, seed in [(16, 1), (64, 2), (256, 3)]:
        got = _number(ex, _call(ex, fn, c, seed), f"fn({c}, {seed}): a number",
                      "return the relative error as a Python float (.item())")
        ref = _kernel_error(u, c, seed, 5)
        if not abs(got - ref) <= 1e-4 * abs(ref):
            _fail(ex, f"your error at width {c}, seed {seed}, against an independent "
                  "computation with 5 x 5 patches", f"{got:.3g}: {_miss(got, ref)}",
                  "use patch_size=5 in both build_single_layer_cnn and ntk_closed_form, "
                  "generator(seed) for the weights, and the relative Frobenius norm")
    slope = float(_number(ex, copied_slope, "copied_slope: a number (a log-log slope)",
                          "set copied_slope to a Python float"))
    ref = _copied_slope(u)
    hint = ("each kernel entry is (1/c) times a sum of c per-unit terms; with copies "
            "those terms are all equal: what is their average, and does it change with c?")
    if slope < ref - 0.05:
        _fail(ex, "the slope of the error of networks whose units are copies of one unit",
              f"{slope:g}: too steep", hint)
    if slope > ref + 0.05:
        _fail(ex, "the slope of the error of networks whose units are copies of one unit",
              f"{slope:g}: too large", hint)
    _passed(ex, "your errors at 3 widths equal an independent computation; the copied "
            "units' slope")


def _copied_slope(u: torch.Tensor) -> float:
    """The log-log slope of the 5 x 5 error over widths 16, 64, 256 with copied units."""
    widths = [16, 64, 256]
    errors = [_kernel_error(u, c, 7, 5, copies=True) for c in widths]
    x = torch.tensor(widths, dtype=torch.float64).log()
    e = torch.tensor(errors, dtype=torch.float64).log()
    x, e = x - x.mean(), e - e.mean()
    return float((x * e).sum() / (x * x).sum())


def check_weight_change_exponents(answer: Any) -> None:
    """Checker of Exercise 2.2: how ``||w^T - w^0||_2`` scales with the width.

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
    Exercise 2.2: correct (both exponents).
    """
    ex = "Exercise 2.2"
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
