"""Denoising without training: the closed-form NTK filter of the noisy image, stopped early.

The poster's claim "CNNs can be replaced by closed form NTK + Nyström" as one function,
:func:`ntk_denoise`: build the infinite-width NTK of the single-hidden-layer CNN (or of a
deeper vanilla CNN) from the noisy image's own patches, take its eigenpairs (exactly, or by
Nyström from a few landmark columns), run gradient descent in closed form for every step at
once, and stop at the step chosen by a rule that needs no clean image.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import torch

from ntkutils._checks import (
    check_generator,
    check_image,
    check_patch_size,
    check_positive,
    check_scale,
    check_sigma,
)
from ntkutils.filters import (
    _check_steps,
    _remaining,
    eigh_psd,
    gd_filter,
    landmark_pixels,
    nystrom_eigenpairs,
)

__all__ = ["NTKDenoiseInfo", "ntk_denoise"]

#: Images with at most this many pixels (64 x 64) use the exact eigendecomposition.
EXACT_MAX_PIXELS = 4096

#: ``method="exact"`` is refused above this many pixels (128 x 128: a 2 GiB kernel).
EXACT_LIMIT_PIXELS = 16384

_RULES = ("sure", "discrepancy")


@dataclass(frozen=True)
class NTKDenoiseInfo:
    """What :func:`ntk_denoise` did (returned with ``return_info=True``).

    Attributes
    ----------
    step : int
        The gradient-descent step ``t`` returned.
    rule : str
        ``"sure"``, ``"discrepancy"`` or ``"oracle"`` (the clean image was given).
    steps : torch.Tensor, shape (T,)
        The candidate steps.
    risk : torch.Tensor, shape (T,)
        The curve the rule minimised or thresholded, per value (divide-by-``d`` scale):
        the SURE estimate of ``||z^t - x||^2 / d``, the residual ``||z^t - y||^2 / d``
        (discrepancy), or the true ``||z^t - x||^2 / d`` (oracle).
    df : torch.Tensor, shape (T,)
        Degrees of freedom per channel used by SURE (Monte-Carlo divergence / C);
        zeros for the other rules.
    sigma : float
        Noise level used (on the [0, 1] scale).
    sigma_estimated : bool
        Whether ``sigma`` was estimated from ``y``.
    method : str
        ``"exact"`` or ``"nystrom"``.
    n_landmarks : int or None
        Number of Nyström landmarks (``None`` for the exact method).
    rank : int
        Number of eigenpairs used.
    lr : float
        Learning rate, ``1 / lambda_max``.
    lambda_max : float
        Largest eigenvalue of the kernel.
    patch_size, depth : int
        The network whose NTK was used.
    seconds : float
        Wall-clock time of the whole call.
    """

    step: int
    rule: str
    steps: torch.Tensor
    risk: torch.Tensor
    df: torch.Tensor
    sigma: float
    sigma_estimated: bool
    method: str
    n_landmarks: int | None
    rank: int
    lr: float
    lambda_max: float
    patch_size: int
    depth: int
    seconds: float


def _eigenpairs(u, patch_size, depth, landmarks):
    """Eigenpairs of the NTK of input ``u``: exact, or Nyström on ``landmarks``."""
    from ntkutils.kernels import ntk_closed_form

    if landmarks is None:
        return eigh_psd(ntk_closed_form(u, patch_size, depth))
    columns = ntk_closed_form(u, patch_size, depth, columns=landmarks)  # (n, m)
    return nystrom_eigenpairs(columns, landmarks)


def ntk_denoise(
    y: torch.Tensor,
    sigma: float | None = None,
    *,
    patch_size: int = 3,
    depth: int = 1,
    method: str = "auto",
    n_landmarks: int = 512,
    steps=None,
    x: torch.Tensor | None = None,
    rule: str = "sure",
    generator: torch.Generator | None = None,
    return_info: bool = False,
) -> torch.Tensor | tuple[torch.Tensor, NTKDenoiseInfo]:
    """Denoise an image with the closed-form NTK filter of its own patches, stopped early.

    Parameters
    ----------
    y : torch.Tensor, shape (C, H, W)
        Noisy image on the [0, 1] scale, ``C`` = 1 or 3 (values may leave [0, 1]; an image
        on 0..255 is refused: divide it by 255).
    sigma : float, optional
        Noise standard deviation on the [0, 1] scale (``25/255`` is "sigma = 25"; values
        above 1 are refused as the 0..255 scale); estimated with
        :func:`ntkutils.images.estimate_sigma` when ``None``.
    patch_size : int, default 3
        Odd filter side ``k`` of the CNN whose NTK is used.
    depth : int, default 1
        Hidden ``k x k`` convolution layers (1: the single-hidden-layer CNN).
    method : {"auto", "exact", "nystrom"}, default "auto"
        ``"exact"`` eigendecomposes the ``n x n`` kernel (``O(n^3)``; about 10 s at
        64 x 64); ``"nystrom"`` uses ``n_landmarks`` columns; ``"auto"`` is exact up to
        ``n = 4096`` pixels (64 x 64), Nyström above.
    n_landmarks : int, default 512
        Landmark pixels for Nyström (jittered grid, :func:`ntkutils.filters.landmark_pixels`).
    steps : sequence of int or 1-D integer tensor, optional
        Candidate gradient-descent steps; default ``0`` and 150 log-spaced steps up to
        ``10^6`` (with ``lr = 1/lambda_max``).
    x : torch.Tensor, shape (C, H, W), optional
        The clean image.  When given, the step is chosen by the ORACLE (best PSNR), which a
        real denoiser cannot do; ``rule`` is then ignored.
    rule : {"sure", "discrepancy"}, default "sure"
        How to stop without the clean image: the minimiser of Stein's unbiased risk
        estimate, or the first step whose residual reaches the noise level.
    generator : torch.Generator, optional
        Randomness of the landmarks and of the SURE probe.
    return_info : bool, default False
        Also return an :class:`NTKDenoiseInfo`.

    Returns
    -------
    x_hat : torch.Tensor, shape (C, H, W)
        The estimate, clamped to [0, 1], in the dtype of ``y``.
    info : NTKDenoiseInfo
        Only with ``return_info=True``.

    Notes
    -----
    With ``Theta`` the NTK of the CNN at input ``y`` (:func:`ntkutils.kernels.ntk_closed_form`,
    one kernel for all channels), ``Theta ~ V diag(lam) V^T`` and ``lr = 1/lambda_max``,
    gradient descent from ``z^0 = 0`` gives (:func:`ntkutils.filters.gd_filter`)

    .. math:: z^t = V \\operatorname{diag}\\big(1 - (1 - lr\\,\\lambda_i)^t\\big) V^T y .

    SURE needs the divergence of the map ``y -> z^t``.  Because ``Theta`` is built from
    ``y`` itself, the trace of the filter (:func:`ntkutils.filters.degrees_of_freedom`)
    badly underestimates it (the noise is fitted through the kernel too, and the
    fixed-kernel SURE then stops far too late).  So the divergence is estimated by Monte
    Carlo (Ramani, Blu & Unser 2008), ``b^T (z^t(y + eps b) - z^t(y)) / eps`` with one
    Gaussian probe ``b`` and ``eps = 1e-3``; this rebuilds the kernel once more (twice
    the cost).  All steps are scored at once in the eigenbasis, without forming ``z^t``.
    The discrepancy rule stops at the first ``t`` with ``||z^t - y||^2 <= d sigma^2``.
    An all-zero ``y`` has a zero kernel; gradient descent never leaves ``z^0 = 0``, so the
    result is ``y`` itself (black), at step 0.

    References
    ----------
    J. Tachella, J. Tang, M. Davies, "The neural tangent link between CNN denoisers and
    non-local filters", CVPR 2021.  S. Ramani, T. Blu, M. Unser, "Monte-Carlo SURE: a
    black-box optimization of regularization parameters for general denoising
    algorithms", IEEE TIP 2008.

    Examples
    --------
    >>> import torch
    >>> from ntkutils.images import load_image, add_noise, psnr
    >>> x = load_image("camera", size=32)
    >>> y = add_noise(x, 25 / 255, generator=torch.Generator().manual_seed(0))
    >>> x_hat = ntk_denoise(y, 25 / 255)
    >>> psnr(x_hat, x) > psnr(y.clamp(0, 1), x) + 2
    True
    """
    start = time.perf_counter()
    check_image(y, "y")
    check_scale(y, "y", noisy=True)
    C, H, W = y.shape
    n = H * W
    check_patch_size(patch_size, image_shape=(H, W))
    check_positive(depth, "depth", integer=True)
    if method not in ("auto", "exact", "nystrom"):
        raise ValueError(f"method must be 'auto', 'exact' or 'nystrom', got {method!r}")
    if rule not in _RULES:
        raise ValueError(f"rule must be 'sure' or 'discrepancy', got {rule!r}")
    check_generator(generator)
    if not isinstance(return_info, bool):
        raise TypeError(f"return_info must be a bool, got {return_info!r}")
    if x is not None:
        check_image(x, "x")
        check_scale(x, "x")
        if x.shape != y.shape:
            raise ValueError(f"x must have the shape of y {tuple(y.shape)}, got "
                             f"{tuple(x.shape)}")
    sigma_estimated = sigma is None
    if sigma_estimated:
        from ntkutils.images import estimate_sigma

        sigma = float(estimate_sigma(y))
        if not sigma > 0:
            raise ValueError("sigma could not be estimated from y (got 0); pass sigma=...")
    else:
        check_sigma(sigma, "sigma")
    if method == "auto":
        method = "exact" if n <= EXACT_MAX_PIXELS else "nystrom"
    if method == "exact" and n > EXACT_LIMIT_PIXELS:
        raise ValueError(f"method='exact' builds the n x n kernel and eigendecomposes it in "
                         f"O(n^3); n = {n} pixels is more than {EXACT_LIMIT_PIXELS} (128 x 128): "
                         f"use method='nystrom'")
    landmarks = None
    if method == "nystrom":
        check_positive(n_landmarks, "n_landmarks", integer=True)
        if n_landmarks > n:
            raise ValueError(f"n_landmarks must be <= the number of pixels H*W = {n}, got "
                             f"{n_landmarks}")
        landmarks = landmark_pixels((H, W), n_landmarks, generator=generator)
    if steps is None:
        grid = torch.logspace(0, 6, 150, dtype=torch.float64).round().long()
        t = torch.unique(torch.cat([torch.zeros(1, dtype=torch.long), grid]))
    else:
        t = torch.unique(_check_steps(steps))  # sorted
    y64 = y.detach().to(torch.float64)
    yf = y64.reshape(C, n)  # (C, n)
    d = C * n

    lam, V = _eigenpairs(y64, patch_size, depth, landmarks)
    if not float(lam[0]) > 0:
        # an all-zero image has a zero kernel: gradient descent never leaves z^0 = 0
        x_hat = torch.zeros_like(y)
        if not return_info:
            return x_hat
        return x_hat, NTKDenoiseInfo(
            step=0, rule="oracle" if x is not None else rule, steps=t,
            risk=torch.zeros(len(t), dtype=torch.float64),
            df=torch.zeros(len(t), dtype=torch.float64), sigma=float(sigma),
            sigma_estimated=sigma_estimated, method=method,
            n_landmarks=n_landmarks if method == "nystrom" else None, rank=0, lr=float("inf"),
            lambda_max=0.0, patch_size=patch_size, depth=depth,
            seconds=time.perf_counter() - start)
    lr = 1.0 / float(lam[0])
    fitted = 1.0 - _remaining(lam, t.to(lam.device), lr)  # (T, m)
    coef = yf @ V  # (C, m)
    df = torch.zeros(len(t), dtype=torch.float64)
    if x is not None:
        xf = x.detach().to(torch.float64).reshape(C, n)  # (C, n)
        a = xf @ V  # (C, m)
        # ||z^t - x||^2 = ||x||^2 - 2 sum phi c a + sum phi^2 c^2
        risk = (xf.pow(2).sum() - 2 * fitted @ (coef * a).sum(0)
                + fitted.pow(2) @ coef.pow(2).sum(0))  # (T,)
        idx = int(torch.argmin(risk))
        rule_used = "oracle"
    else:
        c2 = coef.pow(2).sum(0)  # (m,)
        resid = (1.0 - fitted).pow(2) @ c2 + (yf.pow(2).sum() - c2.sum())  # (T,)
        if rule == "discrepancy":
            risk = resid
            below = torch.nonzero(resid <= d * sigma**2)
            idx = int(below[0]) if below.numel() else len(t) - 1
        else:
            eps = 1e-3
            b = torch.randn(y64.shape, generator=generator, dtype=torch.float64)
            b = b.to(y64.device)  # (C, H, W)
            bf = b.reshape(C, n)  # (C, n)
            lam_b, V_b = _eigenpairs(y64 + eps * b, patch_size, depth, landmarks)
            fitted_b = 1.0 - _remaining(lam_b, t.to(lam_b.device), 1.0 / float(lam_b[0]))
            # b . z^t(y + eps b) - b . z^t(y), both in their own eigenbasis
            b_dot_zb = fitted_b @ ((bf @ V_b) * ((yf + eps * bf) @ V_b)).sum(0)  # (T,)
            b_dot_z = fitted @ ((bf @ V) * coef).sum(0)  # (T,)
            del V_b
            divergence = (b_dot_zb - b_dot_z) / eps  # (T,)
            df = divergence / C
            risk = resid - d * sigma**2 + 2 * sigma**2 * divergence
            idx = int(torch.argmin(risk))
        rule_used = rule
    step = int(t[idx])
    x_hat = gd_filter(y64, lam, V, [step], lr=lr)[0].clamp(0.0, 1.0).to(y.dtype)
    if not return_info:
        return x_hat
    info = NTKDenoiseInfo(
        step=step, rule=rule_used, steps=t, risk=risk / d, df=df, sigma=float(sigma),
        sigma_estimated=sigma_estimated, method=method,
        n_landmarks=n_landmarks if method == "nystrom" else None, rank=int(lam.numel()),
        lr=lr, lambda_max=float(lam[0]), patch_size=patch_size, depth=depth,
        seconds=time.perf_counter() - start,
    )
    return x_hat, info
