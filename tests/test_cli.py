"""Tests of the command line (python -m ntkutils denoise)."""
import re
import subprocess
import sys

import pytest
import torch

from ntkutils.cli import main, read_png, write_png
from ntkutils.images import add_noise, load_image, psnr


@pytest.fixture
def noisy_files(tmp_path):
    x = load_image("camera", size=32, crop=64)
    y = add_noise(x, 25 / 255, generator=torch.Generator().manual_seed(0), clip=True)
    write_png(x, tmp_path / "clean.png")
    write_png(y, tmp_path / "noisy.png")
    return tmp_path


def test_png_round_trip_is_8_bit_exact(tmp_path):
    x = load_image("coffee", size=16, gray=False)
    write_png(x, tmp_path / "c.png")
    back = read_png(tmp_path / "c.png")
    assert back.shape == x.shape
    assert float((back - x).abs().max()) <= 0.5 / 255 + 1e-6


def test_denoise_command_improves_psnr_and_reports(noisy_files, capsys):
    d = noisy_files
    code = main(["denoise", str(d / "noisy.png"), str(d / "out.png"), "--sigma", "25",
                 "--clean", str(d / "clean.png")])
    out = capsys.readouterr().out
    assert code == 0
    assert "sigma = 25.0/255 (given)" in out and "chosen by sure" in out
    clean, noisy, den = (read_png(d / f) for f in ("clean.png", "noisy.png", "out.png"))
    assert psnr(den, clean) > psnr(noisy, clean) + 3.0
    reported = float(re.search(r"denoised ([0-9.]+) dB", out).group(1))
    assert reported == pytest.approx(psnr(den, clean), abs=0.1)  # PNG rounds to 8 bits


def test_both_recipes_report_what_they_did(noisy_files, capsys):
    d = noisy_files
    assert main(["denoise", str(d / "noisy.png"), str(d / "w.png"), "--sigma", "25",
                 "--window", "8", "--stride", "4", "--no-pilot"]) == 0
    out = capsys.readouterr().out
    assert "windows of 8x8" in out and "pilot" not in out and "centred 5x5" in out
    assert main(["denoise", str(d / "noisy.png"), str(d / "p.png"), "--sigma", "25",
                 "--recipe", "poster", "--rule", "discrepancy"]) == 0
    out = capsys.readouterr().out
    assert "kernel: exact, patch 3x3; step t =" in out and "chosen by discrepancy" in out


def test_colour_and_estimated_sigma(tmp_path, capsys):
    x = load_image("coffee", size=24, gray=False)
    write_png(add_noise(x, 0.1, generator=torch.Generator().manual_seed(1), clip=True),
              tmp_path / "n.png")
    assert main(["denoise", str(tmp_path / "n.png"), str(tmp_path / "o.png")]) == 0
    out = capsys.readouterr().out
    assert "colour" in out and "(estimated)" in out
    assert read_png(tmp_path / "o.png").shape == (3, 24, 24)


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--sigma", "-5"], "--sigma must be a noise level > 0"),
        (["--patch-size", "4"], "--patch-size must be an odd int"),
        (["--method", "exact"], "--method only apply to --recipe poster"),
        (["--rule", "discrepancy"], "--rule discrepancy only apply to --recipe poster"),
        (["--recipe", "poster", "--window", "8"], "--window only apply to --recipe windowed"),
        (["--stride", "0"], "--stride must be"),
        (["--recipe", "nlm"], "--recipe"),
    ],
)
def test_bad_arguments_give_one_line(noisy_files, capsys, extra, message):
    d = noisy_files
    code = main(["denoise", str(d / "noisy.png"), str(d / "o.png"), *extra])
    err = capsys.readouterr().err
    assert code == 2 and message in err and "Traceback" not in err
    assert err.count("\n") == 1


def test_bad_paths_give_one_line(noisy_files, capsys):
    d = noisy_files
    assert main(["denoise", str(d / "missing.png"), str(d / "o.png")]) == 2
    assert "input file not found" in capsys.readouterr().err
    assert main(["denoise", str(d / "noisy.png"), str(d / "nodir" / "o.png")]) == 2
    assert "output folder does not exist" in capsys.readouterr().err
    (d / "text.png").write_text("not an image")
    assert main(["denoise", str(d / "text.png"), str(d / "o.png")]) == 2
    assert "cannot read" in capsys.readouterr().err


def test_module_entry_point_runs(noisy_files):
    d = noisy_files
    proc = subprocess.run(
        [sys.executable, "-m", "ntkutils", "denoise", str(d / "noisy.png"),
         str(d / "o2.png"), "--sigma", "25"],
        capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    assert "wrote" in proc.stdout and (d / "o2.png").is_file()
    bad = subprocess.run([sys.executable, "-m", "ntkutils", "denoise", "nope.png", "o.png"],
                         capture_output=True, text=True, timeout=300)
    assert bad.returncode == 2 and bad.stderr.strip().count("\n") == 0
