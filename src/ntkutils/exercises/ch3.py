"""Checkers of chapter 3, the NTK is a non-local filter: where the kernel's weight turns
negative, the kernel of shuffled patches, the kernel of noise, and the degrees of freedom."""
from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch

from ..kernels import arccos_kernel, extract_patches, ntk_closed_form
from ._feedback import _call, _compare, _passed, check_value

__all__ = ["check_ch3_sign_change_angle", "check_ch3_permuted_kernel",
           "check_ch3_noise_background", "check_ch3_degrees_of_freedom"]


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
    of ``J``, positive up to ``phi_0`` (about 113 degrees), negative between ``phi_0`` and
    180 degrees, and 0 at 180 degrees.

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
