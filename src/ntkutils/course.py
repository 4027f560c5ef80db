"""What the chapters share as notebooks: the set-up, numbers for the prose, the run-time clock.

Every chapter's first code cell after its imports is one call, ``setup(seed=0)``: the seed,
the device, the dtype (float64 on the CPU, so that every CPU prints the same numbers; float32
on a GPU), whether progress bars show, and THE size switch of the book, ``paper_scale``
(``True``, or ``NTK_PAPER_SCALE=1`` in the environment, runs the paper's sizes; meant for a
GPU).

Every measured number that a chapter's text quotes comes from the notebook's own computation:
a code cell hands it to :func:`glue` (rounded to the digits that are the same on every CPU),
and the Markdown quotes it with the role ``{glue:text}`name```. The book (myst-nb) reads the
record from the stored output, so the text cannot drift from the outputs, and ``pytest
--nbval`` compares the record like any other output.

The record has myst-nb's own format (a hidden ``display_data`` output whose mime types carry
myst-nb's prefix and whose metadata names the key), written here so that a chapter runs where
myst-nb is not installed (Colab). ``tests/test_course.py`` checks it against
``myst_nb.glue``.
"""
from __future__ import annotations

import math
import os
import time
from numbers import Real
from typing import NamedTuple

import torch

from ._checks import NTKUtilsError, check_device
from ._progress import bars_disabled
from .plotting import use_book_style

__all__ = ["Setup", "setup", "generator", "glue", "glue_spread", "start_clock",
           "glue_run_time"]

# myst-nb's prefix for a glued value that is recorded but not shown (myst_nb.ext.glue).
GLUE_PREFIX = "application/papermill.record/"

_CLOCK: dict[str, float] = {}


class Setup(NamedTuple):
    """What :func:`setup` chose, in the order a chapter unpacks it."""

    seed: int
    device: torch.device
    dtype: torch.dtype
    paper_scale: bool
    progress: bool


def setup(seed: int = 0, paper_scale: bool | None = None,
          device: str | torch.device | None = None) -> Setup:
    """Set a chapter up: seed, device, dtype, progress bars, the size switch, figures, clock.

    Parameters
    ----------
    seed : int, default 0
        The chapter's seed (``torch.manual_seed``); draws that matter take a
        :func:`generator` of their own.
    paper_scale : bool or None, default None
        ``True`` runs the paper's sizes (meant for a GPU), ``False`` the CPU sizes; ``None``
        reads the environment variable ``NTK_PAPER_SCALE`` (``1`` means True).
    device : str, torch.device or None, default None
        ``None`` takes CUDA when there is a GPU, else the CPU.

    Returns
    -------
    Setup
        ``(seed, device, dtype, paper_scale, progress)``; ``dtype`` (float64 on the CPU,
        float32 on a GPU) is also made torch's default dtype.

    Notes
    -----
    The CPU tier computes in float64: training amplifies the last-bit differences of the
    CPU's vector sums, and in float64 the printed results agree on every CPU (in float32 they
    differ in the second digit after a few hundred Adam steps). Progress bars are off when
    ``TQDM_DISABLE=1``, as in the test run. The call also sets the book's figure style and
    starts the clock that :func:`glue_run_time` reads.
    """
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise NTKUtilsError(f"setup: seed must be an integer >= 0, got {seed!r}")
    if paper_scale is None:
        paper_scale = os.environ.get("NTK_PAPER_SCALE", "0").strip() == "1"
    elif not isinstance(paper_scale, bool):
        raise NTKUtilsError(
            f"setup: paper_scale must be True, False or None, got {paper_scale!r}")
    device = check_device(
        device if device is not None else "cuda" if torch.cuda.is_available() else "cpu")
    dtype = torch.float32 if device.type == "cuda" else torch.float64
    torch.manual_seed(seed)
    torch.set_default_dtype(dtype)
    use_book_style()
    start_clock()
    print(f"seed: {seed} | device: {device.type} | dtype: {str(dtype)[6:]} "
          f"| paper scale: {paper_scale}")
    return Setup(seed, device, dtype, paper_scale, not bars_disabled())


def generator(seed: int) -> torch.Generator:
    """A fresh CPU generator seeded with ``seed``: every random draw of a chapter takes one.

    >>> torch.rand(2, generator=generator(0)).equal(torch.rand(2, generator=generator(0)))
    True
    """
    return torch.Generator().manual_seed(seed)


def _format(name: str, value: object, fmt: str) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bool) or not isinstance(value, Real):
        # 0-d tensors and numpy scalars: take the Python number.
        item = getattr(value, "item", None)
        if item is None or isinstance(value, bool):
            raise NTKUtilsError(
                f"glue: value of {name!r} must be a number or a string, "
                f"got {type(value).__name__}")
        value = item()
    try:
        return format(value, fmt)
    except (ValueError, TypeError) as err:
        raise NTKUtilsError(
            f"glue: fmt {fmt!r} is not a format for the number {value!r} ({err})") from None


def glue(name: str, value: object, fmt: str = ".1f") -> str:
    """Record a number for the chapter's text, rounded to its stable digits.

    Parameters
    ----------
    name : str
        The key the Markdown quotes: ``{glue:text}`name```. Unique within a notebook; letters,
        digits and ``_`` only.
    value : float, int, 0-d tensor, numpy scalar or str
        The measured number. A string is recorded as it is (already formatted).
    fmt : str, default ".1f"
        Python format spec for a number: keep only the digits that agree on every CPU
        (PSNR to 0.1 dB, a slope to 0.01, ...).

    Returns
    -------
    str
        The text recorded, so that a cell can also print it.

    Notes
    -----
    Outside IPython nothing is displayed; the formatted text is still returned.

    Examples
    --------
    >>> glue("best_psnr", 25.2006977, fmt=".1f")
    '25.2'
    >>> glue("share", 0.1634, fmt=".0%")
    '16%'
    """
    if not isinstance(name, str) or not name.replace("_", "a").isalnum():
        raise NTKUtilsError(
            f"glue: name must be letters, digits and '_' (a key for {{glue:text}}), "
            f"got {name!r}")
    if not isinstance(fmt, str):
        raise NTKUtilsError(f"glue: fmt must be a format spec such as '.1f', got {fmt!r}")
    text = _format(name, value, fmt)
    try:
        from IPython import get_ipython
        from IPython.display import display
    except ImportError:  # pragma: no cover - IPython comes with every Jupyter
        return text
    if get_ipython() is not None:
        display(
            {GLUE_PREFIX + "text/plain": repr(text)},
            raw=True,
            metadata={"scrapbook": {"name": name, "mime_prefix": GLUE_PREFIX}},
        )
    return text


def glue_spread(name: str, values: object, fmt: str = ".1f") -> str:
    """Record a result measured over several seeds: its mean, minimum and maximum.

    A claim drawn from a random experiment rests on at least three seeds and shows their
    spread.  This glues ``name`` (the mean), ``name_min``, ``name_max`` and ``name_seeds``
    (how many), and ``name_spread``, the text "mean (min to max)" that the prose quotes.

    Parameters
    ----------
    name : str
        Key of the mean; the other keys add ``_min``, ``_max``, ``_seeds``, ``_spread``.
    values : sequence of numbers (at least 3) or a 1-D tensor
        One value per seed.
    fmt : str, default ".1f"
        Format of every number (keep the digits that agree on every CPU).

    Returns
    -------
    str
        The ``name_spread`` text.

    Examples
    --------
    >>> glue_spread("best_psnr", [24.61, 24.93, 24.40])
    '24.6 (24.4 to 24.9)'
    """
    if isinstance(values, torch.Tensor):
        values = values.detach().cpu().reshape(-1).tolist()
    try:
        v = [float(x) for x in values]
    except (TypeError, ValueError):
        raise NTKUtilsError(f"glue_spread: values of {name!r} must be a sequence of numbers, "
                            f"one per seed; got {values!r}") from None
    if len(v) < 3:
        raise NTKUtilsError(f"glue_spread: values of {name!r} must hold at least 3 seeds, "
                            f"got {len(v)}")
    if not all(math.isfinite(x) for x in v):
        raise NTKUtilsError(f"glue_spread: values of {name!r} must be finite, got {v}")
    mean, lo, hi = sum(v) / len(v), min(v), max(v)
    glue(name, mean, fmt)
    glue(f"{name}_min", lo, fmt)
    glue(f"{name}_max", hi, fmt)
    glue(f"{name}_seeds", len(v), "d")
    text = f"{_format(name, mean, fmt)} ({_format(name, lo, fmt)} to {_format(name, hi, fmt)})"
    return glue(f"{name}_spread", text)


def start_clock() -> None:
    """Start the chapter's run-time clock (the set-up cell calls this)."""
    _CLOCK["start"] = time.perf_counter()


def glue_run_time(name: str = "run_time") -> str:
    """Record the minutes since :func:`start_clock` as ``"N min"`` for the chapter's header.

    The last cell of a chapter calls it, so the header's run time is the one measured when the
    stored outputs were computed. Under 10 minutes it is rounded to half a minute, above to
    a whole one.
    """
    if "start" not in _CLOCK:
        raise NTKUtilsError(
            "glue_run_time: the clock was never started; call start_clock() in the set-up cell")
    minutes = (time.perf_counter() - _CLOCK["start"]) / 60
    minutes = max(round(minutes * 2) / 2, 0.5) if minutes < 10 else round(minutes)
    return glue(name, f"{minutes:g} min")
