"""The poster's grid as text and as a figure, our numbers beside the poster's.

:func:`format_table` (a markdown table, "ours (poster)" in dB), :func:`format_settings`
(every setting of the run as a markdown list) and :func:`plot_grid` (the ten estimates).
"""
from __future__ import annotations

import matplotlib.pyplot as plt
from matplotlib.figure import Figure

from .._checks import check_positive
from ..plotting import MAX_WIDTH_IN, label_line_ends, panels, plot_band, to_numpy_image
from .readings import poster_readings
from .run import GridResult, _check_result, _check_results, _check_rule
from .settings import INPUTS, METHODS, POSTER_PSNR, GridSettings
from .store import StoredGrid

__all__ = ["format_readings", "format_settings", "format_table", "plot_curves", "plot_grid"]

def format_table(result: GridResult | list[GridResult] | StoredGrid, *,
                 rule: str = "oracle") -> str:
    """The grid as a markdown table, each of our PSNRs beside the poster's.

    Parameters
    ----------
    result : GridResult, list of GridResult or StoredGrid
        From :func:`reproduce_grid`, or a stored run (:func:`load_runs`); several runs
        (seeds) give each cell's mean and, in brackets, its minimum and maximum over
        the runs.
    rule : {"oracle", "discrepancy"}
        Which stopping rule's PSNRs to show.

    Returns
    -------
    str
        A markdown table (rows: network input; columns: methods; cells "ours [poster]"
        in dB) followed by one line stating the image, size, noise level, seeds and rule.

    Examples
    --------
    >>> from ntkutils.reproduce import reproduce_grid
    >>> r = reproduce_grid("test", progress=False)
    >>> print(format_table(r).splitlines()[0])
    | network input | GD + autoencoder | GD + vanilla CNN | NTK + Nyström | Adam + autoencoder | Adam + vanilla CNN |
    """
    settings, seeds, tables, noisy_psnrs = _tables(result, _check_rule(rule))
    lines = ["| network input | " + " | ".join(METHODS) + " |",
             "|---" * (len(METHODS) + 1) + "|"]
    for name in INPUTS:
        cells = [f"{_spread([t[name][m] for t in tables])} [{POSTER_PSNR[name][m]:.1f}]"
                 for m in METHODS]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    s = settings
    stop = ("best step by PSNR against the clean image (ORACLE)" if rule == "oracle"
            else "discrepancy principle ||z - y||^2 <= C n sigma^2 (no clean image)")
    noisy = _spread(noisy_psnrs)
    listed = ", ".join(str(k) for k in seeds)
    over = (f"mean (min to max) over seeds {listed}" if len(seeds) > 1
            else f"seed {listed}")
    lines += ["", f"PSNR in dB: ours [poster's, 'house' image]. Ours: {s.image} "
              f"{s.size}x{s.size} {'gray' if s.gray else 'colour'}, sigma = "
              f"{s.sigma * 255:.0f}/255, noisy {noisy} dB, {over}; stopping: {stop}."]
    return "\n".join(lines)


def _per_seed(result, keys: tuple[str, ...]) -> tuple[GridSettings, list[int], list[float],
                                                      dict]:
    """Settings, seeds, noisy PSNRs and ``cells[input][method][key]`` (a list over the
    seeds) of runs or of a stored run: what the tables and the curves read."""
    if isinstance(result, StoredGrid):
        cells = {i: {m: {k: result.cells[i][m][k] for k in keys} for m in METHODS}
                 for i in INPUTS}
        return result.settings, list(result.seeds), list(result.noisy_psnr), cells
    runs = _check_results(result)
    cells = {i: {m: {k: [getattr(r.cells[i][m], k) for r in runs] for k in keys}
                 for m in METHODS} for i in INPUTS}
    return (runs[0].settings, [r.settings.seed for r in runs],
            [r.noisy_psnr for r in runs], cells)


def _tables(result, rule: str) -> tuple[GridSettings, list[int], list[dict], list[float]]:
    """Settings, seeds, one PSNR table per seed (``rule``'s) and noisy PSNRs."""
    key = "psnr" if rule == "oracle" else "psnr_discrepancy"
    settings, seeds, noisy, cells = _per_seed(result, (key,))
    tables = [{i: {m: cells[i][m][key][k] for m in METHODS} for i in INPUTS}
              for k in range(len(seeds))]
    return settings, seeds, tables, noisy


def _spread(values: list[float]) -> str:
    """``"m"`` for one value, ``"m (lo to hi)"`` for several (one decimal, dB)."""
    mean = sum(values) / len(values)
    if len(values) == 1:
        return f"{mean:.1f}"
    return f"{mean:.1f} ({min(values):.1f} to {max(values):.1f})"


def format_readings(result: GridResult | list[GridResult] | StoredGrid, *,
                    rule: str = "oracle") -> str:
    """The poster's readings R1-R6 on the poster's table and on each run, as markdown.

    Parameters
    ----------
    result : GridResult, list of GridResult or StoredGrid
        One run or several (seeds), or a stored run (:func:`load_runs`).
    rule : {"oracle", "discrepancy"}
        Which stopping rule's tables.

    Returns
    -------
    str
        One row per reading: its statement, whether the poster's numbers show it, and
        for each run "yes" or "no" with the margin in dB (the smallest of its
        comparisons; negative when it fails).

    Examples
    --------
    >>> from ntkutils.reproduce import reproduce_grid
    >>> r = reproduce_grid("test", progress=False)
    >>> print(format_readings(r).splitlines()[0])
    | reading | poster | seed 0 |
    """
    _, seeds, tables, noisy_psnrs = _tables(result, _check_rule(rule))
    poster = poster_readings(POSTER_PSNR)
    per_run = [poster_readings(t, noisy_psnr=noisy) for t, noisy in zip(tables, noisy_psnrs)]
    lines = ["| reading | poster | " + " | ".join(f"seed {k}" for k in seeds)
             + " |", "|---" * (len(seeds) + 2) + "|"]
    for k, reading in enumerate(poster):
        shown = "n/a" if reading.margin != reading.margin else (
            "yes" if reading.holds else "no")
        cells = [f"{'yes' if rr[k].holds else '**no**'} ({rr[k].margin:+.1f})"
                 for rr in per_run]
        lines.append(f"| {reading.code}: {reading.statement} | {shown} | "
                     + " | ".join(cells) + " |")
    return "\n".join(lines)


def format_settings(result: GridResult) -> str:
    """The settings of a grid run as a markdown list (all of them the course's choices).

    Parameters
    ----------
    result : GridResult
        From :func:`reproduce_grid`.

    Returns
    -------
    str
        One markdown bullet per setting: image, noise, the two networks with their
        numbers of weights, the network inputs, the two optimisers, the kernel, the
        stopping rules, the seed and the device.

    Examples
    --------
    >>> from ntkutils.reproduce import reproduce_grid
    >>> r = reproduce_grid("test", progress=False)
    >>> print(format_settings(r).splitlines()[0])
    - image: astronaut, the centre 64x64 of the 256x256 picture resized to 32x32, colour (C = 3)
    """
    r = _check_result(result)
    s = r.settings
    C, H, W = r.x.shape
    cells = r.cells
    where = ("the whole 256x256 picture" if s.crop is None
             else f"the centre {s.crop}x{s.crop} of the 256x256 picture")
    p_van = cells["noisy image"]["GD + vanilla CNN"].n_parameters
    p_ae = cells["noisy image"]["GD + autoencoder"].n_parameters
    p_ae_noise = cells["iid noise"]["GD + autoencoder"].n_parameters
    lines = [
        f"image: {s.image}, {where} resized to {H}x{W}, "
        f"{'gray (C = 1)' if C == 1 else 'colour (C = 3)'}",
        f"noise: Gaussian, sigma = {s.sigma * 255:.0f}/255 on the [0, 1] scale, not "
        f"clipped; noisy PSNR {r.noisy_psnr:.1f} dB",
        f"vanilla CNN: {s.vanilla_depth} hidden layer(s) of {s.patch_size}x{s.patch_size} "
        f"convolutions with {s.vanilla_channels} channels, ReLU, 1x1 read-out; NTK "
        f"parameterisation, no bias; {p_van} weights",
        f"autoencoder: {s.ae_levels} scales of {s.ae_channels} channels, skips of "
        f"{s.ae_skip_channels} channels, batch norm, LeakyReLU, PyTorch-default "
        f"initialisation; {p_ae} weights ({p_ae_noise} with the iid-noise input)",
        f"iid-noise input: uniform on [0, {s.noise_scale:g}], {s.noise_channels} channels "
        f"for the autoencoder, the first {C} of them for the vanilla CNN and the kernel",
        f"gradient descent: step 1/lambda_max of the tangent kernel at initialisation, "
        f"fixed input, the centred network f(u; w) - f(u; w0) (output 0 at the start); "
        f"the table's curve is the network linearised at initialisation (its empirical "
        f"tangent kernel {_gd_kernel_text(s)}) "
        f"at t = 0 and 150 log-spaced steps up to {s.ntk_max_step:,}; real gradient "
        f"descent for the first {s.gd_steps} steps is run beside it",
        f"Adam: {_adam_steps_text(s)}, learning rate {s.adam_lr:g}, input perturbed by "
        f"fresh Gaussian noise of std {s.adam_input_noise:.3g} at every step (the deep "
        f"image prior's recipe); trains the network as built; the table reports its "
        f"output, and the running average of its outputs (weight {s.adam_average:g}) "
        f"is kept beside it",
        f"NTK + Nyström: closed-form kernel of the vanilla CNN (depth {s.vanilla_depth}, "
        f"infinite width) at the network input, {s.n_landmarks} landmark pixels, "
        f"gradient descent in closed form with step 1/lambda_max at t = 0 and 150 "
        f"log-spaced steps up to {s.ntk_max_step:,}",
        f"stopping: the best recorded step (every {s.record_every} steps) by PSNR against "
        f"the clean image, an ORACLE; the discrepancy principle "
        f"(first t with ||z^t - y||^2 <= C n sigma^2) reported beside it",
        f"seed {s.seed}; device {r.device}",
    ]
    return "\n".join(f"- {line}" for line in lines)


def plot_grid(result: GridResult, *, rule: str = "oracle", size: float = 2.2) -> Figure:
    """The ten estimates of the grid, sized for the book's column (two panels a row).

    Parameters
    ----------
    result : GridResult
        From :func:`reproduce_grid`.
    rule : {"oracle", "discrepancy"}
        Which stopping rule's PSNRs to print (the images are the oracle estimates).
    size : float
        Inches per panel (at most ``MAX_WIDTH_IN / 2``).

    Returns
    -------
    matplotlib.figure.Figure
        Two columns (network input: noisy image, iid noise) of six rows: the clean and
        the noisy image, then the five methods, each titled with its PSNR and the
        poster's.

    Examples
    --------
    >>> import matplotlib.pyplot as plt
    >>> from ntkutils.reproduce import reproduce_grid
    >>> fig = plot_grid(reproduce_grid("test", progress=False))
    >>> len(fig.axes)
    12
    >>> plt.close(fig)
    """
    r = _check_result(result)
    rule = _check_rule(rule)
    size = min(check_positive(size, "size"), MAX_WIDTH_IN / 2)
    table = r.table(rule)
    fig = plt.figure(figsize=(2 * size, (len(METHODS) + 1) * (size + 0.45) + 0.8),
                     layout="constrained")
    refs = [(r.x, "clean x"), (r.y, f"noisy y: {r.noisy_psnr:.1f} dB")]
    for col, (sub, name) in enumerate(zip(fig.subfigures(1, len(INPUTS)), INPUTS)):
        sub.suptitle(f"input: {name}")
        axes = sub.subplots(len(METHODS) + 1, 1)
        axes[0].imshow(to_numpy_image(refs[col][0]), cmap="gray", vmin=0, vmax=1)
        axes[0].set_title(refs[col][1])
        for ax, method in zip(axes[1:], METHODS):
            ax.imshow(to_numpy_image(r.cells[name][method].x_hat), cmap="gray",
                      vmin=0, vmax=1)
            ax.set_title(f"{method}\n{table[name][method]:.1f} dB "
                         f"(poster {POSTER_PSNR[name][method]:.1f})")
        for ax in axes:
            ax.set_xticks([])
            ax.set_yticks([])
    stop = "oracle stop" if rule == "oracle" else "discrepancy stop"
    fig.suptitle(f"Ours (poster's): {r.settings.image} {r.x.shape[-1]}x{r.x.shape[-2]}, "
                 f"sigma {r.settings.sigma * 255:.0f}/255, {stop}")
    return fig


#: The colours of the trained cells in :func:`plot_curves`.
CURVE_COLOURS = {"GD + autoencoder": "C0", "GD + vanilla CNN": "C1",
                 "Adam + autoencoder": "C2", "Adam + vanilla CNN": "C3"}


def plot_curves(result: GridResult | list[GridResult] | StoredGrid) -> Figure:
    """PSNR against the step of every trained cell, one panel per network input.

    Parameters
    ----------
    result : GridResult, list of GridResult or StoredGrid
        One run, several (seeds), or a stored run (:func:`load_runs`).

    Returns
    -------
    matplotlib.figure.Figure
        Two panels (network input: noisy image, iid noise), a log step axis (step 0
        drawn at 1): gradient descent linearised at initialisation and Adam, solid, the
        mean over the seeds with a min-max band; real gradient descent over its first
        steps dashed (runs that diverged left out); the closed-form kernel's oracle PSNR
        (black, dotted) and the noisy image's (grey, dashed), means over the seeds.

    Examples
    --------
    >>> import matplotlib.pyplot as plt
    >>> from ntkutils.reproduce import reproduce_grid
    >>> fig = plot_curves(reproduce_grid("test", progress=False))
    >>> len(fig.axes)
    2
    >>> plt.close(fig)
    """
    _, _, noisy, cells = _per_seed(
        result, ("steps", "psnr_curve", "steps_real", "psnr_curve_real", "psnr"))
    fig, axes = panels(2, ncols=1, aspect=0.6, sharex=True, sharey=True)
    for ax, name in zip(axes, INPUTS):
        for method, colour in CURVE_COLOURS.items():
            c = cells[name][method]
            t = [max(float(v), 1.0) for v in c["steps"][0]]  # step 0 drawn at 1 (log axis)
            plot_band(t, [list(map(float, v)) for v in c["psnr_curve"]], ax=ax,
                      color=colour, label=method)
            real = [(ts, ps) for ts, ps in zip(c["steps_real"], c["psnr_curve_real"])
                    if ts is not None]
            if real:
                plot_band([max(float(v), 1.0) for v in real[0][0]],
                          [list(map(float, ps)) for _, ps in real], ax=ax, color=colour,
                          ls="--")
        ntk = cells[name]["NTK + Nyström"]["psnr"]
        ax.axhline(sum(ntk) / len(ntk), color="k", ls=":", lw=1)
        ax.axhline(sum(noisy) / len(noisy), color="gray", ls="--", lw=1)
        ax.set(xscale="log", title=f"input: {name}", ylabel="PSNR (dB)", ylim=(5, None))
        label_line_ends(ax, {m: m.replace(" + ", "\n") for m in CURVE_COLOURS})
    axes[-1].set_xlabel("step t (log scale; step 0 at 1)")
    return fig


def _gd_kernel_text(s: GridSettings) -> str:
    """How the gradient-descent cells' tangent kernel is used: Nyström or Lanczos."""
    if s.gd_lanczos is None:
        return f"from {s.n_landmarks} landmark pixels in every channel, Nyström"
    return f"by {s.gd_lanczos} Lanczos steps on y, never formed"


def _adam_steps_text(s: GridSettings) -> str:
    """Adam's steps, per input where they differ: "1500 steps (3000 from iid noise)"."""
    image, noise = (s.adam_steps_for(i) for i in INPUTS)
    return f"{image} steps" + ("" if noise == image else f" ({noise} from iid noise)")
