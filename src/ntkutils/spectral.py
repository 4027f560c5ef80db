"""The gradient-descent (twicing) filter of a fixed kernel, through the kernel's eigenpairs.

In the wide limit, gradient descent on ``1/2 ||z - y||^2`` moves the network output as
``z^{t+1} = z^t + lr * Theta (y - z^t)`` with a fixed kernel ``Theta`` (``n x n``, the same
for every colour channel).  Everything in this module is a function of ``Theta`` through its
eigenpairs ``Theta = V diag(lam) V^T``:

- :func:`eigh_psd`, the exact eigenpairs (approximate ones come from
  :mod:`ntkutils.nystrom`);
- :func:`gd_filter` (every step ``t`` at once, in closed form) and
  :func:`gd_filter_iterative` (the explicit iteration, to check it);
- :func:`degrees_of_freedom` (the filter's trace) and :func:`bias_variance` (its risk,
  split in two).

Choosing the step is :mod:`ntkutils.stopping`'s job.  Images are ``(C, H, W)``; a
flattened image is ``(C, n)`` with pixel ``i = row * W + col``.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch

from ._checks import (
    check_float_dtype,
    check_image,
    check_memory,
    check_positive,
    check_sigma,
    check_tensor,
)
from ._progress import progress_bar

__all__ = [
    "eigh_psd",
    "gd_filter",
    "gd_filter_iterative",
    "degrees_of_freedom",
    "bias_variance",
]


# --------------------------------------------------------------------------- checks
def _check_steps(steps, name: str = "steps") -> torch.Tensor:
    """Steps as a 1-D int64 tensor of values >= 0 (an int is one step)."""
    if isinstance(steps, bool):
        raise TypeError(f"{name} must be ints >= 0, got {steps!r}")
    if isinstance(steps, int):
        steps = [steps]
    if isinstance(steps, torch.Tensor):
        if steps.is_floating_point() or steps.is_complex() or steps.dtype == torch.bool:
            raise TypeError(f"{name} must be an integer tensor, got dtype {steps.dtype}")
        t = steps.detach().cpu().to(torch.int64)
    elif isinstance(steps, (Sequence, range)):
        if not all(isinstance(s, int) and not isinstance(s, bool) for s in steps):
            raise TypeError(f"{name} must be a sequence of ints, got {list(steps)[:5]!r}...")
        t = torch.tensor(list(steps), dtype=torch.int64)
    else:
        raise TypeError(f"{name} must be an int, a sequence of ints or a 1-D integer tensor, "
                        f"got {type(steps).__name__}")
    if t.ndim != 1 or t.numel() == 0:
        raise ValueError(f"{name} must be a non-empty 1-D sequence, got shape {tuple(t.shape)}")
    if bool((t < 0).any()):
        raise ValueError(f"{name} must be >= 0, got min {int(t.min())}")
    return t


def _check_eigpairs(eigvals, eigvecs, n: int | None = None) -> None:
    check_tensor(eigvals, "eigvals", ndim=1)
    check_tensor(eigvecs, "eigvecs", ndim=2)
    if eigvecs.shape[1] != eigvals.shape[0]:
        raise ValueError(f"eigvecs must be (n, m) with m = len(eigvals) = {eigvals.shape[0]}, "
                         f"got shape {tuple(eigvecs.shape)}")
    if n is not None and eigvecs.shape[0] != n:
        raise ValueError(f"eigvecs must have n = H*W = {n} rows, got shape "
                         f"{tuple(eigvecs.shape)}")
    if bool((eigvals < 0).any()):
        raise ValueError(f"eigvals must be >= 0 (clip them with eigh_psd), got min "
                         f"{float(eigvals.min()):.3g}")


def _check_symmetric(K: torch.Tensor) -> None:
    scale = float(K.abs().max())
    asym = float((K - K.T).abs().max())
    if asym > 1e-6 * max(scale, 1e-300):
        raise ValueError(f"K must be symmetric, got max |K - K^T| = {asym:.3g} "
                         f"(max |K| = {scale:.3g})")


def _check_orthonormal(V: torch.Tensor) -> None:
    """``V^T V = I``, probed cheaply: unit columns and ``V^T V g = g`` for a random ``g``."""
    tol = 1e-6 if V.dtype == torch.float64 else 1e-3
    norms = V.norm(dim=0)
    g = torch.randn(V.shape[1], generator=torch.Generator().manual_seed(0),
                    dtype=V.dtype).to(V.device)
    err = max(float((norms - 1).abs().max()),
              float((V.T @ (V @ g) - g).norm() / g.norm()))
    if err > tol:
        raise ValueError(f"eigvecs must have orthonormal columns (V^T V = I), got an error "
                         f"of {err:.3g}; use the eigenvectors of eigh_psd or "
                         f"nystrom_eigenpairs as they are")


def _check_lr(lr, eigvals: torch.Tensor) -> float:
    """``lr`` (default ``1/lambda_max``), refused when gradient descent would be unstable."""
    lam_max = float(eigvals.max())
    if lam_max <= 0:
        raise ValueError("eigvals must contain a positive eigenvalue, got all zeros")
    if lr is None:
        return 1.0 / lam_max
    check_positive(lr, "lr")
    if lr * lam_max >= 2.0:
        raise ValueError(f"lr = {lr:.4g} is unstable: gradient descent needs lr < 2/lambda_max "
                         f"= {2.0 / lam_max:.4g} (lambda_max = {lam_max:.4g}); the default "
                         f"lr = 1/lambda_max is safe")
    return float(lr)


def _check_filter(image, name: str, eigvals, eigvecs, steps, lr) -> tuple[torch.Tensor, float]:
    """An image, eigenpairs on its ``H*W`` pixels, steps and ``lr``: (steps, lr)."""
    check_image(image, name)
    _check_eigpairs(eigvals, eigvecs, image.shape[1] * image.shape[2])
    return _check_steps(steps), _check_lr(lr, eigvals)


def _remaining(eigvals: torch.Tensor, steps: torch.Tensor, lr: float) -> torch.Tensor:
    """``(1 - lr lam_i)^t`` as ``(T, m)``: what is *left* of component ``i`` after ``t`` steps."""
    base = 1.0 - lr * eigvals  # (m,)
    return base[None, :] ** steps.to(eigvals.dtype)[:, None]  # (T, m)


# --------------------------------------------------------------------------- eigenpairs
def eigh_psd(K: torch.Tensor, *, dtype: torch.dtype = torch.float64
             ) -> tuple[torch.Tensor, torch.Tensor]:
    """Eigenpairs of a symmetric positive semi-definite kernel, largest first, clipped at 0.

    Parameters
    ----------
    K : torch.Tensor, shape (n, n)
        Symmetric PSD matrix, e.g. the NTK ``Theta`` of an image with ``n = H*W`` pixels.
    dtype : torch.dtype, default torch.float64
        Precision of the decomposition: float64 or float32.

    Raises
    ------
    ValueError
        If ``K`` is not square, not symmetric, or has an eigenvalue below
        ``-tol * max|eigenvalue|`` (``tol`` 1e-8 in float64, 1e-3 in float32): not PSD
        beyond round-off.

    Returns
    -------
    eigvals : torch.Tensor, shape (n,)
        Eigenvalues in descending order, negative round-off clipped to 0.
    eigvecs : torch.Tensor, shape (n, n)
        Orthonormal eigenvectors as columns, ``K = eigvecs @ diag(eigvals) @ eigvecs.T``.

    Notes
    -----
    ``K = V diag(lam) V^T`` by ``torch.linalg.eigh`` of ``(K + K^T)/2``.  A PSD kernel
    computed in floating point can return tiny negative eigenvalues; the gradient-descent
    filter raises ``1 - lr*lam`` to the power ``t``, so any ``lam < 0`` would grow without
    bound.  They are set to 0.  Cost ``O(n^3)`` time, ``O(n^2)`` memory: about 5-10 s for
    ``n = 4096`` (a 64x64 image) on a 2-core CPU.

    Examples
    --------
    >>> import torch
    >>> K = torch.tensor([[2.0, 1.0], [1.0, 2.0]])
    >>> lam, V = eigh_psd(K)
    >>> lam
    tensor([3., 1.], dtype=torch.float64)
    >>> torch.allclose(V @ torch.diag(lam) @ V.T, K.double())
    True
    """
    check_tensor(K, "K", ndim=2)
    if K.shape[0] != K.shape[1]:
        raise ValueError(f"K must be a square (n, n) matrix, got shape {tuple(K.shape)}")
    dtype = check_float_dtype(dtype)
    if dtype not in (torch.float32, torch.float64):
        raise TypeError(f"dtype must be torch.float32 or torch.float64 (the precisions eigh "
                        f"supports), got {dtype}")
    tol = 1e-8 if K.dtype == torch.float64 and dtype == torch.float64 else 1e-3
    K = K.to(dtype)
    _check_symmetric(K)
    eigvals, eigvecs = torch.linalg.eigh((K + K.T) / 2)
    top = float(eigvals.abs().max())
    if float(eigvals[0]) < -tol * top:
        raise ValueError(f"K must be positive semi-definite, got an eigenvalue "
                         f"{float(eigvals[0]):.3g} (largest |eigenvalue| {top:.3g}); a kernel "
                         f"(Gram) matrix is PSD")
    return eigvals.flip(0).clamp_min(0.0), eigvecs.flip(1)


# --------------------------------------------------------------------------- GD filter
def gd_filter(y: torch.Tensor, eigvals: torch.Tensor, eigvecs: torch.Tensor, steps,
              *, lr: float | None = None, z0: torch.Tensor | None = None) -> torch.Tensor:
    """Gradient descent with a fixed kernel, in closed form, for many steps at once.

    Parameters
    ----------
    y : torch.Tensor, shape (C, H, W)
        Target (the noisy image).  The same kernel acts on each channel.
    eigvals : torch.Tensor, shape (m,)
        Eigenvalues of ``Theta`` (>= 0), e.g. from :func:`eigh_psd` or
        :func:`ntkutils.nystrom.nystrom_eigenpairs`.
    eigvecs : torch.Tensor, shape (n, m)
        Orthonormal eigenvectors, ``n = H*W``.  ``m < n`` (a truncated basis) is allowed.
    steps : int, sequence of int or 1-D integer tensor, shape (T,)
        Gradient-descent steps ``t >= 0`` at which to return the output.
    lr : float, optional
        Learning rate; defaults to ``1/lambda_max``.  Must be ``< 2/lambda_max``.
    z0 : torch.Tensor, shape (C, H, W), optional
        Output at ``t = 0``; defaults to zeros.

    Returns
    -------
    torch.Tensor, shape (T, C, H, W)
        ``z^t`` for every ``t`` in ``steps``, in the dtype of ``y``.

    Notes
    -----
    Unrolling ``z^{t+1} = z^t + lr*Theta (y - z^t)`` gives

    .. math:: z^t = y - (I - lr\\,\\Theta)^t (y - z^0)
              = z^0 + V \\operatorname{diag}\\big(1 - (1 - lr\\,\\lambda_i)^t\\big) V^T (y - z^0),

    so with ``z^0 = 0``, ``z^t = (I - (I - lr Theta)^t) y``: component ``i`` of ``y`` is
    fitted with gain ``1 - (1 - lr lam_i)^t``, large eigenvalues first (twicing).  When
    ``eigvecs`` has ``m < n`` columns (Nyström), the part of ``y - z^0`` outside their span
    is treated as ``lambda = 0``: it is never fitted and stays at ``z^0``.  Stability needs
    ``lr < 2/lambda_max``.  Cost ``O(T n m C)``.

    Examples
    --------
    >>> import torch
    >>> y = torch.tensor([[[1.0, 3.0]]], dtype=torch.float64)  # (1, 1, 2)
    >>> lam, V = eigh_psd(torch.tensor([[2.0, 1.0], [1.0, 2.0]]))
    >>> gd_filter(y, lam, V, [0, 1, 100]).squeeze(1)
    tensor([[[0.0000, 0.0000]],
    <BLANKLINE>
            [[1.6667, 2.3333]],
    <BLANKLINE>
            [[1.0000, 3.0000]]], dtype=torch.float64)
    """
    t, lr = _check_filter(y, "y", eigvals, eigvecs, steps, lr)
    C, H, W = y.shape
    n = H * W
    dtype = torch.promote_types(eigvecs.dtype, y.dtype)
    itemsize = torch.empty((), dtype=dtype).element_size()
    check_memory(itemsize * len(t) * (2 * C * n + eigvals.numel()),
                 f"gd_filter at {len(t)} steps of a {C}x{H}x{W} image",
                 "pass fewer steps (a log-spaced grid, e.g. torch.logspace) or a smaller image")
    _check_orthonormal(eigvecs.to(dtype))
    if z0 is not None:
        check_image(z0, "z0")
        if z0.shape != y.shape:
            raise ValueError(f"z0 must have the shape of y {tuple(y.shape)}, got "
                             f"{tuple(z0.shape)}")
    return _gd_filter(y, eigvals, eigvecs, t, lr, z0)


def _gd_filter(y: torch.Tensor, eigvals: torch.Tensor, eigvecs: torch.Tensor,
               steps: torch.Tensor, lr: float, z0: torch.Tensor | None = None
               ) -> torch.Tensor:
    """:func:`gd_filter` for checked arguments: ``steps`` an int64 tensor, ``lr`` a float."""
    C, H, W = y.shape
    n = H * W
    dtype = torch.promote_types(eigvecs.dtype, y.dtype)
    V = eigvecs.to(dtype)
    r = y.to(dtype).reshape(C, n)  # (C, n)
    if z0 is not None:
        z0f = z0.to(dtype).reshape(C, n)  # (C, n)
        r = r - z0f
    coef = r @ V  # (C, m): <v_i, y - z0>
    fitted = 1.0 - _remaining(eigvals.to(dtype), steps.to(y.device), lr)  # (T, m)
    z = torch.einsum("tm,cm,nm->tcn", fitted, coef, V)  # (T, C, n)
    if z0 is not None:
        z = z + z0f[None]
    return z.reshape(len(steps), C, H, W).to(y.dtype)  # (T, C, H, W)


def _power_iteration(K: torch.Tensor, n_iter: int = 100) -> float:
    """Largest eigenvalue of a symmetric ``K``, from below (power iteration)."""
    v = torch.randn(K.shape[0], generator=torch.Generator().manual_seed(0),
                    dtype=K.dtype).to(K.device)
    lam = 0.0
    for _ in range(n_iter):
        w = K @ v
        norm = float(w.norm())
        if norm == 0:
            return 0.0
        lam, v = float(v @ w) / float(v @ v), w / norm
    return abs(lam)


def gd_filter_iterative(y: torch.Tensor, K: torch.Tensor, n_steps: int, *, lr: float,
                        z0: torch.Tensor | None = None) -> torch.Tensor:
    """Run ``z^{t+1} = z^t + lr * K (y - z^t)`` explicitly (to check :func:`gd_filter`).

    Parameters
    ----------
    y : torch.Tensor, shape (C, H, W)
        Target image.
    K : torch.Tensor, shape (n, n)
        Symmetric kernel, ``n = H*W``, applied to each channel.
    n_steps : int
        Number of steps (>= 0).
    lr : float
        Learning rate, below ``2/lambda_max`` (``lambda_max`` of ``K``, estimated by
        power iteration); a larger one, for which the iteration diverges, is refused.
    z0 : torch.Tensor, shape (C, H, W), optional
        Starting output; defaults to zeros.

    Returns
    -------
    torch.Tensor, shape (n_steps + 1, C, H, W)
        ``z^0, z^1, ..., z^{n_steps}`` in the common dtype of ``y`` and ``K``.

    Notes
    -----
    This is gradient descent on ``1/2 ||z - y||^2`` in function space with the kernel as
    metric, the output dynamics of a wide network.  Cost ``O(n_steps n^2 C)``.

    Examples
    --------
    >>> import torch
    >>> y = torch.tensor([[[1.0, 3.0]]], dtype=torch.float64)
    >>> K = torch.tensor([[2.0, 1.0], [1.0, 2.0]], dtype=torch.float64)
    >>> gd_filter_iterative(y, K, 1, lr=1 / 3)[1]
    tensor([[[1.6667, 2.3333]]], dtype=torch.float64)
    """
    check_image(y, "y")
    C, H, W = y.shape
    n = H * W
    check_tensor(K, "K", ndim=2)
    if tuple(K.shape) != (n, n):
        raise ValueError(f"K must be (n, n) with n = H*W = {n}, got shape {tuple(K.shape)}")
    if isinstance(n_steps, bool) or not isinstance(n_steps, int):
        raise TypeError(f"n_steps must be an int >= 0, got {n_steps!r}")
    if n_steps < 0:
        raise ValueError(f"n_steps must be >= 0, got {n_steps}")
    check_positive(lr, "lr")
    dtype = torch.promote_types(K.dtype, y.dtype)
    check_memory((n_steps + 1) * C * n * torch.empty((), dtype=dtype).element_size(),
                 f"gd_filter_iterative with n_steps = {n_steps} on a {C}x{H}x{W} image",
                 "take fewer steps, or use gd_filter, which gives chosen steps in closed form")
    K = K.to(dtype)
    _check_symmetric(K)
    lam_max = _power_iteration(K)
    if lam_max > 0 and lr * lam_max >= 2:
        raise ValueError(f"lr = {lr:.4g} is unstable: gradient descent needs lr < 2/lambda_max "
                         f"= {2 / lam_max:.4g} (lambda_max of K = {lam_max:.4g})")
    yf = y.to(dtype).reshape(C, n)  # (C, n)
    if z0 is None:
        z = torch.zeros_like(yf)
    else:
        check_image(z0, "z0")
        if z0.shape != y.shape:
            raise ValueError(f"z0 must have the shape of y {tuple(y.shape)}, got "
                             f"{tuple(z0.shape)}")
        z = z0.to(dtype).reshape(C, n).clone()  # (C, n)
    out = [z]
    for _ in progress_bar(range(n_steps), desc="GD filter", leave=False):
        z = z + lr * (yf - z) @ K  # (C, n); K symmetric: (K r_c)^T = r_c^T K
        out.append(z)
    return torch.stack(out).reshape(n_steps + 1, C, H, W)  # (T, C, H, W)



# --------------------------------------------------------------- degrees of freedom, risk
def degrees_of_freedom(eigvals: torch.Tensor, steps, lr: float | None = None) -> torch.Tensor:
    """Effective degrees of freedom of the gradient-descent filter after ``t`` steps.

    Parameters
    ----------
    eigvals : torch.Tensor, shape (m,)
        Eigenvalues of ``Theta`` (>= 0).
    steps : int, sequence of int or 1-D integer tensor, shape (T,)
        Steps ``t >= 0``.
    lr : float, optional
        Learning rate, default ``1/lambda_max``, must be ``< 2/lambda_max``.

    Returns
    -------
    torch.Tensor, shape (T,)
        ``df(t)`` for one channel, between 0 and ``m``, increasing in ``t`` when
        ``lr <= 1/lambda_max``.  For ``C`` channels the total is ``C * df(t)``.

    Notes
    -----
    .. math:: \\mathrm{df}(t) = \\operatorname{tr}\\big(I - (I - lr\\,\\Theta)^t\\big)
              = \\sum_i \\big[1 - (1 - lr\\,\\lambda_i)^t\\big],

    the trace of the linear filter ``y -> z^t``: the number of directions it fits.

    Examples
    --------
    >>> import torch
    >>> degrees_of_freedom(torch.tensor([2.0, 1.0]), [0, 1, 50])
    tensor([0.0000, 1.5000, 2.0000])
    """
    check_tensor(eigvals, "eigvals", ndim=1)
    if bool((eigvals < 0).any()):
        raise ValueError(f"eigvals must be >= 0 (clip them with eigh_psd), got min "
                         f"{float(eigvals.min()):.3g}")
    t = _check_steps(steps)
    lr = _check_lr(lr, eigvals)
    return _degrees_of_freedom(eigvals, t, lr)


def _degrees_of_freedom(eigvals: torch.Tensor, steps: torch.Tensor, lr: float
                        ) -> torch.Tensor:
    """:func:`degrees_of_freedom` for checked arguments: ``sum_i 1 - (1 - lr lam_i)^t``."""
    return (1.0 - _remaining(eigvals, steps.to(eigvals.device), lr)).sum(1)  # (T,)



def bias_variance(x: torch.Tensor, eigvals: torch.Tensor, eigvecs: torch.Tensor, steps,
                  lr: float | None, sigma: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Squared bias and variance of the gradient-descent filter (``z^0 = 0``, fixed kernel).

    Parameters
    ----------
    x : torch.Tensor, shape (C, H, W)
        Clean image.
    eigvals : torch.Tensor, shape (m,)
        Eigenvalues of ``Theta`` (>= 0).
    eigvecs : torch.Tensor, shape (n, m)
        Orthonormal eigenvectors (``m < n`` allowed: the rest of the image is never fitted).
    steps : int, sequence of int or 1-D integer tensor, shape (T,)
        Steps ``t``.
    lr : float or None
        Learning rate (``None``: ``1/lambda_max``).
    sigma : float
        Noise standard deviation.

    Returns
    -------
    bias2 : torch.Tensor, shape (T,)
        ``||E z^t - x||^2``, summed over channels; decreasing in ``t``.
    variance : torch.Tensor, shape (T,)
        ``E||z^t - E z^t||^2``, summed over channels; increasing in ``t``.

    Notes
    -----
    With ``z^t = (I - (I - lr Theta)^t)(x + noise)`` and ``Theta`` independent of the noise,

    .. math:: \\mathbb E\\|z^t - x\\|^2 = \\sum_i (1 - lr\\lambda_i)^{2t}\\langle v_i, x\\rangle^2
              + \\sigma^2 \\sum_i \\big[1 - (1 - lr\\lambda_i)^t\\big]^2,

    per channel, plus ``||x - V V^T x||^2`` in the bias for a truncated basis.

    Examples
    --------
    >>> import torch
    >>> lam, V = eigh_psd(torch.tensor([[2.0, 1.0], [1.0, 2.0]]))
    >>> x = torch.tensor([[[1.0, 1.0]]], dtype=torch.float64)
    >>> b, v = bias_variance(x, lam, V, [0, 1], None, sigma=0.1)
    >>> b.round(decimals=6), v.round(decimals=6)  # x is the top eigenvector, lr = 1/3
    (tensor([2., 0.], dtype=torch.float64), tensor([0.0000, 0.0111], dtype=torch.float64))
    """
    t, lr = _check_filter(x, "x", eigvals, eigvecs, steps, lr)
    check_sigma(sigma, "sigma")
    C, H, W = x.shape
    n = H * W
    dtype = torch.promote_types(eigvecs.dtype, x.dtype)
    V = eigvecs.to(dtype)
    xf = x.to(dtype).reshape(C, n)  # (C, n)
    coef = xf @ V  # (C, m)
    outside = (xf - coef @ V.T).pow(2).sum() if V.shape[1] < n else 0.0  # never fitted
    left = _remaining(eigvals.to(dtype), t.to(x.device), lr)  # (T, m)
    bias2 = left.pow(2) @ coef.pow(2).sum(0) + outside  # (T,)
    variance = C * sigma**2 * (1.0 - left).pow(2).sum(1)  # (T,)
    return bias2, variance
