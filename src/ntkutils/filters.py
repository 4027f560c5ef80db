"""The gradient-descent (twicing) filter of a fixed kernel, Nyström, and stopping rules.

In the wide limit, gradient descent on ``1/2 ||z - y||^2`` moves the network output as
``z^{t+1} = z^t + lr * Theta (y - z^t)`` with a fixed kernel ``Theta`` (``n x n``, the same
for every colour channel).  Everything in this module is a function of ``Theta`` through its
eigenpairs ``Theta = V diag(lam) V^T``:

- :func:`eigh_psd` (exact eigenpairs) and :func:`nystrom_eigenpairs` with
  :func:`landmark_pixels` (approximate eigenpairs from a few columns of ``Theta``);
- :func:`gd_filter` (every step ``t`` at once, in closed form) and
  :func:`gd_filter_iterative` (the explicit iteration, to check it);
- :func:`degrees_of_freedom` (the filter's trace), :func:`degrees_of_freedom_mc` (any
  denoiser's divergence, by Monte Carlo), :func:`bias_variance`, :func:`sure` and the
  stopping rules :func:`sure_step`, :func:`discrepancy_step`, :func:`oracle_step`;
- :func:`nlm_weights`, the non-local-means weights of one pixel, for comparison figures.

Images are ``(C, H, W)``; a flattened image is ``(C, n)`` with pixel ``i = row * W + col``.
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F

from ntkutils._progress import progress_bar
from ntkutils._checks import (
    check_float_dtype,
    check_generator,
    check_image,
    check_memory,
    check_patch_size,
    check_positive,
    check_scale,
    check_sigma,
    check_tensor,
)

__all__ = [
    "eigh_psd",
    "gd_filter",
    "gd_filter_iterative",
    "landmark_pixels",
    "nystrom_eigenpairs",
    "nlm_weights",
    "degrees_of_freedom",
    "degrees_of_freedom_mc",
    "sure",
    "sure_step",
    "discrepancy_step",
    "oracle_step",
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
        :func:`nystrom_eigenpairs`.
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
    check_image(y, "y")
    C, H, W = y.shape
    n = H * W
    _check_eigpairs(eigvals, eigvecs, n)
    t = _check_steps(steps)
    lr = _check_lr(lr, eigvals)
    dtype = torch.promote_types(eigvecs.dtype, y.dtype)
    itemsize = torch.empty((), dtype=dtype).element_size()
    check_memory(itemsize * len(t) * (2 * C * n + eigvals.numel()),
                 f"gd_filter at {len(t)} steps of a {C}x{H}x{W} image",
                 "pass fewer steps (a log-spaced grid, e.g. torch.logspace) or a smaller image")
    V = eigvecs.to(dtype)
    _check_orthonormal(V)
    r = y.to(dtype).reshape(C, n)  # (C, n)
    if z0 is not None:
        check_image(z0, "z0")
        if z0.shape != y.shape:
            raise ValueError(f"z0 must have the shape of y {tuple(y.shape)}, got "
                             f"{tuple(z0.shape)}")
        z0f = z0.to(dtype).reshape(C, n)  # (C, n)
        r = r - z0f
    coef = r @ V  # (C, m): <v_i, y - z0>
    fitted = 1.0 - _remaining(eigvals.to(dtype), t.to(y.device), lr)  # (T, m)
    z = torch.einsum("tm,cm,nm->tcn", fitted, coef, V)  # (T, C, n)
    if z0 is not None:
        z = z + z0f[None]
    return z.reshape(len(t), C, H, W).to(y.dtype)  # (T, C, H, W)


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


# --------------------------------------------------------------------------- Nyström
def landmark_pixels(shape: tuple[int, int], n_landmarks: int, *, method: str = "grid",
                    generator: torch.Generator | None = None) -> torch.Tensor:
    """Choose ``m`` distinct landmark pixels for the Nyström approximation.

    Parameters
    ----------
    shape : tuple of int
        Image size ``(H, W)``.
    n_landmarks : int
        Number of landmarks ``m``, ``1 <= m <= H*W``.
    method : {"grid", "random"}, default "grid"
        ``"grid"``: a jittered grid, one uniformly random pixel in each cell of a grid of
        about ``m`` cells of nearly equal size (when the grid has more than ``m`` cells, a
        random subset of ``m`` cells is used).  ``"random"``: ``m`` pixels uniformly at
        random without replacement.
    generator : torch.Generator, optional
        Source of randomness (the global generator when ``None``).

    Returns
    -------
    torch.LongTensor, shape (m,)
        Sorted flat pixel indices ``row * W + col``.

    Notes
    -----
    The jittered grid covers the image evenly, like a grid, without aligning with periodic
    textures; with ``m = H*W`` both methods return every pixel.

    Examples
    --------
    >>> import torch
    >>> landmark_pixels((4, 4), 4, generator=torch.Generator().manual_seed(0)).shape
    torch.Size([4])
    >>> landmark_pixels((3, 3), 9).tolist()
    [0, 1, 2, 3, 4, 5, 6, 7, 8]
    """
    if (not isinstance(shape, (tuple, list)) or len(shape) != 2
            or not all(isinstance(s, int) and not isinstance(s, bool) and s > 0
                       for s in shape)):
        raise ValueError(f"shape must be (H, W) with positive ints, got {shape!r}")
    H, W = shape
    n = H * W
    check_positive(n_landmarks, "n_landmarks", integer=True)
    if n_landmarks > n:
        raise ValueError(f"n_landmarks must be <= the number of pixels H*W = {n}, got "
                         f"{n_landmarks}")
    check_generator(generator)
    m = n_landmarks
    if method == "random":
        return torch.randperm(n, generator=generator)[:m].sort().values
    if method != "grid":
        raise ValueError(f"method must be 'grid' or 'random', got {method!r}")
    gh = min(H, max(1, round(math.sqrt(m * H / W))))  # grid rows
    gw = math.ceil(m / gh)  # grid columns
    if gw > W:
        gw, gh = W, math.ceil(m / W)
    r_edges = torch.tensor([(k * H) // gh for k in range(gh + 1)])  # (gh + 1,)
    c_edges = torch.tensor([(k * W) // gw for k in range(gw + 1)])  # (gw + 1,)
    r0, rh = r_edges[:-1], r_edges[1:] - r_edges[:-1]  # (gh,), every cell >= 1 row
    c0, cw = c_edges[:-1], c_edges[1:] - c_edges[:-1]  # (gw,)
    u = torch.rand(2, gh, gw, generator=generator, dtype=torch.float64)
    rows = r0[:, None] + (u[0] * rh[:, None]).long().clamp_max(rh[:, None] - 1)  # (gh, gw)
    cols = c0[None, :] + (u[1] * cw[None, :]).long().clamp_max(cw[None, :] - 1)  # (gh, gw)
    idx = (rows * W + cols).reshape(-1)  # (gh * gw,)
    if idx.numel() > m:
        idx = idx[torch.randperm(idx.numel(), generator=generator)[:m]]
    return idx.sort().values


def nystrom_eigenpairs(columns: torch.Tensor, landmarks: torch.Tensor, *,
                       rcond: float = 1e-10) -> tuple[torch.Tensor, torch.Tensor]:
    """Approximate eigenpairs of a PSD kernel from ``m`` of its columns (Nyström).

    Parameters
    ----------
    columns : torch.Tensor, shape (n, m)
        ``C = Theta[:, S]``, the kernel's columns at the landmark pixels ``S``.
    landmarks : torch.LongTensor, shape (m,)
        The landmark pixel indices ``S`` (distinct), e.g. from :func:`landmark_pixels`.
    rcond : float, default 1e-10
        Eigenvalues of ``A = C[S]`` below ``rcond * max eig(A)`` are dropped before the
        inverse square root (and likewise for the final eigenvalues).

    Returns
    -------
    eigvals : torch.Tensor, shape (m',)
        Approximate eigenvalues, descending, ``m' <= m``.
    eigvecs : torch.Tensor, shape (n, m')
        Orthonormal columns ``V`` with ``V diag(eigvals) V^T = C A^+ C^T``.

    Notes
    -----
    The Nyström approximation is ``Theta ~ C A^+ C^T`` with ``A = Theta[S, S]``.  With the
    eigendecomposition ``A = Q diag(a) Q^T`` (small ``a`` dropped),
    ``R = C Q diag(a^{-1/2})`` satisfies ``R R^T = C A^+ C^T``; the one-shot
    orthogonalisation of Fowlkes et al. takes ``R^T R = U Sigma U^T`` and
    ``V = R U Sigma^{-1/2}``, so ``V^T V = I`` and ``V Sigma V^T = R R^T``.  Here ``V`` and
    ``Sigma`` come from the thin SVD ``R = V Sigma^{1/2} U^T``, the same quantities computed
    without squaring the condition number.  Thresholding ``a`` matters: ``A`` is often
    nearly singular and ``a^{-1/2}`` of round-off is huge.  Cost ``O(n m^2)`` time and
    ``O(n m)`` memory; the ``n x n`` kernel is never formed.

    References
    ----------
    C. Williams, M. Seeger, "Using the Nyström method to speed up kernel machines",
    NeurIPS 2001.  C. Fowlkes, S. Belongie, F. Chung, J. Malik, "Spectral grouping using
    the Nyström method", IEEE TPAMI 2004.

    Examples
    --------
    >>> import torch
    >>> K = torch.tensor([[2.0, 1.0, 0.0], [1.0, 2.0, 1.0], [0.0, 1.0, 2.0]],
    ...                  dtype=torch.float64)
    >>> S = torch.tensor([0, 1, 2])
    >>> lam, V = nystrom_eigenpairs(K[:, S], S)  # m = n: exact
    >>> torch.allclose(V @ torch.diag(lam) @ V.T, K)
    True
    """
    check_tensor(columns, "columns", ndim=2)
    n, m = columns.shape
    if not isinstance(landmarks, torch.Tensor) or landmarks.dtype not in (torch.int64,
                                                                           torch.int32):
        raise TypeError(f"landmarks must be a LongTensor of pixel indices, got "
                        f"{getattr(landmarks, 'dtype', type(landmarks).__name__)}")
    if landmarks.ndim != 1 or landmarks.numel() != m:
        raise ValueError(f"landmarks must have shape (m,) = ({m},) to match columns "
                         f"{tuple(columns.shape)}, got shape {tuple(landmarks.shape)}")
    if m > n:
        raise ValueError(f"columns must be (n, m) with m <= n, got shape {tuple(columns.shape)}")
    if bool((landmarks < 0).any()) or bool((landmarks >= n).any()):
        raise ValueError(f"landmarks must be in [0, n) = [0, {n}), got range "
                         f"[{int(landmarks.min())}, {int(landmarks.max())}]")
    if landmarks.unique().numel() != m:
        raise ValueError("landmarks must be distinct pixel indices, got duplicates")
    check_positive(rcond, "rcond")
    if rcond >= 1:
        raise ValueError(f"rcond must be < 1, got {rcond}")
    A = columns[landmarks.to(columns.device)]  # (m, m)
    a, Q = torch.linalg.eigh((A + A.T) / 2)  # ascending
    keep = a > rcond * a.max().clamp_min(0)
    if not bool(keep.any()):
        raise ValueError("columns[landmarks] has no positive eigenvalue: the kernel is not PSD "
                         "or is zero on the landmarks")
    R = columns @ (Q[:, keep] * a[keep].rsqrt())  # (n, k): R R^T = C A^+ C^T
    V, s, _ = torch.linalg.svd(R, full_matrices=False)  # s descending
    lam = s * s
    keep = lam > rcond * lam[0]
    return lam[keep], V[:, keep]


# --------------------------------------------------------------------------- NLM
def nlm_weights(y: torch.Tensor, pixel: tuple[int, int], *, patch_size: int = 7,
                h: float | None = None, sigma: float | None = None,
                search_window: int | None = None) -> torch.Tensor:
    """Non-local-means weights of one pixel over the image, normalised to sum to 1.

    Parameters
    ----------
    y : torch.Tensor, shape (C, H, W)
        Noisy image in [0, 1].
    pixel : tuple of int
        ``(row, col)`` of the pixel whose weights are returned.
    patch_size : int, default 7
        Odd side ``k`` of the square patches.
    h : float, optional
        Filtering parameter (on the [0, 1] scale).  Defaults to ``0.6 * sigma`` when
        ``sigma`` is given, else to the noise level estimated from ``y``
        (:func:`ntkutils.images.estimate_sigma`), scikit-image's rules of thumb.
    sigma : float, optional
        Noise level.  When given, the expected noise contribution ``2 sigma^2`` is
        subtracted from the patch distance (clipped at 0), as scikit-image does.
    search_window : int, optional
        Largest row and column offset searched (scikit-image's ``patch_distance``): weights
        outside the ``(2 s + 1)^2`` window are 0.  ``None`` (default) searches the whole
        image, like the NTK filter.

    Returns
    -------
    torch.Tensor, shape (H, W)
        Weights ``w_j``, ``>= 0``, summing to 1; ``sum_j w_j y_j`` is the NLM estimate.

    Notes
    -----
    With ``P_i`` the ``C x k x k`` patch at pixel ``i`` (reflect padding at the border),
    the patch distance is the Gaussian-weighted mean of Buades et al.,

    .. math:: d^2_{ij} = \\frac{1}{C} \\sum_{c, p} g_p\\,(P_{i,cp} - P_{j,cp})^2,
              \\qquad g_p \\propto e^{-\\|p\\|^2 / (2a^2)},\\ \\sum_p g_p = 1,
              \\ a = (k - 1)/4,

    and :math:`w_{ij} \\propto \\exp\\big(-\\max(d^2_{ij} - 2\\sigma^2, 0) / h^2\\big)`.
    This is the definition of scikit-image's ``denoise_nl_means(..., fast_mode=False)``,
    except that scikit-image drops weights below about ``e^{-5}`` and uses a fast
    approximate ``exp``.  Cost ``O(n C k^2)``.  NLM weights are normalised and decay with
    the patch distance; the NTK's weights are not normalised and depend on patch norms and
    angles.

    References
    ----------
    A. Buades, B. Coll, J.-M. Morel, "A non-local algorithm for image denoising", CVPR 2005.

    Examples
    --------
    >>> import torch
    >>> y = torch.zeros(1, 8, 8); y[:, :, 4:] = 1.0  # two flat halves
    >>> w = nlm_weights(y, (2, 1), patch_size=3, h=0.1)
    >>> round(float(w.sum()), 6), float(w[:, 5:].sum()) < 1e-6
    (1.0, True)
    """
    check_image(y, "y")
    C, H, W = y.shape
    check_patch_size(patch_size, image_shape=(H, W))
    if (not isinstance(pixel, (tuple, list)) or len(pixel) != 2
            or not all(isinstance(p, int) and not isinstance(p, bool) for p in pixel)):
        raise TypeError(f"pixel must be a (row, col) pair of ints, got {pixel!r}")
    r0, c0 = pixel
    if not (0 <= r0 < H and 0 <= c0 < W):
        raise ValueError(f"pixel must lie in the {H}x{W} image, got {pixel!r}")
    if sigma is not None:
        check_sigma(sigma, "sigma")
    if h is None:
        if sigma is not None:
            h = 0.6 * sigma
        else:
            from ntkutils.images import estimate_sigma
            h = float(estimate_sigma(y))
    check_positive(h, "h")
    if search_window is not None:
        check_positive(search_window, "search_window", integer=True)
    half = patch_size // 2
    padded = F.pad(y[None], (half, half, half, half), mode="reflect")  # (1, C, H+2h, W+2h)
    patches = F.unfold(padded, patch_size)[0]  # (C k k, n)
    ref = patches[:, r0 * W + c0]  # (C k k,)
    offsets = torch.arange(patch_size, dtype=y.dtype, device=y.device) - half  # (k,)
    a = max((patch_size - 1) / 4, 1e-12)
    g = torch.exp(-(offsets[:, None] ** 2 + offsets[None, :] ** 2) / (2 * a * a))  # (k, k)
    g = (g / (C * g.sum())).reshape(-1).repeat(C)  # (C k k,), unfold order: c, row, col
    d2 = g @ (patches - ref[:, None]).pow(2)  # (n,)
    if sigma is not None:
        d2 = (d2 - 2 * sigma**2).clamp_min(0)
    w = torch.exp(-d2 / h**2).reshape(H, W)  # (H, W)
    if search_window is not None:
        rows = torch.arange(H, device=y.device)[:, None]
        cols = torch.arange(W, device=y.device)[None, :]
        inside = ((rows - r0).abs() <= search_window) & ((cols - c0).abs() <= search_window)
        w = w * inside
    return w / w.sum()


# --------------------------------------------------------------------------- risk
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
    return (1.0 - _remaining(eigvals, t.to(eigvals.device), lr)).sum(1)


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
        ``div f(y) / C``, comparable with :func:`degrees_of_freedom` and ready for
        :func:`sure` (``T = 1`` for a denoiser returning one image).

    Notes
    -----
    For ``b ~ N(0, I)``, :math:`\\mathbb E\\, b^T (f(y + \\epsilon b) - f(y))/\\epsilon
    \\to \\operatorname{div} f(y) = \\sum_k \\partial f_k / \\partial y_k` (Ramani, Blu &
    Unser).  For a fixed linear filter ``f(y) = W y`` this is ``tr W``, the same as
    :func:`degrees_of_freedom`; when the kernel is built from ``y`` itself (the NTK of the
    noisy image) it also counts how the kernel follows the noise, which the trace misses.
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


def _check_trajectory(y, z, name_y: str = "y") -> None:
    check_image(y, name_y)
    check_tensor(z, "z", ndim=4)
    if tuple(z.shape[1:]) != tuple(y.shape):
        raise ValueError(f"z must be (T, C, H, W) with (C, H, W) = {tuple(y.shape)}, got "
                         f"shape {tuple(z.shape)}")


def sure(y: torch.Tensor, z: torch.Tensor, df: torch.Tensor, sigma: float) -> torch.Tensor:
    """Stein's unbiased risk estimate of ``||z^t - x||^2`` for the gradient-descent filter.

    Parameters
    ----------
    y : torch.Tensor, shape (C, H, W)
        Noisy image.
    z : torch.Tensor, shape (T, C, H, W)
        Filter outputs, e.g. from :func:`gd_filter` with ``z0 = 0``.
    df : torch.Tensor, shape (T,)
        Degrees of freedom of *one channel* (:func:`degrees_of_freedom`, or
        :func:`degrees_of_freedom_mc`); multiplied by ``C`` here because the same filter
        acts on each channel.
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
    resid = (z - y[None]).pow(2).flatten(1).sum(1)  # (T,)
    return resid - d * sigma**2 + 2 * sigma**2 * C * df.to(resid.dtype)


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
    t = _check_steps(steps)
    if t.numel() != z.shape[0]:
        raise ValueError(f"steps must have one entry per row of z (T = {z.shape[0]}), got "
                         f"{t.numel()}")
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
    t = _check_steps(steps)
    if t.numel() != z.shape[0]:
        raise ValueError(f"steps must have one entry per row of z (T = {z.shape[0]}), got "
                         f"{t.numel()}")
    if t.numel() > 1 and bool((t[1:] <= t[:-1]).any()):
        raise ValueError(f"steps must be increasing (the first step below the threshold is "
                         f"chosen), got {t.tolist()[:8]}")
    resid = (z - y[None]).pow(2).flatten(1).sum(1)  # (T,)
    below = torch.nonzero(resid <= tau * y.numel() * sigma**2)
    return int(t[int(below[0])]) if below.numel() else int(t[-1])


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
    t = _check_steps(steps)
    if t.numel() != z.shape[0]:
        raise ValueError(f"steps must have one entry per row of z (T = {z.shape[0]}), got "
                         f"{t.numel()}")
    err = (z - x[None]).pow(2).flatten(1).sum(1)  # (T,)
    return int(t[int(torch.argmin(err))])


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
    check_image(x, "x")
    C, H, W = x.shape
    n = H * W
    _check_eigpairs(eigvals, eigvecs, n)
    t = _check_steps(steps)
    lr = _check_lr(lr, eigvals)
    check_sigma(sigma, "sigma")
    dtype = torch.promote_types(eigvecs.dtype, x.dtype)
    V = eigvecs.to(dtype)
    xf = x.to(dtype).reshape(C, n)  # (C, n)
    coef = xf @ V  # (C, m)
    outside = (xf - coef @ V.T).pow(2).sum() if V.shape[1] < n else 0.0  # never fitted
    left = _remaining(eigvals.to(dtype), t.to(x.device), lr)  # (T, m)
    bias2 = left.pow(2) @ coef.pow(2).sum(0) + outside  # (T,)
    variance = C * sigma**2 * (1.0 - left).pow(2).sum(1)  # (T,)
    return bias2, variance
