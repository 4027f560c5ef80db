"""A grid run kept as a small data file: the numbers, the curves, thumbnails, provenance.

The ``medium`` scale takes about an hour on a laptop CPU, too long for the book's test run,
so its result is computed once (``python -m ntkutils reproduce --scale medium --seeds 3``),
saved by :func:`save_runs` and read back by :func:`load_runs`.  The file says how it was
made: the settings, the package's git commit, the date, the CPU, PyTorch's version and the
wall time.
"""
from __future__ import annotations

import copy
import dataclasses
import datetime
import functools
import json
import os
import platform
import subprocess
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from .._checks import check_positive
from ..images import _data_dir
from .run import GridResult, _check_results, reproduce_grid
from .settings import INPUTS, METHODS, GridSettings, grid_settings

__all__ = ["StoredGrid", "check_table", "load_runs", "merge_runs", "save_runs",
           "stored_grid", "stored_grids"]

FORMAT = "ntkutils-grid-1"
THUMBNAIL = 32  # side of the stored estimates, in pixels


@dataclass(frozen=True)
class StoredGrid:
    """A grid run read back from its data file.

    Attributes
    ----------
    settings : GridSettings
        The settings of seed ``seeds[0]`` (the runs differ only in the seed).
    seeds : list of int
    noisy_psnr : list of float
        Per seed.
    cells : dict
        ``cells[input][method]``: a dict of lists over the seeds, ``psnr``, ``step``,
        ``psnr_discrepancy``, ``step_discrepancy``, ``psnr_real``, ``step_real``,
        ``psnr_average``, ``step_average``, ``gap`` (None where a cell has none), and the
        curves ``steps``, ``psnr_curve``, ``steps_real``, ``psnr_curve_real``,
        ``psnr_curve_average`` (lists of lists, or None).
    thumbnails : dict
        ``thumbnails[input][method]``: the first seed's oracle estimate, ``(C, 32, 32)``;
        ``thumbnails["clean"]``, ``thumbnails["noisy"]`` the images.
    provenance : dict
        ``commit``, ``date``, ``cpu``, ``torch``, ``device``, ``dtype``, ``seconds``,
        ``command``, and ``check``: the oracle PSNR table of the ``"test"`` scale, seed
        0, computed by the same code (:func:`check_table`).
    """

    settings: GridSettings
    seeds: list[int]
    noisy_psnr: list[float]
    cells: dict
    thumbnails: dict
    provenance: dict

    @property
    def psnr(self) -> dict[str, dict[str, list[float]]]:
        """The oracle PSNR table, a list over the seeds per cell."""
        return {i: {m: c["psnr"] for m, c in row.items()} for i, row in self.cells.items()}

    @property
    def psnr_discrepancy(self) -> dict[str, dict[str, list[float]]]:
        """The discrepancy-rule PSNR table, a list over the seeds per cell."""
        return {i: {m: c["psnr_discrepancy"] for m, c in row.items()}
                for i, row in self.cells.items()}

    def table(self, k: int, rule: str = "oracle") -> dict[str, dict[str, float]]:
        """Seed number ``k``'s table ``psnr[input][method]`` (for ``poster_readings``)."""
        key = "psnr" if rule == "oracle" else "psnr_discrepancy"
        return {i: {m: c[key][k] for m, c in row.items()} for i, row in self.cells.items()}


def _thumbnail(image: torch.Tensor) -> list:
    """``(C, H, W)`` -> ``(C, 32, 32)`` by area averaging, rounded to 1/255, as lists."""
    small = F.adaptive_avg_pool2d(image.double()[None], THUMBNAIL)[0].clamp(0, 1)
    return (small * 255).round().to(torch.uint8).tolist()


def _curve(values: torch.Tensor | None) -> list[float] | None:
    """A PSNR curve as a list rounded to 1e-4 dB (None stays None)."""
    return None if values is None else [round(v, 4) for v in values.tolist()]


def _git_commit() -> str:
    """The package's git commit, or unknown; ``+dirty`` when the package's own files
    (this folder's parent, ``ntkutils``) have uncommitted changes (edits elsewhere in
    the checkout, to the book or the tests, do not change what a run computes)."""
    package = Path(__file__).resolve().parent.parent
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=package, check=True,
                                capture_output=True, text=True, timeout=10).stdout.strip()
        # "." is the package folder: git takes a pathspec relative to cwd
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no",
                                "--", "."], cwd=package, check=True, capture_output=True,
                               text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return commit + ("+dirty" if dirty else "")


def _cpu_name() -> str:
    """The CPU's model name (Linux), else what :mod:`platform` says."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip() + f" ({os.cpu_count()} cores)"
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _check_provenance_arguments(seconds: object, command: object, commit: object) -> None:
    """The arguments every data file's writer takes for its provenance."""
    check_positive(seconds, "seconds")
    if not isinstance(command, str):
        raise TypeError(f"command must be a str, got {type(command).__name__}")
    if commit is not None and not isinstance(commit, str):
        raise TypeError(f"commit must be a str or None, got {type(commit).__name__}")


def _provenance(seconds: float, command: str, commit: str | None, **extra) -> dict:
    """How a data file was made: the commit (now, unless given), the date, the CPU, the
    PyTorch version, the wall time and the command, then ``extra``."""
    return {"commit": _git_commit() if commit is None else commit,
            "date": datetime.datetime.now(datetime.timezone.utc).isoformat(
                timespec="seconds"),
            "cpu": _cpu_name(), "torch": torch.__version__,
            "seconds": round(float(seconds), 1), "command": command, **extra}


# Lanczos steps of the check grid when the stored runs follow gradient descent by Lanczos
# (their own number of steps may exceed what the tiny check image allows).
CHECK_LANCZOS = 64


def check_table(gd_lanczos: int | None = None) -> dict[str, dict[str, float]]:
    """The grid at the tiny ``"test"`` scale, seed 0, float64 on the CPU (oracle PSNR).

    :func:`save_runs` stores it in the provenance of every data file: a test recomputes it
    and compares, so a stored run whose code has since changed its results is caught
    (seeded float64 runs agree to about 1e-10 dB across CPUs).

    Parameters
    ----------
    gd_lanczos : int or None
        The gradient-descent cells' method, as in the stored runs' settings: None,
        Nyström (the test scale's landmarks); an int, Lanczos, with that many steps.

    Examples
    --------
    >>> table = check_table(gd_lanczos=0)
    Traceback (most recent call last):
    ...
    ValueError: gd_lanczos must be an int >= 1 or None, got 0
    """
    if gd_lanczos is not None and (isinstance(gd_lanczos, bool)
                                   or not isinstance(gd_lanczos, int) or gd_lanczos < 1):
        raise ValueError(f"gd_lanczos must be an int >= 1 or None, got {gd_lanczos!r}")
    return copy.deepcopy(_check_table(gd_lanczos))


@functools.lru_cache(maxsize=None)
def _check_table(gd_lanczos: int | None) -> dict[str, dict[str, float]]:
    """:func:`check_table`, computed once per process (the code does not change in it)."""
    settings = dataclasses.replace(grid_settings("test", seed=0), gd_lanczos=gd_lanczos)
    result = reproduce_grid(settings=settings, device="cpu", dtype=torch.float64,
                            progress=False)
    return result.psnr


def save_runs(runs: list[GridResult], path: str | Path, *, seconds: float,
              command: str = "", commit: str | None = None) -> Path:
    """Write grid runs of several seeds (same settings) to a JSON data file.

    Parameters
    ----------
    runs : list of GridResult
        From :func:`~ntkutils.reproduce.reproduce_grid`, one per seed.
    path : str or Path
        The file to write (``.json``).
    seconds : float
        Wall time of all the runs.
    command : str
        The command that made them (for the provenance).
    commit : str, optional
        The package's git commit when the runs started (default: now; a long run should
        pass the commit it started from, in case the checkout moved on meanwhile).

    Returns
    -------
    Path

    Examples
    --------
    >>> import tempfile, pathlib
    >>> from ntkutils.reproduce import reproduce_grid
    >>> runs = [reproduce_grid("test", seed=s, progress=False) for s in (0, 1)]
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> back = load_runs(save_runs(runs, folder / "grid.json", seconds=9.0))
    >>> back.seeds, back.psnr["noisy image"]["NTK + Nyström"] == [
    ...     r.psnr["noisy image"]["NTK + Nyström"] for r in runs]
    ([0, 1], True)
    """
    runs = _check_results(runs, "runs")
    _check_provenance_arguments(seconds, command, commit)
    first = runs[0]
    cells: dict = {}
    for name in INPUTS:
        cells[name] = {}
        for method in METHODS:
            per = [r.cells[name][method] for r in runs]
            cells[name][method] = {
                "psnr": [c.psnr for c in per], "step": [c.step for c in per],
                "psnr_discrepancy": [c.psnr_discrepancy for c in per],
                "step_discrepancy": [c.step_discrepancy for c in per],
                "psnr_real": [c.psnr_real for c in per],
                "step_real": [c.step_real for c in per],
                "psnr_average": [c.psnr_average for c in per],
                "step_average": [c.step_average for c in per],
                "gap": [c.gap for c in per],
                "steps": [c.steps.tolist() for c in per],
                "psnr_curve": [_curve(c.psnr_curve) for c in per],
                "steps_real": [None if c.steps_real is None else c.steps_real.tolist()
                               for c in per],
                "psnr_curve_real": [_curve(c.psnr_curve_real) for c in per],
                "psnr_curve_average": [_curve(c.psnr_curve_average) for c in per],
            }
    thumbs = {name: {m: _thumbnail(first.cells[name][m].x_hat) for m in METHODS}
              for name in INPUTS}
    thumbs["clean"], thumbs["noisy"] = _thumbnail(first.x), _thumbnail(first.y)
    data = {
        "format": FORMAT,
        "settings": dataclasses.asdict(first.settings),
        "seeds": [r.settings.seed for r in runs],
        "noisy_psnr": [r.noisy_psnr for r in runs],
        "cells": cells,
        "thumbnails": thumbs,
        "provenance": _provenance(
            seconds, command, commit, device=first.device,
            dtype=str(first.cells[INPUTS[0]][METHODS[0]].psnr_curve.dtype),
            check=_check(first.settings)),
    }
    path = Path(path)
    path.write_text(json.dumps(data, separators=(",", ":")) + "\n", encoding="utf-8")
    return path


def _check(settings: GridSettings) -> dict:
    """The check grid for runs of these settings: Nyström or Lanczos, as theirs."""
    lanczos = None if settings.gd_lanczos is None else CHECK_LANCZOS
    return {"scale": "test", "seed": 0, "gd_lanczos": lanczos,
            "psnr": check_table(gd_lanczos=lanczos)}


def load_runs(path: str | Path) -> StoredGrid:
    """Read a data file written by :func:`save_runs`.

    Parameters
    ----------
    path : str or Path

    Returns
    -------
    StoredGrid

    Examples
    --------
    >>> load_runs("no/such/file.json")
    Traceback (most recent call last):
    ...
    FileNotFoundError: path must be a grid data file (from save_runs), no/such/file.json does not exist
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"path must be a grid data file (from save_runs), "
                                f"{path} does not exist")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f"path {path} is not a grid data file (not JSON: {err})") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise ValueError(f"path {path} is not a grid data file of format {FORMAT!r}")
    settings = GridSettings(**data["settings"])
    thumbs = {k: (torch.tensor(v, dtype=torch.float64) / 255 if k in ("clean", "noisy")
                  else {m: torch.tensor(t, dtype=torch.float64) / 255 for m, t in v.items()})
              for k, v in data["thumbnails"].items()}
    return StoredGrid(settings=settings, seeds=data["seeds"], noisy_psnr=data["noisy_psnr"],
                      cells=data["cells"], thumbnails=thumbs, provenance=data["provenance"])


def merge_runs(paths: list[str | Path], out: str | Path) -> Path:
    """One data file from several of the same settings and other seeds.

    A long run (the medium scale takes hours on two cores) can then be computed a few
    seeds at a time, in separate sessions, and stored as one.  The parts must agree in
    every setting but the seed, in the device and dtype, and in their check grids (to
    1e-6 dB: the code that made them computes the same); their seeds must not overlap.

    Parameters
    ----------
    paths : list of str or Path
        Data files from :func:`save_runs`, two or more.
    out : str or Path
        The file to write (``.json``).

    Returns
    -------
    Path

    Notes
    -----
    The merged file lists the seeds in increasing order; its thumbnails are the lowest
    seed's.  Its provenance is that part's (commit, date, CPU, torch), with ``seconds``
    the sum of the parts', ``command`` their commands joined by ``" ; "``, and ``parts``
    every part's own provenance but its check.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> from ntkutils.reproduce import reproduce_grid
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> parts = [save_runs([reproduce_grid("test", seed=s, progress=False)],
    ...                    folder / f"seed{s}.json", seconds=1.0, command=f"seed {s}")
    ...          for s in (1, 0)]
    >>> both = load_runs(merge_runs(parts, folder / "grid.json"))
    >>> both.seeds, both.provenance["seconds"], both.provenance["command"]
    ([0, 1], 2.0, 'seed 0 ; seed 1')
    """
    if isinstance(paths, (str, Path)) or not hasattr(paths, "__len__") or len(paths) < 2:
        raise ValueError(f"paths must be a list of two or more grid data files, got "
                         f"{paths!r}")
    pairs = sorted(((Path(p), load_runs(p)) for p in paths), key=lambda pg: pg[1].seeds[0])
    paths, parts = [p for p, _ in pairs], [g for _, g in pairs]
    first = parts[0]
    seeds = [k for g in parts for k in g.seeds]
    if len(set(seeds)) != len(seeds):
        raise ValueError(f"paths must hold different seeds, got seeds {seeds}")
    for path, g in zip(paths, parts):
        if dataclasses.replace(g.settings, seed=0) != dataclasses.replace(first.settings,
                                                                            seed=0):
            raise ValueError(f"paths must share every setting but the seed: {path} "
                             f"differs from the part of seed {first.seeds[0]}")
        for key in ("device", "dtype"):
            if g.provenance.get(key) != first.provenance.get(key):
                raise ValueError(f"paths must share the {key}: {g.provenance.get(key)} "
                                 f"against {first.provenance.get(key)}")
        check, ref = g.provenance["check"], first.provenance["check"]
        same = check.get("gd_lanczos") == ref.get("gd_lanczos") and all(
            abs(check["psnr"][i][m] - ref["psnr"][i][m]) <= 1e-6
            for i in INPUTS for m in METHODS)
        if not same:
            raise ValueError(f"paths must come from code that computes the same: the "
                             f"check grid of {path} differs from the part of seed "
                             f"{first.seeds[0]}'s")
    order = sorted(range(len(seeds)), key=seeds.__getitem__)
    cells = {name: {method: {key: [v for g in parts
                                   for v in g.cells[name][method][key]]
                             for key in first.cells[name][method]}
                    for method in METHODS} for name in INPUTS}
    for row in cells.values():
        for cell in row.values():
            for key, values in cell.items():
                cell[key] = [values[k] for k in order]
    noisy = [v for g in parts for v in g.noisy_psnr]
    provenance = dict(first.provenance)
    provenance["seconds"] = round(sum(g.provenance["seconds"] for g in parts), 1)
    provenance["command"] = " ; ".join(g.provenance["command"] for g in parts)
    provenance["parts"] = [{k: v for k, v in g.provenance.items()
                            if k not in ("check", "parts")} for g in parts]
    data = {"format": FORMAT, "settings": dataclasses.asdict(
                dataclasses.replace(first.settings, seed=min(seeds))),
            "seeds": sorted(seeds), "noisy_psnr": [noisy[k] for k in order],
            "cells": cells, "provenance": provenance,
            # as stored (bytes), not as read back (floats)
            "thumbnails": json.loads(paths[0].read_text(encoding="utf-8"))["thumbnails"]}
    out = Path(out)
    out.write_text(json.dumps(data, separators=(",", ":")) + "\n", encoding="utf-8")
    return out


def stored_grids() -> list[str]:
    """The names of the grid runs shipped with the course (``data/grid-NAME.json``).

    Examples
    --------
    >>> "medium" in stored_grids()
    True
    """
    return sorted(p.stem.removeprefix("grid-") for p in _data_dir().glob("grid-*.json"))


def stored_grid(name: str = "medium") -> StoredGrid:
    """A grid run shipped with the course, read back (:func:`load_runs`).

    Parameters
    ----------
    name : str
        ``"medium"``: the medium scale (128 x 128 colour, three seeds), computed offline
        by ``python -m ntkutils reproduce --scale medium --seeds 3 --jobs 3`` because it
        takes over an hour on two CPU cores; ``"cpu-exact"``: the cpu scale with every
        pixel a Nyström landmark (the exact kernels); ``"cpu-coffee"``: the cpu scale on
        the coffee picture.  :func:`stored_grids` lists every name.

    Returns
    -------
    StoredGrid

    Examples
    --------
    >>> stored_grid("medium").settings.size
    128
    >>> stored_grid("large")
    Traceback (most recent call last):
    ...
    ValueError: name must be one of the stored grids [...], got 'large'
    """
    names = stored_grids()
    if name not in names:
        raise ValueError(f"name must be one of the stored grids {names}, got {name!r}")
    return load_runs(_data_dir() / f"grid-{name}.json")
