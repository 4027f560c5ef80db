"""The command line: ``python -m ntkutils denoise IN.png OUT.png --sigma 25`` and
``python -m ntkutils reproduce [--scale cpu|paper] [--out DIR]``.

Bad paths and arguments end with one line on standard error and exit status 2, never a
traceback.
"""
from __future__ import annotations

import argparse
import dataclasses
import math
import multiprocessing
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import imageio.v3 as iio
import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import torch
from skimage.io import imsave
from skimage.util import img_as_float, img_as_ubyte

from ._checks import NTKUtilsError, check_device
from .denoise import WindowedDenoiseInfo, ntk_denoise
from .images import estimate_sigma, list_images, psnr, to_chw, to_hwc
from .reproduce import (format_readings, format_settings, format_table, grid_settings,
                        load_runs, merge_runs, plot_grid, reproduce_grid, save_runs,
                        save_width_study, width_study)
from .reproduce.store import _git_commit

__all__ = ["main", "read_png", "write_png"]

_IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp")


class CommandError(NTKUtilsError):
    """A user error reported as one line."""


class _Parser(argparse.ArgumentParser):
    """An argument parser whose errors become one line and status 2 in :func:`main`."""

    def error(self, message: str):  # type: ignore[override]
        raise CommandError(f"{message} (see {self.prog} --help)")


def _check_output(path: str | Path) -> Path:
    """An output image path that can be written, checked before any work starts."""
    path = Path(path)
    if path.is_dir():
        raise CommandError(f"output {path} is a folder: give a file name such as "
                           f"{path / 'denoised.png'}")
    if not path.parent.is_dir():
        raise CommandError(f"output folder does not exist: {path.parent}")
    if path.suffix.lower() not in _IMAGE_SUFFIXES:
        raise CommandError(f"output must end in one of {', '.join(_IMAGE_SUFFIXES)} (.png "
                           f"keeps every bit), got {path.name!r}")
    existed = path.exists()
    try:
        with open(path, "ab"):
            pass
    except OSError as err:
        raise CommandError(f"cannot write the output file {path}: "
                           f"{err.strerror or err}") from None
    if not existed:
        path.unlink()
    return path


def _check_cli_number(value, option: str, *, minimum: int, odd: bool = False) -> None:
    if value < minimum or (odd and value % 2 == 0):
        want = f"an odd int >= {minimum}" if odd else f"an int >= {minimum}"
        raise CommandError(f"{option} must be {want}, got {value}")


def read_png(path: str | Path) -> torch.Tensor:
    """Read an image file as a ``(C, H, W)`` float tensor in [0, 1] (alpha dropped).

    Parameters
    ----------
    path : str or Path
        A PNG (or any format scikit-image reads), gray or colour, 8 or 16 bit.

    Returns
    -------
    torch.Tensor
        ``(1, H, W)`` or ``(3, H, W)`` float32.

    Examples
    --------
    >>> import tempfile, os
    >>> f = os.path.join(tempfile.mkdtemp(), "a.png")
    >>> write_png(torch.full((1, 4, 4), 0.5), f)
    >>> tuple(read_png(f).shape)
    (1, 4, 4)
    """
    path = Path(path)
    if not path.is_file():
        raise CommandError(f"input file not found: {path}")
    # Decode from bytes with one named plugin: imageio, given a path it cannot decode, tries
    # every plugin, leaves the file open and warns about deprecated ones.
    try:
        img = img_as_float(iio.imread(path.read_bytes(), plugin="pillow"))
    except Exception as err:  # any decoder error becomes one line
        raise CommandError(
            f"cannot read {path} as an image: expected a PNG, JPEG, TIFF or another format "
            f"Pillow decodes ({type(err).__name__})"
        ) from err
    if img.ndim == 3 and img.shape[2] == 4:
        img = img[..., :3]
    if not (img.ndim == 2 or img.ndim == 3 and img.shape[2] == 3):
        raise CommandError(f"{path}: expected a gray or RGB image, got shape {img.shape}")
    return torch.from_numpy(np.ascontiguousarray(to_chw(img), dtype=np.float32))


def write_png(x: torch.Tensor, path: str | Path) -> None:
    """Write a ``(C, H, W)`` image in [0, 1] as an 8-bit PNG (values clipped).

    Parameters
    ----------
    x : torch.Tensor
        ``(1, H, W)`` or ``(3, H, W)``.
    path : str or Path
        Output file; its folder must exist.

    Examples
    --------
    >>> import tempfile, os
    >>> write_png(torch.zeros(3, 2, 2), os.path.join(tempfile.mkdtemp(), "b.png"))
    """
    path = Path(path)
    if not path.parent.is_dir():
        raise CommandError(f"output folder does not exist: {path.parent}")
    arr = x.detach().cpu().double().clamp(0, 1).numpy()
    arr = to_hwc(arr, squeeze=True)  # (H, W[, 3])
    imsave(path, img_as_ubyte(arr), check_contrast=False)


def _denoise(args: argparse.Namespace) -> None:
    _check_sigma_option(args.sigma)
    _check_recipe_options(args)
    _check_output(args.output)
    y, clean = _read_inputs(args)
    sigma = None if args.sigma is None else args.sigma / 255.0
    if args.recipe == "windowed":
        options = dict(window=args.window, stride=args.stride,
                       pilot=False if args.no_pilot else None)
    else:
        options = dict(method=args.method, n_landmarks=args.landmarks)
    start = time.perf_counter()
    x_hat, info = ntk_denoise(
        y, sigma, recipe=args.recipe, patch_size=args.patch_size, rule=args.rule,
        return_info=True, generator=torch.Generator().manual_seed(args.seed), **options,
    )
    seconds = time.perf_counter() - start
    write_png(x_hat, args.output)
    c, h, w = y.shape
    print(f"image {h}x{w}, {'gray' if c == 1 else 'colour'}; sigma = "
          f"{info.sigma * 255:.1f}/255 ({'given' if sigma is not None else 'estimated'})")
    print(_describe_kernel(info, seconds))
    if clean is not None:
        print(f"PSNR: noisy {psnr(y, clean):.2f} dB -> denoised {psnr(x_hat, clean):.2f} dB")
    print(f"wrote {args.output}")


def _check_sigma_option(sigma: float | None) -> None:
    """``--sigma`` on the 0-255 scale, when given."""
    if sigma is None:
        return
    if not math.isfinite(sigma) or sigma <= 0:
        raise CommandError(f"--sigma must be a noise level > 0 on the 0-255 scale (25 "
                           f"for 'sigma = 25'), got {sigma}")
    if sigma <= 1:
        raise CommandError(f"--sigma {sigma:g} looks like the [0, 1] scale, but the "
                           f"command line takes sigma on the 0-255 scale: pass --sigma "
                           f"{sigma * 255:g}")
    if sigma > 255:
        raise CommandError(f"--sigma must be on the 0-255 scale (at most 255), got "
                           f"{sigma:g}")


def _read_inputs(args: argparse.Namespace) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The noisy image and the optional clean one, checked against the options."""
    y = read_png(args.input)
    clean = read_png(args.clean) if args.clean else None
    if clean is not None and clean.shape != y.shape:
        raise CommandError(
            f"--clean has shape {tuple(clean.shape)} but the input has {tuple(y.shape)}"
        )
    if args.sigma is None and not estimate_sigma(y) > 0:
        raise CommandError("the noise level cannot be estimated from the input (it has "
                           "no noise: a constant image); pass --sigma")
    n_pixels = y.shape[1] * y.shape[2]
    if args.landmarks is not None and args.landmarks > n_pixels:
        raise CommandError(f"--landmarks must be at most the {n_pixels} pixels of the input, "
                           f"got {args.landmarks}")
    return y, clean


def _describe_kernel(info, seconds: float) -> str:
    """One line on the kernel and the steps a denoising run used."""
    k = info.patch_size
    if isinstance(info, WindowedDenoiseInfo):
        steps = info.steps
        return (f"kernel: centred {k}x{k} patches in {info.steps.numel()} windows of "
                f"{info.window}x{info.window}" + (", pilot pass" if info.pilot else "")
                + f"; steps {int(steps.min())}-{int(steps.max())} (median "
                f"{int(steps.median())}) chosen by {info.rule}; {seconds:.1f} s")
    return (f"kernel: {info.method}" + (f" with {info.n_landmarks} landmarks"
                                       if info.method == "nystrom" else "")
            + f", patch {k}x{k}; step t = {info.step} chosen by {info.rule}; "
            f"{seconds:.1f} s")


def _check_recipe_options(args: argparse.Namespace) -> None:
    """Numbers in range, and no option of the other recipe."""
    if args.patch_size is not None:
        _check_cli_number(args.patch_size, "--patch-size", minimum=1, odd=True)
    for value, flag in ((args.landmarks, "--landmarks"), (args.window, "--window"),
                        (args.stride, "--stride")):
        if value is not None:
            _check_cli_number(value, flag, minimum=1)
    _check_cli_number(args.seed, "--seed", minimum=0)
    if args.recipe == "windowed":
        wrong = [flag for flag, value in (("--method", args.method),
                                          ("--landmarks", args.landmarks))
                 if value is not None]
        if args.rule != "sure":
            wrong.append("--rule discrepancy")
    else:
        wrong = [flag for flag, value in (("--window", args.window), ("--stride", args.stride),
                                          ("--no-pilot", args.no_pilot or None))
                 if value is not None]
    if wrong:
        other = "poster" if args.recipe == "windowed" else "windowed"
        raise CommandError(f"{', '.join(wrong)} only apply to --recipe {other} (this run uses "
                           f"--recipe {args.recipe})")


def _grid_worker(settings, device, threads):
    """One seed of the grid in a worker process of ``--jobs``."""
    torch.set_num_threads(threads)
    return reproduce_grid(settings=settings, device=device, progress=False)


def _reproduce(args: argparse.Namespace) -> None:
    matplotlib.use("Agg")  # a command writes files; it never opens a window
    # "test" is a tiny size for the package's own tests, left out of the help
    if args.scale not in ("cpu", "medium", "paper", "test"):
        raise CommandError(f"--scale must be 'cpu', 'medium' or 'paper', got {args.scale!r}")
    if args.image is not None and args.image not in list_images():
        raise CommandError(f"--image must be one of {list_images()}, got {args.image!r}")
    if args.seed < 0:
        raise CommandError(f"--seed must be >= 0, got {args.seed}")
    if args.seeds < 1:
        raise CommandError(f"--seeds must be >= 1 (how many seeds, from --seed on), got "
                           f"{args.seeds}")
    if args.landmarks is not None and args.landmarks < 1:
        raise CommandError(f"--landmarks must be >= 1, got {args.landmarks}")
    if args.jobs < 1:
        raise CommandError(f"--jobs must be >= 1 (worker processes), got {args.jobs}")
    if args.adam_steps_noise is not None and args.adam_steps_noise < 1:
        raise CommandError(f"--adam-steps-noise must be >= 1, got {args.adam_steps_noise}")
    if args.gd_lanczos is not None and args.gd_lanczos < 1:
        raise CommandError(f"--gd-lanczos must be >= 1, got {args.gd_lanczos}")
    widths = _parse_widths(args.widths)
    if widths is not None and (args.landmarks is not None
                               or args.adam_steps_noise is not None
                               or args.gd_lanczos is not None):
        raise CommandError("--widths runs only reading R1's cells at the scale's settings: "
                           "drop --landmarks, --adam-steps-noise and --gd-lanczos")
    if widths is not None and args.device not in (None, "cpu"):
        raise CommandError(f"--widths runs in float64 on the CPU: drop --device "
                           f"{args.device}")
    if args.device is not None:
        try:
            check_device(args.device)
        except NTKUtilsError as err:
            raise CommandError(f"--device: {err}") from None
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise CommandError(f"--out must be a folder, but {out} is a file")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise CommandError(f"cannot create the output folder {out}: {err.strerror}") from err
    commit = _git_commit()  # the code that runs, even if the checkout moves meanwhile
    if widths is not None:
        _reproduce_widths(args, widths, out, commit)
        return
    start = time.perf_counter()
    settings = [grid_settings(args.scale, image=args.image, seed=args.seed + k)
                for k in range(args.seeds)]
    if args.landmarks is not None:
        size = settings[0].size
        if args.landmarks > size**2:
            raise CommandError(f"--landmarks must be <= the {size**2} pixels of the "
                               f"{args.scale} scale's {size}x{size} image, got "
                               f"{args.landmarks}")
        settings = [dataclasses.replace(s, n_landmarks=args.landmarks) for s in settings]
    if args.adam_steps_noise is not None:
        settings = [dataclasses.replace(s, adam_steps_noise=args.adam_steps_noise)
                    for s in settings]
    if args.gd_lanczos is not None:
        values = (1 if settings[0].gray else 3) * settings[0].size**2
        if args.gd_lanczos > values:
            raise CommandError(f"--gd-lanczos must be <= the {values} values of the "
                               f"{args.scale} scale's image, got {args.gd_lanczos}")
        settings = [dataclasses.replace(s, gd_lanczos=args.gd_lanczos) for s in settings]
    jobs = min(args.jobs, len(settings))
    if jobs == 1:
        runs = [reproduce_grid(settings=s, device=args.device) for s in settings]
    else:
        # one process per seed, each on its share of the cores; the seeds' results do
        # not depend on how they are run (every draw is seeded per cell)
        threads = max(1, (os.cpu_count() or 1) // jobs)
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=jobs, mp_context=context) as pool:
            runs = list(pool.map(_grid_worker, settings, [args.device] * len(settings),
                                 [threads] * len(settings)))
    seconds = time.perf_counter() - start
    table = format_table(runs)
    report = "\n\n".join([
        "# The poster's grid, reproduced (python -m ntkutils reproduce)",
        "## PSNR, oracle stopping", table,
        "## PSNR, discrepancy-principle stopping (no clean image)",
        format_table(runs, rule="discrepancy"),
        "## The poster's readings (oracle stopping)", format_readings(runs),
        "## Settings (the course's own choices)", format_settings(runs[0]),
        f"Computed in {seconds:.0f} s on {runs[0].device}.",
    ])
    command = _reproduce_command(args, ("landmarks", args.landmarks),
                                 ("adam-steps-noise", args.adam_steps_noise),
                                 ("gd-lanczos", args.gd_lanczos))
    try:
        (out / "grid.md").write_text(report + "\n", encoding="utf-8")
        save_runs(runs, out / "grid.json", seconds=seconds, command=command, commit=commit)
        fig = plot_grid(runs[0])
        fig.savefig(out / "grid.png", dpi=120)
        plt.close(fig)
    except OSError as err:
        raise CommandError(f"cannot write to {out}: {err.strerror}") from err
    print(table)
    print(f"{args.scale} scale, {seconds:.0f} s on {runs[0].device}")
    print(f"wrote {out / 'grid.md'}, {out / 'grid.json'} and {out / 'grid.png'}")


def _reproduce_command(args: argparse.Namespace, *options: tuple[str, object]) -> str:
    """The ``reproduce`` command line a data file's provenance keeps: the common options,
    then ``options`` (name, value), each left out when None."""
    pairs = (("scale", args.scale), ("image", args.image), ("seed", args.seed),
             ("seeds", args.seeds), *options, ("jobs", args.jobs if args.jobs > 1 else None))
    return "python -m ntkutils reproduce " + " ".join(
        f"--{k} {v}" for k, v in pairs if v is not None)


def _parse_widths(text: str | None) -> list[int] | None:
    """``--widths 32,64,128``: distinct positive ints, or a one-line error."""
    if text is None:
        return None
    try:
        widths = [int(w) for w in text.split(",")]
    except ValueError:
        widths = []
    if not widths or min(widths) < 1 or len(set(widths)) != len(widths):
        raise CommandError(f"--widths must be distinct positive ints separated by commas "
                           f"(e.g. 32,64,128), got {text!r}")
    return sorted(widths)


def _reproduce_widths(args: argparse.Namespace, widths: list[int], out: Path,
                      commit: str) -> None:
    """``reproduce --widths``: reading R1's cells against the vanilla CNN's width."""
    start = time.perf_counter()
    study = width_study(args.scale, widths=widths,
                        seeds=list(range(args.seed, args.seed + args.seeds)),
                        image=args.image, jobs=args.jobs)
    seconds = time.perf_counter() - start
    command = _reproduce_command(args, ("widths", ",".join(map(str, widths))))
    lines = ["| width | GD + vanilla CNN (dB) | NTK + Nyström (dB) | gap (dB) |",
             "|---|---|---|---|"]
    for w, gd, gap in zip(study.widths, study.gd_psnr, study.gap):
        lines.append(f"| {w} | {sum(gd) / len(gd):.2f} ({min(gd):.2f} to {max(gd):.2f}) | "
                     f"{sum(study.ntk_psnr) / len(study.ntk_psnr):.2f} | "
                     f"{sum(gap) / len(gap):+.2f} ({min(gap):+.2f} to {max(gap):+.2f}) |")
    table = "\n".join(lines)
    try:
        (out / "widths.md").write_text(
            "# Reading R1 against the width (python -m ntkutils reproduce --widths)\n\n"
            "Noisy-image input, oracle stopping (the clean image picks each step), mean "
            f"and range over seeds {study.seeds}.\n\n{table}\n\n"
            f"Computed in {seconds:.0f} s.\n", encoding="utf-8")
        save_width_study(study, out / "widths.json", seconds=seconds, command=command,
                         commit=commit)
    except OSError as err:
        raise CommandError(f"cannot write to {out}: {err.strerror}") from err
    print(table)
    print(f"{args.scale} scale, {seconds:.0f} s")
    print(f"wrote {out / 'widths.md'} and {out / 'widths.json'}")


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="python -m ntkutils",
        description="Tools of the course 'Why a CNN trained on one noisy image denoises it'.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    den = sub.add_parser(
        "denoise", help="denoise a PNG with the closed-form NTK filter",
        description="Denoise a gray or colour PNG with the closed-form NTK of a "
        "single-hidden-layer CNN: by default in overlapping windows of centred patches "
        "with a pilot pass (--recipe windowed), or as the paper's filter over the whole "
        "image (--recipe poster); the steps chosen without the clean image.",
    )
    den.add_argument("input", help="noisy image (PNG)")
    den.add_argument("output", help="where to write the estimate (PNG)")
    den.add_argument("--sigma", type=float, default=None,
                     help="noise std on the 0-255 scale (estimated when omitted)")
    den.add_argument("--clean", default=None, help="clean image, to print the PSNR")
    den.add_argument("--recipe", choices=["windowed", "poster"], default="windowed",
                     help="windowed: the course's denoiser (default); poster: the paper's "
                     "filter")
    den.add_argument("--patch-size", type=int, default=None,
                     help="odd patch size k (5 windowed, 3 poster)")
    den.add_argument("--window", type=int, default=None, help="windowed: window side (10)")
    den.add_argument("--stride", type=int, default=None,
                     help="windowed: offset between windows (8)")
    den.add_argument("--no-pilot", action="store_true",
                     help="windowed: skip the second pass with the pilot's kernel")
    den.add_argument("--method", choices=["auto", "exact", "nystrom"], default=None,
                     help="poster: exact kernel or Nystrom (auto)")
    den.add_argument("--landmarks", type=int, default=None,
                     help="poster: Nystrom landmarks (512)")
    den.add_argument("--rule", choices=["sure", "discrepancy"], default="sure",
                     help="stopping rule that needs no clean image (sure; discrepancy: "
                     "poster only)")
    den.add_argument("--seed", type=int, default=0,
                     help="seed of the SURE probe and the landmarks (0)")
    den.set_defaults(run=_denoise)
    rep = sub.add_parser(
        "reproduce", help="compute the poster's grid of denoising results",
        description="Compute the poster's grid (network input: noisy image or iid noise; "
        "GD/Adam x autoencoder/vanilla CNN, and the closed-form NTK with Nystrom) and "
        "write DIR/grid.md (the table beside the poster's numbers), DIR/grid.json (the "
        "numbers, curves and provenance) and DIR/grid.png (the estimates). The default cpu scale takes minutes on a laptop CPU; "
        "--scale paper (256x256 colour, wide networks) is meant for a GPU.",
    )
    rep.add_argument("--scale", default="cpu",
                     help="cpu (default: minutes on a laptop), medium (128x128: about an "
                     "hour on a laptop CPU) or paper (256x256, for a GPU)")
    rep.add_argument("--out", default="grid", help="output folder (grid)")
    rep.add_argument("--image", default=None,
                     help="a shipped image instead of astronaut (e.g. coffee)")
    rep.add_argument("--seed", type=int, default=0, help="seed of every random draw (0)")
    rep.add_argument("--seeds", type=int, default=1,
                     help="how many seeds, --seed, --seed + 1, ... (1); the table shows "
                     "each cell's mean and range")
    rep.add_argument("--landmarks", type=int, default=None,
                     help="Nystrom landmark pixels of the kernels (the scale's default); "
                     "every pixel gives the exact kernels")
    rep.add_argument("--adam-steps-noise", type=int, default=None,
                     help="Adam's steps with iid noise as input (the scale's default)")
    rep.add_argument("--gd-lanczos", type=int, default=None,
                     help="gradient-descent cells: this many Lanczos steps instead of "
                     "Nystrom (exact early steps and convergence; e.g. 512)")
    rep.add_argument("--jobs", type=int, default=1,
                     help="run the seeds in this many processes at once (1); e.g. "
                     "--seeds 3 --jobs 3 on a 2-core CPU")
    rep.add_argument("--device", default=None,
                     help="cpu or cuda (default: cuda when available)")
    rep.add_argument("--widths", default=None,
                     help="instead of the grid, reading R1's two cells (GD + vanilla CNN, "
                     "NTK + Nystrom; noisy-image input) for these vanilla-CNN widths, "
                     "e.g. 32,64,128,256; writes DIR/widths.md and DIR/widths.json "
                     "(float64 on the CPU)")
    rep.set_defaults(run=_reproduce)
    mer = sub.add_parser(
        "merge", help="join grid runs of other seeds into one data file",
        description="Join grid.json files of `reproduce` with the same settings and other "
        "seeds (e.g. --seed 0 --seeds 2 and --seed 2, run in separate sessions) into one "
        "data file, as `reproduce --seeds 3` would have written it; the parts' check "
        "grids must agree (the same code made them).",
    )
    mer.add_argument("parts", nargs="+", help="two or more grid.json files")
    mer.add_argument("--out", required=True, help="the merged file (a .json path)")
    mer.set_defaults(run=_merge)
    return parser


def _merge(args: argparse.Namespace) -> None:
    if len(args.parts) < 2:
        raise CommandError(f"merge needs two or more grid.json files, got {len(args.parts)}")
    out = Path(args.out)
    if out.suffix != ".json" or out.is_dir():
        raise CommandError(f"--out must be a .json file path, got {args.out}")
    if any(out.resolve() == Path(p).resolve() for p in args.parts):
        raise CommandError(f"--out must not be one of the parts, got {args.out}")
    if not out.parent.is_dir():
        raise CommandError(f"--out: the folder {out.parent} does not exist")
    try:
        merged = load_runs(merge_runs(args.parts, out))
    except ValueError as err:
        raise CommandError(str(err).replace("paths must", "the parts must", 1)) from None
    print(format_table(merged))
    print(f"seeds {merged.seeds}; wrote {out}")


def main(argv: list[str] | None = None) -> int:
    """Run the command line; return the exit status (0 ok, 2 for a user error).

    Examples
    --------
    >>> main(["denoise", "no-such-file.png", "out.png"])
    2
    """
    parser = _parser()
    try:
        args = parser.parse_args(argv)
        args.run(args)
    except (ValueError, TypeError) as err:  # CommandError and every ntkutils check
        print(f"error: {_one_line(err)}", file=sys.stderr)
        return 2
    except OSError as err:
        print(f"error: {err.strerror or err}: {err.filename or ''}".rstrip(": "),
              file=sys.stderr)
        return 2
    return 0


def _one_line(err: BaseException) -> str:
    return " ".join(str(err).split())
