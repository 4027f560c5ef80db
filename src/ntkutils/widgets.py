"""Explorers: a slider over a precomputed sequence that redraws a figure, live or on the page.

:func:`explore` returns an :class:`Explorer`, which displays as two things at once:

- in a live kernel (Jupyter, Colab) an ``ipywidgets`` slider whose callback redraws the
  figure for any of the values;
- in the rendered book, where no kernel runs callbacks, a self-contained player: the
  figure drawn at execution time for up to ``max_frames`` of the values, and a range
  input whose inline handler swaps the images (no widget manager, no network).

The book shows the player (``_config.yml`` drops the widget view from the HTML output),
Jupyter and Colab show the widget.  Everything a slider shows is computed before the
explorer is built, so moving it only redraws.  ``ipywidgets`` is imported lazily.
"""
from __future__ import annotations

import base64
import html
import io
import json
from collections.abc import Callable, Sequence
from typing import Any

import matplotlib.pyplot as plt
import numpy as np

from ._checks import check_positive
from .plotting import DPI

__all__ = ["Explorer", "explore"]


def _ipywidgets():
    try:
        import ipywidgets
    except ImportError:  # pragma: no cover - depends on the environment
        return None
    return ipywidgets


def _frame_indices(n: int, start: int, max_frames: int) -> list[int]:
    """At most ``max_frames`` indices of ``n`` values, evenly spread, ends and start kept.

    >>> _frame_indices(5, 0, 12), _frame_indices(51, 25, 6)
    ([0, 1, 2, 3, 4], [0, 10, 20, 25, 30, 40, 50])
    """
    if n <= max_frames:
        return list(range(n))
    spread = np.round(np.linspace(0, n - 1, max_frames)).astype(int).tolist()
    return sorted(set(spread) | {start})


def _draw(render: Callable[[Any], Any], value: Any) -> str:
    """``render(value)`` as a PNG data URI (the current figure, closed afterwards)."""
    plt.close("all")
    render(value)
    buffer = io.BytesIO()
    plt.gcf().savefig(buffer, format="png", dpi=DPI, bbox_inches="tight")
    plt.close("all")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _attr(value: Any) -> str:
    """``value`` as JSON, escaped for a double-quoted HTML attribute."""
    return html.escape(json.dumps(value), quote=True)


class Explorer:
    """A slider over precomputed frames (from :func:`explore`); see the module docstring.

    Attributes
    ----------
    values : list
        Every value the live slider offers.
    frames : list of (value, str)
        The values the static player offers, each with its figure as a PNG data URI.
    start : value
        The value shown first.
    description : str
        The slider's label.
    """

    def __init__(self, render: Callable[[Any], Any], values: list, start: Any,
                 description: str, max_frames: int) -> None:
        self._render = render
        self.values, self.start, self.description = values, start, description
        picks = _frame_indices(len(values), values.index(start), max_frames)
        self.frames = [(values[i], _draw(render, values[i])) for i in picks]
        self._widget = None

    def __repr__(self) -> str:
        return (f"Explorer({self.description}: {len(self.values)} values, "
                f"{len(self.frames)} frames on the page)")

    def player_html(self) -> str:
        """The static player: the start frame and a range input that swaps frames."""
        labels = [str(v) for v, _ in self.frames]
        uris = [uri for _, uri in self.frames]
        k = labels.index(str(self.start))
        swap = ("var d=this.closest('.ntk-explorer');"
                "d.querySelector('img').src=JSON.parse(this.dataset.frames)[this.value];"
                "d.querySelector('output').textContent="
                "JSON.parse(this.dataset.labels)[this.value];")
        label = html.escape(self.description)
        return (
            f'<div class="ntk-explorer">'
            f'<label>{label} <input type="range" min="0" max="{len(uris) - 1}" step="1" '
            f'value="{k}" aria-label="{label}" style="width:60%;vertical-align:middle" '
            f'data-labels="{_attr(labels)}" data-frames="{_attr(uris)}" '
            f'oninput="{html.escape(swap, quote=True)}"></label> '
            f'<output>{html.escape(labels[k])}</output><br>'
            f'<img src="{uris[k]}" alt="{label} = {html.escape(labels[k])}" '
            f'style="max-width:100%">'
            f'<p class="ntk-explorer-note"><small>{len(uris)} of the {len(self.values)} '
            f'values, drawn when the notebook ran; run the notebook for the live slider '
            f'over all of them.</small></p></div>'
        )

    def widget(self) -> Any:
        """The live ``ipywidgets`` version (a ``VBox``), or None without ipywidgets."""
        widgets = _ipywidgets()
        if widgets is None or self._widget is not None:
            return self._widget
        slider = widgets.SelectionSlider(
            options=self.values, value=self.start, description=self.description,
            continuous_update=False, layout=widgets.Layout(width="60%"),
        )
        out = widgets.Output()

        def redraw(change: Any = None) -> None:
            with out:
                out.clear_output(wait=True)
                self._render(slider.value)
                plt.show()
                plt.close("all")

        slider.observe(redraw, names="value")
        redraw()
        self._widget = widgets.VBox([slider, out])
        return self._widget

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict:
        bundle = {"text/plain": repr(self), "text/html": self.player_html()}
        live = self.widget()
        if live is not None:
            view = live._repr_mimebundle_()
            key = "application/vnd.jupyter.widget-view+json"
            if view and key in view:
                bundle[key] = view[key]
        return bundle


def explore(
    render: Callable[[Any], Any],
    values: Sequence[Any],
    *,
    description: str = "t",
    start: Any | None = None,
    max_frames: int = 12,
) -> Explorer:
    """A slider over ``values`` that calls ``render(value)`` to redraw a figure.

    Parameters
    ----------
    render : callable
        Draws the figure for one value (it may create a figure with ``plt.subplots``;
        it is saved or shown, then closed, after each call).
    values : sequence
        The values the slider steps through, in order (e.g. iterations, widths).
    description : str
        The slider's label.
    start : optional
        The initial value (the first one by default).
    max_frames : int
        How many values (evenly spread, the first, last and ``start`` among them) the
        static player of the rendered book offers; each is one PNG in the page.

    Returns
    -------
    Explorer
        Displays as a live slider in Jupyter and Colab, and as a static player in the
        rendered book.

    Examples
    --------
    >>> import contextlib, io
    >>> with contextlib.redirect_stdout(io.StringIO()):  # outside a notebook
    ...     e = explore(lambda t: plt.plot([0, t]), [1, 2, 3], description="t")
    >>> e
    Explorer(t: 3 values, 3 frames on the page)
    >>> e.player_html().count("data:image/png;base64,")
    4
    """
    if not callable(render):
        raise TypeError(f"render must be callable, got {type(render).__name__}")
    values = list(values)
    if not values:
        raise ValueError("values must not be empty")
    if start is None:
        start = values[0]
    elif start not in values:
        raise ValueError(f"start must be one of values ({values[0]!r} ... {values[-1]!r}), "
                         f"got {start!r}")
    max_frames = check_positive(max_frames, "max_frames", integer=True)
    if max_frames < 2:
        raise ValueError(f"max_frames must be at least 2 (a player needs two frames), got "
                         f"{max_frames}")
    return Explorer(render, values, start, description, max_frames)
