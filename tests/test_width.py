"""Tests of ntkutils.reproduce.width (reading R1 against the vanilla CNN's width) and of
``python -m ntkutils reproduce --widths``.

The study is checked against the grid's own cells (:func:`grid_cell`, computed separately)
and the stored study against the stored grid of the same settings, so a change in either
code path shows.
"""
from __future__ import annotations

import dataclasses
import json
import re

import pytest

from ntkutils.cli import main
from ntkutils.images import psnr
from ntkutils.reproduce import (
    WidthStudy,
    grid_cell,
    grid_settings,
    load_width_study,
    save_width_study,
    stored_grid,
    stored_width_study,
    width_study,
)
from ntkutils.reproduce.run import _draw

IMG, GD, NTK = "noisy image", "GD + vanilla CNN", "NTK + Nyström"


def flat(rows):
    """``[width][seed]`` as one list, for pytest.approx."""
    return [v for row in rows for v in row]


@pytest.fixture(scope="module")
def study():
    return width_study("test", widths=[8, 4], seeds=[0, 1])


def test_each_width_is_the_grids_cell_with_that_width(study):
    s0 = grid_settings("test", seed=0)
    assert study.widths == [4, 8] and study.seeds == [0, 1] and study.settings == s0
    for i, w in enumerate(study.widths):
        for j, seed in enumerate(study.seeds):
            s = dataclasses.replace(grid_settings("test", seed=seed), vanilla_channels=w)
            cell = grid_cell(s, IMG, GD)
            assert study.gd_psnr[i][j] == pytest.approx(cell.psnr, abs=1e-9)
            assert study.gd_step[i][j] == cell.step
    for j, seed in enumerate(study.seeds):
        s = grid_settings("test", seed=seed)
        assert study.ntk_psnr[j] == pytest.approx(grid_cell(s, IMG, NTK).psnr, abs=1e-9)
        x, y, _ = _draw(s)
        assert study.noisy_psnr[j] == pytest.approx(psnr(y, x), abs=1e-9)
        for i in range(2):
            assert study.gap[i][j] == pytest.approx(study.ntk_psnr[j] - study.gd_psnr[i][j])


def test_jobs_give_the_serial_numbers(study):
    par = width_study("test", widths=[4, 8], seeds=[0, 1], jobs=2)
    assert flat(par.gd_psnr) == pytest.approx(flat(study.gd_psnr), abs=1e-9)
    assert par.gd_step == study.gd_step


def test_save_and_load_round_trip(study, tmp_path):
    path = save_width_study(study, tmp_path / "w.json", seconds=3.0, command="made here")
    back = load_width_study(path)
    assert isinstance(back, WidthStudy)
    assert (back.widths, back.seeds, back.gd_psnr, back.gd_step, back.ntk_psnr,
            back.settings) == (study.widths, study.seeds, study.gd_psnr, study.gd_step,
                               study.ntk_psnr, study.settings)
    assert back.provenance["command"] == "made here" and back.provenance["seconds"] == 3.0
    (tmp_path / "bad.json").write_text(json.dumps({"format": "other"}))
    with pytest.raises(ValueError, match="not a width-study data file of format"):
        load_width_study(tmp_path / "bad.json")
    (tmp_path / "junk.json").write_text("{")
    with pytest.raises(ValueError, match="not JSON"):
        load_width_study(tmp_path / "junk.json")


@pytest.mark.parametrize("kwargs, error, match", [
    ({"widths": []}, ValueError, "widths must be a non-empty list of positive ints"),
    ({"widths": [0, 4]}, ValueError, "widths must be a non-empty list"),
    ({"widths": "4"}, ValueError, "widths must be a non-empty list"),
    ({"widths": [4, 4]}, ValueError, "widths must not repeat"),
    ({"seeds": []}, ValueError, "seeds must be a non-empty list of ints >= 0"),
    ({"seeds": [-1]}, ValueError, "seeds must be"),
    ({"jobs": 0}, ValueError, "jobs must be an int >= 1"),
    ({"scale": "huge"}, ValueError, "scale"),
])
def test_bad_arguments_are_named(kwargs, error, match):
    with pytest.raises(error, match=match):
        width_study(**{"scale": "test", "widths": [4], "seeds": [0], **kwargs})


def test_bad_save_arguments_are_named(study, tmp_path):
    with pytest.raises(TypeError, match="study must be a WidthStudy"):
        save_width_study({}, tmp_path / "w.json", seconds=1.0)
    with pytest.raises(ValueError, match="seconds"):
        save_width_study(study, tmp_path / "w.json", seconds=0.0)
    with pytest.raises(ValueError, match="stored width studies"):
        stored_width_study("nothing")


def test_stored_study_is_todays_code_and_the_stored_grids_cells():
    """The shipped study: today's cpu settings, three seeds, a committed checkout; its
    test-scale check recomputes now; and its cpu width is the stored cpu grid's cell."""
    st = stored_width_study("cpu")
    assert st.settings == grid_settings("cpu", seed=0)
    assert st.seeds == [0, 1, 2] and len(st.widths) >= 4 and st.widths == sorted(st.widths)
    prov = st.provenance
    assert re.fullmatch(r"[0-9a-f]{40}", prov["commit"]), prov["commit"]
    assert "--widths" in prov["command"] and prov["dtype"] == "torch.float64"
    check = prov["check"]
    now = width_study(check["scale"], widths=check["widths"], seeds=check["seeds"])
    assert flat(now.gd_psnr) == pytest.approx(flat(check["gd_psnr"]), abs=1e-6)
    assert now.ntk_psnr == pytest.approx(check["ntk_psnr"], abs=1e-6)
    # the grid's own width: the stored grid (same settings but Adam's, which R1 ignores)
    grid = stored_grid("cpu-long")
    i = st.widths.index(grid.settings.vanilla_channels)
    assert st.gd_psnr[i] == pytest.approx(grid.psnr[IMG][GD], abs=1e-6)
    assert st.ntk_psnr == pytest.approx(grid.psnr[IMG][NTK], abs=1e-6)
    assert st.noisy_psnr == pytest.approx(grid.noisy_psnr, abs=1e-6)


def test_command_writes_the_study(tmp_path, capsys, study):
    out = tmp_path / "w"
    assert main(["reproduce", "--scale", "test", "--seeds", "2", "--widths", "8,4",
                 "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    back = load_width_study(out / "widths.json")
    assert flat(back.gd_psnr) == pytest.approx(flat(study.gd_psnr), abs=1e-9)
    assert "--widths 4,8" in back.provenance["command"]
    md = (out / "widths.md").read_text(encoding="utf-8")
    assert "| 4 |" in md and "| 8 |" in md and "oracle" in md and "wrote" in printed


@pytest.mark.parametrize("extra, message", [
    (["--widths", "4,x"], "--widths must be distinct positive ints"),
    (["--widths", "0,4"], "--widths must be distinct positive ints"),
    (["--widths", "4,4"], "--widths must be distinct positive ints"),
    (["--widths", "4", "--landmarks", "8"], "drop --landmarks"),
    (["--widths", "4", "--device", "cuda"], "--widths runs in float64 on the CPU"),
])
def test_command_bad_widths_give_one_line(tmp_path, capsys, extra, message):
    assert main(["reproduce", "--scale", "test", "--out", str(tmp_path), *extra]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and "Traceback" not in err
