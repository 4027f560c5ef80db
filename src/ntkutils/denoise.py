"""Denoising without training: the closed-form NTK filter of the noisy image, stopped early.

The poster's claim "CNNs can be replaced by closed form NTK + Nyström" as one function,
:func:`ntk_denoise`, with two recipes:

- ``recipe="poster"``, the paper's filter: the infinite-width NTK of the single-hidden-layer
  CNN (or of a deeper vanilla CNN) built from the noisy image's own raw patches over the whole
  image, its eigenpairs (exactly, or by Nyström from a few landmark columns), gradient descent
  in closed form for every step at once, one step for the whole image: the kernel-filter
  pipeline :func:`ntkutils.pipeline.ntk_filter` with ``u = y``.
- ``recipe="windowed"`` (the default), the course's denoiser: the same kernel of *centred*
  patches in small overlapping windows (:mod:`ntkutils.windows`), a step per window, then a
  second pass with the kernel of that first estimate (the pilot).

Both choose their steps with Stein's unbiased risk estimate and need no clean image.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import torch

from ntkutils._checks import (
    check_generator,
    check_image,
    check_memory,
    check_patch_size,
    check_positive,
    check_scale,
    check_sigma,
)
from ntkutils.images import estimate_sigma
from ntkutils.pipeline import _check_clean_image, _check_options, _ntk_filter
from ntkutils.spectral import _check_steps
from ntkutils.stopping import PROBE_EPS, log_step_grid
from ntkutils.windows import windowed_filter

__all__ = ["NTKDenoiseInfo", "WindowedDenoiseInfo", "ntk_denoise"]

_RULES = ("sure", "discrepancy")
_RECIPES = ("windowed", "poster")
_POSTER_ONLY = ("depth", "method", "n_landmarks")
_WINDOWED_ONLY = ("window", "stride", "pilot")


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


@dataclass(frozen=True)
class WindowedDenoiseInfo:
    """What :func:`ntk_denoise` did with ``recipe="windowed"`` (``return_info=True``).

    Attributes
    ----------
    rule : str
        ``"sure"`` or ``"oracle"`` (the clean image was given).
    steps : torch.Tensor, shape (L,)
        The step ``t`` chosen in each of the ``L`` windows by the last pass.
    first_steps : torch.Tensor, shape (L,)
        The steps of the first pass (equal to ``steps`` without a pilot).
    candidates : torch.Tensor, shape (S,)
        The candidate steps.
    sigma : float
        Noise level used (on the [0, 1] scale).
    sigma_estimated : bool
        Whether ``sigma`` was estimated from ``y``.
    patch_size, window, stride : int
        Patch side ``k``, window side ``T`` and window offset.
    pilot : bool
        Whether the second pass (kernel of the first estimate) ran.
    seconds : float
        Wall-clock time of the whole call.
    """

    rule: str
    steps: torch.Tensor
    first_steps: torch.Tensor
    candidates: torch.Tensor
    sigma: float
    sigma_estimated: bool
    patch_size: int
    window: int
    stride: int
    pilot: bool
    seconds: float


def ntk_denoise(
    y: torch.Tensor,
    sigma: float | None = None,
    *,
    recipe: str = "windowed",
    patch_size: int | None = None,
    window: int | None = None,
    stride: int | None = None,
    pilot: bool | None = None,
    depth: int | None = None,
    method: str | None = None,
    n_landmarks: int | None = None,
    steps=None,
    x: torch.Tensor | None = None,
    rule: str = "sure",
    generator: torch.Generator | None = None,
    return_info: bool = False,
) -> torch.Tensor | tuple[torch.Tensor, NTKDenoiseInfo | WindowedDenoiseInfo]:
    """Denoise an image with the closed-form NTK filter of its own patches, stopped early.

    Parameters
    ----------
    y : torch.Tensor, shape (C, H, W)
        Noisy image on the [0, 1] scale, ``C`` = 1 or 3 (values may leave [0, 1]; an image
        on 0..255 is refused: divide it by 255).  The result is on ``y``'s device.
    sigma : float, optional
        Noise standard deviation on the [0, 1] scale (``25/255`` is "sigma = 25"; values
        above 1 are refused as the 0..255 scale); estimated with
        :func:`ntkutils.images.estimate_sigma` when ``None``.
    recipe : {"windowed", "poster"}, default "windowed"
        ``"windowed"``: the course's denoiser (kernel of centred patches in overlapping
        windows, a step per window, a pilot pass; see Notes).  ``"poster"``: the paper's
        filter (kernel of the raw patches over the whole image, one step).
    patch_size : int, optional
        Odd patch side ``k`` of the CNN whose NTK is used; default 5 (windowed) or 3 (poster).
    window : int, default 10
        Windowed only: window side ``T`` (at most the image's smaller side; cost ``O(T^6)``
        per window).
    stride : int, default 8
        Windowed only: offset between windows, ``1 <= stride <= window``.
    pilot : bool, default True
        Windowed only: run the second pass with the kernel of the first estimate.
    depth : int, default 1
        Poster only: hidden ``k x k`` convolution layers (1: the single-hidden-layer CNN).
    method : {"auto", "exact", "nystrom"}, default "auto"
        Poster only: ``"exact"`` eigendecomposes the ``n x n`` kernel (``O(n^3)``; about
        10 s at 64 x 64); ``"nystrom"`` uses ``n_landmarks`` columns; ``"auto"`` is exact up
        to ``n = 4096`` pixels (64 x 64), Nyström above.
    n_landmarks : int, default 512
        Poster only: landmark pixels for Nyström (:func:`ntkutils.nystrom.landmark_pixels`).
    steps : sequence of int or 1-D integer tensor, optional
        Candidate gradient-descent steps (``lr = 1/lambda_max``).  Default: poster, ``0``
        and 150 log-spaced steps up to ``10^6``; windowed, 21 log-spaced steps from 1 to
        ``10^5`` (steps must be >= 1 there).
    x : torch.Tensor, shape (C, H, W), optional
        The clean image.  When given, the steps are chosen by the ORACLE (best PSNR; per
        window for the windowed recipe), which a real denoiser cannot do; ``rule`` is then
        ignored.
    rule : {"sure", "discrepancy"}, default "sure"
        How to stop without the clean image: the minimiser of Stein's unbiased risk
        estimate, or (poster only) the first step whose residual reaches the noise level.
    generator : torch.Generator, optional
        Randomness of the SURE probe (and of the landmarks).
    return_info : bool, default False
        Also return an :class:`NTKDenoiseInfo` (poster) or :class:`WindowedDenoiseInfo`.

    Returns
    -------
    x_hat : torch.Tensor, shape (C, H, W)
        The estimate, clamped to [0, 1], in the dtype of ``y``.
    info : NTKDenoiseInfo or WindowedDenoiseInfo
        Only with ``return_info=True``.

    Notes
    -----
    **Poster.**  With ``Theta`` the NTK of the CNN at input ``y``
    (:func:`ntkutils.kernels.ntk_closed_form`, one kernel for all channels),
    ``Theta ~ V diag(lam) V^T`` and ``lr = 1/lambda_max``, gradient descent from ``z^0 = 0``
    gives (:func:`ntkutils.spectral.gd_filter`)

    .. math:: z^t = V \\operatorname{diag}\\big(1 - (1 - lr\\,\\lambda_i)^t\\big) V^T y .

    SURE needs the divergence of the map ``y -> z^t``.  Because ``Theta`` is built from
    ``y`` itself, the trace of the filter (:func:`ntkutils.spectral.degrees_of_freedom`)
    badly underestimates it (the noise is fitted through the kernel too, and the
    fixed-kernel SURE then stops far too late).  So the divergence is estimated by Monte
    Carlo (Ramani, Blu & Unser 2008), ``b^T (z^t(y + eps b) - z^t(y)) / eps`` with one
    Gaussian probe ``b`` and ``eps = 1e-3``; this rebuilds the kernel once more (twice
    the cost).  The discrepancy rule stops at the first ``t`` with
    ``||z^t - y||^2 <= d sigma^2``.

    **Windowed.**  Three changes to the poster's filter, each measured in ``bench/``:
    the image's channel means ``mu`` are removed before the kernel is built and added back
    after filtering (the ReLU kernels compare patches by angle, and the raw patches of a
    positive image all point nearly the same way); the kernel is built and eigendecomposed
    exactly in overlapping ``T x T`` windows, each with its own step chosen by the
    Monte-Carlo SURE (:func:`ntkutils.windows.windowed_filter`), the windows averaged with
    weights ``1 / sum_i g_i^2``; and a second pass filters ``y`` again with the kernel of
    the first estimate, its probe carried through the first pass so that SURE sees the
    whole map ``y -> x_hat``.  Colour: one kernel from the colour patches (``3 k^2``
    values) filters the three channels alike, as the CNN's NTK does.  A Wiener gain in the
    kernel's eigenbasis was measured and left out: it did worse than the gradient-descent
    gains.  No ``n x n`` matrix is formed; the cost is linear in the number of pixels
    (about 3.5 s for 256 x 256 colour on 2 CPU cores).

    An all-zero ``y`` has a zero kernel; gradient descent never leaves ``z^0 = 0``, so the
    result is ``y`` itself (black).

    References
    ----------
    J. Tachella, J. Tang, M. Davies, "The neural tangent link between CNN denoisers and
    non-local filters", CVPR 2021.  S. Ramani, T. Blu, M. Unser, "Monte-Carlo SURE: a
    black-box optimization of regularization parameters for general denoising
    algorithms", IEEE TIP 2008.  K. Dabov et al., "Image denoising by sparse 3-D
    transform-domain collaborative filtering", IEEE TIP 2007 (pilot and aggregation).

    Examples
    --------
    >>> import torch
    >>> from ntkutils.images import load_image, add_noise, psnr
    >>> x = load_image("camera", size=32)
    >>> y = add_noise(x, 25 / 255, generator=torch.Generator().manual_seed(0))
    >>> x_hat = ntk_denoise(y, 25 / 255)
    >>> psnr(x_hat, x) > psnr(y.clamp(0, 1), x) + 2
    True
    >>> x_poster = ntk_denoise(y, 25 / 255, recipe="poster")
    """
    start = time.perf_counter()
    check_image(y, "y")
    check_scale(y, "y", noisy=True)
    _check_recipe(recipe, {"window": window, "stride": stride, "pilot": pilot,
                           "depth": depth, "method": method, "n_landmarks": n_landmarks})
    if rule not in _RULES:
        raise ValueError(f"rule must be 'sure' or 'discrepancy', got {rule!r}")
    check_generator(generator)
    if not isinstance(return_info, bool):
        raise TypeError(f"return_info must be a bool, got {return_info!r}")
    _check_clean_image(x, y)
    sigma_estimated = sigma is None
    sigma = _noise_level(y, sigma)
    if recipe == "windowed":
        return _windowed(y, sigma, sigma_estimated, patch_size, window, stride, pilot, steps,
                         x, rule, generator, return_info, start)
    return _poster(y, sigma, sigma_estimated, 3 if patch_size is None else patch_size,
                   1 if depth is None else depth, "auto" if method is None else method,
                   512 if n_landmarks is None else n_landmarks, steps, x, rule, generator,
                   return_info, start)


def _check_recipe(recipe, given) -> None:
    """A known recipe, and none of the other recipe's options among those ``given``."""
    if recipe not in _RECIPES:
        raise ValueError(f"recipe must be 'windowed' or 'poster', got {recipe!r}")
    other = _POSTER_ONLY if recipe == "windowed" else _WINDOWED_ONLY
    wrong = [name for name in other if given[name] is not None]
    if wrong:
        owner = "poster" if recipe == "windowed" else "windowed"
        raise ValueError(f"{', '.join(wrong)} only apply to recipe={owner!r}; this call uses "
                         f"recipe={recipe!r}")


def _noise_level(y, sigma):
    """``sigma`` checked, or estimated from ``y``."""
    if sigma is not None:
        check_sigma(sigma, "sigma")
        return float(sigma)
    sigma = float(estimate_sigma(y))
    if not sigma > 0:
        raise ValueError("sigma could not be estimated from y (got 0); pass sigma=...")
    return sigma


def _windowed(y, sigma, sigma_estimated, patch_size, window, stride, pilot, steps, x, rule,
              generator, return_info, start):
    """The windowed recipe: arguments checked, then one or two windowed passes."""
    C, H, W = y.shape
    patch_size = 5 if patch_size is None else patch_size
    check_patch_size(patch_size, image_shape=(H, W))
    window = min(10 if window is None else check_positive(window, "window", integer=True),
                 H, W)
    stride = 8 if stride is None else check_positive(stride, "stride", integer=True)
    if stride > window:
        raise ValueError(f"stride must be <= window = {window} (windows must cover the image), "
                         f"got {stride}")
    pilot = True if pilot is None else pilot
    if not isinstance(pilot, bool):
        raise TypeError(f"pilot must be a bool, got {pilot!r}")
    if rule != "sure":
        raise ValueError(f"recipe='windowed' stops by rule='sure' only, got rule={rule!r} "
                         f"(use recipe='poster' for the discrepancy rule)")
    if steps is None:
        t = log_step_grid(10**5, 21, zero=False).to(torch.float64)
    else:
        t = torch.unique(_check_steps(steps)).to(torch.float64)
        if float(t[0]) < 1:
            raise ValueError("steps must be >= 1 for recipe='windowed' (step 0 is the image "
                             f"mean), got {int(t[0])}")
    check_memory(8 * (4 * C * patch_size**2 + 8 * C) * H * W + 2**28,
                 f"the patches of a {H} x {W} image", "denoise a smaller image or crop")
    y64 = y.detach().to(torch.float64)
    t = t.to(y64.device)
    x64 = None if x is None else x.detach().to(y64)
    b = torch.randn(y.shape, generator=generator, dtype=torch.float64).to(y64.device)
    y_b = y64 + PROBE_EPS * b
    opts = dict(patch_size=patch_size, window=window, stride=stride, steps=t)
    probe = None if x64 is not None else (y_b, y_b, b)
    first = windowed_filter(y64, y64, sigma, probe=probe, x=x64, **opts)
    last = first
    if pilot:
        probe = None if x64 is not None else (first.probe_estimate, y_b, b)
        last = windowed_filter(first.estimate, y64, sigma, probe=probe, x=x64, **opts)
    x_hat = last.estimate.clamp(0.0, 1.0).to(y.dtype)
    if not return_info:
        return x_hat
    return x_hat, WindowedDenoiseInfo(
        rule="oracle" if x is not None else "sure", steps=last.steps.cpu(),
        first_steps=first.steps.cpu(), candidates=t.cpu(), sigma=sigma,
        sigma_estimated=sigma_estimated, patch_size=patch_size, window=window, stride=stride,
        pilot=pilot, seconds=time.perf_counter() - start)


def _poster(y, sigma, sigma_estimated, patch_size, depth, method, n_landmarks, steps, x, rule,
            generator, return_info, start):
    """The poster's recipe: one kernel of the raw patches over the whole image, one step."""
    method, t = _check_options(y.shape[1:], patch_size, depth, method, n_landmarks, steps)
    f = _ntk_filter(y, y, patch_size, depth, method, n_landmarks, t, rule, sigma, x, False,
                    generator)
    x_hat = f.x_hat.clamp(0.0, 1.0).to(y.dtype)
    if not return_info:
        return x_hat
    return x_hat, NTKDenoiseInfo(
        step=f.step, rule=f.rule, steps=f.steps, risk=f.risk / y.numel(), df=f.df,
        sigma=sigma, sigma_estimated=sigma_estimated, method=method,
        n_landmarks=n_landmarks if method == "nystrom" else None, rank=f.rank, lr=f.lr,
        lambda_max=f.lambda_max, patch_size=patch_size, depth=depth,
        seconds=time.perf_counter() - start)
