"""The poster's grid as text and as a figure, our numbers beside the poster's.

:func:`format_table` (a markdown table, "ours (poster)" in dB), :func:`format_settings`
(every setting of the run as a markdown list) and :func:`plot_grid` (the ten estimates).
"""
from __future__ import annotations

import matplotlib.pyplot as plt
from matplotlib.figure import Figure

from .._checks import check_positive
from ..plotting import MAX_WIDTH_IN, to_numpy_image
from .run import GridResult
from .settings import INPUTS, METHODS, POSTER_PSNR

__all__ = ["format_settings", "format_table", "plot_grid"]

_RULES = ("oracle", "discrepancy")


def _check_result(result: object) -> GridResult:
    if not isinstance(result, GridResult):
        raise TypeError(f"result must be a GridResult (from reproduce_grid), got "
                        f"{type(result).__name__}")
    return result


def _check_rule(rule: object) -> str:
    if rule not in _RULES:
        raise ValueError(f"rule must be 'oracle' or 'discrepancy', got {rule!r}")
    return rule  # type: ignore[return-value]


def format_table(result: GridResult, *, rule: str = "oracle") -> str:
    """The grid as a markdown table, each of our PSNRs beside the poster's.

    Parameters
    ----------
    result : GridResult
        From :func:`reproduce_grid`.
    rule : {"oracle", "discrepancy"}
        Which stopping rule's PSNRs to show.

    Returns
    -------
    str
        A markdown table (rows: network input; columns: methods; cells "ours (poster)"
        in dB) followed by one line stating the image, size, noise level and rule.

    Examples
    --------
    >>> from ntkutils.reproduce import reproduce_grid
    >>> r = reproduce_grid("test", progress=False)
    >>> print(format_table(r).splitlines()[0])
    | network input | GD + autoencoder | GD + vanilla CNN | NTK + Nyström | Adam + autoencoder | Adam + vanilla CNN |
    """
    r = _check_result(result)
    rule = _check_rule(rule)
    table = r.psnr if rule == "oracle" else r.psnr_discrepancy
    lines = ["| network input | " + " | ".join(METHODS) + " |",
             "|---" * (len(METHODS) + 1) + "|"]
    for name in INPUTS:
        cells = [f"{table[name][m]:.1f} ({POSTER_PSNR[name][m]:.1f})" for m in METHODS]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    s = r.settings
    C, H, W = r.x.shape
    stop = ("best step by PSNR against the clean image (ORACLE)" if rule == "oracle"
            else "discrepancy principle ||z - y||^2 <= C n sigma^2 (no clean image)")
    lines += ["", f"PSNR in dB: ours (poster's, 'house' image). Ours: {s.image} "
              f"{H}x{W} {'gray' if C == 1 else 'colour'}, sigma = "
              f"{s.sigma * 255:.0f}/255, noisy {r.noisy_psnr:.1f} dB; stopping: {stop}."]
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
        f"gradient descent: {s.gd_steps} steps of size 1/lambda_max (tangent kernel at "
        f"initialisation), fixed input; trains f(u; w) - f(u; w0), so the output starts "
        f"at 0",
        f"Adam: {s.adam_steps} steps, learning rate {s.adam_lr:g}, input perturbed by "
        f"fresh Gaussian noise of std {s.adam_input_noise:.3g} at every step (the deep "
        f"image prior's recipe); trains the network as built",
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
    table = r.psnr if rule == "oracle" else r.psnr_discrepancy
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
