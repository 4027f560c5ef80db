"""When to stop gradient descent: the oracle, the discrepancy principle and SURE.

Gradient descent from ``z^0 = 0`` fits ``y`` a little more at every step; stopped early it
denoises, run to the end it returns the noise.  A stopping rule picks the step:

- :func:`oracle_step`, the best step by PSNR against the clean image (an ORACLE: the
  yardstick of the other rules, never a method);
- :func:`discrepancy_step`, the first step whose residual falls to the noise level;
- :func:`sure`, Stein's unbiased risk estimate, and :func:`sure_step`, its minimiser, with
  the degrees of freedom of :func:`ntkutils.spectral.degrees_of_freedom` (a fixed kernel)
  or :func:`degrees_of_freedom_mc` (any denoiser, by Monte Carlo).

Each takes the outputs ``z`` ``(T, C, H, W)`` at the candidate steps, which
:func:`log_step_grid` spaces evenly on a log scale.  The rules themselves (the residual,
the discrepancy threshold, the SURE formula) are written once, in private helpers that the
kernel-filter pipeline and the poster's grid also call on their own curves.
"""
from __future__ import annotations

import math

import torch

from ._checks import (
    check_generator,
    check_image,
    check_positive,
    check_scale,
    check_sigma,
    check_tensor,
)
from .spectral import _check_steps

__all__ = [
    "log_step_grid",
    "oracle_step",
    "discrepancy_step",
    "sure",
    "sure_step",
    "degrees_of_freedom_mc",
]

#: Monte-Carlo SURE probe size (on the [0, 1] scale): the probe is ``y + PROBE_EPS b``.
PROBE_EPS = 1e-3


def log_step_grid(max_step: int, n_steps: int = 150, *, zero: bool = True) -> torch.Tensor:
    """Candidate steps of gradient descent, evenly spaced on a log scale.

    Parameters
    ----------
    max_step : int
        The last step (>= 1).
    n_steps : int, default 150
        How many log-spaced values from 1 to ``max_step`` (before rounding).
    zero : bool, default True
        Also include step 0 (the output ``z^0``).

    Returns
    -------
    torch.LongTensor, shape (T,)
        The rounded steps, sorted, without the repeats that rounding makes among the
        small ones (so ``T <= n_steps + 1``).

    Notes
    -----
    :math:`t_k = \\operatorname{round}\\big(t_{max}^{k / (n - 1)}\\big)`, ``k = 0 .. n-1``.
    The filter changes on a log scale of ``t`` (component ``i`` is fitted around
    ``t ~ 1 / (lr lambda_i)``, and the eigenvalues span decades), so log-spaced candidates
    cover every scale with a few hundred steps.  The poster's filter uses 0 and 150 steps
    up to ``10^6``, the windowed one 21 steps from 1 to ``10^5``.

    Examples
    --------
    >>> log_step_grid(1000, 4)
    tensor([   0,    1,   10,  100, 1000])
    >>> log_step_grid(100, 6, zero=False).tolist()  # 1, 2.5, 6.3, 15.8, 39.8, 100
    [1, 3, 6, 16, 40, 100]
    """
    check_positive(max_step, "max_step", integer=True)
    check_positive(n_steps, "n_steps", integer=True)
    if not isinstance(zero, bool):
        raise TypeError(f"zero must be True or False, got {zero!r}")
    grid = torch.logspace(0, math.log10(max_step), n_steps, dtype=torch.float64)
    steps = grid.round().long()  # (n_steps,)
    if zero:
        steps = torch.cat([torch.zeros(1, dtype=torch.long), steps])
    return torch.unique(steps)  # sorted


# ------------------------------------------------------------------ the rules, once
def _squared_distance(z: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
    """``||z^t - ref||^2`` for every step: ``(T,)`` (the residual when ``ref`` is ``y``)."""
    return (z - ref[None]).pow(2).flatten(1).sum(1)  # (T,)


def _discrepancy_index(residual: torch.Tensor, d: int, sigma: float,
                       tau: float = 1.0) -> int:
    """Index of the first residual ``<= tau d sigma^2``, the last index if none is."""
    below = torch.nonzero(residual <= tau * d * sigma**2)
    return int(below[0]) if below.numel() else residual.numel() - 1


def _sure_curve(residual: torch.Tensor, d: int, sigma: float,
                penalty: torch.Tensor) -> torch.Tensor:
    """SURE from the residual and the divergence penalty ``2 sigma^2 div``."""
    return residual - d * sigma**2 + penalty


# ------------------------------------------------------------------ checks
def _check_trajectory(y, z, name_y: str = "y") -> None:
    check_image(y, name_y)
    check_tensor(z, "z", ndim=4)
    if tuple(z.shape[1:]) != tuple(y.shape):
        raise ValueError(f"z must be (T, C, H, W) with (C, H, W) = {tuple(y.shape)}, got "
                         f"shape {tuple(z.shape)}")


def _check_steps_of(z, steps) -> torch.Tensor:
    """``steps`` checked, one per row of ``z``."""
    t = _check_steps(steps)
    if t.numel() != z.shape[0]:
        raise ValueError(f"steps must have one entry per row of z (T = {z.shape[0]}), got "
                         f"{t.numel()}")
    return t


# ------------------------------------------------------------------ stopping rules


def sure(y: torch.Tensor, z: torch.Tensor, df: torch.Tensor, sigma: float) -> torch.Tensor:
    """Stein's unbiased risk estimate of ``||z^t - x||^2`` for the gradient-descent filter.

    Parameters
    ----------
    y : torch.Tensor, shape (C, H, W)
        Noisy image.
    z : torch.Tensor, shape (T, C, H, W)
        Filter outputs, e.g. from :func:`ntkutils.spectral.gd_filter` with ``z0 = 0``.
    df : torch.Tensor, shape (T,)
        Degrees of freedom of *one channel*
        (:func:`ntkutils.spectral.degrees_of_freedom`, or :func:`degrees_of_freedom_mc`);
        multiplied by ``C`` here because the same filter acts on each channel.
    sigma : float
        Noise standard deviation (on the [0, 1] scale).

    Returns
    -------
    torch.Tensor, shape (T,)
        Estimated squared error, summed over all ``d = C H W`` values.

    Notes
    -----
    For a linear filter ``z = W_t y`` with ``W_t`` fixed and ``y = x + noise``,
    ``noise ~ N(0, sigma^2 I)``,

    .. math:: \\mathrm{SURE}(t) = \\|z^t - y\\|^2 - d\\sigma^2 + 2\\sigma^2 C\\,\\mathrm{df}(t),
              \\qquad \\mathbb E\\,\\mathrm{SURE}(t) = \\mathbb E\\|z^t - x\\|^2 .

    It needs no clean image.  It is unbiased when the kernel does not depend on the noise
    (e.g. built from another input).  For the NTK of the noisy image itself, the trace of
    the filter misses how ``Theta`` follows the noise and SURE then stops far too late:
    pass the divergence from :func:`degrees_of_freedom_mc` instead.

    References
    ----------
    C. Stein, "Estimation of the mean of a multivariate normal distribution", Ann. Stat.
    1981.

    Examples
    --------
    >>> import torch
    >>> y = torch.ones(1, 1, 4)
    >>> z = torch.stack([torch.zeros(1, 1, 4), y])  # t = 0 and a fully fitted t
    >>> sure(y, z, torch.tensor([0.0, 4.0]), sigma=0.5)
    tensor([3., 1.])
    """
    _check_trajectory(y, z)
    check_tensor(df, "df", ndim=1)
    if df.shape[0] != z.shape[0]:
        raise ValueError(f"df must have one value per step, T = {z.shape[0]}, got shape "
                         f"{tuple(df.shape)}")
    check_sigma(sigma, "sigma")
    C = y.shape[0]
    d = y.numel()
    resid = _squared_distance(z, y)  # (T,)
    return _sure_curve(resid, d, sigma, 2 * sigma**2 * C * df.to(resid.dtype))


def sure_step(y: torch.Tensor, z: torch.Tensor, df: torch.Tensor, sigma: float,
              steps) -> int:
    """The step in ``steps`` that minimises :func:`sure` (no clean image needed).

    Parameters
    ----------
    y, z, df, sigma
        As in :func:`sure`.
    steps : sequence of int or 1-D integer tensor, shape (T,)
        The steps ``z`` was computed at.

    Returns
    -------
    int
        ``steps[argmin_t SURE(t)]``.

    Notes
    -----
    Minimising an unbiased estimate of the risk: :math:`\\hat t = \\arg\\min_t
    \\mathrm{SURE}(t)`.

    Examples
    --------
    >>> import torch
    >>> y = torch.ones(1, 1, 4)
    >>> z = torch.stack([torch.zeros(1, 1, 4), y])
    >>> sure_step(y, z, torch.tensor([0.0, 4.0]), 0.5, [0, 10])
    10
    """
    t = _check_steps_of(z, steps)
    return int(t[int(torch.argmin(sure(y, z, df, sigma)))])


def discrepancy_step(y: torch.Tensor, z: torch.Tensor, sigma: float, steps, *,
                     tau: float = 1.0) -> int:
    """The first step whose residual falls to the noise level (Morozov's discrepancy principle).

    Parameters
    ----------
    y : torch.Tensor, shape (C, H, W)
        Noisy image.
    z : torch.Tensor, shape (T, C, H, W)
        Filter outputs at ``steps`` (in increasing order).
    sigma : float
        Noise standard deviation.
    steps : sequence of int or 1-D integer tensor, shape (T,)
        The steps ``z`` was computed at.
    tau : float, default 1.0
        Safety factor: stop when the residual is ``<= tau * d sigma^2``.

    Returns
    -------
    int
        The first ``t`` with ``||z^t - y||^2 <= tau d sigma^2`` (``d = C H W``), or the last
        step when the residual never gets there.

    Notes
    -----
    Fitting ``y`` more closely than the noise level means fitting noise:
    :math:`\\hat t = \\min\\{t : \\|z^t - y\\|^2 \\le \\tau d \\sigma^2\\}`.
    It needs no clean image.

    Examples
    --------
    >>> import torch
    >>> y = torch.ones(1, 1, 4)
    >>> z = torch.stack([torch.zeros(1, 1, 4), 0.6 * y, y])
    >>> discrepancy_step(y, z, 0.5, [0, 5, 10])
    5
    """
    _check_trajectory(y, z)
    check_sigma(sigma, "sigma")
    check_positive(tau, "tau")
    t = _check_steps_of(z, steps)
    if t.numel() > 1 and bool((t[1:] <= t[:-1]).any()):
        raise ValueError(f"steps must be increasing (the first step below the threshold is "
                         f"chosen), got {t.tolist()[:8]}")
    return int(t[_discrepancy_index(_squared_distance(z, y), y.numel(), sigma, tau)])


def oracle_step(z: torch.Tensor, x: torch.Tensor, steps) -> int:
    """The step with the best PSNR against the clean image: an ORACLE, not a method.

    Parameters
    ----------
    z : torch.Tensor, shape (T, C, H, W)
        Filter outputs at ``steps``.
    x : torch.Tensor, shape (C, H, W)
        The clean image, which a real denoiser never has.
    steps : sequence of int or 1-D integer tensor, shape (T,)
        The steps ``z`` was computed at.

    Returns
    -------
    int
        ``steps[argmin_t ||z^t - x||^2]`` (the highest PSNR).

    Notes
    -----
    :math:`t^\\star = \\arg\\min_t \\|z^t - x\\|^2`.  It is the best any stopping rule could
    do and the usual way deep-image-prior results are reported; compare it with
    :func:`sure_step` or :func:`discrepancy_step`, which do not look at ``x``.

    Examples
    --------
    >>> import torch
    >>> x = torch.full((1, 1, 4), 0.5)
    >>> z = torch.stack([torch.zeros(1, 1, 4), x, torch.ones(1, 1, 4)])
    >>> oracle_step(z, x, [0, 5, 10])
    5
    """
    _check_trajectory(x, z, "x")
    check_scale(x, "x")
    t = _check_steps_of(z, steps)
    return int(t[int(torch.argmin(_squared_distance(z, x)))])


def degrees_of_freedom_mc(denoiser, y: torch.Tensor, *, eps: float = 1e-3,
                          n_probes: int = 1,
                          generator: torch.Generator | None = None) -> torch.Tensor:
    """Degrees of freedom of any denoiser by Monte Carlo (its divergence, per channel).

    Parameters
    ----------
    denoiser : callable
        Maps an image ``(C, H, W)`` to ``(T, C, H, W)`` (e.g. all steps of a filter whose
        kernel is rebuilt from its input) or to ``(C, H, W)``.
    y : torch.Tensor, shape (C, H, W)
        The noisy image at which to differentiate.
    eps : float, default 1e-3
        Finite-difference step (on the [0, 1] scale).
    n_probes : int, default 1
        Number of Gaussian probes averaged.
    generator : torch.Generator, optional
        Source of the probes.

    Returns
    -------
    torch.Tensor, shape (T,)
        ``div f(y) / C``, comparable with :func:`ntkutils.spectral.degrees_of_freedom`
        and ready for :func:`sure` (``T = 1`` for a denoiser returning one image).

    Notes
    -----
    For ``b ~ N(0, I)``, :math:`\\mathbb E\\, b^T (f(y + \\epsilon b) - f(y))/\\epsilon
    \\to \\operatorname{div} f(y) = \\sum_k \\partial f_k / \\partial y_k` (Ramani, Blu &
    Unser).  For a fixed linear filter ``f(y) = W y`` this is ``tr W``, the same as
    :func:`ntkutils.spectral.degrees_of_freedom`; when the kernel is built from ``y``
    itself (the NTK of the noisy image) it also counts how the kernel follows the noise,
    which the trace misses.
    Cost: ``n_probes + 1`` calls of ``denoiser``.

    References
    ----------
    S. Ramani, T. Blu, M. Unser, "Monte-Carlo SURE: a black-box optimization of
    regularization parameters for general denoising algorithms", IEEE TIP 2008.

    Examples
    --------
    >>> import torch
    >>> y = torch.rand(1, 4, 4, dtype=torch.float64)
    >>> df = degrees_of_freedom_mc(lambda u: 0.5 * u, y, n_probes=50,
    ...                            generator=torch.Generator().manual_seed(0))
    >>> abs(float(df[0]) - 8.0) < 1.0  # tr(0.5 I) = 8
    True
    """
    if not callable(denoiser):
        raise TypeError(f"denoiser must be callable, got {type(denoiser).__name__}")
    check_image(y, "y")
    check_positive(eps, "eps")
    check_positive(n_probes, "n_probes", integer=True)
    check_generator(generator)
    f0 = denoiser(y)
    if not isinstance(f0, torch.Tensor) or tuple(f0.shape[-3:]) != tuple(y.shape) \
            or f0.ndim not in (3, 4):
        got = tuple(f0.shape) if isinstance(f0, torch.Tensor) else type(f0).__name__
        raise ValueError(f"denoiser must return a tensor of y's shape {tuple(y.shape)} (or "
                         f"(T, C, H, W) for T steps), got {got}")
    total = 0.0
    for _ in range(n_probes):
        b = torch.randn(y.shape, generator=generator, dtype=y.dtype).to(y.device)
        fb = denoiser(y + eps * b)
        total = total + ((fb - f0) * b).reshape(-1, y.numel()).sum(1) / eps  # (T,)
    return total / (n_probes * y.shape[0])
