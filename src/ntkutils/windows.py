"""The NTK filter in local windows: the closed-form kernel of centred patches, window by window.

The poster's filter builds one kernel over the whole image from the raw patches.  This
module builds it over small overlapping windows (like the search window of non-local
means): in each window of ``T x T`` pixels, the single-hidden-layer NTK of the *centred*
``k x k`` patches, its exact eigenpairs, gradient descent for every step at once, a step
chosen per window by Stein's unbiased risk estimate, and the windows' estimates averaged.
:func:`ntkutils.denoise.ntk_denoise` (``recipe="windowed"``) runs it twice, the second time
with the kernel of the first estimate (the pilot).

Why each piece (measured in ``bench/`` and chapter 5):

- **Centring.**  The ReLU kernels compare patches by angle.  The patches of a positive image
  all point nearly the same way (towards the all-ones patch), so the raw kernel hardly tells
  them apart; removing the image's mean spreads their angles.
- **Windows.**  Each window gets its own kernel and its own step, so a flat sky can be
  smoothed hard while a textured roof keeps its detail; one global step cannot do both.  The
  windows are small enough (``n = T^2`` pixels) to be eigendecomposed exactly, so nothing of
  the image is thrown away (Nyström keeps only the span of its landmarks).
- **Pilot.**  The kernel of a first estimate carries less of the noise than the kernel of
  ``y``: its eigenvectors follow the image, not the noise.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from .kernels import _angle_terms
from .stopping import PROBE_EPS

__all__ = ["WindowedFilter", "window_corners", "window_ntk", "windowed_filter"]

_CHUNK_BYTES = 2**27  # memory for the kernels of one chunk of windows (128 MB)


def window_corners(size: int, window: int, stride: int) -> list[int]:
    """Top-left offsets along one axis: every ``stride`` pixels, the last flush with the edge.

    >>> window_corners(10, 4, 3)
    [0, 3, 6]
    >>> window_corners(11, 4, 3)
    [0, 3, 6, 7]
    """
    corners = list(range(0, size - window + 1, stride))
    if corners[-1] != size - window:
        corners.append(size - window)
    return corners


def _window_index(shape: tuple[int, int], window: int, stride: int) -> torch.Tensor:
    """Flat pixel indices of every window, shape ``(L, T*T)`` (row-major inside a window)."""
    H, W = shape
    rows = torch.tensor(window_corners(H, window, stride))  # (Lr,)
    cols = torch.tensor(window_corners(W, window, stride))  # (Lc,)
    off = torch.arange(window)
    inner = (off[:, None] * W + off[None, :]).reshape(-1)  # (T*T,)
    start = (rows[:, None] * W + cols[None, :]).reshape(-1)  # (L,)
    return start[:, None] + inner[None, :]  # (L, T*T)


def _centred_patches(u: torch.Tensor, patch_size: int) -> torch.Tensor:
    """Patches of ``u`` minus its channel means, reflect-padded: ``(C k^2, H*W)``."""
    r = patch_size // 2
    u = u - u.mean(dim=(1, 2), keepdim=True)  # (C, H, W)
    padded = F.pad(u[None], (r, r, r, r), mode="reflect")  # (1, C, H+2r, W+2r)
    return F.unfold(padded, patch_size)[0]  # (C k^2, H*W)


def window_ntk(P: torch.Tensor) -> torch.Tensor:
    """The single-hidden-layer NTK between the patches of each window.

    Parameters
    ----------
    P : torch.Tensor, shape (L, n, d)
        ``L`` windows of ``n`` patches of ``d = C k^2`` values.

    Returns
    -------
    torch.Tensor, shape (L, n, n)
        ``Theta[l, i, j] = (2 (pi - phi) <p_i, p_j> + |p_i| |p_j| sin phi) / (2 pi d)``, with
        ``phi`` the angle between patches ``p_i`` and ``p_j`` of window ``l``: the kernel of
        :func:`ntkutils.kernels.ntk_closed_form` (depth 1) restricted to the window.

    Examples
    --------
    >>> P = torch.tensor([[[1.0, 0.0], [0.0, 1.0]]], dtype=torch.float64)
    >>> window_ntk(P)  # orthogonal unit patches: phi = pi/2
    tensor([[[0.5000, 0.0796],
             [0.0796, 0.5000]]], dtype=torch.float64)
    """
    d = P.shape[-1]
    norms = P.norm(dim=-1)  # (L, n)
    dot = P @ P.transpose(-1, -2)  # (L, n, n)
    sin_term, rest = _angle_terms(dot, norms[:, :, None] * norms[:, None, :])
    return rest.mul_(dot).mul_(2.0).add_(sin_term).div_(2 * math.pi * d)


@dataclass(frozen=True)
class WindowedFilter:
    """One pass of :func:`windowed_filter`.

    Attributes
    ----------
    estimate : torch.Tensor, shape (C, H, W)
        The windows' estimates averaged (not clamped).
    probe_estimate : torch.Tensor or None, shape (C, H, W)
        The same filter (same steps) applied to the probe ``y + eps b``; ``None`` without one.
    steps : torch.Tensor, shape (L,)
        The step ``t`` chosen in each window.
    risk : torch.Tensor, shape (L,)
        The chosen step's risk estimate per window, ``||z^t - x||^2`` up to a constant.
    """

    estimate: torch.Tensor
    probe_estimate: torch.Tensor | None
    steps: torch.Tensor
    risk: torch.Tensor


def _window_eigenpairs(features, index):
    """Exact eigenpairs of each window's kernel (ascending), eigenvalues clipped at 0."""
    P = features[:, index].permute(1, 2, 0)  # (L, n, d)
    lam, V = torch.linalg.eigh(window_ntk(P))  # (L, n), (L, n, n)
    return lam.clamp_min_(0.0), V


def _gains(lam: torch.Tensor, steps: torch.Tensor) -> torch.Tensor:
    """GD gains ``1 - (1 - lam / lam_max)^t`` per window, step and eigenvalue: (L, S, n)."""
    lam_max = lam[:, -1:].clamp_min(torch.finfo(lam.dtype).tiny)  # (L, 1)
    return 1.0 - (1.0 - lam / lam_max)[:, None, :] ** steps[None, :, None]


def _chunk(features, values, index, steps):
    """Eigenvectors, coefficients ``c = V^T (y - mu)`` and gains ``G`` of some windows."""
    lam, V = _window_eigenpairs(features, index)
    coef = values[:, index].transpose(0, 1) @ V  # (L, C, n)
    return V, coef, _gains(lam, steps)


def _risk(coef, G, sigma, divergence=None, target=None):
    """Per-window risk of every step (L, S): SURE, or the oracle's ``||z^t - x||^2``."""
    c2 = coef.pow(2).sum(1)  # (L, n)
    if target is not None:
        cross = (coef * target).sum(1)  # (L, n)
        return (G.pow(2) * c2[:, None] - 2 * G * cross[:, None]).sum(-1)
    residual = ((1.0 - G).pow(2) * c2[:, None]).sum(-1)  # ||z^t - y||^2 per window
    return residual + 2 * sigma**2 * divergence


def _probe_divergence(V, coef, G, Vb, coef_b, Gb, b_win, mu_shift):
    """``b . (z^t(y + eps b) - z^t(y)) / eps`` per window and step (L, S)."""
    bz = (G * ((b_win @ V) * coef).sum(1)[:, None]).sum(-1)  # (L, S)
    bz_b = (Gb * ((b_win @ Vb) * coef_b).sum(1)[:, None]).sum(-1)  # (L, S)
    b_mu = (b_win.sum(-1) * mu_shift).sum(-1)  # (L,): the mean, added back, moves too
    return (bz_b - bz + b_mu[:, None]) / PROBE_EPS


def _apply(V, coef, g, index, shape, num, den):
    """Add each window's estimate ``V diag(g) c``, weighted by ``1 / sum g^2``, into the sums."""
    est = (coef * g[:, None, :]) @ V.transpose(-1, -2)  # (L, C, n)
    weight = 1.0 / g.pow(2).sum(-1).clamp_min(1e-12)  # (L,): inverse noise gain
    num.index_add_(1, index.reshape(-1),
                   (est * weight[:, None, None]).transpose(0, 1).reshape(shape[0], -1))
    den.index_add_(0, index.reshape(-1), weight[:, None].expand(index.shape).reshape(-1))


def windowed_filter(src: torch.Tensor, y: torch.Tensor, sigma: float, *, patch_size: int,
                    window: int, stride: int, steps: torch.Tensor,
                    probe: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None,
                    x: torch.Tensor | None = None) -> WindowedFilter:
    """Filter ``y`` with the NTK of ``src``'s centred patches, window by window.

    Parameters
    ----------
    src : torch.Tensor, shape (C, H, W)
        Image whose patches build the kernel: ``y`` itself, or a pilot estimate.
    y : torch.Tensor, shape (C, H, W)
        Image filtered (float64).
    sigma : float
        Noise standard deviation (on the [0, 1] scale).
    patch_size, window, stride : int
        Patch side ``k`` (odd), window side ``T`` and the offset between windows.
    steps : torch.Tensor, shape (S,)
        Candidate gradient-descent steps (float64, >= 1); ``lr = 1 / lambda_max`` per window.
    probe : (src_b, y_b, b), optional
        The same inputs after the probe ``y -> y + eps b`` (``eps = 1e-3``), with ``b`` the
        Gaussian direction: the step of each window then minimises the Monte-Carlo SURE.
    x : torch.Tensor, shape (C, H, W), optional
        The clean image: the step of each window is then chosen by the ORACLE.

    Returns
    -------
    WindowedFilter

    Notes
    -----
    In window ``l`` with pixels ``I_l``, ``Theta_l = V diag(lam) V^T`` is the NTK of the
    centred patches of ``src`` at ``I_l`` (:func:`window_ntk`), and gradient descent from 0 on
    ``1/2 ||z - (y - mu)||^2`` with ``lr = 1 / lam_max`` gives

    .. math:: z_l^t = \\mu + V \\operatorname{diag}\\big(1 - (1 - \\lambda/\\lambda_{max})^t
              \\big) V^T (y - \\mu)_{I_l} .

    Each window's step minimises ``||z_l^t - y_l||^2 + 2 sigma^2 div_l(t)``, SURE up to a
    constant, with the divergence estimated by one Monte-Carlo probe through the whole map
    ``y -> z_l^t`` (kernel included; Ramani, Blu & Unser 2008).  A pixel's estimate is the
    average of its windows' estimates, window ``l`` weighted by ``1 / sum_i g_i^2``, the
    inverse of the gain of the noise through it (as BM3D aggregates).  Cost per window:
    an ``n x n`` eigendecomposition, ``O(T^6)``.
    """
    if (probe is None) == (x is None):
        raise ValueError("windowed_filter needs exactly one of probe (SURE) and x (oracle)")
    C, H, W = y.shape
    index = _window_index((H, W), window, stride).to(y.device)  # (L, n)
    n = window * window
    per_window = 8 * n * n * (6 + (2 if probe is not None else 0))
    size = max(1, _CHUNK_BYTES // per_window)
    sums = {key: (y.new_zeros(C, H * W), y.new_zeros(H * W)) for key in ("y", "b")}
    mu = y.mean(dim=(1, 2), keepdim=True)  # (C, 1, 1)
    features = _centred_patches(src, patch_size)  # (C k^2, n_pixels)
    values = (y - mu).reshape(C, -1)  # (C, n_pixels)
    if x is not None:
        target_values = (x - mu).reshape(C, -1)  # (C, n_pixels)
    elif probe is not None:
        src_b, y_b, b = probe
        mu_b = y_b.mean(dim=(1, 2), keepdim=True)  # (C, 1, 1)
        features_b = _centred_patches(src_b, patch_size)
        values_b = (y_b - mu_b).reshape(C, -1)
        b_values = b.reshape(C, -1)
    chosen, risks = [], []
    for start in range(0, index.shape[0], size):
        idx = index[start:start + size]  # (Lc, n)
        V, coef, G = _chunk(features, values, idx, steps)
        if x is not None:
            target = target_values[:, idx].transpose(0, 1) @ V  # (Lc, C, n)
            risk = _risk(coef, G, sigma, target=target)
        else:
            Vb, coef_b, Gb = _chunk(features_b, values_b, idx, steps)
            b_win = b_values[:, idx].transpose(0, 1)  # (Lc, C, n)
            div = _probe_divergence(V, coef, G, Vb, coef_b, Gb, b_win,
                                    (mu_b - mu).reshape(1, C))
            risk = _risk(coef, G, sigma, divergence=div)
        best = risk.argmin(1)  # (Lc,)
        rows = torch.arange(len(best), device=best.device)
        _apply(V, coef, G[rows, best], idx, y.shape, *sums["y"])
        if probe is not None:
            _apply(Vb, coef_b, Gb[rows, best], idx, y.shape, *sums["b"])
        chosen.append(steps[best])
        risks.append(risk[rows, best])
    num, den = sums["y"]
    estimate = (num / den).reshape(C, H, W) + mu
    probe_estimate = None
    if probe is not None:
        num_b, den_b = sums["b"]
        probe_estimate = (num_b / den_b).reshape(C, H, W) + mu_b
    return WindowedFilter(estimate=estimate, probe_estimate=probe_estimate,
                          steps=torch.cat(chosen), risk=torch.cat(risks))
