"""The neural tangent kernel of a CNN: closed form (infinite width) and empirical (finite width).

Closed form: the single-hidden-layer CNN's kernel is an arc-cosine kernel on the patches of the
network input; deeper "vanilla" CNNs follow the convolutional NTK recursion.  Both are built on
one ReLU dual (``_relu_duals``) of one stably computed angle (``_angle_terms``).  Empirical: the
Gram matrix ``J J^T`` of a network's Jacobian, :func:`ntk_empirical`, which lives in
:mod:`ntkutils.empirical` and is re-exported here.

The parameterisation shared with :mod:`ntkutils.networks` (NTK parameterisation, zero padding,
no bias): for an input ``u`` of shape ``(C, H, W)``, patch size ``k`` and ``d = C k^2``,

    z_{o,i} = c^{-1/2} sum_h a_{o,h} relu(d^{-1/2} <w_h, P_i(u)>),   a, w ~ N(0, 1),

where ``P_i(u)`` is the zero-padded ``k x k x C`` patch centred at pixel ``i``.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from ._checks import (
    WORK_BYTES,
    check_index,
    check_memory,
    check_net_input,
    check_patch_size,
    check_positive,
    check_tensor,
)
from .empirical import ntk_empirical  # the empirical NTK, re-exported: the book imports it here
from .networks import patches

__all__ = ["extract_patches", "arccos_kernel", "ntk_closed_form", "ntk_empirical"]

_PARALLEL_ULPS = 8  # a gap |x| |y| - <x, y> this many ulps wide is rounding (_angle_terms)


def extract_patches(u: torch.Tensor, patch_size: int) -> torch.Tensor:
    """The zero-padded patches of an image, one row per pixel.

    Parameters
    ----------
    u : torch.Tensor, shape (C, H, W)
        Image (real floating point), ``C`` = 1 or 3.
    patch_size : int
        Odd side ``k`` of the square patch, at most ``min(H, W)``.

    Returns
    -------
    torch.Tensor, shape (n, C * k * k)
        Row ``i = row * W + col`` is the patch ``P_i(u)`` centred at pixel ``i``, flattened in
        the order (channel, patch row, patch column) of a ``Conv2d`` weight ``(c, C, k, k)``.

    Notes
    -----
    ``P_i(u)[c, a, b] = u[c, row + a - k//2, col + b - k//2]``, zero outside the image, so that
    ``conv2d(u, w, padding=k//2)`` at pixel ``i`` equals ``<w.flatten(), P_i(u)>``.

    Examples
    --------
    >>> u = torch.arange(9.0).reshape(1, 3, 3)
    >>> extract_patches(u, 3)[4]  # the centre pixel sees the whole image
    tensor([0., 1., 2., 3., 4., 5., 6., 7., 8.])
    >>> extract_patches(u, 3)[0]  # the corner pixel sees zero padding
    tensor([0., 0., 0., 0., 0., 1., 0., 3., 4.])
    """
    u = check_net_input(u, "u")
    k = check_patch_size(patch_size, "patch_size", image_shape=tuple(u.shape[1:]))
    return patches(u, k)


def _angle_terms(dot: torch.Tensor, norm_prod: torch.Tensor):
    """``(|x| |y| sin phi, pi - phi)`` from ``dot = <x, y>`` and ``norm_prod = |x| |y|``.

    The one place where the ReLU kernels meet the angle ``phi`` between two points.  It is
    taken as ``atan2(|x| |y| sin phi, <x, y>)`` with ``(|x| |y| sin phi)^2`` formed as
    ``(|x| |y| - <x, y>) (|x| |y| + <x, y>)``: ``arccos`` of the cosine has an infinite slope at
    ``cos = +-1``, where the near-parallel patches of a smooth image sit, and the quotient
    ``<x, y> / (|x| |y|)`` can round past 1.  Conditioning still costs ``eps / phi`` in the
    angle, and when ``dot`` and ``norm_prod`` come from different sums (a point with itself, two
    equal patches) their gap is pure rounding, a spurious ``phi ~ sqrt(eps)``: a gap within
    ``_PARALLEL_ULPS`` ulps of ``norm_prod`` is taken as exactly 0 (or pi).  That only moves
    angles below ``sqrt(2 _PARALLEL_ULPS eps)`` (2e-7 in float64), where the angle was no
    better than that anyway.  A zero point (``norm_prod = 0``, ``dot = 0``) gives
    ``sin_term = 0``; callers mask ``pi - phi`` there.  Broadcasts; returns new tensors.
    """
    noise = _PARALLEL_ULPS * torch.finfo(dot.dtype).eps * norm_prod  # rounding of dot, norms
    minus, plus = norm_prod - dot, norm_prod + dot  # |x| |y| (1 -+ cos phi)
    minus.masked_fill_(minus <= noise, 0.0)  # parallel within rounding: phi = 0 exactly
    plus.masked_fill_(plus <= noise, 0.0)  # antiparallel within rounding: phi = pi
    sin_term = minus.mul_(plus).sqrt_()
    return sin_term, torch.atan2(sin_term, -dot)  # atan2(s, -c) = pi - atan2(s, c) for s >= 0


def _relu_duals(dot: torch.Tensor, norm_prod: torch.Tensor, scale: float):
    """The arc-cosine kernels ``(k_1, k_0)`` times ``pi / scale``, from ``<x, y>`` and ``|x| |y|``.

    The one place of the ReLU's dual formulas (see :func:`arccos_kernel`)::

        k_1 pi / scale = (|x| |y| sin phi + (pi - phi) <x, y>) / scale,
        k_0 pi / scale = (pi - phi) / scale,   0 where |x| |y| = 0;

    ``scale = pi`` gives Cho & Saul's kernels, ``scale = 2 pi`` the Gaussian expectations
    ``E[relu(g_x) relu(g_y)]`` and ``E[relu'(g_x) relu'(g_y)]``.  Overwrites ``dot`` with
    the first; broadcasts.
    """
    sin_term, rest = _angle_terms(dot, norm_prod)  # |x| |y| sin phi, pi - phi
    k1 = dot.mul_(rest).add_(sin_term).div_(scale)
    k0 = rest.masked_fill_(norm_prod <= 0, 0.0).div_(scale)
    return k1, k0


def _depth1_ntk(dot: torch.Tensor, norm_prod: torch.Tensor, d: int) -> torch.Tensor:
    """Single-hidden-layer NTK ``(k_1 + <x, y> k_0) / (2 d)`` from ``<x, y>`` and ``|x| |y|``.

    Written as ``(2 (pi - phi) <x, y> + |x| |y| sin phi) / (2 pi d)``, one pass whose rounding
    the book's stored outputs hold; a zero point gives 0.  Returns a new tensor.
    """
    sin_term, rest = _angle_terms(dot, norm_prod)
    return rest.mul_(dot).mul_(2.0).add_(sin_term).div_(2 * math.pi * d)


def arccos_kernel(X: torch.Tensor, Y: torch.Tensor, degree: int) -> torch.Tensor:
    """Arc-cosine kernel of degree 0 or 1 between the rows of two matrices (Cho & Saul, 2009).

    Parameters
    ----------
    X : torch.Tensor, shape (n, p)
    Y : torch.Tensor, shape (m, p)
        Real floating tensors with the same number of columns.
    degree : {0, 1}
        0: the step function's kernel; 1: the ReLU's kernel.

    Returns
    -------
    torch.Tensor, shape (n, m)
        ``k_degree(X[i], Y[j])``; 0 where either row is zero (never NaN).

    Notes
    -----
    With ``phi`` the angle between ``x`` and ``y`` (computed stably, see ``_angle_terms``),

        k_0(x, y) = 1 - phi / pi,
        k_1(x, y) = |x| |y| (sin phi + (pi - phi) cos phi) / pi,

    Cho & Saul's normalisation, in which ``k_1(x, x) = |x|^2``.  For ``w ~ N(0, I_p)``:
    ``E[relu(w.x) relu(w.y)] = k_1(x, y) / 2`` and ``E[1{w.x > 0} 1{w.y > 0}] = k_0(x, y) / 2``.
    A zero row gives 0 in both (``relu'(0) = 0``, as in PyTorch).

    References
    ----------
    Y. Cho and L. K. Saul, "Kernel methods for deep learning", NeurIPS 2009.

    Examples
    --------
    >>> X = torch.tensor([[1.0, 0.0], [0.0, 2.0], [0.0, 0.0]])
    >>> arccos_kernel(X, X, 0)
    tensor([[1.0000, 0.5000, 0.0000],
            [0.5000, 1.0000, 0.0000],
            [0.0000, 0.0000, 0.0000]])
    >>> torch.diag(arccos_kernel(X, X, 1))
    tensor([1., 4., 0.])
    """
    X = check_tensor(X, "X", ndim=2)
    Y = check_tensor(Y, "Y", ndim=2)
    if X.shape[1] != Y.shape[1]:
        raise ValueError(f"X and Y must have the same number of columns, got shapes "
                         f"{tuple(X.shape)} and {tuple(Y.shape)}")
    if degree not in (0, 1) or isinstance(degree, bool):
        raise ValueError(f"degree must be 0 or 1, got {degree!r}")
    if X.dtype != Y.dtype:
        raise TypeError(f"X and Y must have the same dtype, got {X.dtype} and {Y.dtype}")
    check_memory(4 * X.shape[0] * Y.shape[0] * X.element_size(),
                 f"the {X.shape[0]} x {Y.shape[0]} kernel of X and Y",
                 "pass fewer rows of X or Y (compute the kernel in blocks)")
    norm_prod = torch.outer(X.norm(dim=1), Y.norm(dim=1))  # (n, m)
    k1, k0 = _relu_duals(X @ Y.T, norm_prod, math.pi)  # (n, m) each
    return k0 if degree == 0 else k1


def _ntk_depth1(P: torch.Tensor, Q: torch.Tensor) -> torch.Tensor:
    """Closed-form single-hidden-layer NTK between patch rows ``P`` (n, d) and ``Q`` (m, d)."""
    n, d = P.shape
    out = P.new_empty(n, Q.shape[0])  # (n, m)
    p_norm, q_norm = P.norm(dim=1), Q.norm(dim=1)
    step = max(1, WORK_BYTES // (4 * P.element_size() * Q.shape[0]))
    for s in range(0, n, step):
        norm_prod = torch.outer(p_norm[s:s + step], q_norm)  # (r, m)
        dot = P[s:s + step] @ Q.T  # (r, m); a zero patch gives dot = 0 and norm_prod = 0
        out[s:s + step] = _depth1_ntk(dot, norm_prod, d)
    return out


def _gaussian_relu_duals(sigma, sd1, sd2):
    """``E[relu relu]`` and ``E[relu' relu']`` of centred Gaussian pairs, overwriting ``sigma``.

    ``sigma`` (b, h2, w2, H, W) holds the covariances; ``sd1`` (1, 1, 1, H, W) and ``sd2``
    (b, h2, w2, 1, 1) the standard deviations of the two points (0 gives 0 in both).
    """
    sd_prod = sd1 * sd2  # (b, h2, w2, H, W)
    sigma.masked_fill_(sd_prod <= 0, 0.0)  # a point off the image: not a covariance
    return _relu_duals(sigma, sd_prod, 2 * math.pi)  # k_1 / 2, k_0 / 2


def _window_average(T: torch.Tensor, k: int) -> torch.Tensor:
    """``S[b, t, p] = k^-2 sum_D T[b, t + D, p + D]`` over the ``k x k`` offsets ``D``.

    ``T`` has shape (b, h2, w2, H, W): the second point ``t`` on a window that shrinks by
    ``k // 2`` on each side, the first point ``p`` on the image grid (zero outside it).
    """
    a = k // 2
    b, h2, w2, H, W = T.shape
    out = T.new_zeros(b, h2 - 2 * a, w2 - 2 * a, H, W)
    for dr in range(-a, a + 1):
        for dc in range(-a, a + 1):
            r0, r1, c0, c1 = max(0, -dr), min(H, H - dr), max(0, -dc), min(W, W - dc)
            out[..., r0:r1, c0:c1] += T[:, a + dr:a + dr + h2 - 2 * a,
                                        a + dc:a + dc + w2 - 2 * a,
                                        r0 + dr:r1 + dr, c0 + dc:c1 + dc]
    return out.div_(k**2)


def _cntk_windows(P_ext, sd_ext, corners, size, H, W, k, depth):
    """Depth-``L`` CNTK between the centres of windows of the extended grid and every pixel.

    ``P_ext`` (He, We, d): patches on the image grid extended by ``R = (depth - 1) (k // 2)``
    on each side; ``sd_ext[h]`` (He, We): ``Sigma^(h+1)(q, q)^(1/2)``, zero outside the image;
    ``corners`` (b, 2): top-left corners of windows of ``size = (h2, w2)`` on that grid.
    Returns (b, h2 - 2R, w2 - 2R, H, W).
    """
    h2, w2 = size
    d, a = P_ext.shape[-1], k // 2
    rr = corners[:, 0, None] + torch.arange(h2, device=corners.device)  # (b, h2)
    cc = corners[:, 1, None] + torch.arange(w2, device=corners.device)  # (b, w2)
    R = (depth - 1) * a
    P = P_ext[R:R + H, R:R + W].reshape(H * W, d)  # (n, d)
    Q = P_ext[rr[:, :, None], cc[:, None, :]]  # (b, h2, w2, d)
    sigma = (Q @ (P.T / d)).reshape(-1, h2, w2, H, W)  # (b, h2, w2, H, W)
    theta = sigma.clone()
    for h in range(depth):
        sd1 = sd_ext[h][R:R + H, R:R + W]  # (H, W)
        hh, ww = sigma.shape[1:3]
        sd2 = sd_ext[h][rr[:, h * a:h * a + hh, None], cc[:, None, h * a:h * a + ww]]
        K, K_dot = _gaussian_relu_duals(sigma, sd1, sd2[..., None, None])  # (b, hh, ww, 1, 1)
        theta = K_dot.mul_(theta).add_(K)  # K + K_dot Theta
        if h == depth - 1:
            return theta  # the 1x1 read-out layer
        sigma, theta = _window_average(K, k), _window_average(theta, k)
    raise AssertionError("unreachable")


def _cntk(u: torch.Tensor, k: int, depth: int, columns: torch.Tensor | None) -> torch.Tensor:
    """Depth >= 2 CNTK, full ``(n, n)`` (in bands of columns) or ``(n, m)``."""
    C, H, W = u.shape
    n, d, a = H * W, C * k * k, k // 2
    R = (depth - 1) * a
    u_ext = F.pad(u, (R, R, R, R))  # (C, H+2R, W+2R)
    He, We = H + 2 * R, W + 2 * R
    P_ext = patches(u_ext, k).reshape(He, We, d)  # (He, We, d)
    var = (P_ext[R:R + H, R:R + W] ** 2).sum(-1) / d  # (H, W): Sigma^(1)(p, p)
    sd_ext = []
    for _ in range(depth):
        sd_ext.append(F.pad(var.sqrt(), (R, R, R, R)))  # (He, We), zero outside the image
        var = F.avg_pool2d((var / 2)[None, None], k, 1, a, count_include_pad=True)[0, 0]
    per_point = n * u.element_size() * 6  # bytes of temporaries per second point
    if columns is None:
        out = u.new_empty(n, n)  # (n, n)
        band = max(1, WORK_BYTES // (per_point * We) - 2 * R)
        for r0 in range(0, H, band):
            hb = min(band, H - r0)
            corners = torch.tensor([[r0, 0]], device=u.device)
            block = _cntk_windows(P_ext, sd_ext, corners, (hb + 2 * R, We), H, W, k, depth)
            out[r0 * W:(r0 + hb) * W] = block.reshape(hb * W, n)  # rows = columns (symmetry)
        return out
    m = columns.numel()
    out = u.new_empty(n, m)  # (n, m)
    corners = torch.stack([columns // W, columns % W], dim=1)  # (m, 2), centre + R - R
    step = max(1, WORK_BYTES // (per_point * (2 * R + 1) ** 2))
    for s in range(0, m, step):
        block = _cntk_windows(P_ext, sd_ext, corners[s:s + step], (2 * R + 1,) * 2,
                              H, W, k, depth)
        out[:, s:s + step] = block.reshape(-1, n).T  # (n, b)
    return out


def ntk_closed_form(
    u: torch.Tensor,
    patch_size: int = 3,
    depth: int = 1,
    *,
    columns: torch.Tensor | None = None,
    dtype: torch.dtype = torch.float64,
    max_bytes: int = 2**31,
) -> torch.Tensor:
    """The infinite-width NTK of the vanilla CNN with ``depth`` hidden layers, for input ``u``.

    Parameters
    ----------
    u : torch.Tensor, shape (C, H, W)
        Network input (the noisy image, or noise), ``C`` = 1 or 3; ``n = H * W``.
    patch_size : int, default 3
        Odd side ``k`` of every convolution filter.
    depth : int, default 1
        Number of ``k x k`` convolution + ReLU layers before the 1x1 read-out.  ``depth = 1`` is
        the single-hidden-layer CNN of the theory; the receptive field is
        ``depth (k - 1) + 1`` pixels wide.
    columns : torch.LongTensor, shape (m,), optional
        Pixel indices ``j``: return only ``Theta[:, columns]``, without forming ``(n, n)``
        (what a Nyström approximation needs).
    dtype : torch.dtype, default torch.float64
        Dtype of the computation and of the result; the device follows ``u``.
    max_bytes : int, default 2**31
        Refuse (``ValueError``) to return a result larger than this many bytes.

    Returns
    -------
    torch.Tensor, shape (n, n), or (n, m) with ``columns``
        ``Theta[i, j]``, the same kernel for every output channel (cross-channel blocks vanish
        at infinite width).  Rows and columns are pixels ``i = row * W + col``.

    Notes
    -----
    ``depth = 1``, with ``u_i = P_i(u)`` the ``k x k x C`` patch (``d = C k^2``) and
    ``phi`` the angle between ``u_i`` and ``u_j`` (see :func:`arccos_kernel`)::

        Theta_ij = (k_1(u_i, u_j) + <u_i, u_j> k_0(u_i, u_j)) / (2 d)
                 = |u_i| |u_j| (sin phi + 2 (pi - phi) cos phi) / (2 pi d),

    the read-out weights' term plus the hidden weights' term; a zero patch gives 0.

    ``depth = L >= 2`` (the CNTK of Arora et al. in the NTK parameterisation of
    :mod:`ntkutils.networks`: fan-in scaling ``(c k^2)^{-1/2}``, ReLU, zero padding, no bias).
    For pixels ``p, q`` and ``k x k`` offsets ``D`` (terms with ``p + D`` or ``q + D``
    outside the image are 0)::

        Sigma^(1)(p, q) = Theta^(1)(p, q) = <u_p, u_q> / d
        K^(h)      = E[relu(g_p) relu(g_q)],  Kdot^(h) = E[relu'(g_p) relu'(g_q)],
                     (g_p, g_q) ~ N(0, Sigma^(h) restricted to {p, q}): k_1 / 2 and k_0 / 2
        Sigma^(h+1)(p, q) = k^-2 sum_D K^(h)(p + D, q + D)
        Theta^(h+1)(p, q) = k^-2 sum_D [K^(h) + Kdot^(h) Theta^(h)](p + D, q + D)
        Theta(p, q)       = K^(L)(p, q) + Kdot^(L)(p, q) Theta^(L)(p, q)   (1x1 read-out)

    The average over ``D`` (not a sum) is the fan-in scaling: each of the ``c k^2`` inputs of a
    unit contributes ``1 / (c k^2)`` of the same expectation.  The ReLU has no He factor
    ``sqrt(2)``, so the variance halves at each layer, ``Sigma^(h+1)(p, p)`` being the window
    average of ``Sigma^(h)(p, p) / 2``.  The recursion couples only pairs shifted together,
    ``(p + D, q + D)``, so column ``q`` needs the first point everywhere and the second point
    within ``R = (L - 1)(k // 2)`` of ``q``: with ``columns`` the work is
    ``O(n m (2R + 1)^2 L k^2)``, never ``O(n^2)``, and the temporaries are kept to about
    256 MB by taking the columns in chunks; the full kernel is computed in bands of rows.

    Colour input: patches are ``k x k x C``, ``d = C k^2``, and one kernel serves all ``C``
    output channels (``Theta kron I_C``).

    References
    ----------
    A. Jacot, F. Gabriel and C. Hongler, "Neural tangent kernel", NeurIPS 2018.
    S. Arora et al., "On exact computation with an infinitely wide neural net", NeurIPS 2019.
    J. Tachella, J. Tang and M. Davies, "The neural tangent link between CNN denoisers and
    non-local filters", CVPR 2021.

    Examples
    --------
    >>> u = torch.rand(1, 8, 8, generator=torch.Generator().manual_seed(0))
    >>> ntk = ntk_closed_form(u, patch_size=3)
    >>> ntk.shape, ntk.dtype
    (torch.Size([64, 64]), torch.float64)
    >>> cols = ntk_closed_form(u, 3, depth=2, columns=torch.tensor([0, 27]))
    >>> cols.shape
    torch.Size([64, 2])
    """
    u = check_net_input(u, "u")
    k = check_patch_size(patch_size, "patch_size", image_shape=tuple(u.shape[1:]))
    depth = check_positive(depth, "depth", integer=True)
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        raise TypeError(f"dtype must be a floating torch.dtype, got {dtype!r}")
    max_bytes = check_positive(max_bytes, "max_bytes", integer=True)
    C, H, W = u.shape
    n = H * W
    if columns is not None:
        columns = check_index(columns, "columns", n).to(u.device)
    m = n if columns is None else columns.numel()
    size = n * m * torch.empty((), dtype=dtype).element_size()
    if size > max_bytes:
        raise ValueError(
            f"the requested kernel of a {H}x{W} image is {n} x {m} = {size / 2**30:.2f} GiB, "
            f"more than max_bytes = {max_bytes} ({max_bytes / 2**30:.2f} GiB); ask for a few "
            f"columns with columns=... (e.g. Nystrom landmarks) or raise max_bytes"
        )
    u = u.to(dtype)
    if depth == 1:
        P = patches(u, k)  # (n, d)
        return _ntk_depth1(P, P if columns is None else P[columns])
    return _cntk(u, k, depth, columns)
