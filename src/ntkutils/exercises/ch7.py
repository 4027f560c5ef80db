"""Checkers of chapter 7, the paper's results reproduced: the flat image's PSNR, the
"NTK + Nyström" cell from its parts, the oracle's gain over the discrepancy principle, and the
rank agreement with the poster's grid."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from scipy.stats import pearsonr, spearmanr

from ..images import add_noise, load_image
from ..kernels import ntk_closed_form
from ..reproduce import INPUTS, METHODS, POSTER_PSNR, GridResult
from ..stopping import _discrepancy_index
from ._feedback import _call, _fail, _miss, _number, _passed

__all__ = ["check_ch7_flat_psnr", "check_ch7_ntk_nystrom", "check_ch7_oracle_gap",
           "check_ch7_rank_agreement"]


def _number_answer(exercise: str, answer: Any, what: str) -> float:
    """The reader's answer as a float, or feedback saying a number was expected."""
    return float(_number(exercise, answer, what,
                         "set `answer` to a Python float (replace `answer = None`)"))


def _psnr_by_definition(a: Any, b: Any) -> float:
    """PSNR in dB of arrays in [0, 1], from its definition (numpy, float64)."""
    mse = float(np.mean((np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64))
                        ** 2))
    return 10.0 * float(np.log10(1.0 / mse))


def check_ch7_flat_psnr(answer: Any, x: torch.Tensor, y: torch.Tensor) -> None:
    """Checker of Exercise 7.1: the PSNR of the flat image.

    Parameters
    ----------
    answer : float
        The reader's PSNR (dB) of the image whose every pixel is the mean colour of
        ``y`` (one mean per channel), against ``x``.
    x, y : torch.Tensor
        Clean and noisy images ``(C, H, W)``.

    Raises
    ------
    ExerciseFailed
        When the answer is more than 0.01 dB from the reference, with a hint when it
        is the PSNR of one mean for all channels.

    Notes
    -----
    The flat estimate is ``xhat_{c,i} = (1/n) sum_j y_{c,j}``; its PSNR is
    ``10 log10(1 / mean((xhat - x)^2))``, computed here with numpy.  It is what a
    low-pass filter that keeps only the mean returns, the poster's 15.3 dB cell.

    Examples
    --------
    >>> x = torch.tensor([[[0.0, 1.0]]]); y = torch.tensor([[[0.1, 0.9]]])
    >>> check_ch7_flat_psnr(6.0206, x, y)
    Exercise 7.1: correct (within 0.01 dB).
    """
    ex = "Exercise 7.1"
    got = _number_answer(ex, answer, "a PSNR in dB (a float)")
    xn = x.detach().cpu().double().numpy()
    yn = y.detach().cpu().double().numpy()
    expected = _psnr_by_definition(yn.mean(axis=(1, 2), keepdims=True) + 0 * xn, xn)
    if abs(got - expected) <= 0.01:
        _passed(ex, "within 0.01 dB")
        return
    if xn.shape[0] > 1 and abs(got - _psnr_by_definition(np.full_like(xn, yn.mean()), xn)) <= 0.01:
        _fail(ex, "the PSNR of the flat image (one mean per channel)",
              f"{got:.2f} dB, the PSNR of one mean over all "
              "channels (a gray flat image)", "take one mean per colour channel")
    _fail(ex, "the PSNR of the flat image (one mean per channel)",
          f"{got:.2f} dB: {_miss(got, expected)}",
          "flat = y.mean(dim=(1, 2), keepdim=True).expand_as(y); then psnr(flat, x)")


def _nystrom_reference(u: torch.Tensor, y: torch.Tensor, x: torch.Tensor,
                           landmarks: torch.Tensor, steps: list[int]) -> float:
    """Best PSNR of the Nyström GD filter, from the full kernel and explicit algebra."""
    K = ntk_closed_form(u.double(), 3).cpu().numpy()  # (n, n)
    S = landmarks.cpu().numpy()
    Cm, A = K[:, S], K[np.ix_(S, S)]  # (n, m), (m, m)
    a, Q = np.linalg.eigh((A + A.T) / 2)
    keep = a > 1e-10 * a.max()
    A_pinv = (Q[:, keep] / a[keep]) @ Q[:, keep].T  # (m, m)
    lam, V = np.linalg.eigh(Cm @ A_pinv @ Cm.T)  # (n,), (n, n)
    lam = np.clip(lam, 0.0, None)
    C = y.shape[0]
    yf = y.detach().cpu().double().numpy().reshape(C, -1)  # (C, n)
    xf = x.detach().cpu().double().numpy().reshape(C, -1)  # (C, n)
    coef = yf @ V  # (C, n)
    best = -np.inf
    for t in steps:
        gain = 1.0 - (1.0 - lam / lam.max()) ** t  # (n,)
        best = max(best, _psnr_by_definition((coef * gain) @ V.T, xf))
    return best


def check_ch7_ntk_nystrom(fn: Callable[..., Any]) -> None:
    """Checker of Exercise 7.2: the "NTK + Nyström" column from its parts.

    Parameters
    ----------
    fn : callable
        ``fn(u, y, x, landmarks, steps)`` for a network input ``u`` ``(C, H, W)``, the
        noisy and clean images ``y, x`` ``(C, H, W)``, landmark pixels ``(m,)`` and a
        list of steps, returning the best PSNR (dB, no clipping) over ``steps`` of
        gradient descent in closed form with the Nyström approximation of the
        closed-form NTK (single hidden layer, 3 x 3) of ``u``, step ``1 / lambda_max``.

    Raises
    ------
    ExerciseFailed
        When an answer is more than 0.05 dB from the reference, for a gray image with
        its own noisy version as input and a colour image with iid noise as input.

    Notes
    -----
    The reference forms the whole kernel, the Nyström matrix ``C A^+ C^T`` and its
    eigendecomposition ``V diag(lam) V^T`` with numpy, and filters
    ``z^t = V diag(1 - (1 - lam / lam_max)^t) V^T y``; it needs none of
    ``nystrom_eigenpairs`` or ``gd_filter``.

    Examples
    --------
    >>> from ntkutils.nystrom import nystrom_eigenpairs
    >>> from ntkutils.spectral import gd_filter
    >>> from ntkutils.images import psnr
    >>> from ntkutils.kernels import ntk_closed_form
    >>> def best(u, y, x, landmarks, steps):
    ...     cols = ntk_closed_form(u.double(), 3, columns=landmarks)
    ...     lam, V = nystrom_eigenpairs(cols, landmarks)
    ...     z = gd_filter(y.double(), lam, V, steps)
    ...     return max(psnr(zt, x) for zt in z)
    >>> check_ch7_ntk_nystrom(best)
    Exercise 7.2: correct (2 cases, noisy-image and iid-noise input, each within 0.05 dB).
    """
    ex = "Exercise 7.2"
    steps = [0, 1, 3, 10, 30, 100, 300, 1000, 10000]
    g = torch.Generator().manual_seed(7)
    x1 = load_image("camera", size=16, crop=64)
    y1 = add_noise(x1, 25 / 255, generator=g)
    x2 = load_image("coffee", size=12, crop=96, gray=False)
    y2 = add_noise(x2, 25 / 255, generator=g)
    u2 = 0.1 * torch.rand(x2.shape, generator=g)  # iid noise U(0, 0.1)
    cases = [("noisy-image input", y1, y1, x1, torch.randperm(256, generator=g)[:64]),
             ("iid-noise input", u2, y2, x2, torch.randperm(144, generator=g)[:48])]
    for name, u, y, x, S in cases:
        S = S.sort().values
        expected = _nystrom_reference(u, y, x, S, steps)
        got = _number_answer(ex, _call(ex, fn, u, y, x, S, steps), "a PSNR in dB (a float)")
        if not abs(got - expected) <= 0.05:
            _fail(ex, f"the PSNR of the NTK + Nystrom cell for the {name}",
                  f"{got:.2f} dB: {_miss(got, expected)}",
                  "kernel of u (not of y) from ntk_closed_form(u, 3, columns=landmarks); "
                  "nystrom_eigenpairs; gd_filter of y with lr = 1/lambda_max; the "
                  "best PSNR over the steps, without clipping")
    _passed(ex, "2 cases, noisy-image and iid-noise input, each within 0.05 dB")


def _grid_cells(result: Any) -> list[Any]:
    """The grid's ten cells, input by input (or a TypeError for anything else)."""
    if not isinstance(result, GridResult):
        raise TypeError(f"result must be a GridResult, got {type(result).__name__}")
    return [result.cells[i][m] for i in INPUTS for m in METHODS]


def check_ch7_oracle_gap(answer: Any, result: Any) -> None:
    """Checker of Exercise 7.3: what the oracle adds over the discrepancy principle.

    Parameters
    ----------
    answer : float
        The reader's mean, over the ten cells of the grid, of the best PSNR minus the
        PSNR at the discrepancy principle's step (dB).
    result : ntkutils.reproduce.GridResult
        The grid.

    Raises
    ------
    ExerciseFailed
        When the answer is more than 0.001 dB from the reference, with a hint for the
        likely slips (threshold without the channels, or sigma on the 0-255 scale).

    Notes
    -----
    For each cell, ``t_D`` is the first recorded step with ``||z^t - y||^2 <= C n
    sigma^2`` (the last recorded step when none is), and the gap is
    ``max_t PSNR(z^t) - PSNR(z^{t_D}) >= 0``; the reference loops over the recorded
    curves itself.

    Examples
    --------
    >>> from ntkutils.reproduce import reproduce_grid
    >>> r = reproduce_grid("test", progress=False)
    >>> check_ch7_oracle_gap(None, r)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ntkutils.exercises.ExerciseFailed: Exercise 7.3: not yet...
    """
    ex = "Exercise 7.3"
    cells = _grid_cells(result)
    got = _number_answer(ex, answer, "a mean PSNR gap in dB (a float)")
    d = result.y.numel()

    def mean_gap(d: int, sigma: float) -> float:
        """Mean over the cells of best PSNR - PSNR at the discrepancy step."""
        gaps = [float(cell.psnr_curve.max()
                      - cell.psnr_curve[_discrepancy_index(cell.residual, d, sigma)])
                for cell in cells]
        return sum(gaps) / len(gaps)

    sigma = result.settings.sigma
    expected = mean_gap(d, sigma)
    if abs(got - expected) <= 1e-3:
        _passed(ex, "within 0.01 dB")
        return
    if abs(got - mean_gap(d // result.y.shape[0], sigma)) <= 1e-3:
        _fail(ex, "the mean gap in dB over the 10 cells", f"{got:.3f} dB",
              "the threshold counts every value of y: C n sigma^2 with C channels")
    if abs(got - mean_gap(d, 255 * sigma)) <= 1e-3:
        _fail(ex, "the mean gap in dB over the 10 cells", f"{got:.3f} dB",
              "sigma is on the [0, 1] scale (25/255), like the images")
    _fail(ex, "the mean gap in dB over the 10 cells",
          f"{got:.3f} dB: {_miss(got, expected)}",
          "for each of the 10 cells: first k with cell.residual[k] <= y.numel() * "
          "sigma**2 (else the last), gap = cell.psnr_curve.max() - cell.psnr_curve[k]; "
          "then the mean")


def check_ch7_rank_agreement(answer: Any, result: Any) -> None:
    """Checker of Exercise 7.4: Spearman's rank correlation with the poster's grid.

    Parameters
    ----------
    answer : float
        The reader's Spearman correlation between our ten oracle PSNRs and the poster's
        ten, cell by cell.
    result : ntkutils.reproduce.GridResult
        The grid.

    Raises
    ------
    ExerciseFailed
        When the answer is more than 1e-6 from :func:`scipy.stats.spearmanr`, with a
        hint when it is Pearson's correlation of the values or of ranks without ties.

    Notes
    -----
    Spearman's rho is Pearson's correlation of the ranks; tied values (the poster has
    21.6 dB twice) share the mean of their ranks.

    Examples
    --------
    >>> from ntkutils.reproduce import reproduce_grid
    >>> from scipy.stats import spearmanr
    >>> from ntkutils.reproduce import INPUTS, METHODS, POSTER_PSNR
    >>> r = reproduce_grid("test", progress=False)
    >>> ours = [r.psnr[i][m] for i in INPUTS for m in METHODS]
    >>> poster = [POSTER_PSNR[i][m] for i in INPUTS for m in METHODS]
    >>> check_ch7_rank_agreement(spearmanr(ours, poster)[0], r)  # doctest: +ELLIPSIS
    Exercise 7.4: correct (the rank correlation of the 10 cells).
    """
    ex = "Exercise 7.4"
    _grid_cells(result)
    got = _number_answer(ex, answer, "a correlation between -1 and 1 (a float)")
    ours = [result.psnr[i][m] for i in INPUTS for m in METHODS]
    poster = [POSTER_PSNR[i][m] for i in INPUTS for m in METHODS]
    expected = float(spearmanr(ours, poster)[0])
    if abs(got - expected) <= 1e-6:
        _passed(ex, "the rank correlation of the 10 cells")
        return
    if abs(got - float(pearsonr(ours, poster)[0])) <= 1e-6:
        _fail(ex, "the rank correlation (Spearman)",
              f"{got:.4f}, Pearson's correlation of the values",
              "correlate the ranks, not the PSNRs")
    no_ties = float(np.corrcoef(np.argsort(np.argsort(ours)),
                                np.argsort(np.argsort(poster)))[0, 1])
    if abs(got - no_ties) <= 1e-6:
        _fail(ex, "the rank correlation (Spearman)", f"{got:.4f}, ranks without ties",
              "the poster's two 21.6 dB cells must share the mean of their ranks "
              "(scipy.stats.rankdata does this)")
    _fail(ex, "the rank correlation (Spearman)", f"{got:.4f}: {_miss(got, expected)}",
          "rank both lists (scipy.stats.rankdata), then Pearson's correlation of the "
          "ranks")
