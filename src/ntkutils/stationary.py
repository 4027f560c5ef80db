"""The stationary part of a kernel on an image grid: its profile and its frequency response.

A kernel ``K`` on the pixels of an ``H x W`` image (``n = H W``, pixel ``p = row * W + col``)
is *stationary* when ``K[p, q] = g(q - p)`` depends only on the offset ``d = q - p``: it is
then a convolution with ``g``, its eigenvectors are Fourier modes and its eigenvalues the
Fourier transform of ``g``.  For any kernel, stationary or not,

- :func:`stationary_profile` averages ``K[p, p + d]`` over the pixels ``p`` for every
  offset ``d`` in a window (the ``g`` of the closest stationary kernel, up to the border);
- :func:`radial_response` is the Fourier transform of that profile, averaged over rings of
  equal radial frequency: a low-pass kernel falls with frequency, a constant plus a spike
  (``(a - b) I + b 1 1^T``) is flat with a peak at frequency 0.

Chapter 3 uses them to show where the neural tangent kernel with an iid-noise input is a
low-pass filter (the encoder-decoder) and where it is not (a plain CNN).
"""
from __future__ import annotations

import torch

from ._checks import check_positive, check_tensor

__all__ = ["stationary_profile", "radial_response"]


def _check_grid(K: torch.Tensor, shape) -> tuple[int, int]:
    """``shape`` is ``(H, W)`` of positive ints with ``H W`` = the side of the square ``K``."""
    if not isinstance(shape, (tuple, list)) or len(shape) != 2:
        raise TypeError(f"shape must be a pair (H, W) of ints, got {shape!r}")
    H = check_positive(shape[0], "shape[0] (H)", integer=True)
    W = check_positive(shape[1], "shape[1] (W)", integer=True)
    if K.shape[0] != K.shape[1]:
        raise ValueError(f"K must be a square (n, n) matrix, got shape {tuple(K.shape)}")
    if K.shape[0] != H * W:
        raise ValueError(f"K must be (n, n) with n = H*W = {H}*{W} = {H * W}, got shape "
                         f"{tuple(K.shape)}")
    return H, W


def stationary_profile(K: torch.Tensor, shape: tuple[int, int], radius: int, *,
                       margin: int = 0) -> torch.Tensor:
    """The kernel's mean value at each offset: ``K[p, p + d]`` averaged over the pixels ``p``.

    Parameters
    ----------
    K : torch.Tensor, shape (n, n)
        A kernel on the pixels of an ``H x W`` image, pixel ``p = row * W + col``.
    shape : (int, int)
        ``(H, W)``, with ``H W = n``.
    radius : int
        The largest offset ``r`` along each axis, ``0 <= r < min(H, W) - margin``: the
        profile covers the offsets ``d = (dy, dx)`` with ``|dy|, |dx| <= r``.  Far offsets
        are averaged over few pixels (``(H - |dy|)(W - |dx|)``), so keep ``r`` at a
        fraction of the image (a quarter, say).
    margin : int, default 0
        Average only over pixels ``p`` at least ``margin`` pixels from the border (away from
        the zero padding of a network); their partners ``p + d`` only need to be inside.

    Returns
    -------
    torch.Tensor, shape (2r + 1, 2r + 1)
        ``profile[r + dy, r + dx]``: the mean of ``K[p, p + d]`` over the pixels ``p`` (at
        least ``margin`` from the border) whose ``p + d`` lies inside the image.  The centre
        ``profile[r, r]`` is the mean diagonal.  Same dtype and device as ``K``.

    Notes
    -----
    For a stationary kernel ``K[p, q] = g(q - p)`` the profile is ``g`` itself, exactly.
    For any other kernel it is the ``g`` of the stationary kernel closest to ``K`` in the
    Frobenius norm, when every pixel and offset count (``margin = 0``).  Divide ``K`` by
    its mean diagonal first to compare kernels of different scales.  Cost:
    ``O(n (2r + 1)^2)`` reads of ``K``.

    Examples
    --------
    A stationary kernel on a 3 x 3 grid, ``K[p, q] = 2^-(|dy| + |dx|)``, gives its own
    profile:

    >>> grid = torch.arange(3, dtype=torch.float64)
    >>> dist = (grid[:, None] - grid[None, :]).abs()  # (3, 3) distances along one axis
    >>> K = 2 ** -(dist[:, None, :, None] + dist[None, :, None, :])  # (3, 3, 3, 3)
    >>> stationary_profile(K.reshape(9, 9), (3, 3), radius=1).tolist()
    [[0.25, 0.5, 0.25], [0.5, 1.0, 0.5], [0.25, 0.5, 0.25]]
    """
    check_tensor(K, "K", ndim=2)
    H, W = _check_grid(K, shape)
    for value, name in [(radius, "radius"), (margin, "margin")]:
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(f"{name} must be an int >= 0, got {value!r}")
        if value < 0:
            raise ValueError(f"{name} must be an int >= 0, got {value}")
    if 2 * margin >= min(H, W):
        raise ValueError(f"margin must be < min(H, W) / 2 = {min(H, W) / 2:g} (some pixel "
                         f"must be at least margin from the border), got {margin}")
    if radius >= min(H, W) - margin:
        raise ValueError(f"radius must be < min(H, W) - margin = {min(H, W) - margin} "
                         f"(every offset needs a pixel pair), got {radius}")
    off = torch.arange(-radius, radius + 1, device=K.device)  # (2r+1,)
    rows = torch.arange(margin, H - margin, device=K.device)  # the pixels p ...
    cols = torch.arange(margin, W - margin, device=K.device)
    q_r = rows[:, None] + off[None, :]  # (h, 2r+1): ... and the rows of p + d
    q_c = cols[:, None] + off[None, :]  # (w, 2r+1)
    ok_r = (q_r >= 0) & (q_r < H)
    ok_c = (q_c >= 0) & (q_c < W)
    p = rows[:, None, None, None] * W + cols[None, :, None, None]  # (h, w, 1, 1)
    q = (q_r.clamp(0, H - 1)[:, None, :, None] * W
         + q_c.clamp(0, W - 1)[None, :, None, :])  # (h, w, 2r+1, 2r+1)
    ok = ok_r[:, None, :, None] & ok_c[None, :, None, :]  # (h, w, 2r+1, 2r+1)
    total = torch.where(ok, K[p, q], 0).sum((0, 1))  # (2r+1, 2r+1)
    return total / ok.sum((0, 1)).to(K.dtype)


def radial_response(profile: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The frequency response of a stationary profile, averaged over rings of equal frequency.

    Parameters
    ----------
    profile : torch.Tensor, shape (2r + 1, 2r + 1)
        A kernel's values at the offsets ``|dy|, |dx| <= r``, offset 0 at the centre, as
        :func:`stationary_profile` returns it.

    Returns
    -------
    freqs : torch.Tensor, shape (r + 1,)
        Radial frequencies ``k / (2r + 1)``, ``k = 0 .. r``, in cycles per pixel (up to just
        below the Nyquist frequency 0.5).
    response : torch.Tensor, shape (r + 1,)
        The mean of ``|G(f)|`` over the 2-D frequencies ``f = (fy, fx)`` (multiples of
        ``1 / (2r + 1)``) whose radius ``|f|`` rounds to ``freqs[k]``; ``G`` is the 2-D
        discrete Fourier transform of the profile.  Same dtype and device as ``profile``.

    Notes
    -----
    ``G(f) = sum_d g(d) exp(-2 pi i f . d)`` over the offsets of the window.  For a
    symmetric profile (``g(-d) = g(d)``, the profile of a symmetric kernel) ``G`` is real
    and its values are the eigenvalues of the stationary kernel ``K[p, q] = g(q - p)`` on a
    periodic ``(2r + 1) x (2r + 1)`` grid, at the Fourier modes of frequency ``f``.  A
    low-pass kernel has a response that falls with ``|f|``.  A constant ``b`` plus a spike
    ``a - b`` at offset 0 has the response ``|a - b|`` at every frequency but 0, where it is
    ``|a - b + b (2r + 1)^2|``: the peak grows with the window, the rest does not.  Only
    rings up to radius ``r / (2r + 1)`` are returned: beyond it the rings leave the
    frequency square and hold only its corners.

    Examples
    --------
    >>> g = torch.zeros(5, 5, dtype=torch.float64)
    >>> g[2, 2] = 1.0  # a spike: the identity kernel passes every frequency alike
    >>> freqs, response = radial_response(g)
    >>> freqs.tolist(), response.tolist()
    ([0.0, 0.2, 0.4], [1.0, 1.0, 1.0])
    """
    check_tensor(profile, "profile", ndim=2)
    N = profile.shape[0]
    if profile.shape[1] != N or N % 2 == 0:
        raise ValueError(f"profile must be a square (2r + 1, 2r + 1) window with the offset 0 "
                         f"at its centre, got shape {tuple(profile.shape)}")
    r = N // 2
    # Offset 0 at index [0, 0] (ifftshift), so the transform has no phase ramp.
    G = torch.fft.fft2(torch.fft.ifftshift(profile)).abs()  # (N, N)
    k = torch.fft.fftfreq(N, d=1.0 / N, device=profile.device)  # (N,) integer frequencies
    ring = torch.sqrt(k[:, None] ** 2 + k[None, :] ** 2).round().long()  # (N, N)
    inside = ring <= r
    total = torch.zeros(r + 1, dtype=G.dtype, device=G.device)
    total.index_add_(0, ring[inside], G[inside])
    count = torch.bincount(ring[inside], minlength=r + 1).to(G.dtype)  # (r+1,)
    freqs = torch.arange(r + 1, dtype=G.dtype, device=G.device) / N
    return freqs, total / count
