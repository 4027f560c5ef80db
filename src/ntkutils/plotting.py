"""Figures of the book: images side by side, filter weights, curves, log-log slopes.

Plotting only reads results: nothing here computes a kernel or trains a network.  Every
figure has an opaque white background (readable in the book's dark mode) and labelled axes.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib as mpl
import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.figure import Figure

from ._checks import check_positive
from .images import to_hwc

__all__ = [
    "COLUMN_PX",
    "PHONE_COLUMN_PX",
    "DPI",
    "MIN_FONT_PT",
    "MAX_WIDTH_IN",
    "MIN_READABLE_PX",
    "smallest_text_px",
    "use_book_style",
    "panels",
    "to_numpy_image",
    "show_images",
    "plot_filter_weights",
    "plot_psnr_curves",
    "fit_loglog_slope",
    "plot_loglog",
    "plot_band",
    "loglog_slopes",
    "label_line_ends",
]


#: Width of the book's text column in CSS pixels: on a desktop (sphinx-book-theme at
#: 1280 px) and on a phone (a 390 px screen; 343 px measured in headless Chromium, whose
#: scroll bar takes 15 px of it).
COLUMN_PX = 688
PHONE_COLUMN_PX = 343

#: Every figure is drawn at ``DPI`` pixels per inch, with no text smaller than
#: ``MIN_FONT_PT`` points: ``MIN_FONT_PT * DPI / 72`` = 13.9 px in the stored PNG.
DPI = 100
MIN_FONT_PT = 10

#: The smallest text a reader should have to read, in CSS pixels.
MIN_READABLE_PX = 9

#: The widest figure, in inches: ``MAX_WIDTH_IN * DPI`` = 500 px, shown 1:1 in the desktop
#: column and scaled by 343 / 500 = 0.69 on a phone, where 10 pt text is still 9.5 px
#: (the tight bounding box of a saved figure may add a few pixels).  tests/test_book.py
#: checks every stored figure against it, and the browser test measures the rendered sizes.
MAX_WIDTH_IN = 5.0


def smallest_text_px(shown_width: float, natural_width: float) -> float:
    """The smallest text of a book figure ``natural_width`` px wide shown ``shown_width``
    px wide, in CSS pixels: its ``MIN_FONT_PT`` at ``DPI``, scaled.

    >>> round(smallest_text_px(500, 500), 2), round(smallest_text_px(343, 500), 2)
    (13.89, 9.53)
    """
    return shown_width / natural_width * MIN_FONT_PT * DPI / 72


def use_book_style() -> None:
    """Set the matplotlib defaults every chapter uses (white background, readable fonts).

    Figures are ``MAX_WIDTH_IN`` inches wide at most, at ``DPI``, and no text in them is
    smaller than ``MIN_FONT_PT``: then every label reads at ``MIN_READABLE_PX`` or more
    in the book's column, on a desktop and on a phone.  Draw at most two plots (three
    images) a row: :func:`panels` lays them out.

    Examples
    --------
    >>> use_book_style()
    >>> mpl.rcParams["figure.facecolor"]
    'white'
    """
    mpl.rcParams.update({
        "figure.facecolor": "white",
        "savefig.facecolor": "white",
        "axes.facecolor": "white",
        "figure.dpi": DPI,
        "figure.figsize": (MAX_WIDTH_IN, 3.4),
        "font.size": MIN_FONT_PT,
        "axes.titlesize": MIN_FONT_PT,
        "axes.labelsize": MIN_FONT_PT,
        "xtick.labelsize": MIN_FONT_PT,
        "ytick.labelsize": MIN_FONT_PT,
        "legend.fontsize": MIN_FONT_PT,
        "legend.title_fontsize": MIN_FONT_PT,
        "figure.titlesize": MIN_FONT_PT + 1,
        "image.interpolation": "nearest",
    })


def panels(
    n: int, *, ncols: int = 2, aspect: float = 0.75, width: float = MAX_WIDTH_IN,
    **subplot_kw,
) -> tuple[Figure, list[plt.Axes]]:
    """A figure of ``n`` panels for the book's column: ``ncols`` a row, ``width`` inches wide.

    Parameters
    ----------
    n : int
        Number of panels; unused cells of the last row are removed.
    ncols : int
        Panels a row: 2 for plots (their axis labels need the room), up to 3 for images.
    aspect : float
        Height / width of one panel.
    width : float
        Figure width in inches, at most ``MAX_WIDTH_IN``.
    **subplot_kw
        Passed to :func:`matplotlib.pyplot.subplots` (``sharey=True``, ...).

    Returns
    -------
    (Figure, list of Axes)
        The figure (constrained layout) and its ``n`` axes, row by row.

    Examples
    --------
    >>> fig, axes = panels(3)
    >>> len(axes), [float(v) for v in fig.get_size_inches()]
    (3, [5.0, 3.75])
    >>> plt.close(fig)
    """
    n = check_positive(n, "n", integer=True)
    ncols = check_positive(ncols, "ncols", integer=True)
    if ncols > 3:
        raise ValueError(f"ncols must be at most 3 (the phone column), got {ncols}")
    ncols = min(ncols, n)
    width = check_positive(width, "width")
    if width > MAX_WIDTH_IN:
        raise ValueError(f"width must be at most MAX_WIDTH_IN = {MAX_WIDTH_IN} inches, got "
                         f"{width}")
    nrows = -(-n // ncols)
    fig, axes = plt.subplots(nrows, ncols, squeeze=False, layout="constrained",
                             figsize=(width, width / ncols * aspect * nrows), **subplot_kw)
    flat = list(axes.flat)
    for ax in flat[n:]:
        fig.delaxes(ax)
    return fig, flat[:n]


def to_numpy_image(img: torch.Tensor) -> np.ndarray:
    """A ``(C, H, W)`` tensor as an array for ``imshow``, clipped to [0, 1].

    Parameters
    ----------
    img : torch.Tensor
        ``(C, H, W)`` with ``C`` = 1 or 3, or ``(H, W)``.

    Returns
    -------
    numpy.ndarray
        ``(H, W)`` for gray, ``(H, W, 3)`` for colour.

    Examples
    --------
    >>> to_numpy_image(torch.full((3, 2, 2), 2.0)).shape
    (2, 2, 3)
    """
    if not isinstance(img, torch.Tensor):
        raise TypeError(f"img must be a torch.Tensor, got {type(img).__name__}")
    if not _displayable(img):
        raise ValueError(f"img must have shape (C, H, W) with C = 1 or 3, or (H, W), got "
                         f"{tuple(img.shape)}")
    return _as_array(img)


def _displayable(img: torch.Tensor) -> bool:
    """A gray or colour ``(C, H, W)`` image, or an ``(H, W)`` one."""
    return img.ndim == 2 or (img.ndim == 3 and img.shape[0] in (1, 3))


def _as_array(img: torch.Tensor) -> np.ndarray:
    """:func:`to_numpy_image` of a checked image."""
    arr = img.detach().cpu().double().clamp(0.0, 1.0).numpy()
    return to_hwc(arr, squeeze=True) if arr.ndim == 3 else arr  # (H, W[, 3])


def show_images(
    images: Sequence[torch.Tensor],
    titles: Sequence[str] | None = None,
    *,
    ncols: int | None = None,
    size: float = 2.6,
    suptitle: str | None = None,
) -> Figure:
    """Show images side by side (gray or colour), values clipped to [0, 1].

    Parameters
    ----------
    images : sequence of torch.Tensor
        Each ``(C, H, W)`` in [0, 1].
    titles : sequence of str, optional
        One per image (put the PSNR here).
    ncols : int, optional
        Images per row; all in one row (at most 3) by default.
    size : float
        Inches per panel, reduced so the figure is at most ``MAX_WIDTH_IN`` wide.
    suptitle : str, optional
        A title over the whole figure.

    Returns
    -------
    matplotlib.figure.Figure

    Examples
    --------
    >>> fig = show_images([torch.zeros(1, 4, 4), torch.ones(3, 4, 4)], ["a", "b"])
    >>> len(fig.axes)
    2
    >>> plt.close(fig)
    """
    images = list(images)
    n = len(images)
    if n == 0:
        raise ValueError("images must hold at least one image, got none")
    for k, im in enumerate(images):
        if not isinstance(im, torch.Tensor) or not _displayable(im):
            got = tuple(im.shape) if isinstance(im, torch.Tensor) else type(im).__name__
            raise ValueError(f"images[{k}] must be a (C, H, W) tensor with C = 1 or 3, or "
                             f"(H, W), got {got}")
    if titles is not None and len(titles) != n:
        raise ValueError(f"titles must have one entry per image ({n}), got {len(titles)}")
    if ncols is not None:
        check_positive(ncols, "ncols", integer=True)
    ncols = ncols or min(n, 3)
    nrows = -(-n // ncols)
    size = min(size, MAX_WIDTH_IN / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(size * ncols, size * nrows + 0.3),
                             squeeze=False)
    for k, ax in enumerate(axes.flat):
        ax.axis("off")
        if k < n:
            ax.imshow(_as_array(images[k]), cmap="gray", vmin=0, vmax=1)
            if titles is not None:
                ax.set_title(titles[k])
    if suptitle:
        fig.suptitle(suptitle)
    fig.tight_layout()
    return fig


def plot_filter_weights(
    weights: torch.Tensor,
    pixel: tuple[int, int],
    *,
    ax: plt.Axes | None = None,
    title: str = "",
    signed: bool = True,
) -> plt.Axes:
    """Show one pixel's filter weights over the image, the pixel marked with a cross.

    Parameters
    ----------
    weights : torch.Tensor
        ``(H, W)`` weights of the pixel (a row of a filter matrix, reshaped).
    pixel : (int, int)
        ``(row, col)`` of the pixel.
    ax : matplotlib Axes, optional
        Where to draw; a new figure when None.
    title : str
        Panel title.
    signed : bool
        Diverging colour map centred at 0 (red positive, blue negative) when True;
        a sequential map from 0 when False (non-local-means weights are never negative).

    Returns
    -------
    matplotlib Axes

    Examples
    --------
    >>> ax = plot_filter_weights(torch.eye(5), (2, 2))
    >>> plt.close(ax.figure)
    """
    if not isinstance(weights, torch.Tensor) or weights.ndim != 2:
        got = tuple(weights.shape) if isinstance(weights, torch.Tensor) else type(weights).__name__
        raise ValueError(f"weights must be an (H, W) tensor (a row of the filter, reshaped), "
                         f"got {got}")
    H, W = weights.shape
    if (not isinstance(pixel, (tuple, list)) or len(pixel) != 2
            or not all(isinstance(p, int) and not isinstance(p, bool) for p in pixel)
            or not (0 <= pixel[0] < H and 0 <= pixel[1] < W)):
        raise ValueError(f"pixel must be a (row, col) inside the {H}x{W} weights, got "
                         f"{pixel!r}")
    if ax is None:
        _, ax = plt.subplots(figsize=(3, 3))
    w = weights.detach().cpu().double().numpy()
    if signed:
        lim = float(np.abs(w).max()) or 1.0
        im = ax.imshow(w, cmap="RdBu_r", vmin=-lim, vmax=lim)
    else:
        im = ax.imshow(w, cmap="magma", vmin=0)
    ax.plot(pixel[1], pixel[0], marker="x", color="lime", markersize=8, mew=2)
    ax.set_title(title)
    ax.axis("off")
    ax.figure.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    return ax


def plot_psnr_curves(
    steps: Sequence[int] | torch.Tensor,
    curves: Mapping[str, Sequence[float] | torch.Tensor],
    *,
    ax: plt.Axes | None = None,
    noisy_psnr: float | None = None,
    xlabel: str = "iteration t",
    logx: bool = False,
) -> plt.Axes:
    """PSNR against iterations for several methods, best step of each marked.

    Parameters
    ----------
    steps : sequence of int
        The iterations at which the curves were recorded (shared by all curves).
    curves : mapping str -> sequence of float
        PSNR in dB per label.
    ax : matplotlib Axes, optional
        Where to draw.
    noisy_psnr : float, optional
        Draws the PSNR of the noisy image as a dashed line.
    xlabel : str
        Label of the horizontal axis.
    logx : bool
        Logarithmic iteration axis.

    Returns
    -------
    matplotlib Axes

    Examples
    --------
    >>> ax = plot_psnr_curves([0, 1, 2], {"GD": [10.0, 12.0, 11.0]}, noisy_psnr=9.0)
    >>> plt.close(ax.figure)
    """
    t = np.asarray(torch.as_tensor(steps).cpu())
    if t.ndim != 1 or t.size == 0:
        raise ValueError(f"steps must be a non-empty 1-D sequence, got shape {t.shape}")
    if not curves:
        raise ValueError("curves must hold at least one curve, got none")
    for label, values in curves.items():
        if np.asarray(torch.as_tensor(values).cpu()).shape != t.shape:
            raise ValueError(f"curves[{label!r}] must have one value per step ({t.size}), "
                             f"got {len(values)}")
    if ax is None:
        _, ax = plt.subplots(figsize=(5, 3.2))
    for label, values in curves.items():
        v = np.asarray(torch.as_tensor(values).cpu(), dtype=float)
        (line,) = ax.plot(t, v, label=label)
        best = int(np.nanargmax(v))
        ax.plot(t[best], v[best], "o", color=line.get_color())
    if noisy_psnr is not None:
        ax.axhline(noisy_psnr, color="gray", ls="--", lw=1, label="noisy input")
    if logx:
        ax.set_xscale("symlog", linthresh=1)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("PSNR (dB)")
    ax.grid(alpha=0.3)
    ax.legend()
    return ax


def fit_loglog_slope(x: Sequence[float], y: Sequence[float]) -> float:
    """Least-squares slope of ``log y`` against ``log x``.

    Parameters
    ----------
    x, y : sequence of float
        Positive values, same length (at least 2).

    Returns
    -------
    float
        The exponent ``a`` of the best fit ``y ~ b x^a``.

    Examples
    --------
    >>> round(fit_loglog_slope([1, 10, 100], [1.0, 0.1, 0.01]), 6)
    -1.0
    """
    ax, ay = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if ax.ndim != 1 or ax.size < 2:
        raise ValueError(f"x must be a 1-D sequence of at least 2 values, got shape {ax.shape}")
    if ay.shape != ax.shape:
        raise ValueError(f"x and y must have the same length, got {ax.size} and {ay.size}")
    for name, a in (("x", ax), ("y", ay)):
        if not (np.isfinite(a).all() and (a > 0).all()):
            raise ValueError(f"{name} must be positive and finite (a log-log fit), got "
                             f"min {a.min():.3g}")
    lx, ly = np.log(ax), np.log(ay)
    return float(np.polyfit(lx, ly, 1)[0])


def plot_loglog(
    x: Sequence[float],
    series: Mapping[str, Sequence[float]],
    *,
    ax: plt.Axes | None = None,
    reference_slopes: Mapping[str, float] | None = None,
    xlabel: str = "channels c",
    ylabel: str = "",
) -> dict[str, float]:
    """Log-log plot of several series with their fitted slopes in the legend.

    Parameters
    ----------
    x : sequence of float
        Shared horizontal values (e.g. widths).
    series : mapping str -> sequence of float
        One positive series per label.
    ax : matplotlib Axes, optional
        Where to draw.
    reference_slopes : mapping str -> float, optional
        Reference slopes (e.g. the poster's) drawn as dotted lines through each series'
        first point, keyed like ``series``.
    xlabel, ylabel : str
        Axis labels.

    Returns
    -------
    dict str -> float
        The fitted slope of each series.

    Examples
    --------
    >>> slopes = plot_loglog([1, 2, 4], {"a": [1.0, 0.5, 0.25]})
    >>> round(slopes["a"], 3)
    -1.0
    >>> plt.close("all")
    """
    xs = np.asarray(x, dtype=float)
    for label, values in series.items():
        if len(values) != xs.size:
            raise ValueError(f"series[{label!r}] must have one value per x ({xs.size}), got "
                             f"{len(values)}")
    if ax is None:
        _, ax = plt.subplots(figsize=(4.5, 3.2))
    slopes = {}
    for label, values in series.items():
        ys = np.asarray(values, dtype=float)
        slopes[label] = fit_loglog_slope(xs, ys)
        (line,) = ax.loglog(xs, ys, "o-", label=f"{label} (slope {slopes[label]:.2f})")
        if reference_slopes and label in reference_slopes:
            a = reference_slopes[label]
            ax.loglog(xs, ys[0] * (xs / xs[0]) ** a, ":", color=line.get_color(),
                      label=f"slope {a:g} (reference)")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3, which="both")
    ax.legend()
    return slopes


def _runs(runs, n: int, name: str) -> np.ndarray:
    """``runs`` as a float array of shape (seeds, n), checked."""
    r = np.asarray(torch.as_tensor(runs).detach().cpu() if isinstance(runs, torch.Tensor)
                   else runs, dtype=float)
    if r.ndim != 2 or r.shape[1] != n or r.shape[0] < 1:
        raise ValueError(f"{name} must be an array of shape (seeds, {n}): one row per seed, "
                         f"one value per x; got shape {r.shape}")
    return r


def plot_band(
    x: Sequence[float] | torch.Tensor,
    runs: Sequence[Sequence[float]] | np.ndarray | torch.Tensor,
    *,
    ax: plt.Axes | None = None,
    label: str | None = None,
    color: str | None = None,
    **line_kwargs,
) -> plt.Line2D:
    """The mean of several seeds' curves as a line, their minimum to maximum as a band.

    Every curve a chapter draws from a random experiment (a training run, a draw of the
    weights or of the noise) is drawn this way, so a reader sees how much of it is chance.

    Parameters
    ----------
    x : sequence of float
        Shared horizontal values.
    runs : array of shape (seeds, len(x))
        One curve per seed.
    ax : matplotlib Axes, optional
        Where to draw.
    label : str, optional
        The line's label; ``"(n seeds)"`` is not added, say it in the title or caption.
    color : str, optional
        Colour of line and band.
    **line_kwargs
        Passed to ``ax.plot`` for the mean line (``marker="o"``, ``ls="--"``, ...).

    Returns
    -------
    matplotlib Line2D
        The mean line (its colour is the band's).

    Examples
    --------
    >>> line = plot_band([1, 2, 3], [[1.0, 2.0, 3.0], [1.2, 2.4, 2.8], [0.8, 2.2, 3.1]],
    ...                  label="three seeds")
    >>> [round(float(v), 2) for v in line.get_ydata()]
    [1.0, 2.2, 2.97]
    >>> plt.close("all")
    """
    xs = np.asarray(torch.as_tensor(x).cpu() if isinstance(x, torch.Tensor) else x,
                    dtype=float)
    if xs.ndim != 1 or xs.size == 0:
        raise ValueError(f"x must be a non-empty 1-D sequence, got shape {xs.shape}")
    r = _runs(runs, xs.size, "runs")
    if ax is None:
        _, ax = plt.subplots(figsize=(MAX_WIDTH_IN, 3.4))
    (line,) = ax.plot(xs, r.mean(axis=0), label=label, color=color, **line_kwargs)
    if r.shape[0] > 1:
        ax.fill_between(xs, r.min(axis=0), r.max(axis=0), color=line.get_color(),
                        alpha=0.25, lw=0)
    return line


def loglog_slopes(
    x: Sequence[float], runs: Sequence[Sequence[float]] | np.ndarray,
) -> np.ndarray:
    """The log-log slope of each seed's series: one :func:`fit_loglog_slope` per row.

    Their spread (minimum to maximum, or standard deviation over seeds) is the
    uncertainty of a fitted exponent.

    Examples
    --------
    >>> loglog_slopes([1, 10, 100], [[1.0, 0.1, 0.01], [1.0, 0.01, 0.0001]]).round(6).tolist()
    [-1.0, -2.0]
    """
    xs = np.asarray(x, dtype=float)
    r = _runs(runs, xs.size, "runs")
    return np.array([fit_loglog_slope(xs, row) for row in r])


def label_line_ends(
    ax: plt.Axes, names: Mapping[str, str] | None = None, *, gap: float = 0.12,
) -> None:
    """Name each labelled line right of the axes, at the height where it ends, in its colour.

    Replaces a legend that would hide the curves in a narrow figure: a thin leader joins
    each name to its line's last point, and names closer than ``gap`` (axes fraction) are
    pushed apart.  Draw the figure with constrained layout so the names get room.

    Parameters
    ----------
    ax : matplotlib Axes
        Lines whose label starts with ``_`` (matplotlib's "no label") are skipped.
    names : mapping str -> str, optional
        The text for a line's label (for example its name and fitted slope); the label
        itself otherwise.
    gap : float
        Least vertical distance between two names, in axes fraction.

    Examples
    --------
    >>> fig, ax = plt.subplots(layout="constrained")
    >>> _ = ax.plot([1, 2], [1, 2], label="rising")
    >>> _ = ax.plot([1, 2], [2, 1], label="falling")
    >>> label_line_ends(ax, {"rising": "rising (slope 1)"})
    >>> sorted(t.get_text() for t in ax.texts)
    ['falling', 'rising (slope 1)']
    >>> plt.close(fig)
    """
    names = dict(names or {})
    lines = [ln for ln in ax.get_lines() if not str(ln.get_label()).startswith("_")]
    if not lines:
        raise ValueError("ax has no labelled line to name (give each line a label=)")
    unknown = set(names) - {ln.get_label() for ln in lines}
    if unknown:
        raise ValueError(f"names has labels of no line in ax: {sorted(unknown)}")
    if ax.get_legend() is not None:
        ax.get_legend().remove()
    to_axes = ax.transData + ax.transAxes.inverted()
    ends = []
    for ln in lines:
        xs, ys = (np.asarray(v, dtype=float) for v in ln.get_data())
        ok = np.isfinite(xs) & np.isfinite(ys)
        if not ok.any():
            continue
        xe, ye = xs[ok][-1], ys[ok][-1]
        ends.append([float(to_axes.transform((xe, ye))[1]), xe, ye, ln])
    ends.sort(key=lambda e: e[0])
    for k in range(1, len(ends)):
        ends[k][0] = max(ends[k][0], ends[k - 1][0] + gap)
    shift = max(ends[-1][0] - 1, 0)
    for f, xe, ye, ln in ends:
        colour = ln.get_color()
        ax.annotate(names.get(ln.get_label(), ln.get_label()), xy=(xe, ye),
                    xytext=(1.04, f - shift), textcoords="axes fraction", va="center",
                    color=colour, annotation_clip=False,
                    arrowprops=dict(arrowstyle="-", color=colour, lw=0.8, shrinkB=3))
