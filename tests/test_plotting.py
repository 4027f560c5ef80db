"""The plotting style: figures sized so their smallest text reads in the book's column."""
import matplotlib as mpl
import matplotlib.pyplot as plt
import pytest
import torch

from ntkutils import plotting
from ntkutils.plotting import (
    DPI, MAX_WIDTH_IN, MIN_FONT_PT, MIN_READABLE_PX, PHONE_COLUMN_PX, panels, show_images,
    smallest_text_px,
    use_book_style,
)


def smallest_rendered_px(width_px: float, column_px: float) -> float:
    """The smallest text of a figure ``width_px`` wide, shown in a ``column_px`` column."""
    return smallest_text_px(min(width_px, column_px), width_px)


def test_the_widest_figure_reads_on_a_phone():
    assert smallest_rendered_px(MAX_WIDTH_IN * DPI, PHONE_COLUMN_PX) >= MIN_READABLE_PX
    # and the rule is not vacuous: a figure 1.3 times wider would not
    assert smallest_rendered_px(1.3 * MAX_WIDTH_IN * DPI, PHONE_COLUMN_PX) < MIN_READABLE_PX


def test_book_style_has_no_text_below_the_minimum():
    use_book_style()
    for key in ("font.size", "axes.titlesize", "axes.labelsize", "xtick.labelsize",
                "ytick.labelsize", "legend.fontsize", "legend.title_fontsize",
                "figure.titlesize"):
        size = mpl.font_manager.FontProperties(size=mpl.rcParams[key]).get_size_in_points()
        assert size >= MIN_FONT_PT, key
    assert mpl.rcParams["figure.dpi"] == DPI
    assert mpl.rcParams["figure.figsize"][0] <= MAX_WIDTH_IN


@pytest.mark.parametrize("n, ncols, shape", [(1, 2, (1, 1)), (3, 2, (2, 2)), (5, 3, (2, 3))])
def test_panels_lays_out_rows_within_the_column(n, ncols, shape):
    fig, axes = panels(n, ncols=ncols)
    assert len(axes) == n == len(fig.axes)  # unused cells removed
    width, height = fig.get_size_inches()
    assert width == MAX_WIDTH_IN
    assert height == pytest.approx(MAX_WIDTH_IN / shape[1] * 0.75 * shape[0])
    plt.close(fig)


@pytest.mark.parametrize("kwargs, message", [
    ({"ncols": 4}, "ncols must be at most 3"),
    ({"width": 8.0}, "width must be at most MAX_WIDTH_IN"),
    ({"ncols": 0}, "ncols"),
])
def test_panels_refuses_layouts_that_do_not_fit(kwargs, message):
    with pytest.raises(ValueError, match=message):
        panels(2, **kwargs)


def test_show_images_fits_the_column_whatever_the_panel_size():
    fig = show_images([torch.zeros(1, 4, 4)] * 5, size=3.0)
    assert fig.get_size_inches()[0] <= MAX_WIDTH_IN + 1e-9
    assert len([ax for ax in fig.axes if ax.images]) == 5
    plt.close(fig)


def test_loglog_legend_is_not_smaller_than_the_minimum():
    use_book_style()
    _, ax = plt.subplots()
    plotting.plot_loglog([1, 2, 4], {"a": [1.0, 0.5, 0.25]}, ax=ax)
    assert all(t.get_fontsize() >= MIN_FONT_PT for t in ax.get_legend().get_texts())
    plt.close("all")


def test_smallest_text_px():
    assert smallest_text_px(550, 550) == pytest.approx(13.89, abs=0.01)
    assert smallest_text_px(343, 1000) < 9  # a figure twice too wide, on a phone


def test_band_is_mean_line_and_min_max_band():
    import numpy as np
    runs = np.array([[1.0, 4.0], [3.0, 2.0], [2.0, 3.0]])
    fig, ax = plt.subplots()
    line = plotting.plot_band([0, 1], runs, ax=ax, label="seeds")
    assert line.get_ydata().tolist() == [2.0, 3.0]
    (band,) = ax.collections
    ys = band.get_paths()[0].vertices[:, 1]
    assert ys.min() == 1.0 and ys.max() == 4.0
    plt.close(fig)


@pytest.mark.parametrize("runs", [[1.0, 2.0], [[1.0, 2.0, 3.0]], [[[1.0, 2.0]]]])
def test_band_names_the_shape_it_wants(runs):
    with pytest.raises(ValueError, match=r"runs must be an array of shape \(seeds, 2\)"):
        plotting.plot_band([0, 1], runs)
    plt.close("all")


def test_slopes_per_seed_and_their_bad_input():
    slopes = plotting.loglog_slopes([1, 2, 4], [[1, 2, 4], [1, 4, 16], [4, 2, 1]])
    assert slopes.round(12).tolist() == [1.0, 2.0, -1.0]
    with pytest.raises(ValueError, match="positive"):
        plotting.loglog_slopes([1, 2], [[1, -1]])


def test_line_ends_are_named_apart_and_in_colour():
    fig, ax = plt.subplots(layout="constrained")
    a, = ax.plot([1, 2], [1.0, 1.0], label="a")
    b, = ax.plot([1, 2], [1.0, 1.001], label="b")
    ax.plot([1, 2], [0, 0])  # unlabelled: not named
    ax.legend()
    plotting.label_line_ends(ax, {"b": "b (slope 0)"}, gap=0.2)
    assert ax.get_legend() is None
    texts = {t.get_text(): t for t in ax.texts}
    assert set(texts) == {"a", "b (slope 0)"}
    assert texts["a"].get_color() == a.get_color()
    ya, yb = texts["a"].xyann[1], texts["b (slope 0)"].xyann[1]
    assert abs(ya - yb) >= 0.2 - 1e-12
    with pytest.raises(ValueError, match="labels of no line"):
        plotting.label_line_ends(ax, {"c": "c"})
    plt.close(fig)
    fig, ax = plt.subplots()
    with pytest.raises(ValueError, match="no labelled line"):
        plotting.label_line_ends(ax)
    plt.close(fig)
