"""Tests of the chapter 7 exercise checkers: each accepts a right answer computed here
independently (plain loops and formulas) and rejects wrong ones with feedback."""
from __future__ import annotations

import math

import pytest
import torch

from ntkutils.exercises import (
    ExerciseFailed,
    check_ch7_flat_psnr,
    check_ch7_ntk_nystrom,
    check_ch7_oracle_gap,
    check_ch7_rank_agreement,
)
from ntkutils.nystrom import nystrom_eigenpairs
from ntkutils.spectral import gd_filter
from ntkutils.images import add_noise, load_image
from ntkutils.kernels import ntk_closed_form
from ntkutils.reproduce import INPUTS, METHODS, POSTER_PSNR, reproduce_grid


def _psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    return -10 * math.log10(float(((a.double() - b.double()) ** 2).mean()))


@pytest.fixture(scope="module")
def grid():
    return reproduce_grid("test", progress=False)


# ----------------------------------------------------------------------------- 7.1
@pytest.fixture(scope="module")
def images():
    x = load_image("coffee", size=24, gray=False)
    y = add_noise(x, 25 / 255, generator=torch.Generator().manual_seed(3))
    return x, y


def test_flat_psnr_accepts_the_channel_means_of_y(images, capsys):
    x, y = images
    flat = torch.stack([torch.full_like(y[c], float(y[c].mean())) for c in range(3)])
    check_ch7_flat_psnr(_psnr(flat, x), x, y)
    assert "Exercise 7.1: correct" in capsys.readouterr().out


def test_flat_psnr_rejects_slips_with_their_hint(images):
    x, y = images
    with pytest.raises(ExerciseFailed, match="one mean per colour channel"):
        check_ch7_flat_psnr(_psnr(torch.full_like(y, float(y.mean())), x), x, y)
    with pytest.raises(ExerciseFailed):
        check_ch7_flat_psnr(None, x, y)
    with pytest.raises(ExerciseFailed):
        check_ch7_flat_psnr(_psnr(y, x), x, y)  # the noisy image is not flat


# ----------------------------------------------------------------------------- 7.2
def _right_nystrom(u, y, x, landmarks, steps):
    cols = ntk_closed_form(u.double(), 3, columns=landmarks)  # (n, m)
    lam, V = nystrom_eigenpairs(cols, landmarks)
    z = gd_filter(y.double(), lam, V, steps, lr=1 / float(lam[0]))
    return max(_psnr(zt, x) for zt in z)


def _kernel_of_y(u, y, x, landmarks, steps):  # ignores the network input u
    return _right_nystrom(y, y, x, landmarks, steps)


def _no_filter(u, y, x, landmarks, steps):  # the noisy image itself
    return _psnr(y, x)


def test_ntk_nystrom_accepts_the_pipeline(capsys):
    check_ch7_ntk_nystrom(_right_nystrom)
    assert "Exercise 7.2: correct" in capsys.readouterr().out


@pytest.mark.parametrize("wrong", [_kernel_of_y, _no_filter])
def test_ntk_nystrom_rejects_wrong_pipelines(wrong):
    with pytest.raises(ExerciseFailed, match="kernel of u"):
        check_ch7_ntk_nystrom(wrong)


def test_ntk_nystrom_reports_a_stub():
    def stub(u, y, x, landmarks, steps):
        raise NotImplementedError

    with pytest.raises(ExerciseFailed, match="NotImplementedError"):
        check_ch7_ntk_nystrom(stub)


# ----------------------------------------------------------------------------- 7.3
def _gap(grid, threshold):
    gaps = []
    for name in INPUTS:
        for method in METHODS:
            cell = grid.cells[name][method]
            k = len(cell.residual) - 1
            for i, r in enumerate(cell.residual):
                if r <= threshold:
                    k = i
                    break
            gaps.append(float(cell.psnr_curve.max() - cell.psnr_curve[k]))
    return sum(gaps) / len(gaps)


def test_oracle_gap_accepts_the_mean_gap(grid, capsys):
    sigma = grid.settings.sigma
    check_ch7_oracle_gap(_gap(grid, grid.y.numel() * sigma**2), grid)
    assert "Exercise 7.3: correct" in capsys.readouterr().out


def test_oracle_gap_rejects_slips(grid):
    sigma = grid.settings.sigma
    n_pixels = grid.y.shape[1] * grid.y.shape[2]
    gap_all = _gap(grid, grid.y.numel() * sigma**2)
    gap_no_channels = _gap(grid, n_pixels * sigma**2)
    if abs(gap_no_channels - gap_all) > 1e-3:  # the slip changes the answer here
        with pytest.raises(ExerciseFailed, match="C channels"):
            check_ch7_oracle_gap(gap_no_channels, grid)
    with pytest.raises(ExerciseFailed):
        check_ch7_oracle_gap(gap_all + 0.5, grid)
    with pytest.raises(ExerciseFailed):
        check_ch7_oracle_gap("0.1", grid)
    with pytest.raises(TypeError, match="GridResult"):
        check_ch7_oracle_gap(0.0, None)


# ----------------------------------------------------------------------------- 7.4
def _ranks(values):
    """Ranks 1..n, ties sharing the mean of their ranks (written out by hand)."""
    order = sorted(range(len(values)), key=lambda i: values[i])
    ranks = [0.0] * len(values)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and values[order[j + 1]] == values[order[i]]:
            j += 1
        for k in range(i, j + 1):
            ranks[order[k]] = (i + j) / 2 + 1
        i = j + 1
    return ranks


def _pearson(a, b):
    ma, mb = sum(a) / len(a), sum(b) / len(b)
    cov = sum((p - ma) * (q - mb) for p, q in zip(a, b))
    return cov / math.sqrt(sum((p - ma) ** 2 for p in a) * sum((q - mb) ** 2 for q in b))


def test_rank_agreement_accepts_spearman(grid, capsys):
    ours = [grid.psnr[i][m] for i in INPUTS for m in METHODS]
    poster = [POSTER_PSNR[i][m] for i in INPUTS for m in METHODS]
    assert _ranks([1.0, 2.0, 2.0, 0.5]) == [2.0, 3.5, 3.5, 1.0]
    check_ch7_rank_agreement(_pearson(_ranks(ours), _ranks(poster)), grid)
    assert "Exercise 7.4: correct" in capsys.readouterr().out


def test_rank_agreement_rejects_pearson_of_values(grid):
    ours = [grid.psnr[i][m] for i in INPUTS for m in METHODS]
    poster = [POSTER_PSNR[i][m] for i in INPUTS for m in METHODS]
    with pytest.raises(ExerciseFailed, match="ranks, not the PSNRs"):
        check_ch7_rank_agreement(_pearson(ours, poster), grid)
    with pytest.raises(ExerciseFailed):
        check_ch7_rank_agreement(1.0, grid)
