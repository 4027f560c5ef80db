"""Checkers of chapter 7, the paper's results reproduced: the flat image's PSNR, the
"NTK + Nyström" cell from its parts, the oracle's gain over the discrepancy principle, the
rank agreement with the poster's grid, a prediction of the kernel cell with the clean image
as input, and the kernel cell at a lower noise level."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from scipy.stats import pearsonr, spearmanr

from ..images import add_noise, load_image
from ..kernels import ntk_closed_form
from ..pipeline import ntk_filter
from ..reproduce import INPUTS, METHODS, POSTER_PSNR, GridResult
from ..stopping import _discrepancy_index, log_step_grid
from ._feedback import _call, _fail, _miss, _number, _passed

__all__ = ["CH7_SEEDS", "CH7_LOW_SIGMA", "check_ch7_flat_psnr", "check_ch7_ntk_nystrom",
           "check_ch7_oracle_gap", "check_ch7_rank_agreement", "check_ch7_clean_input",
           "check_ch7_noise_level"]

#: Seeds of Exercises 7.5 and 7.6, added to the grid's seed: the noise of seed ``k`` is
#: drawn with ``seed + k``, its landmarks with ``seed + 102 + k`` (so ``k = 0`` is the
#: grid's own noisy image and kernel cell).
CH7_SEEDS = (0, 1, 2)

#: The lower noise level of Exercise 7.6, on the [0, 1] scale.
CH7_LOW_SIGMA = 15 / 255


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


# ------------------------------------------------------------------ 7.5 and 7.6
def _kernel_runs(result: GridResult, sigma: float,
                 clean_input: bool) -> list[tuple[float, float, int]]:
    """``(PSNR of y, PSNR of the kernel cell, oracle step)`` for each of :data:`CH7_SEEDS`.

    The grid's "NTK + Nyström" cell (its patch size, depth, landmarks and steps) for the
    noisy image ``y_k = x + sigma * noise_k``, with ``y_k`` itself or, with
    ``clean_input``, the clean ``x`` as the network input; PSNRs from their definition.
    """
    s = result.settings
    x = result.x.detach().cpu().double()
    runs = []
    for k in CH7_SEEDS:
        y = add_noise(x, sigma, generator=torch.Generator().manual_seed(s.seed + k))
        f = ntk_filter(x if clean_input else y, y, patch_size=s.patch_size,
                       depth=s.vanilla_depth, method="nystrom", n_landmarks=s.n_landmarks,
                       steps=log_step_grid(s.ntk_max_step), x=x,
                       generator=torch.Generator().manual_seed(s.seed + 102 + k))
        runs.append((_psnr_by_definition(y, x), _psnr_by_definition(f.x_hat, x), f.step))
    return runs


def _choice(exercise: str, value: Any, choices: tuple[str, ...], what: str) -> str:
    """The reader's named choice, or feedback listing the choices."""
    if not isinstance(value, str) or value.strip().lower() not in choices:
        shown = f"{type(value).__name__} {value!r}"
        _fail(exercise, f"{what}: one of " + ", ".join(f'"{c}"' for c in choices), shown,
              "set it to one of the quoted words (replace the `None`)")
    return value.strip().lower()


#: Exercise 7.5's choices, from low to high: the clean-image kernel cell minus the
#: noisy-image one (dB, same seed) below -1, within 1, from 1 to 5, above 5.
_CLEAN_CHOICES = ("lower", "same", "higher", "much higher")


def _clean_category(gain: float) -> str:
    """Exercise 7.5's choice for a mean gain in dB (see :data:`_CLEAN_CHOICES`)."""
    if gain < -1.0:
        return "lower"
    if gain <= 1.0:
        return "same"
    return "higher" if gain <= 5.0 else "much higher"


def check_ch7_clean_input(prediction: Any, result: Any) -> None:
    """Checker of Exercise 7.5: the kernel cell with the clean image as input (an oracle).

    Parameters
    ----------
    prediction : str
        The reader's prediction, made before the runs, of the kernel cell's PSNR with the
        clean image ``x`` as network input (filtering the noisy ``y``, stopped at the
        oracle step) against the grid's kernel cell with ``y`` as input, same noise and
        landmarks: ``"lower"`` (more than 1 dB below), ``"same"`` (within 1 dB),
        ``"higher"`` (1 to 5 dB above) or ``"much higher"`` (more than 5 dB above).
    result : ntkutils.reproduce.GridResult
        The grid (its clean image and settings).

    Raises
    ------
    ExerciseFailed
        When the prediction is not one of the four words, or not what the runs show: the
        feedback says whether the clean-image kernel did better or worse than predicted.

    Notes
    -----
    The checker runs both kernel cells itself for the seeds :data:`CH7_SEEDS` (noise
    ``seed + k``, landmarks ``seed + 102 + k``) with :func:`ntkutils.pipeline.ntk_filter`,
    and takes the mean over the seeds of the difference of their PSNRs.

    Examples
    --------
    >>> from ntkutils.reproduce import reproduce_grid
    >>> r = reproduce_grid("test", progress=False)
    >>> check_ch7_clean_input("maybe", r)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ntkutils.exercises.ExerciseFailed: Exercise 7.5: not yet...
    """
    ex = "Exercise 7.5"
    _grid_cells(result)
    got = _choice(ex, prediction, _CLEAN_CHOICES, "your prediction")
    sigma = result.settings.sigma
    noisy = _kernel_runs(result, sigma, clean_input=False)
    clean = _kernel_runs(result, sigma, clean_input=True)
    gain = sum(c[1] - n[1] for c, n in zip(clean, noisy)) / len(noisy)
    expected = _clean_category(gain)
    if got == expected:
        _passed(ex, f"your prediction agrees with the {len(noisy)} runs")
        return
    better = _CLEAN_CHOICES.index(expected) > _CLEAN_CHOICES.index(got)
    _fail(ex, f"your prediction against the {len(noisy)} runs (the mean over the seeds of "
          "the clean-image cell minus the noisy-image cell)",
          f'"{got}": the clean-image kernel did {"better" if better else "worse"} than that',
          "the gradient-descent filter fits the kernel's leading eigen-images first, and "
          "they are made of the input's patches (Chapter 3, Section 5): how well do they "
          "represent the clean image when the input is x itself, and how much noise?")


_STOP_CHOICES = ("earlier", "same", "later")


def check_ch7_noise_level(answer: Any, stop: Any, result: Any) -> None:
    """Checker of Exercise 7.6: the kernel cell at the lower noise level ``15/255``.

    Parameters
    ----------
    answer : float
        The reader's mean, over the seeds :data:`CH7_SEEDS`, of the kernel cell's gain
        over the noisy image, ``PSNR(x_hat) - PSNR(y)`` in dB, with the noisy image as
        input and ``sigma =`` :data:`CH7_LOW_SIGMA` (noise ``seed + k``, landmarks
        ``seed + 102 + k``, the oracle step).
    stop : str
        Where that oracle step falls against the one at the grid's noise level on the
        same seed: ``"earlier"``, ``"same"`` or ``"later"`` (what most seeds show).
    result : ntkutils.reproduce.GridResult
        The grid (its clean image and settings).

    Raises
    ------
    ExerciseFailed
        When the gain is more than 0.01 dB from the checker's own runs (with a hint when
        it is the cell's PSNR rather than its gain, or the gain at the grid's noise
        level), or when ``stop`` is not what the runs show.

    Notes
    -----
    The checker runs the cells itself with :func:`ntkutils.pipeline.ntk_filter` at both
    noise levels and measures the PSNRs from their definition.

    Examples
    --------
    >>> from ntkutils.reproduce import reproduce_grid
    >>> r = reproduce_grid("test", progress=False)
    >>> check_ch7_noise_level(None, None, r)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ntkutils.exercises.ExerciseFailed: Exercise 7.6: not yet...
    """
    ex = "Exercise 7.6"
    _grid_cells(result)
    got = _number_answer(ex, answer, "a mean PSNR gain in dB (a float)")
    got_stop = _choice(ex, stop, _STOP_CHOICES, "`stop`")
    low = _kernel_runs(result, CH7_LOW_SIGMA, clean_input=False)
    mid = _kernel_runs(result, result.settings.sigma, clean_input=False)
    expected = sum(p - p_y for p_y, p, _ in low) / len(low)
    checked = f"the mean gain over the noisy image at sigma = 15/255 ({len(low)} seeds)"
    if not abs(got - expected) <= 0.01:
        if abs(got - sum(p for _, p, _ in low) / len(low)) <= 0.01:
            _fail(ex, checked, f"{got:.2f} dB, the cell's own PSNR",
                  "the gain is the cell's PSNR minus the noisy image's, seed by seed")
        if abs(got - sum(p - p_y for p_y, p, _ in mid) / len(mid)) <= 0.01:
            _fail(ex, checked, f"{got:.2f} dB, the gain at the grid's noise level",
                  "draw the noise with sigma = 15 / 255 (CH7_LOW_SIGMA)")
        _fail(ex, checked, f"{got:.2f} dB: {_miss(got, expected)}",
              "for each seed k: y = add_noise(x, 15 / 255, generator(seed + k)), the "
              "kernel cell of input y with landmarks from generator(seed + 102 + k), "
              "then psnr(x_hat, x) - psnr(y, x); the mean over the seeds")
    votes = [(t_low > t_mid) - (t_low < t_mid) for (_, _, t_low), (_, _, t_mid)
             in zip(low, mid)]
    majority = sum(votes)
    expected_stop = "later" if majority > 0 else "earlier" if majority < 0 else "same"
    if got_stop != expected_stop:
        _fail(ex, "where the oracle step at 15/255 falls against the one at the grid's "
              "noise level, seed by seed", f'"{got_stop}": not what most of the seeds show',
              "compare the runs' f.step at the two noise levels on the same seed; then "
              "ask how many of y's directions carry more image than noise when the "
              "noise is lower (Chapter 4: the bias-variance trade-off)")
    _passed(ex, f"the gain within 0.01 dB and the step, over {len(low)} seeds")
