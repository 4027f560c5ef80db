"""Tests of the chapter 7 exercise checkers: each accepts a right answer computed here
independently (plain loops and formulas, or the package's pieces instead of its pipeline)
and rejects wrong ones with feedback that does not give the answer."""
from __future__ import annotations

import math

import pytest
import torch

from ntkutils.exercises import (
    CH7_LOW_SIGMA,
    CH7_SEEDS,
    ExerciseFailed,
    check_ch7_clean_input,
    check_ch7_flat_psnr,
    check_ch7_noise_level,
    check_ch7_ntk_nystrom,
    check_ch7_oracle_gap,
    check_ch7_rank_agreement,
)
from ntkutils.nystrom import landmark_pixels, nystrom_eigenpairs
from ntkutils.spectral import gd_filter
from ntkutils.images import add_noise, load_image
from ntkutils.kernels import ntk_closed_form
from ntkutils.reproduce import INPUTS, METHODS, POSTER_PSNR, reproduce_grid
from ntkutils.stopping import log_step_grid


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


# ------------------------------------------------------------------- 7.5 and 7.6
def _kernel_cell_psnr(u, y, x, settings, landmark_seed):
    """Best PSNR and its step of the kernel column, from the package's pieces and
    explicit loops (not ntk_filter): landmarks, Nyström, the closed-form GD filter."""
    H, W = x.shape[1:]
    S = landmark_pixels((H, W), settings.n_landmarks,
                        generator=torch.Generator().manual_seed(landmark_seed))
    cols = ntk_closed_form(u.double(), settings.patch_size, settings.vanilla_depth,
                           columns=S)  # (n, m)
    lam, V = nystrom_eigenpairs(cols, S)
    steps = log_step_grid(settings.ntk_max_step)
    z = gd_filter(y.double(), lam, V, steps, lr=1 / float(lam[0]))  # (T, C, H, W)
    curve = [_psnr(zt, x) for zt in z]
    best = max(range(len(curve)), key=curve.__getitem__)
    return curve[best], int(steps[best])


def _runs(grid, sigma, clean_input):
    """(PSNR of y, PSNR of the cell, its step) for each seed, computed here."""
    s, x = grid.settings, grid.x.double()
    out = []
    for k in CH7_SEEDS:
        y = add_noise(x, sigma, generator=torch.Generator().manual_seed(s.seed + k))
        u = x if clean_input else y
        out.append((_psnr(y, x), *_kernel_cell_psnr(u, y, x, s, s.seed + 102 + k)))
    return out


def test_seeds_are_three_and_the_low_sigma_is_lower(grid):
    assert len(CH7_SEEDS) >= 3 and len(set(CH7_SEEDS)) == len(CH7_SEEDS)
    assert 0 < CH7_LOW_SIGMA < grid.settings.sigma


def _clean_choice(grid):
    noisy, clean = _runs(grid, grid.settings.sigma, False), _runs(grid, grid.settings.sigma,
                                                                   True)
    gain = sum(c[1] - n[1] for c, n in zip(clean, noisy)) / len(noisy)
    return gain, ("lower" if gain < -1 else "same" if gain <= 1
                  else "higher" if gain <= 5 else "much higher")


def test_clean_input_accepts_what_the_runs_show_and_rejects_the_rest(grid, capsys):
    gain, right = _clean_choice(grid)
    check_ch7_clean_input(right, grid)
    out = capsys.readouterr().out
    assert "Exercise 7.5: correct" in out and f"{gain:.1f}" not in out
    check_ch7_clean_input(f"  {right.upper()} ", grid)  # case and spaces do not matter
    for wrong in {"lower", "same", "higher", "much higher"} - {right}:
        with pytest.raises(ExerciseFailed, match="did (better|worse) than that") as err:
            check_ch7_clean_input(wrong, grid)
        assert f"{gain:.1f}" not in str(err.value) and f'"{right}"' not in str(err.value)


def test_clean_input_says_which_way_it_misses(grid):
    _, right = _clean_choice(grid)
    if right != "lower":
        with pytest.raises(ExerciseFailed, match="did better"):
            check_ch7_clean_input("lower", grid)
    if right != "much higher":
        with pytest.raises(ExerciseFailed, match="did worse"):
            check_ch7_clean_input("much higher", grid)


@pytest.mark.parametrize("bad", [None, 3.0, "maybe", ["higher"]])
def test_clean_input_names_the_choices_for_bad_input(grid, bad):
    with pytest.raises(ExerciseFailed, match='"lower", "same", "higher", "much higher"'):
        check_ch7_clean_input(bad, grid)
    with pytest.raises(TypeError, match="GridResult"):
        check_ch7_clean_input("same", None)


@pytest.fixture(scope="module")
def noise_runs(grid):
    low = _runs(grid, CH7_LOW_SIGMA, False)
    mid = _runs(grid, grid.settings.sigma, False)
    gain = sum(p - p_y for p_y, p, _ in low) / len(low)
    votes = sum((a[2] > b[2]) - (a[2] < b[2]) for a, b in zip(low, mid))
    stop = "later" if votes > 0 else "earlier" if votes < 0 else "same"
    return low, mid, gain, stop


def test_noise_level_accepts_the_gain_and_the_step(grid, noise_runs, capsys):
    _, _, gain, stop = noise_runs
    check_ch7_noise_level(gain, stop, grid)
    out = capsys.readouterr().out
    assert "Exercise 7.6: correct" in out and f"{gain:.1f}" not in out


def test_noise_level_rejects_slips_with_their_hint(grid, noise_runs):
    low, mid, gain, stop = noise_runs
    cell_psnr = sum(p for _, p, _ in low) / len(low)
    gain_mid = sum(p - p_y for p_y, p, _ in mid) / len(mid)
    with pytest.raises(ExerciseFailed, match="minus the noisy image's") as err:
        check_ch7_noise_level(cell_psnr, stop, grid)
    assert f"{gain:.2f}" not in str(err.value)
    with pytest.raises(ExerciseFailed, match="15 / 255"):
        check_ch7_noise_level(gain_mid, stop, grid)
    with pytest.raises(ExerciseFailed, match="too (large|small)") as err:
        check_ch7_noise_level(gain + 0.5, stop, grid)
    assert f"{gain:.2f}" not in str(err.value)
    for wrong in {"earlier", "same", "later"} - {stop}:
        with pytest.raises(ExerciseFailed, match="not what most of the seeds show") as err:
            check_ch7_noise_level(gain, wrong, grid)
        assert f'"{stop}"' not in str(err.value)


def test_noise_level_names_bad_input(grid, noise_runs):
    _, _, gain, stop = noise_runs
    with pytest.raises(ExerciseFailed, match="a mean PSNR gain in dB"):
        check_ch7_noise_level(None, stop, grid)
    with pytest.raises(ExerciseFailed, match='"earlier", "same", "later"'):
        check_ch7_noise_level(gain, None, grid)
    with pytest.raises(TypeError, match="GridResult"):
        check_ch7_noise_level(gain, stop, None)
