"""Reading R1 against the width: gradient descent on wider vanilla CNNs beside their kernel.

R1 (the closed-form kernel predicts gradient descent on the vanilla CNN within 1 dB) is a
statement about the infinite-width limit, and the grid's vanilla CNN has a finite width.
:func:`width_study` recomputes the grid's "GD + vanilla CNN" cell with the noisy image as
input (the same draws: image, noise, weights, landmarks) for several widths and seeds, beside
the "NTK + Nyström" cell, which does not depend on the width.  :func:`save_width_study`
stores it with its provenance, as :func:`~ntkutils.reproduce.save_runs` does for the grid.
"""
from __future__ import annotations

import dataclasses
import json
import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import torch

from ..images import _data_dir, psnr
from .run import _draw, grid_cell
from .settings import GridSettings, grid_settings
from .store import _check_provenance_arguments, _provenance

__all__ = ["WidthStudy", "load_width_study", "save_width_study", "stored_width_study",
           "width_study"]

FORMAT = "ntkutils-width-1"
_IMAGE, _GD, _NTK = "noisy image", "GD + vanilla CNN", "NTK + Nyström"


@dataclass(frozen=True)
class WidthStudy:
    """Gradient descent on the vanilla CNN at several widths, and its kernel, per seed.

    Attributes
    ----------
    settings : GridSettings
        The grid's settings of the first seed (its ``vanilla_channels`` is the scale's
        own width, one of ``widths`` or not).
    widths : list of int
        The hidden layers' channels, in increasing order.
    seeds : list of int
    noisy_psnr : list of float
        PSNR of the noisy image, per seed.
    ntk_psnr : list of float
        The "NTK + Nyström" cell (oracle step) with the noisy image as input, per seed.
    gd_psnr, gd_step : list of list
        ``[width][seed]``: the "GD + vanilla CNN" cell (linearised, oracle step) and its step.
    provenance : dict or None
        How a stored study was made (:func:`save_width_study`); None for a fresh one.
    """

    settings: GridSettings
    widths: list[int]
    seeds: list[int]
    noisy_psnr: list[float]
    ntk_psnr: list[float]
    gd_psnr: list[list[float]]
    gd_step: list[list[int]]
    provenance: dict | None = None

    @property
    def gap(self) -> list[list[float]]:
        """``[width][seed]``: the kernel's PSNR minus gradient descent's (R1 asks <= 1 dB)."""
        return [[k - g for k, g in zip(self.ntk_psnr, row)] for row in self.gd_psnr]


def _check_widths(widths: object) -> list[int]:
    if (not isinstance(widths, (list, tuple)) or not widths
            or any(isinstance(w, bool) or not isinstance(w, int) or w < 1 for w in widths)):
        raise ValueError(f"widths must be a non-empty list of positive ints (hidden "
                         f"channels), got {widths!r}")
    if len(set(widths)) != len(widths):
        raise ValueError(f"widths must not repeat a width, got {list(widths)}")
    return sorted(widths)


def _check_seeds(seeds: object) -> list[int]:
    if (not isinstance(seeds, (list, tuple, range)) or len(seeds) == 0
            or any(isinstance(s, bool) or not isinstance(s, int) or s < 0 for s in seeds)):
        raise ValueError(f"seeds must be a non-empty list of ints >= 0, got {seeds!r}")
    return list(seeds)


def _gd_worker(settings: GridSettings, threads: int | None) -> tuple[float, int]:
    """The linearised gradient-descent cell (oracle PSNR and step) of one width and seed."""
    if threads is not None:
        torch.set_num_threads(threads)
    cell = grid_cell(settings, _IMAGE, _GD, device="cpu", dtype=torch.float64)
    return cell.psnr, cell.step


def width_study(scale: str = "cpu", *, widths=(32, 64, 128, 256), seeds=(0, 1, 2),
                image: str | None = None, jobs: int = 1) -> WidthStudy:
    """R1's two cells, "GD + vanilla CNN" and "NTK + Nyström" (noisy-image input), as the
    vanilla CNN widens.

    Each (width, seed) is :func:`~ntkutils.reproduce.grid_cell` of the grid's settings with
    ``vanilla_channels`` replaced: the same image, noise, landmarks and stopping rule
    (oracle: the clean image picks the step), so the scale's own width gives the grid's
    cell exactly.  Float64 on the CPU.  The cost grows like the width squared.

    Parameters
    ----------
    scale : str
        A scale of :func:`~ntkutils.reproduce.grid_settings`.
    widths : sequence of int
        Hidden channels of the vanilla CNN.
    seeds : sequence of int
    image : str, optional
        A shipped image instead of the scale's.
    jobs : int
        Worker processes (each (width, seed) is one task; results do not depend on it).

    Returns
    -------
    WidthStudy

    Examples
    --------
    >>> study = width_study("test", widths=[4, 8], seeds=[0])
    >>> study.widths, len(study.gd_psnr), len(study.gap[0])
    ([4, 8], 2, 1)
    """
    widths, seeds = _check_widths(widths), _check_seeds(seeds)
    if isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1:
        raise ValueError(f"jobs must be an int >= 1 (worker processes), got {jobs!r}")
    base = [grid_settings(scale, image=image, seed=s) for s in seeds]
    tasks = [dataclasses.replace(b, vanilla_channels=w) for w in widths for b in base]
    if jobs == 1:
        results = [_gd_worker(t, None) for t in tasks]
    else:
        threads = max(1, torch.get_num_threads() // jobs)
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=jobs, mp_context=context) as pool:
            # the widest first, so that the long tasks do not end the run alone
            order = sorted(range(len(tasks)), key=lambda i: -tasks[i].vanilla_channels)
            done = dict(zip(order, pool.map(_gd_worker, [tasks[i] for i in order],
                                            [threads] * len(order))))
        results = [done[i] for i in range(len(tasks))]
    ntk, noisy = [], []
    for b in base:
        ntk.append(grid_cell(b, _IMAGE, _NTK, device="cpu", dtype=torch.float64).psnr)
        x, y, _ = _draw(b)
        noisy.append(float(psnr(y, x)))
    k = len(seeds)
    return WidthStudy(
        settings=base[0], widths=widths, seeds=seeds, noisy_psnr=noisy, ntk_psnr=ntk,
        gd_psnr=[[float(results[i * k + j][0]) for j in range(k)] for i in range(len(widths))],
        gd_step=[[int(results[i * k + j][1]) for j in range(k)] for i in range(len(widths))])


def check_study() -> dict:
    """The study at the tiny ``"test"`` scale (widths 4 and 8, seed 0): stored with every
    data file, recomputed by a test."""
    study = width_study("test", widths=[4, 8], seeds=[0])
    return {"scale": "test", "widths": study.widths, "seeds": study.seeds,
            "gd_psnr": study.gd_psnr, "ntk_psnr": study.ntk_psnr}


def save_width_study(study: WidthStudy, path: str | Path, *, seconds: float,
                     command: str = "", commit: str | None = None) -> Path:
    """Write a :class:`WidthStudy` and its provenance to a JSON data file.

    Parameters
    ----------
    study : WidthStudy
    path : str or Path
    seconds : float
        Wall time of the study.
    command : str
        The command that made it.
    commit : str, optional
        The package's commit when it started (default: now).

    Returns
    -------
    Path

    Examples
    --------
    >>> import tempfile, pathlib
    >>> study = width_study("test", widths=[4], seeds=[0])
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "width.json"
    >>> load_width_study(save_width_study(study, path, seconds=1.0)).gd_psnr == study.gd_psnr
    True
    """
    if not isinstance(study, WidthStudy):
        raise TypeError(f"study must be a WidthStudy (from width_study), got "
                        f"{type(study).__name__}")
    _check_provenance_arguments(seconds, command, commit)
    data = {
        "format": FORMAT, "settings": dataclasses.asdict(study.settings),
        "widths": study.widths, "seeds": study.seeds, "noisy_psnr": study.noisy_psnr,
        "ntk_psnr": study.ntk_psnr, "gd_psnr": study.gd_psnr, "gd_step": study.gd_step,
        "provenance": _provenance(seconds, command, commit, dtype="torch.float64",
                                  check=check_study()),
    }
    path = Path(path)
    path.write_text(json.dumps(data, indent=1) + "\n", encoding="utf-8")
    return path


def load_width_study(path: str | Path) -> WidthStudy:
    """Read a data file written by :func:`save_width_study`.

    Examples
    --------
    >>> load_width_study("no/such/file.json")
    Traceback (most recent call last):
    ...
    FileNotFoundError: path must be a width-study data file (from save_width_study), no/such/file.json does not exist
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"path must be a width-study data file (from "
                                f"save_width_study), {path} does not exist")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f"path {path} is not a width-study data file (not JSON: "
                         f"{err})") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise ValueError(f"path {path} is not a width-study data file of format {FORMAT!r}")
    return WidthStudy(settings=GridSettings(**data["settings"]), widths=data["widths"],
                      seeds=data["seeds"], noisy_psnr=data["noisy_psnr"],
                      ntk_psnr=data["ntk_psnr"], gd_psnr=data["gd_psnr"],
                      gd_step=data["gd_step"], provenance=data["provenance"])


def stored_width_study(scale: str = "cpu") -> WidthStudy:
    """The width study shipped with the course (``data/width-SCALE.json``).

    Examples
    --------
    >>> stored_width_study().widths[0] < stored_width_study().widths[-1]
    True
    """
    if not isinstance(scale, str):
        raise TypeError(f"scale must be a str, got {type(scale).__name__}")
    path = _data_dir() / f"width-{scale}.json"
    if not path.is_file():
        shipped = sorted(p.stem.removeprefix("width-") for p in _data_dir().glob("width-*.json"))
        raise ValueError(f"scale must be one of the stored width studies {shipped}, got "
                         f"{scale!r}")
    return load_width_study(path)
