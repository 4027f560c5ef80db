"""Tests of ntkutils.reproduce (the poster's grid) and of ``python -m ntkutils reproduce``.

Everything runs at the hidden "test" scale (a 32 x 32 colour crop, tiny networks, 20 steps),
a few seconds in all.  Reference values are computed here independently: PSNR from its
formula, the PSNR curves from the outputs themselves (snapshots, the kernel filter rebuilt
from its landmarks), the flat image from the noisy image's channel means, the exact kernel
filter from a full eigendecomposition, and the poster's numbers typed from the poster's
text.
"""
from __future__ import annotations

import dataclasses
import math
import re
import subprocess
import sys

import numpy as np
import pytest
import torch

from ntkutils.cli import main, read_png
from ntkutils.kernels import ntk_closed_form
from ntkutils.nystrom import nystrom_eigenpairs
from ntkutils.spectral import gd_filter
from ntkutils.reproduce import (
    INPUTS,
    METHODS,
    POSTER_PSNR,
    GridSettings,
    format_settings,
    format_table,
    grid_settings,
    plot_grid,
    reproduce_grid,
)

# The poster's grid, typed from the poster's text (rows: network input).
POSTER = {
    "noisy image": [24.7, 28.0, 28.9, 31.1, 28.3],
    "iid noise": [16.4, 21.6, 15.3, 31.0, 21.6],
}


def _psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    mse = float(((a.double() - b.double()) ** 2).mean())
    return 10 * math.log10(1.0 / mse)


@pytest.fixture(scope="module")
def grid():
    return reproduce_grid("test", progress=False)


@pytest.fixture(scope="module")
def grid_seed1():
    return reproduce_grid("test", seed=1, progress=False)


@pytest.fixture(scope="module")
def check_now():
    """The stored files' check grid, recomputed by today's code (``check_now(gd_lanczos)``:
    None for Nyström); ``check_table`` computes each method once per process."""
    from ntkutils.reproduce.store import check_table

    return check_table


def test_every_cell_has_a_finite_psnr_that_matches_its_image(grid):
    assert set(grid.cells) == set(INPUTS)
    for name in INPUTS:
        assert list(grid.cells[name]) == list(METHODS)
        for method in METHODS:
            cell = grid.cells[name][method]
            assert math.isfinite(cell.psnr) and math.isfinite(cell.psnr_discrepancy)
            assert cell.x_hat.shape == grid.x.shape
            assert cell.psnr == pytest.approx(_psnr(cell.x_hat, grid.x), abs=1e-4)
            assert cell.step in cell.steps.tolist()
    assert grid.noisy_psnr == pytest.approx(_psnr(grid.y, grid.x), abs=1e-6)


def _measured_psnr(grid, method):
    """PSNR of outputs recomputed here, by step: the trained networks' snapshots, and the
    kernel filter of the noisy-image row rebuilt from its landmarks with the public pieces."""
    cell = grid.cells["noisy image"][method]
    if method != "NTK + Nyström":
        return {t: _psnr(z, grid.x) for t, z in cell.snapshots.items()}
    s, S, y = grid.settings, cell.landmarks, grid.y.double()
    lam, V = nystrom_eigenpairs(ntk_closed_form(y, s.patch_size, s.vanilla_depth,
                                                columns=S), S)
    z = gd_filter(y, lam, V, cell.steps)  # (T, C, H, W), lr = 1 / lambda_max
    return {int(t): _psnr(zt, grid.x) for t, zt in zip(cell.steps, z)}


@pytest.mark.parametrize("method", METHODS)
def test_oracle_is_the_best_step_of_the_outputs_psnr(grid, method):
    # the PSNR curve is the PSNR of the outputs at the steps it is recorded at: the
    # networks' own outputs (snapshots) on the raw curve, the kernel's on its curve ...
    cell = grid.cells["noisy image"][method]
    main = not method.startswith("GD")  # GD's snapshots are of the real run
    steps = (cell.steps if main else cell.steps_real).tolist()
    curve = cell.psnr_curve if main else cell.psnr_curve_real
    measured = {t: v for t, v in _measured_psnr(grid, method).items() if t in steps}
    assert len(measured) >= 3
    for t, value in measured.items():
        assert float(curve[steps.index(t)]) == pytest.approx(value, abs=1e-6)
    # ... and the oracle reports the best step of the main curve, with its PSNR
    main_steps = cell.steps.tolist()
    assert cell.psnr == float(cell.psnr_curve[main_steps.index(cell.step)])
    assert cell.psnr == float(cell.psnr_curve.max())
    if not main:
        assert cell.psnr_real == float(curve.max())


def test_poster_constant_is_the_posters_table():
    for name, values in POSTER.items():
        assert [POSTER_PSNR[name][m] for m in METHODS] == values


def test_table_puts_the_posters_numbers_beside_ours(grid):
    lines = format_table(grid).splitlines()
    assert lines[0].split("|")[2:-1] == [f" {m} " for m in METHODS]
    for name, line in zip(INPUTS, lines[2:4]):
        assert line.startswith(f"| {name} |")
        pairs = re.findall(r"(-?[0-9.]+) \[([0-9.]+)\]", line)
        assert len(pairs) == len(METHODS)
        for (ours, poster), method, expected in zip(pairs, METHODS, POSTER[name]):
            assert float(poster) == expected
            assert float(ours) == pytest.approx(grid.cells[name][method].psnr, abs=0.051)
    assert "ORACLE" in format_table(grid)
    assert "discrepancy" in format_table(grid, rule="discrepancy")


def test_ntk_of_noise_input_is_nearly_flat_and_of_image_input_denoises(grid):
    x, y = grid.x, grid.y
    flat = y.mean(dim=(1, 2), keepdim=True).expand_as(y)  # per-channel mean colour
    noise_cell = grid.cells["iid noise"]["NTK + Nyström"]
    spatial_std = noise_cell.x_hat.std(dim=(1, 2)).mean()
    assert spatial_std < 0.5 * x.std(dim=(1, 2)).mean()
    assert abs(noise_cell.psnr - _psnr(flat, x)) < 1.5  # cf. the poster's 15.3 dB
    image_cell = grid.cells["noisy image"]["NTK + Nyström"]
    assert image_cell.psnr > grid.noisy_psnr + 2.0


def test_discrepancy_step_is_the_first_residual_below_the_noise_level(grid):
    threshold = grid.y.numel() * grid.settings.sigma**2
    for row in grid.cells.values():
        for cell in row.values():
            res = cell.residual.tolist()
            first = next((k for k, r in enumerate(res) if r <= threshold), len(res) - 1)
            assert cell.step_discrepancy == int(cell.steps[first])
            assert cell.psnr_discrepancy == pytest.approx(float(cell.psnr_curve[first]))


def test_gradient_descent_starts_from_zero_output_and_adam_does_not(grid):
    for name in INPUTS:
        for method in METHODS:
            snaps = grid.cells[name][method].snapshots
            if method.startswith("GD"):
                assert float(snaps[0].abs().max()) < 1e-5
            elif method.startswith("Adam"):
                assert float(snaps[0].abs().max()) > 1e-3


def test_ntk_cell_with_every_pixel_a_landmark_is_the_exact_filter():
    s = dataclasses.replace(grid_settings("test"), size=16, crop=32, n_landmarks=256)
    r = reproduce_grid(settings=s, progress=False)
    cell = r.cells["noisy image"]["NTK + Nyström"]
    K = ntk_closed_form(r.y.double(), s.patch_size, s.vanilla_depth).numpy()  # (n, n)
    lam, V = np.linalg.eigh(K)
    lam = np.clip(lam, 0, None)
    gain = 1.0 - (1.0 - lam / lam.max()) ** cell.step  # (n,)
    yf = r.y.double().reshape(3, -1).numpy()  # (C, n)
    z = (yf @ V * gain) @ V.T  # (C, n)
    assert np.abs(z - cell.x_hat.double().reshape(3, -1).numpy()).max() < 1e-4
    # the degrees of freedom of that filter, C tr(I - (I - Theta / lambda_max)^t)
    assert cell.degrees_of_freedom == pytest.approx(3 * gain.sum(), rel=1e-6)


def test_seeded_grid_is_reproducible(grid):
    again = reproduce_grid("test", progress=False)
    assert again.psnr == grid.psnr
    other = reproduce_grid("test", seed=1, progress=False)
    assert other.psnr != grid.psnr


def test_settings_and_figure(grid):
    text = format_settings(grid)
    assert "ORACLE" in text and "sigma = 25/255" in text and "32x32" in text
    fig = plot_grid(grid)
    titles = [ax.get_title() for ax in fig.axes]
    assert len(fig.axes) == 2 * (len(METHODS) + 1)
    for name, values in POSTER.items():
        for v in values:
            assert any(f"(poster {v:.1f})" in t for t in titles)
    import matplotlib.pyplot as plt

    plt.close(fig)


def test_bad_arguments_raise_named_errors(grid):
    with pytest.raises(ValueError, match="scale"):
        reproduce_grid("huge")
    with pytest.raises(TypeError, match="settings"):
        reproduce_grid(settings={"size": 8})
    with pytest.raises(ValueError, match="rule"):
        format_table(grid, rule="best")
    with pytest.raises(TypeError, match="GridResult"):
        plot_grid(None)
    with pytest.raises(ValueError, match="seed"):
        grid_settings("cpu", seed=-1)
    assert isinstance(grid_settings("paper"), GridSettings)


def test_command_writes_table_and_figure(tmp_path, capsys):
    out = tmp_path / "new" / "folder"
    assert main(["reproduce", "--scale", "test", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    md = (out / "grid.md").read_text(encoding="utf-8")
    for name, values in POSTER.items():
        row = next(line for line in md.splitlines() if line.startswith(f"| {name} |"))
        assert [float(p) for p in re.findall(r"\[([0-9.]+)\]", row)] == values
    assert "Settings" in md and "discrepancy" in md
    assert "| noisy image |" in printed and "wrote" in printed
    png = read_png(out / "grid.png")
    # two columns (the inputs) of six rows, as tall as the book's column needs
    assert png.shape[0] == 3 and png.shape[1] > 2 * png.shape[2]


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--scale", "huge"], "--scale must be 'cpu', 'medium' or 'paper'"),
        (["--seeds", "0"], "--seeds must be >= 1"),
        (["--image", "house"], "--image must be one of"),
        (["--seed", "-1"], "--seed must be >= 0"),
        (["--jobs", "0"], "--jobs must be >= 1"),
        (["--landmarks", "0"], "--landmarks must be >= 1"),
        (["--adam-steps-noise", "0"], "--adam-steps-noise must be >= 1"),
        (["--gd-lanczos", "0"], "--gd-lanczos must be >= 1"),
        (["--scale", "test", "--gd-lanczos", "3073"], "--gd-lanczos must be <= the 3072"),
        (["--scale", "test", "--landmarks", "1025"], "--landmarks must be <= the 1024"),
    ],
)
def test_command_bad_arguments_give_one_line(tmp_path, capsys, extra, message):
    assert main(["reproduce", "--out", str(tmp_path), *extra]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and "Traceback" not in err


def test_command_refuses_a_file_as_output_folder(tmp_path, capsys):
    (tmp_path / "f").write_text("x")
    assert main(["reproduce", "--scale", "test", "--out", str(tmp_path / "f")]) == 2
    err = capsys.readouterr().err
    assert "--out must be a folder" in err and err.count("\n") == 1


def test_module_entry_point_reports_one_line():
    bad = subprocess.run([sys.executable, "-m", "ntkutils", "reproduce", "--scale", "x"],
                         capture_output=True, text=True, timeout=300)
    assert bad.returncode == 2
    assert bad.stderr.strip().count("\n") == 0 and "--scale" in bad.stderr


@pytest.mark.gpu
def test_grid_runs_on_the_gpu():
    r = reproduce_grid("test", device="cuda", progress=False)
    assert r.device.startswith("cuda")
    assert all(math.isfinite(v) for row in r.psnr.values() for v in row.values())


# ---------------------------------------------------------------- issue 13: new footing
def test_gd_cells_are_the_linearised_dynamics_with_real_gd_beside_them(grid):
    from ntkutils.linearised import linearised_gd
    from ntkutils.networks import build_vanilla_cnn
    from ntkutils.reproduce.run import _Centred, _default_dtype

    s = grid.settings
    for name in INPUTS:
        for method in ("GD + autoencoder", "GD + vanilla CNN"):
            cell = grid.cells[name][method]
            # the main curve reaches far beyond the real run, which is kept beside it
            assert int(cell.steps[-1]) == s.ntk_max_step
            assert int(cell.steps_real[-1]) == s.gd_steps
            assert cell.psnr_real == pytest.approx(float(cell.psnr_curve_real.max()))
            assert 0 <= cell.gap < 1
    # the vanilla cell of the image row, rebuilt here from the public pieces
    g = torch.Generator().manual_seed(s.seed + 100 + 1)  # the grid's generator of the cell
    with _default_dtype(torch.float64):
        net = build_vanilla_cnn(3, s.vanilla_channels, s.vanilla_depth, s.patch_size,
                                generator=g)
    y, x = grid.y.double(), grid.x.double()
    cell = grid.cells["noisy image"]["GD + vanilla CNN"]
    lin = linearised_gd(_Centred(net, y), y, y, steps=cell.steps, lr=cell.lr,
                        n_landmarks=s.n_landmarks, x=x, sigma=s.sigma, generator=g)
    assert float(lin.psnr.max()) == pytest.approx(cell.psnr, abs=1e-6)


def test_adam_cells_keep_the_running_average_of_their_outputs(grid):
    s = grid.settings
    assert s.adam_average == 0.99
    for name in INPUTS:
        for method in ("Adam + autoencoder", "Adam + vanilla CNN"):
            cell = grid.cells[name][method]
            assert cell.gap is None and cell.psnr_real is None
            assert cell.psnr_average == pytest.approx(float(cell.psnr_curve_average.max()))
            assert cell.step_average in cell.steps.tolist()
            # the average lags the output: different curves, the same start
            assert not torch.allclose(cell.psnr_curve, cell.psnr_curve_average)
            assert float(cell.psnr_curve[0]) == pytest.approx(
                float(cell.psnr_curve_average[0]), abs=1.0)


def test_readings_on_the_posters_table_and_on_made_up_tables():
    from ntkutils.reproduce import poster_readings

    readings = poster_readings(POSTER_PSNR)
    assert [r.code for r in readings] == ["R1", "R2", "R3", "R4", "R5", "R6"]
    assert [r.holds for r in readings] == [True] * 5 + [False]  # R6: no noisy PSNR
    m = {r.code: r.margin for r in readings}
    assert m["R1"] == pytest.approx(1.0 - 0.9)
    assert m["R2"] == pytest.approx(min(8.3, 6.4, 13.6) - 3.0)
    assert m["R3"] == pytest.approx(min(1.5 - 0.1, 31.0 - 21.6, 0.5))
    assert m["R4"] == pytest.approx(28.0 - 24.7)
    assert m["R5"] == pytest.approx(28.3 - 21.6 - 3.0)
    assert poster_readings(POSTER_PSNR, noisy_psnr=20.0)[5].margin == pytest.approx(1.7)
    worse = {i: dict(row) for i, row in POSTER_PSNR.items()}
    worse["noisy image"]["GD + vanilla CNN"] = 26.0  # kernel 2.9 dB above GD
    worse["iid noise"]["Adam + autoencoder"] = 20.0  # not the best of its row
    got = {r.code: r.holds for r in poster_readings(worse)}
    assert not got["R1"] and not got["R3"] and got["R4"]
    with pytest.raises(TypeError, match="GridResult or a table"):
        poster_readings({"noisy image": {}})


def test_several_seeds_give_mean_and_range_and_readings_per_seed(grid):
    from ntkutils.reproduce import format_readings

    other = reproduce_grid("test", seed=1, progress=False)
    text = format_table([grid, other])
    row = next(line for line in text.splitlines() if line.startswith("| noisy image |"))
    cells = re.findall(r"(-?[0-9.]+) \((-?[0-9.]+) to (-?[0-9.]+)\) \[([0-9.]+)\]", row)
    assert len(cells) == len(METHODS)
    for (mean, lo, hi, _), method in zip(cells, METHODS):
        values = [grid.psnr["noisy image"][method], other.psnr["noisy image"][method]]
        assert float(mean) == pytest.approx(sum(values) / 2, abs=0.051)
        assert float(lo) == pytest.approx(min(values), abs=0.051)
        assert float(hi) == pytest.approx(max(values), abs=0.051)
    assert "seeds 0, 1" in text
    readings = format_readings([grid, other])
    assert readings.splitlines()[0] == "| reading | poster | seed 0 | seed 1 |"
    assert len(readings.splitlines()) == 2 + 6
    with pytest.raises(ValueError, match="every setting but the seed"):
        format_table([grid, reproduce_grid("test", image="coffee", progress=False)])
    with pytest.raises(TypeError, match="non-empty list"):
        format_table([])


def test_stored_runs_read_back_with_their_provenance(grid, tmp_path):
    from ntkutils.reproduce import load_runs, save_runs

    path = save_runs([grid], tmp_path / "g.json", seconds=12.5, command="test")
    back = load_runs(path)
    assert back.settings == grid.settings and back.seeds == [0]
    assert back.provenance["check"]["gd_lanczos"] is None  # Nyström, as the runs
    for name in INPUTS:
        for method in METHODS:
            assert back.psnr[name][method] == [grid.psnr[name][method]]
            assert back.thumbnails[name][method].shape == (3, 32, 32)
    assert back.provenance["seconds"] == 12.5 and back.provenance["command"] == "test"
    assert set(back.provenance) >= {"commit", "date", "cpu", "torch", "device"}
    (tmp_path / "bad.json").write_text("{}")
    with pytest.raises(ValueError, match="not a grid data file"):
        load_runs(tmp_path / "bad.json")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_runs(tmp_path / "none.json")


def test_command_with_jobs_gives_the_serial_runs_numbers(tmp_path, grid, grid_seed1):
    """``--jobs 2`` runs the seeds in two processes; the numbers are the serial run's."""
    from ntkutils.reproduce import load_runs

    assert main(["reproduce", "--scale", "test", "--seeds", "2", "--jobs", "2",
                 "--out", str(tmp_path / "par")]) == 0
    par = load_runs(tmp_path / "par" / "grid.json")
    assert par.seeds == [0, 1] and "--jobs 2" in par.provenance["command"]
    for seed, serial in enumerate((grid, grid_seed1)):
        for name in INPUTS:
            for method in METHODS:
                # float64: only the thread count differs (sums in another order)
                assert par.psnr[name][method][seed] == pytest.approx(
                    serial.psnr[name][method], abs=1e-9)


def test_lanczos_gd_cells_are_the_exact_kernels_cells():
    """With ``gd_lanczos`` a gradient-descent cell follows the network's exact kernel
    (every pixel a landmark), where a few Nyström landmarks leave part of y unfitted."""
    from ntkutils.reproduce import grid_cell

    base = dataclasses.replace(grid_settings("test"), size=12, n_landmarks=16)
    exact = dataclasses.replace(base, n_landmarks=144)
    krylov = dataclasses.replace(base, gd_lanczos=200)
    for row in INPUTS:
        for method in ("GD + autoencoder", "GD + vanilla CNN"):
            e, k, n = (grid_cell(s, row, method) for s in (exact, krylov, base))
            # the same network; the step from a power iteration (tolerance 1e-5)
            assert k.lr == pytest.approx(e.lr, rel=1e-4)
            np.testing.assert_allclose(k.psnr_curve, e.psnr_curve, atol=1e-3)
            assert abs(float(n.psnr_curve[-1]) - float(e.psnr_curve[-1])) > 0.1
            assert k.psnr_curve_real is not None  # real GD still runs beside it


def test_command_passes_gd_lanczos_to_every_seed(tmp_path, check_now):
    from ntkutils.reproduce import load_runs
    from ntkutils.reproduce.store import CHECK_LANCZOS

    assert main(["reproduce", "--scale", "test", "--gd-lanczos", "50", "--seeds", "2",
                 "--out", str(tmp_path)]) == 0
    run = load_runs(tmp_path / "grid.json")
    assert run.settings.gd_lanczos == 50
    assert "--gd-lanczos 50" in run.provenance["command"]
    assert "50 Lanczos steps" in (tmp_path / "grid.md").read_text(encoding="utf-8")
    # its check grid follows gradient descent by Lanczos too, as the runs do
    check = run.provenance["check"]
    assert check["gd_lanczos"] == CHECK_LANCZOS
    for row in INPUTS:
        for method in METHODS:
            assert check["psnr"][row][method] == pytest.approx(
                check_now(CHECK_LANCZOS)[row][method], abs=1e-9)


def test_command_runs_adam_from_noise_for_the_steps_asked(tmp_path, grid):
    from ntkutils.reproduce import load_runs

    assert main(["reproduce", "--scale", "test", "--adam-steps-noise", "30",
                 "--out", str(tmp_path)]) == 0
    run = load_runs(tmp_path / "grid.json")
    assert run.settings.adam_steps_for("iid noise") == 30
    assert "--adam-steps-noise 30" in run.provenance["command"]
    assert run.cells["iid noise"]["Adam + vanilla CNN"]["steps"][0][-1] == 30
    for method in METHODS:  # the noisy-image row is the default run's
        assert run.psnr["noisy image"][method][0] == pytest.approx(
            grid.psnr["noisy image"][method], abs=1e-3)  # the file keeps 1e-4 dB


def test_stored_run_formats_as_the_runs_it_came_from(tmp_path, grid, grid_seed1):
    from ntkutils.reproduce import format_readings, load_runs, save_runs

    runs = [grid, grid_seed1]
    back = load_runs(save_runs(runs, tmp_path / "g.json", seconds=1.0))
    for rule in ("oracle", "discrepancy"):
        assert format_table(back, rule=rule) == format_table(runs, rule=rule)
        assert format_readings(back, rule=rule) == format_readings(runs, rule=rule)
    import matplotlib.pyplot as plt
    from ntkutils.reproduce import plot_curves

    drawn = []
    for source in (runs, back):  # the same curves from the runs and from the file
        fig = plot_curves(source)
        drawn.append([[np.asarray(line.get_ydata(), dtype=float) for line in ax.get_lines()]
                      for ax in fig.axes])
        plt.close(fig)
    assert len(drawn[0]) == 2
    for ax_runs, ax_file in zip(*drawn):
        assert len(ax_runs) == len(ax_file) >= 6  # 4 trained cells, kernel, noisy
        for a, b in zip(ax_runs, ax_file):
            np.testing.assert_allclose(a, b, atol=1e-3)  # the file keeps 1e-4 dB


@pytest.mark.parametrize("name", ["medium", "cpu-coffee", "cpu-exact", "cpu-long"])
def test_stored_run_matches_the_current_settings_and_code(name, check_now):
    """A shipped grid file: its settings are today's ``grid_settings`` of its scale and
    image (but for the landmarks, Adam's steps from iid noise and the gradient-descent
    cells' method, which a file may choose), three seeds, float64 on a CPU, made from a
    committed checkout; and the test-scale grid stored beside it, with the same method
    for the gradient-descent cells, recomputed now by today's code, agrees (else the
    file is stale: rerun the command in its provenance)."""
    from ntkutils.reproduce import stored_grid, stored_grids

    assert name in stored_grids()
    g = stored_grid(name)
    s = g.settings
    today = grid_settings(s.scale, image=s.image, seed=g.seeds[0])
    exact = s.n_landmarks == s.size**2  # every pixel a landmark: the exact kernels
    # Adam from iid noise run longer than the scale's default
    long = s.adam_steps_for("iid noise") != today.adam_steps_for("iid noise")
    assert s == dataclasses.replace(today, n_landmarks=s.n_landmarks,
                                    adam_steps_noise=s.adam_steps_noise,
                                    gd_lanczos=s.gd_lanczos)
    assert s.gd_lanczos is None or f"--gd-lanczos {s.gd_lanczos}" in g.provenance["command"]
    assert exact or s.n_landmarks == today.n_landmarks
    assert not long or s.adam_steps_for("iid noise") > today.adam_steps_for("iid noise")
    assert name == s.scale + ("" if s.image == "astronaut" else f"-{s.image}") + (
        "-exact" if exact else "") + ("-long" if long else "")
    assert g.seeds == [g.seeds[0] + k for k in range(3)]
    prov = g.provenance
    assert prov["dtype"] == "torch.float64" and prov["device"] == "cpu"
    # the commit the run started from ("+dirty": uncommitted edits to the package)
    assert re.fullmatch(r"[0-9a-f]{40}(\+dirty)?", prov["commit"]), prov["commit"]
    assert f"--scale {s.scale}" in prov["command"] and prov["seconds"] > 0
    for row in INPUTS:
        for method in METHODS:
            values = g.psnr[row][method]
            assert len(values) == 3 and all(math.isfinite(v) for v in values)
            curve = g.cells[row][method]["psnr_curve"][0]
            assert max(curve) == pytest.approx(values[0], abs=1e-3)  # rounded to 1e-4
    check = prov["check"]
    assert check["scale"] == "test" and check["seed"] == 0
    lanczos = check.get("gd_lanczos")  # absent in files from before Lanczos: Nyström
    assert (lanczos is None) == (s.gd_lanczos is None)
    now = check_now(lanczos)
    for row in INPUTS:
        for method in METHODS:
            # seeded float64 runs agree to about 1e-10 dB across CPUs
            assert now[row][method] == pytest.approx(check["psnr"][row][method], abs=1e-6)


@pytest.mark.parametrize("row, method", [("iid noise", "GD + autoencoder"),
                                         ("noisy image", "Adam + vanilla CNN")])
def test_one_cell_is_the_grids_cell(grid, row, method):
    from ntkutils.reproduce import grid_cell

    cell = grid_cell(grid.settings, row, method)
    assert cell.psnr == pytest.approx(grid.psnr[row][method], abs=1e-9)
    assert torch.equal(cell.steps, grid.cells[row][method].steps)


def test_adam_from_iid_noise_runs_its_own_number_of_steps(grid):
    from ntkutils.reproduce import grid_cell

    s = dataclasses.replace(grid.settings, adam_steps_noise=30)
    assert (s.adam_steps_for("noisy image"), s.adam_steps_for("iid noise")) == (20, 30)
    assert grid.settings.adam_steps_for("iid noise") == grid.settings.adam_steps
    cell = grid_cell(s, "iid noise", "Adam + vanilla CNN")
    assert int(cell.steps[-1]) == 30 and max(cell.snapshots) == 30
    # the same run, only longer: its first 20 steps are the 20-step run's
    short = grid.cells["iid noise"]["Adam + vanilla CNN"]
    n = len(short.steps)
    assert torch.equal(cell.steps[:n], short.steps)
    assert torch.allclose(cell.psnr_curve[:n], short.psnr_curve, atol=1e-9)
    # the noisy-image row keeps adam_steps
    assert int(grid_cell(s, "noisy image", "Adam + vanilla CNN").steps[-1]) == 20
    assert "Adam: 20 steps (30 from iid noise)" in format_settings(
        dataclasses.replace(grid, settings=s))
    assert "Adam: 20 steps," in format_settings(grid)


def test_commit_is_dirty_only_for_edits_to_the_package(tmp_path):
    """``+dirty`` marks uncommitted edits to the package's own files, not to the book."""
    import shutil

    from ntkutils.reproduce import store

    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    pkg = tmp_path / "src" / "ntkutils"
    (pkg / "reproduce").mkdir(parents=True)
    (pkg / "core.py").write_text("x = 1\n")
    (tmp_path / "book.md").write_text("text\n")

    def git(*args):
        subprocess.run(["git", *args], cwd=tmp_path, check=True, capture_output=True)

    git("init", "-q")
    git("add", ".")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "start")
    fake = pkg / "reproduce" / "store.py"  # where store.py would be in the checkout
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(store, "__file__", str(fake))
        clean = store._git_commit()
        assert re.fullmatch(r"[0-9a-f]{40}", clean)
        (tmp_path / "book.md").write_text("edited\n")
        assert store._git_commit() == clean  # the book is not the package
        (pkg / "core.py").write_text("x = 2\n")
        assert store._git_commit() == clean + "+dirty"


def _edited_copy(path, out, edit):
    import json

    data = json.loads(path.read_text(encoding="utf-8"))
    edit(data)
    out.write_text(json.dumps(data), encoding="utf-8")
    return out


def test_merged_parts_are_the_file_of_all_seeds(grid, grid_seed1, tmp_path):
    """Seeds run apart and merged give the file one run of both seeds writes."""
    import json

    from ntkutils.reproduce import load_runs, merge_runs, save_runs

    a = save_runs([grid], tmp_path / "a.json", seconds=2.0, command="part 0")
    b = save_runs([grid_seed1], tmp_path / "b.json", seconds=3.0, command="part 1")
    both = save_runs([grid, grid_seed1], tmp_path / "both.json", seconds=5.0)
    merged = merge_runs([b, a], tmp_path / "merged.json")  # in any order
    m, w = (json.loads(p.read_text(encoding="utf-8")) for p in (merged, both))
    for key in ("settings", "seeds", "noisy_psnr", "cells", "thumbnails"):
        assert m[key] == w[key], key
    back = load_runs(merged)
    assert back.seeds == [0, 1] and back.provenance["seconds"] == 5.0
    assert back.provenance["command"] == "part 0 ; part 1"
    assert [p["command"] for p in back.provenance["parts"]] == ["part 0", "part 1"]
    assert back.provenance["check"] == load_runs(a).provenance["check"]
    assert format_table(back) == format_table([grid, grid_seed1])


def test_merge_refuses_parts_that_do_not_belong_together(grid, grid_seed1, tmp_path):
    from ntkutils.reproduce import merge_runs, save_runs

    a = save_runs([grid], tmp_path / "a.json", seconds=2.0, command="part 0")
    b = save_runs([grid_seed1], tmp_path / "b.json", seconds=3.0, command="part 1")
    out = tmp_path / "m.json"
    with pytest.raises(ValueError, match="different seeds"):
        merge_runs([a, a], out)
    with pytest.raises(ValueError, match="two or more"):
        merge_runs([a], out)

    def sigma(data):
        data["settings"]["sigma"] = 15 / 255

    with pytest.raises(ValueError, match="every setting but the seed"):
        merge_runs([a, _edited_copy(b, tmp_path / "s.json", sigma)], out)

    def stale(data):
        data["provenance"]["check"]["psnr"]["iid noise"]["GD + autoencoder"] += 1e-3

    with pytest.raises(ValueError, match="computes the same"):
        merge_runs([a, _edited_copy(b, tmp_path / "c.json", stale)], out)

    def lanczos(data):
        data["provenance"]["check"]["gd_lanczos"] = 64

    with pytest.raises(ValueError, match="computes the same"):
        merge_runs([a, _edited_copy(b, tmp_path / "l.json", lanczos)], out)

    def device(data):
        data["provenance"]["dtype"] = "torch.float32"

    with pytest.raises(ValueError, match="share the dtype"):
        merge_runs([a, _edited_copy(b, tmp_path / "d.json", device)], out)
    assert not out.exists()


def test_merge_command(tmp_path, grid, grid_seed1, capsys):
    from ntkutils.reproduce import load_runs, save_runs

    a = save_runs([grid], tmp_path / "a.json", seconds=2.0, command="part 0")
    b = save_runs([grid_seed1], tmp_path / "b.json", seconds=3.0, command="part 1")
    out = tmp_path / "grid.json"
    assert main(["merge", str(a), str(b), "--out", str(out)]) == 0
    assert load_runs(out).seeds == [0, 1]
    assert "seeds [0, 1]" in capsys.readouterr().out
    for argv, message in [
            ([str(a)], "two or more"),
            ([str(a), str(b), "--out", str(tmp_path / "g.txt")], "--out must be a .json"),
            ([str(a), str(b), "--out", str(a)], "--out must not be one of the parts"),
            ([str(a), str(a)], "the parts must hold different seeds"),
            ([str(a), str(tmp_path / "none.json")], "does not exist")]:
        if "--out" not in argv:
            argv = argv + ["--out", str(tmp_path / "x.json")]
        assert main(["merge", *argv]) == 2
        assert message in capsys.readouterr().err, argv
