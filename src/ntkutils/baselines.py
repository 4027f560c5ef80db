"""The classical filters the NTK filter is compared with: non-local means.

The chapters compare the NTK filter's weights with those of non-local means
(:func:`nlm_weights`, one pixel's weights, in the same vocabulary as the kernel's), and its
estimates with scikit-image's ``denoise_nl_means`` and, where installed, the ``bm3d``
package (the optional extra ``ntkutils[bm3d]``), which the chapters call directly.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ._checks import check_image, check_patch_size, check_positive, check_sigma
from .images import estimate_sigma

__all__ = ["nlm_weights"]


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
