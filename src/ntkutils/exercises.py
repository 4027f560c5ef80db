"""Checkers for the book's exercises.

Each chapter's exercises call a checker from this module with the reader's answer.  A
checker compares the answer with an independent computation from the package and either
prints a one-line confirmation or raises :class:`ExerciseFailed` with feedback a student
can act on: what was expected, what came back, and a hint.  Checkers never return silently
on a wrong answer.

Chapter sections below are added by the chapters that use them; the building blocks come
first.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

__all__ = ["ExerciseFailed", "check_value"]


class ExerciseFailed(AssertionError):
    """A wrong answer to an exercise, with feedback in the message.

    It subclasses ``AssertionError`` so test runners report it as a failed check, but its
    message always says what was expected, what came back and what to try.
    """


def _fail(exercise: str, checked: str, got: str, hint: str) -> None:
    """Raise the feedback: what was checked, what came back and how it misses, a hint.

    ``checked`` names the quantity (or the type expected), never the right value: the
    feedback must not give the answer away.
    """
    raise ExerciseFailed(
        f"{exercise}: not yet.\n  checked:  {checked}\n  got:      {got}\n  hint:     {hint}"
    )


def _miss(got: float, expected: float) -> str:
    """How a wrong number misses, without the right one: its sign or its size.

    >>> _miss(-2.0, 3.0), _miss(250.0, 3.0), _miss(3.5, 3.0), _miss(0.2, 0.0)
    ('the sign is wrong', 'about 10^2 times too large', 'too large', 'too large')
    """
    if got != 0 and expected != 0 and (got > 0) != (expected > 0):
        return "the sign is wrong"
    if got != 0 and expected != 0:
        power = round(math.log10(abs(got / expected)))
        if power != 0:
            size = "large" if power > 0 else "small"
            return f"about 10^{abs(power)} times too {size}"
    return "too large" if got > expected else "too small"


def _passed(exercise: str, detail: str) -> None:
    print(f"{exercise}: correct. {detail}".rstrip())


def check_value(
    exercise: str, got: Any, expected: float, *, rtol: float = 1e-2, atol: float = 0.0,
    hint: str = "",
) -> None:
    """Check a scalar answer against the expected value.

    Parameters
    ----------
    exercise : str
        The exercise's label, e.g. ``"Exercise 1.2"``.
    got : float
        The reader's answer.
    expected : float
        The value computed independently by the package.
    rtol, atol : float
        Relative and absolute tolerance.
    hint : str
        What to try when the answer is wrong.

    Raises
    ------
    ExerciseFailed
        With the expected value, the answer and the hint, when they differ.

    Examples
    --------
    >>> check_value("Exercise 0.1", 3.1416, 3.14159)
    Exercise 0.1: correct. 3.142 (expected 3.142)
    """
    if isinstance(got, torch.Tensor) and got.numel() == 1:
        got = got.item()
    if isinstance(got, bool) or not isinstance(got, (int, float)):
        _fail(exercise, "a number (a Python float)",
              f"{type(got).__name__} {got!r}", hint or "return a Python float")
    if not abs(got - expected) <= atol + rtol * abs(expected):
        _fail(exercise, f"the value, within {rtol:.0%}", f"{got:.4g}: {_miss(got, expected)}",
              hint or "re-read the formula in the text above")
    _passed(exercise, f"{got:.4g} (expected {expected:.4g})")


def _compare(
    exercise: str, got: Any, expected: torch.Tensor, rtol: float, atol: float, hint: str
) -> str:
    """Raise ExerciseFailed on the first difference; else describe the match."""
    if not isinstance(got, torch.Tensor):
        _fail(exercise, f"a torch.Tensor of shape {tuple(expected.shape)}",
              f"{type(got).__name__}", hint or "return a tensor, not a list or array")
    if tuple(got.shape) != tuple(expected.shape):
        _fail(exercise, f"shape {tuple(expected.shape)}", f"shape {tuple(got.shape)}",
              hint or "check which axis you reduced or reshaped")
    if not got.is_floating_point():
        _fail(exercise, "a floating-point tensor", f"dtype {got.dtype}",
              hint or "convert with .double()")
    if not bool(torch.isfinite(got).all()):
        _fail(exercise, "finite values", "NaN or inf entries",
              hint or "look for a division by zero (a zero patch?) or arccos of a value "
              "just outside [-1, 1]")
    got64 = got.detach().cpu().double()
    ref = expected.detach().cpu().double()
    err = float((got64 - ref).abs().max())
    scale = float(ref.abs().max())
    if err > atol + rtol * scale:
        idx = int((got64 - ref).abs().argmax())
        mine, right = float(got64.flatten()[idx]), float(ref.flatten()[idx])
        _fail(exercise, f"every value, within {rtol:g} of the largest entry",
              f"largest error {err:.3g} at flat index {idx}, where yours "
              f"({mine:.4g}) is {_miss(mine, right)}",
              hint or "compare a small case by hand")
    return f"shape {tuple(got.shape)}, largest error {err:.2g}"


def _as_scalar_tensor(exercise: str, value: Any) -> torch.Tensor:
    """The reader's scalar answer as a 0-dim float64 tensor (or feedback)."""
    if isinstance(value, torch.Tensor):
        return value.detach().double()
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        _fail(exercise, "a number (a Python float or a 0-dim tensor)",
              f"{type(value).__name__}", "return the kernel value, e.g. a torch.Tensor "
              "of shape ()")
    return torch.tensor(float(value), dtype=torch.float64)


def _call(exercise: str, fn: Callable[..., Any], *args: Any) -> Any:
    """Call the reader's function, turning NotImplementedError into feedback."""
    if not callable(fn):
        _fail(exercise, "a function", f"{type(fn).__name__}",
              "pass the function itself, without calling it")
    try:
        return fn(*args)
    except NotImplementedError:
        _fail(exercise, "your implementation", "NotImplementedError",
              "replace the `raise NotImplementedError` line with your code")


def _ch2_vectors() -> list[tuple[torch.Tensor, torch.Tensor, str]]:
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
    Exercise 2.1: correct. 6 cases, including parallel, opposite and zero vectors
    """
    from .kernels import arccos_kernel

    ex = "Exercise 2.1"
    for x, y, label in _ch2_vectors():
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
    Exercise 2.2: correct. 8 pairs of patches, gray and colour, equal to ntk_closed_form
    """
    from .kernels import extract_patches, ntk_closed_form

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
    Exercise 2.3: correct. 2 MLPs (tanh and two-layer ReLU), equal to J J^T within 1e-6
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
    Exercise 2.4: correct. -0.5 (expected -0.5)
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
    Exercise 2.5: correct. NTK parameterisation c^0, standard parameterisation c^-0.5
    """
    ex = "Exercise 2.5"
    if (not isinstance(answer, (tuple, list)) or len(answer) != 2
            or not all(isinstance(a, (int, float)) and not isinstance(a, bool)
                       for a in answer)):
        _fail(ex, "a tuple of two numbers (a_ntk, a_standard)", f"{answer!r}",
              "answer = (exponent in the NTK parameterisation, exponent in the "
              "standard one)")
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
    _passed(ex, "NTK parameterisation c^0, standard parameterisation c^-0.5")


__all__ += ["check_arccos_k1", "check_ntk_entry", "check_mlp_ntk", "check_error_slope",
            "check_weight_change_exponents"]


# =========================================================================================
# Chapter 3: the NTK is a non-local filter
# =========================================================================================
import math  # noqa: E402  (used by the chapter 3 checkers)


def _ch3_entry_sign(phi: float) -> float:
    """Sign-carrying value of the NTK entry of two unit vectors at angle ``phi`` (radians).

    Computed from :func:`ntkutils.kernels.arccos_kernel` (not from the closed formula), so
    that the checker of Exercise 3.1 is an independent computation.
    """
    from .kernels import arccos_kernel

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
    of ``J``, positive up to ``phi_0`` (about 113 degrees), negative between ``phi_0`` and
    180 degrees, and 0 at 180 degrees.

    Examples
    --------
    >>> check_ch3_sign_change_angle(113.2)
    Exercise 3.1: correct. 113.2 (expected 113.2)
    """
    lo, hi = math.pi / 2, 0.99 * math.pi  # J > 0 at 90 degrees, J < 0 just below 180
    for _ in range(60):
        mid = (lo + hi) / 2
        if _ch3_entry_sign(mid) > 0:
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
    Exercise 3.2: correct. 2 permutations of a 6 x 6 image's 36 patches
    """
    from .kernels import arccos_kernel, extract_patches, ntk_closed_form

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
    Exercise 3.3: correct. 0.1768 (expected 0.1764)
    """
    from .kernels import ntk_closed_form

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
    Exercise 3.4: correct. 2 step sizes, 5 steps each, equal to the trace of the filter
    """
    from .kernels import ntk_closed_form

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


__all__ += ["check_ch3_sign_change_angle", "check_ch3_permuted_kernel",
            "check_ch3_noise_background", "check_ch3_degrees_of_freedom"]


# =========================================================================================
# Chapter 1: the deep image prior
# =========================================================================================
def _ch1_int(exercise: str, value: Any, what: str) -> int:
    """The reader's integer answer (int, integral float or 1-element tensor) or feedback."""
    if isinstance(value, torch.Tensor) and value.numel() == 1:
        value = value.item()
    if hasattr(value, "item") and not isinstance(value, (int, float)):
        value = value.item()  # a NumPy scalar
    if isinstance(value, bool) or not isinstance(value, (int, float)) \
            or float(value) != int(value):
        _fail(exercise, f"{what}, an integer", f"{type(value).__name__} {value!r}",
              "return a Python int")
    return int(value)


def check_ch1_noisy_psnr(fn: Callable[[float], Any]) -> None:
    """Exercise 1.1: the PSNR of a noisy image predicted from ``sigma`` alone.

    Parameters
    ----------
    fn : callable
        ``fn(sigma) -> float``, the predicted PSNR in dB of ``y = x + n`` with
        ``n ~ N(0, sigma^2 I)`` (``sigma`` on the [0, 1] scale).

    Raises
    ------
    ExerciseFailed
        When a prediction is off by more than 0.1 dB from the measured PSNR.

    Notes
    -----
    The reference is a measurement, not the formula: the package's
    :func:`ntkutils.images.psnr` of a simulated noisy 256 x 256 image (seeded), whose
    squared error averages ``sigma^2`` over 65,536 pixels to within about 1 %, so it
    matches ``10 log10(1 / sigma^2)`` to a few hundredths of a dB.

    Examples
    --------
    >>> import math
    >>> check_ch1_noisy_psnr(lambda sigma: -20 * math.log10(sigma))
    Exercise 1.1: correct. 4 noise levels, each within 0.1 dB of the measured PSNR
    """
    from .images import add_noise, psnr

    ex = "Exercise 1.1"
    x = torch.full((1, 256, 256), 0.5, dtype=torch.float64)
    for k, level in enumerate((5, 15, 25, 50)):
        sigma = level / 255
        y = add_noise(x, sigma, generator=torch.Generator().manual_seed(100 + k))
        expected = psnr(y, x)
        got = _call(ex, fn, sigma)
        if isinstance(got, torch.Tensor) and got.numel() == 1:
            got = got.item()
        if isinstance(got, bool) or not isinstance(got, (int, float)):
            _fail(ex, "a number (the PSNR in dB)", f"{type(got).__name__} {got!r}",
                  "return a Python float")
        if not abs(got - expected) <= 0.1:
            _fail(ex, f"the PSNR of y for sigma = {level}/255, within 0.1 dB of the "
                  "measured one", f"{got:.4g}: {_miss(got, expected)}",
                  "the expected MSE of y is sigma^2; PSNR = 10 log10(1 / MSE) for "
                  "images in [0, 1]")
    _passed(ex, "4 noise levels, each within 0.1 dB of the measured PSNR")


def check_ch1_weight_count(fn: Callable[[int, int, int, int], Any]) -> None:
    """Exercise 1.2: the number of weights of the vanilla CNN, counted by hand.

    Parameters
    ----------
    fn : callable
        ``fn(C, c, depth, k) -> int``, the weight count of
        ``build_vanilla_cnn(C, c, depth, k)``.

    Raises
    ------
    ExerciseFailed
        On the first case whose count differs from the built network's.

    Notes
    -----
    The reference builds each network and counts its trainable scalars with
    :func:`ntkutils.networks.count_parameters`; the closed form is
    ``C c k^2 + (depth - 1) c^2 k^2 + c C``.

    Examples
    --------
    >>> check_ch1_weight_count(
    ...     lambda C, c, L, k: C * c * k * k + (L - 1) * c * c * k * k + c * C)
    Exercise 1.2: correct. 5 networks, every count exact
    """
    from .networks import build_vanilla_cnn, count_parameters

    ex = "Exercise 1.2"
    cases = [(1, 64, 3, 3), (1, 8, 1, 3), (3, 16, 2, 5), (3, 32, 5, 3), (1, 128, 3, 3)]
    for C, c, depth, k in cases:
        net = build_vanilla_cnn(C, c, depth, k, generator=torch.Generator().manual_seed(0))
        expected = count_parameters(net)
        got = _ch1_int(ex, _call(ex, fn, C, c, depth, k), "a weight count")
        if got != expected:
            _fail(ex, f"the number of weights for C={C}, c={c}, depth={depth}, k={k}",
                  f"{got}: {_miss(got, expected)}",
                  "count each convolution: c_in * c_out * k * k; the first layer has "
                  "c_in = C, the others c_in = c, and the 1 x 1 readout has c * C; "
                  "no biases")
    _passed(ex, f"{len(cases)} networks, every count exact")


def _ch1_patience_reference(steps: list[int], scores: list[float],
                            patience: int) -> tuple[int, int]:
    """Index-based patience rule: the best index so far and the first stale run."""
    best = 0
    for i in range(1, len(scores)):
        if scores[i] > scores[best]:
            best = i
        elif i - _ch1_last_improvement(scores, i) >= patience:
            return steps[best], steps[i]
    return steps[best], steps[-1]


def _ch1_last_improvement(scores: list[float], i: int) -> int:
    """Index of the last record up to ``i`` that set a new strict maximum."""
    last, running = 0, scores[0]
    for j in range(1, i + 1):
        if scores[j] > running:
            last, running = j, scores[j]
    return last


def check_ch1_patience_stop(fn: Callable[[Any, Any, int], Any]) -> None:
    """Exercise 1.3: early stopping with patience on a score curve.

    Parameters
    ----------
    fn : callable
        ``fn(steps, scores, patience) -> (best_step, stop_step)``: keep the step with
        the best score so far (strictly larger counts as better); stop at the first
        record that makes ``patience`` records in a row without improvement; the stop
        step is the last step if that never happens.

    Raises
    ------
    ExerciseFailed
        Naming the curve and the patience of the first case that differs.

    Notes
    -----
    The cases cover a single peak, a monotone rise (never stops), ties (a tie is not
    an improvement), a second higher peak hidden behind a dip, and tensor inputs as
    :func:`ntkutils.training.fit` returns them.

    Examples
    --------
    >>> def rule(steps, scores, patience):
    ...     best, wait = 0, 0
    ...     for i in range(1, len(scores)):
    ...         if scores[i] > scores[best]:
    ...             best, wait = i, 0
    ...         else:
    ...             wait += 1
    ...             if wait == patience:
    ...                 return int(steps[best]), int(steps[i])
    ...     return int(steps[best]), int(steps[-1])
    >>> check_ch1_patience_stop(rule)
    Exercise 1.3: correct. 7 cases
    """
    ex = "Exercise 1.3"
    peak_t = list(range(0, 205, 5))
    peak = [-((t - 60) / 50.0) ** 2 for t in peak_t]
    bumpy = [1.0, 3.0, 2.0, 2.5, 2.0, 4.0, 1.0, 1.0, 1.0]
    cases = [
        ("a single peak at t = 60", peak_t, peak, 5),
        ("a monotone rise", list(range(0, 50, 10)), [1.0, 2.0, 3.0, 4.0, 5.0], 2),
        ("a plateau (ties are not improvements)", list(range(6)),
         [1.0, 2.0, 2.0, 2.0, 2.0, 1.0], 3),
        ("a dip before a higher peak, short patience", list(range(9)), bumpy, 2),
        ("a dip before a higher peak, long patience", list(range(9)), bumpy, 4),
        ("patience longer than the curve", list(range(9)), bumpy, 100),
        ("tensors as fit() records them", torch.arange(0, 205, 5),
         torch.tensor(peak, dtype=torch.float64), 8),
    ]
    for name, steps, scores, patience in cases:
        s_list = [int(v) for v in steps]
        v_list = [float(v) for v in scores]
        expected = _ch1_patience_reference(s_list, v_list, patience)
        got = _call(ex, fn, steps, scores, patience)
        if not isinstance(got, (tuple, list)) or len(got) != 2:
            _fail(ex, "a pair (best_step, stop_step)", f"{type(got).__name__} {got!r}",
                  "return two ints: the step kept and the step where training stops")
        got = (_ch1_int(ex, got[0], "best_step"), _ch1_int(ex, got[1], "stop_step"))
        if got != expected:
            wrong = [f"{label} {'too early' if mine < right else 'too late'}"
                     for label, mine, right in zip(("best_step", "stop_step"), got,
                                                   expected) if mine != right]
            _fail(ex, f"(best_step, stop_step) for {name}, patience {patience}",
                  f"{got}: {', '.join(wrong)}",
                  "count records since the last strict improvement; stop when that "
                  "count reaches patience; return steps, not indices")
    _passed(ex, f"{len(cases)} cases")


def check_ch1_discrepancy_stop(fn: Callable[[Any, Any, int, float], Any]) -> None:
    """Exercise 1.4: the discrepancy principle on a recorded loss curve.

    Parameters
    ----------
    fn : callable
        ``fn(steps, loss, n_values, sigma) -> int``: the first recorded step with
        ``2 * loss <= n_values * sigma**2``, where ``loss = 1/2 ||z^t - y||^2``; the
        last step when the loss never gets there.

    Raises
    ------
    ExerciseFailed
        On the first trajectory whose stopping step differs.

    Notes
    -----
    The reference is :func:`ntkutils.filters.discrepancy_step`, which reads the
    outputs ``z^t`` themselves (``||z^t - y||^2 <= d sigma^2``, ``d = C H W``); the
    reader's function sees only the losses, as a training loop would.

    Examples
    --------
    >>> def rule(steps, loss, n_values, sigma):
    ...     for t, v in zip(steps, loss):
    ...         if 2 * float(v) <= n_values * sigma**2:
    ...             return int(t)
    ...     return int(steps[-1])
    >>> check_ch1_discrepancy_stop(rule)
    Exercise 1.4: correct. 4 trajectories
    """
    from .filters import discrepancy_step

    ex = "Exercise 1.4"
    g = torch.Generator().manual_seed(14)
    y = torch.rand(1, 12, 12, generator=g, dtype=torch.float64)  # (C, H, W)
    wiggle = torch.randn(1, 12, 12, generator=g, dtype=torch.float64)
    rms = float(y.pow(2).mean().sqrt())
    cases = [  # name, steps, residual fraction left at each step, sigma
        ("steps 0, 1, 2, ...", torch.arange(30), 0.8, 0.3 * rms),
        ("steps 0, 5, 10, ... (recorded every 5)", torch.arange(0, 150, 5), 0.97,
         0.2 * rms),
        ("a loss that never reaches the noise level", torch.arange(0, 40, 2), 0.99,
         0.05 * rms),
        ("a loss below the noise level from the start", torch.arange(0, 20), 0.9,
         1.5 * rms),
    ]
    for name, steps, rate, sigma in cases:
        left = rate ** steps.double()  # (T,)
        z = y[None] * (1 - left[:, None, None, None]) \
            + 0.01 * left[:, None, None, None] * wiggle[None]  # (T, C, H, W)
        loss = 0.5 * (z - y[None]).pow(2).flatten(1).sum(1)  # (T,)
        expected = discrepancy_step(y, z, sigma, steps)
        got = _ch1_int(ex, _call(ex, fn, steps.clone(), loss.clone(), y.numel(), sigma),
                       "a step")
        if got != expected:
            _fail(ex, f"the discrepancy step for {name}",
                  f"{got}: {'too early' if got < expected else 'too late'}",
                  "loss is 1/2 ||z - y||^2, so compare 2 * loss with n_values * "
                  "sigma**2; return the step, not the index; the last step if the "
                  "loss never gets there")
    _passed(ex, f"{len(cases)} trajectories")


__all__ += ["check_ch1_noisy_psnr", "check_ch1_weight_count", "check_ch1_patience_stop",
            "check_ch1_discrepancy_stop"]


# =========================================================================================
# Chapter 4: training is twicing
# =========================================================================================
def _ch4_int(exercise: str, value: Any, what: str) -> int:
    """The reader's answer as a Python int (or feedback)."""
    if isinstance(value, torch.Tensor) and value.numel() == 1 \
            and not value.is_floating_point():
        value = int(value.item())
    if isinstance(value, bool) or not isinstance(value, int):
        _fail(exercise, f"{what} as a Python int", f"{type(value).__name__} {value!r}",
              "return int(...) of the step, not an index, a float or a tensor")
    return value


def _ch4_kernel(n: int, seed: int) -> torch.Tensor:
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
    Exercise 4.1: correct. k = 0, 1, 2, 3, 10 on two filters; k = 2 is (2W - W^2) y
    """
    ex = "Exercise 4.1"
    g = torch.Generator().manual_seed(41)
    for n, seed in ((6, 0), (9, 1)):
        K = _ch4_kernel(n, seed)
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
    _passed(ex, "k = 0, 1, 2, 3, 10 on two filters; k = 2 is (2W - W^2) y")


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
    Exercise 4.2: correct. 6 cases, from one step to thousands
    """
    ex = "Exercise 4.2"
    cases = [(1.0, 1.0, 0.5), (0.1, 1.0, 0.9), (0.01, 1.0, 0.6), (3e-3, 1.0, 0.99),
             (2.0, 0.25, 0.95), (40.0, 1e-3, 0.3)]
    for lam, lr, fraction in cases:
        t, left = 0, 1.0
        while 1.0 - left < fraction:  # count the steps: the independent reference
            left *= 1.0 - lr * lam
            t += 1
        got = _ch4_int(ex, _call(ex, fn, lam, lr, fraction), "the number of steps")
        if got != t:
            _fail(ex, f"the number of steps for lam = {lam:g}, lr = {lr:g}, "
                  f"fraction = {fraction:g}", f"{got}: {_miss(got, t)}",
                  "solve 1 - (1 - lr lam)^t >= fraction for t: t >= log(1 - fraction) / "
                  "log(1 - lr lam), then round UP to an int (math.ceil)")
    _passed(ex, f"{len(cases)} cases, from one step to thousands")


def _ch4_spectral_case(seed: int):
    """A small gray image, the eigenpairs of its closed-form NTK, steps, lr and sigma."""
    from .filters import eigh_psd
    from .kernels import ntk_closed_form

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
    >>> from ntkutils.filters import bias_variance
    >>> check_ch4_bias_variance(bias_variance)
    Exercise 4.3: correct. 2 images, 5 steps each: squared bias and variance
    """
    ex = "Exercise 4.3"
    steps = torch.tensor([0, 1, 3, 20, 200])
    for seed, sigma in ((43, 0.1), (44, 0.3)):
        x, K, lam, V = _ch4_spectral_case(seed)
        n = K.shape[0]
        lr = 0.9 / float(lam[0])
        eye = torch.eye(n, dtype=torch.float64)
        xf = x.reshape(n)  # (n,)
        left = [torch.linalg.matrix_power(eye - lr * K, int(t)) for t in steps]  # (n, n)
        bias2 = torch.stack([(L @ xf).pow(2).sum() for L in left])  # (T,)
        var = torch.stack([sigma**2 * (eye - L).pow(2).sum() for L in left])  # (T,)
        got = _call(ex, fn, x.clone(), lam.clone(), V.clone(), steps.clone(), lr, sigma)
        if not isinstance(got, (tuple, list)) or len(got) != 2:
            _fail(ex, "a pair (bias2, variance)", f"{type(got).__name__}",
                  "return bias2, variance")
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
        noise level, as for :func:`ntkutils.filters.bias_variance`.

    Raises
    ------
    ExerciseFailed
        Unless ``answer`` is the step of ``steps`` with the smallest
        ``bias2 + variance`` from :func:`ntkutils.filters.bias_variance`.

    Examples
    --------
    >>> from ntkutils.filters import eigh_psd
    >>> lam, V = eigh_psd(torch.tensor([[2.0, 1.0], [1.0, 2.0]]))
    >>> x = torch.tensor([[[1.0, 1.0]]], dtype=torch.float64)  # the top eigenvector
    >>> check_ch4_oracle_step(1, x, lam, V, [0, 1, 2, 50], None, 0.5)
    Exercise 4.4: correct. t* = 1 (expected risk 0.2778)
    """
    from .filters import _check_steps, bias_variance

    ex = "Exercise 4.4"
    t = _check_steps(steps)
    bias2, var = bias_variance(x, eigvals, eigvecs, t, lr, sigma)
    risk = bias2 + var  # (T,)
    best = int(torch.argmin(risk))
    expected = int(t[best])
    got = _ch4_int(ex, answer, "the step t*")
    if got != expected:
        where = (f" (its expected risk is {float(risk[t == got][0]):.4g})"
                 if bool((t == got).any()) else " (not one of the candidate steps)")
        _fail(ex, "the step t* of least expected risk (bias^2 + variance)",
              f"{got}{where}: {'too early' if got < expected else 'too late'}",
              "add the two curves, take the argmin, and return the STEP at that index "
              "(steps[index]), not the index itself")
    _passed(ex, f"t* = {expected} (expected risk {float(risk[best]):.4g})")


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
    >>> from ntkutils.filters import sure
    >>> check_ch4_sure(sure)
    Exercise 4.5: correct. gray and colour trajectories
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


__all__ += ["check_ch4_twicing", "check_ch4_steps_to_fit", "check_ch4_bias_variance",
            "check_ch4_oracle_step", "check_ch4_sure"]


# =========================================================================================
# Chapter 6: Adam adapts the kernel
# =========================================================================================
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
    Exercise 6.1: correct. 3 gradients (sizes 1e-9 to 1e3, zeros included), equal to torch.optim.Adam
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


def _ch6_numerical_slopes(a: float, b: float) -> tuple[float, float]:
    """Slopes of the 2-norm and max-norm of ``~c^b`` changes of size ``c^a``, measured.

    Builds, for several widths ``c``, a vector of ``round(c^b)`` entries of magnitude
    ``c^a`` or ``2 c^a`` (random signs), takes its norms and fits log-log slopes: a
    numerical reference independent of any formula.
    """
    from .plotting import fit_loglog_slope

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
    Exercise 6.2: correct. 4 cases, e.g. a = -1.5, b = 2 gives slopes (-0.5, -1.5)
    """
    ex = "Exercise 6.2"
    for a, b in ((-1.5, 2.0), (-1.0, 2.0), (0.0, 2.0), (-0.5, 1.0)):
        got = _call(ex, fn, a, b)
        if (not isinstance(got, (tuple, list)) or len(got) != 2
                or not all(isinstance(v, (int, float, torch.Tensor))
                           and not isinstance(v, bool) for v in got)):
            _fail(ex, "a pair of numbers (s_2, s_inf)", f"{got!r}",
                  "return a tuple: (exponent of the 2-norm, exponent of the max-norm)")
        s2, sinf = (float(v) for v in got)
        r2, rinf = _ch6_numerical_slopes(a, b)
        if abs(s2 - r2) > 0.05 or abs(sinf - rinf) > 0.05:
            wrong = [f"{label} {_miss(mine, right)}" for label, mine, right in
                     (("s_2", s2, r2), ("s_inf", sinf, rinf)) if abs(mine - right) > 0.05]
            _fail(ex, f"the slopes (s_2, s_inf) for a = {a:g}, b = {b:g}, within 0.05 "
                      "(measured on synthetic changes)",
                  f"({s2:.2f}, {sinf:.2f}): {', '.join(wrong)}",
                  "the squared 2-norm adds c^b squares of size c^(2a); the max-norm is "
                  "the size of the largest single change")
    _passed(ex, "4 cases, e.g. a = -1.5, b = 2 gives slopes (-0.5, -1.5)")


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
    Exercise 6.3: correct. 5 cases: unchanged, scaled, sign-flipped, orthogonal, random rows
    """
    import numpy as np

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


__all__ += ["check_ch6_adam_first_step", "check_ch6_norm_slopes", "check_ch6_kernel_change"]


# =========================================================================================
# Chapter 5: Nyström, the CNN without training
# =========================================================================================
def check_ch5_kernel_memory(fn: Callable[[int, torch.dtype], Any]) -> None:
    """Checker of Exercise 5.1: the memory of an exact ``n x n`` kernel.

    Parameters
    ----------
    fn : callable
        ``fn(side, dtype)`` for the side in pixels of a square image and a floating
        ``torch.dtype``, returning the memory of its ``n x n`` kernel (``n = side**2``)
        in GiB (``2**30`` bytes) as a float.

    Raises
    ------
    ExerciseFailed
        When an answer differs by more than 0.1 % from the size of an actual tensor's
        storage: ``n`` rows of a one-row tensor of that dtype.

    Notes
    -----
    ``n^2`` entries of ``b`` bytes each: ``n^2 b / 2^30`` GiB, ``b = 8`` for float64 and 4
    for float32.  A 256 x 256 image gives ``n = 65536`` and 32 GiB in float64.

    Examples
    --------
    >>> check_ch5_kernel_memory(lambda side, dtype: side**4
    ...                         * torch.empty((), dtype=dtype).element_size() / 2**30)
    Exercise 5.1: correct. 5 cases, e.g. 256 x 256 in float64: 32 GiB
    """
    ex = "Exercise 5.1"
    cases = [(64, torch.float64), (256, torch.float64), (512, torch.float32),
             (100, torch.float64), (128, torch.float16)]
    for side, dtype in cases:
        n = side * side
        row = torch.empty(1, n, dtype=dtype)  # (1, n): one row of the kernel
        expected = n * row.untyped_storage().nbytes() / 2**30
        got = _call(ex, fn, side, dtype)
        if isinstance(got, torch.Tensor) and got.numel() == 1:
            got = got.item()
        if isinstance(got, bool) or not isinstance(got, (int, float)):
            _fail(ex, "a number of GiB (a Python float)", f"{type(got).__name__}",
                  "return n * n * bytes_per_entry / 2**30 as a float")
        if not abs(got - expected) <= 1e-3 * expected:
            _fail(ex, f"the GiB of the kernel of a {side} x {side} image in {dtype}",
                  f"{got:.6g}: {_miss(got, expected)}",
                  "n = side**2 pixels, n**2 entries, element_size() bytes each; "
                  "1 GiB = 2**30 bytes (not 1e9)")
    _passed(ex, "5 cases, e.g. 256 x 256 in float64: 32 GiB")


def check_ch5_nystrom_kernel(fn: Callable[[torch.Tensor, torch.Tensor], Any]) -> None:
    """Checker of Exercise 5.2: the Nyström reconstruction ``C A^+ C^T``.

    Parameters
    ----------
    fn : callable
        ``fn(columns, landmarks)`` for the kernel's columns ``C = Theta[:, S]`` ``(n, m)``
        and the landmark indices ``S`` ``(m,)``, returning ``C A^+ C^T`` ``(n, n)`` with
        ``A = C[S]``.

    Raises
    ------
    ExerciseFailed
        When the answer differs from ``C pinv(A) C^T`` (``torch.linalg.pinv``) for the NTK
        of an 8 x 8 image with 8, 16 and all 64 landmarks (all landmarks must give back
        the exact kernel).

    Notes
    -----
    :math:`\\tilde\\Theta = C A^+ C^\\top`, :math:`C = \\Theta_{:, S}`,
    :math:`A = \\Theta_{S, S}`; it equals ``Theta`` on the landmark columns and rows, and
    everywhere when ``S`` is every pixel.

    Examples
    --------
    >>> check_ch5_nystrom_kernel(lambda C, S: C @ torch.linalg.pinv(C[S]) @ C.T)
    Exercise 5.2: correct. 8, 16 and 64 landmarks of an 8 x 8 image (64: the exact kernel)
    """
    from .filters import landmark_pixels
    from .kernels import ntk_closed_form

    ex = "Exercise 5.2"
    u = torch.rand(1, 8, 8, generator=torch.Generator().manual_seed(52),
                   dtype=torch.float64)
    K = ntk_closed_form(u, 3)  # (n, n)
    for m in (8, 16, 64):
        S = landmark_pixels((8, 8), m, generator=torch.Generator().manual_seed(m))
        C = K[:, S]  # (n, m)
        ref = K.clone() if m == 64 else C @ torch.linalg.pinv(C[S], hermitian=True) @ C.T
        got = _call(ex, fn, C.clone(), S.clone())
        _compare(ex, got, ref, 1e-6, 1e-12,
                 f"with m = {m} landmarks: A = C[S] is the (m, m) block of the landmark "
                 "rows; use its pseudo-inverse (torch.linalg.pinv) and return "
                 "C @ A^+ @ C.T, shape (n, n)")
    _passed(ex, "8, 16 and 64 landmarks of an 8 x 8 image (64: the exact kernel)")


def check_ch5_orthonormalise(fn: Callable[[torch.Tensor], Any]) -> None:
    """Checker of Exercise 5.3: orthonormal eigenpairs of ``R R^T`` from a thin ``R``.

    Parameters
    ----------
    fn : callable
        ``fn(R)`` for ``R`` ``(n, k)`` of rank ``k``, returning ``(eigvals, eigvecs)``:
        ``eigvals`` ``(k,)`` in descending order and ``eigvecs`` ``(n, k)`` with
        orthonormal columns such that ``eigvecs diag(eigvals) eigvecs^T = R R^T``.

    Raises
    ------
    ExerciseFailed
        When the columns are not orthonormal, the eigenvalues are not the ``k`` largest of
        ``R R^T`` (``torch.linalg.eigvalsh`` of the ``n x n`` matrix) in descending order,
        or the product does not give back ``R R^T``.

    Notes
    -----
    With ``R^T R = U diag(s) U^T`` (a ``k x k`` problem), ``V = R U diag(s^{-1/2})`` has
    ``V^T V = I`` and ``V diag(s) V^T = R R^T`` (Fowlkes et al.'s one-shot
    orthogonalisation); equivalently the thin SVD ``R = V diag(s^{1/2}) U^T``.

    Examples
    --------
    >>> def ortho(R):
    ...     V, s, _ = torch.linalg.svd(R, full_matrices=False)
    ...     return s**2, V
    >>> check_ch5_orthonormalise(ortho)
    Exercise 5.3: correct. 2 cases: V^T V = I, V diag(lam) V^T = R R^T, lam descending
    """
    ex = "Exercise 5.3"
    g = torch.Generator().manual_seed(53)
    R1 = torch.randn(40, 6, generator=g, dtype=torch.float64)
    R2 = torch.randn(30, 4, generator=g, dtype=torch.float64) * torch.tensor(
        [5.0, 1.0, 0.5, 0.1], dtype=torch.float64)  # (n, k) with spread singular values
    for R in (R1, R2):
        n, k = R.shape
        out = _call(ex, fn, R.clone())
        if not isinstance(out, (tuple, list)) or len(out) != 2:
            _fail(ex, "a pair (eigvals, eigvecs)", f"{type(out).__name__}",
                  "return two tensors: eigvals of shape (k,) and eigvecs of shape (n, k)")
        lam, V = out
        RRt = R @ R.T  # (n, n)
        top = torch.linalg.eigvalsh(RRt).flip(0)[:k]  # (k,), independent, descending
        _compare(ex, lam, top, 1e-8, 1e-10,
                 "the eigenvalues of R R^T are those of the small k x k matrix R^T R; "
                 "sort them in descending order")
        _compare(ex, V.T @ V if isinstance(V, torch.Tensor) else V,
                 torch.eye(k, dtype=torch.float64), 1e-8, 1e-8,
                 "eigvecs must be (n, k) with orthonormal columns: divide R U by the "
                 "square roots of the eigenvalues")
        _compare(ex, V @ torch.diag(lam.to(V.dtype)) @ V.T, RRt, 1e-8, 1e-10,
                 "V diag(lam) V^T must give back R R^T: pair each column with its "
                 "eigenvalue (same order)")
    _passed(ex, "2 cases: V^T V = I, V diag(lam) V^T = R R^T, lam descending")


CH5_LANDMARK_COUNTS = (8, 16, 32, 64, 128, 256)


def check_ch5_landmarks_for_error(answer: Any) -> None:
    """Checker of Exercise 5.4: the fewest landmarks for a 1 % filter error.

    Parameters
    ----------
    answer : int
        The smallest ``m`` in ``CH5_LANDMARK_COUNTS = (8, 16, 32, 64, 128, 256)`` whose
        Nyström filter output is within 1 % (relative 2-norm) of the exact one, for the
        set-up of the exercise: ``x = load_image("camera", size=32)``, ``y = add_noise(x,
        25/255)`` with a generator seeded 0, the single-hidden-layer NTK with 3 x 3
        patches in float64, ``lr = 1/lambda_max`` of the exact kernel, ``t = 50`` steps,
        landmarks ``landmark_pixels((32, 32), m)`` with a generator seeded 0.

    Raises
    ------
    ExerciseFailed
        Unless ``answer`` equals the ``m`` found by recomputing every error here.

    Notes
    -----
    The exact output is ``z^t = V diag(1 - (1 - lr lam)^t) V^T y`` from the eigenpairs
    of the exact kernel, the Nyström output the same with the Nyström eigenpairs and the
    same ``lr`` and ``t``; the error is ``||z_m - z|| / ||z||``.

    Examples
    --------
    >>> check_ch5_landmarks_for_error(64)
    Exercise 5.4: correct. m = 64: errors 5.9%, 4.4%, 1.8%, 0.5% for m = 8 ... 64
    """
    from .filters import eigh_psd, gd_filter, landmark_pixels, nystrom_eigenpairs
    from .images import add_noise, load_image
    from .kernels import ntk_closed_form

    ex = "Exercise 5.4"
    if isinstance(answer, torch.Tensor) and answer.numel() == 1:
        answer = answer.item()
    if isinstance(answer, bool) or not isinstance(answer, int):
        _fail(ex, f"an int, one of {CH5_LANDMARK_COUNTS}", f"{answer!r}",
              "set m_needed to the number of landmarks, an int")
    x = load_image("camera", size=32)
    y = add_noise(x, 25 / 255, generator=torch.Generator().manual_seed(0)).double()
    K = ntk_closed_form(y, 3)  # (n, n)
    lam, V = eigh_psd(K)
    lr, t = 1.0 / float(lam[0]), 50
    z = gd_filter(y, lam, V, [t], lr=lr)[0]  # (1, 32, 32)
    errors = []
    for m in CH5_LANDMARK_COUNTS:
        S = landmark_pixels((32, 32), m, generator=torch.Generator().manual_seed(0))
        lam_m, V_m = nystrom_eigenpairs(K[:, S], S)
        z_m = gd_filter(y, lam_m, V_m, [t], lr=lr)[0]
        errors.append(float((z_m - z).norm() / z.norm()))
    expected = next(m for m, e in zip(CH5_LANDMARK_COUNTS, errors) if e < 0.01)
    if answer != expected:
        _fail(ex, "the smallest m of CH5_LANDMARK_COUNTS within 1 %",
              f"m = {answer}: " + ("more than needed" if answer > expected else
                                   "too few (its error is above 1 %)"),
              f"the relative errors for m = {CH5_LANDMARK_COUNTS} are not what your m "
              "suggests: use the same lr = 1/lambda_max of the EXACT kernel and t = 50 "
              "for both outputs, and ||z_m - z|| / ||z|| (not squared)"
              + ("" if answer in CH5_LANDMARK_COUNTS else
                 f"; m must be one of {CH5_LANDMARK_COUNTS}"))
    k = CH5_LANDMARK_COUNTS.index(expected)
    listed = ", ".join(f"{100 * e:.1f}%" for e in errors[:k + 1])
    _passed(ex, f"m = {expected}: errors {listed} for m = {CH5_LANDMARK_COUNTS[0]} ... "
                f"{expected}")


__all__ += ["check_ch5_kernel_memory", "check_ch5_nystrom_kernel",
            "check_ch5_orthonormalise", "check_ch5_landmarks_for_error",
            "CH5_LANDMARK_COUNTS"]


# =========================================================================================
# Chapter 7: the paper's results, reproduced
# =========================================================================================
def _ch7_number(exercise: str, answer: Any, what: str) -> float:
    """The reader's answer as a float, or feedback saying a number was expected."""
    if isinstance(answer, torch.Tensor) and answer.numel() == 1:
        answer = answer.item()
    if isinstance(answer, bool) or not isinstance(answer, (int, float)):
        _fail(exercise, what, f"{type(answer).__name__} {answer!r}",
              "set `answer` to a Python float (replace `answer = None`)")
    return float(answer)


def _ch7_psnr(a: Any, b: Any) -> float:
    """PSNR in dB of arrays in [0, 1], from its definition (numpy, float64)."""
    import numpy as np

    mse = float(np.mean((np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64))
                        ** 2))
    return 10.0 * float(np.log10(1.0 / mse))


def check_ch7_flat_psnr(answer: Any, x: torch.Tensor, y: torch.Tensor) -> None:
    """Checker of Exercise 7.1: the PSNR of the flat image.

    Parameters
    ----------
    answer : float
        The reader's PSNR (dB) of the image whose every pixel is the mean colour of
        ``y`` (one mean per channel), against ``x``.
    x, y : torch.Tensor
        Clean and noisy images ``(C, H, W)``.

    Raises
    ------
    ExerciseFailed
        When the answer is more than 0.01 dB from the reference, with a hint when it
        is the PSNR of one mean for all channels.

    Notes
    -----
    The flat estimate is ``xhat_{c,i} = (1/n) sum_j y_{c,j}``; its PSNR is
    ``10 log10(1 / mean((xhat - x)^2))``, computed here with numpy.  It is what a
    low-pass filter that keeps only the mean returns, the poster's 15.3 dB cell.

    Examples
    --------
    >>> x = torch.tensor([[[0.0, 1.0]]]); y = torch.tensor([[[0.1, 0.9]]])
    >>> check_ch7_flat_psnr(6.0206, x, y)
    Exercise 7.1: correct. 6.02 dB (expected 6.02 dB)
    """
    import numpy as np

    ex = "Exercise 7.1"
    got = _ch7_number(ex, answer, "a PSNR in dB (a float)")
    xn = x.detach().cpu().double().numpy()
    yn = y.detach().cpu().double().numpy()
    expected = _ch7_psnr(yn.mean(axis=(1, 2), keepdims=True) + 0 * xn, xn)
    if abs(got - expected) <= 0.01:
        _passed(ex, f"{got:.2f} dB (expected {expected:.2f} dB)")
        return
    if xn.shape[0] > 1 and abs(got - _ch7_psnr(np.full_like(xn, yn.mean()), xn)) <= 0.01:
        _fail(ex, "the PSNR of the flat image (one mean per channel)",
              f"{got:.2f} dB, the PSNR of one mean over all "
              "channels (a gray flat image)", "take one mean per colour channel")
    _fail(ex, "the PSNR of the flat image (one mean per channel)",
          f"{got:.2f} dB: {_miss(got, expected)}",
          "flat = y.mean(dim=(1, 2), keepdim=True).expand_as(y); then psnr(flat, x)")


def _ch7_nystrom_reference(u: torch.Tensor, y: torch.Tensor, x: torch.Tensor,
                           landmarks: torch.Tensor, steps: list[int]) -> float:
    """Best PSNR of the Nyström GD filter, from the full kernel and explicit algebra."""
    import numpy as np

    from .kernels import ntk_closed_form

    K = ntk_closed_form(u.double(), 3).cpu().numpy()  # (n, n)
    S = landmarks.cpu().numpy()
    Cm, A = K[:, S], K[np.ix_(S, S)]  # (n, m), (m, m)
    a, Q = np.linalg.eigh((A + A.T) / 2)
    keep = a > 1e-10 * a.max()
    A_pinv = (Q[:, keep] / a[keep]) @ Q[:, keep].T  # (m, m)
    lam, V = np.linalg.eigh(Cm @ A_pinv @ Cm.T)  # (n,), (n, n)
    lam = np.clip(lam, 0.0, None)
    C = y.shape[0]
    yf = y.detach().cpu().double().numpy().reshape(C, -1)  # (C, n)
    xf = x.detach().cpu().double().numpy().reshape(C, -1)  # (C, n)
    coef = yf @ V  # (C, n)
    best = -np.inf
    for t in steps:
        gain = 1.0 - (1.0 - lam / lam.max()) ** t  # (n,)
        best = max(best, _ch7_psnr((coef * gain) @ V.T, xf))
    return best


def check_ch7_ntk_nystrom(fn: Callable[..., Any]) -> None:
    """Checker of Exercise 7.2: the "NTK + Nyström" column from its parts.

    Parameters
    ----------
    fn : callable
        ``fn(u, y, x, landmarks, steps)`` for a network input ``u`` ``(C, H, W)``, the
        noisy and clean images ``y, x`` ``(C, H, W)``, landmark pixels ``(m,)`` and a
        list of steps, returning the best PSNR (dB, no clipping) over ``steps`` of
        gradient descent in closed form with the Nyström approximation of the
        closed-form NTK (single hidden layer, 3 x 3) of ``u``, step ``1 / lambda_max``.

    Raises
    ------
    ExerciseFailed
        When an answer is more than 0.05 dB from the reference, for a gray image with
        its own noisy version as input and a colour image with iid noise as input.

    Notes
    -----
    The reference forms the whole kernel, the Nyström matrix ``C A^+ C^T`` and its
    eigendecomposition ``V diag(lam) V^T`` with numpy, and filters
    ``z^t = V diag(1 - (1 - lam / lam_max)^t) V^T y``; it needs none of
    ``nystrom_eigenpairs`` or ``gd_filter``.

    Examples
    --------
    >>> from ntkutils.filters import gd_filter, nystrom_eigenpairs
    >>> from ntkutils.images import psnr
    >>> from ntkutils.kernels import ntk_closed_form
    >>> def best(u, y, x, landmarks, steps):
    ...     cols = ntk_closed_form(u.double(), 3, columns=landmarks)
    ...     lam, V = nystrom_eigenpairs(cols, landmarks)
    ...     z = gd_filter(y.double(), lam, V, steps)
    ...     return max(psnr(zt, x) for zt in z)
    >>> check_ch7_ntk_nystrom(best)
    Exercise 7.2: correct. 2 cases; noisy-image input ... dB, iid-noise input ... dB
    """
    from .images import add_noise, load_image

    ex = "Exercise 7.2"
    steps = [0, 1, 3, 10, 30, 100, 300, 1000, 10000]
    g = torch.Generator().manual_seed(7)
    x1 = load_image("camera", size=16, crop=64)
    y1 = add_noise(x1, 25 / 255, generator=g)
    x2 = load_image("coffee", size=12, crop=96, gray=False)
    y2 = add_noise(x2, 25 / 255, generator=g)
    u2 = 0.1 * torch.rand(x2.shape, generator=g)  # iid noise U(0, 0.1)
    cases = [("noisy-image input", y1, y1, x1, torch.randperm(256, generator=g)[:64]),
             ("iid-noise input", u2, y2, x2, torch.randperm(144, generator=g)[:48])]
    report = []
    for name, u, y, x, S in cases:
        S = S.sort().values
        expected = _ch7_nystrom_reference(u, y, x, S, steps)
        got = _ch7_number(ex, _call(ex, fn, u, y, x, S, steps), "a PSNR in dB (a float)")
        if not abs(got - expected) <= 0.05:
            _fail(ex, f"the PSNR of the NTK + Nystrom cell for the {name}",
                  f"{got:.2f} dB: {_miss(got, expected)}",
                  "kernel of u (not of y) from ntk_closed_form(u, 3, columns=landmarks); "
                  "nystrom_eigenpairs; gd_filter of y with lr = 1/lambda_max; the "
                  "best PSNR over the steps, without clipping")
        report.append(f"{name} {got:.1f} dB")
    _passed(ex, "2 cases; " + ", ".join(report))


def _ch7_cells(result: Any) -> list[Any]:
    from .reproduce import INPUTS, METHODS, GridResult

    if not isinstance(result, GridResult):
        raise TypeError(f"result must be a GridResult, got {type(result).__name__}")
    return [result.cells[i][m] for i in INPUTS for m in METHODS]


def check_ch7_oracle_gap(answer: Any, result: Any) -> None:
    """Checker of Exercise 7.3: what the oracle adds over the discrepancy principle.

    Parameters
    ----------
    answer : float
        The reader's mean, over the ten cells of the grid, of the best PSNR minus the
        PSNR at the discrepancy principle's step (dB).
    result : ntkutils.reproduce.GridResult
        The grid.

    Raises
    ------
    ExerciseFailed
        When the answer is more than 0.001 dB from the reference, with a hint for the
        likely slips (threshold without the channels, or sigma on the 0-255 scale).

    Notes
    -----
    For each cell, ``t_D`` is the first recorded step with ``||z^t - y||^2 <= C n
    sigma^2`` (the last recorded step when none is), and the gap is
    ``max_t PSNR(z^t) - PSNR(z^{t_D}) >= 0``; the reference loops over the recorded
    curves itself.

    Examples
    --------
    >>> from ntkutils.reproduce import reproduce_grid
    >>> r = reproduce_grid("test", progress=False)
    >>> check_ch7_oracle_gap(None, r)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ntkutils.exercises.ExerciseFailed: Exercise 7.3: not yet...
    """
    ex = "Exercise 7.3"
    cells = _ch7_cells(result)
    got = _ch7_number(ex, answer, "a mean PSNR gap in dB (a float)")
    d = result.y.numel()

    def mean_gap(threshold: float) -> float:
        gaps = []
        for cell in cells:
            res = cell.residual.tolist()
            k = next((i for i, r in enumerate(res) if r <= threshold), len(res) - 1)
            gaps.append(max(cell.psnr_curve.tolist()) - float(cell.psnr_curve[k]))
        return sum(gaps) / len(gaps)

    sigma = result.settings.sigma
    expected = mean_gap(d * sigma**2)
    if abs(got - expected) <= 1e-3:
        _passed(ex, f"{got:.2f} dB (expected {expected:.2f} dB)")
        return
    if abs(got - mean_gap(d / result.y.shape[0] * sigma**2)) <= 1e-3:
        _fail(ex, "the mean gap in dB over the 10 cells", f"{got:.3f} dB",
              "the threshold counts every value of y: C n sigma^2 with C channels")
    if abs(got - mean_gap(d * (255 * sigma) ** 2)) <= 1e-3:
        _fail(ex, "the mean gap in dB over the 10 cells", f"{got:.3f} dB",
              "sigma is on the [0, 1] scale (25/255), like the images")
    _fail(ex, "the mean gap in dB over the 10 cells",
          f"{got:.3f} dB: {_miss(got, expected)}",
          "for each of the 10 cells: first k with cell.residual[k] <= y.numel() * "
          "sigma**2 (else the last), gap = cell.psnr_curve.max() - cell.psnr_curve[k]; "
          "then the mean")


def check_ch7_rank_agreement(answer: Any, result: Any) -> None:
    """Checker of Exercise 7.4: Spearman's rank correlation with the poster's grid.

    Parameters
    ----------
    answer : float
        The reader's Spearman correlation between our ten oracle PSNRs and the poster's
        ten, cell by cell.
    result : ntkutils.reproduce.GridResult
        The grid.

    Raises
    ------
    ExerciseFailed
        When the answer is more than 1e-6 from :func:`scipy.stats.spearmanr`, with a
        hint when it is Pearson's correlation of the values or of ranks without ties.

    Notes
    -----
    Spearman's rho is Pearson's correlation of the ranks; tied values (the poster has
    21.6 dB twice) share the mean of their ranks.

    Examples
    --------
    >>> from ntkutils.reproduce import reproduce_grid
    >>> from scipy.stats import spearmanr
    >>> from ntkutils.reproduce import INPUTS, METHODS, POSTER_PSNR
    >>> r = reproduce_grid("test", progress=False)
    >>> ours = [r.psnr[i][m] for i in INPUTS for m in METHODS]
    >>> poster = [POSTER_PSNR[i][m] for i in INPUTS for m in METHODS]
    >>> check_ch7_rank_agreement(spearmanr(ours, poster)[0], r)  # doctest: +ELLIPSIS
    Exercise 7.4: correct. rho = ...
    """
    import numpy as np
    from scipy.stats import pearsonr, spearmanr

    from .reproduce import INPUTS, METHODS, POSTER_PSNR

    ex = "Exercise 7.4"
    _ch7_cells(result)
    got = _ch7_number(ex, answer, "a correlation between -1 and 1 (a float)")
    ours = [result.psnr[i][m] for i in INPUTS for m in METHODS]
    poster = [POSTER_PSNR[i][m] for i in INPUTS for m in METHODS]
    expected = float(spearmanr(ours, poster)[0])
    if abs(got - expected) <= 1e-6:
        _passed(ex, f"rho = {got:.2f} (expected {expected:.2f})")
        return
    if abs(got - float(pearsonr(ours, poster)[0])) <= 1e-6:
        _fail(ex, "the rank correlation (Spearman)",
              f"{got:.4f}, Pearson's correlation of the values",
              "correlate the ranks, not the PSNRs")
    no_ties = float(np.corrcoef(np.argsort(np.argsort(ours)),
                                np.argsort(np.argsort(poster)))[0, 1])
    if abs(got - no_ties) <= 1e-6:
        _fail(ex, "the rank correlation (Spearman)", f"{got:.4f}, ranks without ties",
              "the poster's two 21.6 dB cells must share the mean of their ranks "
              "(scipy.stats.rankdata does this)")
    _fail(ex, "the rank correlation (Spearman)", f"{got:.4f}: {_miss(got, expected)}",
          "rank both lists (scipy.stats.rankdata), then Pearson's correlation of the "
          "ranks")


__all__ += ["check_ch7_flat_psnr", "check_ch7_ntk_nystrom", "check_ch7_oracle_gap",
            "check_ch7_rank_agreement"]
