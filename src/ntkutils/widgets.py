"""Interactive explorers: a slider over a precomputed sequence redraws a figure.

Widgets follow a static figure that shows the same thing, because the online book cannot
run their callbacks.  Everything a slider shows is computed before the widget is built, so
moving it only redraws.  ``ipywidgets`` is imported lazily.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import matplotlib.pyplot as plt

__all__ = ["explore"]


def _ipywidgets():
    try:
        import ipywidgets
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ImportError(
            "the explorers need ipywidgets: pip install ipywidgets "
            "(or pip install 'ntkutils[widgets]')"
        ) from err
    return ipywidgets


def explore(
    render: Callable[[Any], Any],
    values: Sequence[Any],
    *,
    description: str = "t",
    start: Any | None = None,
) -> Any:
    """A slider over ``values`` that calls ``render(value)`` to redraw a figure.

    Parameters
    ----------
    render : callable
        Draws the figure for one value (it may create a figure with ``plt.subplots``;
        it is shown and closed after each call).
    values : sequence
        The values the slider steps through, in order (e.g. iterations, widths).
    description : str
        The slider's label.
    start : optional
        The initial value (the first one by default).

    Returns
    -------
    ipywidgets.Widget
        A ``VBox`` with the slider and the figure output.

    Examples
    --------
    >>> import contextlib, io
    >>> with contextlib.redirect_stdout(io.StringIO()):  # outside a notebook
    ...     w = explore(lambda t: plt.plot([0, t]), [1, 2, 3], description="t")
    >>> type(w).__name__
    'VBox'
    """
    if not callable(render):
        raise TypeError(f"render must be callable, got {type(render).__name__}")
    widgets = _ipywidgets()
    values = list(values)
    if not values:
        raise ValueError("values must not be empty")
    if start is not None and start not in values:
        raise ValueError(f"start must be one of values ({values[0]!r} ... {values[-1]!r}), "
                         f"got {start!r}")
    slider = widgets.SelectionSlider(
        options=values, value=values[0] if start is None else start,
        description=description, continuous_update=False,
        layout=widgets.Layout(width="60%"),
    )
    out = widgets.Output()

    def redraw(change: Any = None) -> None:
        with out:
            out.clear_output(wait=True)
            render(slider.value)
            plt.show()
            plt.close("all")

    slider.observe(redraw, names="value")
    redraw()
    return widgets.VBox([slider, out])
