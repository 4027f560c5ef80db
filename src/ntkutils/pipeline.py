"""The kernel filter of the course, from network input to stopped estimate, in one call.

:func:`ntk_filter` runs the pipeline the chapters build piece by piece:

    network input u -> NTK Theta(u) -> eigenpairs -> gradient descent at every step
    -> stopping rule -> estimate x_hat

with the pieces of :mod:`ntkutils.kernels` (the closed-form NTK of the CNN),
:mod:`ntkutils.spectral` (exact eigenpairs, the GD filter), :mod:`ntkutils.nystrom`
(eigenpairs from a few columns) and :mod:`ntkutils.stopping` (the rules).  It returns the
whole trajectory as a :class:`KernelFilter`.  The poster's recipe of
:func:`ntkutils.denoise.ntk_denoise` and the kernel column of
:func:`ntkutils.reproduce.reproduce_grid` are this call.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import partial

import torch

from ._checks import (
    check_generator,
    check_image,
    check_memory,
    check_patch_size,
    check_positive,
    check_scale,
    check_sigma,
)
from .images import psnr
from .kernels import ntk_closed_form
from .nystrom import landmark_pixels, nystrom_eigenpairs
from .spectral import _check_steps, _gd_filter, _remaining, eigh_psd
from .stopping import (
    PROBE_EPS,
    _discrepancy_index,
    _squared_distance,
    _sure_curve,
    log_step_grid,
)

__all__ = ["KernelFilter", "ntk_filter"]

#: With ``method="auto"``, images with at most this many pixels (64 x 64) are exact.
EXACT_MAX_PIXELS = 4096

#: ``method="exact"`` is refused above this many pixels (128 x 128: a 2 GiB kernel).
EXACT_LIMIT_PIXELS = 16384

_RULES = ("sure", "discrepancy")


@dataclass(frozen=True)
class _Stopped:
    """Outputs at candidate steps and the step a rule chose: the fields that
    :class:`KernelFilter` and :class:`ntkutils.linearised.LinearisedGD` share (documented
    there)."""

    x_hat: torch.Tensor
    step: int
    index: int
    rule: str
    steps: torch.Tensor
    residual: torch.Tensor


@dataclass(frozen=True)
class KernelFilter(_Stopped):
    """The NTK filter of one image at every candidate step (from :func:`ntk_filter`).

    Attributes
    ----------
    x_hat : torch.Tensor, shape (C, H, W)
        ``z^t`` at the chosen step, float64, not clamped.
    step : int
        The chosen step ``t``; ``index`` is its position in ``steps``.
    index : int
        ``steps[index] == step``.
    rule : str
        ``"oracle"`` (the clean image was given), ``"discrepancy"`` or ``"sure"``.
    steps : torch.Tensor, shape (T,)
        The candidate steps (int64, sorted).
    residual : torch.Tensor, shape (T,)
        ``||z^t - y||^2``, summed over the ``d = C H W`` values.
    risk : torch.Tensor, shape (T,)
        The curve the rule used, summed over the ``d`` values: the true
        ``||z^t - x||^2`` (oracle), the residual (discrepancy) or Stein's estimate of
        ``||z^t - x||^2`` (SURE).
    df : torch.Tensor, shape (T,)
        SURE's degrees of freedom per channel (Monte-Carlo divergence / ``C``); zeros for
        the other rules.
    psnr : torch.Tensor or None, shape (T,)
        PSNR of every ``z^t`` against the clean image, in dB (with ``estimates=True`` and
        a clean image); the oracle then maximises it.
    estimates : torch.Tensor or None, shape (T, C, H, W)
        Every ``z^t`` (with ``estimates=True``).
    eigvals : torch.Tensor, shape (m,)
        The kernel's eigenvalues used, descending (empty for an all-zero kernel).
    eigvecs : torch.Tensor, shape (n, m)
        Their orthonormal eigenvectors.
    lr : float
        The learning rate ``1 / lambda_max`` (``inf`` for an all-zero kernel).
    landmarks : torch.Tensor or None, shape (m,)
        The Nyström landmark pixels ``row * W + col`` (``None`` for the exact kernel).
    """

    risk: torch.Tensor
    df: torch.Tensor
    psnr: torch.Tensor | None
    estimates: torch.Tensor | None
    eigvals: torch.Tensor
    eigvecs: torch.Tensor
    lr: float
    landmarks: torch.Tensor | None

    @property
    def rank(self) -> int:
        """Number of eigenpairs used."""
        return int(self.eigvals.numel())

    @property
    def lambda_max(self) -> float:
        """Largest eigenvalue of the kernel (0 for an all-zero kernel)."""
        return float(self.eigvals[0]) if self.rank else 0.0


def ntk_filter(
    u: torch.Tensor,
    y: torch.Tensor,
    *,
    patch_size: int = 3,
    depth: int = 1,
    method: str = "auto",
    n_landmarks: int = 512,
    steps=None,
    rule: str = "sure",
    sigma: float | None = None,
    x: torch.Tensor | None = None,
    estimates: bool = False,
    generator: torch.Generator | None = None,
) -> KernelFilter:
    """Filter ``y`` by gradient descent with the NTK of the input ``u``, stopped by a rule.

    Parameters
    ----------
    u : torch.Tensor, shape (C_u, H, W)
        The network input whose kernel is used: ``y`` itself (the poster's filter) or iid
        noise (the deep image prior's input).
    y : torch.Tensor, shape (C, H, W)
        The noisy image filtered, on the [0, 1] scale.
    patch_size : int, default 3
        Odd side ``k`` of the CNN's convolutions.
    depth : int, default 1
        Hidden ``k x k`` layers of the CNN (1: the single-hidden-layer CNN).
    method : {"auto", "exact", "nystrom"}, default "auto"
        ``"exact"`` eigendecomposes the ``n x n`` kernel (``O(n^3)``, refused above
        128 x 128); ``"nystrom"`` uses ``n_landmarks`` columns; ``"auto"`` is exact up to
        64 x 64 pixels, Nyström above.
    n_landmarks : int, default 512
        Nyström landmark pixels (:func:`ntkutils.nystrom.landmark_pixels`).
    steps : sequence of int or 1-D integer tensor, optional
        Candidate steps (``lr = 1/lambda_max``); default 0 and 150 log-spaced steps up to
        ``10^6`` (:func:`ntkutils.stopping.log_step_grid`).
    rule : {"sure", "discrepancy"}, default "sure"
        How to stop without the clean image; ignored when ``x`` is given.
    sigma : float, optional
        Noise level on the [0, 1] scale; needed by both rules.
    x : torch.Tensor, shape (C, H, W), optional
        The clean image: the step is then the ORACLE's (best PSNR).
    estimates : bool, default False
        Keep every ``z^t`` and measure the curves on them (with ``x``: the PSNR of each);
        otherwise the curves come from the spectral coefficients, without forming the
        ``T`` images.
    generator : torch.Generator, optional
        Randomness of the landmarks, then of the SURE probe.

    Returns
    -------
    KernelFilter
        The estimate, the chosen step and the whole trajectory.

    Notes
    -----
    With ``Theta(u) ~ V diag(lam) V^T`` and ``lr = 1/lambda_max``, gradient descent from
    ``z^0 = 0`` gives, with the coefficients ``c = V^T y`` (per channel),

    .. math:: z^t = V \\operatorname{diag}(g^t) c, \\qquad g^t_i = 1 - (1 - lr\\,\\lambda_i)^t,

    so without forming ``z^t``: ``||z^t - y||^2 = sum_i (1 - g_i^t)^2 c_i^2 +
    ||y - V V^T y||^2`` and ``||z^t - x||^2 = ||x||^2 - 2 sum_i g_i^t c_i a_i +
    sum_i (g_i^t c_i)^2`` with ``a = V^T x``.  The discrepancy rule stops at the first
    ``t`` with ``||z^t - y||^2 <= d sigma^2``; SURE minimises
    ``||z^t - y||^2 - d sigma^2 + 2 sigma^2 div(t)``, the divergence of ``y -> z^t``
    estimated with one Gaussian probe ``b``, ``b^T (z^t(y + eps b) - z^t(y)) / eps``.
    When ``u`` is ``y`` the probe moves the kernel too (its eigenpairs are computed again,
    twice the cost): the trace of the filter would miss how ``Theta`` follows the noise.

    Examples
    --------
    >>> import torch
    >>> from ntkutils.images import add_noise, load_image, psnr
    >>> x = load_image("camera", size=24)
    >>> y = add_noise(x, 25 / 255, generator=torch.Generator().manual_seed(0))
    >>> f = ntk_filter(y, y, sigma=25 / 255, generator=torch.Generator().manual_seed(1))
    >>> f.rule, f.x_hat.shape, psnr(f.x_hat.clamp(0, 1), x) > psnr(y.clamp(0, 1), x) + 2
    ('sure', torch.Size([1, 24, 24]), True)
    >>> oracle = ntk_filter(y, y, x=x, estimates=True)
    >>> bool(oracle.psnr.max() == oracle.psnr[oracle.index])
    True
    """
    check_image(u, "u")
    _check_target(u, y, x)
    if rule not in _RULES:
        raise ValueError(f"rule must be 'sure' or 'discrepancy', got {rule!r}")
    if sigma is not None or x is None:
        if sigma is None:
            raise ValueError(f"sigma is needed by rule={rule!r}: pass the noise level on the "
                             f"[0, 1] scale (or the clean image x for the oracle)")
        sigma = check_sigma(sigma, "sigma")
    if not isinstance(estimates, bool):
        raise TypeError(f"estimates must be True or False, got {estimates!r}")
    check_generator(generator)
    method, t = _check_options(y.shape[1:], patch_size, depth, method, n_landmarks, steps)
    return _ntk_filter(u, y, patch_size, depth, method, n_landmarks, t, rule, sigma, x,
                       estimates, generator)


def _check_target(u, y, x) -> None:
    """A noisy image ``y`` with the height and width of the input ``u``, and ``x``."""
    check_image(y, "y")
    check_scale(y, "y", noisy=True)
    if u.shape[1:] != y.shape[1:]:
        raise ValueError(f"u must have the height and width of y {tuple(y.shape[1:])}, got "
                         f"shape {tuple(u.shape)}")
    _check_clean_image(x, y)


def _check_clean_image(x, y) -> None:
    """``None``, or a clean image on the [0, 1] scale with the shape of ``y``."""
    if x is not None:
        check_image(x, "x")
        check_scale(x, "x")
        if x.shape != y.shape:
            raise ValueError(f"x must have the shape of y {tuple(y.shape)}, got "
                             f"{tuple(x.shape)}")


def _check_options(shape, patch_size, depth, method, n_landmarks, steps
                   ) -> tuple[str, torch.Tensor]:
    """The network, the method (``"auto"`` resolved) and the sorted candidate steps."""
    H, W = shape
    n = H * W
    check_patch_size(patch_size, image_shape=(H, W))
    check_positive(depth, "depth", integer=True)
    if method not in ("auto", "exact", "nystrom"):
        raise ValueError(f"method must be 'auto', 'exact' or 'nystrom', got {method!r}")
    if method == "auto":
        method = "exact" if n <= EXACT_MAX_PIXELS else "nystrom"
    if method == "exact" and n > EXACT_LIMIT_PIXELS:
        raise ValueError(f"method='exact' builds the n x n kernel and eigendecomposes it in "
                         f"O(n^3); n = {n} pixels is more than {EXACT_LIMIT_PIXELS} (128 x 128): "
                         f"use method='nystrom'")
    if method == "nystrom":
        check_positive(n_landmarks, "n_landmarks", integer=True)
        if n_landmarks > n:
            raise ValueError(f"n_landmarks must be <= the number of pixels H*W = {n}, got "
                             f"{n_landmarks}")
    t = log_step_grid(10**6) if steps is None else torch.unique(_check_steps(steps))  # sorted
    return method, t


def _ntk_filter(u, y, patch_size, depth, method, n_landmarks, t, rule, sigma, x, estimates,
                generator) -> KernelFilter:
    """:func:`ntk_filter` for checked arguments (``method`` resolved, ``t`` sorted)."""
    C, H, W = y.shape
    d = C * H * W
    y64 = y.detach().to(torch.float64)
    u64 = u.detach().to(torch.float64)
    landmarks = None
    if method == "nystrom":
        landmarks = landmark_pixels((H, W), n_landmarks, generator=generator)
    eigenpairs = partial(_eigenpairs, patch_size=patch_size, depth=depth, landmarks=landmarks)
    lam, V = eigenpairs(u64)  # of the NTK of u
    rule = "oracle" if x is not None else rule
    if not float(lam[0]) > 0:
        return _zero_kernel(y64, t, rule, lam, V, landmarks)
    lr = 1.0 / float(lam[0])
    fitted = 1.0 - _remaining(lam, t.to(lam.device), lr)  # (T, m): the gains g^t
    yf = y64.reshape(C, H * W)  # (C, n)
    coef = yf @ V  # (C, m)
    z = None
    if estimates:
        check_memory(8 * len(t) * (2 * d + lam.numel()),
                     f"the estimates at {len(t)} steps of a {C}x{H}x{W} image",
                     "pass fewer steps or estimates=False")
        z = _gd_filter(y64, lam, V, t, lr)  # (T, C, H, W)
        residual = _squared_distance(z, y64)  # (T,)
    else:
        residual = _spectral_residual(yf, coef, fitted)  # (T,)
    df = torch.zeros(len(t), dtype=torch.float64)
    curve = None
    if x is not None:
        risk, index, curve = _oracle(x, z, V, coef, fitted)
    elif rule == "discrepancy":
        risk, index = residual, _discrepancy_index(residual, d, sigma)
    else:
        follows = u.shape == y.shape and torch.equal(u64, y64)  # the kernel of y itself
        divergence = _probe_divergence(y64, V, fitted, coef, t,
                                       eigenpairs if follows else None, generator)
        df = divergence / C
        risk = _sure_curve(residual, d, sigma, 2 * sigma**2 * divergence)
        index = int(torch.argmin(risk))
    step = int(t[index])
    x_hat = z[index] if z is not None else _gd_filter(y64, lam, V, torch.tensor([step]), lr)[0]
    return KernelFilter(x_hat=x_hat, step=step, index=index, rule=rule, steps=t,
                        residual=residual, risk=risk, df=df, psnr=curve, estimates=z,
                        eigvals=lam, eigvecs=V, lr=lr, landmarks=landmarks)


def _eigenpairs(u, patch_size, depth, landmarks):
    """Eigenpairs of the NTK of input ``u``: exact, or Nyström on ``landmarks``."""
    if landmarks is None:
        return eigh_psd(ntk_closed_form(u, patch_size, depth))
    columns = ntk_closed_form(u, patch_size, depth, columns=landmarks)  # (n, m)
    return nystrom_eigenpairs(columns, landmarks)


def _zero_kernel(y, t, rule, lam, V, landmarks) -> KernelFilter:
    """An all-zero image has a zero kernel: gradient descent never leaves ``z^0 = 0``."""
    zeros = torch.zeros(len(t), dtype=torch.float64)
    return KernelFilter(x_hat=torch.zeros_like(y), step=0, index=0, rule=rule, steps=t,
                        residual=zeros, risk=zeros, df=zeros, psnr=None, estimates=None,
                        eigvals=lam[:0], eigvecs=V[:, :0], lr=float("inf"),
                        landmarks=landmarks)


def _oracle(x, z, V, coef, fitted):
    """The oracle's curve ``||z^t - x||^2``, its best index and (from the images) PSNR."""
    x64 = x.detach().to(torch.float64)
    if z is None:
        risk = _spectral_error(x64, V, coef, fitted)  # (T,)
        return risk, int(torch.argmin(risk)), None
    curve = torch.tensor([psnr(zt, x) for zt in z], dtype=torch.float64)  # (T,)
    return _squared_distance(z, x64), int(torch.argmax(curve)), curve


def _spectral_residual(yf, coef, fitted):
    """``||z^t - y||^2 = sum_i (1 - g_i)^2 c_i^2 + ||y - V V^T y||^2`` per step: (T,)."""
    c2 = coef.pow(2).sum(0)  # (m,)
    return (1.0 - fitted).pow(2) @ c2 + (yf.pow(2).sum() - c2.sum())  # (T,)


def _spectral_error(x, V, coef, fitted):
    """``||z^t - x||^2 = ||x||^2 - 2 sum_i g_i c_i a_i + sum_i g_i^2 c_i^2``: (T,)."""
    xf = x.reshape(x.shape[0], -1)  # (C, n)
    a = xf @ V  # (C, m)
    return (xf.pow(2).sum() - 2 * fitted @ (coef * a).sum(0)
            + fitted.pow(2) @ coef.pow(2).sum(0))  # (T,)


def _probe_divergence(y, V, fitted, coef, t, eigenpairs, generator):
    """``b . (z^t(y + eps b) - z^t(y)) / eps`` for one Gaussian probe ``b``: (T,).

    Each output is taken in its own eigenbasis: the kernel is rebuilt from ``y + eps b``
    by ``eigenpairs`` when it is the kernel of ``y`` (else ``eigenpairs`` is None).
    """
    C, H, W = y.shape
    b = torch.randn(y.shape, generator=generator, dtype=torch.float64)
    b = b.to(y.device)  # (C, H, W)
    bf = b.reshape(C, H * W)  # (C, n)
    yf = y.reshape(C, H * W)  # (C, n)
    V_b, fitted_b = V, fitted
    if eigenpairs is not None:
        lam_b, V_b = eigenpairs(y + PROBE_EPS * b)
        fitted_b = 1.0 - _remaining(lam_b, t.to(lam_b.device), 1.0 / float(lam_b[0]))
    b_dot_zb = fitted_b @ ((bf @ V_b) * ((yf + PROBE_EPS * bf) @ V_b)).sum(0)  # (T,)
    b_dot_z = fitted @ ((bf @ V) * coef).sum(0)  # (T,)
    return (b_dot_zb - b_dot_z) / PROBE_EPS
