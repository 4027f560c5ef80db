"""Approximate eigenpairs of a kernel from a few of its columns (the Nyström method).

The exact eigendecomposition of the ``n x n`` kernel of an image costs ``O(n^3)``: seconds at
64 x 64, hours at 256 x 256.  Nyström needs only the ``m`` columns of ``Theta`` at a few
landmark pixels: :func:`landmark_pixels` chooses them, :func:`nystrom_eigenpairs` turns them
into orthonormal eigenpairs that :func:`ntkutils.spectral.gd_filter` takes like exact ones.
"""
from __future__ import annotations

import math

import torch

from ._checks import check_generator, check_positive, check_tensor

__all__ = ["landmark_pixels", "nystrom_eigenpairs"]


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
